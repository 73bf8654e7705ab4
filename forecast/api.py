"""The Python API that the CLI and notebook users call.

    from forecast import api
    result = api.train("configs/univariate.yaml", runs_dir="runs")
    print(result.verdict, result.run_dir)
    future, path = api.predict(result.run_dir, "data/msft_daily.csv", horizon=5)
    api.plot(result.run_dir)                     # PNG paths
    report = api.backtest("configs/univariate.yaml", folds=3)

Each entry point is one call into the workflow that does the work (forecast/workflows/),
named here so that users and the CLI need this module only. Errors the user can fix raise
`forecast.errors.ForecastError` subclasses.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from forecast.config.file import json_schema
from forecast.config.schema import Config
from forecast.data.reading import some_ids
from forecast.errors import ConfigError
from forecast.fitting.executor import Fanout
from forecast.runs import atomic, layout, read
from forecast.workflows import predict as predicting
from forecast.workflows import trainrun
from forecast.workflows.backtest import (
    BacktestResult,
    check_backtest,
    run_backtest_plan,
    run_backtest_plans,
)
from forecast.workflows.export import export_run as export
from forecast.workflows.loading import resolve_config as load
from forecast.workflows.predictor import Predictor
from forecast.workflows.starter import starter_config
from forecast.workflows.trainrun import TrainResult, resume_command
from forecast.workflows.tune import TuneResult, tune
from forecast.workflows.validate import validate

__all__ = [
    "BacktestResult",
    "Fanout",
    "Predictor",
    "TrainResult",
    "TuneResult",
    "backtest",
    "check_backtest",
    "check_serve_extra",
    "export",
    "json_schema",
    "list_runs",
    "load",
    "plot",
    "predict",
    "resume_command",
    "run_backtest_plan",
    "run_backtest_plans",
    "serve",
    "short_id_list",
    "starter_config",
    "train",
    "tune",
    "validate",
    "write_failure",
]

log = logging.getLogger("forecast")
write_failure = atomic.write_failure  # a failed write as the one-line error the CLI shows


def train(
    config: Config | str | Path,
    runs_dir: str | Path = "runs",
    overrides: list[str] | None = None,
    seed: int | None = None,
    quiet: bool = False,
    resume: bool = False,
    workers: int | None = 1,
    ray: str | None = None,
) -> TrainResult:
    """Train, evaluate against baselines on the test split, and save a new run directory.

    While training, the run lives in a hidden `runs/.<name>-<stamp>.partial/` with a
    checkpoint after every epoch, and the trained model as soon as fitting ends. If the run
    is interrupted (Ctrl-C, SIGTERM, a kill, an error), that folder stays, and `resume=True`
    continues it: from the last finished epoch, or after training if that had ended.

    An ensemble fitted member by member (`model.ensemble_fit: independent`) fits its
    members in turn here, in `workers` local processes (None: auto, from the cores and
    the work), or as Ray tasks (`ray`: a cluster's address, or "auto" for a local Ray); the
    results are the same.
    """
    fanout = Fanout(workers, ray)
    return trainrun.train(config, runs_dir, overrides, seed, quiet, resume, fanout)


def predict(
    run: str | Path | None,
    csv_path: str | Path,
    horizon: int | None = None,
    output: str | Path | None = None,
    runs_dir: str | Path = "runs",
    encoding: str = "auto",
    ids: list[str] | None = None,
) -> tuple[pd.DataFrame, Path]:
    """Forecast the next `horizon` steps after the last row of `csv_path`.

    Returns the forecast (time column, then per target its column and, for each interval
    level L, `<target>_lo_L` and `<target>_hi_L`; original units) and the CSV path it was
    written to (default: RUN_DIR/forecast.csv), in `encoding`: auto writes it the way the
    input CSV came (GB18030 stays GB18030, a UTF-8 BOM stays), or a codec such as utf-8-sig
    (what Excel on Windows reads as UTF-8).

    With `data.id_column` (a long table), every series in the CSV is forecast, or only
    those in `ids`; the id column comes first.
    """
    return predicting.predict(run, csv_path, horizon, output, runs_dir, encoding, ids)


def backtest(
    config: Config | str | Path,
    folds: int = 3,
    runs_dir: str | Path = "runs",
    overrides: list[str] | None = None,
    seed: int | None = None,
    quiet: bool = False,
    step: int | None = None,
    workers: int | None = 1,
    ray: str | None = None,
) -> BacktestResult:
    """Rolling-origin evaluation: for each of `folds` origins, `step` rows apart (default:
    the horizon), refit the scaler, transforms and model on the rows up to and including
    the origin and forecast the next horizon. The folds run in turn here, in `workers`
    local processes (None: auto, from the cores and the work), or as Ray tasks (`ray`: a
    cluster's address, or "auto" for a local Ray); the results are the same."""
    plan = check_backtest(config, folds, overrides, seed, step, Fanout(workers, ray))
    return run_backtest_plan(plan, runs_dir, quiet)


def plot(
    run: str | Path | None = None,
    output: str | Path | None = None,
    runs_dir: str | Path = "runs",
    last: int | None = None,
) -> list[Path]:
    """Draw the run's figures as PNG files; returns their paths. `last`: the test plot shows
    the last N test origins only (0: all; default: all up to 500, else the last 300 under
    an overview of the whole test split)."""
    if last is not None and last < 0:
        raise ConfigError(f"--last must be >= 0 (0: every test origin), got {last}")
    opened = read.open_run(layout.resolve_run(run, runs_dir))
    out_dir = Path(output) if output is not None else opened.path
    for path in (out_dir, *(out_dir / name for name in layout.FIGURES)):
        layout.refuse_overwrite(path, "--output", opened.path, layout.FIGURES)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--output {out_dir}: is a file; give a folder for the PNGs")
    out_dir.mkdir(parents=True, exist_ok=True)
    from forecast.plots import run as run_figures  # matplotlib: imported only to draw

    return run_figures.draw_run(
        opened.path, opened.config, out_dir, last, write=atomic.write_atomic
    )


def list_runs(runs_dir: str | Path = "runs") -> pd.DataFrame:
    """Finished training runs and backtests, oldest first: name, kind (train or backtest),
    finished, layout, model, MASE, seasonal naive MASE (a backtest's: the mean over its
    folds). Folders holding part of a training run only are left out, each with a warning."""
    layout.check_runs_dir(Path(runs_dir))
    for path, missing in layout.incomplete_runs(Path(runs_dir)):
        log.warning(
            "%s: incomplete run (no %s), not listed; train it again or delete it", path, missing
        )
    return read.run_summaries(Path(runs_dir))


# What the CLI needs besides, so that it imports only this module.


def check_serve_extra() -> None:
    """A ConfigError saying how to install the serve extra when FastAPI or uvicorn is missing."""
    import forecast.workflows.serve  # noqa: F401  (fastapi: imported only to serve)


def serve(
    predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, workers: int | None = 1
) -> None:
    """Serve the forecasts of `predictor` over HTTP (/health, /info, /forecast) until Ctrl-C
    or SIGTERM, in `workers` processes (each loads the run's model; None: auto, see
    serve_workers). A Predictor of runtime "auto" serves ONNX on onnxruntime (the run's
    model.onnx, or the network converted in memory), as `forecast serve` does;
    "tensorflow" Keras."""
    from forecast.fitting.placement import usable_cores

    check_serve_extra()  # one line naming the extra when FastAPI or uvicorn is missing
    predictor.load_for_serving()
    from forecast.workflows.server import serve as run_server
    from forecast.workflows.server import serve_workers

    cores = usable_cores()
    if workers is not None and workers < 1:
        raise ConfigError(f"workers {workers}: must be 1 or more (or None: auto)")
    if workers is not None and workers > cores:
        log.warning(
            "--workers %d: more processes than the %d core(s) here; they slow each other "
            "down, and each holds the model (~0.16 GB as ONNX, ~0.9 GB with TensorFlow)",
            workers,
            cores,
        )
    run_server(predictor, host, port, workers or serve_workers(predictor.portable, cores))


def short_id_list(ids: list[str]) -> str:
    """'A, B, C, D, E and 7 more': the first few of a list of series ids, as messages name
    them."""
    return some_ids(ids)
