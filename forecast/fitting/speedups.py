"""Whether a fit unrolls its recurrent layers and compiles its training step with XLA: rules
measured on CPUs (benchmarks/README.md), decided before the model is built."""

from __future__ import annotations

from forecast.config.modelspec import ModelConfig
from forecast.model.execution import RNN_TYPES

UNROLL_MAX_STEPS = 100  # longer windows make unrolled graphs slow to build

# The cost model, measured with benchmarks/speedups.py (`forecast train`, a new process, final
# fit off; 2 cores, 2026-12-07), against the looped layers without XLA:
# - XLA compiles for about 1.1 s more (0.96-1.14 s over the 5 cases, whatever the window),
#   and saves per batch, per input step and recurrent layer, about 45 us of loop overhead
#   less 0.3 us per window of the batch at 50 units (its CPU matrix products are slower than
#   oneDNN's): 2 x LSTM(50) at batch 32 saved 27 us, GRU(16) at 32 saved 40 us, 2 x LSTM(50)
#   at batch 256 lost 33 us.
# - Unrolling builds for about 0.07 s per input step and recurrent layer (8.0-8.6 s for 2 x
#   LSTM(50) over 60 steps) and saves, for LSTM layers, about 28 us + 0.41 us per window of
#   the batch per step and layer (41 us at batch 32, 134 us at 256); a GRU(16) ran slower
#   unrolled, so only LSTM layers count as gaining.
# - With dropout, neither pays: the shipped univariate config (2 x LSTM(50) with dropout
#   0.2, batch 64) took 4.1 s per epoch with XLA (its random masks are slow on CPUs) and
#   1.3-1.4 s unrolled (after a 6.7 s longer build), against 1.3 s looped.
XLA_COMPILE_SECONDS = 1.1
XLA_SAVING_PER_STEP = 45e-6
XLA_LOSS_PER_WINDOW = 0.3e-6  # at 50 units; scales with units squared
UNROLL_BUILD_PER_STEP = 0.07
UNROLL_SAVING_PER_STEP = 28e-6
UNROLL_SAVING_PER_WINDOW = 0.41e-6


def choose_speedups(
    jit_setting: str | bool,
    unroll_setting: str | bool,
    input_steps: int,
    batch_size: int,
    expected_batches: float | None,
    layers: list[tuple[str, int]],
    members: int = 1,
    dropout: bool = False,
) -> tuple[bool, bool]:
    """training.jit_compile and training.unroll, `auto` made concrete: (jit, unroll).

    `auto` picks, of the looped layers, XLA and unrolled layers (never both: XLA takes
    minutes to compile an unrolled step), the one whose whole fit is expected to be
    shortest, compile or build included (the constants above): `expected_batches` is
    batches per epoch x the epochs the fit is expected to run, `layers` the recurrent
    layers' (kind, units per member); a model with `dropout` stays looped. A
    setting given explicitly is kept, and the other `auto` then only chooses among what
    goes with it. Only on CPU-only machines: where a GPU
    is visible, recurrent layers use cuDNN, which unrolling loses."""
    if jit_setting != "auto" and unroll_setting != "auto":
        return bool(jit_setting), bool(unroll_setting)
    if jit_setting is True or unroll_setting is True:
        return jit_setting is True, unroll_setting is True  # the other one: off
    costs = {(False, False): 0.0}  # seconds more than the looped fit
    if expected_batches is not None:
        batches = expected_batches
        steps = input_steps * max(len(layers), 1)  # a model without recurrence counts once
        widths = [units for _, units in layers] or [1]
        if jit_setting == "auto" and not dropout:
            saving = (
                sum(
                    XLA_SAVING_PER_STEP
                    - XLA_LOSS_PER_WINDOW * batch_size * members * (units / 50) ** 2
                    for units in widths
                )
                * input_steps
            )  # per batch
            costs[(True, False)] = XLA_COMPILE_SECONDS - batches * saving
        if unroll_setting == "auto" and layers and input_steps <= UNROLL_MAX_STEPS and not dropout:
            gain = UNROLL_SAVING_PER_STEP + UNROLL_SAVING_PER_WINDOW * batch_size
            saving = sum(gain for kind, _ in layers if kind == "lstm") * input_steps
            costs[(False, True)] = UNROLL_BUILD_PER_STEP * steps - batches * saving
    elif jit_setting == "auto" and not dropout:  # a fit of unknown length: XLA, as before
        costs[(True, False)] = -1.0
    best = min(costs, key=lambda choice: costs[choice])
    if best == (False, False) or not _cpu_only():
        return jit_setting is True, unroll_setting is True
    return best


def _cpu_only() -> bool:
    import tensorflow as tf

    return not tf.config.get_visible_devices("GPU")  # a fan-out worker hides the GPUs


def recurrent_layers(model: ModelConfig) -> list[tuple[str, int]]:
    """The recurrent layers' (kind, units), a bidirectional layer as two of its kind."""
    found: list[tuple[str, int]] = []
    for spec in model.stack:
        if spec.type == "bidirectional":
            found += [(spec.layer, spec.units)] * 2
        elif spec.type in RNN_TYPES:
            found.append((spec.type, spec.units))
    return found


def has_dropout(model: ModelConfig) -> bool:
    """Any dropout: a dropout layer, or a recurrent layer's (recurrent) dropout, above 0."""
    for spec in model.stack:
        if spec.type == "dropout" and spec.rate > 0:
            return True
        if getattr(spec, "dropout", 0) > 0 or getattr(spec, "recurrent_dropout", 0) > 0:
            return True
    return False


def recurrent_layer_count(model: ModelConfig) -> int:
    """Recurrent layers an unroll multiplies (a bidirectional layer counts twice)."""
    return len(recurrent_layers(model))
