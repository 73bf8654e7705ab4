"""Forecasts of every series of a prepared table from work-row origins, in one batched call,
in original units (forecast.data.prepare.to_original: scaled back, transforms inverted,
refused when any value is not finite)."""

from __future__ import annotations

import numpy as np

from forecast.data.panel import PreparedPanel
from forecast.data.prepare import to_original
from forecast.data.reading import SeriesId
from forecast.forecasting.forecaster import Forecaster


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
