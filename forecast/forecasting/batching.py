"""Concurrent forecasts sharing model calls: what `serve` does with requests that arrive
together.

Each request calls `SharedCalls(windows, steps)` from its own thread. A caller that finds
the model idle becomes the runner: it takes every waiting call of the same kind (the same
steps, and the same compiled loop as that call alone would use), runs them as one batch
and hands each caller its rows; callers that arrive meanwhile wait for the next batch. A
lone caller runs at once, so a single client waits no longer than before.

    thread A: windows (1, L, F) --\\
    thread B: windows (1, L, F) ---+-> one model call (3, L, F) -> rows 0 | 1 | 2
    thread C: windows (1, L, F) --/

Each window's forecast does not depend on the others in its batch (the model has no
batch-wide layers), so every caller gets what it would have got alone, to float
rounding. Where the loop is compiled with XLA (recursive forecasts), a batch is padded
to a power of two, so that XLA compiles a few batch shapes rather than one per size.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forecast.forecasting.forecaster import Forecaster
from forecast.forecasting.portable import PortableForecaster

MAX_ROWS = 1024  # windows in one shared call


@dataclass(eq=False)
class _Call:
    windows: np.ndarray  # (n, L, F)
    key: tuple[int, bool]  # (steps, jit)
    result: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class SharedCalls:
    """`forecaster(windows, steps)` for many threads at once, through shared batches."""

    def __init__(self, forecaster: Forecaster | PortableForecaster) -> None:
        self.forecaster = forecaster
        self.calls = 0  # model calls made (for tests and benchmarks)
        self._waiting: list[_Call] = []
        self._busy = False
        self._changed = threading.Condition()

    def __call__(self, windows: np.ndarray, steps: int) -> np.ndarray:
        """windows (n, L, F) scaled -> (n, steps, K) scaled, as forecaster(windows, steps)."""
        mine = _Call(windows, (steps, self.forecaster.jit_for(steps, len(windows))))
        with self._changed:
            self._waiting.append(mine)
        while True:
            with self._changed:
                while not mine.done and self._busy:
                    self._changed.wait()
                if mine.done:
                    return _outcome(mine)
                self._busy = True  # this thread runs the next batch (of its own kind)
                batch = self._take(mine.key)
            try:
                self._run(batch)
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()

    def _take(self, key: tuple[int, bool]) -> list[_Call]:
        """The waiting calls of this kind, oldest first, up to MAX_ROWS windows (always the
        first); the rest stay waiting."""
        batch: list[_Call] = []
        rows = 0
        for call in list(self._waiting):
            if call.key == key and (not batch or rows + len(call.windows) <= MAX_ROWS):
                batch.append(call)
                rows += len(call.windows)
                self._waiting.remove(call)
        return batch

    def _run(self, batch: list[_Call]) -> None:
        steps, jit = batch[0].key
        try:
            windows = np.concatenate([c.windows for c in batch]).astype(np.float32)
            rows = len(windows)
            if jit:  # a few shapes for XLA to compile: powers of two
                padded = 1 << (rows - 1).bit_length()
                windows = np.concatenate([windows, np.repeat(windows[:1], padded - rows, 0)])
            out = self.forecaster(windows, steps, jit=jit)[:rows]
            self.calls += 1
            start = 0
            for call in batch:
                call.result = out[start : start + len(call.windows)]
                start += len(call.windows)
        except BaseException as exc:  # each caller raises it in its own thread
            for call in batch:
                call.error = exc
        finally:
            for call in batch:
                call.done = True


def _outcome(call: _Call) -> Any:
    if call.error is not None:
        raise call.error
    return call.result
