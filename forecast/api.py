"""The Python API that the CLI and notebook users call.

    from forecast import api
    result = api.train("configs/univariate.yaml", runs_dir="runs")
    print(result.verdict, result.run_dir)
    future = api.predict(result.run_dir, "data/msft_daily.csv", horizon=5)   # a DataFrame
    api.plot(result.run_dir)                                                  # PNG paths

Errors the user can fix raise `forecast.errors.ForecastError` subclasses.
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast import __version__
from forecast.config import Config, config_to_yaml, load_config
from forecast.data import Series, future_index, read_series, season_length
from forecast.errors import ConfigError, DataError
from forecast.evaluation import evaluate, verdict
from forecast.models import check_stack
from forecast.runs import (
    FORMAT_VERSION,
    discard,
    finish,
    open_run,
    resolve_run,
    stamp,
    start_partial,
    write_json,
    write_text_atomic,
)
from forecast.scaling import Scaler
from forecast.tf_setup import import_tensorflow_quietly
from forecast.windows import Split, input_windows, plan_split

log = logging.getLogger("forecast")


@dataclass
class TrainResult:
    run_dir: Path
    config: Config
    metrics: dict[str, Any]
    verdict: str
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Prepared:
    """A config with its data read, split and scaled: everything before TensorFlow."""

    config: Config
    series: Series
    split: Split
    scaler: Scaler
    scaled: np.ndarray  # (rows, columns) in config.data.columns order
    season: int
    params: int

    @property
    def features(self) -> np.ndarray:  # (rows, F)
        return self.scaled[:, : len(self.config.data.features)]

    @property
    def targets(self) -> np.ndarray:  # (rows, K)
        columns = self.config.data.columns
        return self.scaled[:, [columns.index(t) for t in self.config.data.targets]]

    @property
    def model_horizon(self) -> int:
        """Steps one model call emits: 1 for recursive multi-step, else the horizon."""
        window = self.config.window
        return 1 if window.multi_step == "recursive" else window.horizon


def _as_config(config: Config | str | Path, overrides: list[str] | None) -> Config:
    if isinstance(config, Config):
        if overrides:
            raise ConfigError("overrides apply to a config file; edit the Config object instead")
        return config
    return load_config(config, overrides)


def prepare(config: Config) -> Prepared:
    """Read, split and scale the data; check the model stack. No TensorFlow here."""
    series = read_series(config.data)
    window = config.window
    data = config.data
    model_horizon = 1 if window.multi_step == "recursive" else window.horizon
    split = plan_split(
        len(series.frame),
        config.split,
        window.input_steps,
        window.horizon,
        str(series.path),
        fit_horizon=model_horizon,
    )
    shape = check_stack(
        config.model, window.input_steps, len(data.features), model_horizon, len(data.targets)
    )
    values = series.values  # (rows, columns)
    scaler = Scaler.fit(
        values[: split.fit_end], data.columns, config.scaling.method, config.scaling.feature_range
    )
    season = config.evaluation.season_length
    if season == "auto":
        season = season_length(series.index)
    return Prepared(
        config, series, split, scaler, scaler.transform(values), int(season), shape.params
    )


def validate(config: Config | str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Check config and data without training: layout, shapes, split sizes, parameter count."""
    prepared = prepare(_as_config(config, overrides))
    cfg, split = prepared.config, prepared.split
    steps, feats, targs = cfg.window.input_steps, len(cfg.data.features), len(cfg.data.targets)
    return {
        "layout": cfg.layout,
        "rows": split.rows,
        "split": {
            "train": split.fit_end,
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


def train(
    config: Config | str | Path,
    runs_dir: str | Path = "runs",
    overrides: list[str] | None = None,
    seed: int | None = None,
    quiet: bool = False,
) -> TrainResult:
    """Train, evaluate against baselines on the test split, and save a new run directory."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(now - clock, 4)
        clock = now

    cfg = _as_config(config, overrides)
    if seed is not None:
        cfg = cfg.model_copy(update={"seed": seed})
    prepared = prepare(cfg)
    data, window, split = cfg.data, cfg.window, prepared.split
    if not quiet:
        log.info(
            "layout %s: %s -> %s, input_steps %d, horizon %d (%s)",
            cfg.layout,
            ", ".join(data.features),
            ", ".join(data.targets),
            window.input_steps,
            window.horizon,
            window.multi_step,
        )
    lap("load")

    import_tensorflow_quietly()
    from forecast.forecasting import Forecaster
    from forecast.models import build_model
    from forecast.training import fit, seed_everything, window_dataset

    seed_everything(cfg.seed)

    def dataset(origins: np.ndarray, shuffle: bool) -> Any:
        return window_dataset(
            prepared.features,
            prepared.targets,
            origins,
            window.input_steps,
            prepared.model_horizon,
            cfg.training.batch_size,
            shuffle=shuffle,
            seed=cfg.seed,
        )

    train_ds = dataset(split.train_origins, shuffle=True)
    val_ds = dataset(split.val_origins, shuffle=False) if len(split.val_origins) else None
    lap("window")

    model = build_model(
        cfg.model, window.input_steps, len(data.features), prepared.model_horizon, len(data.targets)
    )
    lap("build")
    fitted = fit(model, cfg.training, train_ds, val_ds, quiet=quiet)
    timings["fit"] = round(fitted.seconds, 4)
    clock = time.perf_counter()

    origins = split.test_origins
    forecaster = Forecaster(model, data.features, data.targets)
    scaled_pred = forecaster(
        input_windows(prepared.features, origins, window.input_steps), window.horizon
    )
    predicted = prepared.scaler.subset(data.targets).inverse_transform(scaled_pred)  # (N, H, K)
    lap("forecast")

    values = prepared.series.values
    target_values = values[:, [data.columns.index(t) for t in data.targets]]  # (rows, K)
    report = evaluate(
        target_values, origins, predicted, data.targets, prepared.season, split.train_end
    )
    metrics = {
        "layout": cfg.layout,
        "horizon": window.horizon,
        "test_rows": split.rows - split.train_end,
        "test_origins": len(origins),
        **report,
    }
    model_name = cfg.model.architecture or cfg.model.describe()
    line = verdict(metrics, model_name.upper() if cfg.model.architecture else model_name)
    metrics["verdict"] = line
    lap("evaluate")

    runs_path = Path(runs_dir)
    when = stamp()
    partial = start_partial(runs_path, cfg.name or "run", when)
    try:
        (partial / "config.yaml").write_text(config_to_yaml(cfg), encoding="utf-8")
        model.save(partial / "model.keras")
        prepared.scaler.save(partial / "scaler.json")
        pd.DataFrame(
            fitted.history, columns=["epoch", "loss", "val_loss", "learning_rate", "seconds"]
        ).to_csv(partial / "history.csv", index=False)
        write_json(partial / "metrics.json", metrics)
        _test_predictions(
            prepared.series.index, origins, target_values, predicted, data.targets
        ).to_csv(partial / "test_predictions.csv", index=False)
        timings["save"] = round(time.perf_counter() - clock, 4)
        write_json(partial / "run.json", _run_info(cfg, prepared, fitted, timings, len(origins)))
        run_dir = finish(partial, runs_path, cfg.name or "run", when)
    except BaseException:
        discard(partial)
        raise
    return TrainResult(run_dir, cfg, metrics, line, fitted.history)


def _test_predictions(
    index: pd.Index,
    origins: np.ndarray,
    actual_values: np.ndarray,
    predicted: np.ndarray,
    targets: list[str],
) -> pd.DataFrame:
    """One row per origin, target and step: time, target, step, actual, predicted."""
    n, horizon, k = predicted.shape
    steps = np.arange(1, horizon + 1)
    rows = origins[:, None, None] + steps[None, None, :]  # (N, 1, H)
    rows = np.broadcast_to(rows, (n, k, horizon))  # (N, K, H)
    target_idx = np.broadcast_to(np.arange(k)[None, :, None], (n, k, horizon))
    times = index[rows.ravel()]
    return pd.DataFrame(
        {
            "time": _time_strings(times),
            "target": np.asarray(targets, dtype=object)[target_idx.ravel()],
            "step": np.broadcast_to(steps, (n, k, horizon)).ravel(),
            "actual": actual_values[rows.ravel(), target_idx.ravel()],
            "predicted": predicted.transpose(0, 2, 1).ravel(),
        }
    )


def _time_strings(times: pd.Index) -> Any:
    if isinstance(times, pd.DatetimeIndex):
        dates_only = (times.normalize() == times).all()
        return times.strftime("%Y-%m-%d" if dates_only else "%Y-%m-%dT%H:%M:%S")
    return np.asarray(times)


def _run_info(
    cfg: Config, prepared: Prepared, fitted: Any, timings: dict, test_origins: int
) -> dict:
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
            "rows": split.rows,
            "first": str(prepared.series.index[0]),
            "last": str(prepared.series.index[-1]),
        },
        "seed": cfg.seed,
        "layout": cfg.layout,
        "model": cfg.model.describe(),
        "parameters": prepared.params,
        "rows": {
            "train_windows": len(split.train_origins),
            "val_windows": len(split.val_origins),
            "test_origins": test_origins,
        },
        "split": {"fit_end": split.fit_end, "train_end": split.train_end, "rows": split.rows},
        "epochs_run": len(fitted.history),
        "best_epoch": fitted.best_epoch,
        "timings": timings,
        "strategy": {"name": "default", "replicas": 1},
    }


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
    steps = cfg.window.horizon if horizon is None else horizon
    if steps < 1:
        raise ConfigError(f"--horizon must be >= 1, got {steps}")
    scaler = Scaler.load(run_dir / "scaler.json")
    if scaler.columns != cfg.data.columns:
        raise DataError(f"{run_dir}: scaler.json columns do not match config.yaml; train again")
    series = read_series(cfg.data, path=csv_path, require_targets=False)
    input_steps = cfg.window.input_steps
    if len(series.frame) < input_steps:
        raise DataError(
            f"{series.path}: has {len(series.frame)} usable row(s); the model needs the last "
            f"{input_steps} (window.input_steps)"
        )
    window = scaler.subset(cfg.data.features).transform(series.values[-input_steps:])  # (L, F)

    import_tensorflow_quietly()
    from forecast.forecasting import Forecaster
    from forecast.runs import load_model

    model = load_model(opened.model_path)
    forecaster = Forecaster(model, cfg.data.features, cfg.data.targets)
    scaled = forecaster(window[None, :, :], steps)[0]  # (H, K)
    values = scaler.subset(cfg.data.targets).inverse_transform(scaled)  # (H, K)
    time_name = cfg.data.time_column or "step"
    times = future_index(series.index, steps)
    result = pd.DataFrame({time_name: _time_strings(times)})
    for k, target in enumerate(cfg.data.targets):
        result[target] = values[:, k]
    out_path = Path(output) if output is not None else run_dir / "forecast.csv"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_path, result.to_csv(index=False))
    if output is None:
        # the history tail that forecast.png draws before the forecast
        tail = series.frame.iloc[-max(4 * steps, 3 * input_steps, 50) :]
        history = pd.DataFrame({time_name: _time_strings(tail.index)})
        for target in cfg.data.targets:
            if target in tail.columns:
                history[target] = tail[target].to_numpy()
        write_text_atomic(run_dir / "forecast_history.csv", history.to_csv(index=False))
    return result, out_path


# --------------------------------------------------------------------------- plot


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
