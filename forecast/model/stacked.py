"""An ensemble's members trained as one wide model: N members of `u` units are one layer of
N x u units whose weights are block-diagonal, member by member.

    plain ensemble:  window -> [LSTM(u) -> head] x N  -> (B, N, H, K)   (N small ops per step)
    stacked:         window -> LSTM(N*u) -> head(N*H*K) -> (B, N, H, K) (one wide op per step)

Each wide layer's units are member-major within each gate (Keras' gate order: columns
[gate 0: member 0 .. member N-1 | gate 1: ...]), and a constraint keeps every weight that
would connect two members at zero after each update. The first layer sees the shared window,
so its input kernel needs no mask. The members start from the plain ensemble's weights (so
the same seed gives the same members), train as the plain ensemble would (Adam is
elementwise, and the masked entries stay zero), and their weights are copied back into the
plain ensemble, which is what `train` saves and forecasts with. A backtest's folds, whose
models are never saved, forecast through the wide model itself, the median of its members
(models.forecasting_model, copy=False): the same numbers, traced in a third of the time.

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


def member_mask(members: int, inputs: int, outputs: int, gates: int, shared: bool) -> np.ndarray:
    """(rows, gates * members * outputs) of 0/1: 1 where the row's member (rows are
    member-major blocks of `inputs`, or all shared) is the column's member."""
    cols = np.arange(gates * members * outputs)
    col_member = (cols % (members * outputs)) // outputs  # (C,)
    if shared:
        return np.ones((inputs, len(cols)), dtype="float32")
    row_member = np.arange(members * inputs) // inputs  # (R,)
    return (row_member[:, None] == col_member[None, :]).astype("float32")


@functools.cache
def _mask_class() -> type:
    import keras

    @keras.saving.register_keras_serializable(package="forecast")
    class MemberMask(keras.constraints.Constraint):
        """Keeps the weights between different members at zero."""

        def __init__(self, members: int, inputs: int, outputs: int, gates: int) -> None:
            self.members, self.inputs, self.outputs, self.gates = members, inputs, outputs, gates
            self.mask = member_mask(members, inputs, outputs, gates, shared=False)

        def __call__(self, weights: Any) -> Any:
            return weights * keras.ops.convert_to_tensor(self.mask, dtype=weights.dtype)

        def get_config(self) -> dict[str, int]:
            return {
                "members": self.members,
                "inputs": self.inputs,
                "outputs": self.outputs,
                "gates": self.gates,
            }

    return MemberMask


def build_stacked(
    keras: Any, model: ModelConfig, x: Any, horizon: int, targets: int, unroll: bool
) -> tuple[Any, list[tuple[str, int]]]:
    """The members' stacks and heads as wide layers: x (B, L, F) -> (B, N, H, K), and each
    wide layer's (kind, units per member) in order, for the weight copies."""
    members, mask = model.ensemble, _mask_class()
    layers: list[tuple[str, int]] = []
    width, shared = x.shape[-1], True  # per member; the first layer sees the shared window
    cls = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}
    for i, spec in enumerate(model.stack):
        if spec.type in GATES:
            gates = GATES[spec.type]
            x = cls[spec.type](
                members * spec.units,
                activation=spec.activation,
                return_sequences=spec.return_sequences,
                unroll=unroll,
                kernel_constraint=None if shared else mask(members, width, spec.units, gates),
                recurrent_constraint=mask(members, spec.units, spec.units, gates),
                name=f"stacked_{spec.type}_{i}",
            )(x)  # (B, [L,] N*u)
            layers.append((spec.type, spec.units))
        elif spec.type == "dense":
            x = keras.layers.Dense(
                members * spec.units,
                activation=spec.activation,
                kernel_constraint=None if shared else mask(members, width, spec.units, 1),
                name=f"stacked_dense_{i}",
            )(x)  # (B, [L,] N*units)
            layers.append(("dense", spec.units))
        else:
            continue  # dropout of rate 0
        width, shared = spec.units, False
    start = "zeros" if model.residual != "none" else "glorot_uniform"
    head = horizon * targets
    x = keras.layers.Dense(
        members * head,
        kernel_initializer=start,
        kernel_constraint=None if shared else mask(members, width, head, 1),
        name="stacked_head_dense",
    )(x)  # (B, N*H*K), member-major
    layers.append(("dense", head))
    return keras.layers.Reshape((members, horizon, targets), name="stacked_head")(x), layers


def _plain_layers(plain: Any, members: int) -> list[list[Any]]:
    """The plain ensemble's weighted layers of each member, in order: [member][layer]
    (models.build_models names them m<member>_...)."""
    found: list[list[Any]] = [[] for _ in range(members)]
    for layer in plain.layers:
        number = layer.name[1:].split("_", 1)[0]
        if layer.weights and layer.name.startswith("m") and number.isdigit():
            found[int(number)].append(layer)
    return found


def _member_cells(
    kind: str, units: int, inputs: int | None, members: int, member: int, shape: tuple, weight: int
) -> tuple[np.ndarray, ...]:
    """Index arrays (for np.ix_) of `member`'s cells in a wide layer's `weight`-th weight
    of `shape`: kernel (in, G*N*u), recurrent kernel (N*u, G*N*u), bias (G*N*u,) or GRU's
    (2, G*N*u). `inputs` is the per-member input width, None for the shared window."""
    gates = GATES.get(kind, 1)
    cols = np.concatenate(
        [g * members * units + member * units + np.arange(units) for g in range(gates)]
    )  # gate by gate, as the plain layer orders them
    if len(shape) == 1:
        return (cols,)
    if weight == 0:  # kernel
        rows = np.arange(shape[0]) if inputs is None else member * inputs + np.arange(inputs)
    elif kind in GATES and weight == 1:  # recurrent kernel
        rows = member * units + np.arange(units)
    else:  # GRU's input and recurrent biases
        rows = np.arange(shape[0])
    return rows, cols


def _wide_layers(stacked: Any) -> list[Any]:
    return [
        layer for layer in stacked.layers if layer.name.startswith("stacked_") and layer.weights
    ]


def copy_into_stacked(plain: Any, stacked: Any, layers: list[tuple[str, int]]) -> None:
    """The plain ensemble's member weights -> the stacked model (cross-member cells zero)."""
    members = stacked.output_shape[1]
    per_member = _plain_layers(plain, members)
    inputs = None
    for index, (layer, (kind, units)) in enumerate(zip(_wide_layers(stacked), layers, strict=True)):
        wide = [np.zeros(w.shape, dtype=w.dtype) for w in layer.weights]
        for member in range(members):
            own = per_member[member][index].get_weights()
            for w, values in enumerate(wide):
                cells = _member_cells(kind, units, inputs, members, member, values.shape, w)
                values[np.ix_(*cells)] = own[w]
        layer.set_weights(wide)
        inputs = units


def copy_into_plain(stacked: Any, plain: Any, layers: list[tuple[str, int]]) -> None:
    """The stacked model's trained weights -> the plain ensemble's members."""
    members = stacked.output_shape[1]
    per_member = _plain_layers(plain, members)
    inputs = None
    for index, (layer, (kind, units)) in enumerate(zip(_wide_layers(stacked), layers, strict=True)):
        wide = layer.get_weights()
        for member in range(members):
            own = []
            for w, values in enumerate(wide):
                cells = _member_cells(kind, units, inputs, members, member, values.shape, w)
                own.append(values[np.ix_(*cells)])
            per_member[member][index].set_weights(own)
        inputs = units
