"""The config's `model` section: layer specs and the architecture shorthand.

`model: {architecture: gru, units: [32, 16], dropout: 0.1}` or an explicit `layers` list;
`ModelConfig.stack` is the explicit list either way, expanded once when the section is
validated (the model layer reads it, never expands the shorthand itself). Part of the schema in
`forecast.config.schema`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

RECURRENT_TYPES = ("lstm", "gru", "simple_rnn")
LAYER_TYPES = (
    "simple_rnn",
    "lstm",
    "gru",
    "bidirectional",
    "conv1d",
    "max_pooling1d",
    "dropout",
    "dense",
    "flatten",
)
ARCHITECTURES = ("lstm", "gru", "simple_rnn", "bidirectional", "conv1d_lstm")
# shorthand keys that only some architectures use
SHORTHAND_FOR = {
    "filters": ("conv1d_lstm",),
    "kernel_size": ("conv1d_lstm",),
    "pool_size": ("conv1d_lstm",),
    "layer": ("bidirectional",),
}
ACTIVATIONS = (
    "tanh",
    "relu",
    "sigmoid",
    "linear",
    "elu",
    "selu",
    "gelu",
    "swish",
    "softsign",
    "softplus",
    "leaky_relu",
)
Activation = Literal[ACTIVATIONS]  # type: ignore[valid-type]
# units/filters of one layer: far above any useful width, far below what overflows memory
# estimates (whether a model fits is checked against the machine: forecast.model.memory)
MAX_WIDTH = 65_536


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors (pydantic's `extra_forbidden`,
    which `forecast.config.wording` words with a did-you-mean)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class RecurrentLayer(Strict):
    type: Literal["lstm", "gru", "simple_rnn"]
    units: int = Field(50, ge=1, le=MAX_WIDTH)
    activation: Activation = "tanh"
    return_sequences: bool = False
    dropout: float = Field(0.0, ge=0, lt=1)
    recurrent_dropout: float = Field(0.0, ge=0, lt=1)


class BidirectionalLayer(Strict):
    type: Literal["bidirectional"]
    layer: Literal["lstm", "gru", "simple_rnn"] = "lstm"
    units: int = Field(50, ge=1, le=MAX_WIDTH)
    activation: Activation = "tanh"
    return_sequences: bool = False
    dropout: float = Field(0.0, ge=0, lt=1)
    recurrent_dropout: float = Field(0.0, ge=0, lt=1)
    merge_mode: Literal["concat", "sum", "mul", "ave"] = "concat"


class Conv1DLayer(Strict):
    type: Literal["conv1d"]
    filters: int = Field(64, ge=1, le=MAX_WIDTH)
    kernel_size: int = Field(3, ge=1)
    activation: Activation = "relu"
    padding: Literal["valid", "same", "causal"] = "valid"


class MaxPooling1DLayer(Strict):
    type: Literal["max_pooling1d"]
    pool_size: int = Field(2, ge=1)


class DropoutLayer(Strict):
    type: Literal["dropout"]
    rate: float = Field(0.2, ge=0, lt=1)


class DenseLayer(Strict):
    type: Literal["dense"]
    units: int = Field(32, ge=1, le=MAX_WIDTH)
    activation: Activation = "relu"


class FlattenLayer(Strict):
    type: Literal["flatten"]


LayerSpec = Annotated[
    RecurrentLayer
    | BidirectionalLayer
    | Conv1DLayer
    | MaxPooling1DLayer
    | DropoutLayer
    | DenseLayer
    | FlattenLayer,
    Field(discriminator="type"),
]


class ModelConfig(Strict):
    architecture: Literal[ARCHITECTURES] | None = Field(  # type: ignore[valid-type]
        None, description="shorthand for a layer stack; use either this or layers"
    )
    units: list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]] | None = Field(
        None, description="shorthand: units of each recurrent layer"
    )
    dropout: float | None = Field(None, ge=0, lt=1, description="shorthand: dropout after each")
    filters: int | None = Field(
        None, ge=1, le=MAX_WIDTH, description="shorthand conv1d_lstm: Conv1D filters"
    )
    kernel_size: int | None = Field(None, ge=1, description="shorthand conv1d_lstm: kernel size")
    pool_size: int | None = Field(None, ge=0, description="shorthand conv1d_lstm: 0 = no pooling")
    layer: Literal["lstm", "gru", "simple_rnn"] | None = Field(
        None, description="shorthand bidirectional: the wrapped layer"
    )
    layers: list[LayerSpec] | None = Field(None, description="explicit layer list, in order")
    window_norm: bool = Field(
        False,
        description="scale each input window by its own last value and mean absolute step "
        "(undone on the output), so levels outside the training range are no problem",
    )
    ensemble: int = Field(
        1, ge=1, le=64, description="members trained side by side; forecasts are their median"
    )
    ensemble_fit: Literal["joint", "independent"] = Field(
        "joint",
        description="joint: the members train together as one model, with one early stop "
        "(fastest on one machine); independent: each member is its own fit, with its own "
        "seed and early stop, which `train --workers/--ray` runs in parallel",
    )
    residual: Literal[
        "none",
        "naive",
        "seasonal_naive",
        "seasonal_average",
        "seasonal_half_drift",
        "seasonal_drift",
        "auto",
    ] = Field(
        "none",
        description="learn a correction to this forecast, computed from the input window: "
        "naive, seasonal_naive, seasonal_average (the window's average seasonal pattern on "
        "the level of its last season), seasonal_drift (that plus the window's trend), "
        "seasonal_half_drift (plus half of it), or auto (of seasonal_average, "
        "seasonal_half_drift and seasonal_drift, the one with the lowest error on the "
        "training rows; naive when the window is shorter than a season); the seasonal ones "
        "need window.input_steps >= the season length",
    )
    # LayerSpec items; typed Any, as the model code reads each by its `type` (a tagged union)
    _stack: tuple[Any, ...] = PrivateAttr(default=())

    @field_validator("units", mode="before")
    @classmethod
    def _units_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("layers")
    @classmethod
    def _not_empty(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None and not value:
            raise ValueError("must be a non-empty list of layers, e.g. [{lstm: {units: 50}}]")
        return value

    @model_validator(mode="after")
    def _one_way_to_say_it(self) -> ModelConfig:
        shorthand = self._shorthand_given()
        if self.layers is not None and (self.architecture is not None or shorthand):
            extra = "architecture" if self.architecture is not None else shorthand[0]
            raise ValueError(
                f"give either 'layers' or the 'architecture' shorthand, not both ('{extra}')"
            )
        if self.layers is None and self.architecture is None and shorthand:
            raise ValueError(f"'{shorthand[0]}' needs 'architecture' (one of {ARCHITECTURES})")
        return self

    @model_validator(mode="after")
    def _shorthand_fits_architecture(self) -> ModelConfig:
        for key in self._shorthand_given():
            users = SHORTHAND_FOR.get(key)
            if users and self.architecture not in users:
                raise ValueError(
                    f"'{key}' applies only to architecture {' or '.join(users)}, not "
                    f"{self.architecture}; remove it or change the architecture"
                )
        return self

    @model_validator(mode="after")
    def _fill_shorthand_defaults(self) -> ModelConfig:
        if self.layers is None and self.architecture is None:
            self.architecture = "lstm"
        if self.architecture is not None:
            if self.units is None:
                self.units = [50, 50]
            if self.dropout is None:
                self.dropout = 0.0
            if self.architecture == "conv1d_lstm":
                self.filters = self.filters or 64
                self.kernel_size = self.kernel_size or 3
                self.pool_size = 2 if self.pool_size is None else self.pool_size
            if self.architecture == "bidirectional" and self.layer is None:
                self.layer = "lstm"
        self._stack = tuple(self._expand())
        return self

    def _shorthand_given(self) -> list[str]:
        keys = ("units", "dropout", "filters", "kernel_size", "pool_size", "layer")
        return [k for k in keys if getattr(self, k) is not None]

    @property
    def stack(self) -> tuple[Any, ...]:
        """The explicit layer list, in order (the shorthand expanded when validated)."""
        return self._stack

    def layer_specs(self) -> list[Any]:
        """The explicit layer list (the shorthand expanded), as a new list."""
        return list(self._stack)

    def _expand(self) -> list[Any]:
        if self.layers is not None:
            return list(self.layers)
        assert self.units is not None and self.architecture is not None
        specs: list[Any] = []
        if self.architecture == "conv1d_lstm":
            specs.append(
                Conv1DLayer(type="conv1d", filters=self.filters, kernel_size=self.kernel_size)
            )
            if self.pool_size:
                specs.append(MaxPooling1DLayer(type="max_pooling1d", pool_size=self.pool_size))
        for i, units in enumerate(self.units):
            more = i < len(self.units) - 1
            if self.architecture == "bidirectional":
                specs.append(
                    BidirectionalLayer(
                        type="bidirectional", layer=self.layer, units=units, return_sequences=more
                    )
                )
            else:
                kind = "lstm" if self.architecture == "conv1d_lstm" else self.architecture
                specs.append(RecurrentLayer(type=kind, units=units, return_sequences=more))
            if self.dropout:
                specs.append(DropoutLayer(type="dropout", rate=self.dropout))
        return specs

    def describe(self) -> str:
        """A short human name for the stack, e.g. 'lstm(50)-dropout-lstm(50)'."""
        parts = []
        for spec in self._stack:
            if spec.type in RECURRENT_TYPES or spec.type == "dense":
                parts.append(f"{spec.type}({spec.units})")
            elif spec.type == "bidirectional":
                parts.append(f"bi-{spec.layer}({spec.units})")
            elif spec.type == "conv1d":
                parts.append(f"conv1d({spec.filters})")
            else:
                parts.append(spec.type)
        return "-".join(parts)

    def label(self) -> str:
        """The one name of the model everywhere (verdicts, tables, `forecast runs`): the stack,
        e.g. 'lstm(50)-dropout-lstm(50)' or 'bi-lstm(32)', for the shorthand too."""
        return self.describe()
