"""Missing values (`data.missing`): refused, dropped, carried forward or interpolated.

`error`, `drop` and `ffill` are applied when the file is read (`handle_missing`; none of
them looks at later rows). `interpolate` leaves the holes in place for `fill_missing`, which
the pipeline calls once the split is known, so a hole is never filled from a later part.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.data.timesteps import time_labels
from forecast.errors import DataError

log = logging.getLogger("forecast")


def handle_missing(values: pd.DataFrame, policy: str, path: Path | str) -> pd.DataFrame:
    holes = values.isna().to_numpy()
    if not holes.any():
        return values
    if policy == "error":
        row, col = np.argwhere(holes)[0]
        raise DataError(
            f"{path}: column '{values.columns[col]}' has a missing value at "
            f"{time_labels(values.index[[row]])[0]}; "
            "fill it, or set data.missing to drop, ffill or interpolate"
        )
    if policy == "drop":
        cleaned = values.dropna()
    elif policy == "ffill":
        cleaned = values.ffill().dropna()  # leading gaps have nothing to carry forward
    else:
        cleaned = values  # interpolate: filled part by part by fill_missing
        empty = [c for c in values.columns if values[c].isna().all()]
        if empty:
            raise DataError(f"{path}: column '{empty[0]}' has no values; choose another column")
    log.warning(
        "%s: %d missing value(s) handled by data.missing=%s (%d rows left)",
        path,
        int(holes.sum()),
        policy,
        len(cleaned),
    )
    return cleaned


def fill_missing(values: np.ndarray, part_ends: Sequence[int]) -> np.ndarray:
    """Fill the holes `missing: interpolate` left, never from a later part.

    values (rows, C) with NaN holes; `part_ends` the row where each part ends (e.g. where the
    validation rows start, where the test rows start, rows). The rows of a part are filled by
    linear interpolation over the rows up to the part's end only; a hole after a part's last
    value carries that value forward. Holes before a column's first value take it.
    """
    if not np.isnan(values).any():
        return values
    filled = values.copy()
    start = 0
    for end in sorted(set(part_ends)):
        if end <= start:
            continue
        known = pd.DataFrame(values[:end])
        part = known.interpolate(method="linear", limit_direction="forward").ffill().bfill()
        filled[start:end] = part.to_numpy()[start:end]
        start = end
    return filled
