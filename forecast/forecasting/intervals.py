"""Prediction intervals, calibrated without the test rows.

The held-out model forecasts from every training origin (the last `TRAINING_ORIGINS` of them)
and every validation origin, and each step's error is divided by the *window scale* of its
origin: the mean absolute step of the target over the input window, so that errors from calm
and volatile stretches, low and high levels, are comparable (targets that are not inputs are
not divided). Then, per horizon step h:

1. the half-width in window-scale units is the ceil((n+1) L/100)-th smallest of the n
   training errors of step h (steps with too few borrow those of the nearest steps);
2. it is widened by the out-of-sample ratio: the mean scaled error of the validation
   forecasts over the mean scaled training error at the same steps (never below 1). This
   measures how much worse the model does on rows it was not fitted to;
3. at a forecast origin it is multiplied by that origin's window scale.

A series too short to spare a validation part takes its out-of-sample errors from inner
folds instead: up to 3 models fitted on its training rows without their last rows (one
horizon, then ceil(H/3) rows fewer at a time; forecast.fitting.task.inner_origins), each
forecasting from its own last row (cross-conformal; `source` "inner folds").
Those forecasts are out of sample for the models that made them, as validation forecasts
are for the held-out model, and they widen the intervals in the same way (step 2).

Measured on the development set's backtests (benchmarks/README.md), this covered 81% of
actuals with the 80% interval and 95% with the 95% one, where conformal quantiles of the
validation errors alone covered 70% and 79%: the validation part is short (often one
horizon) and early stopping picks the epoch that fits it best, so its errors are optimistic.

A target whose every value before the test part is >= 0 (counts, sales, prices) gets its bounds
clipped at 0 (the point forecasts are left as the model made them): `clip_at_zero` in
intervals.json, and coverage, width and MSIS are scored on the clipped bounds (seasonal naive's
too, so the comparison stays fair).

Errors are measured on the scale the series is modelled on: log ratios log(actual /
forecast) when `data.transform` is log or log_diff (bands widen with the level), else
differences actual - forecast.

Seasonal naive gets its own empirical interval: per-step conformal quantiles of its errors at
every origin before the test part (it fits nothing, so they are all out of sample).

Arrays: errors per step (n_h, K); window scales (N, K); bounds (levels, N, H, K).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

TRAINING_ORIGINS = 500  # the training origins whose errors shape the intervals, at most


def label(level: float) -> str:
    """80 -> '80', 97.5 -> '97.5': the level as it appears in column names and JSON keys."""
    return f"{level:g}"


def error_kind(transform: str) -> str:
    return "log" if transform in ("log", "log_diff") else "additive"


def errors(actual: np.ndarray, predicted: np.ndarray, kind: str) -> np.ndarray:
    """actual - predicted, or log(actual / predicted) for kind 'log'."""
    if kind == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(actual / predicted)
    return actual - predicted


def interval_bounds(
    predicted: np.ndarray, half: np.ndarray, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """predicted (N, H, K), half-widths (levels, N or 1, H, K) -> lo, hi (levels, N, H, K)."""
    centre = predicted[None]
    if kind == "log":
        return centre * np.exp(-half), centre * np.exp(half)
    return centre - half, centre + half


def clip_at_zero(
    lo: np.ndarray, hi: np.ndarray, clip: list[bool] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds (..., K) with the targets flagged in `clip` (K,) raised to at least 0 (NaN, a
    step past the calibrated ones, stays NaN)."""
    if not clip or not any(clip):
        return lo, hi
    mask = np.asarray(clip, dtype=bool)
    return np.where(mask, np.maximum(lo, 0), lo), np.where(mask, np.maximum(hi, 0), hi)


def never_negative(values: np.ndarray) -> list[bool]:
    """values (rows, K) -> per target: no value below 0 (missing ones aside)."""
    return [bool(b) for b in np.asarray(~(values < 0).any(axis=0))]


def clip_note(reports: list[dict[str, Any]], what: str) -> str | None:
    """One line for stderr naming the targets whose bounds were clipped at 0 in any of
    `reports` (metrics or backtest folds, each with its `clip_at_zero` names), or None."""
    names = list(dict.fromkeys(n for r in reports for n in r.get("clip_at_zero", [])))
    if not names:
        return None
    clipped = sum(1 for r in reports if r.get("clip_at_zero"))
    some = f" (in {clipped} of {len(reports)} {what})" if clipped < len(reports) else ""
    which = "the series never goes below 0" if len(names) == 1 else "these never go below 0"
    return f"intervals of {', '.join(names)} clipped at 0{some}: {which}"


def window_scales(
    values: np.ndarray,  # (rows, K) original units
    origins: np.ndarray,  # (N,) rows
    input_steps: int,
    kind: str,
    normalised: list[bool],  # (K,)
    floor: np.ndarray | None = None,  # (K,)
) -> np.ndarray:
    """(N, K): each origin's mean absolute step over its input window (log values for kind
    'log'), at least `floor`; 1 for targets that are not normalised."""
    out = np.ones((len(origins), values.shape[1]))
    if input_steps < 2 or not any(normalised):
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        series = np.log(values) if kind == "log" else values
    steps = np.abs(np.diff(series, axis=0))  # row i: |y[i+1] - y[i]|
    means = sliding_window_view(steps, input_steps - 1, axis=0).mean(axis=-1)  # (rows-L+1, K)
    scales = means[origins - input_steps + 1]  # window o-L+1..o has steps o-L+1..o-1
    if floor is not None:
        scales = np.maximum(scales, floor)
    mask = np.asarray(normalised)
    out[:, mask] = scales[:, mask]
    return out


def needed(level: float) -> int:
    """The fewest residuals for which the conformal quantile at `level` is finite."""
    return math.ceil(100 / (100 - level) - 1 - 1e-9)


def conformal_quantile(absolute: np.ndarray, level: float) -> tuple[float, bool]:
    """absolute (n,) -> (the ceil((n+1)L/100)-th smallest value, finite-sample exact?)."""
    ordered = np.sort(absolute)
    rank = math.ceil((len(ordered) + 1) * level / 100 - 1e-9)
    if rank <= len(ordered):
        return float(ordered[rank - 1]), True
    return float(ordered[-1]), False


def _pool(per_step: list[np.ndarray], h: int, need: int) -> tuple[np.ndarray, int]:
    """Step h's errors, with those of the nearest steps added until there are `need`:
    (errors (n, K), number of steps pooled)."""
    horizon, radius = len(per_step), 0
    while True:
        steps = range(max(0, h - radius), min(horizon, h + radius + 1))
        pool = np.concatenate([per_step[s] for s in steps])
        if len(pool) >= need or len(steps) == horizon:
            return pool, len(steps)
        radius += 1


def step_quantiles(per_step: list[np.ndarray], levels: list[float]) -> tuple[np.ndarray, list[str]]:
    """per_step[h]: errors (n_h, K) of step h+1 -> per-step conformal quantiles of their
    absolute values (levels, H, K), and notes on steps that pooled nearby steps' errors or
    had too few even then."""
    horizon, k = len(per_step), per_step[0].shape[1]
    half = np.zeros((len(levels), horizon, k))
    notes = []
    for i, level in enumerate(levels):
        borrowed, short = [], False
        for h in range(horizon):
            pool, pooled = _pool(per_step, h, needed(level))
            if len(pool) == 0:
                raise ValueError("no calibration errors")
            if pooled > 1:
                borrowed.append(h + 1)
            for j in range(k):
                half[i, h, j], exact = conformal_quantile(np.abs(pool[:, j]), level)
                short = short or not exact
        name = f"{label(level)}%"
        if short:
            notes.append(
                f"{name}: too few errors ({sum(len(r) for r in per_step)} in all, "
                f"{needed(level)} needed per step); the largest one is the half-width"
            )
        elif borrowed:
            notes.append(f"{name}: steps {_steps(borrowed)} pooled the errors of nearby steps")
    return half, notes


def _steps(numbers: list[int]) -> str:
    return f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])


def step_errors(
    actual_values: np.ndarray,  # (rows, K) original units
    origins: np.ndarray,  # (N,) original rows
    predicted: np.ndarray,  # (N, H, K)
    end: int,  # first row that may not be used
    kind: str,
    scales: np.ndarray | None = None,  # (N, K): divide each origin's errors by these
) -> list[np.ndarray]:
    """Errors of each step h over the origins whose step h lands before `end`."""
    out = []
    for h in range(1, predicted.shape[1] + 1):
        usable = origins + h < end
        e = errors(actual_values[origins[usable] + h], predicted[usable, h - 1], kind)
        out.append(e if scales is None else e / scales[usable])
    return out


@dataclass
class Calibration:
    levels: list[float]
    kind: str  # "additive" or "log"
    quantile: np.ndarray  # (levels, S, K) half-widths in window-scale units, before widening
    ratio: np.ndarray  # (K,) out-of-sample widening, >= 1
    normalised: list[bool]  # (K,) errors divided by the window scale
    floor: np.ndarray  # (K,) smallest window scale used
    input_steps: int
    counts: dict[str, list[int]] = field(default_factory=dict)  # errors per step
    notes: list[str] = field(default_factory=list)
    clip_at_zero: list[bool] = field(default_factory=list)  # (K,) bounds raised to >= 0; [] none
    source: str = "validation"  # of the out-of-sample errors: "validation" or "inner folds"

    @property
    def steps(self) -> int:
        return self.quantile.shape[1]

    def scales(self, values: np.ndarray, origins: np.ndarray) -> np.ndarray:
        """values (rows, K) original units, origins (N,) -> window scales (N, K)."""
        return window_scales(
            values, origins, self.input_steps, self.kind, self.normalised, self.floor
        )

    def bounds(self, predicted: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """predicted (N, S', K), window scales (N, K) -> (lo, hi), each (levels, N, S', K).
        Steps past the calibrated ones get NaN bounds."""
        n, steps, k = predicted.shape
        unit = np.full((len(self.levels), steps, k), np.nan)
        known = min(steps, self.steps)
        unit[:, :known] = self.quantile[:, :known] * self.ratio
        half = unit[:, None] * scales[None, :, None, :]  # (levels, N, S', K)
        lo, hi = interval_bounds(predicted, half, self.kind)
        return clip_at_zero(lo, hi, self.clip_at_zero)

    def to_json(self) -> dict[str, Any]:
        return {
            "levels": self.levels,
            "errors": self.kind,
            "method": "per-step quantiles of the training errors in window-scale units, "
            f"widened by the out-of-sample/training error ratio ({self.source})",
            "out_of_sample": self.source,
            "input_steps": self.input_steps,
            "quantile": {label(lv): self.quantile[i].tolist() for i, lv in enumerate(self.levels)},
            "ratio": self.ratio.tolist(),
            "normalised": self.normalised,
            "scale_floor": self.floor.tolist(),
            "errors_per_step": self.counts,
            "notes": self.notes,
            "clip_at_zero": self.clip_at_zero,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        levels = list(data["levels"])
        return cls(
            levels=levels,
            kind=data["errors"],
            quantile=np.array([data["quantile"][label(lv)] for lv in levels], dtype=float),
            ratio=np.array(data["ratio"], dtype=float),
            normalised=[bool(b) for b in data["normalised"]],
            floor=np.array(data["scale_floor"], dtype=float),
            input_steps=int(data["input_steps"]),
            counts=data["errors_per_step"],
            notes=list(data["notes"]),
            clip_at_zero=[bool(b) for b in data.get("clip_at_zero", [])],  # older runs: none
            source=data.get("out_of_sample", "validation"),  # older runs: validation
        )

    def summary(self) -> dict[str, Any]:
        """metrics.json's `intervals_calibration`: what the intervals rest on."""
        outside = "validation" if self.source == "validation" else "inner_folds"
        return {
            "out_of_sample": self.source,
            "training_errors": int(sum(self.counts.get("training", []))),
            "out_of_sample_errors": int(sum(self.counts.get(outside, []))),
        }


def calibrate(
    values: np.ndarray,  # (rows, K) original units
    train: tuple[np.ndarray, np.ndarray],  # origins (N1,), forecasts (N1, S, K)
    validation: tuple[np.ndarray, np.ndarray],  # origins (N2,), forecasts (N2, S, K)
    val_start: int,  # first validation row
    test_start: int,  # first row never used
    levels: list[float],
    kind: str,
    input_steps: int,
    normalised: list[bool],
    source: str = "validation",
) -> Calibration:
    """Training errors (steps landing before `val_start`) shape the intervals; validation
    errors (steps landing before `test_start`) widen them: with `source` "inner folds",
    `validation` holds the inner folds' origins and forecasts instead. Targets never below 0 before
    `test_start` get their bounds clipped at 0 (log errors keep every bound above 0
    already, so nothing is flagged there, and nothing is said)."""
    (t_origins, t_pred), (v_origins, v_pred) = train, validation
    raw = window_scales(values, t_origins, input_steps, kind, normalised)  # (N1, K)
    positive = np.where(raw > 0, raw, np.nan)
    floor = np.nan_to_num(0.01 * np.nanmedian(positive, axis=0), nan=1e-12)
    floor = np.where(floor > 0, floor, 1e-12)
    t_scales = np.maximum(raw, floor)
    v_scales = window_scales(values, v_origins, input_steps, kind, normalised, floor)
    t_steps = step_errors(values, t_origins, t_pred, val_start, kind, t_scales)
    v_steps = step_errors(values, v_origins, v_pred, test_start, kind, v_scales)
    quantile, notes = step_quantiles(t_steps, levels)
    # the mean training error at each step (from the same pools as the quantiles)
    typical = np.stack([np.abs(_pool(t_steps, h, 1)[0]).mean(axis=0) for h in range(len(t_steps))])
    seen = sum(np.abs(v).sum(axis=0) for v in v_steps)  # (K,)
    expected = sum(len(v) * typical[h] for h, v in enumerate(v_steps))  # (K,)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.nan_to_num(seen / expected, nan=1.0, posinf=1.0)
    return Calibration(
        levels=list(levels),
        kind=kind,
        quantile=quantile,
        ratio=np.maximum(ratio, 1.0),
        normalised=list(normalised),
        floor=floor,
        input_steps=input_steps,
        counts={
            "training": [len(r) for r in t_steps],
            "validation" if source == "validation" else "inner_folds": [len(r) for r in v_steps],
        },
        notes=notes,
        clip_at_zero=never_negative(values[:test_start])
        if kind != "log"
        else [False] * values.shape[1],
        source=source,
    )
