"""`make bench`: the tutorial way and ours, measured in one run on the same data and models.

The tutorial way is written from the seeds' recipes: a Python loop that appends windows
(seed 001/002), and recursive forecasting with one `model.predict` per step per origin
(seed 000). Where the tutorial way would take tens of minutes, it is timed on a sample of
origins and scaled by the number of origins (each origin is an independent loop of calls);
the table says so. Writes benchmarks/results.json and prints a Markdown table.

    python benchmarks/run.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# each command measured here is a process of its own, TensorFlow imported in it (the warm
# start, forecast/cli/warm.py, is off; group backtest_cli measures it, turning it on itself)
os.environ["FORECAST_WARM"] = "0"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

RESULTS: list[dict] = []


def record(name: str, tutorial: float | None, ours: float, unit: str, note: str = "") -> None:
    """tutorial/ours are costs (seconds or MB) unless unit says samples/s (higher is better)."""
    if tutorial is None:
        ratio = None
    elif unit == "samples/s":
        ratio = ours / tutorial
    else:
        ratio = tutorial / ours if ours > 0 else float("inf")
    RESULTS.append(
        {
            "case": name,
            "tutorial": tutorial,
            "ours": ours,
            "unit": unit,
            "ratio": ratio,
            "note": note,
        }
    )
    shown = "" if ratio is None else f"  ratio {ratio:,.1f}x"
    print(f"{name}: tutorial {tutorial} ours {ours:.4g} {unit}{shown} {note}", flush=True)


def timed(fn, repeat: int = 3) -> float:
    """Median wall time of `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------- windowing


def tutorial_windows(data: np.ndarray, time_step: int) -> tuple[np.ndarray, np.ndarray]:
    """Seed 001's create_dataset."""
    xs, ys = [], []
    for i in range(len(data) - time_step - 1):
        xs.append(data[i : (i + time_step), 0])
        ys.append(data[i + time_step, 0])
    return np.array(xs), np.array(ys)


def bench_windowing(rows: int, window: int) -> None:
    from forecast.data.windows import input_windows, target_windows

    series = np.sin(np.linspace(0, 1000, rows)).reshape(-1, 1)
    origins = np.arange(window - 1, rows - 2)
    series32 = series.astype("float32")  # what the model consumes; Keras casts to it anyway

    def ours() -> None:
        input_windows(series32, origins, window)
        target_windows(series32, origins, 1)

    tutorial = timed(lambda: tutorial_windows(series, window), repeat=1)
    record(
        f"windowing {rows:,} rows x {window}: NumPy view + one copy, float32",
        tutorial,
        timed(ours),
        "s",
        "the tutorial builds float64 lists; Keras then casts",
    )

    # what `train` does: no materialised windows, each batch gathered from the series
    from forecast.fitting.dataset import WindowSource, window_dataset

    dataset = window_dataset(WindowSource(series32, series32, window, 1), origins, 4096)

    def one_pass() -> None:
        for _ in dataset:
            pass

    one_pass()
    record(
        f"windowing {rows:,} rows x {window}: train's tf.data pipeline, one pass (batch 4096)",
        tutorial,
        timed(one_pass),
        "s",
    )


# --------------------------------------------------------------------------- forecasting


def lstm_model(units: list[int], input_steps: int, unroll: bool):
    from forecast.config.file import validate_config
    from forecast.model.build import build_model

    config = validate_config(
        {
            "data": {"path": "x.csv", "features": ["a"]},
            "model": {"architecture": "lstm", "units": units},
        }
    )
    import keras

    keras.utils.set_random_seed(0)
    return build_model(config.model, input_steps, 1, 1, 1, unroll=unroll)


def tutorial_recursive(model, window: np.ndarray, steps: int) -> list[float]:
    """Seed 000: one model.predict per step, the prediction appended to the window."""
    x_input = window.copy()
    out = []
    for _ in range(steps):
        yhat = model.predict(x_input.reshape(1, -1, 1), verbose=0)
        x_input = np.append(x_input, yhat)[1:]
        out.append(float(yhat[0, 0, 0]))
    return out


def bench_forecasting(
    origins: int, steps: int, input_steps: int, units: list[int], sample: int
) -> None:
    from forecast.forecasting.forecaster import Forecaster

    # the same looped model both ways (`train` hands forecasting a looped twin of what it
    # trained unrolled)
    model = lstm_model(units, input_steps, unroll=False)
    rng = np.random.default_rng(0)
    windows = rng.random((origins, input_steps, 1)).astype("float32")
    # the tutorial way on `sample` origins, scaled to all of them
    sample = min(sample, origins)
    start = time.perf_counter()
    for i in range(sample):
        tutorial_recursive(model, windows[i, :, 0], steps)
    tutorial = (time.perf_counter() - start) * origins / sample
    forecaster = Forecaster(model, ["a"], ["a"])
    start = time.perf_counter()
    forecaster(windows, steps)  # traces (and compiles) the loop
    first = time.perf_counter() - start
    ours = timed(lambda: forecaster(windows, steps))
    # same numbers as the tutorial loop on the sampled origins
    check = np.array([tutorial_recursive(model, windows[i, :, 0], steps) for i in range(1)])
    np.testing.assert_allclose(forecaster(windows[:1], steps)[:, :, 0], check, rtol=1e-4, atol=1e-5)
    note = f"tutorial timed on {sample} origin(s) x {steps} calls, scaled x{origins / sample:g}"
    note += f"; ours first call (tracing/XLA) {first:.2f} s"
    record(
        f"recursive forecast {origins:,} origin(s) x {steps} steps, window {input_steps}, "
        f"LSTM{tuple(units)}",
        tutorial,
        ours,
        "s",
        note,
    )


# --------------------------------------------------------------------------- training


def peer_throughput(stack: str, batch: int) -> float | None:
    """samples/s of benchmarks/peers.py for `stack` in its own process; None (and a line
    saying why) when that stack is not installed (`make bench` installs the bench extra)."""
    env = {**os.environ, "KERAS_BACKEND": stack.split("-")[1] if "-" in stack else ""}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "peers.py"), stack, "--batch", str(batch)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    answer = json.loads(lines[-1]) if lines else {"error": done.stderr.strip()[-300:]}
    if "samples_per_s" not in answer:
        print(f"  {stack}: skipped ({answer.get('error')})", flush=True)
        return None
    return answer["samples_per_s"]


def bench_training(windows: int, input_steps: int, batch: int) -> None:
    from forecast.config.schema import TrainingConfig
    from forecast.data.windows import input_windows, target_windows
    from forecast.fitting.dataset import WindowSource
    from forecast.fitting.speedups import choose_speedups
    from forecast.fitting.training import compile_model
    from forecast.fitting.training import fit as fit_pipeline

    rows = windows + input_steps + 1
    series = np.sin(np.linspace(0, 300, rows)).reshape(-1, 1).astype("float32")
    origins = np.arange(input_steps - 1, rows - 1)
    x = input_windows(series, origins, input_steps).astype("float32")
    y = target_windows(series, origins, 1).astype("float32")
    epochs = 2
    training = TrainingConfig(batch_size=batch, epochs=epochs, early_stopping=False)
    source = WindowSource(series, series, input_steps, 1)
    steps = math.ceil(len(origins) / batch)
    none = np.array([], dtype=np.int64)

    def through_train(model, config: TrainingConfig, jit: bool) -> float:
        """`train`'s own fit (its datasets, batches per call, callbacks), after a warm-up
        epoch on the same windows that builds, traces and compiles (a shorter one would run
        other batches per call and trace again)."""
        compile_model(model, config, steps_per_epoch=steps, jit=jit)
        warm = config.model_copy(update={"epochs": 1})
        fit_pipeline(model, warm, source, origins, none, seed=0, quiet=True)
        fitted = fit_pipeline(model, config, source, origins, none, seed=0, quiet=True)
        return len(x) * epochs / fitted.seconds

    def fit_numpy(model) -> float:  # the tutorial: model.fit on materialised NumPy windows
        model.compile(optimizer="adam", loss="mse")
        model.fit(x[: batch * 4], y[: batch * 4], batch_size=batch, epochs=1, verbose=0)
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
        return len(x) * epochs / (time.perf_counter() - start)

    def fit_ours(model) -> float:
        return through_train(model, training, jit=False)

    tutorial = fit_numpy(lstm_model([50, 50], input_steps, unroll=False))
    unroll = False  # the tutorial's model as it is
    same_model_numpy = fit_numpy(lstm_model([50, 50], input_steps, unroll=unroll))
    looped = fit_ours(lstm_model([50, 50], input_steps, unroll=unroll))
    # what `jit_compile: auto` and `unroll: auto` pick for this fit (its batches x 2 epochs)
    jit, unrolled = choose_speedups(
        "auto", "auto", input_steps, batch, steps * epochs, [("lstm", 50)] * 2
    )
    chosen = training.model_copy(update={"jit_compile": jit, "unroll": unrolled})
    ours = through_train(lstm_model([50, 50], input_steps, unroll=unrolled), chosen, jit=jit)
    record(
        f"training 2xLSTM(50), window {input_steps}, batch {batch} (ours: as auto picks, "
        f"jit_compile={jit}, unroll={unrolled})",
        tutorial, ours, "samples/s",
    )  # fmt: skip
    record(f"  ours without XLA (unroll={unroll}), batch {batch}", tutorial, looped, "samples/s")
    for stack, label in (("torch", "plain PyTorch nn.LSTM"), ("keras-jax", "Keras on JAX")):
        theirs = peer_throughput(stack, batch)
        if theirs is not None:
            record(
                f"  same model and windows, batch {batch}: {label} vs ours (as auto picks)",
                theirs, ours, "samples/s", "own process; target ours >= theirs",
            )  # fmt: skip
    record(
        f"  pipeline overhead, same model without XLA, batch {batch} (fit time ours/plain Keras)",
        None,
        same_model_numpy / looped,
        "ratio",
        "target <= 1.1",
    )


def bench_train_epoch(windows: int) -> None:
    """The fit of a 1-epoch `forecast train` (model build, compile, trace and one epoch, as
    `fitting.fit.fit` runs it) against plain Keras: the same model built, compiled and
    `fit(X, y)` for one epoch on the same windows, materialised. 2 x LSTM(32), window 48,
    batch 32; alternated three times, medians."""
    import keras
    import pandas as pd

    from forecast.config.file import validate_config
    from forecast.data.prepare import prepare
    from forecast.data.windows import input_windows, target_windows
    from forecast.fitting.fit import fit
    from forecast.model.build import build_model

    input_steps = 48
    rows = windows + input_steps + 1
    t = np.arange(rows)
    values = np.sin(2 * np.pi * t / 50) + np.random.default_rng(0).normal(0, 0.1, rows)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "s.csv"
        pd.DataFrame({"value": values}).to_csv(csv, index=False)
        config = validate_config(
            {
                "data": {"path": str(csv), "features": ["value"]},
                "window": {"input_steps": input_steps},
                "split": {"test": 1, "validation": 0},
                "model": {"architecture": "lstm", "units": [32, 32]},
                "training": {"epochs": 1, "batch_size": 32, "early_stopping": False},
                "intervals": [],
            }
        )
        prepared = prepare(config)
        origins = prepared.split.train_origins
        x = input_windows(prepared.features, origins, input_steps)  # (N, L, 1)
        y = target_windows(prepared.targets, origins, 1)  # (N, 1, 1)

        def ours() -> float:
            start = time.perf_counter()
            _, _, info = fit(prepared, quiet=True)
            ours.unroll = info["unroll"]
            return time.perf_counter() - start

        def plain() -> float:
            start = time.perf_counter()
            keras.utils.set_random_seed(0)
            model = build_model(config.model, input_steps, 1, 1, 1)
            model.compile(optimizer="adam", loss="mse")
            model.fit(x, y, batch_size=32, epochs=1, verbose=0)
            return time.perf_counter() - start

        plain()  # warm-up: TensorFlow's first graph
        mine, theirs = [], []
        for _ in range(3):
            mine.append(ours())
            theirs.append(plain())
    record(
        f"1-epoch fit of `train`, 2xLSTM(32), window 48, {len(origins):,} windows, batch 32: "
        "plain Keras build + fit(X, y) vs ours",
        round(statistics.median(theirs), 2), statistics.median(mine), "s",
        f"target ours <= 1.1x plain; unroll={ours.unroll}",
    )  # fmt: skip


def bench_batch_accuracy() -> None:
    """Does a larger batch hurt accuracy? Same config, batch 32 vs 128: test MASE, fit time."""
    from forecast import api

    for name in ("lstm", "univariate_multi_step"):
        scores = {}
        for batch in (32, 128):
            with tempfile.TemporaryDirectory() as tmp:
                result = api.train(
                    ROOT / "configs" / f"{name}.yaml",
                    runs_dir=tmp,
                    quiet=True,
                    overrides=[f"training.batch_size={batch}"],
                )
                info = json.loads((result.run_dir / "run.json").read_text())
            scores[batch] = (result.metrics["model"]["mase"], info["timings"]["fit"])
        record(
            f"configs/{name}.yaml: test MASE at batch 32 vs 128",
            scores[32][0],
            scores[128][0],
            "MASE",
            f"fit {scores[32][1]:.1f} s vs {scores[128][1]:.1f} s (lower MASE is better)",
        )


# --------------------------------------------------------------------------- memory, CLI


def peak_rss_mb(args: list[str], cwd: Path) -> float:
    """Peak RSS of a child process, in MB (ru_maxrss of the waited-for child)."""
    code = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "assert r.returncode == 0, r.stderr[-2000:]\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def bench_memory(rows: int) -> None:
    forecast = str(Path(sys.executable).parent / "forecast")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = np.arange(rows)
        values = np.sin(t / 50) + 0.1 * np.sin(t / 7)
        np.savetxt(
            folder / "big.csv", values, delimiter=",", header="value", comments="", fmt="%.6f"
        )
        peaks = {}
        for window in (10, 120):
            (folder / f"w{window}.yaml").write_text(
                "data: {path: big.csv, features: [value]}\n"
                f"window: {{input_steps: {window}, horizon: 1}}\n"
                "split: {test: 0.2, validation: 0.05}\n"
                "model: {architecture: simple_rnn, units: [4]}\n"
                "training: {epochs: 1, batch_size: 4096, early_stopping: false}\n",
                encoding="utf-8",
            )
            start = time.perf_counter()
            peaks[window] = peak_rss_mb([forecast, "train", f"w{window}.yaml", "--quiet"], folder)
            print(
                f"  train {rows:,} rows window {window}: {time.perf_counter() - start:.0f} s, "
                f"peak RSS {peaks[window]:.0f} MB",
                flush=True,
            )
        materialised = rows * 120 * 4 / 2**20
        record(
            f"peak RSS of `forecast train`, {rows:,} rows: window 120 minus window 10",
            None,
            peaks[120] - peaks[10],
            "MB",
            f"target <= 220; window 10: {peaks[10]:.0f} MB, window 120: {peaks[120]:.0f} MB; "
            f"materialising float32 windows alone would take {materialised:.0f} MB",
        )


def long_table(series: int, rows: int, seed: int = 0):
    """`series` weekly seasonal random walks of `rows` rows each, levels 10..1000 apart,
    starts staggered: a long table (id, date, value) in shuffled row order."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    parts = []
    for i in range(series):
        level = 10 * (1 + i % 100) * (1 + np.cumsum(rng.normal(0, 0.01, rows)))
        values = level * (1 + 0.1 * np.sin(2 * np.pi * (t + i) / 52)) + rng.normal(0, 0.5, rows)
        dates = pd.date_range("2000-01-03", periods=rows + i % 10, freq="W-MON")[i % 10 :]
        parts.append(pd.DataFrame({"id": f"s{i:04d}", "date": dates, "value": values.round(4)}))
    frame = pd.concat(parts, ignore_index=True)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


MANY_CONFIG = (
    "data: {{path: {path}, id_column: id, time_column: date, features: [value]}}\n"
    "window: {{input_steps: 52, horizon: 4}}\n"
    "split: {{test: 20, validation: 20}}\n"
    "model: {{architecture: lstm, units: [32], window_norm: true}}\n"
    "training: {{epochs: 1, batch_size: 256, early_stopping: false, final_fit: false}}\n"
    "intervals: [80, 95]\n"
)


def bench_many_series(quick: bool) -> None:
    """One model over a long table of 10, 100, 1,000 series x 500 rows: `forecast train`
    (1 epoch, evaluation and intervals per series) wall time and peak RSS; for 10 series
    also the tutorial way, one `forecast train` per series."""
    forecast = str(Path(sys.executable).parent / "forecast")
    rows = 200 if quick else 500
    sizes = (10, 100) if quick else (10, 100, 1000)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        peaks, seconds = {}, {}
        for n in sizes:
            frame = long_table(n, rows)
            frame.to_csv(folder / f"long{n}.csv", index=False)
            (folder / f"many{n}.yaml").write_text(
                MANY_CONFIG.format(path=f"long{n}.csv"), encoding="utf-8"
            )
            start = time.perf_counter()
            peaks[n] = peak_rss_mb([forecast, "train", f"many{n}.yaml", "--quiet"], folder)
            seconds[n] = time.perf_counter() - start
            windows = n * (rows - 20 - 20 - 52 - 4 + 1)
            print(f"  {n} series: {seconds[n]:.1f} s, peak RSS {peaks[n]:.0f} MB, "
                  f"{windows:,} training windows", flush=True)  # fmt: skip
        # the tutorial way: one model per series, each its own `forecast train`
        frame = pd_read(folder / "long10.csv")
        start = time.perf_counter()
        for sid, part in frame.groupby("id"):
            part[["date", "value"]].sort_values("date").to_csv(folder / f"{sid}.csv", index=False)
            (folder / f"{sid}.yaml").write_text(
                MANY_CONFIG.format(path=f"{sid}.csv").replace("id_column: id, ", ""),
                encoding="utf-8",
            )
            subprocess.run(
                [forecast, "train", f"{sid}.yaml", "--quiet"], cwd=folder, check=True,
                capture_output=True,
            )  # fmt: skip
        separate = time.perf_counter() - start
        record(
            f"`forecast train` of 10 series x {rows} rows: one model per series vs one for all",
            round(separate, 2), round(seconds[10], 2), "s", "1 epoch each, same settings",
        )  # fmt: skip
        for n in sizes:
            record(
                f"`forecast train` of {n:,} series x {rows} rows in one model (1 epoch)",
                None, round(seconds[n], 2), "s", f"peak RSS {peaks[n]:.0f} MB",
            )  # fmt: skip
        record(
            f"peak RSS, {sizes[-1]:,} series minus 10 series",
            None, round(peaks[sizes[-1]] - peaks[10], 1), "MB",
            f"{sizes[-1] // 10}x the windows; float32 windows materialised would take "
            f"{sizes[-1] * rows * 52 * 4 / 2**20:.0f} MB",
        )  # fmt: skip


def pd_read(path: Path):
    import pandas as pd

    return pd.read_csv(path)


def bench_cli() -> None:
    forecast = str(Path(sys.executable).parent / "forecast")

    def run(args: list[str]) -> float:
        return timed(lambda: subprocess.run(args, capture_output=True, check=True), repeat=3)

    import_tf = run([sys.executable, "-c", "import tensorflow"])
    for command in (["--help"], ["schema"], ["runs", "--runs-dir", "/nonexistent"]):
        ours = run([forecast, *command])
        record(
            f"`forecast {' '.join(command[:1])}` vs `python -c 'import tensorflow'`",
            import_tf,
            ours,
            "s",
            "target: ours < 0.3x import",
        )


# --------------------------------------------------------------------------- predict


def univariate_run(folder: Path) -> tuple[Path, Path]:
    """The shipped univariate config trained for one epoch under `folder`, and the last 200
    rows of its CSV as recent history: (run dir, history CSV)."""
    import pandas as pd

    from forecast import api

    run_dir = api.train(
        ROOT / "configs" / "univariate.yaml", runs_dir=folder, overrides=["training.epochs=1"],
        quiet=True,
    ).run_dir  # fmt: skip
    tail = folder / "recent.csv"
    pd.read_csv(ROOT / "data" / "msft_daily.csv").tail(200).to_csv(tail, index=False)
    return run_dir, tail


def bench_predict() -> None:
    """`forecast predict` as a script or a scheduled job runs it: a new process per forecast,
    on the shipped univariate config trained for one epoch (with its final fit), the next 10
    trading days from the last 200 rows. The reference is TensorFlow's path as it was before
    model.onnx: the same command with the onnx extra hidden (its modules set to None, which
    is what `importlib.util.find_spec` reports for a package not installed). Then the first
    predict of the run (TensorFlow, and model.onnx written), and later ones (onnxruntime)."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir, tail = univariate_run(Path(tmp))
        argv = ["forecast", "predict", "--run", str(run_dir), "--csv", str(tail), "--horizon",
                "10", "--output", str(Path(tmp) / "f.csv")]  # fmt: skip

        def command(hide_onnx: bool) -> list[str]:
            hidden = "sys.modules['onnxruntime'] = sys.modules['tf2onnx'] = None\n"
            code = (
                "import sys\n" + (hidden if hide_onnx else "")
                + f"sys.argv = {argv!r}\nfrom forecast.cli.app import main\nmain()\n"
            )  # fmt: skip
            return [sys.executable, "-c", code]

        def run(args: list[str], before=None) -> float:
            def once() -> None:
                if before is not None:
                    before()
                subprocess.run(args, capture_output=True, check=True)

            return timed(once, repeat=3)

        artifact = run_dir / "model.onnx"
        keras_path = run(command(hide_onnx=True))
        assert not artifact.exists()
        first = run(command(hide_onnx=False), before=lambda: artifact.unlink(missing_ok=True))
        later = run(command(hide_onnx=False))
        keras_mb = peak_rss_mb(command(hide_onnx=True), ROOT)
        later_mb = peak_rss_mb(command(hide_onnx=False), ROOT)
        case = "`forecast predict --horizon 10`, a new process, univariate LSTM run"
        record(
            f"{case}: TensorFlow path vs the first predict (TensorFlow, then model.onnx kept)",
            keras_path, first, "s", "target: the first within today's 6-9 s",
        )  # fmt: skip
        record(
            f"{case}: TensorFlow path vs later predicts (model.onnx, onnxruntime)",
            keras_path, later, "s",
            f"target: at most 2.5 s; peak memory {later_mb:.0f} MB vs {keras_mb:.0f} MB",
        )  # fmt: skip


# --------------------------------------------------------------------------- serving


def bench_serve(requests: int) -> None:
    """`forecast serve` on the shipped univariate config (trained for 1 epoch): one-origin
    forecasts over real HTTP from another process's threads, requests/s and p50/p99
    latency. One server process: 1, 8 and 50 clients each sending again as soon as answered
    (closed loop); `--workers 2`: 50 such clients, and 50 clients pacing their requests to
    a fixed total rate (PACED, 3x the 56 requests/s the issue measured), latency counted
    from each request's scheduled time (a late start counts). The reference is one
    `forecast predict` command per forecast, the way without a server."""
    import socket
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    paced = 170.0  # requests/s

    forecast = str(Path(sys.executable).parent / "forecast")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir, tail = univariate_run(Path(tmp))
        command = timed(
            lambda: subprocess.run(
                [forecast, "predict", "--run", str(run_dir), "--csv", str(tail), "--output",
                 str(Path(tmp) / "f.csv")], capture_output=True, check=True,
            ), repeat=3,
        )  # fmt: skip
        body = tail.read_bytes()

        def one(url: str, since: float | None = None) -> float:
            start = time.perf_counter() if since is None else since
            req = urllib.request.Request(
                f"{url}/forecast", data=body, headers={"Content-Type": "text/csv"}
            )
            with urllib.request.urlopen(req, timeout=60) as answer:
                answer.read()
            return time.perf_counter() - start

        def paced_client(url: str, first: float, every: float, count: int) -> list[float]:
            latencies = []
            for k in range(count):
                due = first + k * every
                time.sleep(max(0.0, due - time.perf_counter()))
                latencies.append(one(url, since=due))
            return latencies

        def measure(url: str, label: str, clients: int, rate: float | None) -> None:
            start = time.perf_counter()
            if rate is None:
                with ThreadPoolExecutor(clients) as pool:
                    latencies = sorted(pool.map(lambda _: one(url), range(requests)))
            else:
                each, every = requests // clients, clients / rate
                with ThreadPoolExecutor(clients) as pool:
                    jobs = [
                        pool.submit(paced_client, url, start + 0.1 + i / rate, every, each)
                        for i in range(clients)
                    ]
                    latencies = sorted(x for job in jobs for x in job.result())
            wall = time.perf_counter() - start
            p50 = latencies[len(latencies) // 2]
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            record(
                f"`forecast serve{label}`, POST /forecast (CSV, 200 rows, 1 origin), {clients} "
                f"client thread(s){'' if rate is None else f' paced to {rate:.0f} requests/s'}"
                f", {len(latencies)} requests: one `forecast predict` command vs one request",
                round(command, 3), wall / len(latencies), "s",
                f"{len(latencies) / wall:.0f} requests/s; p50 {1000 * p50:.1f} ms, "
                f"p99 {1000 * p99:.1f} ms",
            )  # fmt: skip

        for workers, cases in ((1, ((1, None), (8, None), (50, None), (50, paced))),
                               (2, ((50, None), (50, paced)))):  # fmt: skip
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            server = subprocess.Popen(
                [forecast, "serve", "--run", str(run_dir), "--port", str(port), "--workers",
                 str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            label = "" if workers == 1 else f" --workers {workers}"
            try:
                for _ in range(600):
                    try:
                        urllib.request.urlopen(f"{url}/health", timeout=5).read()
                        break
                    except OSError:
                        time.sleep(0.2)
                time.sleep(20 if workers > 1 else 0)  # every worker's model loaded (~7 s)
                with ThreadPoolExecutor(8) as pool:  # each process traces its first calls
                    list(pool.map(one, [url] * (40 * workers)))
                for clients, rate in cases:
                    measure(url, label, clients, rate)
            finally:
                server.terminate()
                server.wait(timeout=30)


# --------------------------------------------------------------------------- backtests


def bench_backtest(quick: bool) -> None:
    """`forecast backtest --folds 3` of the config `forecast init` writes, on every series in
    data/accuracy (a long table as one model for its series, as init sets it up): a new
    model per fold (as before) vs the models reused, with identical forecasts checked; and
    statsforecast's three models on the same folds, series by series."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import logging

    import accuracy

    from forecast.config.file import load_config
    from forecast.data.reading import read_panel, read_series
    from forecast.fitting.task import FitTask, run_task
    from forecast.workflows import backtest as rolling
    from forecast.workflows.starter import starter_config

    logging.getLogger("forecast").setLevel(logging.ERROR)
    spec_file = json.loads((ROOT / "data" / "accuracy" / "spec.json").read_text())
    singles = [s for s in accuracy.series_list(panels=False) if "accuracy" in Path(s["path"]).parts]
    panels = spec_file["panels"]
    if quick:
        singles, panels = singles[:3], []
    new = reused = stats = 0.0
    with_stats = True

    def time_stats(y: np.ndarray, spec: dict) -> None:
        nonlocal stats, with_stats
        if with_stats:
            try:
                stats += sum(m["seconds"] for m in accuracy.stats_forecasts(y, spec).values())
            except ImportError:  # statsforecast is in the dev extra only
                with_stats = False

    with tempfile.TemporaryDirectory() as tmp:
        for spec in singles:
            path = Path(tmp) / f"{spec['name']}.yaml"
            path.write_text(
                starter_config("univariate", spec["path"], spec["target"], spec["horizon"])
            )
            config = load_config(path, seed=1)
            series = read_series(config.data)
            origins = rolling.backtest_origins(len(series.frame), 3, config.window.horizon)
            # reused first: any cache the runtime keeps (XLA's, TF's) helps the other one
            start = time.perf_counter()
            _, forecasts, _ = rolling.run_backtest(config, series, origins, quiet=True)
            reused += time.perf_counter() - start
            start = time.perf_counter()
            folds = [
                run_task(FitTask(config, series, len(series.frame) - 1 - int(o), i))
                for i, o in enumerate(origins, 1)
            ]  # each fold a model of its own
            new += time.perf_counter() - start
            fresh = np.stack([f.forecasts[None] for f in folds])
            assert np.array_equal(fresh, forecasts), spec["name"]
            time_stats(series.frame[spec["target"]].to_numpy(dtype=float), spec)
        for panel in panels:
            csv = ROOT / "data" / "accuracy" / panel["file"]
            path = Path(tmp) / f"{csv.stem}.yaml"
            path.write_text(starter_config("univariate", csv, panel["target"], panel["horizon"]))
            config = load_config(path, seed=1)
            table = read_panel(config.data)
            backs = rolling.panel_backs(config, table, 3)
            start = time.perf_counter()
            _, forecasts = rolling.run_panel_backtest(config, table, backs, quiet=True)
            reused += time.perf_counter() - start
            start = time.perf_counter()
            for number, back in enumerate(backs, start=1):
                fresh = run_task(FitTask(config, table, back, number)).forecasts
                for sid, values in fresh.items():
                    assert np.array_equal(values, forecasts[number - 1][sid]), (csv.name, sid)
            new += time.perf_counter() - start
            for sid, member in table.members.items():
                spec = {**panel, "name": f"{csv.stem}_{sid}"}
                time_stats(member.frame[panel["target"]].to_numpy(dtype=float), spec)
    what = f"{len(singles)} series and {len(panels)} long tables"
    record(
        f"backtest --folds 3, recommended configs, {what}: a new model per fold vs reused",
        round(new, 2), reused, "s", "the same forecasts (checked)",
    )  # fmt: skip
    if with_stats:
        record(
            f"same backtests, {what}: statsforecast AutoETS+AutoTheta+AutoARIMA vs ours",
            round(stats, 2), reused, "s", "ratio > 1: ours is faster",
        )  # fmt: skip


def bench_backtest_cli(quick: bool) -> None:
    """`forecast backtest --folds 3` as a user runs it, one command per series (a new
    process each, the config `forecast init` prints), on the first 10 series of
    data/accuracy: with the warm start off (TensorFlow imported by every command), with it
    on (the first command starts the server, and pays for it), and all 10 as one command;
    against statsforecast's three models on the same folds, one process per series
    (benchmarks/statsfold.py) and one for all. The warm numbers are checked against the
    cold ones."""
    specs = json.loads((ROOT / "data" / "accuracy" / "spec.json").read_text())["series"]
    specs = specs[: 3 if quick else 10]
    forecast = str(Path(sys.executable).parent / "forecast")
    stats_script = str(ROOT / "benchmarks" / "statsfold.py")

    def run(args: list[str], cwd: str, env: dict) -> tuple[float, str]:
        start = time.perf_counter()
        done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        if done.returncode:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr[-500:]}")
        return seconds, done.stdout

    with tempfile.TemporaryDirectory(prefix="fb-") as tmp:
        env = {**os.environ, "FORECAST_WARM_DIR": str(Path(tmp) / "w")}
        configs, stats_args = [], []
        for spec in specs:
            csv = str(ROOT / "data" / "accuracy" / spec["file"])
            args = [forecast, "init", "--csv", csv, "--target", spec["target"]]
            _, text = run([*args, "--horizon", str(spec["horizon"])], tmp, env)
            config = Path(tmp) / f"{Path(spec['file']).stem}.yaml"
            config.write_text(text)
            configs.append(config.name)
            stats_args.append(
                [csv, spec["target"], str(spec["horizon"]), str(spec["season_length"])]
            )
        seconds: dict[str, float] = {}
        means: dict[str, list] = {"cold": [], "warm": []}
        for case, warm in (("cold", "0"), ("warm", "1")):
            total = 0.0
            for config in configs:
                took, out = run(
                    [forecast, "backtest", config, "--folds", "3", "--runs-dir", case],
                    tmp, {**env, "FORECAST_WARM": warm},
                )  # fmt: skip
                total += took
                result = json.loads((Path(tmp) / out.strip().splitlines()[-1]).read_text())
                means[case].append(result["mean"]["model"])
            seconds[case] = total
        stop = [sys.executable, "-m", "forecast.cli.warm", "stop"]
        subprocess.run(stop, env=env, check=True, capture_output=True)
        assert means["warm"] == means["cold"], "the warm start changed a backtest's numbers"
        for case, warm in (("one_cold", "0"), ("one", "1")):  # "one": a new server, started
            seconds[case], _ = run(
                [forecast, "backtest", *configs, "--folds", "3", "--runs-dir", case],
                tmp, {**env, "FORECAST_WARM": warm},
            )  # fmt: skip
        subprocess.run(stop, env=env, check=True, capture_output=True)
        seconds["stats"] = sum(run([sys.executable, stats_script, *a], tmp, env)[0]
                               for a in stats_args)  # fmt: skip
        flat = [part for a in stats_args for part in a]
        seconds["stats_one"], _ = run([sys.executable, stats_script, *flat], tmp, env)
    n = len(specs)
    note = "ratio > 1: ours is faster; statsforecast one process per series"
    record(
        f"`forecast backtest --folds 3`, one command per series, {n} series: statsforecast "
        "AutoETS+AutoTheta+AutoARIMA vs ours, FORECAST_WARM=0",
        round(seconds["stats"], 2), seconds["cold"], "s", note,
    )  # fmt: skip
    record(
        f"same, {n} series: statsforecast vs ours with the warm start (the default; the "
        "first command starts the server)",
        round(seconds["stats"], 2), seconds["warm"], "s", note + "; the same numbers (checked)",
    )  # fmt: skip
    record(
        f"same {n} series as one command: statsforecast in one process vs "
        f"`forecast backtest` of {n} configs, FORECAST_WARM=0",
        round(seconds["stats_one"], 2), seconds["one_cold"], "s", "ratio > 1: ours is faster",
    )  # fmt: skip
    record(
        f"same {n} series as one command: statsforecast in one process vs "
        f"`forecast backtest` of {n} configs, the default (it starts the warm server, whose "
        "fork makes the folds' pool cheap)",
        round(seconds["stats_one"], 2), seconds["one"], "s", "ratio > 1: ours is faster",
    )  # fmt: skip


def bench_backtest_workers(quick: bool) -> None:
    """`forecast backtest --folds 6` as a user runs it (the command, TensorFlow's import
    and a local Ray's start included): one process against `--workers 2` and against
    `--ray auto`, on a long series (eustocks DAX, 1,860 rows) and a short one (nottem, 240
    rows; the shortest monthly series that holds 6 folds); the recommended configs."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import accuracy

    from forecast.workflows.starter import starter_config

    forecast = str(Path(sys.executable).parent / "forecast")
    wanted = ["nottem_monthly"] if quick else ["eustocks_DAX", "nottem_monthly"]
    specs = [s for s in accuracy.series_list(panels=True) if s["name"] in wanted]
    ways = {
        "one process": ["--workers", "1"],
        "--workers 2": ["--workers", "2"],
        "--ray auto": ["--ray", "auto"],
        "the default (--workers auto)": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            path = Path(tmp) / f"{spec['name']}.yaml"
            path.write_text(
                starter_config("univariate", spec["path"], spec["target"], spec["horizon"])
            )
            seconds, chosen = {}, ""
            for way, options in ways.items():
                start = time.perf_counter()
                done = subprocess.run(
                    [forecast, "backtest", str(path), "--folds", "6", "--seed", "1", "--quiet",
                     "--runs-dir", str(Path(tmp) / "runs"), *options],
                    capture_output=True, check=True, text=True,
                )  # fmt: skip
                seconds[way] = time.perf_counter() - start
                report = Path(done.stdout.strip().splitlines()[-1])  # its backtest.json
                chosen = json.loads(report.read_text())["fanout"]["chosen"]  # the last way's
            for way in ("--workers 2", "--ray auto", "the default (--workers auto)"):
                note = f"the whole command, {os.cpu_count()} cores"
                if way.startswith("the default"):
                    note += f"; {chosen}"
                record(
                    f"`forecast backtest --folds 6` of {spec['name']}: one process vs {way}",
                    round(seconds["one process"], 2), seconds[way], "s", note,
                )  # fmt: skip
        bench_members(forecast, quick, tmp)


def bench_members(forecast: str, quick: bool, tmp: str) -> None:
    """`forecast train` of a 3-member independent ensemble (nottem, the recommended config,
    `model.ensemble_fit: independent`) as a command: the members in turn (`--workers 1`)
    against `--workers 2` and `--ray auto`; the runs agree (tests/test_fanout.py)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import accuracy

    from forecast.workflows.starter import starter_config

    spec = next(s for s in accuracy.series_list() if s["name"] == "nottem_monthly")
    path = Path(tmp) / "members.yaml"
    path.write_text(starter_config("univariate", spec["path"], spec["target"], spec["horizon"]))
    members = ["--set", "model.ensemble=3", "--set", "model.ensemble_fit=independent"]
    if quick:
        members += ["--set", "training.epochs=5"]
    seconds = {}
    for way, options in {
        "in turn": ["--workers", "1"], "--workers 2": ["--workers", "2"],
        "--ray auto": ["--ray", "auto"],
    }.items():  # fmt: skip
        start = time.perf_counter()
        subprocess.run(
            [forecast, "train", str(path), "--seed", "1", "--quiet", *members,
             "--runs-dir", str(Path(tmp) / "train"), *options],
            capture_output=True, check=True,
        )  # fmt: skip
        seconds[way] = time.perf_counter() - start
    for way in ("--workers 2", "--ray auto"):
        record(
            f"`forecast train` of nottem_monthly, 3 independent members: in turn vs {way}",
            round(seconds["in turn"], 2), seconds[way], "s",
            f"the whole command (held-out and final fits), {os.cpu_count()} cores",
        )  # fmt: skip


def bench_multi_worker(quick: bool) -> None:
    """`forecast train` of one model with `training.distribute: multi_worker` on two worker
    processes on 127.0.0.1 against one process: training throughput (windows x epochs per
    second of `model.fit`/the distributed epochs, run.json's `timings.fit`), MSFT daily
    closes (data/msft_daily.csv), input_steps 20, LSTM(32), batch 32 per worker, no early
    stopping, no final fit."""
    import socket

    forecast = str(Path(sys.executable).parent / "forecast")
    epochs = 2 if quick else 5

    def free() -> str:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return f"127.0.0.1:{probe.getsockname()[1]}"

    with tempfile.TemporaryDirectory() as tmp:
        rates = {}
        for way in ("none", "multi_worker"):
            config = Path(tmp) / f"{way}.yaml"
            config.write_text(
                f"name: {way}\nseed: 1\n"
                f"data: {{path: {ROOT / 'data' / 'msft_daily.csv'}, time_column: Date, "
                "features: [Close]}\n"
                "window: {input_steps: 20, horizon: 1}\n"
                "model: {architecture: lstm, units: [32]}\n"
                f"training: {{epochs: {epochs}, batch_size: 32, early_stopping: false, "
                f"final_fit: false, distribute: {way}}}\n"
            )
            runs = Path(tmp) / way
            command = [forecast, "train", str(config), "--quiet", "--runs-dir", str(runs)]
            if way == "none":
                subprocess.run(command, capture_output=True, check=True)
            else:
                workers = [free(), free()]
                procs = [
                    subprocess.Popen(
                        command if i == 0 else [*command[:-1], str(Path(tmp) / "other")],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        env={**os.environ, "TF_CONFIG": json.dumps(
                            {"cluster": {"worker": workers},
                             "task": {"type": "worker", "index": i}})},
                    )
                    for i in (1, 0)
                ]  # fmt: skip
                for proc in procs:
                    proc.communicate(timeout=900)
                    assert proc.returncode == 0
            run = json.loads(next(runs.glob(f"{way}-*/run.json")).read_text())
            windows = run["rows"]["train_windows"]
            rates[way] = windows * run["epochs_run"] / run["timings"]["fit"]
        record(
            "training windows per second, msft daily (LSTM(32), batch 32 per worker): one "
            "process vs two multi_worker processes on 127.0.0.1",
            round(rates["none"], 1), rates["multi_worker"], "samples/s",
            f"{os.cpu_count()} cores shared by both workers; run.json timings.fit",
        )  # fmt: skip


def bench_ensemble_train(quick: bool) -> None:
    """`forecast train` as a user runs it (a new process, the whole command): the shipped
    univariate config on msft_daily.csv (7,923 windows) without its dropout layers (so that
    the members train stacked), batch 32, 2 epochs, `model.ensemble: 5` against one member.
    The stages from run.json: the held-out fit, the test forecasts, the final fit."""
    import yaml

    forecast = str(Path(sys.executable).parent / "forecast")
    raw = yaml.safe_load((ROOT / "configs" / "univariate.yaml").read_text())
    raw["data"]["path"] = str(ROOT / "data" / "msft_daily.csv")
    raw["model"]["layers"] = [layer for layer in raw["model"]["layers"] if "dropout" not in layer]
    raw["training"].update({"batch_size": 32, "epochs": 1 if quick else 2})
    seconds, stages = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "ensemble.yaml"
        config.write_text(yaml.safe_dump(raw))
        for members in (1, 5):
            start = time.perf_counter()
            done = subprocess.run(
                [forecast, "train", str(config), "--runs-dir", str(Path(tmp) / "runs"),
                 "--set", f"model.ensemble={members}", "--quiet"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            seconds[members] = time.perf_counter() - start
            run_dir = Path(done.stdout.strip().splitlines()[-1])
            timings = json.loads((run_dir / "run.json").read_text())["timings"]
            stages[members] = (timings["fit"], timings["forecast"], timings.get("final_fit", 0))
    record(
        "`forecast train`, 2 x LSTM(50), window 60, batch 32, 2 epochs, msft_daily: one member "
        "vs model.ensemble 5 (whole command)",
        round(seconds[1], 2), seconds[5], "s",
        "target: at most 1.8x one member; held-out fit, test forecasts, final fit: "
        + ", ".join(f"{a:.1f}/{b:.1f} s" for a, b in zip(stages[5], stages[1], strict=True))
        + " (5 members/1)",
    )  # fmt: skip


def bench_ensemble(quick: bool) -> None:
    """`model.ensemble: 5` against one member, on the recommended configs' 3-fold backtests:
    the members trained as one wide model (forecast.model.stacked) and side by side as before,
    with the same forecasts checked."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import logging

    import accuracy

    import forecast.model.build
    from forecast.config.file import load_config
    from forecast.data.reading import read_series
    from forecast.fitting.fit import SHARED
    from forecast.workflows.backtest import backtest_origins, run_backtest
    from forecast.workflows.starter import starter_config

    logging.getLogger("forecast").setLevel(logging.ERROR)
    names = ["johnsonjohnson_quarterly", "a10_monthly", "airline_monthly"]
    specs = [s for s in accuracy.series_list(panels=False) if s["name"] in names]
    specs = specs[:1] if quick else specs
    stackable = forecast.model.build.stackable
    seconds = {"one": 0.0, "stacked": 0.0, "plain": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        # the first series once more, untimed, before the others: TensorFlow warms up
        for number, spec in enumerate([specs[0], *specs]):
            warm_up = number == 0
            path = Path(tmp) / f"{spec['name']}.yaml"
            path.write_text(
                starter_config("univariate", spec["path"], spec["target"], spec["horizon"])
            )
            forecasts = {}
            for case, members in (("one", 1), ("stacked", 5), ("plain", 5)):
                config = load_config(path, [f"model.ensemble={members}"], seed=1)
                series = read_series(config.data)
                origins = backtest_origins(len(series.frame), 3, config.window.horizon)
                forecast.model.build.stackable = stackable if case != "plain" else lambda m: False
                # every case builds its own models: the shared ones are keyed by the config,
                # which is the same with and without stacking
                SHARED.slots.clear()
                SHARED.forecasters.clear()
                start = time.perf_counter()
                _, forecasts[case], _ = run_backtest(config, series, origins, quiet=True)
                seconds[case] += 0.0 if warm_up else time.perf_counter() - start
            forecast.model.build.stackable = stackable
            assert np.allclose(forecasts["stacked"], forecasts["plain"], rtol=1e-4), spec["name"]
    bench_ensemble_train(quick)
    n = len(specs)
    record(
        f"backtest --folds 3, {n} series: model.ensemble 5 (one wide model) vs one member",
        round(seconds["one"], 2), seconds["stacked"], "s", "ratio < 1: the ensemble costs more",
    )  # fmt: skip
    record(
        f"same, {n} series: ensemble 5 side by side (before) vs one wide model",
        round(seconds["plain"], 2), seconds["stacked"], "s", "the same forecasts (checked)",
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument(
        "--only",
        help="run one group: cli, windowing, forecasting, training, batch, memory, backtest, "
        "backtest_cli, ensemble, predict, serve, workers, multi_worker, many_series",
    )
    args = parser.parse_args()
    quick = args.quick
    import tensorflow as tf

    started = time.perf_counter()
    groups = {
        "cli": bench_cli,
        "windowing": lambda: bench_windowing(100_000 if quick else 1_000_000, 60),
        "forecasting": lambda: (
            bench_forecasting(1, 100, 60, [50, 50], sample=1),
            bench_forecasting(100 if quick else 1000, 100, 60, [50, 50], sample=2),
            bench_forecasting(400 if quick else 4000, 24, 48, [32, 32], sample=4),
        ),
        "training": lambda: (
            [bench_training(2000 if quick else 8000, 60, b) for b in (32, 256)],
            bench_train_epoch(2000 if quick else 14_352),
        ),
        "batch": bench_batch_accuracy,
        "memory": lambda: bench_memory(100_000 if quick else 1_000_000),
        "backtest": lambda: bench_backtest(quick),
        "backtest_cli": lambda: bench_backtest_cli(quick),
        "ensemble": lambda: bench_ensemble(quick),
        "predict": bench_predict,
        "serve": lambda: bench_serve(100 if quick else 1000),
        "workers": lambda: bench_backtest_workers(quick),
        "multi_worker": lambda: bench_multi_worker(quick),
        "many_series": lambda: bench_many_series(quick),
    }
    for name, run in groups.items():
        if args.only in (None, name):
            run()
    machine = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "date": time.strftime("%Y-%m-%d"),
        "seconds": round(time.perf_counter() - started),
    }
    suffix = ("-quick" if quick else "") + (f"-{args.only}" if args.only else "")
    out = ROOT / "benchmarks" / f"results{suffix}.json"
    out.write_text(json.dumps({"machine": machine, "results": RESULTS}, indent=2) + "\n")
    print("\n| case | tutorial way | ours | ratio | note |\n|---|---|---|---|---|")
    for r in RESULTS:
        tut = "" if r["tutorial"] is None else f"{r['tutorial']:.4g} {r['unit']}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:,.1f}x"
        print(f"| {r['case']} | {tut} | {r['ours']:.4g} {r['unit']} | {ratio} | {r['note']} |")
    print(f"\nmachine: {machine}")


if __name__ == "__main__":
    main()
