"""The Python API that the CLI and notebook users call.

    from forecast import api
    result = api.train("configs/univariate.yaml", runs_dir="runs")
    print(result.verdict, result.run_dir)
    future, path = api.predict(result.run_dir, "data/msft_daily.csv", horizon=5)
    api.plot(result.run_dir)                     # PNG paths
    report = api.backtest("configs/univariate.yaml", folds=3)

Errors the user can fix raise `forecast.errors.ForecastError` subclasses.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast import __version__
from forecast.config import Config, config_to_yaml, load_config
from forecast.data import apply_transform, future_index, read_series, transform_lag
from forecast.errors import ConfigError, DataError
from forecast.evaluation import BASELINES, METRICS, evaluate, verdict
from forecast.models import cudnn_warnings
from forecast.pipeline import Prepared, fit, forecast_levels, forecast_prepared, prepare
from forecast.runs import (
    FORMAT_VERSION,
    discard,
    finish,
    finished_runs,
    open_run,
    resolve_run,
    resumable_partial,
    stamp,
    start_partial,
    write_json,
    write_text_atomic,
)
from forecast.scaling import Scaler
from forecast.tf_setup import import_tensorflow_quietly

log = logging.getLogger("forecast")


@dataclass
class TrainResult:
    run_dir: Path
    config: Config
    metrics: dict[str, Any]
    verdict: str
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class BacktestResult:
    run_dir: Path
    path: Path  # backtest.json
    report: dict[str, Any]


def _as_config(
    config: Config | str | Path, overrides: list[str] | None, seed: int | None
) -> Config:
    if isinstance(config, Config):
        if overrides:
            raise ConfigError("overrides apply to a config file; edit the Config object instead")
    else:
        config = load_config(config, overrides)
    return config if seed is None else config.model_copy(update={"seed": seed})


def model_label(config: Config) -> str:
    """'GRU' for the shorthand, else the stack, e.g. 'lstm(50)-dropout-lstm(50)'."""
    if config.model.architecture is not None:
        return config.model.architecture.upper()
    return config.model.describe()


def validate(config: Config | str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Check config and data without training: layout, shapes, split sizes, parameter count."""
    prepared = prepare(_as_config(config, overrides, None))
    cfg, split = prepared.config, prepared.split
    steps, feats, targs = cfg.window.input_steps, len(cfg.data.features), len(cfg.data.targets)
    return {
        "layout": cfg.layout,
        "rows": len(prepared.values),
        "split": {
            "train": split.fit_end + prepared.lag,
            "validation": split.train_end - split.fit_end,
            "test": split.rows - split.train_end,
        },
        "train_windows": [len(split.train_origins), steps, feats],
        "val_windows": [len(split.val_origins), steps, feats],
        "test_origins": [len(split.test_origins), steps, feats],
        "output": [cfg.window.horizon, targs],
        "model": cfg.model.describe(),
        "parameters": prepared.params,
        "season_length": prepared.season,
    }


def _log_layout(cfg: Config) -> None:
    for warning in cudnn_warnings(cfg.model):
        log.warning(warning)
    data, window = cfg.data, cfg.window
    log.info(
        "layout %s: %s -> %s, input_steps %d, horizon %d (%s)",
        cfg.layout,
        ", ".join(data.features),
        ", ".join(data.targets),
        window.input_steps,
        window.horizon,
        window.multi_step,
    )


def train(
    config: Config | str | Path,
    runs_dir: str | Path = "runs",
    overrides: list[str] | None = None,
    seed: int | None = None,
    quiet: bool = False,
    resume: bool = False,
) -> TrainResult:
    """Train, evaluate against baselines on the test split, and save a new run directory.

    While training, the run lives in a hidden `runs/.<name>-<stamp>.partial/` with a backup
    after every epoch. If training is interrupted (Ctrl-C, SIGTERM, a kill), that folder
    stays, and `resume=True` continues it from its last finished epoch.
    """
    start = time.perf_counter()
    cfg = _as_config(config, overrides, seed)
    prepared = prepare(cfg)
    timings = {"load": round(time.perf_counter() - start, 4)}
    if not quiet:
        _log_layout(cfg)
    runs_path = Path(runs_dir)
    name, config_text = cfg.name or "run", config_to_yaml(cfg)
    if resume:
        partial, when = resumable_partial(runs_path, name, config_text)
        log.info("resuming %s", partial)
    else:
        when = stamp()
        partial = start_partial(runs_path, name, when)
        (partial / "config.yaml").write_text(config_text, encoding="utf-8")
    try:
        import_tensorflow_quietly()
        run_dir, metrics, history = _train_in(partial, prepared, timings, quiet, when)
    except BaseException as exc:
        finished = (partial / "backup" / "training_metadata.json").is_file()
        if resume or finished:
            log.warning(
                "training %s; the finished epochs are kept in %s: continue with "
                "`forecast train CONFIG --resume`",
                "interrupted" if isinstance(exc, KeyboardInterrupt) else "stopped by an error",
                partial,
            )
        elif isinstance(exc, KeyboardInterrupt):
            log.warning("training interrupted before its first epoch finished; nothing kept")
            discard(partial)
        else:
            discard(partial)
        raise
    return TrainResult(run_dir, cfg, metrics, metrics["verdict"], history)


def _train_in(
    partial: Path, prepared: Prepared, timings: dict[str, Any], quiet: bool, when: str
) -> tuple[Path, dict[str, Any], list[dict[str, float]]]:

    cfg = prepared.config
    model, fitted, fit_info = fit(prepared, quiet, backup_dir=partial / "backup")
    timings |= fit_info["timings"]

    clock = time.perf_counter()
    data, split = cfg.data, prepared.split
    work_origins = split.test_origins
    predicted = forecast_prepared(prepared, model, work_origins, cfg.window.horizon)  # (N, H, K)
    timings["forecast"] = round(time.perf_counter() - clock, 4)

    clock = time.perf_counter()
    origins = work_origins + prepared.lag  # original rows
    train_end = split.train_end + prepared.lag
    report = evaluate(
        prepared.target_values, origins, predicted, data.targets, prepared.season, train_end
    )
    metrics = {
        "layout": cfg.layout,
        "horizon": cfg.window.horizon,
        "test_rows": len(prepared.values) - train_end,
        "test_origins": len(origins),
        **report,
    }
    metrics["verdict"] = verdict(metrics, model_label(cfg))
    timings["evaluate"] = round(time.perf_counter() - clock, 4)

    clock = time.perf_counter()
    model.save(partial / "model.keras")
    prepared.scaler.save(partial / "scaler.json")
    pd.DataFrame(
        fitted.history, columns=["epoch", "loss", "val_loss", "learning_rate", "seconds"]
    ).to_csv(partial / "history.csv", index=False)
    write_json(partial / "metrics.json", metrics)
    prediction_table(
        prepared.series.index, origins, prepared.target_values, predicted, data.targets
    ).to_csv(partial / "test_predictions.csv", index=False)
    timings["save"] = round(time.perf_counter() - clock, 4)
    info = _run_info(cfg, prepared, timings)
    info |= {
        "strategy": fit_info["strategy"],
        "unroll": fit_info["unroll"],
        "epochs_run": len(fitted.history),
        "best_epoch": fitted.best_epoch,
    }
    write_json(partial / "run.json", info)
    shutil.rmtree(partial / "backup", ignore_errors=True)
    run_dir = finish(partial, partial.parent, cfg.name or "run", when)
    return run_dir, metrics, fitted.history


def prediction_table(
    index: pd.Index,
    origins: np.ndarray,  # (N,) original rows
    actual_values: np.ndarray,  # (rows, K)
    predicted: np.ndarray,  # (N, H, K)
    targets: list[str],
) -> pd.DataFrame:
    """One row per origin, target and step: time, target, step, actual, predicted."""
    n, horizon, k = predicted.shape
    steps = np.arange(1, horizon + 1)
    rows = np.broadcast_to(origins[:, None, None] + steps[None, None, :], (n, k, horizon))
    target_idx = np.broadcast_to(np.arange(k)[None, :, None], (n, k, horizon))
    return pd.DataFrame(
        {
            "time": time_strings(index[rows.ravel()]),
            "target": np.asarray(targets, dtype=object)[target_idx.ravel()],
            "step": np.broadcast_to(steps, (n, k, horizon)).ravel(),
            "actual": actual_values[rows.ravel(), target_idx.ravel()],
            "predicted": predicted.transpose(0, 2, 1).ravel(),  # (N, K, H) order
        }
    )


def time_strings(times: pd.Index) -> Any:
    """Dates as ISO strings (date only when there is no time of day), steps as integers."""
    if isinstance(times, pd.DatetimeIndex):
        dates_only = (times.normalize() == times).all()
        return times.strftime("%Y-%m-%d" if dates_only else "%Y-%m-%dT%H:%M:%S")
    return np.asarray(times)


def _run_info(cfg: Config, prepared: Prepared, timings: dict) -> dict:
    import keras
    import tensorflow as tf

    split = prepared.split
    return {
        "format_version": FORMAT_VERSION,
        "name": cfg.name,
        "finished": datetime.now(timezone.utc).isoformat(),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "forecast": __version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "data": {
            "path": str(prepared.series.path),
            "sha256": prepared.series.sha256,
            "rows": len(prepared.values),
            "first": str(prepared.series.index[0]),
            "last": str(prepared.series.index[len(prepared.values) - 1]),
        },
        "seed": cfg.seed,
        "layout": cfg.layout,
        "model": cfg.model.describe(),
        "parameters": prepared.params,
        "rows": {
            "train_windows": len(split.train_origins),
            "val_windows": len(split.val_origins),
            "test_origins": len(split.test_origins),
        },
        "split": {
            "transform_lag": prepared.lag,
            "fit_end": split.fit_end + prepared.lag,
            "train_end": split.train_end + prepared.lag,
            "rows": len(prepared.values),
        },
        "timings": timings,
    }


# --------------------------------------------------------------------------- backtest


def backtest_origins(rows: int, folds: int, horizon: int) -> np.ndarray:
    """K origins `horizon` rows apart; the last fold's forecast ends at the last row."""
    last = rows - 1 - horizon
    return last - horizon * np.arange(folds - 1, -1, -1)


def backtest(
    config: Config | str | Path,
    folds: int = 3,
    runs_dir: str | Path = "runs",
    overrides: list[str] | None = None,
    seed: int | None = None,
    quiet: bool = False,
) -> BacktestResult:
    """Rolling-origin evaluation: for each of `folds` origins, refit the scaler, transforms
    and model on the rows up to and including the origin and forecast the next horizon."""
    if folds < 1:
        raise ConfigError(f"--folds must be >= 1, got {folds}")
    cfg = _as_config(config, overrides, seed)
    series = read_series(cfg.data)
    horizon = cfg.window.horizon
    origins = backtest_origins(len(series.frame), folds, horizon)
    if origins[0] < 0:
        raise DataError(
            f"{series.path}: {len(series.frame)} rows cannot hold {folds} folds of horizon "
            f"{horizon}; use fewer --folds"
        )
    first = prepare(cfg, series, rows=int(origins[0]) + 1)  # fails early if too few rows
    if not quiet:
        _log_layout(cfg)
    import_tensorflow_quietly()

    data = cfg.data
    index = series.index
    all_targets = series.values[:, [data.columns.index(t) for t in data.targets]]  # (rows, K)
    fold_reports, forecasts = [], []
    for k, origin in enumerate(origins, start=1):
        started = time.perf_counter()
        prepared = first if k == 1 else prepare(cfg, series, rows=int(origin) + 1)
        if not quiet:
            log.info(
                "fold %d/%d: origin %s, fitting on %d rows, forecasting %s .. %s",
                k,
                folds,
                _time_value(index[origin]),
                origin + 1,
                _time_value(index[origin + 1]),
                _time_value(index[origin + horizon]),
            )
        model, _, _ = fit(prepared, quiet=True)
        work_origin = np.array([len(prepared.scaled) - 1])  # the fold's last row
        predicted = forecast_prepared(prepared, model, work_origin, horizon)  # (1, H, K)
        report = evaluate(
            all_targets, np.array([origin]), predicted, data.targets, prepared.season, origin + 1
        )
        fold_reports.append(
            {
                "fold": k,
                "origin": _time_value(index[origin]),
                "test_start": _time_value(index[origin + 1]),
                "test_end": _time_value(index[origin + horizon]),
                "model": report["model"],
                "baselines": report["baselines"],
                "per_target": report["per_target"],
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
        forecasts.append(predicted[0])
        if not quiet:
            mase = report["model"]["mase"]
            log.info(
                "fold %d/%d: model MASE %s", k, folds, "n/a" if mase is None else f"{mase:.3g}"
            )
    result = {
        "layout": cfg.layout,
        "horizon": horizon,
        "folds": fold_reports,
        "mean": _mean_of_folds(fold_reports),
        "season_length": first.season,
    }
    result["verdict"] = verdict(
        result["mean"], model_label(cfg), where=f"averaged over {folds} backtest folds"
    )
    run_dir = _save_backtest(cfg, series, origins, forecasts, result, Path(runs_dir))
    return BacktestResult(run_dir, run_dir / "backtest.json", result)


def _time_value(value: Any) -> Any:
    """ISO date (or date and time) for timestamps, an integer for steps."""
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    return int(value)


def _mean_of_folds(folds: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(key: str, name: str | None, metric: str) -> float | None:
        values = [(f[key] if name is None else f[key][name])[metric] for f in folds]
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    return {
        "model": {m: mean("model", None, m) for m in METRICS},
        "baselines": {b: {m: mean("baselines", b, m) for m in METRICS} for b in BASELINES},
    }


def _save_backtest(
    cfg: Config,
    series: Any,
    origins: np.ndarray,
    forecasts: list[np.ndarray],
    result: dict[str, Any],
    runs_path: Path,
) -> Path:
    from forecast import plotting

    name = f"{cfg.name or 'run'}-backtest"
    when = stamp()
    partial = start_partial(runs_path, name, when)
    try:
        (partial / "config.yaml").write_text(config_to_yaml(cfg), encoding="utf-8")
        write_json(partial / "backtest.json", result)
        plotting.backtest_figure(
            series.frame, cfg, origins, np.stack(forecasts), partial / "backtest.png"
        )
        return finish(partial, runs_path, name, when)
    except BaseException:
        discard(partial)
        raise


# --------------------------------------------------------------------------- predict


def predict(
    run: str | Path | None,
    csv_path: str | Path,
    horizon: int | None = None,
    output: str | Path | None = None,
    runs_dir: str | Path = "runs",
) -> tuple[pd.DataFrame, Path]:
    """Forecast the next `horizon` steps after the last row of `csv_path`.

    Returns the forecast (time column, then one column per target, original units) and the
    CSV path it was written to (default: RUN_DIR/forecast.csv).
    """
    run_dir = resolve_run(run, runs_dir)
    opened = open_run(run_dir)
    cfg = opened.config
    data = cfg.data
    steps = cfg.window.horizon if horizon is None else horizon
    if steps < 1:
        raise ConfigError(f"--horizon must be >= 1, got {steps}")
    scaler = Scaler.load(run_dir / "scaler.json")
    if scaler.columns != data.columns:
        raise DataError(f"{run_dir}: scaler.json columns do not match config.yaml; train again")
    lag = transform_lag(data.transform)
    # differences are summed onto the targets' last values, so they must be in the CSV too
    series = read_series(data, path=csv_path, require_targets=lag > 0)
    needed = cfg.window.input_steps + lag
    if len(series.frame) < needed:
        raise DataError(
            f"{series.path}: has {len(series.frame)} usable row(s); the model needs the last "
            f"{needed} (window.input_steps{' + 1 for the differences' if lag else ''})"
        )
    values = series.values[-needed:]  # (L + lag, columns read)
    columns = list(series.frame.columns)
    work = apply_transform(
        values, data.transform, columns, series.index[-needed:], str(series.path)
    )
    features = scaler.subset(data.features).transform(work[:, : len(data.features)])  # (L, F)
    target_levels = values[:, [columns.index(t) for t in data.targets]] if lag else None

    import_tensorflow_quietly()
    from forecast.forecasting import Forecaster
    from forecast.runs import load_model

    model = load_model(opened.model_path)
    forecaster = Forecaster(model, data.features, data.targets)
    future = forecast_levels(
        forecaster, scaler, cfg, features, target_levels, np.array([len(features) - 1]), steps
    )[0]  # (H, K)
    time_name = data.time_column or "step"
    result = pd.DataFrame({time_name: time_strings(future_index(series.index, steps))})
    for k, target in enumerate(data.targets):
        result[target] = future[:, k]
    out_path = Path(output) if output is not None else run_dir / "forecast.csv"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_path, result.to_csv(index=False))
    if output is None:
        # the history tail that forecast.png draws before the forecast
        tail = series.frame.iloc[-max(4 * steps, 3 * cfg.window.input_steps, 50) :]
        history = pd.DataFrame({time_name: time_strings(tail.index)})
        for target in data.targets:
            if target in tail.columns:
                history[target] = tail[target].to_numpy()
        write_text_atomic(run_dir / "forecast_history.csv", history.to_csv(index=False))
    return result, out_path


# --------------------------------------------------------------------------- plot, runs


def plot(
    run: str | Path | None = None, output: str | Path | None = None, runs_dir: str | Path = "runs"
) -> list[Path]:
    """Draw the run's figures as PNG files; returns their paths."""
    from forecast import plotting

    run_dir = resolve_run(run, runs_dir)
    opened = open_run(run_dir)
    out_dir = Path(output) if output is not None else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    return plotting.draw_run(run_dir, opened.config, out_dir)


def list_runs(runs_dir: str | Path = "runs") -> pd.DataFrame:
    """Finished runs, oldest first: name, finished, layout, model, MASE, seasonal naive MASE."""
    rows = []
    for path in finished_runs(Path(runs_dir)):
        try:
            info = json.loads((path / "run.json").read_text(encoding="utf-8"))
            metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        rows.append(
            {
                "run": path.name,
                "finished": str(info.get("finished", ""))[:19].replace("T", " "),
                "layout": metrics.get("layout"),
                "model": info.get("model"),
                "mase": metrics.get("model", {}).get("mase"),
                "seasonal_naive_mase": metrics.get("baselines", {})
                .get("seasonal_naive", {})
                .get("mase"),
            }
        )
    columns = ["run", "finished", "layout", "model", "mase", "seasonal_naive_mase"]
    return pd.DataFrame(rows, columns=columns)
