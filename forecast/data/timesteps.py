"""The time axis: frequency, season length, future time stamps, and how times are written.

An index is a DatetimeIndex (a parsed time column), an integer index (a step counter such as
a year) or a RangeIndex (no time column: rows are steps 0..n-1).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.errors import DataError

log = logging.getLogger("forecast")


def parse_times(column: pd.Series, source: object = None, mixed_format: bool = False) -> pd.Series:
    """Cells -> naive datetime64, NaT where a cell is no date/time. The one place dates are
    parsed.

    Times written with a UTC offset become UTC. A column whose offsets differ (+00:00 and
    +01:00 around a daylight-saving change, say) is converted to UTC as well; with `source`
    (the file as messages name it), a warning says so, naming the column. `mixed_format`
    parses each cell on its own (for guessing which column holds dates); otherwise the
    format is inferred from the first cells, as pandas does.
    """
    given = "mixed" if mixed_format else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns when it guesses a format per element
        try:
            parsed = pd.to_datetime(column, errors="coerce", format=given)
            mixed_offsets = parsed.dtype == object  # pandas 2 keeps each cell's own offset
        except ValueError:  # pandas 3 refuses mixed offsets unless asked for UTC
            mixed_offsets = True
        if mixed_offsets:
            parsed = pd.to_datetime(column, errors="coerce", format=given, utc=True)
    if mixed_offsets and source is not None:
        log.warning(
            "%s: column '%s' mixes UTC offsets; its times are converted to UTC",
            source,
            column.name,
        )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(None)
    return parsed


def time_labels(times: pd.Index) -> np.ndarray:
    """How every file writes times: ISO dates (with the time of day only when some time in
    `times` has one), integers for steps. (N,) object array."""
    if isinstance(times, pd.DatetimeIndex):
        dates_only = bool((times.normalize() == times).all())
        return np.asarray(times.strftime("%Y-%m-%d" if dates_only else "%Y-%m-%dT%H:%M:%S"))
    return np.asarray(times, dtype=np.int64).astype(object)  # Python ints, JSON-ready


def future_index(index: pd.Index, steps: int) -> pd.Index:
    """The `steps` time stamps after `index`, continuing its frequency.

    Dates: the inferred pandas frequency; trading days (no weekend rows) continue as
    business days; otherwise the most common gap. Integer steps continue by their usual
    increment (2008 -> 2009, 2010, ...).
    """
    if isinstance(index, pd.DatetimeIndex):
        offset = date_offset(index)
        try:
            dates = pd.date_range(index[-1], periods=steps + 1, freq=offset)[1:]
        except (pd.errors.OutOfBoundsDatetime, OverflowError):
            raise DataError(
                f"--horizon {steps}: the dates would run past what pandas can hold (year "
                "2262); ask for fewer steps"
            ) from None
        return pd.DatetimeIndex(dates, name=index.name)
    values = np.asarray(index, dtype=np.int64)
    step = int(pd.Series(np.diff(values)).mode().iloc[0]) if len(values) > 1 else 1
    return pd.Index(values[-1] + step * np.arange(1, steps + 1), name=index.name or "step")


def date_offset(index: pd.DatetimeIndex) -> pd.offsets.BaseOffset | pd.Timedelta:
    """The step between the last 200 dates: business days for trading days, else the
    frequency pandas infers, else the most common gap."""
    tail = index[-min(len(index), 200) :]
    if _trading_days(tail):
        return pd.offsets.BDay()
    if len(tail) >= 3:
        freq = pd.infer_freq(tail)
        if freq is not None:
            return pd.tseries.frequencies.to_offset(freq)
    if len(tail) < 2:
        return pd.Timedelta(days=1)
    return pd.Timedelta(pd.Series(np.diff(_nanoseconds(tail))).mode().iloc[0], unit="ns")


def _trading_days(tail: pd.DatetimeIndex) -> bool:
    """No Saturday or Sunday and a median gap of one day (holidays allowed, any time of
    day): stock data. Checked before pandas' inference, which calls a Mon-Fri week daily and
    gives up at the first holiday."""
    if len(tail) < 2 or (tail.dayofweek >= 5).any():
        return False
    day = 86_400_000_000_000
    return bool(0.5 * day < np.median(np.diff(_nanoseconds(tail))) < 1.5 * day)


_SEASON_BY_GAP = {
    pd.Timedelta(days=1): 7,
    pd.Timedelta(weeks=1): 52,
    pd.Timedelta(hours=1): 24,
    pd.Timedelta(minutes=30): 48,
}
_SEASON_BY_NAME = {
    "D": 7,
    "B": 5,
    "C": 5,
    "W": 52,
    "MS": 12,
    "ME": 12,
    "M": 12,
    "BMS": 12,
    "BME": 12,
    "QS": 4,
    "QE": 4,
    "Q": 4,
    "BQS": 4,
    "BQE": 4,
    "h": 24,
    "H": 24,
}


def season_length(index: pd.Index) -> int:
    """Season length guessed from the time index: daily 7 (trading days 5), weekly 52,
    monthly 12, quarterly 4, hourly 24, half-hourly 48, otherwise 1."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 3:
        return 1
    offset = date_offset(index)
    if isinstance(offset, pd.Timedelta):
        return _SEASON_BY_GAP.get(offset, 1)
    name = offset.name if hasattr(offset, "name") else ""
    prefix = name.split("-")[0].rstrip("0123456789")
    if prefix in ("min", "T") and getattr(offset, "n", 1) == 30:
        return 48
    return _SEASON_BY_NAME.get(prefix, 1)


def warn_irregular_gaps(index: pd.Index, path: Path | str) -> None:
    """Windows assume evenly spaced rows; say so when the dates are not (holidays in
    trading-day data are normal and not reported)."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 3:
        return
    if pd.infer_freq(index) is not None or not isinstance(date_offset(index), pd.Timedelta):
        return
    gaps = np.diff(_nanoseconds(index))
    usual = np.median(gaps)
    wide = gaps > 1.5 * usual
    if wide.any():
        at = int(np.argmax(gaps))
        first, last = time_labels(index[[at, at + 1]])
        log.warning(
            "%s: %d irregular gap(s) in the time column (the largest: %s to %s, usual step %s); "
            "windows treat rows as evenly spaced, so resample or fill the gaps if they matter",
            path,
            int(wide.sum()),
            first,
            last,
            pd.Timedelta(int(usual), unit="ns"),
        )


def _nanoseconds(index: pd.DatetimeIndex) -> np.ndarray:
    """Integer nanoseconds whatever the index's resolution (pandas 3 parses to 's' or 'us')."""
    return index.as_unit("ns").asi8
