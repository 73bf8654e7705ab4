"""`forecast init`: a commented starter config, filled in from a CSV when one is given."""

from __future__ import annotations

import difflib
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.config.file import validate_config
from forecast.config.schema import LAYOUTS, DataConfig, run_name
from forecast.data.csvfile import read_table
from forecast.data.numbers import NumberFormat
from forecast.data.reading import read_panel, read_series
from forecast.data.timesteps import parse_times, season_length
from forecast.data.transforms import transform_lag
from forecast.data.windows import row_count
from forecast.errors import ConfigError, DataError

log = logging.getLogger("forecast")

TIME_NAMES = ("date", "datetime", "time", "timestamp", "day", "month", "year", "日期", "时间")


@dataclass
class Columns:
    """What init reads from a CSV: the time and id columns, and every numeric column's
    values (numbers as `forecast` reads them) in file order."""

    time_column: str | None
    id_column: str | None
    numeric: dict[str, np.ndarray]  # name -> (rows,) float64, NaN where a cell is empty


def _columns(csv: Path, decimal: str = ".", encoding: str = "auto") -> Columns:
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


def starter_config(
    layout: str = "univariate",
    csv: str | Path | None = None,
    target: str | None = None,
    horizon: int | None = None,
    decimal: str = ".",
    encoding: str = "auto",
) -> str:
    """YAML text with comments; valid for `forecast train` once the data path is right.
    With a CSV, it validates on that file (the window, validation and test parts fit its
    rows); the target(s) it writes are logged (INFO) with the other candidates."""
    check_layout(layout)
    multi_step = layout.endswith("_multi_step")
    base = layout.removesuffix("_multi_step")
    if horizon is not None and horizon < 1:
        raise ConfigError(f"--horizon must be >= 1, got {horizon}")
    if decimal not in (".", ","):
        raise ConfigError(f"--decimal must be '.' or ',', got {decimal!r}")
    ids, holes = None, False
    if csv is None:
        time_column, numeric, rows, season, path = "date", ["value", "other"], None, 1, "data.csv"
    else:
        csv = Path(csv)
        columns = _columns(csv, decimal, encoding)
        time_column, ids, numeric = columns.time_column, columns.id_column, list(columns.numeric)
        path = str(csv.resolve())  # stdout may be saved anywhere: make the path not depend on it
    if target is not None and csv is not None and target not in numeric:
        raise DataError(
            f"{csv}: --target '{target}' is not a numeric column; "
            f"numeric columns: {', '.join(numeric)}"
        )
    ranked = rank_targets(columns.numeric) if csv is not None else numeric
    chosen = target is None
    if target is None:
        target = ranked[0]
    if base != "univariate" and len(numeric) < 2:
        raise DataError(f"{csv}: layout '{layout}' needs two or more numeric columns")
    others = [c for c in numeric if c != target]
    features = [target] if base == "univariate" else [target, *others]
    # the second target of multi_output: the next column in the file that could be a target
    usable = [c for c in others if csv is None or not not_a_target(columns.numeric[c])]
    second = (usable or others or [None])[0]
    targets = [target] if base != "multi_output" else [target, second]
    transform = "none"
    if csv is not None:
        data = DataConfig(
            path=path,
            time_column=time_column,
            features=features,
            missing="interpolate",
            id_column=ids,
            decimal=decimal,
            encoding=encoding,
        )
        # a long table: every series has its say, and a typical series' length sets the window
        members = list(read_panel(data).members.values()) if ids else [read_series(data)]
        season = season_length(members[0].index)
        rows = int(np.median([len(m.frame) for m in members]))
        holes = any(np.isnan(m.values).any() for m in members)
        # levels and trends are handled per window (model.window_norm); a seasonal swing
        # that grows with the level is made additive by a log (in most series of a table)
        frames = [m.frame.dropna() for m in members]  # holes do not change the choice
        positive = all((f.to_numpy() > 0).all() for f in frames)
        grows = [
            all(seasonal_swing_grows(f[t].to_numpy(), season) for t in targets) for f in frames
        ]
        if positive and 2 * sum(grows) > len(grows):
            transform = "log"
    horizon = horizon or (max(2, min(season, 12)) if multi_step else 1)
    if multi_step and horizon < 2:
        raise ConfigError(f"layout '{layout}' needs --horizon 2 or more")
    if not multi_step and horizon != 1:
        layout = f"{base}_multi_step"
    lag = transform_lag(transform)
    if rows is not None and rows < min_rows(horizon, lag):
        typical = " (a typical series of the table)" if ids else ""
        raise DataError(
            f"{csv}: {rows} rows{typical} is too few for a config with horizon {horizon}; "
            f"it needs at least {min_rows(horizon, lag)} rows (a window, the test rows and "
            "three backtest folds); use a longer series or a smaller --horizon"
        )
    plan = recommend(rows, season, horizon, lag)
    q = lambda items: "[" + ", ".join(_yaml_str(i) for i in items) + "]"  # noqa: E731
    id_line = ""
    if ids:
        id_line = f"\n  id_column: {_yaml_str(ids)}\t# a long table: one series per value, one "
        id_line += "model for all"
    extra = ""
    if decimal != ".":
        extra += f'\n  decimal: "{decimal}"\t# the decimal mark in number cells'
    text = f"""# forecast config ({layout}). A relative data.path is read from this file's folder.
# Check it with `forecast validate FILE`, then `forecast train FILE`.
name: {_yaml_str(run_name(Path(path).stem))}
seed: 42
data:
  path: {_yaml_str(path)}
  encoding: {_yaml_str(encoding)}\t# {ENCODING_NOTE if encoding == "auto" else "of the CSV"}{extra}
  time_column: {_yaml_str(time_column) if time_column else "null"}{id_line}
  features: {q(features)}
  targets: {q(targets)}
  missing: {"interpolate" if holes else "error"}\t# error | drop | ffill | interpolate
  transform: {transform}
  calendar: auto\t# month, weekday, hour... as known inputs ([] = none)
layout: {layout}
window:
  input_steps: {plan["input_steps"]}\t# rows the model sees
  horizon: {horizon}
  multi_step: direct\t# direct | recursive (needs every feature to be a target)
split:
  test: {plan["test"]}\t# fraction or row count
  validation: {plan["validation"]}
model:
  architecture: lstm\t# lstm | gru | simple_rnn | bidirectional | conv1d_lstm
  units: [32]
  dropout: 0.0
  window_norm: true\t# each window scaled by its own last value and mean step
  residual: {plan["residual"]}\t# the network corrects this forecast; auto: the base
\t# that misses the training rows least
training:
  epochs: 100
  batch_size: 16
  learning_rate: 0.001
  early_stopping: {{patience: 10, restore_best_weights: true}}
evaluation:
  season_length: {season if csv is not None else "auto"}\t# seasonal naive and MASE
"""
    text = align_comments(text)
    import yaml

    validate_config(yaml.safe_load(text), source="starter config")  # never print a bad one
    if csv is not None:
        log.info(target_note(targets, columns.numeric, given=not chosen))
    return text


ENCODING_NOTE = "utf-8, utf-8 with BOM or gb18030"
COMMENT_COLUMN = 29  # where the comments start, unless a value is wider


def align_comments(text: str) -> str:
    """Lines written `code<TAB># comment` get their comments in one column (as in DESIGN.md's
    config example); a line `<TAB># ...` continues the comment above it."""
    lines = [line.partition("\t") for line in text.split("\n")]  # (code, tab, comment)
    width = max([COMMENT_COLUMN] + [len(code) + 2 for code, tab, _ in lines if tab])
    return "\n".join(code.ljust(width) + comment if tab else code for code, tab, comment in lines)


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        close = difflib.get_close_matches(layout, LAYOUTS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"--layout: unknown layout '{layout}'; valid layouts: {', '.join(LAYOUTS)}{hint}"
        )


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


MAX_SEASONS = 8  # a longer window averages the seasonal pattern over more seasons
MAX_INPUT_STEPS = 104  # beyond this, windows cost more training time than they win back
MIN_TRAIN_WINDOWS = 12  # training windows the first backtest fold keeps besides validation
VALIDATION_SHARE = 0.1  # of the first fold's rows, at least a horizon
VALIDATION_MAX_ORIGINS = 50  # enough to steady early stopping; more would leave out recent rows


def min_rows(horizon: int, lag: int = 0) -> int:
    """The fewest rows init writes a config for: the first of three backtest folds (rows -
    3 * horizon, less `lag` rows a differencing transform uses) still holds one window of
    the shortest length (2 steps) and its horizon. The test rows (a fifth, at least 2 *
    horizon) leave at least that many before them too."""
    return 4 * horizon + 2 + lag


def recommend(rows: int | None, season: int, horizon: int, lag: int = 0) -> dict:
    """Window, splits and residual base for a series of `rows` rows (`lag`: rows a
    differencing transform uses up).

    The smallest training set a user meets is the smaller of the rows before the test split
    (what `forecast train` fits on) and the first fold of `forecast backtest --folds 3`
    (about rows - 3 * horizon). The window covers as many whole seasons as that set can
    spare (up to MAX_SEASONS, while MIN_TRAIN_WINDOWS windows and a validation horizon
    remain): the residual base averages its seasonal pattern and trend over them, so more
    seasons give a steadier base (benchmarks/README.md). Where not even one season fits, the
    window is chosen as for a series without one. A validation part is kept only where
    enough windows remain. The base itself is chosen on the training rows (`auto`).
    """
    if rows is None:
        return {
            "input_steps": max(12, 2 * season) if season > 1 else 24,
            "test": 0.2,
            "validation": 0.1,
            "residual": "auto",
        }
    work_rows = rows - lag  # the rows the split is planned on (windows.plan_split)
    test = 0.2 if round(work_rows * 0.2) >= 2 * horizon else 2 * horizon
    fold_rows = max(work_rows - 3 * horizon, 2)
    fit_rows = min(fold_rows, work_rows - row_count(test, work_rows))
    input_steps = min(max(2 * horizon, 8), 24)  # without a season that fits
    if 1 < season <= fit_rows - horizon:
        seasons = max(min(MAX_SEASONS, MAX_INPUT_STEPS // season), 1)
        while seasons > 1 and fit_rows - seasons * season - 2 * horizon + 1 < MIN_TRAIN_WINDOWS:
            seasons -= 1
        input_steps = seasons * season
    input_steps = max(2, min(input_steps, fit_rows - horizon))  # at least one window
    windows = fit_rows - input_steps - horizon + 1
    # early stopping on one validation window follows that window's noise: a share of the
    # rows gives it more origins where the series can spare them
    validation = max(horizon, min(math.ceil(VALIDATION_SHARE * fold_rows),
                                  horizon - 1 + VALIDATION_MAX_ORIGINS))  # fmt: skip
    if windows - validation < MIN_TRAIN_WINDOWS:
        validation = horizon if windows - horizon >= MIN_TRAIN_WINDOWS else 0
    return {
        "input_steps": input_steps,
        "test": test,
        "validation": validation,
        "residual": "auto",
    }


def _yaml_str(value: str) -> str:
    import yaml

    return yaml.safe_dump(value, allow_unicode=True).strip().removesuffix("\n...").strip()
