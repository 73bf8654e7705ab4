"""The unit of work: one fit of one model on one slice of data, and what it gives back.

A `FitTask` names a config, its data (one series, or a long table's series trained on
together as one model), how many rows at the end of every series are held back (the
future a backtest fold forecasts) and the seed. `run_task` refits everything on the rows
before them (holes, transform, scaler, residual base, model), forecasts the held-back rows
from the last row kept, calibrates the intervals and scores model and baselines: a
`FitOutcome`. Both are plain data that pickle, so an executor (forecast.fitting.executor)
may run a list of tasks in this process, in worker processes or on other machines.

One series is a long table of one: the same code prepares, fits, forecasts and scores it,
and only its reports carry no id.

    series A rows 0..39, back 4:  fit on rows 0..35, forecast rows 36..39, score them

A backtest's later folds may continue from the model of the fold before them
(`training.fold_start: previous`, the default) instead of training a new one: a task that
`hands_off` gives its model's weights back (Handoff), and the `chained` task after it,
given them as `start`, keeps that model's residual base and trains on its own training
rows for a quarter of the epochs that model's fit found best (as a final fit continues
from the held-out weights), without early stopping; its validation rows stay unseen, so
they still choose between what it learnt and the base alone (fit.base_or_trained) and
calibrate its intervals. A fold after one whose fit kept its base trains a new model.
`continued` hands them on; a FoldChain runs such folds in order in one place (one worker
process), so that the later ones reuse the model the first one built.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from forecast.config.schema import Config
from forecast.data.panel import PreparedPanel, as_panel, prepare_panel
from forecast.data.reading import Panel, Series, SeriesId
from forecast.errors import ForecastError
from forecast.fitting.fit import Compiled, final_epochs, fit, layer_weights
from forecast.fitting.members import MemberFit, MemberTask, fit_members, independent
from forecast.fitting.residual import choose_residual
from forecast.forecasting.calibration import (
    CalibrationPlan,
    Inner,
    calibrate_members,
    calibration_plan,
)
from forecast.forecasting.forecaster import Forecaster
from forecast.forecasting.original import forecast_members
from forecast.forecasting.scoring import score_fold
from forecast.model.tf_setup import import_tensorflow_quietly

Bounds = tuple[np.ndarray, np.ndarray]  # lo, hi: (levels, 1, H, K) original units


@dataclass(frozen=True)
class Handoff:
    """A fold's fitted model, for the next fold to continue from: its layer weights
    (fit.layer_weights), the epochs the next fold trains (a quarter of this fit's best
    epoch count, as fit.final_epochs gives a final fit; a continued fold hands on its own,
    also where it kept the base: its head zeroed) and which model they are (model_key).
    A new fit whose best epoch was 0 (its residual base) hands nothing off."""

    weights: dict[str, list[np.ndarray]]
    epochs: int
    model: str
    residual: str  # the base `residual: auto` chose for it, which the next fold keeps


@dataclass(frozen=True)
class FitTask:
    """Fit `config` on `data` without its last `back` rows (every series'), forecast them."""

    config: Config
    data: Series | Panel
    back: int  # rows held back at the end of every series: what is forecast and scored
    number: int = 1  # the fold's number in its backtest (its reports say it)
    seed: int | None = None  # None: the config's seed
    hands_off: bool = False  # give the fitted model back for the next fold (Handoff)
    chained: bool = False  # continue from the model of the task before it, where it gave one
    start: Handoff | None = None  # that model (continued() sets it)

    @property
    def label(self) -> str:
        return f"fold {self.number}"

    def run(self, compiled: Compiled | None = None) -> FitOutcome:
        return run_task(self, compiled)

    @property
    def run_config(self) -> Config:
        """The config this task fits: the seed given, else the config's own."""
        if self.seed is None or self.seed == self.config.seed:
            return self.config
        return self.config.model_copy(update={"seed": self.seed})


@dataclass
class FitOutcome:
    """What one task gives back, per series id (None: the one series of a CSV)."""

    number: int
    reports: list[dict[str, Any]]  # backtest.json rows (a long table's start with the id)
    forecasts: dict[SeriesId, np.ndarray]  # (H, K) original units
    residuals: dict[SeriesId, np.ndarray]  # actual - forecast (H, K); NaN at a hole
    bounds: dict[SeriesId, Bounds]  # where the series has intervals
    season: int  # the season the model was built with
    seconds: float
    handoff: Handoff | None = None  # the fitted model, where the task hands it off


def run_task(task: FitTask, compiled: Compiled | None = None) -> FitOutcome:
    """Prepare, fit, forecast, calibrate and score one task; with `compiled`, reusing the
    models an earlier task of the same shape built (fitting.fit.Compiled: the same result
    as a new model)."""
    started = time.perf_counter()
    config, panel = task.run_config, as_panel(task.data)
    fitted = _fitted(config, panel, task.back, compiled, task.start, task.hands_off)
    prepared, forecaster = fitted.prepared, fitted.forecaster
    inner = inner_forecasts(config, panel, prepared)
    outcome = _score(task, config, panel, prepared, forecaster, started, inner)
    outcome.handoff = fitted.handoff
    for report in outcome.reports:  # where this fold's model began
        report["start"] = "previous fold" if fitted.continued else "new model"
    return outcome


def continued(task: Work, before: object) -> Work:
    """`task` as it runs after `before` (the result of the task before it in its list): a
    chained task given the model `before` handed off (which `before` then lets go of),
    else as it is (the first fold)."""
    if isinstance(task, FitTask) and task.chained and isinstance(before, FitOutcome):
        start, before.handoff = before.handoff, None  # handed on: not kept with the results
        return task if start is None else replace(task, start=start)
    return task


@dataclass
class _Fitted:
    prepared: PreparedPanel
    forecaster: Forecaster
    handoff: Handoff | None = None
    continued: bool = False  # from `start`'s weights


def model_key(prepared: PreparedPanel) -> str:
    """What a fold's weights fit: the chosen model, window, inputs and season."""
    cfg = prepared.config
    return json.dumps(
        [
            cfg.model.model_dump(mode="json"),
            cfg.window.model_dump(mode="json"),
            cfg.data.inputs,
            prepared.combined.season,
        ],
        sort_keys=True,
    )


def _keeping(prepared: PreparedPanel, start: Handoff) -> PreparedPanel | None:
    """`prepared` with the residual base of the model `start` holds, if its weights fit it
    (the same model_key), else None: that fold starts anew."""
    made = prepared.config  # calendar: auto made concrete
    if made.model.residual == "auto":
        model = made.model.model_copy(update={"residual": start.residual})
        prepared = prepared.with_config(made.model_copy(update={"model": model}))
    return prepared if model_key(prepared) == start.model else None


def _fitted(
    config: Config,
    panel: Panel,
    back: int,
    compiled: Compiled | None,
    start: Handoff | None = None,
    hands_off: bool = False,
) -> _Fitted:
    """`panel` without its last `back` rows prepared (`residual: auto` chosen on them) and
    fitted, from `start` where it is the same model: the prepared data, the forecaster of
    the fitted model and, with `hands_off`, the model for the next fold (see Handoff)."""
    import_tensorflow_quietly()
    prepared = prepare_panel(config, panel, back=back)
    kept = _keeping(prepared, start) if start is not None else None
    if kept is not None:  # the model it continues from, its residual base included
        prepared = kept
    else:
        chosen = choose_residual(prepared.combined)  # `residual: auto` made concrete
        prepared = prepared.with_config(chosen.config)
    compiled = compiled if compiled is not None else Compiled()
    inputs, targets = (
        prepared.config.data.inputs,
        config.data.targets,
    )  # calendar: auto made concrete
    if independent(prepared.config):  # its members one after another, a new model each fold
        model, _, _ = fit_members(prepared.combined, quiet=True, compiled=compiled)
        return _Fitted(prepared, Forecaster(model, inputs, targets))
    key = model_key(prepared)
    if start is not None and kept is not None:
        model, result, _ = fit(
            prepared.combined, quiet=True, compiled=compiled, start=start.weights,
            epochs=start.epochs,
        )  # fmt: skip
        epochs = start.epochs
    else:
        model, result, _ = fit(prepared.combined, quiet=True, compiled=compiled)
        best = result.best_epoch  # None: no early stopping, every epoch ran
        epochs = final_epochs(len(result.history) if best is None else best, "held_out")
    handoff = None
    if hands_off and epochs > 0:  # 0: no epoch beat the base: the next fold starts anew
        # copies of the weights: the slot is reused
        handoff = Handoff(layer_weights(model), epochs, key, prepared.config.model.residual)
    forecaster = compiled.forecaster(model, inputs, targets)
    return _Fitted(prepared, forecaster, handoff, kept is not None)


def _from_last_row(
    prepared: PreparedPanel, forecaster: Forecaster, horizon: int
) -> dict[SeriesId, np.ndarray]:
    """Every series' forecast from its last prepared row: id -> (1, H, K) original units."""
    last = {i: np.array([len(m.scaled) - 1]) for i, m in prepared.members.items()}
    return forecast_members(prepared, forecaster, last, horizon)


INNER_FOLDS = 3  # models fitted inside the training rows of a series without validation rows
# their models, kept apart from the outer fits' (which forecast after them, and whose
# weights a reused slot would reset); the inner folds of one fit share one shape
INNER = Compiled(limit=2)


def inner_forecasts(
    config: Config, panel: Panel, prepared: PreparedPanel
) -> dict[SeriesId, Inner | str]:
    """Where a series has no validation rows to calibrate its intervals on: the forecasts of
    up to INNER_FOLDS models fitted inside its training rows, each from its own last row (out
    of sample for it): id -> (origins (n,) original rows, forecasts (n, H, K) original
    units), or where no inner fold could be fitted, why (the first one's error). Nothing for
    a long table's series (one model of every series) or without intervals.

    The origins (inner_origins) keep as many rows as they can: the training rows less one
    horizon, then a third of a horizon more at a time (steps that would land on the test rows
    are not used). `config` is the fit's own (before `residual: auto` was chosen): each
    inner fold prepares, chooses and fits on its rows as a backtest fold does, and forecasts
    from its last row; it calibrates and scores nothing."""
    if prepared.one is None or not config.intervals:
        return {}
    plan = calibration_plan(prepared.members[None])
    if not (isinstance(plan, CalibrationPlan) and plan.inner):
        return {}
    member, rows = prepared.members[None], len(panel.members[None].frame)
    seen = member.fit_split.test_start + member.lag  # the rows the fit learnt from
    plain = config.model_copy(update={"intervals": []})
    horizon = config.window.horizon
    origins, forecasts, failed = [], [], []
    for origin in inner_origins(seen, horizon):
        try:  # fitted and forecast only: nothing after the origin is read or scored
            fold = _fitted(plain, panel, rows - 1 - origin, INNER)
            forecasts.append(_from_last_row(fold.prepared, fold.forecaster, horizon)[None][0])
        except ForecastError as exc:  # too few rows before this origin, a diverging fit...
            failed.append(str(exc))
            continue
        origins.append(origin)
    if not origins:  # why, for intervals.unavailable: the first inner fold's error
        return {None: failed[0] if failed else "no row to fit an inner fold on"}
    return {None: (np.array(origins), np.stack(forecasts))}


def inner_origins(seen: int, horizon: int) -> list[int]:
    """The inner folds' origins (original rows) for a fit on the first `seen` rows: from the
    last whose every step lands before row `seen` (seen - 1 - horizon), forward by a third of
    a horizon while a step still lands there, then back (a short horizon): INNER_FOLDS at most.

        seen 24, horizon 6:  17, 19, 21   (6, 4 and 2 steps before row 24)
        seen 24, horizon 1:  22, 21, 20"""
    first, stride = seen - 1 - horizon, max(1, -(-horizon // INNER_FOLDS))
    forward = list(range(first, seen - 1, stride))
    back = [first - stride * k for k in range(1, INNER_FOLDS)]
    return [o for o in forward + back if o >= 0][:INNER_FOLDS]


def _score(
    task: FitTask,
    config: Config,
    panel: Panel,
    prepared: PreparedPanel,
    forecaster: Forecaster,
    started: float,
    inner: dict[SeriesId, Inner | str],
) -> FitOutcome:
    horizon = config.window.horizon
    predicted = _from_last_row(prepared, forecaster, horizon)  # id -> (1, H, K)
    calibrations, missing = calibrate_members(prepared, forecaster, inner)
    id_column = config.data.id_column
    outcome = FitOutcome(task.number, [], {}, {}, {}, prepared.combined.season, 0.0)
    for sid, member in prepared.members.items():
        origin = len(member.values) - 1  # original rows of the series
        report, bounds = score_fold(
            config, panel.members[sid], origin, task.number, predicted[sid], member.season,
            calibrations.get(sid), missing.get(sid),
            head=None if id_column is None else {id_column: sid},  # first, as in the CSVs
        )  # fmt: skip
        outcome.reports.append(report)
        outcome.forecasts[sid] = predicted[sid][0]
        actual = panel.members[sid].values[origin + 1 : origin + 1 + horizon]
        outcome.residuals[sid] = actual[:, config.data.target_index] - predicted[sid][0]
        if bounds is not None:
            outcome.bounds[sid] = bounds
    outcome.seconds = round(time.perf_counter() - started, 3)
    for report in outcome.reports:
        report["seconds"] = outcome.seconds  # the task's one fit, shared by its series
    return outcome


@dataclass(frozen=True)
class FoldChain:
    """A backtest's folds, run in order in one place (a worker process, a Ray task), each
    chained one from the model of the one before it (`continued`): the outcomes in order."""

    tasks: tuple[FitTask, ...]

    @property
    def config(self) -> Config:
        return self.tasks[0].config

    @property
    def data(self) -> Series | Panel:
        return self.tasks[0].data

    @property
    def label(self) -> str:
        return f"folds {self.tasks[0].number}-{self.tasks[-1].number}"

    def run(self, compiled: Compiled | None = None) -> list[FitOutcome]:
        compiled = compiled if compiled is not None else Compiled()
        outcomes: list[FitOutcome] = []
        for task in self.tasks:
            ready = continued(task, outcomes[-1] if outcomes else None)
            assert isinstance(ready, FitTask)
            outcomes.append(ready.run(compiled))
        return outcomes


# What an executor runs: a fold (a backtest's, a trial's), the chained folds of one
# backtest, or one member of an ensemble
Work = FitTask | FoldChain | MemberTask
Done = FitOutcome | list[FitOutcome] | MemberFit


def with_data(task: Work, data: Any) -> Work:
    """`task` on `data` (a FoldChain's every fold): Ray ships the data apart, once."""
    if isinstance(task, FoldChain):
        return FoldChain(tuple(replace(t, data=data) for t in task.tasks))
    return replace(task, data=data)
