"""Pydantic's validation errors worded as the one line a user reads.

    config_error(exc, "my.yaml", {"training.epochs": "--set training.epochs=0"})
    -> ConfigError("--set training.epochs=0: training.epochs: must be >= 1, got 0")

The line is `<source>: <field.path>: <what is wrong>`: the source is the file, or the
`--set`/`--seed` option that gave the offending value; an unknown key or a misspelt choice
gets a did-you-mean, an unknown key the section's valid keys. Only the first error is worded;
further ones are counted.
"""

from __future__ import annotations

import difflib
import functools
import re
import typing
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from forecast.config.modelspec import LAYER_TYPES
from forecast.config.schema import Config
from forecast.errors import ConfigError, excerpt


def config_error(
    exc: ValidationError, source: str = "config", sources: dict[str, str] | None = None
) -> ConfigError:
    """The one-line ConfigError of `exc`. `sources` maps a dotted field path to the option
    that set it, for the line's prefix (default: `source`)."""
    where, message = describe_error(exc)
    # an unknown key is reported at its section; the option that added it is found
    # by the key's own path (`--set trainin.epochs=3` adds the unknown key 'trainin')
    shown = _shown_error(exc)
    given = format_loc(shown["loc"])
    unknown = shown["type"] == "extra_forbidden"
    origin = next(
        (
            label
            for key, label in (sources or {}).items()
            if _within(given, key) or (unknown and _within(key, given))
        ),
        source,
    )
    text = f"{where}: {message}" if where else message
    return ConfigError(f"{origin}: {text}")


def _within(where: str, key: str) -> bool:
    return where == key or where.startswith((f"{key}.", f"{key}["))


def did_you_mean(key: str, valid: typing.Iterable[str]) -> str:
    close = closest(key, valid)
    return f" (did you mean '{close}'?)" if close else ""


def closest(key: str, valid: typing.Iterable[str]) -> str | None:
    close = difflib.get_close_matches(key[:200], list(valid), n=1, cutoff=0.6)
    return close[0] if close else None


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


def _shown_error(exc: ValidationError) -> ErrorDetails:
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


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = excerpt(error.get("input"))
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        valid = sorted(_keys_at(error["loc"][:-1]))
        named = f"'{key}'" if len(key) <= 80 else excerpt(key)
        return f"unknown key {named}{did_you_mean(key, valid)}; valid keys: {', '.join(valid)}"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()))
        return f"must be {_BOUNDS[kind]} {limit}, got {got}"
    if kind == "literal_error":
        expected = str(ctx.get("expected"))
        given = error.get("input")
        # a misspelt choice gets a did-you-mean, like a misspelt key
        close = (
            closest(given, re.findall(r"'([^']*)'", expected)) if isinstance(given, str) else None
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


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys of the config section at pydantic's error location `loc`, read from the
    config's JSON schema. A location's parts are field names, list indexes and a layer's
    type (the tag of `model.layers`' discriminated union); a part that leads nowhere (the
    member's name in an untagged union such as `early_stopping: {...} | false`) is passed
    over."""
    node = _schema()
    for item in loc:
        steps = (_step(option, item) for option in _options(node))
        node = next((step for step in steps if step is not None), node)
    return next((list(n["properties"]) for n in _options(node) if "properties" in n), [])


def _step(node: dict[str, Any], item: Any) -> dict[str, Any] | None:
    """The schema one location part below `node`, or None if `item` leads nowhere from it."""
    if isinstance(item, int):
        return node.get("items")
    if item in node.get("properties", {}):
        return node["properties"][item]
    tag = node.get("discriminator", {}).get("mapping", {}).get(item)
    return {"$ref": tag} if tag is not None else None


def _options(node: dict[str, Any]) -> list[dict[str, Any]]:
    """`node` with its `$ref` resolved, then each member of its union (`anyOf`, `oneOf`)."""
    if "$ref" in node:
        node = _schema()["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    members = node.get("anyOf", []) + node.get("oneOf", [])
    return [node, *(option for member in members for option in _options(member))]


@functools.cache
def _schema() -> dict[str, Any]:
    return Config.model_json_schema()  # built on the first error: 50 ms, no start-up cost
