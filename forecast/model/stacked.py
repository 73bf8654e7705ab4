"""An ensemble's members trained as one model of member-batched layers: each layer holds
every member's weights side by side, (N, in, out), and one batched matrix product per step
runs all N members, each on its own inputs.

    plain ensemble:  window -> [LSTM(u) -> head] x N  -> (B, N, H, K)   (N small ops per step)
    stacked:         window -> MemberRecurrent(N, u) -> MemberDense(N, H*K) -> (B, N, H, K)

The first layer sees the shared window, so its input projection is one matrix product for
every member; each later layer takes member m's inputs to member m's units only. The input
projections of the whole window are computed before the recurrent loop (one product per
layer, not one per step), and the loop then costs N members' recurrent products as one
batched product: N times one member's arithmetic (a wide block-diagonal layer of N*u units
did N*N times, most of it multiplying zeros).

The members start from the plain ensemble's weights (so the same seed gives the same
members), train as the plain ensemble would (the same functions of the same weights; Adam is
elementwise), and their weights are copied back into the plain ensemble, which is what
`train` saves and forecasts with. A backtest's folds, whose models are never saved, forecast
through the stacked model itself, the median of its members (models.forecasting_model,
copy=False): the same numbers, traced in a third of the time.

Only stacks of recurrent (lstm, gru, simple_rnn) and dense layers without dropout are
stacked: dropout draws its random masks differently when members are side by side, so
those ensembles keep the plain form.

Shape legend: B batch, L input steps, F features, N members, u units, G gates, H horizon,
K targets.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from forecast.config.modelspec import ModelConfig

GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}
STACKABLE = (*GATES, "dense", "dropout")


def stackable(model: ModelConfig) -> bool:
    """Can `model`'s members be trained as one wide model (see the module docstring)? An
    ensemble of recurrent and dense layers without dropout, ending in one vector per member
    (the last recurrent layer returns no sequence)."""
    specs = model.stack
    recurrent = [i for i, s in enumerate(specs) if s.type in GATES]
    if model.ensemble < 2 or not recurrent or specs[recurrent[-1]].return_sequences:
        return False
    for spec in specs:
        if spec.type not in STACKABLE:
            return False
        if spec.type == "dropout" and spec.rate > 0:
            return False
        if spec.type in GATES and (spec.dropout > 0 or spec.recurrent_dropout > 0):
            return False
    return True


@functools.cache
def layer_classes() -> dict[str, type]:
    """Define and register the member-batched layers (Keras is imported on first use)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="forecast")
    class MemberCell(keras.layers.Layer):
        """One step of N members' recurrent cells, on inputs already projected: (B, N*G*u)
        -> (B, N*u). Holds the members' weights: kernel (N, in, G*u), recurrent kernel
        (N, u, G*u), bias (N, G*u), or GRU's (N, 2, G*u): input and recurrent biases, as
        Keras' GRU (reset_after) keeps them. Keras' gate order and activations."""

        def __init__(
            self, kind: str, members: int, units: int, inputs: int, activation: str = "tanh",
            **kwargs: Any,
        ) -> None:  # fmt: skip
            super().__init__(**kwargs)
            self.settings: dict[str, Any] = {"kind": kind, "members": members, "units": units}
            self.settings |= {"inputs": inputs, "activation": activation}
            self.kind, self.members, self.units, self.inputs = kind, members, units, inputs
            self.activation = keras.activations.get(activation)
            self.gates = GATES[kind]
            width = members * units
            self.state_size = [width, width] if kind == "lstm" else [width]
            self.output_size = width

        def build(self, input_shape: Any = None) -> None:
            n, u, g = self.members, self.units, self.gates
            self.kernel = self.add_weight(
                shape=(n, self.inputs, g * u), initializer="glorot_uniform", name="kernel"
            )
            self.recurrent_kernel = self.add_weight(
                shape=(n, u, g * u), initializer="orthogonal", name="recurrent_kernel"
            )
            bias = (n, 2, g * u) if self.kind == "gru" else (n, g * u)
            self.bias = self.add_weight(shape=bias, initializer="zeros", name="bias")
            self.built = True

        def input_bias(self) -> Any:
            return self.bias[:, 0] if self.kind == "gru" else self.bias  # (N, G*u)

        def call(self, inputs: Any, states: Any, training: Any = None) -> Any:
            n, u, g = self.members, self.units, self.gates
            h = ops.reshape(states[0], (-1, n, u))  # (B, N, u)
            x = ops.reshape(inputs, (-1, n, g * u))  # (B, N, G*u): projected, biased
            r = ops.einsum("bnu,nuo->bno", h, self.recurrent_kernel)  # (B, N, G*u)
            act = self.activation
            if self.kind == "lstm":
                c = ops.reshape(states[1], (-1, n, u))
                i, f, c_new, o = ops.split(x + r, 4, axis=-1)
                c = ops.sigmoid(f) * c + ops.sigmoid(i) * act(c_new)
                h = ops.sigmoid(o) * act(c)
                flat_h, flat_c = ops.reshape(h, (-1, n * u)), ops.reshape(c, (-1, n * u))
                return flat_h, [flat_h, flat_c]
            if self.kind == "gru":
                r = r + self.bias[:, 1]
                x_z, x_r, x_h = ops.split(x, 3, axis=-1)
                r_z, r_r, r_h = ops.split(r, 3, axis=-1)
                z = ops.sigmoid(x_z + r_z)
                reset = ops.sigmoid(x_r + r_r)
                h = z * h + (1 - z) * act(x_h + reset * r_h)
            else:  # simple_rnn
                h = act(x + r)
            flat = ops.reshape(h, (-1, n * u))
            return flat, [flat]

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), **self.settings}

    def project(x: Any, kernel: Any, bias: Any, members: int, shared: bool) -> Any:
        """x (..., in) shared or (..., N*in) member-major -> (..., N*out): each member's
        inputs times its own kernel, plus its bias."""
        lead = tuple(x.shape[1:-1])
        _, inputs, outputs = kernel.shape
        if shared:  # one product: (rows, in) x (in, N*out)
            wide = ops.reshape(ops.transpose(kernel, (1, 0, 2)), (inputs, members * outputs))
            y = ops.matmul(ops.reshape(x, (-1, inputs)), wide)
            y = ops.reshape(y, (-1, members, outputs))
        else:  # explicit subscripts: TensorFlow's gradient of an ellipsis einsum is ~10x slower
            y = ops.einsum("bni,nio->bno", ops.reshape(x, (-1, members, inputs)), kernel)
        return ops.reshape(y + bias, (-1, *lead, members * outputs))

    @keras.saving.register_keras_serializable(package="forecast")
    class MemberRecurrent(keras.layers.Layer):
        """N members' recurrent layers: (B, L, F) shared or (B, L, N*in) -> (B, [L,] N*u)."""

        def __init__(
            self, kind: str, members: int, units: int, inputs: int, shared: bool,
            activation: str = "tanh", return_sequences: bool = False, unroll: bool = False,
            **kwargs: Any,
        ) -> None:  # fmt: skip
            super().__init__(**kwargs)
            self.settings: dict[str, Any] = {"kind": kind, "members": members, "units": units}
            self.settings |= {"inputs": inputs, "shared": shared, "activation": activation}
            self.settings |= {"return_sequences": return_sequences, "unroll": unroll}
            self.members, self.units, self.shared = members, units, shared
            self.return_sequences = return_sequences
            self.cell = MemberCell(kind, members, units, inputs, activation, name="cell")
            self.rnn = keras.layers.RNN(
                self.cell, return_sequences=return_sequences, unroll=unroll, name="loop"
            )

        def build(self, input_shape: Any) -> None:
            self.cell.build()
            self.built = True

        def call(self, x: Any) -> Any:
            cell = self.cell
            projected = project(x, cell.kernel, cell.input_bias(), self.members, self.shared)
            return self.rnn(projected)  # (B, [L,] N*u)

        def compute_output_shape(self, input_shape: Any) -> Any:
            width = self.members * self.units
            if self.return_sequences:
                return (input_shape[0], input_shape[1], width)
            return (input_shape[0], width)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), **self.settings}

    @keras.saving.register_keras_serializable(package="forecast")
    class MemberDense(keras.layers.Layer):
        """N members' dense layers: (..., F) shared or (..., N*in) -> (..., N*units)."""

        def __init__(
            self, members: int, units: int, inputs: int, shared: bool, activation: Any = None,
            kernel_initializer: str = "glorot_uniform", **kwargs: Any,
        ) -> None:  # fmt: skip
            super().__init__(**kwargs)
            self.settings: dict[str, Any] = {"members": members, "units": units}
            self.settings |= {"inputs": inputs, "shared": shared, "activation": activation}
            self.settings["kernel_initializer"] = kernel_initializer
            self.members, self.units, self.inputs, self.shared = members, units, inputs, shared
            self.initializer = kernel_initializer
            self.activation = keras.activations.get(activation)

        def build(self, input_shape: Any) -> None:
            n = self.members
            self.kernel = self.add_weight(
                shape=(n, self.inputs, self.units), initializer=self.initializer, name="kernel"
            )
            self.bias = self.add_weight(shape=(n, self.units), initializer="zeros", name="bias")
            self.built = True

        def call(self, x: Any) -> Any:
            return self.activation(project(x, self.kernel, self.bias, self.members, self.shared))

        def compute_output_shape(self, input_shape: Any) -> Any:
            return (*input_shape[:-1], self.members * self.units)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), **self.settings}

    return {"MemberRecurrent": MemberRecurrent, "MemberDense": MemberDense}


def build_stacked(
    keras: Any, model: ModelConfig, x: Any, horizon: int, targets: int, unroll: bool
) -> Any:
    """The members' stacks and heads as member-batched layers: x (B, L, F) -> (B, N, H, K)."""
    members, classes = model.ensemble, layer_classes()
    width, shared = x.shape[-1], True  # per member; the first layer sees the shared window
    for i, spec in enumerate(model.stack):
        if spec.type in GATES:
            x = classes["MemberRecurrent"](
                spec.type,
                members,
                spec.units,
                width,
                shared,
                activation=spec.activation,
                return_sequences=spec.return_sequences,
                unroll=unroll,
                name=f"stacked_{spec.type}_{i}",
            )(x)  # (B, [L,] N*u)
        elif spec.type == "dense":
            x = classes["MemberDense"](
                members, spec.units, width, shared, spec.activation, name=f"stacked_dense_{i}"
            )(x)  # (B, [L,] N*units)
        else:
            continue  # dropout of rate 0
        width, shared = spec.units, False
    start = "zeros" if model.residual != "none" else "glorot_uniform"
    head = horizon * targets
    x = classes["MemberDense"](
        members, head, width, shared, kernel_initializer=start, name="stacked_head_dense"
    )(x)  # (B, N*H*K), member-major
    return keras.layers.Reshape((members, horizon, targets), name="stacked_head")(x)


def _plain_layers(plain: Any, members: int) -> list[list[Any]]:
    """The plain ensemble's weighted layers of each member, in order: [member][layer]
    (models.build_models names them m<member>_...)."""
    found: list[list[Any]] = [[] for _ in range(members)]
    for layer in plain.layers:
        number = layer.name[1:].split("_", 1)[0]
        if layer.weights and layer.name.startswith("m") and number.isdigit():
            found[int(number)].append(layer)
    return found


def _stacked_weights(stacked: Any) -> list[list[Any]]:
    """Each stacked layer's variables, in the plain layers' order: kernel, recurrent kernel,
    bias for a recurrent layer (GRU: one bias of (N, 2, G*u)); kernel, bias for a dense."""
    found = []
    for layer in stacked.layers:
        if not layer.name.startswith("stacked_") or not layer.weights:
            continue
        if hasattr(layer, "cell"):
            cell = layer.cell
            found.append([cell.kernel, cell.recurrent_kernel, cell.bias])
        else:
            found.append([layer.kernel, layer.bias])
    return found


def copy_into_stacked(plain: Any, stacked: Any) -> None:
    """The plain ensemble's member weights -> the stacked model."""
    members = stacked.output_shape[1]
    per_member = _plain_layers(plain, members)
    for index, variables in enumerate(_stacked_weights(stacked)):
        own = [per_member[m][index].get_weights() for m in range(members)]  # [m][w]
        for w, variable in enumerate(variables):
            variable.assign(np.stack([own[m][w] for m in range(members)]))


def copy_into_plain(stacked: Any, plain: Any) -> None:
    """The stacked model's trained weights -> the plain ensemble's members."""
    members = stacked.output_shape[1]
    per_member = _plain_layers(plain, members)
    for index, variables in enumerate(_stacked_weights(stacked)):
        values = [np.asarray(v.numpy()) for v in variables]
        for m in range(members):
            per_member[m][index].set_weights([v[m] for v in values])
