"""The config's YAML surface: read a file, apply `--set` and `--seed`, expand layer shorthand,
validate into `forecast.config.schema.Config`, and word pydantic's errors as one line.

    load_config("configs/univariate.yaml", ["training.epochs=5"], seed=3) -> Config

Every error is a ConfigError `<source>: <field.path>: <what is wrong>`; the source is the file,
or the `--set`/`--seed` option that gave the offending value.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from forecast.config.modelspec import LAYER_MODELS, LAYER_TYPES
from forecast.config.schema import Config, run_name
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
    try:
        return validate_config(raw, source=str(path), sources=sources)
    except ConfigError as exc:
        # a misspelt column makes features and targets disagree with the layout: name the
        # column, not the layout
        typo = _column_typo(raw.get("data")) if "layout" in str(exc) else None
        if typo:
            raise ConfigError(typo) from None
        raise


def _column_typo(data: Any) -> str | None:
    """'<csv>: no column ...; did you mean ...?' for a features/targets name the CSV's
    header lacks, or None (also when the CSV cannot be read: the config error stands)."""
    from forecast.data.csvfile import read_table
    from forecast.data.reading import missing_column
    from forecast.errors import ForecastError

    if not isinstance(data, dict) or not isinstance(data.get("path"), str):
        return None
    names = [
        c
        for key in ("features", "targets")
        for c in (data.get(key) if isinstance(data.get(key), list) else [])
        if isinstance(c, str)
    ]
    try:
        frame, _ = read_table(
            Path(data["path"]), data.get("encoding", "auto"), data.get("decimal", ".")
        )
    except (ForecastError, OSError, TypeError, ValueError):
        return None
    message = missing_column(names, [str(c) for c in frame.columns], None)
    return f"{data['path']}: {message}" if message else None


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
    sources = sources or {}
    raw = _expand_layers(raw, source)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        where, message = describe_error(exc)
        # an unknown key is reported at its section; the option that added it is found
        # by the key's own path (`--set trainin.epochs=3` adds the unknown key 'trainin')
        shown = _shown_error(exc)
        given = format_loc(shown["loc"])
        unknown = shown["type"] == "extra_forbidden"
        origin = next(
            (
                label
                for key, label in sources.items()
                if _within(given, key) or (unknown and _within(key, given))
            ),
            source,
        )
        text = f"{where}: {message}" if where else message
        raise ConfigError(f"{origin}: {text}") from None


def _within(where: str, key: str) -> bool:
    return where == key or where.startswith((f"{key}.", f"{key}["))


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
            f"unknown layer type {excerpt(name)}{_did_you_mean(str(name), LAYER_TYPES)}; "
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


def _did_you_mean(key: str, valid: typing.Iterable[str]) -> str:
    close = _closest(key, valid)
    return f" (did you mean '{close}'?)" if close else ""


def _closest(key: str, valid: typing.Iterable[str]) -> str | None:
    close = difflib.get_close_matches(key[:200], list(valid), n=1, cutoff=0.6)
    return close[0] if close else None


# --------------------------------------------------------------------------- error wording


def describe_error(exc: ValidationError) -> tuple[str, str]:
    """(field path, message) of the first error; further errors are counted, not listed.

    A union field (e.g. `early_stopping: {..} | false`) reports one error per member under
    the same path; the most specific one (not "must be false") is shown.
    """
    errors = [(format_loc(e["loc"]), e) for e in exc.errors()]
    where = errors[0][0]
    first = _shown_error(exc)
    message = _message(first)
    if first["type"] == "extra_forbidden":
        # the unknown key is the last part of the path; name the section that holds it
        where = format_loc(first["loc"][:-1])
    others = len({loc for loc, _ in errors}) - 1
    more = f" (and {others} more error(s))" if others else ""
    return where, f"{message}{more}"


def _shown_error(exc: ValidationError) -> dict[str, Any]:
    """The error `describe_error` words: the first, or at the same place a more specific one."""
    errors = exc.errors()
    where = format_loc(errors[0]["loc"])
    same_place = [e for e in errors if format_loc(e["loc"]) == where]
    return next((e for e in same_place if e["type"] != "literal_error"), same_place[0])


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


_BOUNDS = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}
_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
}


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = excerpt(error.get("input"))
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        valid = sorted(_fields_at(error["loc"][:-1]))
        named = f"'{key}'" if len(key) <= 80 else excerpt(key)
        return f"unknown key {named}{_did_you_mean(key, valid)}; valid keys: {', '.join(valid)}"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()))
        return f"must be {_BOUNDS[kind]} {limit}, got {got}"
    if kind == "literal_error":
        expected = str(ctx.get("expected"))
        given = error.get("input")
        # a misspelt choice gets a did-you-mean, like a misspelt key
        close = (
            _closest(given, re.findall(r"'([^']*)'", expected)) if isinstance(given, str) else None
        )
        return f"must be one of {expected}, got {got}" + (
            f"; did you mean '{close}'?" if close else ""
        )
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]}, got {got}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s), got {got}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} item(s), got {got}"
    return f"{error['msg']}, got {got}"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names of the config section at pydantic's error location `loc`."""
    node: Any = Config
    for item in loc:
        if isinstance(item, str) and item in LAYER_MODELS:
            node = LAYER_MODELS[item]  # a discriminated union's tag
        elif isinstance(item, int):
            continue  # a list index: the item type is already `node`
        elif _is_model(node) and item in node.model_fields:
            node = _section_type(node.model_fields[item].annotation)
        else:  # a union member's name
            node = next((m for m in _members(node) if m.__name__ == item), node)
    return list(node.model_fields) if _is_model(node) else []


def _is_model(node: Any) -> bool:
    return isinstance(node, type) and issubclass(node, BaseModel)


def _members(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _section_type(annotation: Any) -> Any:
    """The one pydantic model inside `X | None`, `list[X]` or `Annotated[...]`, else the
    annotation (a union of layer models stays a union; its tag picks the member)."""
    models = [m for m in _members(annotation) if _is_model(m)]
    return models[0] if len(models) == 1 else annotation


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
        }
    else:
        data["model"] = {k: v for k, v in data["model"].items() if v is not None}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _layer_to_yaml(spec: Any) -> dict[str, Any]:
    params = spec.model_dump(mode="json")
    kind = params.pop("type")
    return {kind: params}
