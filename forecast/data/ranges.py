"""The warning `predict` gives when recent inputs leave the range the scaler saw in training."""

from __future__ import annotations

import numpy as np

from forecast.data.prepare import Prepared


def outside_training_range(prepared: Prepared) -> list[str]:
    """One line per input column whose recent values, as the network reads them, leave the
    range its scaler saw in training, and why that matters. Nothing with model.window_norm:
    each window is then centred on its last value and scaled by its own steps, so levels
    (and scales) outside the training range reach the network as familiar inputs. Under a
    differencing transform the network reads changes, not levels: those are checked."""
    cfg = prepared.config
    scaler = prepared.scaler.subset(prepared.columns)
    if cfg.model.window_norm or scaler.data_min is None or scaler.data_max is None:
        return []
    transform = cfg.data.transform
    work = scaler.inverse_transform(prepared.scaled)  # (L, C) transformed units
    what = "changes" if transform in ("diff", "log_diff") else "values"
    shown = {  # transformed units -> what the user reads
        "log": lambda v: f"{np.exp(v):.6g}",
        "diff": lambda v: f"{v:+.6g}",
        "log_diff": lambda v: f"{100 * np.expm1(v):+.3g}%",
    }.get(transform, lambda v: f"{v:.6g}")
    result = "its forecasts are extrapolation"
    if cfg.model.residual != "none":  # the base carries the level; the correction does not
        base = "residual" if cfg.model.residual == "auto" else cfg.model.residual
        result = f"its correction to the {base} base is extrapolation"
    lines = []
    for c, column in enumerate(prepared.columns[: len(cfg.data.features)]):
        low, high = scaler.data_min[c], scaler.data_max[c]
        span = high - low if high > low else max(abs(high), 1.0)
        tolerance = 0.01 * span  # a hair past the edge is not worth a warning
        above, below = work[:, c] > high + tolerance, work[:, c] < low - tolerance
        if not (above.any() or below.any()):
            continue
        if work[:, c].max() - high >= low - work[:, c].min():
            outside, side, far, edge = above, "above", work[:, c].max(), f"max {shown(high)}"
        else:
            outside, side, far, edge = below, "below", work[:, c].min(), f"min {shown(low)}"
        count, verb = f"the last {len(work)}", "lie"
        if outside.sum() < len(work):
            count = f"{outside.sum()} of the last {len(work)}"
            verb = "lies" if outside.sum() == 1 else "lie"
        reach = "up to" if side == "above" else "down to"
        lines.append(
            f"{prepared.series.source}: {count} {what} of {column} ({reach} {shown(far)}) "
            f"{verb} {side} anything the model saw in training ({edge}); without window_norm the "
            f"network's inputs are then outside its scaler's range, so {result}"
        )
    return lines
