"""Rolling-origin evaluation: K origins `horizon` rows apart, the last fold ending at the last row.

Each fold refits everything (holes, transform, scaler, model) on the rows up to and including
its origin and forecasts the next `horizon` rows; the model and the baselines are scored on
them. `run_fold` is one fold, a plain function of (config, series, origin) that a worker
process can run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forecast.config.schema import Config
from forecast.data.panel import check_model, prepare_panel
from forecast.data.prepare import prepare, with_calendar
from forecast.data.reading import Panel, Series, SeriesId, read_panel, read_series
from forecast.data.timesteps import time_labels
from forecast.errors import ConfigError, DataError
from forecast.fitting.announce import log_layout
from forecast.fitting.executor import ProcessPool, executor_for
from forecast.fitting.task import Bounds, FitOutcome, FitTask
from forecast.forecasting.evaluation import verdict
from forecast.forecasting.intervals import clip_note
from forecast.forecasting.scoring import mean_of_folds, mean_reports
from forecast.runs import atomic, layout, write
from forecast.workflows.loading import resolve_config

log = logging.getLogger("forecast")


def backtest_origins(rows: int, folds: int, horizon: int, step: int | None = None) -> np.ndarray:
    """K origins `step` rows apart (default `horizon`); the last fold's forecast ends at the
    last row."""
    last = rows - 1 - horizon
    return last - (horizon if step is None else step) * np.arange(folds - 1, -1, -1)


def check_fold_options(folds: int, step: int | None) -> None:
    """--folds and --step as a backtest of one series or of a long table takes them."""
    if folds < 1:
        raise ConfigError(f"--folds must be >= 1, got {folds}")
    if step is not None and step < 1:
        raise ConfigError(f"--step must be >= 1 (rows between fold origins), got {step}")


def check_folds(config: Config, series: Series, folds: int, step: int | None = None) -> np.ndarray:
    """The folds' origins, or a user error when the series cannot hold them."""
    check_fold_options(folds, step)
    horizon = config.window.horizon
    origins = backtest_origins(len(series.frame), folds, horizon, step)
    if origins[0] < 0:
        apart = "" if step is None else f", {step} rows apart"
        raise DataError(
            f"{series.path}: {len(series.frame)} rows cannot hold {folds} folds of horizon "
            f"{horizon}{apart}; use fewer --folds{' or a smaller --step' if step else ''}"
        )
    first = prepare(config, series, rows=int(origins[0]) + 1)  # the fold with fewest rows
    check_model(first.config, first.fit_split.train_origins)
    return origins


def run_folds(
    config: Config, data: Series | Panel, backs: Iterable[int], quiet: bool, workers: int = 1
) -> list[FitOutcome]:
    """Every fold as one fit task (forecast.fitting.task), in turn or in `workers`
    processes: the outcomes in fold order. One series and a long table alike; only what
    is said on the way differs."""
    tasks = [FitTask(config, data, int(back), n) for n, back in enumerate(backs, start=1)]
    executor = executor_for(workers if len(tasks) > 1 else 1)
    if not quiet and isinstance(executor, ProcessPool):
        processes, threads = executor.threads(len(tasks))
        log.info("%d folds in %d worker processes, %d thread(s) each", len(tasks), processes,
                 threads)  # fmt: skip

    def started(_: int, task: FitTask) -> None:
        if not quiet:
            log.info("fold %d/%d: %s", task.number, len(tasks), _fold_plan(task))

    def done(_: int, outcome: FitOutcome) -> None:
        if not quiet:
            log.info("fold %d/%d: %s", outcome.number, len(tasks), _fold_score(outcome))

    return [f for f in executor.run(tasks, started, done) if isinstance(f, FitOutcome)]


def _fold_plan(task: FitTask) -> str:
    horizon = task.config.window.horizon
    if isinstance(task.data, Panel):
        return f"every series' last {task.back} rows held out, forecasting {horizon} of them"
    times = time_labels(task.data.index)
    origin = len(task.data.frame) - 1 - task.back
    return (
        f"origin {times[origin]}, fitting on {origin + 1} rows, forecasting "
        f"{times[origin + 1]} .. {times[origin + horizon]}"
    )


def _fold_score(outcome: FitOutcome) -> str:
    reports = outcome.reports
    mase = mean_reports([r["model"]["mase"] for r in reports])
    shown = "n/a" if mase is None else f"{mase:.3g}"
    if None in outcome.forecasts:  # one series
        return f"model MASE {shown}"
    return f"model MASE {shown} (mean over {len(reports)} series)"


def run_backtest(
    config: Config, series: Series, origins: np.ndarray, quiet: bool, workers: int = 1
) -> tuple[dict[str, Any], np.ndarray, Bounds | None]:
    """Every fold of one series: (backtest.json's content, forecasts (folds, H, K),
    interval bounds lo, hi (levels, folds, H, K) or None)."""
    horizon = config.window.horizon
    backs = len(series.frame) - 1 - np.asarray(origins)
    folds = run_folds(config, series, backs, quiet, workers)
    reports = [f.reports[0] for f in folds]
    if not quiet and (note := clip_note(reports, "folds")):
        log.info("%s", note)
    result: dict[str, Any] = {
        "layout": config.layout,
        "horizon": horizon,
        "step": int(origins[1] - origins[0]) if len(origins) > 1 else horizon,
        "folds": reports,
        "mean": mean_of_folds(reports),
        "season_length": folds[0].season,
    }
    where = f"averaged over {len(origins)} backtest folds"
    result["verdict"] = verdict(result["mean"], config.model.label(), where=where)
    bounds = None
    if all(None in f.bounds for f in folds):
        lo = np.concatenate([f.bounds[None][0] for f in folds], axis=1)  # (levels, folds, H, K)
        bounds = (lo, np.concatenate([f.bounds[None][1] for f in folds], axis=1))
    return result, np.stack([f.forecasts[None] for f in folds]), bounds


# --------------------------------------------------------------------------- long tables


def panel_backs(config: Config, panel: Panel, folds: int, step: int | None = None) -> list[int]:
    """For each fold, the rows left out at the end of every series of a long table (the
    last fold's forecast ends at each series' last row), or a user error when no series can
    hold the first fold."""
    check_fold_options(folds, step)
    horizon = config.window.horizon
    apart = horizon if step is None else step
    backs = [horizon + apart * (folds - k) for k in range(1, folds + 1)]

    prepare_panel(config, panel, back=backs[0])  # the first fold has the fewest rows
    return backs


def run_panel_backtest(
    config: Config, panel: Panel, backs: list[int], quiet: bool
) -> tuple[dict[str, Any], list[dict[SeriesId, np.ndarray]]]:
    """Every fold of a long table: (backtest.json's content, per fold id -> forecast (H, K)).
    `mean` is the mean over series of each series'
    mean over its folds; `per_series` holds those."""

    folds = run_folds(config, panel, backs, quiet)
    rows = [r for f in folds for r in f.reports]
    forecasts = [dict(f.forecasts) for f in folds]
    if not quiet and (note := clip_note(rows, "series folds")):
        log.info("%s", note)
    id_column = config.data.id_column
    assert id_column is not None, "a long table names its series"
    per_series = {
        sid: mean_of_folds([r for r in rows if r[id_column] == sid])
        for sid in dict.fromkeys(r[id_column] for r in rows)
    }
    result: dict[str, Any] = {
        "layout": config.layout,
        "horizon": config.window.horizon,
        "step": backs[0] - backs[1] if len(backs) > 1 else config.window.horizon,
        "series": len(per_series),
        "folds": rows,
        "mean": mean_reports(list(per_series.values())),
        "per_series": per_series,
        "season_length": folds[0].season,  # the season the model was built with
    }
    where = f"averaged over {len(backs)} backtest folds and {len(per_series)} series"
    result["verdict"] = verdict(result["mean"], config.model.label(), where=where)
    return result, forecasts


@dataclass
class BacktestResult:
    run_dir: Path
    path: Path  # backtest.json
    report: dict[str, Any]


@dataclass
class BacktestPlan:
    """A backtest checked and ready to run (`check_backtest`)."""

    config: Config
    data: Series | Panel  # the Series, or a long table's Panel
    origins: np.ndarray | list[int]  # fold origins, or for a long table each fold's rows back
    workers: int = 1


def check_backtest(
    config: Config | str | Path,
    folds: int = 3,
    overrides: list[str] | None = None,
    seed: int | None = None,
    step: int | None = None,
    workers: int = 1,
) -> BacktestPlan:
    """The config, its data and folds, with every check `backtest` makes before it fits
    anything (options, columns, rows for the folds): the user errors it raises up front,
    without TensorFlow."""

    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    cfg = resolve_config(config, overrides, seed)
    if cfg.data.id_column is not None:
        if workers > 1:
            raise ConfigError("--workers: not yet for long tables (data.id_column); use 1")
        panel = read_panel(cfg.data)
        return BacktestPlan(cfg, panel, panel_backs(cfg, panel, folds, step))
    series = read_series(cfg.data)
    return BacktestPlan(cfg, series, check_folds(cfg, series, folds, step), workers)


def run_backtest_plan(
    plan: BacktestPlan, runs_dir: str | Path = "runs", quiet: bool = False
) -> BacktestResult:
    """Run a checked backtest and save its run directory. A long table: in each fold one
    model refitted on every series up to its own origin; backtest.json rows per fold and
    series, `per_series`, and their mean."""
    from forecast.plots.backtest import backtest_figure, panel_backtest_figure  # matplotlib

    layout.check_runs_dir(Path(runs_dir))  # before the folds, not after them
    cfg, data, origins = plan.config, plan.data, plan.origins
    if not quiet:  # the calendar columns `auto` chose, as train says them
        series = next(iter(data.members.values())) if isinstance(data, Panel) else data
        log_layout(with_calendar(cfg, series))
    if isinstance(data, Panel):  # data.id_column: a long table
        assert isinstance(origins, list)
        report, forecasts = run_panel_backtest(cfg, data, origins, quiet)

        def draw(path: Path) -> None:
            panel_backtest_figure(
                data, cfg, report, forecasts, origins, path, write=atomic.write_atomic
            )

    else:
        assert isinstance(origins, np.ndarray)
        report, predicted, bounds = run_backtest(cfg, data, origins, quiet, plan.workers)

        def draw(path: Path) -> None:
            backtest_figure(
                data.frame, cfg, origins, predicted, path, bounds, write=atomic.write_atomic
            )

    run_dir = write.write_backtest(Path(runs_dir), cfg, report, draw)
    return BacktestResult(run_dir, run_dir / "backtest.json", report)
