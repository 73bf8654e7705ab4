"""What `forecast init` reads from a CSV: the time and id columns, the numeric columns and
which of them to forecast, and the series' season, length, holes and seasonal swing.

    columns = probe_columns(Path("data/msft_daily.csv"))
    -> Columns(time_column="Date", id_column=None, numeric={"Open": ..., "Volume": ...})
    rank_targets(columns.numeric) -> ["Close", "Low", "Open", "High", "Volume"]

Every file is read as `forecast` reads it (encodings, delimiters, number formats).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.config.schema import DataConfig
from forecast.data.csvfile import read_table
from forecast.data.numbers import NumberFormat
from forecast.data.reading import read_panel, read_series
from forecast.data.timesteps import parse_times, season_length
from forecast.errors import DataError

TIME_NAMES = ("date", "datetime", "time", "timestamp", "day", "month", "year", "日期", "时间")


@dataclass
class Columns:
    """What init reads from a CSV: the time and id columns, and every numeric column's
    values (numbers as `forecast` reads them) in file order."""

    time_column: str | None
    id_column: str | None
    numeric: dict[str, np.ndarray]  # name -> (rows,) float64, NaN where a cell is empty


def probe_columns(csv: Path, decimal: str = ".", encoding: str = "auto") -> Columns:
    """The time column, id column and numeric columns of a CSV, read as `forecast` reads it."""
    frame, _ = read_table(csv, encoding, decimal, named_by="--csv")
    time_column = None
    for name in frame.columns:
        if name.strip().lower() in TIME_NAMES or not pd.api.types.is_numeric_dtype(frame[name]):
            parsed = parse_times(frame[name], mixed_format=True)
            if parsed.notna().mean() > 0.95:
                time_column = name
                break
    ids = id_column(frame, time_column)
    numbers = NumberFormat(decimal, "auto", frame.attrs["delimiter"])
    numeric = {}
    for name in frame.columns:
        if name in (time_column, ids):
            continue
        if decimal == "." and looks_decimal_comma(frame[name]):
            cell = next(c for c in frame[name].dropna().astype(str) if "," in c)
            raise DataError(
                f"{csv}: column '{name}' holds numbers with ',' as the decimal mark "
                f"(e.g. {cell!r}); run init with --decimal , "
                '(it writes data.decimal: "," into the config)'
            )
        try:
            values = numbers.parse(frame[name], name, csv)
        except DataError:
            continue  # a text column: not a candidate
        if np.isfinite(values).any() and np.nanmin(values) < np.nanmax(values):
            numeric[name] = values
    if not numeric:
        raise DataError(f"{csv}: no numeric column with changing values to forecast")
    return Columns(time_column, ids, numeric)


def looks_decimal_comma(column: pd.Series) -> bool:
    """Text cells that are numbers written with a decimal comma: '1,5', '-12,75', '1234,5'
    (a cell such as '1,234' alone could be grouping, so one that cannot be must be there)."""
    if pd.api.types.is_numeric_dtype(column):
        return False
    cells = column.dropna().astype("string").str.strip()
    if cells.empty or not cells.str.fullmatch(r"[+-]?\d+(?:,\d+)?").all():
        return False
    return bool(cells.str.fullmatch(r"[+-]?(?:\d+,(?:\d{1,2}|\d{4,})|\d{4,},\d+)").any())


def id_column(frame: pd.DataFrame, time_column: str | None) -> str | None:
    """A long table's id column: a text (else integer) column whose values repeat over time
    (the times repeat, and each (id, time) pair is there once), or None."""
    if time_column is None or not frame[time_column].duplicated().any():
        return None

    def repeats_over_time(name: str) -> bool:
        ids = frame[name].astype("string").str.strip()
        unique_pairs = not frame.assign(_id=ids).duplicated(["_id", time_column]).any()
        return 1 < ids.nunique() <= len(frame) // 2 and unique_pairs

    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    # store numbers: integers, few of them, each with its own time stamps
    whole = [c for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])]
    for name in [*text, *whole]:
        if name != time_column and repeats_over_time(name):
            return name
    return None


# a closing price is what stock tables are forecast for; volumes and counts never by default
CLOSE_NAMES = ("close", "收盘价", "收盘", "adj close", "adj_close", "adjclose", "adjusted close",
               "closing price", "close price")  # fmt: skip
# words of a column name that say "this is what we forecast", before a price
TARGET_WORDS = ("sales", "sale", "value", "target", "demand", "load", "y", "passengers",
                "revenue", "orders", "quantity", "qty", "units", "count", "consumption",
                "销量", "销售额", "需求", "负荷", "客流", "用电量")  # fmt: skip
PRICE_NAMES = ("price", "价格")
NOT_TARGETS = ("volume", "vol", "成交量", "成交额", "amount", "turnover", "openint", "持仓量")
FEW_VALUES = 10  # a column with this many distinct values or fewer (and a quarter of its rows)
# is a code or a dummy


def _bare(name: str) -> str:  # '收盘价(元)' -> '收盘价', ' Close ' -> 'close'
    return name.strip().lower().split("(")[0].split("（")[0].strip()


def not_a_target(values: np.ndarray) -> str | None:
    """Why a numeric column is no forecast target (a 0/1 dummy, a code of few values, a row
    counter or id), or None."""
    known = values[np.isfinite(values)]  # (rows,)
    distinct = len(np.unique(known))
    if distinct <= 2 or distinct <= min(FEW_VALUES, len(known) // 4):
        return "few distinct values"
    steps = np.diff(known)
    if (known == np.round(known)).all() and len(steps) and (steps == steps[0]).all():
        return "a counter"
    return None


def rank_targets(numeric: dict[str, np.ndarray]) -> list[str]:
    """The numeric columns, the one to forecast first: a closing price where the table has
    one (Close, Adj Close, 收盘价(元), 收盘...), else a name such as sales, value, target,
    demand or load, else a price, else the column that varies most (standard deviation over
    mean absolute value). Then counters (unless named so), then volumes and turnover,
    dummies and few-valued codes."""

    def words(name: str) -> set[str]:
        bare = _bare(name)
        return {w for w in re.split(r"[^0-9a-z\u4e00-\u9fff]+", bare) if w} | {
            w for w in TARGET_WORDS if not w.isascii() and w in bare
        }

    def spread(name: str) -> float:
        known = numeric[name][np.isfinite(numeric[name])]
        return float(np.std(known) / max(np.mean(np.abs(known)), 1e-12))

    def rank(name: str) -> tuple:
        bare, why = _bare(name), not_a_target(numeric[name])
        if why == "few distinct values" or bare in NOT_TARGETS:
            return (5, 0.0)
        if bare in CLOSE_NAMES:
            return (0, CLOSE_NAMES.index(bare))
        if words(name) & set(TARGET_WORDS):
            return (1, 0.0)
        if bare in PRICE_NAMES:
            return (2, 0.0)
        return (4, 0.0) if why else (3, -spread(name))

    return sorted(numeric, key=rank)  # stable: file order among equals


def target_note(targets: list[str], numeric: dict[str, np.ndarray], given: bool) -> str:
    """The line init prints on stderr about the target(s) it writes: chosen from the file,
    or as given with --target (with a word if that column looks like no target)."""
    others = [c for c in rank_targets(numeric) if c not in targets]
    candidates = [c for c in others if not not_a_target(numeric[c])]
    skipped = [f"{c} ({not_a_target(numeric[c])})" for c in others if not_a_target(numeric[c])]
    left_out = f"; left out: {', '.join(skipped)}" if skipped else ""
    which = f"target{'s' if len(targets) > 1 else ''} {', '.join(targets)}"
    if given:
        odd = not_a_target(numeric[targets[0]])
        warning = f"; note: it looks like no target ({odd})" if odd else ""
        given_as = "as given" if len(targets) == 1 else f"({targets[0]} as given)"
        return (
            f"init: {which} {given_as} with --target{warning} (other candidates: "
            f"{', '.join(candidates) or 'none'}{left_out})"
        )
    how = "choose with --target COL" if len(targets) == 1 else "choose the first with --target COL"
    return f"init: {which} (other candidates: {', '.join(candidates) or 'none'}{left_out}; {how})"


def seasonal_swing_grows(values: np.ndarray, season: int) -> bool:
    """Does the seasonal swing grow with the level? Per whole season: the spread of its
    values against their mean; True when they rise together (correlation > 0.6) and the
    swing of the last third of the seasons is over 1.5 times that of the first third."""
    cycles = len(values) // season
    if season < 2 or cycles < 6:
        return False
    blocks = values[len(values) - cycles * season :].reshape(cycles, season)  # (cycles, m)
    level, swing = blocks.mean(axis=1), blocks.std(axis=1)
    if np.std(level) == 0 or np.std(swing) == 0:
        return False
    third = max(cycles // 3, 1)
    together = np.corrcoef(level, swing)[0, 1] > 0.6
    return bool(together and swing[-third:].mean() > 1.5 * swing[:third].mean())


@dataclass
class SeriesFacts:
    """What init learns from the series, read as `forecast train` reads them."""

    season: int  # season length (of a long table's first series)
    rows: int  # rows of a typical series: the median over a long table's
    holes: bool  # some cell is empty
    transform: str  # log where the seasonal swing grows with the level, else none


def look_at_series(data: DataConfig, targets: list[str]) -> SeriesFacts:
    """The season, typical length, holes and transform of the series `data` reads."""
    # a long table: every series has its say, and a typical series' length sets the window
    members = list(read_panel(data).members.values()) if data.id_column else [read_series(data)]
    season = season_length(members[0].index)
    rows = int(np.median([len(m.frame) for m in members]))
    holes = any(np.isnan(m.values).any() for m in members)
    # levels and trends are handled per window (model.window_norm); a seasonal swing
    # that grows with the level is made additive by a log (in most series of a table)
    frames = [m.frame.dropna() for m in members]  # holes do not change the choice
    positive = all((f.to_numpy() > 0).all() for f in frames)
    grows = [all(seasonal_swing_grows(f[t].to_numpy(), season) for t in targets) for f in frames]
    transform = "log" if positive and 2 * sum(grows) > len(grows) else "none"
    return SeriesFacts(season, rows, holes, transform)
