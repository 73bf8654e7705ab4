"""`model.residual: auto` made concrete: the seasonal base whose own forecasts miss the
training targets least, chosen before the fit."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from forecast.data.prepare import Prepared
from forecast.data.windows import input_windows, target_windows
from forecast.model.layers import AVERAGED

log = logging.getLogger("forecast")


RESIDUAL_ORIGINS = 2000  # at most this many recent training origins choose `residual: auto`


def choose_residual(prepared: Prepared) -> Prepared:
    """`model.residual: auto` made concrete from the training rows, before the fit.

    Of seasonal_average, seasonal_half_drift and seasonal_drift (forecast.model.layers), the base
    whose own forecasts miss the training targets least: mean absolute error in scaled
    units over the later half of the training origins (the recent trend matters most); a
    tie goes to the one with less trend. `naive` when the window is shorter than a season
    or no target is an input. The final fit keeps the choice; other configs pass as they are.
    """
    cfg, split = prepared.config, prepared.split
    if cfg.model.residual != "auto":
        return prepared
    assert split is not None, "the residual base is chosen on a split's training rows"

    data, window = cfg.data, cfg.window
    target_features = data.target_features
    inputs = np.array([f >= 0 for f in target_features])
    usable = window.input_steps >= prepared.season and inputs.any()
    candidates = list(AVERAGED) if usable else ["naive"]
    origins = split.train_origins
    origins = origins[len(origins) // 2 :][-RESIDUAL_ORIGINS:]
    errors: dict[str, float] = {}
    if len(candidates) > 1 and len(origins):
        from forecast.model.tf_setup import import_tensorflow_quietly

        import_tensorflow_quietly()
        import keras

        from forecast.model.layers import register

        windows = input_windows(prepared.features, origins, window.input_steps)  # (N, L, F)
        actual = target_windows(prepared.targets, origins, window.output_steps)  # (N, H, K)
        for base in candidates:
            layer = register()["WindowNormalize"](
                target_features, window.output_steps, False, base, prepared.season
            )
            predicted = keras.ops.convert_to_numpy(layer(windows.astype(np.float32))[1])
            errors[base] = float(np.mean(np.abs(predicted - actual)[..., inputs]))
    chosen = candidates[0]
    for base in candidates[1:]:  # more trend only for a lower error, not a rounding tie
        if errors[base] < errors[chosen] * (1 - 1e-6):
            chosen = base
    log.debug("residual: auto chose %s (training-window errors %s)", chosen, errors)
    model = cfg.model.model_copy(update={"residual": chosen})
    return replace(prepared, config=cfg.model_copy(update={"model": model}))
