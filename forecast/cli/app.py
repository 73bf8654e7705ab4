"""The `forecast` command: a thin Typer shell over forecast.api.

Each command parses its options, makes one API call and prints. A ForecastError becomes one
line on stderr and exit code 2; anything else is a bug: exit 1, traceback only with --debug
or FORECAST_DEBUG=1. TensorFlow is imported only by commands that need it, so --help is fast.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from forecast.cli.helpstyle import HelpGroup, HelpTyper
from forecast.errors import ForecastError
from forecast.interrupts import Terminated, request_stop

try:  # Typer >= 0.20 carries its own click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older Typer on the click package
    from click.exceptions import ClickException


class OneLineErrors(HelpGroup):
    """Usage errors (a bad option value, a missing option, an unknown command) as one line
    on stderr, `error: <what>; see 'forecast CMD --help'`, exit 2, instead of Typer's box."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except ClickException as exc:
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


app = HelpTyper(
    cls=OneLineErrors,
    rich_markup_mode="markdown",  # docstring paragraphs re-wrapped to the terminal's width
    name="forecast",
    help="Time-series forecasting with recurrent networks (Keras), from one YAML config.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("forecast")
_state = {"debug": False}

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


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        return prefix + record.getMessage()


NO_RUN_WRITTEN = "no run directory was written"


def _run(call: Callable[[], Any], left: str = "no file was left half-written") -> Any:
    """Call the API; map user errors to exit 2, Ctrl-C to 130, SIGTERM to 143, bugs to 1.
    `left` says what an interruption leaves behind."""
    try:
        return call()
    except ForecastError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except Terminated:
        typer.echo(f"terminated; {left}", err=True)
        raise typer.Exit(143) from None
    except KeyboardInterrupt:
        typer.echo(f"interrupted; {left}", err=True)
        raise typer.Exit(130) from None
    except (typer.Exit, SystemExit):
        raise
    except OSError as exc:  # a full disk, a read-only folder... where a command writes
        from forecast.api import write_failure

        if exc.errno in (errno.EACCES, errno.EPERM):  # a read's as well as a write's
            why = (exc.strerror or "permission denied").lower()
            failure: Any = f"{exc.filename or 'a file'}: {why}; check the permissions of the "
            failure += "file and its folder"
        else:
            failure = write_failure(exc, None, elsewhere="another --output or --runs-dir")
        if failure is None:
            _internal_error(exc)
        typer.echo(f"error: {failure}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # a bug: say so, briefly, unless debugging
        _internal_error(exc)


def _internal_error(exc: BaseException) -> NoReturn:
    if _state["debug"]:
        traceback.print_exc()
    else:
        typer.echo(
            f"internal error: {type(exc).__name__}: {exc} "
            "(rerun with --debug for the traceback, and please report it)",
            err=True,
        )
    raise typer.Exit(1) from None


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
    _state["debug"] = debug or os.environ.get("FORECAST_DEBUG", "") not in ("", "0")


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="The YAML config file.")],
    runs_dir: RunsDirOpt = Path("runs"),
    set_: SetOpt = None,
    seed: SeedOpt = None,
    quiet: QuietOpt = False,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the newest interrupted run of this config."),
    ] = False,
) -> None:
    """Train a model, evaluate it against baselines on the test split, save a run.

    Prints a metrics table and, as its last line, the run directory. Ctrl-C or SIGTERM keep
    the finished epochs (or the trained model) in a hidden partial run; --resume continues
    from there.

    Example: forecast train configs/univariate.yaml --set training.epochs=5
    """
    _setup_logging(quiet)
    from forecast import api

    result = _run(
        lambda: api.train(config, runs_dir, overrides=set_, seed=seed, quiet=quiet, resume=resume),
        left=NO_RUN_WRITTEN,
    )
    typer.echo(format_metrics(result.metrics, result.config.model.describe()))
    typer.echo(result.verdict)
    typer.echo(str(result.run_dir))


@app.command()
def backtest(
    configs: Annotated[
        list[Path],
        typer.Argument(
            help="The YAML config file; several run one after another in this process.",
            metavar="CONFIG",
        ),
    ],
    folds: Annotated[int, typer.Option("--folds", "-k", help="Number of forecast origins.")] = 3,
    step: Annotated[
        int | None,
        typer.Option("--step", help="Rows between fold origins; default: the horizon."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", help="Folds in this many processes at once (the cores shared out)."
        ),
    ] = 1,
    runs_dir: RunsDirOpt = Path("runs"),
    set_: SetOpt = None,
    seed: SeedOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Rolling-origin evaluation: refit on the rows up to each origin, forecast the horizon.

    Origins are `--step` rows apart (default: the horizon), the last fold ending at the
    last row. Prints a table per fold (with the dates it forecasts) and the mean; the last
    line is the path of backtest.json. Several configs (one per series, say) are all
    checked first, then backtested in turn in one process, which imports TensorFlow once
    and reuses models of the same shape; each gets its own run directory and its own
    block of output ending in its backtest.json path.

    Example: forecast backtest configs/univariate_multi_step.yaml --folds 3 --step 20
    """
    _setup_logging(quiet)
    from forecast import api

    def check(path: Path) -> Any:
        try:
            return api.check_backtest(path, folds, set_, seed, step, workers)
        except ForecastError as exc:  # which of several configs it is, if it does not say
            if len(configs) > 1 and str(path) not in str(exc):
                raise type(exc)(f"{path}: {exc}") from None
            raise

    plans = _run(lambda: [check(c) for c in configs], left=NO_RUN_WRITTEN)
    for number, (path, plan) in enumerate(zip(configs, plans, strict=True)):
        if len(configs) > 1:
            typer.echo(f"{chr(10) if number else ''}== {path} ==")
        done = "" if number == 0 else f" for {path}; the backtests before it are saved"
        result = _run(
            lambda plan=plan: api.run_backtest_plan(plan, runs_dir, quiet),
            left=NO_RUN_WRITTEN + done,
        )
        typer.echo(format_backtest(result.report))
        typer.echo(result.report["verdict"])
        typer.echo(str(result.path))


@app.command()
def tune(
    config: Annotated[Path, typer.Argument(help="The YAML config file.")],
    trials: Annotated[int, typer.Option("--trials", "-n", help="Settings to try.")] = 8,
    folds: Annotated[int, typer.Option("--folds", "-k", help="Backtest folds per trial.")] = 3,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write the best config (a new file)."),
    ] = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Search the residual base, window, layer width, learning rate, schedule and loss.

    Each trial is a rolling-origin backtest on the config's training part only (the test
    rows are never used); trial 1 is the config as given. Writes the best as a complete
    config (default: CONFIG's folder, NAME.tuned.yaml), every trial's score in its header;
    the last line printed is its path. Then: forecast train NAME.tuned.yaml

    Example: forecast tune configs/univariate_multi_step.yaml --trials 4 --folds 1
    """
    _setup_logging(quiet)
    from forecast import api

    result = _run(
        lambda: api.tune(config, trials, folds, output, overrides=set_, seed=seed, quiet=quiet),
        left="no config was written",
    )
    for number, trial in enumerate(result.trials, start=1):
        score = f"{trial.mase:.4g}" if trial.error is None else "skipped"
        mark = "*" if number - 1 == result.best else " "
        typer.echo(
            f"{mark} trial {number}: MASE {score}  {' '.join(trial.overrides) or 'as given'}"
        )
    best = result.trials[result.best]
    naive = "n/a" if best.seasonal_naive is None else f"{best.seasonal_naive:.4g}"
    typer.echo(
        f"best: trial {result.best + 1}, mean MASE {best.mase:.4g} over {folds} "
        f"fold{'s' if folds != 1 else ''} on the first {result.rows} rows "
        f"(seasonal naive {naive})"
    )
    typer.echo(str(result.path))


@app.command("runs")
def list_runs(runs_dir: RunsDirOpt = Path("runs")) -> None:
    """List finished training runs and backtests, oldest first, with their MASE.

    One row each: run (its folder), kind (train or backtest), finished (UTC), layout, model,
    mase and seasonal_naive_mase: a training run's on its test split, a backtest's the mean
    over its folds (its backtest.json has every fold). Interrupted runs (hidden .partial
    folders) are not listed; a folder holding part of a training run is named in a warning.

    Example: forecast runs --runs-dir runs
    """
    _setup_logging(False)
    from forecast import api

    frame = _run(lambda: api.list_runs(runs_dir))
    if frame.empty:
        typer.echo(f"no finished runs under {runs_dir}", err=True)
        return
    # one line per run, however wide, for grep and for eyes going down a column
    typer.echo(format_table(frame, line_width=None, float_format=lambda v: f"{v:.3g}"))


@app.command()
def predict(
    csv: Annotated[
        Path, typer.Option("--csv", help="CSV with recent history (same columns as training).")
    ],
    run: RunOpt = None,
    horizon: Annotated[
        int | None, typer.Option("--horizon", help="Steps ahead; default: the config's horizon.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Forecast CSV; default: RUN_DIR/forecast.csv."),
    ] = None,
    encoding: Annotated[
        str,
        typer.Option(
            "--encoding",
            help="Of the forecast CSV: auto = as the input CSV (GB18030 stays GB18030), or a "
            "codec, e.g. utf-8-sig for Excel.",
        ),
    ] = "auto",
    series_ids: Annotated[
        list[str] | None,
        typer.Option(
            "--id",
            help="Long tables (data.id_column): forecast this series only; repeat for more. "
            "Default: every series in the CSV.",
        ),
    ] = None,
    runs_dir: RunsDirOpt = Path("runs"),
) -> None:
    """Forecast the next steps after the last row of a CSV, in original units, with the
    run's prediction intervals (TARGET_lo_80, TARGET_hi_80, ... per level).

    Prints the forecast and, as its last line, the CSV it wrote. For a run on a long table
    (data.id_column), every series in the CSV is forecast, the id column first.

    Example: forecast predict --csv data/msft_daily.csv --horizon 10
    """
    _setup_logging(False)
    from forecast import api

    frame, path = _run(
        lambda: api.predict(run, csv, horizon, output, runs_dir, encoding, series_ids)
    )
    typer.echo(format_table(frame))
    typer.echo(str(path))


@app.command()
def plot(
    run: RunOpt = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Folder for the PNGs; default: the run directory."),
    ] = None,
    last: Annotated[
        int | None,
        typer.Option(
            "--last",
            help="Test plot: the last N test origins only (0: all); default: all up to 500, "
            "else the last 300 under an overview of the whole test split.",
        ),
    ] = None,
    runs_dir: RunsDirOpt = Path("runs"),
) -> None:
    """Draw test_forecast.png, loss.png and (after predict) forecast.png; print their paths.

    Example: forecast plot --run runs/univariate-20261122-185410 --output plots --last 100
    """
    _setup_logging(False)
    from forecast import api

    for path in _run(lambda: api.plot(run, output, runs_dir, last)):
        typer.echo(str(path))


@app.command()
def export(
    format_: Annotated[
        str, typer.Option("--format", help="saved_model, tflite or onnx (onnx needs tf2onnx).")
    ],
    run: RunOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            help="Artifact path; default: RUN_DIR/export/saved_model, model.tflite or model.onnx.",
        ),
    ] = None,
    runs_dir: RunsDirOpt = Path("runs"),
) -> None:
    """Export the run's model with its preprocessing inside (SavedModel, TFLite, ONNX).

    Raw recent values (batch, input_steps [+1 with differences], features) float32 in,
    forecasts in original units (batch, horizon, targets) out, endpoint `serve`. Prints the
    artifact's path.

    Example: forecast export --format tflite
    """
    _setup_logging(False)
    from forecast.workflows.export import export_run

    typer.echo(str(_run(lambda: export_run(run, format_, output, runs_dir))))


def _port_number(value: int) -> int:
    """--port in range, checked here rather than by Typer's min/max, whose help shows
    `[0<=x<=65535]`."""
    if not 0 <= value <= 65535:
        raise typer.BadParameter(f"must be 0 to 65535, got {value}")
    return value


@app.command()
def serve(
    run: RunOpt = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="TCP port, 0 to 65535.", callback=_port_number)
    ] = 8000,
    runs_dir: RunsDirOpt = Path("runs"),
) -> None:
    """Serve the run's forecasts over HTTP until Ctrl-C: /health, /info, /forecast.

    POST /forecast with JSON {"history": [{column: value, ...}, ...], "horizon": H} or a CSV
    body (Content-Type: text/csv, ?horizon=H) answers with the same numbers as `predict`;
    /info lists the columns to send. No OpenAPI schema (/openapi.json) or docs pages are
    served. A body not received in full within 30 s (FORECAST_SERVE_BODY_TIMEOUT=seconds)
    gets a 408, and one that does not finish its headers in that time is dropped; on Ctrl-C
    or SIGTERM running requests get 3 s, then a 503, whatever the clients do.

    Example: forecast serve --port 8000
    """
    _setup_logging(False)
    from forecast import api

    def serving() -> Any:  # FastAPI and uvicorn, imported here only: without them, one line
        from forecast.workflows import serve as serving

        return serving

    server = _run(serving)
    predictor = _run(lambda: api.Predictor(run, runs_dir))
    _run(lambda: predictor.forecaster)  # the model, loaded once, before the first request
    _run(lambda: server.serve(predictor, host, port), left="the server stopped")


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="The YAML config file.")],
    set_: SetOpt = None,
) -> None:
    """Check a config and its data without training: layout, shapes, splits, parameters.

    Example: forecast validate configs/multi_output.yaml --set window.input_steps=24
    """
    _setup_logging(False)
    from forecast import api

    info = _run(lambda: api.validate(config, set_))
    split = info["split"]
    shape = "x".join
    typer.echo(f"layout:          {info['layout']}")
    if "series" in info:
        from forecast.data.reading import some_ids

        left = info["skipped_series"]
        out = f" ({len(left)} too short, left out: {some_ids(left)})" if left else ""
        typer.echo(f"series:          {info['series']}{out}")
    typer.echo(
        f"rows:            {info['rows']} (train {split['train']}, validation "
        f"{split['validation']}, test {split['test']})"
    )
    typer.echo(
        f"train windows:   {shape(map(str, info['train_windows']))} (samples x steps x features)"
    )
    typer.echo(f"val windows:     {shape(map(str, info['val_windows']))}")
    typer.echo(f"test origins:    {shape(map(str, info['test_origins']))}")
    typer.echo(f"output:          {shape(map(str, info['output']))} (horizon x targets)")
    typer.echo(f"model:           {info['model']} ({info['parameters']:,} parameters)")
    typer.echo(f"season length:   {info['season_length']}")


@app.command()
def init(
    layout: Annotated[
        str,
        typer.Option(
            "--layout",
            help="univariate, multivariate, multi_output, univariate_multi_step, "
            "multivariate_multi_step or multi_output_multi_step; a --horizon over 1 makes "
            "it multi-step.",
        ),
    ] = "univariate",
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Fill columns, time and season from this CSV.")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="The column to forecast; default: chosen from the CSV (a closing price, or a "
            "column named like sales, value, demand or load, else the most variable one; "
            "never a 0/1 dummy or counter), and named on stderr.",
        ),
    ] = None,
    horizon: Annotated[
        int | None,
        typer.Option(
            "--horizon",
            help="Steps ahead; default: 1, and for a *_multi_step layout one season "
            "(2 to 12 steps).",
        ),
    ] = None,
    decimal: Annotated[
        str,
        typer.Option("--decimal", help="The CSV's decimal mark: . or , (written as data.decimal)."),
    ] = ".",
    encoding: Annotated[
        str,
        typer.Option(
            "--encoding",
            help="The CSV's encoding: auto (utf-8, utf-8 with BOM, gb18030) or a codec such as "
            "gbk or latin-1 (written as data.encoding).",
        ),
    ] = "auto",
) -> None:
    """Print a commented starter config (save it with `> my.yaml`); with --csv, the target
    chosen is named on stderr.

    Example: forecast init --csv data/airline_monthly.csv --target passengers --horizon 12
    """
    _setup_logging(False)
    from forecast.workflows.starter import starter_config

    text = _run(lambda: starter_config(layout, csv, target, horizon, decimal, encoding))
    typer.echo(text, nl=False)


@app.command()
def schema() -> None:
    """Print the config's JSON Schema (for editors).

    Example: forecast schema > forecast.schema.json
    """
    from forecast.config.schema import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


TABLE_WIDTH = 100  # a wider table wraps into blocks of columns, as pandas prints them


def format_table(frame: Any, **to_string: Any) -> str:
    """A DataFrame as printed text, without the index: a wide (CJK) character counts as the
    two columns a terminal gives it, so names like 收盘价 line up, and (unless `line_width`
    says otherwise) columns that do not fit in TABLE_WIDTH continue in a block below."""
    import pandas as pd

    with pd.option_context("display.unicode.east_asian_width", True):
        return frame.to_string(index=False, **{"line_width": TABLE_WIDTH, **to_string})


def format_metrics(metrics: dict[str, Any], model_label: str) -> str:
    """The model vs baselines table printed after training."""
    rows = [("model", metrics["model"])] + list(metrics["baselines"].items())
    head = f"{'':16}{'MAE':>12}{'RMSE':>12}{'MAPE%':>10}{'sMAPE%':>10}{'MASE':>8}"

    def cell(value: float | None, width: int, digits: int) -> str:
        return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.{digits}g}"

    lines = [
        f"test split: {metrics['test_rows']} rows, {metrics['test_origins']} forecast origins, "
        f"horizon {metrics['horizon']}, season length {metrics['season_length']}; "
        f"model {model_label}",
        head,
    ]
    for name, m in rows:
        lines.append(
            f"{name:16}{cell(m['mae'], 12, 5)}{cell(m['rmse'], 12, 5)}"
            f"{cell(m['mape'], 10, 4)}{cell(m['smape'], 10, 4)}{cell(m['mase'], 8, 3)}"
        )
    if metrics.get("mape_excluded_zero_actuals"):
        lines.append(
            f"MAPE leaves out {metrics['mape_excluded_zero_actuals']} forecast(s) whose actual is 0"
        )
    return "\n".join(lines)


def _mase_cell(block: dict[str, Any], name: str) -> str:
    """The MASE of the model or a baseline in a backtest block, 21 wide."""
    value = block["model"]["mase"] if name == "model" else block["baselines"][name]["mase"]
    return f"{'n/a':>21}" if value is None else f"{value:>21.3f}"


SERIES_LINES = 30  # a long table's backtest prints one line per series up to this many


def format_backtest(report: dict[str, Any]) -> str:
    """One line per fold and the mean: MAE and MASE of the model and each baseline. For a
    long table, one line per series (its mean over the folds; up to SERIES_LINES) and the
    mean over series."""
    names = ["model", "naive", "seasonal_naive", "mean"]
    if "per_series" in report:
        return _format_panel_backtest(report, names)

    def when(value: Any) -> str:
        return str(value)[:19].replace("T00:00:00", "")

    spans = [f"{when(f['test_start'])} .. {when(f['test_end'])}" for f in report["folds"]]
    width = max([len("forecasts"), *map(len, spans)])
    head = f"{'fold':>5} {'origin':>20}  {'forecasts':<{width}}" + "".join(
        f"{n + ' MASE':>21}" for n in names
    )

    lines = [head]
    for fold, span in zip(report["folds"], spans, strict=True):
        lines.append(
            f"{fold['fold']:>5} {when(fold['origin']):>20}  {span:<{width}}"
            + "".join(_mase_cell(fold, n) for n in names)
        )
    lines.append(
        f"{'mean':>5} {'':>20}  {'':<{width}}"
        + "".join(_mase_cell(report["mean"], n) for n in names)
    )
    return "\n".join(lines)


def _format_panel_backtest(report: dict[str, Any], names: list[str]) -> str:
    per_series = report["per_series"]
    width = max([len("series"), *(len(str(i)) for i in per_series)])
    head = f"{'series':<{width}}" + "".join(f"{n + ' MASE':>21}" for n in names)

    lines = [head]
    for sid, block in list(per_series.items())[:SERIES_LINES]:
        lines.append(f"{sid:<{width}}" + "".join(_mase_cell(block, n) for n in names))
    if len(per_series) > SERIES_LINES:
        lines.append(f"... {len(per_series) - SERIES_LINES} more series in backtest.json")
    folds = len({f["fold"] for f in report["folds"]})
    lines.append(
        f"{'mean':<{width}}"
        + "".join(_mase_cell(report["mean"], n) for n in names)
        + f"   ({len(per_series)} series x {folds} folds)"
    )
    return "\n".join(lines)


def _terminate(signum: int, frame: Any) -> None:
    request_stop(Terminated)


def _interrupt(signum: int, frame: Any) -> None:
    request_stop(KeyboardInterrupt)


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)  # clean up like Ctrl-C, exit 143
    # Ctrl-C (and SIGTERM) raised at once outside TensorFlow work; inside it only noted, and
    # raised after the batch or stage (forecast.interrupts), never within TensorFlow's code
    signal.signal(signal.SIGINT, _interrupt)
    app(prog_name="forecast")  # also under `python -m forecast`


if __name__ == "__main__":  # pragma: no cover
    main()
