"""The options several commands share (--run, --runs-dir, --set, --seed, --quiet), and the
progress on stderr that --quiet turns down."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

RunOpt = Annotated[
    Path | None,
    typer.Option(
        "--run", help="Run directory; default: the most recently finished run under runs/."
    ),
]
RunsDirOpt = Annotated[Path, typer.Option("--runs-dir", help="Folder that holds the runs.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a config value: key.path=value (repeatable).",
        metavar="KEY=VALUE",
    ),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Override the config's seed.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]

log = logging.getLogger("forecast")


def setup_logging(quiet: bool) -> None:
    """The library's progress (INFO) and warnings on stderr, or with --quiet the warnings only;
    a warning starts with `warning: `."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        return prefix + record.getMessage()


def _workers(value: str | int | None) -> int | None:
    """--workers N or auto (None: chosen from the cores and the work)."""
    if value is None or value == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter(f"give a number of processes or auto, not {value!r}") from None


WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        parser=_workers,
        metavar="N|auto",
        show_default=False,
        help="Independent fits in this many local processes (the cores shared out); auto "
        "(the default): chosen from the cores and the work, and recorded.",
    ),
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        envvar="RAY_ADDRESS",
        metavar="ADDRESS",
        show_envvar=False,
        help="Run independent fits as Ray tasks: a cluster's HOST:PORT, or auto for a local "
        "Ray (default: $RAY_ADDRESS).",
    ),
]
