"""Custom Keras layers: per-window normalisation and a baseline the network corrects.

    WindowNormalize: window (B, L, F) -> normalised (B, L, F), base (B, H, K), scale (B, 1, K)
    the network: normalised window -> h (B, H, K)
    AddScaled: forecast = base + h * scale

With `window_norm`, each window is centred on its last value and divided by its own mean
absolute step, so a level or trend outside the training range looks like any other window.
With a residual base (`naive`: the last value; `seasonal_naive`: the value one season
earlier, step by step; `seasonal_average`: the window's whole seasons averaged into one
pattern around each season's mean, put on the level of the last season;
`seasonal_drift`: that, plus the window's trend (the change of the season means per row,
continued from the middle of the last season; none when the window holds one season);
`seasonal_half_drift`: half that trend. With season 1 these are the last value, plus the
window's mean step per row ahead or half of it.), the network
learns a correction to that forecast; its head starts at zero, so an untrained model
forecasts the base. Targets that are not inputs get base 0 and scale 1. Both layers are
registered Keras serializables, loaded in safe mode.

Shape legend: B windows, L input steps, F features, H output steps, K targets.
"""

from __future__ import annotations

import functools
from typing import Any

EPSILON = 1e-3  # in scaled units: a flat window is not divided by ~0
# bases built on the window's average seasonal pattern, and the share of its trend they add
AVERAGED = {"seasonal_average": 0.0, "seasonal_half_drift": 0.5, "seasonal_drift": 1.0}


@functools.cache
def register() -> dict[str, type]:
    """Define and register the layers (Keras is imported on first use only)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="forecast")
    class WindowNormalize(keras.layers.Layer):
        def __init__(
            self,
            target_features: list[int],
            output_steps: int,
            window_norm: bool,
            base: str,
            season: int = 1,
            normalised: int | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            self.target_features = list(target_features)  # feature index of each target, or -1
            self.output_steps, self.window_norm = output_steps, window_norm
            self.base, self.season = base, season
            # the leading features normalised per window (None: all); the rest, calendar
            # columns, pass as they are
            self.normalised = normalised

        def call(self, window: Any) -> tuple[Any, Any, Any]:  # (B, L, F)
            steps, features = window.shape[1], window.shape[2]
            last = window[:, -1:, :]  # (B, 1, F)
            if self.window_norm:
                moves = ops.abs(window[:, 1:, :] - window[:, :-1, :])  # (B, L-1, F)
                scale = ops.mean(moves, axis=1, keepdims=True) + EPSILON  # (B, 1, F)
                normalised = (window - last) / scale  # (B, L, F)
                if self.normalised is not None and self.normalised < features:
                    keep = self.normalised
                    normalised = ops.concatenate([normalised[..., :keep], window[..., keep:]], -1)
            else:
                scale = ops.ones_like(last)
                normalised = window
            season = self.season if self.base.startswith("seasonal") else 1
            if self.base in AVERAGED:
                seasons = steps // season  # whole seasons in the window, ending at its end
                blocks = ops.reshape(
                    window[:, steps - seasons * season :, :], (-1, seasons, season, features)
                )  # (B, S, m, F)
                levels = ops.mean(blocks, axis=2, keepdims=True)  # (B, S, 1, F)
                pattern = levels[:, -1] + ops.mean(blocks - levels, axis=1)  # (B, m, F)
                rows = [s % season for s in range(self.output_steps)]  # (H,)
                base = ops.take(pattern, rows, axis=1)  # (B, H, F)
                if AVERAGED[self.base] and seasons > 1:
                    # the trend: change of the season means per row, continued from the
                    # middle of the last season
                    slope = (levels[:, -1] - levels[:, 0]) / ((seasons - 1) * season)  # (B, 1, F)
                    ahead = [(season - 1) / 2 + s + 1 for s in range(self.output_steps)]  # (H,)
                    ahead = ops.reshape(
                        ops.convert_to_tensor(ahead, dtype=window.dtype), (1, -1, 1)
                    )
                    base = base + AVERAGED[self.base] * slope * ahead
            else:
                rows = [steps - season + s % season for s in range(self.output_steps)]  # (H,)
                base = ops.take(window, rows, axis=1)  # (B, H, F)
            has_input = [f >= 0 for f in self.target_features]
            picks = [max(f, 0) for f in self.target_features]
            mask = ops.reshape(ops.convert_to_tensor(has_input, dtype=window.dtype), (1, 1, -1))
            base = ops.take(base, picks, axis=2) * mask  # (B, H, K)
            if self.base == "none":
                base = ops.take(last, picks, axis=2) * mask if self.window_norm else base * 0
            target_scale = ops.take(scale, picks, axis=2) * mask + (1 - mask)  # (B, 1, K)
            return normalised, base, target_scale

        def compute_output_shape(self, shape: tuple) -> tuple:
            k = len(self.target_features)
            return shape, (shape[0], self.output_steps, k), (shape[0], 1, k)

        def get_config(self) -> dict[str, Any]:
            return super().get_config() | {
                "target_features": self.target_features,
                "output_steps": self.output_steps,
                "window_norm": self.window_norm,
                "base": self.base,
                "season": self.season,
                "normalised": self.normalised,
            }

    @keras.saving.register_keras_serializable(package="forecast")
    class AddScaled(keras.layers.Layer):
        """[h (B, H, K), base (B, H, K), scale (B, 1, K)] -> base + h * scale."""

        def call(self, inputs: list[Any]) -> Any:
            correction, base, scale = inputs
            return base + correction * scale

        def compute_output_shape(self, shapes: list[tuple]) -> tuple:
            return shapes[0]

    @keras.saving.register_keras_serializable(package="forecast")
    class MemberMedian(keras.layers.Layer):
        """An ensemble's members (B, N, H, K) -> their median (B, H, K)."""

        def call(self, members: Any) -> Any:
            # sorted, the middle one (or the mean of the middle two): what ops.median gives,
            # without its float64 index arithmetic, which TFLite's builtins lack
            n = members.shape[1]
            ordered = ops.sort(ops.moveaxis(members, 1, -1), axis=-1)  # (B, H, K, N)
            middle = ordered[..., (n - 1) // 2 : n // 2 + 1]
            return ops.mean(middle, axis=-1)  # (B, H, K)

        def compute_output_shape(self, shape: tuple) -> tuple:
            return (shape[0], *shape[2:])

    return {
        "WindowNormalize": WindowNormalize,
        "AddScaled": AddScaled,
        "MemberMedian": MemberMedian,
    }
