"""Prediction intervals: which origins and steps they are calibrated on, the calibration
from the held-out model's errors there, and their scores on the test rows.

A series with no validation part (too short to spare one) is calibrated on the errors of
models fitted inside its training rows instead (cross-conformal): the fitting layer fits
them (forecast.fitting.task.inner_forecasts) and hands their out-of-sample forecasts in as
`inner`; they widen the intervals as validation errors would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from forecast.data.panel import PreparedPanel
from forecast.data.prepare import Prepared
from forecast.data.reading import SeriesId
from forecast.forecasting.forecaster import Forecaster
from forecast.forecasting.interval_scores import interval_report
from forecast.forecasting.intervals import TRAINING_ORIGINS, Calibration, calibrate, error_kind
from forecast.forecasting.original import forecast_members

CALIBRATED_STEPS = 30


@dataclass
class CalibrationPlan:
    train_origins: np.ndarray  # work rows
    val_origins: np.ndarray
    steps: int
    inner: bool = False  # no validation rows: out-of-sample errors from inner folds

    @property
    def origins(self) -> np.ndarray:
        return np.concatenate([self.train_origins, self.val_origins])


def calibration_plan(prepared: Prepared) -> CalibrationPlan | str | None:
    """The origins and steps the intervals are calibrated on, or why there are none (None
    when the config asks for none). Where the model can forecast by recursion, steps beyond
    the horizon are calibrated too (up to CALIBRATED_STEPS or the validation length), for
    `predict --horizon`."""

    cfg, split = prepared.config, prepared.split
    assert split is not None, "calibration needs a split"
    if not cfg.intervals:
        return None
    window = cfg.window
    first = max(split.val_start - 1, window.input_steps - 1)
    val_origins = np.arange(first, split.test_start - 1)  # work rows
    train_origins = np.arange(window.input_steps - 1, split.val_start - 1)[-TRAINING_ORIGINS:]
    if len(train_origins) == 0:
        return "no training origin before the validation rows to calibrate them on"
    if split.test_start == split.val_start or len(val_origins) == 0:
        # the out-of-sample errors come from models fitted inside the training rows
        return CalibrationPlan(train_origins, val_origins[:0], window.horizon, inner=True)
    steps = window.horizon
    if cfg.recursive_ok:  # `predict --horizon` may go further by recursion: calibrate that too
        steps = max(steps, min(CALIBRATED_STEPS, split.test_start - split.val_start))
    return CalibrationPlan(train_origins, val_origins, steps)


NO_INNER = (
    "no validation rows, and no model could be fitted inside the training rows to calibrate "
    "them on ({why}); set split.validation > 0, or intervals: [] to turn them off"
)
NO_VALIDATION = (  # a long table's series: one model of every series, no inner folds
    "no validation rows to calibrate them on (a long table's series need them); set "
    "split.validation > 0, or intervals: [] to turn them off"
)

Inner = tuple[np.ndarray, np.ndarray]  # inner folds' origins (n,) original rows, (n, H, K)


def calibrate_from(
    prepared: Prepared, plan: CalibrationPlan, predicted: np.ndarray, inner: Inner | None = None
) -> Calibration:
    """The Calibration from the forecasts (N, S, K) at `plan.origins`, original units, and
    for a plan without validation rows the inner folds' forecasts."""

    cfg, split, lag = prepared.config, prepared.fit_split, prepared.lag
    data, window = cfg.data, cfg.window
    n = len(plan.train_origins)
    assert (inner is not None) == plan.inner, "inner folds' forecasts are for a plan that asks"
    outside = inner if inner is not None else (plan.val_origins + lag, predicted[n:])
    return calibrate(
        prepared.target_values,
        (plan.train_origins + lag, predicted[:n]),
        outside,
        val_start=split.val_start + lag,
        test_start=split.test_start + lag,
        levels=cfg.intervals,
        kind=error_kind(data.transform),
        input_steps=window.input_steps,
        normalised=[t in data.features for t in data.targets],
        source="inner folds" if plan.inner else "validation",
    )


def score_intervals(
    report: dict[str, Any],
    calibration: Calibration | None,
    missing: str | None,
    actual: np.ndarray,  # (rows, K) original units
    origins: np.ndarray,  # (N,) original rows
    predicted: np.ndarray,  # (N, H, K)
    season: int,
    test_start: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Add `intervals` (overall and per target) to a metrics report, or why there are none,
    `intervals_calibration` (the errors they rest on), and `clip_at_zero`: the targets whose
    bounds were clipped at 0; returns the bounds lo, hi (levels, N, H, K), or None."""

    if calibration is None:
        if missing:
            report["intervals"] = {"unavailable": missing}
        return None
    bounds = calibration.bounds(predicted, calibration.scales(actual, origins))
    targets = list(report["per_target"])
    overall, per_target = interval_report(
        actual, origins, bounds, calibration.levels, calibration.kind,
        targets, season, test_start, calibration.clip_at_zero,
    )  # fmt: skip
    report["intervals"] = overall
    report["intervals_calibration"] = calibration.summary()
    clipped = [t for t, c in zip(targets, calibration.clip_at_zero, strict=False) if c]
    if clipped:
        report["clip_at_zero"] = clipped
    for target, block in per_target.items():
        report["per_target"][target]["intervals"] = block
    return bounds


def calibrate_members(
    prepared: PreparedPanel,
    forecaster: Forecaster,
    inner: dict[SeriesId, Inner | str] | None = None,
) -> tuple[dict[SeriesId, Calibration], dict[SeriesId, str]]:
    """Each member's intervals, calibrated on its own training and validation origins (one
    batched forecast for all), or where it has no validation rows on its `inner` folds'
    forecasts: (id -> Calibration, id -> why it has none)."""
    plans: dict[SeriesId, CalibrationPlan] = {}
    outside: dict[SeriesId, Inner] = {}  # the inner folds' forecasts of the plans that need them
    missing: dict[SeriesId, str] = {}
    for sid, member in prepared.members.items():
        plan = calibration_plan(member)
        found = (inner or {}).get(sid)
        if not isinstance(plan, CalibrationPlan):
            if plan is not None:
                missing[sid] = plan
        elif plan.inner and found is None:
            missing[sid] = NO_VALIDATION  # a long table's series: no inner folds
        elif plan.inner and isinstance(found, str):
            # the inner fold's error without its own advice (fewer folds...), which is a
            # backtest's: this line ends with what to do here
            missing[sid] = NO_INNER.format(why=found.split("; ")[0].rstrip("."))
        else:
            plans[sid] = plan
            if plan.inner and isinstance(found, tuple):
                outside[sid] = found
    calibrations: dict[SeriesId, Calibration] = {}
    for steps in sorted({p.steps for p in plans.values()}):
        same = [i for i, p in plans.items() if p.steps == steps]
        # a few series' forecasts at a time: memory stays flat in the number of series
        for chunk in _chunks(same, lambda i: len(plans[i].origins), CALIBRATION_ORIGINS):
            origins = {i: plans[i].origins for i in chunk}
            predicted = forecast_members(prepared, forecaster, origins, steps)
            for sid in chunk:
                calibrations[sid] = calibrate_from(
                    prepared.members[sid], plans[sid], predicted[sid], outside.get(sid)
                )
    return calibrations, missing


CALIBRATION_ORIGINS = 20_000  # origins forecast at once when calibrating many series


def _chunks(
    ids: list[SeriesId], size: Callable[[SeriesId], int], limit: int
) -> list[list[SeriesId]]:
    """`ids` in consecutive groups of at most `limit` total size (one id may exceed it)."""
    groups: list[list[SeriesId]] = [[]]
    total = 0
    for i in ids:
        if groups[-1] and total + size(i) > limit:
            groups.append([])
            total = 0
        groups[-1].append(i)
        total += size(i)
    return [g for g in groups if g]
