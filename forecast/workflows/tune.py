"""`forecast tune`: a seeded random search over the options that matter for accuracy, each
trial scored by a rolling-origin backtest on the config's training part only.

The test rows (the config's `split.test`) are never used: the series is cut before them,
and the folds (`horizon` rows apart, or closer where the config as given needs more rows in
the first fold) end at the last training row. Trial 1 is the config as
given; the others are distinct draws from `space(config)`, applied as `--set` overrides to
the config file, so a trial is exactly what `forecast backtest --set ...` would run. The
best trial (lowest mean model MASE over the folds) is written as a complete config (the
`--set` items it was tuned under included), with those items and every trial's score in its
header.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from forecast.config.file import config_to_yaml
from forecast.config.schema import Config
from forecast.data.prepare import prepare
from forecast.data.reading import Series, read_series
from forecast.data.timesteps import season_length
from forecast.data.transforms import transform_lag
from forecast.data.windows import plan_split
from forecast.errors import ConfigError, DataError, ForecastError
from forecast.fitting.executor import Fanout, ProcessPool, executor_for, in_chains, run_groups
from forecast.fitting.onray import OnRay
from forecast.fitting.task import FitOutcome, FitTask
from forecast.model.memory import check_training_fits
from forecast.model.tf_setup import import_tensorflow_quietly
from forecast.workflows.backtest import (
    backtest_origins,
    backtest_report,
    fold_tasks,
    series_backs,
)
from forecast.workflows.loading import resolve_config

log = logging.getLogger("forecast")


@dataclass
class Trial:
    overrides: list[str]  # `--set` items on top of the config file
    mase: float | None = None  # mean model MASE over the folds
    seasonal_naive: float | None = None
    seconds: float = 0.0  # what the fits of its folds took
    error: str | None = None  # why the trial could not run


@dataclass
class TuneResult:
    path: Path  # the best config, written
    config: Config
    trials: list[Trial]
    best: int  # index into trials
    rows: int  # rows the search saw (the training part)


def space(config: Config, season: int) -> dict[str, list[Any]]:
    """The options searched, each with its values: the residual base, the window (whole
    seasons), the width of the layers, the learning rate and its schedule, the loss."""
    model, steps = config.model, config.window.input_steps
    found: dict[str, list[Any]] = {}
    if season > 1:
        found["window.input_steps"] = sorted({steps, season, 2 * season, 3 * season})
        found["model.residual"] = [
            "seasonal_average",
            "seasonal_half_drift",
            "seasonal_drift",
            "seasonal_naive",
        ]
    else:
        found["window.input_steps"] = sorted({max(2, steps // 2), steps, 2 * steps})
        found["model.residual"] = ["naive", "seasonal_half_drift", "seasonal_drift"]
    if model.layers is None:
        found["model.units"] = [[16], [32], [64]]
    found["training.learning_rate"] = [0.001, 0.003]
    found["training.lr_schedule"] = ["constant", "cosine"]
    found["training.loss"] = ["mse", "mae"]
    return found


def draws(options: dict[str, list[Any]], season: int, count: int, seed: int) -> list[list[str]]:
    """`count` distinct combinations in a seeded random order, as `--set` items; a seasonal
    base only with a window of at least a season."""
    keys = list(options)
    grid = []
    for values in itertools.product(*(options[k] for k in keys)):
        chosen = dict(zip(keys, values, strict=True))
        if str(chosen["model.residual"]).startswith("seasonal") and (
            chosen["window.input_steps"] < season
        ):
            continue
        grid.append([f"{k}={_yaml(v)}" for k, v in chosen.items()])
    order = np.random.default_rng(seed).permutation(len(grid))
    return [grid[i] for i in order[:count]]


def _yaml(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def tune(
    config_path: str | Path,
    trials: int = 8,
    folds: int = 3,
    output: str | Path | None = None,
    overrides: list[str] | None = None,
    seed: int | None = None,
    quiet: bool = False,
    workers: int | None = 1,
    ray: str | None = None,
) -> TuneResult:
    """Backtest `trials` settings (`folds` folds each) on the training part of the config's
    series and write the best as a complete config to `output` (default: NAME.tuned.yaml
    beside the config; never over an existing file). `overrides` are `--set` items applied
    to every trial. The folds of every trial run in turn here, in `workers` local processes
    (None: auto, from the cores and the work), or as Ray tasks (`ray`: a cluster's address,
    or "auto"); the result is the same."""
    fanout = Fanout(workers, ray).check()

    if trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    if folds < 1:
        raise ConfigError(f"--folds must be >= 1, got {folds}")
    config_path = Path(config_path)
    base = list(overrides or [])
    config = resolve_config(config_path, base, seed)
    target = Path(output) if output else config_path.with_name(f"{config_path.stem}.tuned.yaml")
    if target.exists():
        raise ConfigError(f"{target}: exists; pass --output with a new path or remove it")
    if config.data.id_column is not None:
        raise ConfigError(
            "forecast tune: not yet for long tables (data.id_column); tune on one series' "
            "CSV, or compare settings with forecast backtest --set"
        )
    series = read_series(config.data)
    part = training_part(config, series)
    # else every trial would be skipped for it, one by one
    check_training_fits(config, windows=len(part.frame))
    horizon = config.window.horizon
    origins = fold_origins(config, part, folds)
    if origins[0] < 0:
        raise DataError(
            f"{series.path}: the {len(part.frame)} training rows cannot hold {folds} folds of "
            f"horizon {horizon}; use fewer --folds"
        )
    season = _season(config, part)
    runs = [Trial([])]
    for items in draws(space(config, season), season, 4 * trials, config.seed):
        changed = [i for i in items if _changes(config, config_path, base + [i], seed)]
        if len(runs) < trials and changed and changed not in [t.overrides for t in runs]:
            runs.append(Trial(changed))
    import_tensorflow_quietly()
    _run_trials(runs, config_path, base, seed, part, origins, quiet, fanout)
    scored = {i: t.mase for i, t in enumerate(runs) if t.mase is not None and math.isfinite(t.mase)}
    if not scored:
        raise DataError(f"{series.path}: no trial could be backtested: {runs[0].error}")
    best = min(scored, key=scored.__getitem__)
    best_config = resolve_config(config_path, base + runs[best].overrides, seed)
    step = int(origins[1] - origins[0]) if len(origins) > 1 else horizon
    given = base + ([f"--seed {seed}"] if seed is not None else [])
    _write(target, best_config, config_path, runs, best, (len(part.frame), folds, step), given)
    return TuneResult(target, best_config, runs, best, len(part.frame))


def fold_origins(config: Config, part: Series, folds: int) -> np.ndarray:
    """The folds' origins on the training part: `horizon` rows apart, the last fold ending
    at its last row; or closer together (down to 1 row apart) where the config as given
    needs more rows before the first origin than that spacing leaves (its window, horizon
    and validation), so that trial 1 runs whenever the data can hold it. Every trial is
    scored on the same origins."""

    horizon = config.window.horizon
    origins = backtest_origins(len(part.frame), folds, horizon)
    last = int(origins[-1])
    if folds == 1 or origins[0] < 0 or _trains_on(config, part, int(origins[0]) + 1):
        return origins
    if not _trains_on(config, part, last + 1):
        return origins  # no spacing helps; trial 1 will say why
    low, high = int(origins[0]) + 1, last  # the first origin the config can train on
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if _trains_on(config, part, middle + 1) else (middle + 1, high)
    step = (last - low) // (folds - 1)
    if step < 1:
        return origins
    log.info(
        "folds %d rows apart (not horizon %d), so that the config as given can train on "
        "the first fold's %d rows",
        step,
        horizon,
        last - step * (folds - 1) + 1,
    )
    return backtest_origins(len(part.frame), folds, horizon, step)


def _trains_on(config: Config, part: Series, rows: int) -> bool:
    """Whether the first `rows` rows hold the config's window, horizon and validation."""
    try:
        prepare(config, part, rows=rows)
    except ForecastError:
        return False
    return True


def training_part(config: Config, series: Series) -> Series:
    """The rows before the config's test part: all that tuning may see."""
    window = config.window
    lag = transform_lag(config.data.transform)
    split = plan_split(
        len(series.frame) - lag,
        config.split,
        window.input_steps,
        window.horizon,
        str(series.path),
        window.output_steps,
    )
    return replace(series, frame=series.frame.iloc[: split.test_start + lag])


def _season(config: Config, series: Series) -> int:
    season = config.evaluation.season_length
    return int(season_length(series.index) if season == "auto" else season)


def _changes(config: Config, path: Path, items: list[str], seed: int | None) -> bool:
    """Whether `items` on top of the config file change the config."""
    try:
        return resolve_config(path, items, seed) != config
    except ConfigError:
        return True  # the trial will say what is wrong with it


def _write(
    target: Path,
    config: Config,
    source: Path,
    trials: list[Trial],
    best: int,
    backtest: tuple[int, int, int],  # rows, folds, step
    given: list[str],  # the `--set` items (and `--seed`) every trial ran under
) -> None:
    rows, folds, step = backtest
    apart = "" if step == config.window.horizon else f", origins {step} rows apart"
    lines = [
        f"# tuned by `forecast tune` from {source}: {len(trials)} trials, each scored by the mean",
        f"# model MASE of a {folds}-fold backtest on the first {rows} rows (the test rows "
        f"unseen{apart}).",
    ]
    if given:  # part of every trial's config, so written into the config below too
        items = " ".join(g if g.startswith("--seed") else f"--set {g}" for g in given)
        lines.append(f"# tuned under: {items}")
    lines += [
        f"# best: trial {best + 1}. Seasonal naive scored "
        f"{_shown(trials[best].seasonal_naive)} on the same folds.",
    ]
    for number, trial in enumerate(trials, start=1):
        score = _shown(trial.mase) if trial.error is None else f"skipped ({trial.error})"
        what = " ".join(trial.overrides) or "the config as given"
        lines.append(f"#   trial {number}: {score}  {what}")
    text = "\n".join(lines) + "\n" + config_to_yaml(config)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "x", encoding="utf-8") as handle:  # never over a file written meanwhile
        handle.write(text)


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _run_trials(
    runs: list[Trial],
    config_path: Path,
    base: list[str],
    seed: int | None,
    part: Series,
    origins: np.ndarray,
    quiet: bool,
    fanout: Fanout,
) -> None:
    """Backtest every trial on `origins`: the folds of all trials as one list of fit tasks
    (forecast.fitting.executor.run_groups); each trial's MASE, or why it could not run, and
    the seconds its folds took. A trial is said as soon as it and those before it end."""
    groups: list[list[FitTask]] = []
    configs: list[Config | None] = []
    for trial in runs:
        try:
            cfg = resolve_config(config_path, base + trial.overrides, seed)
            prepare(cfg, part, rows=int(origins[0]) + 1)  # the first fold must train
        except ForecastError as exc:
            trial.error = str(exc)
            groups.append([])
            configs.append(None)
            continue
        # a trial is scored by its MASE alone: its folds calibrate no intervals (nor fit
        # the inner folds a series without validation rows would calibrate them on)
        scored = cfg.model_copy(update={"intervals": []})
        groups.append(fold_tasks(scored, part, series_backs(part, origins)))
        configs.append(cfg)

    def finished(number: int, results: list[Any]) -> None:
        trial, cfg = runs[number], configs[number]
        failed = [r for r in results if isinstance(r, ForecastError)]
        if cfg is not None and failed:
            trial.error = str(failed[0])
        elif cfg is not None:
            folds = [r for r in results if isinstance(r, FitOutcome)]
            mean = backtest_report(cfg, origins, folds, quiet=True)[0]["mean"]
            trial.mase = mean["model"]["mase"]
            trial.seasonal_naive = mean["baselines"]["seasonal_naive"]["mase"]
            trial.seconds = round(sum(f.seconds for f in folds), 3)
        if not quiet:
            shown = (
                f"MASE {trial.mase:.3g}" if trial.mase is not None else f"skipped: {trial.error}"
            )
            log.info(
                "trial %d/%d: %s: %s",
                number + 1,
                len(runs),
                " ".join(trial.overrides) or "the config as given",
                shown,
            )

    flat = [t for g in groups for t in g]
    executor = executor_for(fanout, flat)
    if not quiet and isinstance(executor, ProcessPool | OnRay):
        log.info("%d trials' folds %s", len(runs), executor.describe(len(in_chains(flat))))
    run_groups(executor, groups, finished=finished, errors="keep")
