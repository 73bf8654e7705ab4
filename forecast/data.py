"""CSV in, clean numeric frame out: encodings, delimiter, time parsing, sorting, missing values.

Every problem becomes a DataError naming the file, the column and (where there is one) the
first bad row as the spreadsheet shows it (header = row 1).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.config import DataConfig
from forecast.errors import DataError

log = logging.getLogger("forecast")

AUTO_ENCODINGS = ("utf-8-sig", "gb18030")
THOUSANDS = r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?"  # 1,234,567.89 (as Excel exports it)


@dataclass
class Series:
    """The columns a config needs, in order (features, then targets that are not features)."""

    frame: (
        pd.DataFrame
    )  # (rows, columns) float64, index: DatetimeIndex, integer steps or RangeIndex
    path: Path
    sha256: str
    time_column: str | None

    @property
    def values(self) -> np.ndarray:
        return self.frame.to_numpy(dtype=np.float64)  # (rows, columns)

    @property
    def index(self) -> pd.Index:
        return self.frame.index


def read_series(
    config: DataConfig, path: str | Path | None = None, require_targets: bool = True
) -> Series:
    """Read `path` (default `config.path`) and return the config's columns, cleaned.

    `require_targets=False` is for forecasting, where only the features are needed.
    """
    path = Path(path if path is not None else config.path)
    frame, raw = read_table(path, config.encoding)
    needed = config.columns if require_targets else list(config.features)
    _check_columns(frame, needed, config.time_column, path)
    index = _time_index(frame, config.time_column, path)
    values = pd.DataFrame({col: _numeric(frame[col], col, path) for col in needed}, index=index)
    values = _sorted_unique(values, config.time_column, path)
    values = _handle_missing(values, config.missing, path)
    _warn_irregular_gaps(values.index, path)
    return Series(
        frame=values,
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        time_column=config.time_column,
    )


def read_table(path: Path, encoding: str = "auto") -> tuple[pd.DataFrame, bytes]:
    """The raw table of a CSV (encoding and delimiter detected) and the file's bytes."""
    raw = _read_bytes(path)
    return _parse_csv(_decode(raw, path, encoding), path), raw


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DataError(
            f"{path}: data file not found; check the path (data.path in a config is relative "
            "to the config file)"
        )
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a CSV file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    if not raw.strip():
        raise DataError(f"{path}: the file is empty; it needs a header row and data rows")
    return raw


def _decode(raw: bytes, path: Path, encoding: str) -> str:
    codecs = AUTO_ENCODINGS if encoding == "auto" else (encoding,)
    for codec in codecs:
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        except LookupError:
            raise DataError(
                f"{path}: unknown encoding '{encoding}' in data.encoding; "
                "use auto, utf-8 or gb18030"
            ) from None
        if "\x00" in text:
            break  # a binary file that happens to decode
        return text
    tried = " or ".join(codecs)
    raise DataError(
        f"{path}: cannot be read as text ({tried}); is it a CSV? "
        "Save it as CSV (UTF-8) or set data.encoding"
    )


def _parse_csv(text: str, path: Path) -> pd.DataFrame:
    sample = text[:20_000]
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable CSV ({first})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DataError(f"{path}: has a header but no data rows")
    return frame


def _check_columns(
    frame: pd.DataFrame, needed: list[str], time_column: str | None, path: Path
) -> None:
    wanted = needed + ([time_column] if time_column else [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        which = "time_column" if missing[0] == time_column else "features/targets"
        raise DataError(
            f"{path}: no column '{missing[0]}' (data.{which}); "
            f"the columns are: {', '.join(frame.columns)}"
        )


def _time_index(frame: pd.DataFrame, time_column: str | None, path: Path) -> pd.Index:
    if time_column is None:
        return pd.RangeIndex(len(frame), name="step")
    column = frame[time_column]
    if pd.api.types.is_integer_dtype(column):
        return pd.Index(column.to_numpy(dtype=np.int64), name=time_column)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns when it guesses a format per element
        parsed = pd.to_datetime(column, errors="coerce")
    bad = parsed.isna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(
            f"{path}: column '{time_column}' row {row + 2}: {column.iloc[row]!r} is not a "
            "date/time; fix the value or set data.time_column to the right column"
        )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(None)
    return pd.DatetimeIndex(parsed, name=time_column)


def _numeric(column: pd.Series, name: str, path: Path) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column) or not (
        pd.api.types.is_numeric_dtype(column)
        or pd.api.types.is_object_dtype(column)
        or pd.api.types.is_string_dtype(column)
    ):
        raise DataError(f"{path}: column '{name}' is not numeric ({column.dtype})")
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        text = column.astype("string").str.strip()
        grouped = text.str.fullmatch(THOUSANDS).fillna(False).astype(bool)
        text = text.where(~grouped, text.str.replace(",", "", regex=False))  # "1,234.5"
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(values) & column.notna().to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{path}: column '{name}' row {row + 2}: {column.iloc[row]!r} is not a number; "
                "fix the cell or choose numeric columns in data.features/targets"
            )
    infinite = np.isinf(values)
    if infinite.any():
        row = int(np.argmax(infinite))
        raise DataError(f"{path}: column '{name}' row {row + 2}: infinite value; fix the cell")
    return values


def _sorted_unique(values: pd.DataFrame, time_column: str | None, path: Path) -> pd.DataFrame:
    if time_column is None:
        return values
    duplicated = values.index.duplicated()
    if duplicated.any():
        row = int(np.argmax(duplicated))
        raise DataError(
            f"{path}: column '{time_column}' row {row + 2}: duplicate time {values.index[row]}; "
            "remove or aggregate duplicate rows"
        )
    if not values.index.is_monotonic_increasing:
        log.warning("%s: rows are not in time order; sorted by '%s'", path, time_column)
        values = values.sort_index(kind="stable")
    return values


def _warn_irregular_gaps(index: pd.Index, path: Path) -> None:
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
        log.warning(
            "%s: %d irregular gap(s) in the time column (the largest: %s to %s, usual step %s); "
            "windows treat rows as evenly spaced, so resample or fill the gaps if they matter",
            path,
            int(wide.sum()),
            index[at].date() if index[at] == index[at].normalize() else index[at],
            index[at + 1].date() if index[at + 1] == index[at + 1].normalize() else index[at + 1],
            pd.Timedelta(int(usual), unit="ns"),
        )


def _handle_missing(values: pd.DataFrame, policy: str, path: Path) -> pd.DataFrame:
    holes = values.isna().to_numpy()
    if not holes.any():
        return values
    if policy == "error":
        row, col = np.argwhere(holes)[0]
        raise DataError(
            f"{path}: column '{values.columns[col]}' has a missing value at {values.index[row]}; "
            "fill it, or set data.missing to drop, ffill or interpolate"
        )
    if policy == "drop":
        cleaned = values.dropna()
    elif policy == "ffill":
        cleaned = values.ffill().dropna()  # leading gaps have nothing to carry forward
    else:
        cleaned = values.interpolate(method="linear", limit_direction="both")
    log.warning(
        "%s: %d missing value(s) handled by data.missing=%s (%d rows left)",
        path,
        int(holes.sum()),
        policy,
        len(cleaned),
    )
    return cleaned


# --------------------------------------------------------------------------- time steps


def future_index(index: pd.Index, steps: int) -> pd.Index:
    """The `steps` time stamps after `index`, continuing its frequency.

    Dates: the inferred pandas frequency; trading days (no weekend rows) continue as
    business days; otherwise the most common gap. Integer steps continue by their usual
    increment (2008 -> 2009, 2010, ...).
    """
    if isinstance(index, pd.DatetimeIndex):
        offset = date_offset(index)
        return pd.DatetimeIndex(
            pd.date_range(index[-1], periods=steps + 1, freq=offset)[1:], name=index.name
        )
    values = np.asarray(index, dtype=np.int64)
    step = int(pd.Series(np.diff(values)).mode().iloc[0]) if len(values) > 1 else 1
    return pd.Index(values[-1] + step * np.arange(1, steps + 1), name=index.name or "step")


def date_offset(index: pd.DatetimeIndex) -> pd.DateOffset | pd.Timedelta:
    tail = index[-min(len(index), 200) :]
    if len(tail) >= 3:
        freq = pd.infer_freq(tail)
        if freq is not None:
            return pd.tseries.frequencies.to_offset(freq)
    if len(tail) >= 2 and not (tail.dayofweek >= 5).any() and (tail.normalize() == tail).all():
        gaps = np.diff(_nanoseconds(tail)) // 86_400_000_000_000
        if len(gaps) and np.median(gaps) <= 1:
            return pd.offsets.BDay()
    if len(tail) < 2:
        return pd.Timedelta(days=1)
    return pd.Timedelta(pd.Series(np.diff(_nanoseconds(tail))).mode().iloc[0], unit="ns")


def season_length(index: pd.Index) -> int:
    """Season length guessed from the time index: daily 7 (trading days 5), weekly 52,
    monthly 12, quarterly 4, hourly 24, half-hourly 48, otherwise 1."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 3:
        return 1
    offset = date_offset(index)
    if isinstance(offset, pd.Timedelta):
        by_gap = {
            pd.Timedelta(days=1): 7,
            pd.Timedelta(weeks=1): 52,
            pd.Timedelta(hours=1): 24,
            pd.Timedelta(minutes=30): 48,
        }
        return by_gap.get(offset, 1)
    name = offset.name if hasattr(offset, "name") else ""
    prefix = name.split("-")[0].rstrip("0123456789")
    by_name = {
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
    if prefix in ("min", "T") and getattr(offset, "n", 1) == 30:
        return 48
    return by_name.get(prefix, 1)


# --------------------------------------------------------------------------- transforms


def transform_lag(kind: str) -> int:
    """Rows a transform consumes at the start: 1 for differences, else 0."""
    return 1 if kind in ("diff", "log_diff") else 0


def apply_transform(
    values: np.ndarray, kind: str, columns: list[str], index: pd.Index, source: str
) -> np.ndarray:
    """values (rows, C) -> (rows - lag, C). Row i of the result belongs to original row i + lag."""
    if kind in ("log", "log_diff"):
        bad = values <= 0
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataError(
                f"{source}: column '{columns[col]}' at {index[row]} is {values[row, col]:g}; "
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
        base = np.log(last_levels) if kind == "log_diff" else last_levels
        predicted = base[:, None, :] + np.cumsum(predicted, axis=1)
    if kind in ("log", "log_diff"):
        predicted = np.exp(predicted)
    return predicted


def _nanoseconds(index: pd.DatetimeIndex) -> np.ndarray:
    """Integer nanoseconds whatever the index's resolution (pandas 3 parses to 's' or 'us')."""
    return index.as_unit("ns").asi8
