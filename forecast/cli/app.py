"""The `forecast` command: the Typer app, its global options and its list of commands.

The commands are thin calls into forecast.api (config_commands.py, run_commands.py); how
they end on an error, and with which exit code, is errors.py. TensorFlow is imported only by
commands that need it, so --help is fast.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from forecast.cli import warm
from forecast.cli.config_commands import backtest, init, schema, train, tune, validate
from forecast.cli.errors import OneLineErrors, show_tracebacks
from forecast.cli.helpstyle import HelpCommand
from forecast.cli.run_commands import export, list_runs, plot, predict, serve
from forecast.interrupts import Terminated, request_stop

app = typer.Typer(
    cls=OneLineErrors,
    rich_markup_mode="markdown",  # docstring paragraphs re-wrapped to the terminal's width
    name="forecast",
    help="Time-series forecasting with recurrent networks (Keras), from one YAML config.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
COMMANDS: dict[str, Callable[..., None]] = {  # in the order `forecast --help` lists them
    "train": train,
    "backtest": backtest,
    "tune": tune,
    "runs": list_runs,
    "predict": predict,
    "plot": plot,
    "export": export,
    "serve": serve,
    "validate": validate,
    "init": init,
    "schema": schema,
}
for name, command in COMMANDS.items():
    app.command(name, cls=HelpCommand)(command)


def _show_version(value: bool) -> None:
    if value:
        from forecast import __version__

        typer.echo(f"forecast {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of internal errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_show_version
        ),
    ] = False,
) -> None:
    """Train, predict, plot: see `forecast COMMAND --help`."""
    show_tracebacks(debug or os.environ.get("FORECAST_DEBUG", "") not in ("", "0"))


def _terminate(signum: int, frame: Any) -> None:
    request_stop(Terminated)


def _interrupt(signum: int, frame: Any) -> None:
    request_stop(KeyboardInterrupt)


def main() -> None:
    if warm.wanted(sys.argv[1:]):  # train, backtest, tune: forked from a warm TensorFlow
        code = warm.run_warm(sys.argv[1:])
        if code is not None:
            sys.exit(code)
    signal.signal(signal.SIGTERM, _terminate)  # clean up like Ctrl-C, exit 143
    # Ctrl-C (and SIGTERM) raised at once outside TensorFlow work; inside it only noted, and
    # raised after the batch or stage (forecast.interrupts), never within TensorFlow's code
    signal.signal(signal.SIGINT, _interrupt)
    try:
        app(prog_name="forecast")  # also under `python -m forecast`
    except SystemExit as exc:
        if "tensorflow" not in sys.modules or warm.in_child() or warm.observed():
            raise  # (a profiler or debugger writes its report as the interpreter ends)
        # skip the interpreter's ~1 s tear-down of TensorFlow (atexit's functions still run)
        warm.leave(exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1))


if __name__ == "__main__":  # pragma: no cover
    main()
