"""Number cells: the decimal mark, thousands separators, and values the model can hold.

`NumberFormat.parse` reads a column's cells as float64 ("1,234.5", a decimal-comma "1,5");
`check_float32` refuses a value past float32's range before the model sees it. Errors are
DataErrors naming the file, the column and the first bad row as a spreadsheet shows it
(header = row 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.data.timesteps import time_labels
from forecast.errors import DataError

FLOAT32_MAX = float(np.finfo(np.float32).max)  # the model computes in float32


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
