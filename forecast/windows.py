"""Chronological splits and vectorised windows (NumPy stride views, no loops over rows).

Vocabulary: an *origin* o is the last observed row of a forecast. Its input window is rows
o-input_steps+1 .. o and its targets are rows o+1 .. o+horizon.

    rows:    0 1 2 3 4 5 6 7 8 9        input_steps=3, horizon=2
    origin o=4:  inputs rows 2,3,4 -> targets rows 5,6

Splits: rows [0, fit_end) train the model and fit the scaler; [fit_end, train_end) validate;
[train_end, rows) are the test rows. Train origins have every target row in the train part,
validation origins every target row in the validation part, and test origins run from
train_end-1 to rows-1-horizon (so every forecast step lands on a test row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from forecast.config import SplitConfig
from forecast.errors import DataError


@dataclass(frozen=True)
class Split:
    rows: int
    fit_end: int
    train_end: int
    input_steps: int
    horizon: int  # steps scored from each test origin
    fit_horizon: int  # steps the model emits per call: 1 for recursive multi-step

    def _origins(self, first: int, last: int) -> np.ndarray:
        first = max(first, self.input_steps - 1)
        return (
            np.arange(first, last + 1, dtype=np.int64) if last >= first else np.empty(0, np.int64)
        )

    @property
    def train_origins(self) -> np.ndarray:
        return self._origins(self.input_steps - 1, self.fit_end - 1 - self.fit_horizon)

    @property
    def val_origins(self) -> np.ndarray:
        if self.train_end == self.fit_end:
            return np.empty(0, np.int64)
        return self._origins(self.fit_end - 1, self.train_end - 1 - self.fit_horizon)

    @property
    def test_origins(self) -> np.ndarray:
        return self._origins(self.train_end - 1, self.rows - 1 - self.horizon)


def row_count(part: float | int, of_rows: int) -> int:
    return int(part) if isinstance(part, int) else int(round(of_rows * part))


def plan_split(
    rows: int,
    split: SplitConfig,
    input_steps: int,
    horizon: int,
    source: str,
    fit_horizon: int | None = None,
) -> Split:
    """Row boundaries for train/validation/test, or a DataError saying how many rows it needs.

    `fit_horizon` is the number of steps the model is trained to emit (default `horizon`).
    """
    fit_horizon = horizon if fit_horizon is None else fit_horizon
    test_rows = row_count(split.test, rows)
    train_end = rows - test_rows
    val_rows = row_count(split.validation, train_end) if train_end > 0 else 0
    fit_end = train_end - val_rows
    plan = Split(rows, fit_end, train_end, input_steps, horizon, fit_horizon)
    problems = []
    if test_rows < horizon:
        problems.append(f"the test split has {test_rows} row(s), fewer than horizon {horizon}")
    if val_rows and val_rows < fit_horizon:
        problems.append(
            f"the validation split has {val_rows} row(s), fewer than horizon {fit_horizon}"
        )
    if fit_end < input_steps + fit_horizon:
        problems.append(
            f"the training part has {max(fit_end, 0)} row(s); one window needs "
            f"input_steps + horizon = {input_steps + fit_horizon}"
        )
    if problems:
        raise DataError(
            f"{source}: {rows} rows is too few: {'; '.join(problems)}. "
            f"Use more data, a smaller window.input_steps/horizon, or smaller split fractions"
        )
    return plan


def input_windows(values: np.ndarray, origins: np.ndarray, input_steps: int) -> np.ndarray:
    """values (rows, F), origins (N,) -> (N, input_steps, F): rows o-input_steps+1 .. o."""
    if len(origins) == 0:
        return np.empty((0, input_steps, values.shape[1]), dtype=values.dtype)
    # windows over both axes keep the (L, F) layout, so the gather is one contiguous copy
    view = sliding_window_view(values, (input_steps, values.shape[1]))  # (rows-L+1, 1, L, F)
    return view[origins - input_steps + 1, 0]


def target_windows(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """values (rows, K), origins (N,) -> (N, horizon, K): rows o+1 .. o+horizon."""
    if len(origins) == 0:
        return np.empty((0, horizon, values.shape[1]), dtype=values.dtype)
    view = sliding_window_view(values, (horizon, values.shape[1]))  # (rows-H+1, 1, H, K)
    return view[origins + 1, 0]
