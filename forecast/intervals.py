"""Prediction intervals calibrated out of sample (split conformal, per horizon step).

The held-out model forecasts the full horizon from every validation origin; the errors of the
steps that land on validation rows (never test rows) are the calibration residuals. For a
level L and n residuals at step h, the half-width is the ceil((n + 1) L / 100)-th smallest
absolute residual: with exchangeable errors, the interval covers a new actual with
probability at least L%. Steps with too few residuals for a level (n < 100 / (100 - L) - 1,
e.g. 4 for 80%, 19 for 95%) borrow those of the nearest steps; when even all steps together
are too few, the largest residual is used and the calibration says so.

Errors are measured on the scale the series is modelled on: as log ratios log(actual /
forecast) when `data.transform` is log or log_diff (intervals then widen with the level),
else as differences actual - forecast, in original units.

Seasonal naive gets its own empirical interval the same way, from its errors at every origin
before the test part (it fits nothing, so all of them are out of sample).

Arrays: residuals per step (n_h, K); half-widths (levels, H, K); bounds (levels, N, H, K).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from forecast.evaluation import actuals, baseline_forecasts


def label(level: float) -> str:
    """80 -> '80', 97.5 -> '97.5': the level as it appears in column names and JSON keys."""
    return f"{level:g}"


def error_kind(transform: str) -> str:
    return "log" if transform in ("log", "log_diff") else "additive"


@dataclass
class Calibration:
    levels: list[float]
    kind: str  # "additive" or "log"
    half_width: np.ndarray  # (levels, H, K)
    residuals: list[int]  # residuals per step
    notes: list[str]  # steps that borrowed residuals, or used the largest one

    def bounds(self, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """predicted (N, S, K) -> (lo, hi), each (levels, N, S, K). Steps past the calibrated
        horizon get NaN bounds."""
        n, steps, k = predicted.shape
        half = np.full((len(self.levels), steps, k), np.nan)
        known = min(steps, self.half_width.shape[1])
        half[:, :known] = self.half_width[:, :known]
        return interval_bounds(predicted, half, self.kind)

    def to_json(self) -> dict[str, Any]:
        return {
            "levels": self.levels,
            "errors": self.kind,
            "method": "split conformal on the validation origins, per horizon step",
            "residuals_per_step": self.residuals,
            "half_width": {
                label(level): self.half_width[i].tolist() for i, level in enumerate(self.levels)
            },
            "notes": self.notes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        levels = list(data["levels"])
        half = np.array([data["half_width"][label(level)] for level in levels], dtype=float)
        return cls(levels, data["errors"], half, list(data["residuals_per_step"]), data["notes"])


def errors(actual: np.ndarray, predicted: np.ndarray, kind: str) -> np.ndarray:
    """actual - predicted, or log(actual / predicted) for kind 'log'."""
    if kind == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(actual / predicted)
    return actual - predicted


def interval_bounds(
    predicted: np.ndarray, half: np.ndarray, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """predicted (N, H, K), half (levels, H, K) -> lo, hi (levels, N, H, K)."""
    centre, width = predicted[None], half[:, None]
    if kind == "log":
        return centre * np.exp(-width), centre * np.exp(width)
    return centre - width, centre + width


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


def calibrate(per_step: list[np.ndarray], levels: list[float], kind: str) -> Calibration:
    """per_step[h]: residuals (n_h, K) of step h+1 -> a Calibration."""
    horizon, k = len(per_step), per_step[0].shape[1]
    half = np.zeros((len(levels), horizon, k))
    notes = []
    for i, level in enumerate(levels):
        borrowed, largest = [], []
        for h in range(horizon):
            radius = 0
            while True:
                steps = range(max(0, h - radius), min(horizon, h + radius + 1))
                pool = np.concatenate([per_step[s] for s in steps])  # (n, K)
                if len(pool) >= needed(level) or len(steps) == horizon:
                    break
                radius += 1
            if len(pool) == 0:
                raise ValueError("no calibration residuals")
            if len(steps) > 1:
                borrowed.append(h + 1)
            for j in range(k):
                half[i, h, j], exact = conformal_quantile(np.abs(pool[:, j]), level)
                if not exact and h + 1 not in largest:
                    largest.append(h + 1)
        name = f"{label(level)}%"
        if largest:
            notes.append(
                f"{name}: too few residuals ({len(np.concatenate(per_step))} in all, "
                f"{needed(level)} needed per step); the largest residual is the half-width"
            )
        elif borrowed:
            notes.append(f"{name}: steps {_steps(borrowed)} pooled residuals of nearby steps")
    return Calibration(list(levels), kind, half, [len(r) for r in per_step], notes)


def _steps(numbers: list[int]) -> str:
    return f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])


def step_residuals(
    actual_values: np.ndarray,  # (rows, K) original units
    origins: np.ndarray,  # (N,) original rows
    predicted: np.ndarray,  # (N, H, K)
    end: int,  # first row that may not be used (the test part's start)
    kind: str,
) -> list[np.ndarray]:
    """Residuals of each step h over the origins whose step h lands before `end`."""
    horizon = predicted.shape[1]
    out = []
    for h in range(1, horizon + 1):
        usable = origins + h < end
        rows = origins[usable] + h
        out.append(errors(actual_values[rows], predicted[usable, h - 1], kind))
    return out


def seasonal_naive_calibration(
    values: np.ndarray,  # (rows, K) original units
    test_start: int,
    season: int,
    horizon: int,
    levels: list[float],
    kind: str,
) -> Calibration | None:
    """Seasonal naive's own empirical interval from its errors at every origin before the
    test part; None when no origin has a season before it and a step after it."""
    origins = np.arange(season - 1, test_start - 1)
    if len(origins) == 0:
        return None
    forecasts, _ = baseline_forecasts(values, origins, horizon, season, test_start)
    per_step = step_residuals(values, origins, forecasts["seasonal_naive"], test_start, kind)
    if any(len(r) == 0 for r in per_step):
        return None
    return calibrate(per_step, levels, kind)


def interval_scores(
    actual: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: float, scale: np.ndarray
) -> dict[str, float | None]:
    """actual, lo, hi (..., K); scale (K,) -> coverage, mean width, MSIS (the Winkler score
    scaled like MASE: mean of (hi - lo) + 2/a (lo - y)+ + 2/a (y - hi)+ over the scale)."""
    alpha = 1 - level / 100
    width = hi - lo
    score = width + (2 / alpha) * (np.clip(lo - actual, 0, None) + np.clip(actual - hi, 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = score / np.where(scale > 0, scale, np.nan)
    inside = (actual >= lo) & (actual <= hi)

    def clean(value: float) -> float | None:
        return float(value) if math.isfinite(value) else None

    return {
        "coverage": clean(inside.mean()),
        "width": clean(width.mean()),
        "msis": clean(scaled.mean()),
    }


def interval_report(
    values: np.ndarray,  # (rows, K) original units
    origins: np.ndarray,  # (N,) original rows
    predicted: np.ndarray,  # (N, H, K)
    calibration: Calibration,
    targets: list[str],
    season: int,
    test_start: int,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """metrics.json's `intervals` (with seasonal naive's own interval under each level) and
    the same per target."""
    from forecast.evaluation import mase_scale

    horizon = predicted.shape[1]
    actual = actuals(values, origins, horizon)
    scale = mase_scale(values[:test_start], season)
    lo, hi = calibration.bounds(predicted)
    snaive = seasonal_naive_calibration(
        values, test_start, season, horizon, calibration.levels, calibration.kind
    )
    naive_bounds = None
    forecasts, _ = baseline_forecasts(values, origins, horizon, season, test_start)
    if snaive is not None and "seasonal_naive" in forecasts:
        naive_bounds = snaive.bounds(forecasts["seasonal_naive"])

    def block(pick: Any, scale: Any) -> dict[str, Any]:
        out = {}
        for i, level in enumerate(calibration.levels):
            entry = interval_scores(pick(actual), pick(lo[i]), pick(hi[i]), level, scale)
            if naive_bounds is None:
                entry["seasonal_naive"] = {
                    "coverage": None,
                    "width": None,
                    "msis": None,
                    "unavailable": "fewer rows than one season and one step before the test part",
                }
            else:
                nlo, nhi = naive_bounds[0][i], naive_bounds[1][i]
                entry["seasonal_naive"] = interval_scores(
                    pick(actual), pick(nlo), pick(nhi), level, scale
                )
            out[label(level)] = entry
        return out

    overall = block(lambda a: a, scale)
    per_target = {t: block(lambda a, k=k: a[..., k], scale[k]) for k, t in enumerate(targets)}
    return overall, per_target
