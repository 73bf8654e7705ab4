"""`forecast init`: a commented starter config, filled in from a CSV when one is given.

What the CSV holds (time, id and numeric columns, the target, the season, holes) is
`forecast.workflows.csvprobe`'s; here: the window and splits it recommends, and the YAML.
"""

from __future__ import annotations

import difflib
import logging
import math
from pathlib import Path

import yaml

from forecast.config.file import validate_config
from forecast.config.layouts import LAYOUTS
from forecast.config.schema import DataConfig, run_name
from forecast.data.transforms import transform_lag
from forecast.data.windows import row_count
from forecast.errors import ConfigError, DataError
from forecast.workflows.csvprobe import (
    look_at_series,
    not_a_target,
    probe_columns,
    rank_targets,
    target_note,
)

log = logging.getLogger("forecast")


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
    time_column: str | None
    if csv is None:
        time_column, numeric, rows, season, path = "date", ["value", "other"], None, 1, "data.csv"
    else:
        csv = Path(csv)
        columns = probe_columns(csv, decimal, encoding)
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
    targets = [target] if base != "multi_output" else [target, (usable or others)[0]]
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
        facts = look_at_series(data, targets)
        season, rows, holes, transform = facts.season, facts.rows, facts.holes, facts.transform
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
    return yaml.safe_dump(value, allow_unicode=True).strip().removesuffix("\n...").strip()
