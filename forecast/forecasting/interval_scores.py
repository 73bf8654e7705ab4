"""Prediction intervals scored on the test rows: coverage, width and MSIS, next to seasonal
naive's own intervals."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from forecast.forecasting.evaluation import actuals, baseline_forecasts, mase_scale
from forecast.forecasting.intervals import (
    clip_at_zero,
    interval_bounds,
    label,
    step_errors,
    step_quantiles,
)


def seasonal_naive_bounds(
    values: np.ndarray,  # (rows, K) original units
    origins: np.ndarray,  # (N,) the origins to bound
    test_start: int,
    season: int,
    horizon: int,
    levels: list[float],
    kind: str,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Seasonal naive's forecasts from `origins` with its own empirical interval: per-step
    conformal quantiles of its errors at every origin before the test part. None when no
    origin has a season before it and a step after it."""
    history = np.arange(season - 1, test_start - 1)
    if len(history) == 0 or origins.min() < season - 1:
        return None
    past, _ = baseline_forecasts(values, history, horizon, season, test_start)
    per_step = step_errors(values, history, past["seasonal_naive"], test_start, kind)
    if any(len(r) == 0 for r in per_step):
        return None
    half, _ = step_quantiles(per_step, levels)  # (levels, H, K)
    now, _ = baseline_forecasts(values, origins, horizon, season, test_start)
    return interval_bounds(now["seasonal_naive"], half[:, None], kind)


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
    bounds: tuple[np.ndarray, np.ndarray],  # the model's lo, hi (levels, N, H, K)
    levels: list[float],
    kind: str,
    targets: list[str],
    season: int,
    test_start: int,
    clip: list[bool] | None = None,  # (K,) as the model's bounds were: seasonal naive's too
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """metrics.json's `intervals` (with seasonal naive's own interval under each level) and
    the same per target."""
    horizon = bounds[0].shape[2]
    actual = actuals(values, origins, horizon)
    scale = mase_scale(values[:test_start], season)
    lo, hi = bounds
    naive = seasonal_naive_bounds(values, origins, test_start, season, horizon, levels, kind)
    if naive is not None:
        naive = clip_at_zero(*naive, clip)

    def block(pick: Any, scale: Any) -> dict[str, Any]:
        out = {}
        for i, level in enumerate(levels):
            entry: dict[str, Any] = interval_scores(
                pick(actual), pick(lo[i]), pick(hi[i]), level, scale
            )
            if naive is None:
                entry["seasonal_naive"] = {
                    "coverage": None,
                    "width": None,
                    "msis": None,
                    "unavailable": "fewer rows than one season and one step before the test part",
                }
            else:
                entry["seasonal_naive"] = interval_scores(
                    pick(actual), pick(naive[0][i]), pick(naive[1][i]), level, scale
                )
            out[label(level)] = entry
        return out

    overall = block(lambda a: a, scale)
    per_target = {t: block(lambda a, k=k: a[..., k], scale[k]) for k, t in enumerate(targets)}
    return overall, per_target
