"""Chronological splits and vectorised windows (NumPy stride views, no loops over rows).

Vocabulary: an *origin* o is the last observed row of a forecast. Its input window is rows
o-input_steps+1 .. o and its targets are rows o+1 .. o+horizon.

    rows:    0 1 2 3 4 5 6 7 8 9        input_steps=3, horizon=2
    origin o=4:  inputs rows 2,3,4 -> targets rows 5,6

Splits: rows [0, val_start) train the model and fit the scaler; [val_start, test_start)
validate; [test_start, rows) are the test rows. Train origins have every target row in the
train part, validation origins every target row in the validation part, and test origins run
from test_start-1 to rows-1-horizon (so every forecast step lands on a test row).

`output_steps` is what one model call emits: the horizon for direct multi-step, 1 for
recursive (the model is fed back its own output to reach the horizon).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from forecast.config.schema import SplitConfig
from forecast.errors import DataError


@dataclass(frozen=True)
class Split:
    rows: int
    val_start: int  # first validation row (= test_start without validation)
    test_start: int  # first test row (= rows when there is no test part)
    input_steps: int
    horizon: int  # steps scored from each test origin
    output_steps: int  # steps one model call emits: 1 for recursive multi-step

    def _origins(self, first: int, last: int) -> np.ndarray:
        first = max(first, self.input_steps - 1)
        return (
            np.arange(first, last + 1, dtype=np.int64) if last >= first else np.empty(0, np.int64)
        )

    @property
    def train_origins(self) -> np.ndarray:
        return self._origins(self.input_steps - 1, self.val_start - 1 - self.output_steps)

    @property
    def val_origins(self) -> np.ndarray:
        if self.test_start == self.val_start:
            return np.empty(0, np.int64)
        return self._origins(self.val_start - 1, self.test_start - 1 - self.output_steps)

    @property
    def test_origins(self) -> np.ndarray:
        return self._origins(self.test_start - 1, self.rows - 1 - self.horizon)


def row_count(part: float | int, of_rows: int) -> int:
    return int(part) if isinstance(part, int) else int(round(of_rows * part))


def plan_split(
    rows: int,
    split: SplitConfig,
    input_steps: int,
    horizon: int,
    source: str,
    output_steps: int | None = None,
) -> Split:
    """Row boundaries for train/validation/test, or a DataError saying how many rows it needs.

    `output_steps` is the number of steps the model is trained to emit (default `horizon`).
    """
    output_steps = horizon if output_steps is None else output_steps
    test_rows = row_count(split.test, rows)
    test_start = rows - test_rows
    val_rows = row_count(split.validation, test_start) if test_start > 0 else 0
    val_start = test_start - val_rows
    plan = Split(rows, val_start, test_start, input_steps, horizon, output_steps)
    problems = []
    if test_rows < horizon:
        problems.append(f"the test split has {test_rows} row(s), fewer than horizon {horizon}")
    if val_rows and val_rows < output_steps:
        problems.append(
            f"the validation split has {val_rows} row(s), fewer than horizon {output_steps}"
        )
    if val_start < input_steps + output_steps:
        problems.append(
            f"the training part has {max(val_start, 0)} row(s); one window needs "
            f"input_steps + horizon = {input_steps + output_steps}"
        )
    if problems:
        raise DataError(
            f"{source}: {rows} rows is too few: {'; '.join(problems)}. "
            f"Use more data, a smaller window.input_steps/horizon, or smaller split fractions"
        )
    return plan


def input_windows(values: np.ndarray, origins: np.ndarray, input_steps: int) -> np.ndarray:
    """values (rows, F), origins (N,) -> (N, input_steps, F): rows o-input_steps+1 .. o."""
    check_origins(origins, len(values), first=input_steps - 1, last=len(values) - 1)
    if len(origins) == 0:
        return np.empty((0, input_steps, values.shape[1]), dtype=values.dtype)
    # windows over both axes keep the (L, F) layout, so the gather is one contiguous copy
    view = sliding_window_view(values, (input_steps, values.shape[1]))  # (rows-L+1, 1, L, F)
    return view[origins - input_steps + 1, 0]


def target_windows(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """values (rows, K), origins (N,) -> (N, horizon, K): rows o+1 .. o+horizon."""
    check_origins(origins, len(values), first=0, last=len(values) - 1 - horizon)
    if len(origins) == 0:
        return np.empty((0, horizon, values.shape[1]), dtype=values.dtype)
    view = sliding_window_view(values, (horizon, values.shape[1]))  # (rows-H+1, 1, H, K)
    return view[origins + 1, 0]


def check_origins(origins: np.ndarray, rows: int, first: int, last: int) -> None:
    """Origins must be integers in [first, last]; NumPy would silently wrap a negative row."""
    origins = np.asarray(origins)
    if origins.ndim != 1 or (len(origins) and not np.issubdtype(origins.dtype, np.integer)):
        raise ValueError(
            f"`origins` must be a 1-D array of row numbers. Received: origins with shape "
            f"{origins.shape} and dtype {origins.dtype}"
        )
    if len(origins) and (origins.min() < first or origins.max() > last):
        bad = origins.min() if origins.min() < first else origins.max()
        raise ValueError(
            f"`origins` must lie in [{first}, {last}] for {rows} rows (a window needs rows "
            f"before and after its origin). Received: origin {int(bad)}"
        )
