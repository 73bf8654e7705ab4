"""SharedCalls: forecasts asked from many threads at once share batched model calls, and
each caller gets its own rows."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from forecast.forecasting.batching import SharedCalls


class Counting:
    """A stand-in forecaster whose forecast of a window is its sum at every step (easy to
    check), that takes 50 ms a call and records each call's rows; recursive forecasts
    (steps > 2) use XLA, as the real Forecaster decides."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int, bool]] = []  # (rows, steps, jit)
        self.running = threading.Lock()

    def jit_for(self, steps: int, origins: int) -> bool:
        return steps > 2

    def __call__(self, windows: np.ndarray, steps: int, jit: bool | None = None) -> np.ndarray:
        assert self.running.acquire(blocking=False), "two model calls at once"
        try:
            self.batches.append((len(windows), steps, bool(jit)))
            time.sleep(0.05)
            sums = windows.sum(axis=(1, 2))[:, None, None]  # (n, 1, 1)
            return np.broadcast_to(sums, (len(windows), steps, 1)).copy()
        finally:
            self.running.release()


def test_a_lone_caller_runs_at_once_and_gets_its_forecast() -> None:
    model = Counting()
    shared = SharedCalls(model)  # type: ignore[arg-type]
    window = np.full((1, 4, 1), 2.0, dtype=np.float32)
    np.testing.assert_array_equal(shared(window, 2), [[[8.0], [8.0]]])
    assert model.batches == [(1, 2, False)]


def test_callers_at_once_share_calls_and_each_gets_its_own_rows() -> None:
    model = Counting()
    shared = SharedCalls(model)  # type: ignore[arg-type]
    # 40 callers: windows of different values, 1 or 2 windows each, 2 steps (direct) or 5
    # (recursive, a different compiled loop: never in the same call as a 2-step one)
    asks = [
        (np.full((1 + i % 2, 3, 1), float(i), dtype=np.float32), 2 if i % 3 else 5)
        for i in range(40)
    ]
    with ThreadPoolExecutor(max_workers=40) as pool:
        got = list(pool.map(lambda ask: shared(*ask), asks))
    for (windows, steps), out in zip(asks, got, strict=True):
        assert out.shape == (len(windows), steps, 1)
        np.testing.assert_array_equal(out, windows.sum() / len(windows))  # its own rows
    assert len(model.batches) < 40  # shared: fewer model calls than callers
    assert sum(rows for rows, _, jit in model.batches if not jit) == sum(
        len(w) for w, steps in asks if steps == 2
    )
    for rows, steps, jit in model.batches:
        assert jit == (steps == 5)
        if jit:  # padded to a power of two for XLA; the padding rows are dropped
            assert rows & (rows - 1) == 0


def test_an_error_in_a_shared_call_reaches_each_of_its_callers() -> None:
    class Failing(Counting):
        def __call__(self, windows, steps, jit=None):
            time.sleep(0.05)
            raise ValueError("the model failed")

    shared = SharedCalls(Failing())  # type: ignore[arg-type]
    window = np.zeros((1, 3, 1), dtype=np.float32)
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(shared, window, 2) for _ in range(8)]
    for future in futures:
        with pytest.raises(ValueError, match="the model failed"):
            future.result()
    np.testing.assert_array_equal(SharedCalls(Counting())(window + 1, 2), [[[3.0], [3.0]]])  # type: ignore[arg-type]
