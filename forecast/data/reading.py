"""A CSV in, the config's clean numeric columns out: a `Series`, or for a long table
(data.id_column) a `Panel` of them.

    read_series(config.data) -> Series(frame=(rows, columns) float64 indexed by time, ...)

The file's bytes, encoding and delimiter are `forecast.data.csvfile`'s; number cells
`forecast.data.numbers`'; missing values `forecast.data.missing`'. Here: the columns checked
(a misspelt one named with the closest), the time index parsed, rows sorted by time,
duplicates refused, calendar inputs added. Every problem becomes a DataError naming the file,
the column and (where there is one) the first bad row as the spreadsheet shows it (header =
row 1).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.config.schema import DataConfig
from forecast.data.calendar import auto, encode
from forecast.data.csvfile import file_encoding, parse_table, read_table
from forecast.data.missing import handle_missing
from forecast.data.numbers import NumberFormat
from forecast.data.timesteps import parse_times, time_labels, warn_irregular_gaps
from forecast.errors import DataError, ForecastError

log = logging.getLogger("forecast")

SeriesId = str | None  # a long table's id; None: the one series of a CSV (data/panel.py)


@dataclass
class Series:
    """The columns a config needs, in order (features, then targets that are not features)."""

    frame: pd.DataFrame  # (rows, columns) float64; index: DatetimeIndex, int steps or RangeIndex
    path: Path
    sha256: str
    time_column: str | None
    encoding: str = "utf-8"  # what the file was written in: utf-8, utf-8-sig, gb18030, ...
    series_id: str | None = None  # the series' id in a long table (data.id_column)
    calendar: list[str] = field(default_factory=list)  # data.calendar, `auto` resolved

    @property
    def source(self) -> str:
        """How messages name it: the file, and the series of a long table."""
        return (
            str(self.path) if self.series_id is None else f"{self.path} (series {self.series_id})"
        )

    @property
    def values(self) -> np.ndarray:
        return self.frame.to_numpy(dtype=np.float64)  # (rows, columns), NaN where holes remain

    @property
    def index(self) -> pd.Index:
        return self.frame.index


def read_series(
    config: DataConfig,
    path: str | Path | None = None,
    require_targets: bool = True,
    raw: bytes | None = None,
) -> Series:
    """Read `path` (default `config.path`) and return the config's columns, cleaned.

    `require_targets=False` is for forecasting, where only the features are needed. With
    `raw`, those bytes are the CSV (a request body, say) and `path` only names them in
    messages.
    """
    frame, raw, path = _raw_frame(config, path, raw)
    needed = config.read_columns if require_targets else list(config.features)
    values = _values(frame, config, needed, path)
    return _finish(values, config, path, raw)


def _raw_frame(
    config: DataConfig, path: str | Path | None, raw: bytes | None
) -> tuple[pd.DataFrame, bytes, Path]:
    named_by = "--csv" if path is not None else "data.path"  # a path given, or the config's
    path = Path(path if path is not None else config.path)
    if raw is None:
        frame, raw = read_table(path, config.encoding, config.decimal, config.thousands, named_by)
    else:
        if not raw.strip():
            raise DataError(f"{path}: is empty; it needs a header row and data rows")
        frame = parse_table(raw, path, config.encoding, config.decimal, config.thousands)
    return frame, raw, path


def _values(frame: pd.DataFrame, config: DataConfig, needed: list[str], path: Path) -> pd.DataFrame:
    """The needed columns as float64, indexed by time (rows in file order)."""
    _check_columns(frame, needed, config.time_column, path)
    index = _time_index(frame, config.time_column, path)
    numbers = NumberFormat(config.decimal, config.thousands, frame.attrs["delimiter"])
    return pd.DataFrame({col: numbers.parse(frame[col], col, path) for col in needed}, index=index)


def _finish(
    values: pd.DataFrame,
    config: DataConfig,
    path: Path,
    raw: bytes,
    series_id: str | None = None,
    sha256: str | None = None,
) -> Series:
    """Sorted by time, duplicates refused, missing values handled: the Series."""
    source = path if series_id is None else f"{path} (series {series_id})"
    values = _sorted_unique(values, config.time_column, source, quiet=series_id is not None)
    values = handle_missing(values, config.missing, source)
    warn_irregular_gaps(values.index, source)
    calendar = list(config.calendar) if config.calendar != "auto" else auto(values.index)
    if calendar:  # known in advance: computed from the time stamps, after the CSV's columns
        values = pd.concat([values, encode(values.index, calendar, str(source))], axis=1)
    return Series(
        frame=values,
        path=path,
        sha256=sha256 or hashlib.sha256(raw).hexdigest(),
        time_column=config.time_column,
        encoding=file_encoding(raw, config.encoding),
        series_id=series_id,
        calendar=calendar,
    )


@dataclass
class Panel:
    """A long table (data.id_column): one Series per id, each sorted by time on its own."""

    members: dict[SeriesId, Series]  # id -> its series, in the order ids first appear (None:
    # the one series of a CSV without data.id_column, as forecast.data.panel.as_panel makes it)
    path: Path
    sha256: str
    id_column: str
    encoding: str = "utf-8"

    @property
    def ids(self) -> list[SeriesId]:
        return list(self.members)


def read_panel(
    config: DataConfig,
    path: str | Path | None = None,
    require_targets: bool = True,
    raw: bytes | None = None,
    only: Sequence[str] | None = None,
) -> Panel:
    """Read a long table: rows of every series in any order, `config.id_column` naming each
    row's series. Each series is sorted by time, checked for duplicates and its missing values
    handled on its own. `only`: these ids, in this order (an id not in the file is an error)."""
    assert config.id_column is not None, "read_panel needs data.id_column"
    frame, raw, path = _raw_frame(config, path, raw)
    id_column = config.id_column
    message = missing_column([id_column], list(frame.columns), None)
    if message:
        raise DataError(f"{path}: {message.replace('data.features/targets', 'data.id_column')}")
    column = frame[id_column]
    blank = column.isna() | (column.astype("string").str.strip() == "")
    if blank.any():
        row = int(np.argmax(blank.to_numpy()))
        raise DataError(
            f"{path}: column '{id_column}' row {row + 2} is empty; every row needs its "
            "series id (data.id_column)"
        )
    ids = column.astype("string").str.strip().to_numpy(dtype=object)
    needed = config.read_columns if require_targets else list(config.features)
    values = _values(frame, config, needed, path)
    digest = hashlib.sha256(raw).hexdigest()
    order = list(dict.fromkeys(ids))
    if only is not None:
        unknown = [i for i in only if i not in set(order)]
        if unknown:
            held = some_ids(order, quote="'")
            raise DataError(
                f"{path}: no series '{unknown[0]}' in column '{id_column}'; it holds {held}"
            )
        order = list(dict.fromkeys(only))
    positions = pd.Series(np.arange(len(ids))).groupby(ids, sort=False).indices
    if config.calendar == "auto":  # one set of calendar inputs for the table: the longest's
        longest = max(order, key=lambda i: len(positions[i]))
        dates = values.index[positions[longest]]
        config = config.model_copy(update={"calendar": auto(dates.sort_values())})
    members = {
        i: _finish(values.iloc[positions[i]], config, path, raw, series_id=i, sha256=digest)
        for i in order
    }
    return Panel(members, path, digest, id_column, file_encoding(raw, config.encoding))


def some_ids(ids: Sequence[SeriesId], shown: int = 5, quote: str = "") -> str:
    """'A, B, C and 7 more': the first `shown` ids of a long list, for one-line messages."""
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(f"{quote}{i}{quote}" for i in ids[:shown]) + more


def _check_columns(
    frame: pd.DataFrame, needed: list[str], time_column: str | None, path: Path
) -> None:
    wanted = needed + ([time_column] if time_column else [])
    message = missing_column(wanted, list(frame.columns), time_column)
    if message:
        raise DataError(f"{path}: {message}")


def missing_column(wanted: list[str], columns: list[str], time_column: str | None) -> str:
    """'' if every wanted column is there; else what is missing, the closest name (a typo
    such as 收盤 for 收盘, Close for close) and the columns there are."""
    missing = [c for c in wanted if c not in columns]
    if not missing:
        return ""
    which = "time_column" if missing[0] == time_column else "features/targets"
    folded = {c.casefold(): c for c in columns}
    close = [folded[missing[0].casefold()]] if missing[0].casefold() in folded else []
    close = close or difflib.get_close_matches(missing[0], columns, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"no column '{missing[0]}' (data.{which}); the columns are: {', '.join(columns)}{hint}"


def _time_index(frame: pd.DataFrame, time_column: str | None, path: Path) -> pd.Index:
    if time_column is None:
        return pd.RangeIndex(len(frame), name="step")
    column = frame[time_column]
    if pd.api.types.is_integer_dtype(column):
        return pd.Index(column.to_numpy(dtype=np.int64), name=time_column)
    parsed = parse_times(column, path)
    bad = parsed.isna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(
            f"{path}: column '{time_column}' row {row + 2}: {column.iloc[row]!r} is not a "
            "date/time; fix the value or set data.time_column to the right column"
        )
    return pd.DatetimeIndex(parsed, name=time_column)


def _sorted_unique(
    values: pd.DataFrame, time_column: str | None, path: Path | str, quiet: bool = False
) -> pd.DataFrame:
    if time_column is None:
        return values
    duplicated = values.index.duplicated()
    if duplicated.any():
        row = int(np.argmax(duplicated))
        where = "" if quiet else f" row {row + 2}"  # a long table's rows are not in file order
        raise DataError(
            f"{path}: column '{time_column}'{where}: duplicate time "
            f"{time_labels(values.index[[row]])[0]}; "
            "remove or aggregate duplicate rows"
        )
    if not values.index.is_monotonic_increasing:
        if quiet:  # a long table's rows are in any order by design
            return values.sort_index(kind="stable")
        log.warning("%s: rows are not in time order; sorted by '%s'", path, time_column)
        values = values.sort_index(kind="stable")
    return values


def column_typo(data: Any) -> str | None:
    """'<csv>: no column ...; did you mean ...?' for a features/targets name the CSV's
    header lacks, or None (also when the CSV cannot be read: the config error stands)."""
    if not isinstance(data, dict) or not isinstance(data.get("path"), str):
        return None
    names = [
        c
        for key in ("features", "targets")
        if isinstance(listed := data.get(key), list)
        for c in listed
        if isinstance(c, str)
    ]
    try:
        frame, _ = read_table(
            Path(data["path"]), data.get("encoding", "auto"), data.get("decimal", ".")
        )
    except (ForecastError, OSError, TypeError, ValueError):
        return None
    message = missing_column(names, [str(c) for c in frame.columns], None)
    return f"{data['path']}: {message}" if message else None
