"""The config's YAML surface: read a file, apply `--set` and `--seed`, expand layer shorthand,
validate into `forecast.config.schema.Config` (pydantic's errors worded as one line by
`forecast.config.wording`), and write a config back as YAML.

    load_config("configs/univariate.yaml", ["training.epochs=5"], seed=3) -> Config

Every error is a ConfigError `<source>: <field.path>: <what is wrong>`; the source is the file,
or the `--set`/`--seed` option that gave the offending value.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from forecast.config.modelspec import LAYER_TYPES
from forecast.config.schema import Config, run_name
from forecast.config.wording import config_error, did_you_mean
from forecast.errors import ConfigError, excerpt

# A config is a few dozen values; YAML aliases can make a few lines stand for billions
# (`&a [*b, *b, ...]` nested: "billion laughs"), so the expanded size is counted first.
MAX_VALUES = 100_000

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


def load_config(
    path: str | Path, overrides: list[str] | None = None, seed: int | None = None
) -> Config:
    """Read, override, validate. Raises ConfigError with a one-line message."""
    raw, sources = read_config(path, overrides, seed)
    return validate_config(raw, source=str(path), sources=sources)


def read_config(
    path: str | Path, overrides: list[str] | None = None, seed: int | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The file's mapping with `--set` and `--seed` applied, data.path made absolute and
    the default name filled in, not yet validated; and the option that set each overridden
    field path (`validate_config`'s `sources`)."""
    path = Path(path)
    raw = _read_yaml(path)
    sources: dict[str, str] = {}
    for item in overrides or []:
        sources[apply_override(raw, item)] = f"--set {item}"
    if seed is not None:
        raw["seed"] = seed
        sources["seed"] = f"--seed {seed}"
    if isinstance(raw.get("data"), dict) and isinstance(raw["data"].get("path"), str):
        data_path = Path(raw["data"]["path"]).expanduser()
        try:
            if not data_path.is_absolute():
                data_path = (path.resolve().parent / data_path).resolve()
            else:
                data_path.resolve()  # only to find a loop
        except RuntimeError:  # Path.resolve: a symlink loop
            raise ConfigError(
                f"data.path: {raw['data']['path']} is a symlink loop that never reaches a "
                "file; point data.path at the data file itself"
            ) from None
        raw["data"]["path"] = str(data_path)
    raw.setdefault("name", run_name(path.stem))
    return raw, sources


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; check the path")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc})") from None
    try:
        raw = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply for a config; write it out flat") from None
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
    check_size(raw, str(path))
    return raw


def check_size(value: Any, source: str) -> None:
    """ConfigError when `value` (as YAML gave it) holds more than MAX_VALUES values once its
    aliases are expanded. Counted without expanding: a list or mapping reached again through
    an alias adds its known size, so this takes as long as the file is big."""
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        if not isinstance(node, (list, dict)):
            return 1
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = MAX_VALUES + 1  # an alias inside itself: endless
        items = list(node.items()) if isinstance(node, dict) else node
        total = 1
        for item in items:
            total += sum(size(x) for x in item) if isinstance(node, dict) else size(item)
            if total > MAX_VALUES:
                break
        sizes[id(node)] = total
        return total

    try:
        too_big = size(value) > MAX_VALUES
    except RecursionError:  # nested deeper than Python's stack
        too_big = True
    if too_big:
        raise ConfigError(
            f"{source}: the config expands to more than {MAX_VALUES:,} values (YAML aliases "
            "repeating aliases?); write the values out, a config needs a few dozen"
        )


def validate_config(
    raw: dict[str, Any], source: str = "config", sources: dict[str, str] | None = None
) -> Config:
    """A raw mapping (as YAML gives it, layer shorthand allowed) -> Config, or ConfigError.

    `sources` maps a dotted field path to the option that set it, for the error's prefix.
    """
    raw = _expand_layers(raw, source)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, source, sources) from None


def revalidate(config: Config, **changes: Any) -> Config:
    """A copy of `config` with `changes`, checked like a config file (pydantic's
    `model_copy(update=...)` would skip every check)."""
    return validate_config({**config.model_dump(), **changes}, source="config")


# --------------------------------------------------------------------------- layer shorthand


def _expand_layers(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """`model.layers` items `{lstm: {units: 50}}`, `{dropout: 0.2}`, `flatten` ->
    `{type: ..., **params}`, which the schema's discriminated union reads."""
    model = raw.get("model")
    if not isinstance(model, dict) or model.get("layers") is None:
        return raw
    items = model["layers"]
    if not isinstance(items, list):
        return raw  # the schema reports "must be a list"
    layers = []
    for index, item in enumerate(items):
        try:
            layers.append(_layer_from_yaml(item))
        except ValueError as exc:
            raise ConfigError(f"{source}: model.layers[{index}]: {exc}") from None
    return {**raw, "model": {**model, "layers": layers}}


def _layer_from_yaml(item: Any) -> Any:
    params: Any  # the layer's YAML mapping
    if isinstance(item, str):
        name, params = item, {}
    elif isinstance(item, dict) and "type" in item:
        return item
    elif isinstance(item, dict) and len(item) == 1:
        name, params = next(iter(item.items()))
    else:
        raise ValueError(
            "each layer must be one 'type: {params}' entry, e.g. '- lstm: {units: 50}', "
            f"got {excerpt(item)}"
        )
    if name not in LAYER_TYPES:
        raise ValueError(
            f"unknown layer type {excerpt(name)}{did_you_mean(str(name), LAYER_TYPES)}; "
            f"valid types: {', '.join(LAYER_TYPES)}"
        )
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        if name not in _SCALAR_PARAM:
            raise ValueError(f"layer '{name}' takes a mapping of parameters, got {excerpt(params)}")
        params = {_SCALAR_PARAM[name]: params}
    if "type" in params:
        raise ValueError(f"layer '{name}': 'type' is not a parameter")
    return {"type": name, **params}


# --------------------------------------------------------------------------- --set


_INDEX = re.compile(r"^(\w+)\[(\d+)\]$")


def apply_override(raw: dict[str, Any], item: str) -> str:
    """Apply one `--set key.path=value` (the value is parsed as YAML: `5`, `0.2`, `[a, b]`);
    returns the dotted path it set, as error messages write it."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. training.epochs=5")
    key_path, _, text = item.partition("=")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except RecursionError:
        raise ConfigError(f"--set {key_path.strip()}: nested too deeply for a value") from None
    except yaml.YAMLError:
        value = text
    check_size(value, f"--set {key_path.strip()}")
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
    # a layer's own key (layers[0].lstm.units) is written without the type in errors
    return _dotted([k for k in keys if k not in LAYER_TYPES or not isinstance(k, str)])


def _has(node: Any, key: Any) -> bool:
    if isinstance(node, dict):
        return key in node
    return isinstance(node, list) and isinstance(key, int) and key < len(node)


def _dotted(keys: list[Any]) -> str:
    return "".join(
        f"[{k}]" if isinstance(k, int) else ("." if i else "") + k for i, k in enumerate(keys)
    )


# --------------------------------------------------------------------------- writing


def config_to_yaml(config: Config) -> str:
    """The resolved config (every default filled in) as YAML that `load_config` accepts."""
    data = config.model_dump(mode="json")
    if config.model.layers is not None:
        data["model"] = {
            "layers": [_layer_to_yaml(spec) for spec in config.model.layers],
            "window_norm": config.model.window_norm,
            "residual": config.model.residual,
            "ensemble": config.model.ensemble,
            "ensemble_fit": config.model.ensemble_fit,
        }
    else:
        data["model"] = {k: v for k, v in data["model"].items() if v is not None}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _layer_to_yaml(spec: Any) -> dict[str, Any]:
    params = spec.model_dump(mode="json")
    kind = params.pop("type")
    return {kind: params}


def json_schema() -> dict[str, Any]:
    """The config file's JSON Schema, for editors (`forecast schema`)."""
    return Config.model_json_schema()
