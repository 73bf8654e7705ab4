"""Layer specs -> a Keras model `(batch, input_steps, features) -> (batch, horizon, targets)`.

`check_stack` validates a stack without TensorFlow (so `validate` stays fast) and says how to
fix what is wrong; `build_model` then builds it. The output head (Flatten if needed,
Dense(horizon * targets), Reshape) is always added here, never written in configs.

Shape legend: B batch, L input steps, F features, H horizon, K targets.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from forecast.config.modelspec import RECURRENT_TYPES, ModelConfig
from forecast.errors import ConfigError
from forecast.model.execution import RNN_TYPES, without_unroll
from forecast.model.layers import register
from forecast.model.stacked import build_stacked, copy_into_plain, copy_into_stacked, stackable

SEQUENCE_INPUT = (*RNN_TYPES, "conv1d", "max_pooling1d")  # layers that need (B, steps, width)
GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}  # weight matrices per recurrent layer


@dataclass
class StackShape:
    steps: int | None  # time steps of a sequence output; None once the output is one vector
    width: int  # channels per step (or vector length)
    params: int  # trainable + non-trainable parameters so far
    # values per sample that training keeps for the backward pass (roughly: every step's
    # gate outputs of a recurrent layer, every step's output of a convolution)
    activations: int = 0
    largest: int | None = None  # index of the layer with the most parameters (None: the head)


def _rnn_params(kind: str, units: int, width: int) -> int:
    gates = GATES[kind]
    # Keras GRU uses reset_after=True: a second bias per gate
    bias = 2 * units * gates if kind == "gru" else units * gates
    return gates * units * (width + units) + bias


def check_stack(
    model: ModelConfig, input_steps: int, features: int, horizon: int, targets: int
) -> StackShape:
    """Walk the stack's shapes; raise ConfigError for stacks Keras would reject or misuse."""
    specs = model.stack
    shape = StackShape(steps=input_steps, width=features, params=0)
    last_recurrent = max(
        (i for i, s in enumerate(specs) if s.type in RNN_TYPES),
        default=None,
    )
    flatten_after_last = last_recurrent is not None and any(
        s.type == "flatten" for s in specs[last_recurrent + 1 :]
    )
    vector_from: int | None = None  # index of the layer that made the output a vector
    most = 0  # parameters of the largest layer
    for i, spec in enumerate(specs):
        before = shape.params
        where = f"model.layers[{i}] ({spec.type})" if model.layers is not None else "model"
        if spec.type in SEQUENCE_INPUT and shape.steps is None:
            assert vector_from is not None  # steps end where a layer made one vector
            prev = specs[vector_from]
            fix = (
                f"set return_sequences: true on model.layers[{vector_from}]"
                if getattr(prev, "return_sequences", None) is False
                else f"move model.layers[{vector_from}] ({prev.type}) after it"
            )
            raise ConfigError(
                f"{where}: needs a sequence input, but model.layers[{vector_from}] "
                f"({prev.type}) outputs one vector per sample; {fix}"
            )
        if spec.type in RNN_TYPES:
            assert shape.steps is not None  # a sequence input (checked above)
            kind = spec.layer if spec.type == "bidirectional" else spec.type
            directions = 2 if spec.type == "bidirectional" else 1
            shape.params += directions * _rnn_params(kind, spec.units, shape.width)
            gates = GATES[kind]
            shape.activations += shape.steps * directions * spec.units * (gates + 1)
            concat = spec.type == "bidirectional" and spec.merge_mode == "concat"
            shape.width = spec.units * (2 if concat else 1)
            if spec.return_sequences and i == last_recurrent and not flatten_after_last:
                raise ConfigError(
                    f"{where}: the last recurrent layer must not set return_sequences: true "
                    "(the output head needs one vector per sample); set it to false, "
                    "or add a flatten layer after it"
                )
            if not spec.return_sequences:
                shape.steps, vector_from = None, i
        elif spec.type == "conv1d":
            assert shape.steps is not None
            shape.params += spec.kernel_size * shape.width * spec.filters + spec.filters
            shape.width = spec.filters
            if spec.padding == "valid":
                shape.steps -= spec.kernel_size - 1
            if shape.steps < 1:
                raise ConfigError(
                    f"{where}: kernel_size {spec.kernel_size} is longer than the "
                    f"{shape.steps + spec.kernel_size - 1} steps it receives; use a smaller "
                    "kernel_size, padding: same, or a larger window.input_steps"
                )
            shape.activations += shape.steps * spec.filters
        elif spec.type == "max_pooling1d":
            if shape.steps // spec.pool_size < 1:
                raise ConfigError(
                    f"{where}: pool_size {spec.pool_size} shrinks {shape.steps} step(s) to "
                    "zero; use a smaller pool_size or a larger window.input_steps"
                )
            shape.steps //= spec.pool_size
        elif spec.type == "dense":
            shape.params += (shape.width + 1) * spec.units
            shape.width = spec.units
        elif spec.type == "flatten" and shape.steps is not None:
            shape.width *= shape.steps
            shape.steps, vector_from = None, i
        if shape.params - before > most:
            most, shape.largest = shape.params - before, i
    head_in = shape.width * (shape.steps or 1)
    shape.params += (head_in + 1) * horizon * targets
    if (head_in + 1) * horizon * targets > most:
        shape.largest = None
    shape.params *= model.ensemble  # members share nothing but the input
    shape.activations *= model.ensemble
    return shape


def _recurrent(
    kind: str, spec: Any, return_sequences: bool, unroll: bool, name: str | None = None
) -> Any:
    import keras

    cls = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}
    return cls[kind](
        spec.units,
        activation=spec.activation,
        return_sequences=return_sequences,
        dropout=spec.dropout,
        recurrent_dropout=spec.recurrent_dropout,
        unroll=unroll,
        name=name,
    )


def build_model(*args: Any, **kwargs: Any) -> Any:
    """A functional Keras model: (B, L, F) -> (B, H, K) (an ensemble's median); the
    forecasting half of `build_models`, same arguments."""
    return build_models(*args, **kwargs)[1]


def build_models(
    model: ModelConfig,
    input_steps: int,
    features: int,
    horizon: int,
    targets: int,
    unroll: bool = False,
    target_features: list[int] | None = None,
    known_inputs: int = 0,
    season: int = 1,
) -> tuple[Any, Any]:
    """(model to train, model that forecasts), sharing their layers.

    One member: the same model twice. `model.ensemble: N` builds N members side by side in
    one graph, each with its own initialisation: the model to train emits every member's
    forecast, (B, N, H, K), each scored against the targets; the forecasting model emits
    their median, (B, H, K). `target_features` (each target's feature index, or -1) and
    `season` serve `model.window_norm` and `model.residual` (see forecast.model.layers).
    """
    check_stack(model, input_steps, features, horizon, targets)
    import keras

    inputs = keras.Input(shape=(input_steps, features), name="window")  # (B, L, F)
    x = inputs
    relative = model.window_norm or model.residual != "none"

    def normalise(window: Any) -> Any:  # (B, L, F) -> (B, L, F), (B, H, K), (B, 1, K)
        return register()["WindowNormalize"](
            target_features,
            horizon,
            model.window_norm,
            model.residual,
            season,
            normalised=features - known_inputs if known_inputs else None,  # not the calendar
            name="normalise",
        )(window)

    if relative:
        if target_features is None:
            raise ValueError("`target_features` is needed with window_norm or a residual base")
        x, base, scale = normalise(inputs)
    members = model.ensemble
    outs = [
        _member(keras, model, x, horizon, targets, unroll, f"m{i}_" if members > 1 else "")
        for i in range(members)
    ]  # each (B, H, K)

    def finish(correction: Any, name: str, member_axis: bool = False) -> Any:
        if not relative:
            return keras.layers.Identity(name=name)(correction)
        layers = register()
        b, sc = base, scale
        if member_axis:
            b = keras.layers.Reshape((1, horizon, targets))(base)  # (B, 1, H, K)
            sc = keras.layers.Reshape((1, 1, targets))(scale)  # (B, 1, 1, K)
        return layers["AddScaled"](name=name)([correction, b, sc])

    if members == 1:
        one = keras.Model(inputs, finish(outs[0], "forecast"), name="forecast_model")
        return one, one
    stacked = keras.layers.Concatenate(axis=1, name="members")(
        [keras.layers.Reshape((1, horizon, targets))(o) for o in outs]
    )  # (B, N, H, K)
    median = register()["MemberMedian"](name="median")(stacked)  # (B, H, K)
    train = keras.Model(inputs, finish(stacked, "forecasts", True), name="ensemble_members")
    forecaster = keras.Model(inputs, finish(median, "forecast"), name="forecast_model")
    if not stackable(model):
        return train, forecaster
    # the same members as one wide model for training (forecast.model.stacked), started from the
    # plain members' weights; the plain ensemble forecasts and is saved
    wide_inputs = keras.Input(shape=(input_steps, features), name="window")  # (B, L, F)
    x = wide_inputs
    if relative:
        x, base, scale = normalise(wide_inputs)
    wide = build_stacked(keras, model, x, horizon, targets, unroll)  # (B, N, H, K)
    wide_train = keras.Model(wide_inputs, finish(wide, "forecasts", True), name="stacked_members")
    copy_into_stacked(train, wide_train)
    STACKED.add(wide_train)
    return wide_train, forecaster


STACKED: weakref.WeakSet = weakref.WeakSet()  # the stacked models that train


def forecasting_model(trained: Any, model: Any, plain: Any = None, copy: bool = True) -> Any:
    """The model that forecasts and is saved, holding what `trained` learnt: for a stacked
    ensemble the plain ensemble `model` with the members' weights copied in; otherwise the
    looped twin of `model` (`plain`, made when None).

    `copy=False`, for forecasts that are never saved (a backtest's folds), forecasts a
    stacked ensemble through its own layers instead (`plain`, or made when None): the median
    of its members, the same numbers (tests/test_relative.py), traced in about a third of
    the plain ensemble's time (one wide recurrent layer instead of N)."""
    if trained in STACKED:
        if not copy:
            return plain if plain is not None else _stacked_median(trained)
        copy_into_plain(trained, model)
        return model
    if plain is None:
        return without_unroll(model)
    plain.set_weights(model.get_weights())
    return plain


def _stacked_median(trained: Any) -> Any:
    """(B, L, F) -> (B, H, K): the median of a stacked ensemble's members."""
    import keras

    median = register()["MemberMedian"](name="median")(trained.output)  # (B, H, K)
    return keras.Model(trained.input, median, name="forecast_model")


def _member(
    keras: Any, model: ModelConfig, x: Any, horizon: int, targets: int, unroll: bool, prefix: str
) -> Any:
    """One stack and its head: (B, L, F) -> (B, H, K)."""
    for i, spec in enumerate(model.stack):
        name = f"{prefix}{spec.type}_{i}"
        if spec.type in RECURRENT_TYPES:
            x = _recurrent(spec.type, spec, spec.return_sequences, unroll, name)(x)
        elif spec.type == "bidirectional":
            inner = _recurrent(spec.layer, spec, spec.return_sequences, unroll)
            x = keras.layers.Bidirectional(inner, merge_mode=spec.merge_mode, name=name)(x)
        elif spec.type == "conv1d":
            x = keras.layers.Conv1D(
                spec.filters,
                spec.kernel_size,
                activation=spec.activation,
                padding=spec.padding,
                name=name,
            )(x)
        elif spec.type == "max_pooling1d":
            x = keras.layers.MaxPooling1D(spec.pool_size, name=name)(x)
        elif spec.type == "dropout":
            x = keras.layers.Dropout(spec.rate, name=name)(x)
        elif spec.type == "dense":
            x = keras.layers.Dense(spec.units, activation=spec.activation, name=name)(x)
        elif spec.type == "flatten":
            x = keras.layers.Flatten(name=name)(x)
    if len(x.shape) == 3:
        x = keras.layers.Flatten(name=f"{prefix}head_flatten")(x)  # (B, steps * width)
    # a correction to a base forecast starts at zero: the untrained model forecasts the base
    start = "zeros" if model.residual != "none" else "glorot_uniform"
    x = keras.layers.Dense(horizon * targets, kernel_initializer=start, name=f"{prefix}head_dense")(
        x
    )  # (B, H*K)
    return keras.layers.Reshape((horizon, targets), name=f"{prefix}head")(x)  # (B, H, K)


def gpu_visible() -> bool:
    """TensorFlow sees a GPU here (cudnn_warnings matter only then)."""
    from forecast.model.tf_setup import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def cudnn_warnings(model: ModelConfig) -> list[str]:
    """Layers that lose the fast cuDNN kernel on GPUs (Keras uses it only for LSTM/GRU with
    tanh activation and no recurrent dropout); worth saying only where gpu_visible()."""
    found = []
    for i, spec in enumerate(model.stack):
        kind = spec.layer if spec.type == "bidirectional" else spec.type
        if kind not in ("lstm", "gru"):
            continue
        reasons = []
        if spec.activation != "tanh":
            reasons.append(f"activation {spec.activation}")
        if spec.recurrent_dropout > 0:
            reasons.append(f"recurrent_dropout {spec.recurrent_dropout:g}")
        if reasons:
            where = f"model.layers[{i}]" if model.layers is not None else "model"
            found.append(
                f"{where} ({spec.type}): {' and '.join(reasons)} rules out the cuDNN kernel, "
                "so training on a GPU is several times slower; use activation tanh and "
                "recurrent_dropout 0 (dropout between layers is fine)"
            )
    return found
