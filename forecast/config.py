"""The YAML config: typed, validated once, with errors that name the field path.

`load_config(path, overrides)` is the only entry point most callers need. It reads the file
with `yaml.safe_load`, applies `--set key.path=value` overrides, validates everything into
pydantic models (unknown keys are errors, with a did-you-mean) and resolves `data.path`
relative to the config file.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from forecast.errors import ConfigError

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
LAYOUTS = (
    "univariate",
    "multivariate",
    "multi_output",
    "univariate_multi_step",
    "multivariate_multi_step",
    "multi_output_multi_step",
)
Activation = Literal[ACTIVATIONS]  # type: ignore[valid-type]


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors with a did-you-mean."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields)
            for key in data:
                if key not in known:
                    raise ValueError(unknown_key_message(str(key), sorted(known)))
        return data


def unknown_key_message(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key '{key}'{hint}; valid keys: {', '.join(valid)}"


# --------------------------------------------------------------------------- data


class DataConfig(Strict):
    path: str = Field(description="CSV file, relative to the config file")
    encoding: str = Field("auto", description="auto (utf-8, utf-8-sig, gb18030) or a codec")
    time_column: str | None = Field(None, description="time column; without it rows are steps")
    features: list[str] = Field(min_length=1, description="input columns")
    targets: list[str] | None = Field(None, description="predicted columns; default: features")
    missing: Literal["error", "drop", "ffill", "interpolate"] = "error"
    transform: Literal["none", "diff", "log", "log_diff"] = "none"

    @field_validator("features", "targets")
    @classmethod
    def _unique_columns(cls, columns: list[str] | None) -> list[str] | None:
        if columns is not None:
            if len(columns) == 0:
                raise ValueError("must list at least one column")
            dupes = sorted({c for c in columns if columns.count(c) > 1})
            if dupes:
                raise ValueError(f"lists {', '.join(dupes)} more than once")
        return columns

    @model_validator(mode="after")
    def _default_targets(self) -> DataConfig:
        if self.targets is None:
            self.targets = list(self.features)
        return self

    @property
    def columns(self) -> list[str]:
        """Every column the model needs: the features, then targets that are not features."""
        return self.features + [t for t in self.targets if t not in self.features]


# --------------------------------------------------------------------------- window, split


class WindowConfig(Strict):
    input_steps: int = Field(60, ge=1, description="rows the model sees per forecast")
    horizon: int = Field(1, ge=1, description="steps ahead to predict")
    multi_step: Literal["direct", "recursive"] = "direct"


def _fraction_or_count(value: Any, allow_zero: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a fraction in (0, 1) or a row count, got {value!r}")
    if isinstance(value, int) or (isinstance(value, float) and value >= 1 and value.is_integer()):
        if value < 0 or (value == 0 and not allow_zero):
            raise ValueError(f"must be a fraction in (0, 1) or a row count >= 1, got {value!r}")
        return int(value)
    if not (0 < value < 1) and not (allow_zero and value == 0):
        raise ValueError(f"must be a fraction in (0, 1) or a whole row count, got {value!r}")
    return float(value)


class SplitConfig(Strict):
    test: float | int = Field(0.2, description="fraction (0,1) or a row count")
    validation: float | int = Field(0.1, description="fraction of the training part, from its end")

    @field_validator("test", mode="before")
    @classmethod
    def _test(cls, value: Any) -> float | int:
        return _fraction_or_count(value, allow_zero=False)

    @field_validator("validation", mode="before")
    @classmethod
    def _validation(cls, value: Any) -> float | int:
        return _fraction_or_count(value, allow_zero=True)


class ScalingConfig(Strict):
    method: Literal["minmax", "standard", "none"] = "minmax"
    feature_range: tuple[float, float] = (0.0, 1.0)

    @field_validator("feature_range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not value[0] < value[1]:
            raise ValueError(f"must be [low, high] with low < high, got {list(value)}")
        return value


# --------------------------------------------------------------------------- model


class RecurrentLayer(Strict):
    type: Literal["lstm", "gru", "simple_rnn"]
    units: int = Field(50, ge=1)
    activation: Activation = "tanh"
    return_sequences: bool = False
    dropout: float = Field(0.0, ge=0, lt=1)
    recurrent_dropout: float = Field(0.0, ge=0, lt=1)


class BidirectionalLayer(Strict):
    type: Literal["bidirectional"]
    layer: Literal["lstm", "gru", "simple_rnn"] = "lstm"
    units: int = Field(50, ge=1)
    activation: Activation = "tanh"
    return_sequences: bool = False
    dropout: float = Field(0.0, ge=0, lt=1)
    recurrent_dropout: float = Field(0.0, ge=0, lt=1)
    merge_mode: Literal["concat", "sum", "mul", "ave"] = "concat"


class Conv1DLayer(Strict):
    type: Literal["conv1d"]
    filters: int = Field(64, ge=1)
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
    units: int = Field(32, ge=1)
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
# A scalar after the layer name sets this parameter: `- dropout: 0.2`, `- lstm: 64`.
_SCALAR_PARAM = {
    "dropout": "rate",
    "lstm": "units",
    "gru": "units",
    "simple_rnn": "units",
    "bidirectional": "units",
    "dense": "units",
    "conv1d": "filters",
    "max_pooling1d": "pool_size",
}


def _layer_from_yaml(item: Any) -> Any:
    """`{lstm: {units: 50}}`, `{dropout: 0.2}` or `flatten` -> `{type: ..., **params}`."""
    if isinstance(item, str):
        name, params = item, {}
    elif isinstance(item, dict) and "type" in item:
        return item
    elif isinstance(item, dict) and len(item) == 1:
        name, params = next(iter(item.items()))
    else:
        raise ValueError(
            "each layer must be one 'type: {params}' entry, e.g. '- lstm: {units: 50}', "
            f"got {item!r}"
        )
    if name not in LAYER_TYPES:
        close = difflib.get_close_matches(str(name), LAYER_TYPES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(
            f"unknown layer type '{name}'{hint}; valid types: {', '.join(LAYER_TYPES)}"
        )
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        if name not in _SCALAR_PARAM:
            raise ValueError(f"layer '{name}' takes a mapping of parameters, got {params!r}")
        params = {_SCALAR_PARAM[name]: params}
    if "type" in params:
        raise ValueError(f"layer '{name}': 'type' is not a parameter")
    return {"type": name, **params}


class ModelConfig(Strict):
    architecture: Literal[ARCHITECTURES] | None = Field(  # type: ignore[valid-type]
        None, description="shorthand for a layer stack; use either this or layers"
    )
    units: list[Annotated[int, Field(ge=1)]] | None = Field(
        None, description="shorthand: units of each recurrent layer"
    )
    dropout: float | None = Field(None, ge=0, lt=1, description="shorthand: dropout after each")
    filters: int | None = Field(None, ge=1, description="shorthand conv1d_lstm: Conv1D filters")
    kernel_size: int | None = Field(None, ge=1, description="shorthand conv1d_lstm: kernel size")
    pool_size: int | None = Field(None, ge=0, description="shorthand conv1d_lstm: 0 = no pooling")
    layer: Literal["lstm", "gru", "simple_rnn"] | None = Field(
        None, description="shorthand bidirectional: the wrapped layer"
    )
    layers: list[LayerSpec] | None = Field(None, description="explicit layer list, in order")

    @field_validator("units", mode="before")
    @classmethod
    def _units_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("layers", mode="before")
    @classmethod
    def _layers_from_yaml(cls, value: Any) -> Any:
        if value is None:
            return value
        if not isinstance(value, list) or not value:
            raise ValueError("must be a non-empty list of layers, e.g. [{lstm: {units: 50}}]")
        layers = []
        for index, item in enumerate(value):
            try:
                layers.append(_layer_from_yaml(item))
            except ValueError as exc:
                # carries the list index into the error's field path (see format_validation_error)
                raise ValueError(f"{_ITEM_MARK}{index}{_ITEM_MARK}{exc}") from None
        return layers

    @model_validator(mode="after")
    def _one_way_to_say_it(self) -> ModelConfig:
        shorthand = [
            k
            for k in ("units", "dropout", "filters", "kernel_size", "pool_size", "layer")
            if getattr(self, k) is not None
        ]
        if self.layers is not None and (self.architecture is not None or shorthand):
            extra = "architecture" if self.architecture is not None else shorthand[0]
            raise ValueError(
                f"give either 'layers' or the 'architecture' shorthand, not both ('{extra}')"
            )
        if self.layers is None and self.architecture is None:
            if shorthand:
                raise ValueError(f"'{shorthand[0]}' needs 'architecture' (one of {ARCHITECTURES})")
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
        return self

    def layer_specs(self) -> list[Any]:
        """The explicit layer list (the shorthand expanded)."""
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
        for spec in self.layer_specs():
            if spec.type in RECURRENT_TYPES or spec.type == "dense":
                parts.append(f"{spec.type}({spec.units})")
            elif spec.type == "bidirectional":
                parts.append(f"bi-{spec.layer}({spec.units})")
            elif spec.type == "conv1d":
                parts.append(f"conv1d({spec.filters})")
            else:
                parts.append(spec.type)
        return "-".join(parts)


# --------------------------------------------------------------------------- training


class EarlyStoppingConfig(Strict):
    patience: int = Field(10, ge=0)
    restore_best_weights: bool = True


class TrainingConfig(Strict):
    epochs: int = Field(50, ge=1, le=100_000)
    batch_size: int = Field(32, ge=1)
    optimizer: Literal["adam", "rmsprop", "sgd", "adamw"] = "adam"
    learning_rate: float = Field(0.001, gt=0, le=10)
    loss: Literal["mse", "mae", "huber"] = "mse"
    clipvalue: float | None = Field(None, gt=0)
    early_stopping: EarlyStoppingConfig | Literal[False] = Field(
        default_factory=EarlyStoppingConfig
    )
    distribute: Literal["none", "mirrored", "multi_worker"] = Field(
        "none", description="none | mirrored (all local GPUs)"
    )
    jit_compile: bool = Field(False, description="compile training steps with XLA")
    unroll: Literal["auto"] | bool = Field(
        "auto",
        description="unroll recurrent layers: auto = on CPU-only machines for input_steps <= 100 "
        "(about 2x faster training at batch 32 there); never on GPUs, where it would lose cuDNN",
    )

    @field_validator("distribute")
    @classmethod
    def _distribute_available(cls, value: str) -> str:
        if value == "multi_worker":
            raise ValueError(
                "'multi_worker' is not available in this version yet; use none or mirrored"
            )
        return value

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _true_means_defaults(cls, value: Any) -> Any:
        return {} if value is True else value


class EvaluationConfig(Strict):
    season_length: Literal["auto"] | int = Field(
        "auto", description="season length for seasonal naive and MASE: auto or an integer >= 1"
    )

    @field_validator("season_length", mode="before")
    @classmethod
    def _auto_or_positive(cls, value: Any) -> Any:
        if value == "auto" or (
            isinstance(value, int) and not isinstance(value, bool) and value >= 1
        ):
            return value
        raise ValueError(f"must be 'auto' or an integer >= 1, got {value!r}")


# --------------------------------------------------------------------------- whole config


class Config(Strict):
    name: str | None = Field(None, description="run name; default: the config file's stem")
    seed: int = Field(42, ge=0, le=2**31 - 1)
    data: DataConfig
    layout: Literal[LAYOUTS] | None = Field(  # type: ignore[valid-type]
        None, description="optional; inferred from features/targets/horizon; must agree"
    )
    window: WindowConfig = Field(default_factory=WindowConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.\-]+", value):
            raise ValueError(
                f"must use only letters, digits, '_', '-' and '.', got {value!r} "
                "(it names the run directory)"
            )
        return value

    @model_validator(mode="after")
    def _layout_agrees(self) -> Config:
        inferred = infer_layout(self.data.features, self.data.targets, self.window.horizon)
        if self.layout is not None and self.layout != inferred:
            raise ValueError(
                f"layout '{self.layout}' disagrees with the data and window: features "
                f"{self.data.features} -> targets {self.data.targets}, horizon "
                f"{self.window.horizon} is '{inferred}'; "
                "fix features/targets/horizon (names must match exactly) or drop 'layout'"
            )
        self.layout = inferred
        if self.window.multi_step == "recursive" and not self.recursive_ok:
            raise ValueError(
                "window.multi_step 'recursive' feeds predictions back as inputs, so every "
                "feature must be a target; use multi_step: direct or add the columns "
                f"{', '.join(c for c in self.data.features if c not in self.data.targets)} "
                "to data.targets"
            )
        return self

    @property
    def recursive_ok(self) -> bool:
        """Predictions can be fed back as inputs: every feature is also a target."""
        return set(self.data.features) <= set(self.data.targets)


def infer_layout(features: list[str], targets: list[str], horizon: int) -> str:
    if len(targets) > 1:
        base = "multi_output"
    elif list(features) == list(targets):
        base = "univariate"
    else:
        base = "multivariate"
    return base if horizon == 1 else f"{base}_multi_step"


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read, override, validate. Raises ConfigError with a one-line message."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; check the path")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    if raw is None:
        raise ConfigError(f"{path}: the config is empty; see `forecast init` for a starter")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the config must be a mapping of sections (data, window, model, ...), "
            f"got a {type(raw).__name__}"
        )
    for item in overrides or []:
        apply_override(raw, item)
    if isinstance(raw.get("data"), dict) and isinstance(raw["data"].get("path"), str):
        data_path = Path(raw["data"]["path"]).expanduser()
        if not data_path.is_absolute():
            data_path = (path.resolve().parent / data_path).resolve()
        raw["data"]["path"] = str(data_path)
    raw.setdefault("name", re.sub(r"[^\w.\-]", "_", path.stem) or "run")
    return validate_config(raw, source=str(path))


def validate_config(raw: dict[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from None


_ITEM_MARK = "\x00"


def format_validation_error(exc: ValidationError) -> str:
    """The first error as `field.path: message`; more errors are counted, not listed.

    A union field (e.g. `early_stopping: {..} | false`) reports one error per member under
    the same path; the most specific one (not "must be false") is shown.
    """
    errors = [(format_loc(e["loc"]), e) for e in exc.errors()]
    where = errors[0][0]
    same_place = [e for loc, e in errors if loc == where]
    first = next((e for e in same_place if e["type"] != "literal_error"), same_place[0])
    message = _message(first)
    if message.startswith(_ITEM_MARK):
        index, _, message = message[1:].partition(_ITEM_MARK)
        where += f"[{index}]"
    others = len({loc for loc, _ in errors}) - 1
    more = f" (and {others} more error(s))" if others else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"


def format_loc(loc: tuple[Any, ...]) -> str:
    """('model', 'layers', 1, 'lstm', 'units') -> 'model.layers[1].units'."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in LAYER_TYPES and parts and parts[-1].endswith("]"):
            continue  # the discriminated union's tag, not a YAML key
        elif not str(item).isidentifier() or str(item)[:1].isupper():
            continue  # a union member's name, e.g. 'EarlyStoppingConfig' or 'literal[False]'
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = error.get("input")
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown key"
    bounds = {
        "greater_than_equal": ">=",
        "greater_than": ">",
        "less_than_equal": "<=",
        "less_than": "<",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"must be {bounds[kind]} {limit}, got {got!r}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {got!r}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer, got {got!r}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number, got {got!r}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false, got {got!r}"
    if kind in ("string_type",):
        return f"must be a string, got {got!r}"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list, got {got!r}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping, got {got!r}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s), got {got!r}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} item(s), got {got!r}"
    if kind == "union_tag_invalid":
        return f"unknown layer type {ctx.get('tag')!r}; valid types: {', '.join(LAYER_TYPES)}"
    return f"{error['msg']}, got {got!r}"


_INDEX = re.compile(r"^(\w+)\[(\d+)\]$")


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one `--set key.path=value`; the value is parsed as YAML (`5`, `0.2`, `[a, b]`)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. training.epochs=5")
    key_path, _, text = item.partition("=")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    keys: list[Any] = []
    for part in key_path.strip().split("."):
        match = _INDEX.match(part)
        if match:
            keys += [match.group(1), int(match.group(2))]
        elif part:
            keys.append(part)
        else:
            raise ConfigError(f"--set {item!r}: empty key in {key_path!r}")
    node: Any = raw
    for depth, key in enumerate(keys[:-1]):
        nxt = node[key] if _has(node, key) else None
        if nxt is None:
            if isinstance(key, int):
                raise ConfigError(f"--set {item!r}: no item {key} at {_dotted(keys[:depth])}")
            nxt = {}
            node[key] = nxt
        if not isinstance(nxt, (dict, list)):
            raise ConfigError(f"--set {item!r}: {_dotted(keys[: depth + 1])} is not a section")
        node = nxt
    last = keys[-1]
    if isinstance(node, list) and (not isinstance(last, int) or last >= len(node)):
        raise ConfigError(f"--set {item!r}: no item {last} at {_dotted(keys[:-1])}")
    node[last] = value


def _has(node: Any, key: Any) -> bool:
    if isinstance(node, dict):
        return key in node
    return isinstance(node, list) and isinstance(key, int) and key < len(node)


def _dotted(keys: list[Any]) -> str:
    return "".join(
        f"[{k}]" if isinstance(k, int) else ("." if i else "") + k for i, k in enumerate(keys)
    )


def config_to_yaml(config: Config) -> str:
    """The resolved config (every default filled in) as YAML that `load_config` accepts."""
    data = config.model_dump(mode="json")
    if config.model.layers is not None:
        data["model"] = {"layers": [_layer_to_yaml(spec) for spec in config.model.layers]}
    else:
        data["model"] = {k: v for k, v in data["model"].items() if v is not None}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _layer_to_yaml(spec: Any) -> dict[str, Any]:
    params = spec.model_dump(mode="json")
    kind = params.pop("type")
    return {kind: params}


def json_schema() -> dict[str, Any]:
    return Config.model_json_schema()
