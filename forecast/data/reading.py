"""CSV in, clean numeric frame out: encodings, delimiter, numbers, time parsing, sorting,
missing values.

Every problem becomes a DataError naming the file, the column and (where there is one) the
first bad row as the spreadsheet shows it (header = row 1).

Missing values: `error`, `drop` and `ffill` are applied when the file is read (none of them
looks at later rows). `interpolate` leaves the holes in place for `fill_missing`, which the
pipeline calls once the split is known, so a hole is never filled from a later part.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.config.schema import DataConfig
from forecast.data.calendar import auto, encode
from forecast.data.timesteps import parse_times, time_labels, warn_irregular_gaps
from forecast.errors import ConfigError, DataError

log = logging.getLogger("forecast")

AUTO_ENCODINGS = ("utf-8-sig", "gb18030")
MAX_FILE_VARIABLE = "FORECAST_MAX_FILE_BYTES"
DEFAULT_MAX_FILE_BYTES = 2 * 1024**3  # 2 GiB: a CSV past that is no job for one pandas frame
FLOAT32_MAX = float(np.finfo(np.float32).max)  # the model computes in float32


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
        text = _decode(raw, path, config.encoding)
        frame = _parse_csv(text, path, config.decimal, config.thousands)
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
    values = _handle_missing(values, config.missing, source)
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

    members: dict[str, Series]  # id -> its series, in the order ids first appear
    path: Path
    sha256: str
    id_column: str
    encoding: str = "utf-8"

    @property
    def ids(self) -> list[str]:
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
    ids = frame[id_column]
    blank = ids.isna() | (ids.astype("string").str.strip() == "")
    if blank.any():
        row = int(np.argmax(blank.to_numpy()))
        raise DataError(
            f"{path}: column '{id_column}' row {row + 2} is empty; every row needs its "
            "series id (data.id_column)"
        )
    ids = ids.astype("string").str.strip().to_numpy(dtype=object)
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


def some_ids(ids: Sequence[str], shown: int = 5, quote: str = "") -> str:
    """'A, B, C and 7 more': the first `shown` ids of a long list, for one-line messages."""
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(f"{quote}{i}{quote}" for i in ids[:shown]) + more


def read_table(
    path: Path,
    encoding: str = "auto",
    decimal: str = ".",
    thousands: str = "auto",
    named_by: str = "data.path",
) -> tuple[pd.DataFrame, bytes]:
    """The raw table of a CSV (encoding and delimiter detected) and the file's bytes.
    `frame.attrs["delimiter"]` is the delimiter found. `named_by`: the option that gave the
    path (data.path, or --csv), for the hint when the file is not there."""
    raw = _read_bytes(path, named_by)
    option = "data.encoding" if named_by == "data.path" else "--encoding"
    return _parse_csv(_decode(raw, path, encoding, option), path, decimal, thousands), raw


def max_file_bytes() -> int:
    """The largest data file read: FORECAST_MAX_FILE_BYTES, default 2 GiB."""
    setting = os.environ.get(MAX_FILE_VARIABLE, "").strip()
    if not setting:
        return DEFAULT_MAX_FILE_BYTES
    try:
        limit = int(float(setting))
    except (ValueError, OverflowError):  # "inf" too
        limit = 0
    if limit < 1:
        raise ConfigError(
            f"{MAX_FILE_VARIABLE}={setting}: must be a positive number of bytes, e.g. 4e9"
        )
    return limit


def _size(count: float) -> str:
    """Bytes in short: '3.1 GiB', '512 KiB', '900 bytes'."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{int(count)} bytes"


def _read_bytes(path: Path, named_by: str) -> bytes:
    """The file's bytes: a regular file only (never a device, a pipe or a socket, which may
    never end) and at most `max_file_bytes()`, so no file can exhaust the memory."""
    if not path.exists():
        where = (
            "data.path in a config is relative to the config file"
            if named_by == "data.path"
            else f"given with {named_by}"
        )
        raise DataError(f"{path}: data file not found; check the path ({where})")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a CSV file")
    if not path.is_file():
        raise DataError(
            f"{path}: is not a regular file (a device, pipe or socket); save the data to a "
            "CSV file and point to that"
        )
    limit = max_file_bytes()
    over = f"; the limit is {_size(limit)} ({MAX_FILE_VARIABLE}); use fewer rows or raise it"
    try:
        size = path.stat().st_size
        if size > limit:
            raise DataError(f"{path}: is {_size(size)}{over}")
        with path.open("rb") as file:
            raw = file.read(limit + 1)  # a file that grows while read stops at the limit too
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > limit:
        raise DataError(f"{path}: is over {_size(limit)}{over}")
    if not raw.strip():
        raise DataError(f"{path}: the file is empty; it needs a header row and data rows")
    return raw


def file_encoding(raw: bytes, encoding: str = "auto") -> str:
    """The codec `raw` decodes with (as `_decode` tries them): utf-8-sig only with a BOM,
    so a file is written back the way it came."""
    if encoding != "auto":
        return encoding
    for codec in AUTO_ENCODINGS:
        try:
            raw.decode(codec)
        except UnicodeDecodeError:
            continue
        if codec == "utf-8-sig":
            return codec if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
        return codec
    return "utf-8"


def _decode(raw: bytes, path: Path, encoding: str, option: str = "data.encoding") -> str:
    """The file's text in `encoding` (auto: each of AUTO_ENCODINGS in turn); `option` names
    where an unknown encoding was given."""
    codecs = AUTO_ENCODINGS if encoding == "auto" else (encoding,)
    for codec in codecs:
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        except LookupError:
            raise DataError(
                f"{path}: unknown encoding '{encoding}' in {option}; use auto, utf-8 or gb18030"
            ) from None
        if "\x00" in text:
            break  # a binary file that happens to decode
        return text
    tried = " or ".join(codecs)
    raise DataError(
        f"{path}: cannot be read as text ({tried}); is it a CSV? "
        "Save it as CSV (UTF-8) or set data.encoding"
    )


def _parse_csv(text: str, path: Path, decimal: str, thousands: str) -> pd.DataFrame:
    sample = text[:20_000]
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    if delimiter == decimal and '"' not in sample:  # quoted cells ("1,5") can hold it
        raise DataError(
            f"{path}: data.decimal {decimal!r} is also this file's delimiter; "
            "numbers with a decimal comma need quotes (\"1,5\") or a ';' or tab separated file"
        )
    options: dict = {"decimal": decimal}
    if thousands not in ("auto", "none"):
        options["thousands"] = thousands
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, skipinitialspace=True, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable CSV ({first})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DataError(f"{path}: has a header but no data rows")
    frame.attrs["delimiter"] = delimiter
    return frame


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


@dataclass(frozen=True)
class NumberFormat:
    """How number cells are written: the decimal mark and the thousands separator.

    pandas reads plain numbers itself; this reads the text cells it left, e.g. a quoted
    "1,234.5". With `thousands: auto`, a grouped cell is read as grouped only where it cannot
    mean anything else: "1,234.5", or a quoted "1,234" in a comma-separated file. "1,234" in a
    `;` file could be 1234 or 1.234 and is refused with a message saying which setting decides.
    """

    decimal: str
    thousands: str  # auto | none | the separator
    delimiter: str

    def parse(self, column: pd.Series, name: str, path: Path) -> np.ndarray:
        if pd.api.types.is_bool_dtype(column) or not (
            pd.api.types.is_numeric_dtype(column)
            or pd.api.types.is_object_dtype(column)
            or pd.api.types.is_string_dtype(column)
        ):
            raise DataError(f"{path}: column '{name}' is not numeric ({column.dtype})")
        if pd.api.types.is_numeric_dtype(column):
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = self._parse_text(column, name, path)
        infinite = np.isinf(values)
        if infinite.any():
            row = int(np.argmax(infinite))
            raise DataError(f"{path}: column '{name}' row {row + 2}: infinite value; fix the cell")
        return values

    def _parse_text(self, column: pd.Series, name: str, path: Path) -> np.ndarray:
        text = column.astype("string").str.strip()
        other_mark = "," if self.decimal == "." else "."
        separator = other_mark if self.thousands == "auto" else self.thousands
        d, s = re.escape(self.decimal), re.escape(separator)
        grouped = _matches(text, rf"[+-]?\d{{1,3}}(?:{s}\d{{3}})+(?:{d}\d+)?")
        with_fraction = _matches(text, rf"[+-]?\d{{1,3}}(?:{s}\d{{3}})+{d}\d+")
        if self.thousands == "none":
            grouped[:] = False
        elif self.thousands == "auto":
            plain_grouping = grouped & ~with_fraction
            if plain_grouping.any() and self.delimiter != ",":
                row = int(np.argmax(plain_grouping))
                cell = column.iloc[row]
                raise DataError(
                    f"{path}: column '{name}' row {row + 2}: {cell!r} is ambiguous: "
                    f"{other_mark!r} may group thousands or be the decimal mark; set "
                    f"data.thousands: {other_mark!r} or data.decimal: {other_mark!r}"
                )
        cleaned = text.where(~grouped, text.str.replace(separator, "", regex=False))
        if self.decimal != ".":
            cleaned = cleaned.str.replace(self.decimal, ".", regex=False)
        values = pd.to_numeric(cleaned, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(values) & column.notna().to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            cell = column.iloc[row]
            hint = ""
            if other_mark in str(cell):
                hint = (
                    f" with {self.decimal!r} as decimal mark; if {other_mark!r} is the decimal "
                    f"mark in this file, set data.decimal: {other_mark!r}"
                )
            raise DataError(
                f"{path}: column '{name}' row {row + 2}: {cell!r} is not a number{hint}; "
                "fix the cell or choose numeric columns in data.features/targets"
            )
        return values


def _matches(text: pd.Series, pattern: str) -> np.ndarray:
    return text.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)  # (rows,)


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


def _handle_missing(values: pd.DataFrame, policy: str, path: Path) -> pd.DataFrame:
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


def check_float32(
    values: np.ndarray, columns: list[str], index: pd.Index, source: object, made_by: str = ""
) -> None:
    """values (rows, C), about to be cast to float32 for the model; index (rows,) their times.

    A DataError at the first cell that is NaN, infinite or past float32's range (3.4e38),
    naming its column and time: such a cell would turn the fit's loss and every forecast
    into NaN or inf. `made_by` names the step that produced the values ('data.transform
    log', 'scaling'), for the message.
    """
    bad = ~(np.abs(values) <= FLOAT32_MAX)  # NaN compares False: caught too
    if not bad.any():
        return
    row, col = np.argwhere(bad)[0]
    value = values[row, col]
    after = f" after {made_by}" if made_by else ""
    what = "not a finite number" if not np.isfinite(value) else f"{value:.3g}"
    raise DataError(
        f"{source}: column '{columns[col]}' at {time_labels(index[[row]])[0]} is {what}{after}, "
        f"outside the float32 range (+-{FLOAT32_MAX:.2g}) the model computes in; rescale the "
        "column (divide it by a power of ten) or fix the value"
    )


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
