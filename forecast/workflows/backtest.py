"""Rolling-origin evaluation: K origins `horizon` rows apart, the last fold ending at the last row.

Each fold refits everything (holes, transform, scaler, model) on the rows up to and including
its origin and forecasts the next `horizon` rows; the model and the baselines are scored on
them. Every fold is one fit task (forecast.fitting.task); the folds of several backtests
go to the executor as one list (`run_backtest_plans`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
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
from forecast.fitting.executor import (
    IN_TURN,
    Executor,
    Fanout,
    InProcess,
    ProcessPool,
    executor_for,
    in_chains,
    run_groups,
)
from forecast.fitting.onray import OnRay
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


def fold_tasks(config: Config, data: Series | Panel, backs: Iterable[int]) -> list[FitTask]:
    """One fit task per fold: `backs` rows left out at the end of every series. With
    `training.fold_start: previous`, each fold after the first continues from the model of
    the one before it (forecast.fitting.task: Handoff); an ensemble trains new members
    every fold."""
    backs = [int(back) for back in backs]
    chain = config.training.fold_start == "previous" and config.model.ensemble == 1
    return [
        FitTask(config, data, back, n, hands_off=chain and n < len(backs), chained=chain and n > 1)
        for n, back in enumerate(backs, start=1)
    ]


def run_folds(
    config: Config,
    data: Series | Panel,
    backs: Iterable[int],
    quiet: bool,
    fanout: Fanout = IN_TURN,
) -> list[FitOutcome]:
    """Every fold as one fit task (forecast.fitting.task), in turn, in worker processes or
    on Ray: the outcomes in fold order. One series and a long table alike; only what is
    said on the way differs."""
    tasks = fold_tasks(config, data, backs)
    executor = _executor(fanout, tasks, quiet)
    groups = run_groups(executor, [tasks], *_fold_lines([tasks], quiet))
    return [f for f in groups[0] if isinstance(f, FitOutcome)]


def _executor(fanout: Fanout, tasks: list[FitTask], quiet: bool) -> Executor:
    executor = executor_for(fanout, tasks)
    if not quiet and isinstance(executor, ProcessPool | OnRay):
        log.info("%d folds %s", len(tasks), executor.describe(len(in_chains(tasks))))
    return executor


def _fold_lines(groups: list[list[FitTask]], quiet: bool) -> tuple[Any, None, Any]:
    """(started, finished, done) for run_groups: "fold 2/3: ..." as each fold starts and
    ends (nothing when quiet)."""
    if quiet:
        return None, None, None

    def started(g: int, k: int, task: FitTask) -> None:
        log.info("fold %d/%d: %s", task.number, len(groups[g]), _fold_plan(task))

    def done(g: int, k: int, result: Any) -> None:
        if isinstance(result, FitOutcome):
            log.info("fold %d/%d: %s", result.number, len(groups[g]), _fold_score(result))

    return started, None, done


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
    began = (
        f", from fold {outcome.number - 1}'s model" if reports[0]["start"] != "new model" else ""
    )
    if None in outcome.forecasts:  # one series
        return f"model MASE {shown}{began}"
    return f"model MASE {shown} (mean over {len(reports)} series){began}"


def run_backtest(
    config: Config,
    series: Series,
    origins: np.ndarray,
    quiet: bool,
    fanout: Fanout = IN_TURN,
) -> tuple[dict[str, Any], np.ndarray, Bounds | None]:
    """Every fold of one series: (backtest.json's content, forecasts (folds, H, K),
    interval bounds lo, hi (levels, folds, H, K) or None)."""
    folds = run_folds(config, series, series_backs(series, origins), quiet, fanout)
    return backtest_report(config, origins, folds, quiet)


def series_backs(series: Series, origins: np.ndarray) -> np.ndarray:
    """The rows each fold leaves out after its origin."""
    return len(series.frame) - 1 - np.asarray(origins)


def backtest_report(
    config: Config, origins: np.ndarray, folds: list[FitOutcome], quiet: bool
) -> tuple[dict[str, Any], np.ndarray, Bounds | None]:
    """One series' folds put together: what `run_backtest` returns."""
    horizon = config.window.horizon
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
    `mean` is the mean over series of each series' mean over its folds; `per_series` holds
    those."""
    return panel_report(config, backs, run_folds(config, panel, backs, quiet), quiet)


def panel_report(
    config: Config, backs: list[int], folds: list[FitOutcome], quiet: bool
) -> tuple[dict[str, Any], list[dict[SeriesId, np.ndarray]]]:
    """A long table's folds put together: what `run_panel_backtest` returns."""
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
    fanout: Fanout = Fanout()


def check_backtest(
    config: Config | str | Path,
    folds: int = 3,
    overrides: list[str] | None = None,
    seed: int | None = None,
    step: int | None = None,
    fanout: Fanout = IN_TURN,
) -> BacktestPlan:
    """The config, its data and folds, with every check `backtest` makes before it fits
    anything (options, columns, rows for the folds, --workers and --ray): the user errors
    it raises up front, without TensorFlow."""

    fanout.check()
    cfg = resolve_config(config, overrides, seed)
    if cfg.data.id_column is not None:
        panel = read_panel(cfg.data)
        return BacktestPlan(cfg, panel, panel_backs(cfg, panel, folds, step), fanout)
    series = read_series(cfg.data)
    return BacktestPlan(cfg, series, check_folds(cfg, series, folds, step), fanout)


def run_backtest_plan(
    plan: BacktestPlan, runs_dir: str | Path = "runs", quiet: bool = False
) -> BacktestResult:
    """Run a checked backtest and save its run directory. A long table: in each fold one
    model refitted on every series up to its own origin; backtest.json rows per fold and
    series, `per_series`, and their mean."""
    return run_backtest_plans([plan], runs_dir, quiet)[0]


def run_backtest_plans(
    plans: list[BacktestPlan],
    runs_dir: str | Path = "runs",
    quiet: bool = False,
    starting: Callable[[int], None] | None = None,
    each: Callable[[int, BacktestResult], None] | None = None,
) -> list[BacktestResult]:
    """Run checked backtests, the folds of all of them as one list of fit tasks (here in
    turn, in worker processes or on Ray: the plans' `fanout`), and save each one's run
    directory as soon as it and those before it are complete: `each(i, result)` then.
    `starting(i)` before plan i's first fold, where the folds run here in turn."""
    layout.check_runs_dir(Path(runs_dir))  # before the folds, not after them
    groups = [fold_tasks(p.config, p.data, _plan_backs(p)) for p in plans]
    flat = [t for g in groups for t in g]
    executor = _executor(plans[0].fanout, flat, quiet)  # one for every plan's folds
    placed = executor.record(len(in_chains(flat)))  # backtest.json's `fanout`
    inline = isinstance(executor, InProcess)
    if not inline:  # the folds of every plan start at once
        for plan in plans:
            _announce(plan, quiet)
    started, _, done = _fold_lines(groups, quiet)
    results: list[BacktestResult] = []

    def on_started(g: int, k: int, task: Any) -> None:
        if k == 0:
            if starting is not None:
                starting(g)
            _announce(plans[g], quiet)
        if started is not None:
            started(g, k, task)

    def finished(g: int, outcomes: list[Any]) -> None:
        folds = [f for f in outcomes if isinstance(f, FitOutcome)]
        results.append(_save_plan(plans[g], folds, Path(runs_dir), quiet, placed))
        if each is not None:
            each(g, results[-1])

    run_groups(executor, groups, on_started if inline else None, finished, done)
    return results


def _plan_backs(plan: BacktestPlan) -> Iterable[int]:
    if isinstance(plan.data, Panel):
        return plan.origins  # a long table's plan holds each fold's rows back
    return series_backs(plan.data, np.asarray(plan.origins))


def _announce(plan: BacktestPlan, quiet: bool) -> None:
    """The layout line, with the calendar columns `auto` chose (as train says it)."""
    if not quiet:
        data = plan.data
        series = next(iter(data.members.values())) if isinstance(data, Panel) else data
        log_layout(with_calendar(plan.config, series))


def _save_plan(
    plan: BacktestPlan,
    folds: list[FitOutcome],
    runs_dir: Path,
    quiet: bool,
    placed: dict[str, Any],
) -> BacktestResult:
    """backtest.json (with `fanout`: where the folds ran, and why there) and its figure
    from a plan's folds, in a new run directory."""
    from forecast.plots.backtest import backtest_figure, panel_backtest_figure  # matplotlib

    cfg, data, origins = plan.config, plan.data, plan.origins
    if isinstance(data, Panel):  # data.id_column: a long table
        assert isinstance(origins, list)
        report, forecasts = panel_report(cfg, origins, folds, quiet)

        def draw(path: Path) -> None:
            panel_backtest_figure(
                data, cfg, report, forecasts, origins, path, write=atomic.write_atomic
            )

    else:
        assert isinstance(origins, np.ndarray)
        report, predicted, bounds = backtest_report(cfg, origins, folds, quiet)

        def draw(path: Path) -> None:
            backtest_figure(
                data.frame, cfg, origins, predicted, path, bounds, write=atomic.write_atomic
            )

    report["fanout"] = placed
    run_dir = write.write_backtest(runs_dir, cfg, report, draw)
    return BacktestResult(run_dir, run_dir / "backtest.json", report)
