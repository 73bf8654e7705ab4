"""How a command ends when something goes wrong, and its exit code.

A user error (a ForecastError, a bad option, a full disk) is one line on stderr, `error: ...`,
exit 2; Ctrl-C exits 130 and SIGTERM 143, saying what was left behind; anything else is our
bug: exit 1, its traceback only with --debug or FORECAST_DEBUG=1.
"""

from __future__ import annotations

import errno
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import typer

from forecast.cli.helpstyle import HelpGroup
from forecast.errors import ForecastError
from forecast.interrupts import Terminated

NO_RUN_WRITTEN = "no run directory was written"
_state = {"debug": False}


def show_tracebacks(debug: bool) -> None:
    """--debug: an internal error shows its traceback."""
    _state["debug"] = debug


class OneLineErrors(HelpGroup):
    """Usage errors (a bad option value, a missing option, an unknown command) as one line
    on stderr, `error: <what>; see 'forecast CMD --help'`, exit 2, instead of Typer's box."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )  # standalone_mode False: the errors come back here
        except typer.TyperException as exc:  # Typer's usage errors (its ClickException)
            ctx = getattr(exc, "ctx", None)
            hint = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
            message = " ".join(exc.format_message().split()).rstrip(".")
            if message:  # no arguments at all: the help was shown, no error to add
                typer.echo(f"error: {message}{hint}", err=True)
            code = exc.exit_code
        except typer.Abort:
            typer.echo("aborted", err=True)
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def call_api(
    call: Callable[[], Any], left: str | Callable[[], str] = "no file was left half-written"
) -> Any:
    """Call the API; map user errors to exit 2, Ctrl-C to 130, SIGTERM to 143, bugs to 1.
    `left` says what an interruption leaves behind (or, called then, works it out)."""
    try:
        return call()
    except ForecastError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except Terminated:
        typer.echo(f"terminated; {left if isinstance(left, str) else left()}", err=True)
        raise typer.Exit(143) from None
    except KeyboardInterrupt:
        typer.echo(f"interrupted; {left if isinstance(left, str) else left()}", err=True)
        raise typer.Exit(130) from None
    except (typer.Exit, SystemExit):
        raise
    except OSError as exc:  # a full disk, a read-only folder... where a command writes
        typer.echo(f"error: {_os_failure(exc)}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # a bug: say so, briefly, unless debugging
        internal_error(exc)


def _os_failure(exc: OSError) -> str:
    """The one line for a failed read or write; an OSError that is neither is our bug."""
    from forecast import api  # pandas and the rest: only once something failed

    if exc.errno in (errno.EACCES, errno.EPERM):  # a read's as well as a write's
        why = (exc.strerror or "permission denied").lower()
        return (
            f"{exc.filename or 'a file'}: {why}; check the permissions of the file and its folder"
        )
    failure = api.write_failure(exc, None, elsewhere="another --output or --runs-dir")
    if failure is None:
        internal_error(exc)
    return str(failure)


def internal_error(exc: BaseException) -> NoReturn:
    if _state["debug"]:
        traceback.print_exc()
    else:
        typer.echo(
            f"internal error: {type(exc).__name__}: {exc} "
            "(rerun with --debug for the traceback, and please report it)",
            err=True,
        )
    raise typer.Exit(1) from None
