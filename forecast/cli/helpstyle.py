"""How `forecast --help` names what each option takes.

Typer 0.29 labels every parameter with its Python type: `--quiet <bool>` (a flag, which takes
no value), `--set <list[str]>`, `--port <int range>`, `config <path>`, and a required argument
as `{config}` in the usage line. Here a flag shows nothing after its name, a value a word
(PATH, N, NUMBER, TEXT, or the option's own metavar such as KEY=VALUE), and an argument its
name in capitals: `Usage: forecast train [OPTIONS] CONFIG`.

Typer builds its TyperOption and TyperArgument objects itself, with no hook for their class,
so the commands below switch each parameter to a subclass that differs only in these help
methods, the first time they are asked for their parameters (for help, usage or parsing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

WORDS = {int: "N", float: "NUMBER", str: "TEXT"}


def value_word(param: TyperOption | TyperArgument) -> str:
    """PATH, N, NUMBER or TEXT for what one value of `param` is (one item of a list)."""
    annotation = param.type_descriptor.annotation
    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "PATH"
    return WORDS.get(annotation, "VALUE")


class HelpOption(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        return self.metavar or value_word(self)


class HelpArgument(TyperArgument):
    @property
    def display_name_raw(self) -> str:
        return self.metavar or (self.name or "").upper()

    def display_type(self, ctx: Any) -> str:
        return value_word(self)

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")


def restyle(params: list[Any]) -> list[Any]:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = HelpOption
        elif type(param) is TyperArgument:
            param.__class__ = HelpArgument
    return params


class HelpCommand(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return restyle(super().get_params(ctx))


class HelpGroup(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return restyle(super().get_params(ctx))


class HelpTyper(typer.Typer):
    """A Typer app whose commands are HelpCommands unless a command asks for another class."""

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or HelpCommand, **kwargs)
