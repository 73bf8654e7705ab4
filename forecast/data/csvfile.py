"""A CSV file to its raw table: a size limit, the bytes, the text encoding, the delimiter.

    read_table(Path("sales.csv")) -> (frame of the file's cells as pandas reads them, bytes)

`forecast.data.reading` turns that table into the config's clean numeric columns. Every
problem is a DataError naming the file (a bad FORECAST_MAX_FILE_BYTES is a ConfigError).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pandas as pd

from forecast.errors import ConfigError, DataError

AUTO_ENCODINGS = ("utf-8-sig", "gb18030")
MAX_FILE_VARIABLE = "FORECAST_MAX_FILE_BYTES"
DEFAULT_MAX_FILE_BYTES = 2 * 1024**3  # 2 GiB: a CSV past that is no job for one pandas frame


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
    return parse_table(raw, path, encoding, decimal, thousands, option), raw


def parse_table(
    raw: bytes,
    path: Path,
    encoding: str = "auto",
    decimal: str = ".",
    thousands: str = "auto",
    option: str = "data.encoding",
) -> pd.DataFrame:
    """The raw table of a CSV's bytes (a file's, or a request body's that `path` names in
    messages); `option` names where an unknown encoding was given."""
    return _parse_csv(_decode(raw, path, encoding, option), path, decimal, thousands)


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


def check_text_encoding(name: str, option: str) -> None:
    """ConfigError unless `name` is auto or a codec that turns text into bytes and back
    (a bytes-to-bytes codec such as base64 or rot13 is no text encoding: str.encode and
    bytes.decode refuse it with a LookupError, as they do an unknown name; Python's
    'undefined' codec refuses even empty text)."""
    if name == "auto":
        return
    try:
        "".encode(name)
        b"".decode(name)
    except (LookupError, UnicodeError):
        raise ConfigError(
            f"{option} {name}: unknown; use auto, utf-8, utf-8-sig or gb18030"
        ) from None


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


SNIFF_CHARS = 20_000  # csv.Sniffer reads this much of the file
DELIMITERS = ",;\t|"


def delimiter_of(sample: str, truncated: bool) -> str:
    """The delimiter of a CSV whose first SNIFF_CHARS characters are `sample` (`truncated`:
    the file goes on). Without quotes, when exactly one candidate appears the same number of
    times on each of the first 20 non-blank lines, that one, in a twentieth of csv.Sniffer's
    time (a server's request pays it): where the sniffer finds a delimiter, the same one;
    where it gives up or misreads the lines (blank lines, lines ending in a lone \\r, very
    long lines), the steady one rather than ','. Otherwise csv.Sniffer over the whole
    sample; ',' when it cannot tell."""
    if '"' not in sample and "'" not in sample:
        lines = sample.splitlines()
        lines = [line for line in lines[: len(lines) - truncated] if line.strip()][:20]
        if len(lines) >= 2:
            steady = [d for d in DELIMITERS if len({line.count(d) for line in lines}) == 1]
            steady = [d for d in steady if lines[0].count(d)]
            if len(steady) == 1:
                return steady[0]
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _parse_csv(text: str, path: Path, decimal: str, thousands: str) -> pd.DataFrame:
    sample = text[:SNIFF_CHARS]
    delimiter = delimiter_of(sample, len(text) > SNIFF_CHARS)
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
