"""`forecast init`: a commented starter config, filled in from a CSV when one is given."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.config import LAYOUTS, DataConfig
from forecast.configfile import validate_config
from forecast.data import read_panel, read_series, read_table
from forecast.errors import ConfigError, DataError
from forecast.timesteps import parse_times, season_length

TIME_NAMES = ("date", "datetime", "time", "timestamp", "day", "month", "year", "日期", "时间")


def _columns(csv: Path) -> tuple[str | None, list[str], int, str | None]:
    """(time column, numeric columns, rows, id column) of a CSV, read as `forecast` reads
    it."""
    frame, _ = read_table(csv)
    time_column = None
    for name in frame.columns:
        if name.strip().lower() in TIME_NAMES or not pd.api.types.is_numeric_dtype(frame[name]):
            parsed = parse_times(frame[name], mixed_format=True)
            if parsed.notna().mean() > 0.95:
                time_column = name
                break
    ids = id_column(frame, time_column)
    numeric = [
        c
        for c in frame.columns
        if c not in (time_column, ids)
        and pd.api.types.is_numeric_dtype(frame[c])
        and frame[c].nunique() > 1
    ]
    if not numeric:
        raise DataError(f"{csv}: no numeric column with changing values to forecast")
    return time_column, numeric, len(frame), ids


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
) -> str:
    """YAML text with comments; valid for `forecast train` once the data path is right."""
    if layout not in LAYOUTS:
        raise ConfigError(
            f"--layout: unknown layout '{layout}'; valid layouts: {', '.join(LAYOUTS)}"
        )
    multi_step = layout.endswith("_multi_step")
    base = layout.removesuffix("_multi_step")
    if horizon is not None and horizon < 1:
        raise ConfigError(f"--horizon must be >= 1, got {horizon}")
    ids = None
    if csv is None:
        time_column, numeric, rows, season, path = "date", ["value", "other"], None, 1, "data.csv"
    else:
        csv = Path(csv)
        time_column, numeric, rows, ids = _columns(csv)
        path = str(csv.resolve())  # stdout may be saved anywhere: make the path not depend on it
    if target is not None and csv is not None and target not in numeric:
        raise DataError(
            f"{csv}: --target '{target}' is not a numeric column; "
            f"numeric columns: {', '.join(numeric)}"
        )
    if target is None:
        target = default_target(numeric) if csv else "value"
    if base != "univariate" and len(numeric) < 2:
        raise DataError(f"{csv}: layout '{layout}' needs two or more numeric columns")
    others = [c for c in numeric if c != target]
    features = [target] if base == "univariate" else [target, *others]
    targets = [target] if base != "multi_output" else [target, others[0]]
    transform = "none"
    if csv is not None:
        data = DataConfig(
            path=path,
            time_column=time_column,
            features=features,
            missing="interpolate",
            id_column=ids,
        )
        # a long table: every series has its say, and a typical series' length sets the window
        members = list(read_panel(data).members.values()) if ids else [read_series(data)]
        season = season_length(members[0].index)
        if ids:
            rows = int(np.median([len(m.frame) for m in members]))
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
    plan = recommend(rows, season, horizon)
    input_steps, test, validation = plan["input_steps"], plan["test"], plan["validation"]
    residual_line = f"{plan['residual']:<17}# the network corrects this forecast; auto: the base"
    residual_line += "\n                             # that misses the training rows least"
    q = lambda items: "[" + ", ".join(_yaml_str(i) for i in items) + "]"  # noqa: E731
    id_line = ""
    if ids:
        id_line = (
            f"\n  id_column: {_yaml_str(ids)}        # a long table: one series per value, one "
            "model for all"
        )
    text = f"""# forecast config ({layout}). A relative data.path is read from this file's folder.
# Check it with `forecast validate FILE`, then `forecast train FILE`.
name: {_yaml_str(Path(path).stem)}
seed: 42
data:
  path: {_yaml_str(path)}
  encoding: auto             # utf-8, utf-8 with BOM or gb18030
  time_column: {_yaml_str(time_column) if time_column else "null"}{id_line}
  features: {q(features)}
  targets: {q(targets)}
  missing: error             # error | drop | ffill | interpolate
  transform: {transform}
  calendar: auto             # month, weekday, hour... as known inputs ([] = none)
layout: {layout}
window:
  input_steps: {input_steps}            # rows the model sees
  horizon: {horizon}
  multi_step: direct         # direct | recursive (needs every feature to be a target)
split:
  test: {test}                  # fraction or row count
  validation: {validation}
model:
  architecture: lstm         # lstm | gru | simple_rnn | bidirectional | conv1d_lstm
  units: [32]
  dropout: 0.0
  window_norm: true          # each window scaled by its own last value and mean step
  residual: {residual_line}
training:
  epochs: 100
  batch_size: 16
  learning_rate: 0.001
  early_stopping: {{patience: 10, restore_best_weights: true}}
evaluation:
  season_length: {season if csv is not None else "auto"}          # seasonal naive and MASE
"""
    import yaml

    validate_config(yaml.safe_load(text), source="starter config")  # never print a bad one
    return text


# a closing price is what stock tables are forecast for; volumes and counts never by default
PRICE_NAMES = ("close", "收盘价", "收盘", "adj close", "adj_close", "adjclose", "adjusted close",
               "closing price", "close price", "price", "价格")  # fmt: skip
NOT_TARGETS = ("volume", "vol", "成交量", "成交额", "amount", "turnover", "openint", "持仓量")


def default_target(numeric: list[str]) -> str:
    """The column forecast when --target is not given: a closing price where the table has
    one (Close, Adj Close, 收盘价(元), 收盘...), else the last numeric column that is not a
    volume, turnover or open interest."""

    def bare(name: str) -> str:  # '收盘价(元)' -> '收盘价', ' Close ' -> 'close'
        return name.strip().lower().split("(")[0].split("（")[0].strip()

    for wanted in PRICE_NAMES:
        found = [c for c in numeric if bare(c) == wanted]
        if found:
            return found[0]
    usable = [c for c in numeric if bare(c) not in NOT_TARGETS]
    return (usable or numeric)[-1]


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


def recommend(rows: int | None, season: int, horizon: int) -> dict:
    """Window, splits and residual base for a series of `rows` rows.

    The smallest training set a user meets is the first fold of `forecast backtest --folds
    3`: about rows - 3 * horizon rows. The window covers as many whole seasons as that fold
    can spare (up to MAX_SEASONS, while MIN_TRAIN_WINDOWS windows and a validation horizon
    remain): the residual base averages its seasonal pattern and trend over them, so more
    seasons give a steadier base (benchmarks/README.md). A validation part is kept only where
    enough windows remain. The base itself is chosen on the training rows (`auto`).
    """
    if rows is None:
        return {
            "input_steps": max(12, 2 * season) if season > 1 else 24,
            "test": 0.2,
            "validation": 0.1,
            "residual": "auto",
        }
    fold_rows = max(rows - 3 * horizon, 2)
    if season > 1:
        seasons = max(min(MAX_SEASONS, MAX_INPUT_STEPS // season), 1)
        while seasons > 1 and fold_rows - seasons * season - 2 * horizon + 1 < MIN_TRAIN_WINDOWS:
            seasons -= 1
        input_steps = seasons * season
    else:
        input_steps = min(max(2 * horizon, 8), 24)
    input_steps = max(2, min(input_steps, fold_rows - horizon))  # at least one window
    windows = fold_rows - input_steps - horizon + 1
    # early stopping on one validation window follows that window's noise: a share of the
    # rows gives it more origins where the series can spare them
    validation = max(horizon, min(math.ceil(VALIDATION_SHARE * fold_rows),
                                  horizon - 1 + VALIDATION_MAX_ORIGINS))  # fmt: skip
    if windows - validation < MIN_TRAIN_WINDOWS:
        validation = horizon if windows - horizon >= MIN_TRAIN_WINDOWS else 0
    test = 0.2 if round(rows * 0.2) >= 2 * horizon else 2 * horizon
    return {
        "input_steps": input_steps,
        "test": test,
        "validation": validation,
        "residual": "auto",
    }


def _yaml_str(value: str) -> str:
    import yaml

    return yaml.safe_dump(value, allow_unicode=True).strip().removesuffix("\n...").strip()
