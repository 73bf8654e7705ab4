"""Unrolled or looped recurrent layers: switching `unroll` on a built model (the same weights).
Whether a fit unrolls is decided by forecast.fitting.speedups."""

from __future__ import annotations

from typing import Any

from forecast.config.modelspec import RECURRENT_TYPES

RNN_TYPES = (*RECURRENT_TYPES, "bidirectional")


def without_unroll(model: Any) -> Any:
    """The same model with looped recurrent layers (same weights, same numbers).

    Unrolling speeds up training on CPUs, but a looped model traces and compiles much faster
    for forecasting, and keeps cuDNN eligibility wherever the saved model is loaded later.
    """
    return with_unroll(model, False)


def with_unroll(model: Any, unroll: bool) -> Any:
    """The same model and weights with every recurrent layer's `unroll` set to `unroll`
    (the model itself when none changes)."""
    config = model.get_config()
    if not _set_unroll(config, unroll):
        return model
    import keras

    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def _set_unroll(node: Any, unroll: bool) -> bool:
    changed = False
    if isinstance(node, dict):
        if "unroll" in node and node["unroll"] is not unroll:
            node["unroll"] = unroll
            changed = True
        for value in node.values():
            changed = _set_unroll(value, unroll) or changed
    elif isinstance(node, list):
        for value in node:
            changed = _set_unroll(value, unroll) or changed
    return changed
