"""Calendar features known in advance (`data.calendar`): month, weekday, hour, ...

Each is a position in its cycle, given to the model as a sine and a cosine (December sits
next to January). Row t carries the calendar of row t+1, the step it helps forecast, so a
window's last row holds the calendar of the first forecast step; `predict` computes it for
that future row from the data's frequency. They are inputs only: never transformed, never
targets, never normalised per window.

    data.calendar: [month]  ->  columns calendar.month_sin, calendar.month_cos
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.config.schema import CALENDAR_PREFIX, calendar_columns
from forecast.data.timesteps import _nanoseconds, future_index
from forecast.errors import DataError


def is_calendar(column: str) -> bool:
    return column.startswith(CALENDAR_PREFIX)


def _position(index: pd.DatetimeIndex, name: str) -> pd.Index | np.ndarray:
    """Where each time stamp lies in the cycle of `name`, in [0, 1)."""
    if name == "minute":
        return (index.minute + index.second / 60) / 60
    if name == "hour":
        return (index.hour + index.minute / 60) / 24
    if name == "weekday":
        return index.dayofweek / 7
    if name == "day":
        return (index.day - 1) / index.days_in_month
    if name == "dayofyear":
        return (index.dayofyear - 1) / 365.25
    if name == "week":
        return (index.isocalendar().week.to_numpy() - 1) / 52.18
    if name == "month":
        return (index.month - 1) / 12
    if name == "quarter":
        return (index.quarter - 1) / 4
    raise ValueError(f"unknown calendar feature {name!r}")


def auto(index: pd.Index) -> list[str]:
    """The calendar features that vary at the data's frequency: the cycles a step is a small
    part of (minutes and hours: hour and weekday; days: weekday and day of year; weeks: week
    of year; months: month; quarters: quarter; years: none)."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        return []
    gap = pd.Series(np.diff(_nanoseconds(index))).median() / 1e9 / 3600  # hours
    if gap < 23:
        return ["hour", "weekday"]
    if gap < 6 * 24:
        return ["weekday", "dayofyear"]
    if gap < 27 * 24:
        return ["week"]
    if gap < 80 * 24:
        return ["month"]
    if gap < 300 * 24:
        return ["quarter"]
    return []


def encode(index: pd.Index, names: list[str], source: str) -> pd.DataFrame:
    """(rows, 2 x names): row t holds the calendar of the row after it (the last row's next
    time stamp continues the data's frequency)."""
    if not names:
        return pd.DataFrame(index=index)
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(
            f"{source}: data.calendar needs a time_column of dates (this one holds step "
            "numbers); set time_column or remove data.calendar"
        )
    following = index[1:].append(future_index(index, 1)) if len(index) else index
    out = {}
    for name in names:
        angle = 2 * np.pi * np.asarray(_position(pd.DatetimeIndex(following), name), dtype=float)
        sin, cos = calendar_columns([name])
        out[sin], out[cos] = np.sin(angle), np.cos(angle)
    return pd.DataFrame(out, index=index)
