"""Whether a fit unrolls its recurrent layers and compiles its training step with XLA: rules
measured on CPUs (benchmarks/README.md), decided before the model is built."""

from __future__ import annotations

from forecast.config.modelspec import ModelConfig
from forecast.model.execution import RNN_TYPES

UNROLL_MAX_STEPS = 100  # longer windows make unrolled graphs slow to build


# Unrolling saves about 1.5 ms per batch on this kind of CPU but costs about 0.033 s of graph
# building per unrolled step and layer, paid again when a partial last batch retraces:
# it wins back its build after about 44 batches per step and layer (benchmarks/README.md)
UNROLL_BATCHES_PER_STEP = 44


def resolve_unroll(
    setting: str | bool,
    input_steps: int,
    jit_compile: bool = False,
    expected_batches: float | None = None,
    recurrent_layers: int = 1,
) -> bool:
    """training.unroll: auto unrolls on CPU-only machines when the fit is long enough to win
    back the graph build: `expected_batches` (batches per epoch x the epochs it is expected
    to run) at least UNROLL_BATCHES_PER_STEP x input_steps x recurrent layers, for windows up
    to UNROLL_MAX_STEPS. An unrolled LSTM/GRU cannot use cuDNN, so auto never unrolls where
    a GPU is visible; nor with XLA, which takes minutes to compile an unrolled training step."""
    if setting != "auto":
        return bool(setting)
    if jit_compile or input_steps > UNROLL_MAX_STEPS or recurrent_layers == 0:
        return False
    return _wins_on_cpu(expected_batches, UNROLL_BATCHES_PER_STEP * input_steps * recurrent_layers)


def _wins_on_cpu(expected_batches: float | None, needed: float) -> bool:
    """An `auto` speed-up pays: the fit runs at least `needed` batches (or is of unknown
    length) on a machine without a GPU."""
    if expected_batches is not None and expected_batches < needed:
        return False
    import tensorflow as tf

    return not tf.config.get_visible_devices("GPU")  # a fan-out worker hides the GPUs


# XLA runs the looped layers' training step in about a quarter of the time here (1.2 against
# 4.2 ms per batch of 16 at 40 steps, one LSTM(32)) but compiles for 1.5-3 s per batch shape:
# it wins after about 25 batches per step and layer (benchmarks/README.md)
JIT_BATCHES_PER_STEP = 25


def resolve_jit(
    setting: str | bool,
    input_steps: int,
    expected_batches: float | None = None,
    recurrent_layers: int = 1,
) -> bool:
    """training.jit_compile: auto compiles the training step with XLA on CPU-only machines
    when the fit is expected to run at least JIT_BATCHES_PER_STEP x input_steps x recurrent
    layers batches (a model without recurrent layers counts as one); never where a GPU is
    visible, whose recurrent layers use cuDNN."""
    if setting != "auto":
        return bool(setting)
    return _wins_on_cpu(
        expected_batches, JIT_BATCHES_PER_STEP * input_steps * max(recurrent_layers, 1)
    )


def recurrent_layer_count(model: ModelConfig) -> int:
    """Recurrent layers an unroll multiplies (a bidirectional layer counts twice)."""
    specs = model.stack
    return sum(2 if s.type == "bidirectional" else 1 for s in specs if s.type in RNN_TYPES)
