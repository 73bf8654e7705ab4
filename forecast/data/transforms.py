"""Transforms applied before scaling and inverted after forecasting: diff, log, log_diff.

A difference consumes the first row (`transform_lag` = 1): transformed row i belongs to
original row i + lag. Inverting sums the forecast differences onto the original value at
each forecast's origin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.data.calendar import is_calendar
from forecast.data.timesteps import time_labels
from forecast.errors import DataError


def transform_lag(kind: str) -> int:
    """Rows a transform consumes at the start: 1 for differences, else 0."""
    return 1 if kind in ("diff", "log_diff") else 0


def apply_transform(
    values: np.ndarray, kind: str, columns: list[str], index: pd.Index, source: str
) -> np.ndarray:
    """values (rows, C) -> (rows - lag, C). Row i of the result belongs to original row i + lag.
    Calendar columns (forecast.data.calendar) pass through untransformed."""
    known = np.array([is_calendar(c) for c in columns], dtype=bool)
    if known.any() and kind != "none":
        out = apply_transform(
            values[:, ~known],
            kind,
            [c for c, k in zip(columns, known, strict=True) if not k],
            index,
            source,
        )
        lag = transform_lag(kind)
        whole = np.empty((len(values) - lag, len(columns)))
        whole[:, ~known], whole[:, known] = out, values[lag:, known]
        return whole
    if kind in ("log", "log_diff"):
        bad = values <= 0
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataError(
                f"{source}: column '{columns[col]}' at {time_labels(index[[row]])[0]} is "
                f"{values[row, col]:g}; "
                f"data.transform {kind} needs values > 0; use transform: diff or none"
            )
        values = np.log(values)
    if kind in ("diff", "log_diff"):
        values = np.diff(values, axis=0)
    return values


def invert_transform(
    predicted: np.ndarray, last_levels: np.ndarray | None, kind: str
) -> np.ndarray:
    """Forecasts in transformed units (N, H, K) -> original units.

    `last_levels` (N, K) are the original values at each forecast's origin: differences are
    summed onto them step by step.
    """
    if kind in ("diff", "log_diff"):
        assert last_levels is not None, "differences are summed onto the origins' levels"
        base = np.log(last_levels) if kind == "log_diff" else last_levels
        predicted = base[:, None, :] + np.cumsum(predicted, axis=1)
    if kind in ("log", "log_diff"):
        predicted = np.exp(predicted)
    return predicted
