"""Direct and recursive forecasting, compiled once and batched over many origins.

The tutorials call `model.predict` once per step per origin (~30 ms each here). We run the
whole recursive loop inside one `tf.function` on a batch of origins: the model emits
(B, h, K) per call; when more steps are asked than it emits, its predictions are appended to
the window (features taken from the predicted targets) and it is called again.

Shape legend: B origins, L input steps, F features, h output steps (what one model call
emits), K targets, H steps asked.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from forecast.data.calendar import is_calendar
from forecast.data.windows import check_origins, input_windows
from forecast.errors import ConfigError

DEFAULT_BATCH = 4096
# XLA costs about 1 s of compilation here. It pays off for any recursive loop (1 origin x 100
# steps: 21 ms vs 373 ms per run) and for large single calls, measured by origins x calls x
# input_steps (4,000 x 24 x 48: 4.8 s vs 7.1 s).
JIT_MIN_WORK = 1_000_000


def feedback_index(features: list[str], targets: list[str]) -> list[int] | None:
    """For each feature, its position among the targets; None if some feature is no target."""
    if not set(features) <= set(targets):
        return None
    return [targets.index(f) for f in features]


def check_steps(
    inputs: list[str], targets: list[str], per_call: int, steps: int, ask: str = "--horizon {}"
) -> None:
    """ConfigError when `steps` cannot be forecast by a model of `per_call` steps a call:
    fewer than one, or more than one call where predictions cannot be fed back as inputs
    (worded as the user asks: `ask` is the CLI's option, HTTP's horizon=N or the config)."""
    if steps < 1:  # HTTP requests are refused earlier, by the server's own check
        raise ConfigError(f"--horizon must be >= 1, got {steps}")
    if steps > per_call and feedback_index(inputs, targets) is None:
        raise ConfigError(recursion_refusal(inputs, targets, per_call, steps, ask))


def recursion_refusal(
    features: list[str], targets: list[str], trained: int, asked: int, ask: str = "--horizon {}"
) -> str:
    """Why a forecast of `asked` steps cannot go past the `trained` ones; `ask` names the
    request for fewer steps as the user gives it (the CLI's option, or HTTP's horizon=N)."""

    if any(is_calendar(f) for f in features):
        return (
            f"cannot forecast {asked} steps: the model was trained for horizon {trained}, and "
            f"with data.calendar it does not go further by recursion; ask for "
            f"{ask.format(trained)} or less, or train with window.horizon {asked}"
        )
    missing = ", ".join(f for f in features if f not in targets)
    return (
        f"cannot forecast {asked} steps: the model was trained for horizon {trained}, and "
        f"going further feeds predictions back as inputs, which needs every feature to be a "
        f"target ({missing} is not); ask for {ask.format(trained)} or less, or train with "
        f"window.horizon {asked} (multi_step: direct) or with {missing} added to data.targets"
    )


class Forecaster:
    """Wraps a trained model: `forecaster(windows, steps)` -> (B, steps, K) in scaled units."""

    def __init__(self, model: Any, features: list[str], targets: list[str]) -> None:
        self.model = model
        self.features, self.targets = features, targets
        _, self.input_steps, self.n_features = model.input_shape  # (B, L, F)
        _, self.output_steps, self.n_targets = model.output_shape  # (B, h, K)
        self.feedback = feedback_index(features, targets)
        self._compiled: dict[tuple[int, bool], Any] = {}

    def __call__(
        self,
        windows: np.ndarray,
        steps: int,
        batch_size: int = DEFAULT_BATCH,
        jit: bool | None = None,
    ) -> np.ndarray:
        """windows (B, L, F) scaled -> (B, steps, K) scaled. `jit=None` decides by size."""
        run = self._loop(steps, len(windows), jit)
        windows = np.asarray(windows, dtype=np.float32)
        out = [
            run(windows[start : start + batch_size]).numpy()
            for start in range(0, len(windows), batch_size)
        ]
        return self._join(out, steps)

    def from_origins(
        self,
        series: np.ndarray,
        origins: np.ndarray,
        steps: int,
        batch_size: int = DEFAULT_BATCH,
        jit: bool | None = None,
    ) -> np.ndarray:
        """series (rows, F) scaled, origins (N,) -> (N, steps, K) scaled.

        Windows are cut per batch of origins, so memory stays at one batch of windows however
        many origins there are.
        """
        origins = np.asarray(origins)
        check_origins(origins, len(series), first=self.input_steps - 1, last=len(series) - 1)
        run = self._loop(steps, len(origins), jit)
        series = np.asarray(series, dtype=np.float32)  # the model's dtype, cast once
        out = []
        for start in range(0, len(origins), batch_size):
            windows = input_windows(series, origins[start : start + batch_size], self.input_steps)
            out.append(run(windows).numpy())
        return self._join(out, steps)

    def _join(self, out: list[np.ndarray], steps: int) -> np.ndarray:
        if not out:
            return np.empty((0, steps, self.n_targets), dtype=np.float32)
        return np.concatenate(out)[:, :steps, :]  # (B, steps, K)

    def jit_for(self, steps: int, origins: int) -> bool:
        """Whether a call for `origins` windows and `steps` steps runs its loop with XLA
        (jit=None's choice): recursive forecasts, or much work."""
        calls = math.ceil(steps / self.output_steps)
        return calls > 1 or origins * self.input_steps >= JIT_MIN_WORK

    def _loop(self, steps: int, origins: int, jit: bool | None) -> Any:
        check_steps(self.features, self.targets, self.output_steps, steps)
        calls = math.ceil(steps / self.output_steps)
        if jit is None:
            jit = self.jit_for(steps, origins)
        key = (calls, jit)
        if key not in self._compiled:
            self._compiled[key] = _compile_loop(
                self.model, calls, self.input_steps, self.n_features, self.feedback, jit
            )
        return self._compiled[key]


class _NoRetracingNotice(logging.Filter):
    """Each trained or loaded model gets its own compiled loop, by design; TensorFlow's
    "triggered tf.function retracing" notice counts them together and would mislead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def _compile_loop(
    model: Any,
    calls: int,
    input_steps: int,
    n_features: int,
    feedback: list[int] | None,
    jit: bool,
) -> Any:
    import tensorflow as tf

    tf_log = logging.getLogger("tensorflow")
    if not any(isinstance(f, _NoRetracingNotice) for f in tf_log.filters):
        tf_log.addFilter(_NoRetracingNotice())

    spec = tf.TensorSpec((None, input_steps, n_features), tf.float32)
    if calls == 1:

        @tf.function(input_signature=[spec], jit_compile=jit)
        def direct(window: Any) -> Any:  # (B, L, F)
            return model(window, training=False)  # (B, h, K)

        return direct

    feed = tf.constant(feedback, dtype=tf.int32)

    @tf.function(input_signature=[spec], jit_compile=jit)
    def recursive(window: Any) -> Any:  # (B, L, F)
        outputs = tf.TensorArray(tf.float32, size=calls)
        for call in tf.range(calls):
            predicted = model(window, training=False)  # (B, h, K)
            outputs = outputs.write(call, predicted)
            fed = tf.gather(predicted, feed, axis=2)  # (B, h, F)
            window = tf.concat([window, fed], axis=1)[:, -input_steps:, :]  # (B, L, F)
            # a layer that loses the static step count (an ensemble's median) must not
            # change the loop variable's shape
            window = tf.ensure_shape(window, (None, input_steps, n_features))
        stacked = outputs.stack()  # (calls, B, h, K)
        stacked = tf.transpose(stacked, [1, 0, 2, 3])  # (B, calls, h, K)
        shape = tf.shape(stacked)
        return tf.reshape(stacked, [shape[0], shape[1] * shape[2], shape[3]])  # (B, calls*h, K)

    return recursive
