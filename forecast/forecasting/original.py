"""Forecasts from work-row origins in original units: scaled back, transforms inverted,
and refused when any value is not finite."""

from __future__ import annotations

import numpy as np

from forecast.data.panel import PreparedPanel
from forecast.data.prepare import Prepared
from forecast.data.reading import SeriesId
from forecast.data.transforms import invert_transform
from forecast.errors import DataError
from forecast.forecasting.forecaster import Forecaster


def to_original(prepared: Prepared, scaled: np.ndarray, work_origins: np.ndarray) -> np.ndarray:
    """Forecasts from `work_origins` in scaled units (N, steps, K) -> original units."""
    data = prepared.config.data
    transformed = prepared.scaler.subset(data.targets).inverse_transform(scaled)
    last = prepared.target_values[work_origins + prepared.lag] if prepared.lag else None  # (N, K)
    forecasts = invert_transform(transformed, last, data.transform)  # (N, steps, K)
    check_forecasts(forecasts, data.targets, prepared.series.source)
    return forecasts


def check_forecasts(forecasts: np.ndarray, targets: list[str], source: object) -> None:
    """forecasts (N, steps, K) in original units: a DataError if any is NaN or infinite, so
    that no such forecast is scored as if it were one, written or served."""
    bad = ~np.isfinite(forecasts)
    if not bad.any():
        return
    _, step, k = np.argwhere(bad)[0]
    raise DataError(
        f"{source}: the model forecasts {forecasts[bad][0]} for '{targets[k]}' (step "
        f"{step + 1}), in {int(bad.sum())} of {bad.size} values; nothing is written. The fit "
        "diverged or the values are far outside the training range: train again with a lower "
        "training.learning_rate or a training.clipvalue, or check the history's values"
    )


def forecast_members(
    prepared: PreparedPanel, forecaster: Forecaster, origins: dict[SeriesId, np.ndarray], steps: int
) -> dict[SeriesId, np.ndarray]:
    """Forecast `steps` from each member's work-row origins in one batched call:
    id -> (N, steps, K) original units."""
    ids = list(origins)
    if not ids:
        return {}
    shifted = np.concatenate([origins[i] + prepared.offsets[i] for i in ids]).astype(np.int64)
    scaled = forecaster.from_origins(prepared.combined.features, shifted, steps)
    out, start = {}, 0
    for i in ids:
        n = len(origins[i])
        out[i] = to_original(prepared.members[i], scaled[start : start + n], origins[i])
        start += n
    return out
