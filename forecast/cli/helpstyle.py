"""How `forecast --help` names what each option takes.

Typer 0.29 labels every parameter with its Python type: `--quiet <bool>` (a flag, which takes
no value), `--set <list[str]>`, `--port <int range>`, `config <path>`, and a required argument
as `{config}` in the usage line. Here a flag shows nothing after its name, a value a word
(PATH, N, NUMBER, TEXT, or the option's own metavar such as KEY=VALUE), and an argument its
name in capitals: `Usage: forecast train [OPTIONS] CONFIG`.

Through public hooks: the commands are HelpCommands (`cls=` of `app.command`), whose
`get_params` gives each parameter without a `metavar` one (what Typer shows for an option's
value and names an argument by) and whose `collect_usage_pieces` writes the usage line. The one
exception is the word after an argument's name, see `show_argument_word`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

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


def label(params: list[Any]) -> list[Any]:
    """Give an option its value word as its metavar (a flag an empty one: it takes no value),
    an argument its name in capitals. A metavar given in the code is kept."""
    for param in params:
        if isinstance(param, TyperOption) and param.metavar is None:
            param.metavar = "" if param.is_flag or param.count else value_word(param)
        elif isinstance(param, TyperArgument):
            if param.metavar is None:
                param.metavar = (param.name or "").upper()
            show_argument_word(param)
    return params


class _WordedArgument(TyperArgument):
    def display_type(self, ctx: Any) -> str:
        return value_word(self)


def show_argument_word(argument: TyperArgument) -> None:
    """`CONFIG  PATH` in the Arguments panel, not `CONFIG  <path>`.

    The one use of something outside Typer's public API: Typer 0.29 builds its TyperArgument
    objects itself with no hook for their class, and shows `display_type` as the argument's
    value word whatever its `metavar` (which names the argument). So the argument is switched
    to a subclass that overrides only that method. Drop this when Typer offers a hook.
    """
    if type(argument) is TyperArgument:
        argument.__class__ = _WordedArgument


class HelpCommand(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return label(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """`[OPTIONS] CONFIG...`: an argument by its metavar, in brackets when optional."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar if param.required else f"[{param.metavar}]"
                pieces.append(f"{name}{'...' if param.nargs != 1 else ''}")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class HelpGroup(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return label(super().get_params(ctx))
