"""The commands that use finished runs: runs, predict, plot, export, serve.

Each parses its options, makes one forecast.api call and prints. forecast.api (pandas, numpy)
is imported inside each command, so that --help answers at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forecast.cli.errors import call_api
from forecast.cli.options import RunOpt, RunsDirOpt, setup_logging
from forecast.cli.tables import format_table


def list_runs(runs_dir: RunsDirOpt = Path("runs")) -> None:
    """List finished training runs and backtests, oldest first, with their MASE.

    One row each: run (its folder), kind (train or backtest), finished (UTC), layout, model,
    mase and seasonal_naive_mase: a training run's on its test split, a backtest's the mean
    over its folds (its backtest.json has every fold). Interrupted runs (hidden .partial
    folders) are not listed; a folder holding part of a training run, or a file that cannot
    be read, is named in a warning.

    Example: forecast runs --runs-dir runs
    """
    setup_logging(False)
    from forecast import api

    frame = call_api(lambda: api.list_runs(runs_dir))
    if frame.empty:
        typer.echo(f"no finished runs under {runs_dir}", err=True)
        return
    # one line per run, however wide, for grep and for eyes going down a column
    typer.echo(format_table(frame, line_width=None, float_format=lambda v: f"{v:.3g}"))


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
    setup_logging(False)
    from forecast import api

    frame, path = call_api(
        lambda: api.predict(run, csv, horizon, output, runs_dir, encoding, series_ids)
    )
    typer.echo(format_table(frame))
    typer.echo(str(path))


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
    setup_logging(False)
    from forecast import api

    for path in call_api(lambda: api.plot(run, output, runs_dir, last)):
        typer.echo(str(path))


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
    setup_logging(False)
    from forecast import api

    typer.echo(str(call_api(lambda: api.export(run, format_, output, runs_dir))))


def _port_number(value: int) -> int:
    """--port in range, checked here rather than by Typer's min/max, whose help shows
    `[0<=x<=65535]`."""
    if not 0 <= value <= 65535:
        raise typer.BadParameter(f"must be 0 to 65535, got {value}")
    return value


def _serve_workers(value: str | int | None) -> int | None:
    """--workers N (1 or more) or auto (None: api.serve_workers)."""
    if value is None or value == "auto":
        return None
    try:
        count = int(value)
    except ValueError:
        raise typer.BadParameter(f"give a number of processes or auto, not {value!r}") from None
    if count < 1:
        raise typer.BadParameter(f"must be 1 or more, got {count}")
    return count


def serve(
    run: RunOpt = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="TCP port, 0 to 65535.", callback=_port_number)
    ] = 8000,
    runs_dir: RunsDirOpt = Path("runs"),
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            parser=_serve_workers,
            metavar="N|auto",
            show_default=False,
            help="Processes answering on the port, each loading the run itself. auto (the "
            "default): one per core, at most 4, when the model is served as ONNX (~0.16 GB "
            "each); one with TensorFlow (~0.9 GB each).",
        ),
    ] = None,
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
    setup_logging(False)
    from forecast import api

    call_api(api.check_serve_extra)  # without FastAPI and uvicorn: one line, before the run
    # ONNX where the onnx extra can convert and run it: requests skip TensorFlow
    predictor = call_api(lambda: api.Predictor(run, runs_dir, runtime="auto"))
    call_api(predictor.load_for_serving)  # the model, loaded once, before the first request
    call_api(lambda: api.serve(predictor, host, port, workers), left="the server stopped")
