"""Metrics and baselines, in original units, on exactly the model's forecast origins.

Arrays are (N, H, K): N origins, H steps, K targets. Definitions (DESIGN §3):
- naive repeats y[o]; seasonal naive gives step s the value y[o - m + 1 + (s-1) mod m];
  mean repeats the mean of every row before the test split. Seasonal naive is *unavailable*
  (every metric null, with the reason) when an origin has less than one season before it;
- a baseline's metrics are null where they are undefined; the verdict skips them;
- MASE divides MAE by the mean absolute lag-m difference of every row before the test split;
- MAPE skips actuals equal to 0; sMAPE is in percent: mean of 200|F-A|/(|F|+|A|).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

METRICS = ("mae", "rmse", "mape", "smape", "mase")
BASELINES = ("naive", "seasonal_naive", "mean")


def _clean(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def mase_scale(history: np.ndarray, season: int) -> np.ndarray:
    """history (rows, K): rows before the test split -> (K,) mean |y[t] - y[t-m]|."""
    if len(history) <= season:
        return np.full(history.shape[1], np.nan)
    return np.abs(history[season:] - history[:-season]).mean(axis=0)


def compute_metrics(actual: np.ndarray, predicted: np.ndarray, scale: np.ndarray) -> dict:
    """actual, predicted (N, H, K) or any (..., K); scale (K,) -> the five metrics."""
    error = predicted - actual
    absolute = np.abs(error)
    nonzero = actual != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        mape = (
            (100 * absolute[nonzero] / np.abs(actual[nonzero])).mean() if nonzero.any() else np.nan
        )
        denominator = np.abs(predicted) + np.abs(actual)
        # 0/0 (both zero) is a perfect forecast; a NaN forecast stays NaN, never 0
        smape_terms = np.where(denominator == 0, 0.0, 200 * absolute / denominator)
        scaled = absolute / np.where(scale > 0, scale, np.nan)
    return {
        "mae": _clean(absolute.mean()),
        "rmse": _clean(math.sqrt((error**2).mean())),
        "mape": _clean(mape),
        "smape": _clean(smape_terms.mean()),
        "mase": _clean(scaled.mean()),
    }


def baseline_forecasts(
    values: np.ndarray,  # (rows, K) original units
    origins: np.ndarray,  # (N,)
    horizon: int,
    season: int,
    test_start: int,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Each available baseline's forecast from every origin, name -> (N, H, K), and the
    reason for each one that is unavailable, name -> text."""
    steps = np.arange(1, horizon + 1)  # (H,)
    naive = np.repeat(values[origins][:, None, :], horizon, axis=1)
    mean = np.broadcast_to(values[:test_start].mean(axis=0), naive.shape).copy()
    forecasts = {"naive": naive, "mean": mean}
    unavailable = {}
    seasonal_rows = origins[:, None] - season + 1 + (steps[None, :] - 1) % season  # (N, H)
    if len(origins) and seasonal_rows.min() < 0:
        unavailable["seasonal_naive"] = (
            f"origin row {int(origins.min())} has fewer than one season ({season} rows) before it"
        )
    else:
        forecasts["seasonal_naive"] = values[seasonal_rows]
    return forecasts, unavailable


def actuals(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """(rows, K), (N,) -> (N, H, K): rows o+1 .. o+H."""
    return values[origins[:, None] + np.arange(1, horizon + 1)[None, :]]


def evaluate(
    values: np.ndarray,  # (rows, K) targets, original units
    origins: np.ndarray,  # (N,)
    predicted: np.ndarray,  # (N, H, K) original units
    targets: list[str],
    season: int,
    test_start: int,
) -> dict[str, Any]:
    """metrics.json's body: model and baselines overall, per target and per step."""
    horizon = predicted.shape[1]
    actual = actuals(values, origins, horizon)
    scale = mase_scale(values[:test_start], season)
    baselines, unavailable = baseline_forecasts(values, origins, horizon, season, test_start)
    forecasts = {"model": predicted, **baselines}

    def scores(pick: Any, scale: Any) -> dict[str, Any]:
        """name -> metrics of `pick(forecast)` against `pick(actual)`, in BASELINES order."""
        out = {}
        for name in ("model", *BASELINES):
            if name in forecasts:
                out[name] = compute_metrics(pick(actual), pick(forecasts[name]), scale)
            else:
                out[name] = {**dict.fromkeys(METRICS), "unavailable": unavailable[name]}
        return out

    overall = scores(lambda a: a, scale)
    report: dict[str, Any] = {
        "model": overall.pop("model"),
        "baselines": overall,
        "per_target": {
            target: scores(lambda a, k=k: a[..., k], scale[k]) for k, target in enumerate(targets)
        },
        "per_step": [
            {"step": s + 1, **scores(lambda a, s=s: a[:, s], scale)} for s in range(horizon)
        ],
        "season_length": season,
        "mase_scale": {t: _clean(scale[k]) for k, t in enumerate(targets)},
        "mape_excluded_zero_actuals": int((actual == 0).sum()),
    }
    return report


def verdict(report: dict[str, Any], model_name: str, where: str = "on the test split") -> str:
    """One line: does the model beat the best baseline on MASE (or MAE when MASE is undefined)?"""
    metric = "mase" if report["model"]["mase"] is not None else "mae"
    ours = report["model"][metric]
    scores = {n: b[metric] for n, b in report["baselines"].items() if b[metric] is not None}
    if ours is None or not scores:
        return f"{model_name}: no verdict ({metric.upper()} undefined {where})"
    best = min(scores, key=scores.__getitem__)
    label = best.replace("_", " ")
    if abs(ours - scores[best]) <= 0.005 * scores[best]:  # "beats by 0%" said nothing
        return (
            f"{model_name} is level with {label} (the best baseline): {metric.upper()} "
            f"{ours:.4g} vs {scores[best]:.4g} {where}"
        )
    if ours < scores[best]:  # so the best baseline is above 0
        gain = 100 * (1 - ours / scores[best])
        return (
            f"{model_name} beats {label} (the best baseline) by {gain:.0f}% {metric.upper()} "
            f"{where} ({ours:.3g} vs {scores[best]:.3g})"
        )
    return (
        f"{model_name} does not beat {label} ({metric.upper()} {ours:.3g} vs {scores[best]:.3g} "
        f"{where})"
    )
