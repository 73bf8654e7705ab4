"""Training throughput of the same model on other stacks, one process per stack.

`benchmarks/run.py` (group `training`) calls this once per stack and backend so that each
runs with its own framework loaded and its own threads, and records samples/s next to ours:

    python benchmarks/peers.py torch --batch 32      # plain PyTorch nn.LSTM
    python benchmarks/peers.py keras-jax --batch 32  # Keras 3 with KERAS_BACKEND=jax

The model is the one `bench_training` trains: 2 x LSTM(50), window 60, 1 feature, one
Dense(1) output, Adam, MSE, on the same sine windows; one warm-up epoch on four batches,
then two shuffled epochs timed. Prints one JSON line: {"stack", "batch", "samples_per_s"}.
The packages come from the `bench` extra (`make bench` installs it); a stack that is not
installed prints {"error": ...} and exits 3.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

WINDOWS, INPUT_STEPS, EPOCHS = 8000, 60, 2


def windows() -> tuple[np.ndarray, np.ndarray]:
    """The same windows as run.py's bench_training: sin over 8,061 rows, window 60."""
    rows = WINDOWS + INPUT_STEPS + 1
    series = np.sin(np.linspace(0, 300, rows)).astype("float32")
    idx = np.arange(INPUT_STEPS)[None, :] + np.arange(rows - INPUT_STEPS - 1)[:, None]
    return series[idx][..., None], series[idx[:, -1] + 1][:, None]


def torch_throughput(batch: int) -> float:
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(1, 50, num_layers=2, batch_first=True)
            self.out = nn.Linear(50, 1)

        def forward(self, x):
            h, _ = self.lstm(x)
            return self.out(h[:, -1])

    x, y = (torch.from_numpy(a) for a in windows())
    net = Net()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.MSELoss()
    generator = torch.Generator().manual_seed(0)

    def epoch(limit: int | None = None) -> None:
        order = torch.randperm(len(x), generator=generator)
        for i, start in enumerate(range(0, len(x), batch)):
            if limit is not None and i >= limit:
                return
            sel = order[start : start + batch]
            optimizer.zero_grad()
            loss = loss_fn(net(x[sel]), y[sel])
            loss.backward()
            optimizer.step()

    epoch(limit=4)  # warm-up
    start = time.perf_counter()
    for _ in range(EPOCHS):
        epoch()
    return len(x) * EPOCHS / (time.perf_counter() - start)


def keras_throughput(batch: int) -> float:
    import keras

    keras.utils.set_random_seed(0)
    x, y = windows()
    model = keras.Sequential(
        [
            keras.Input((INPUT_STEPS, 1)),
            keras.layers.LSTM(50, return_sequences=True),
            keras.layers.LSTM(50),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(x[: batch * 4], y[: batch * 4], batch_size=batch, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=EPOCHS, verbose=0)
    return len(x) * EPOCHS / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stack", choices=["torch", "keras-jax", "keras-tensorflow"])
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    try:
        if args.stack == "torch":
            rate = torch_throughput(args.batch)
        else:
            if os.environ.get("KERAS_BACKEND") != args.stack.split("-")[1]:
                sys.exit(f"set KERAS_BACKEND={args.stack.split('-')[1]} for {args.stack}")
            rate = keras_throughput(args.batch)
    except ImportError as exc:
        print(json.dumps({"stack": args.stack, "error": f"not installed: {exc.name}"}))
        sys.exit(3)
    print(json.dumps({"stack": args.stack, "batch": args.batch, "samples_per_s": rate}))


if __name__ == "__main__":
    main()
