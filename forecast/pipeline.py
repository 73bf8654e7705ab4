"""The steps `train`, `backtest` and `predict` share: prepare (no TensorFlow), fit, forecast.

Row bookkeeping with transforms: a transform may consume rows at the start (`lag` = 1 for
diff and log_diff). The model works on the transformed rows ("work rows"); work row i belongs
to original row i + lag. Splits, windows and the scaler live on work rows; forecasts are
turned back into original units before anything is scored or saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forecast.config import Config
from forecast.data import (
    Series,
    apply_transform,
    invert_transform,
    read_series,
    season_length,
    transform_lag,
)
from forecast.errors import DataError
from forecast.models import check_stack
from forecast.scaling import Scaler
from forecast.windows import Split, plan_split, row_count


@dataclass
class Prepared:
    """A config with its data read, transformed, split and scaled."""

    config: Config
    series: Series
    values: np.ndarray  # (rows, C) original units, C = config.data.columns
    lag: int
    split: Split  # on work rows
    scaler: Scaler  # fitted on work rows [0, split.fit_end) only
    scaled: np.ndarray  # (rows - lag, C) transformed and scaled
    season: int
    params: int

    @property
    def features(self) -> np.ndarray:  # (work rows, F) scaled
        return self.scaled[:, : len(self.config.data.features)]

    @property
    def targets(self) -> np.ndarray:  # (work rows, K) scaled
        return self.scaled[:, target_columns(self.config)]

    @property
    def target_values(self) -> np.ndarray:  # (rows, K) original units
        return self.values[:, target_columns(self.config)]

    @property
    def model_horizon(self) -> int:
        return model_horizon(self.config)


def target_columns(config: Config) -> list[int]:
    columns = config.data.columns
    return [columns.index(t) for t in config.data.targets]


def model_horizon(config: Config) -> int:
    """Steps one model call emits: 1 for recursive multi-step, else the horizon."""
    window = config.window
    return 1 if window.multi_step == "recursive" else window.horizon


def prepare(config: Config, series: Series | None = None, rows: int | None = None) -> Prepared:
    """Read (unless given), transform, split and scale; check the model stack.

    With `rows`, only the first `rows` rows are used and there is no test part: a backtest
    fold fits on everything up to and including its origin.
    """
    series = read_series(config.data) if series is None else series
    data, window = config.data, config.window
    values = series.values if rows is None else series.values[:rows]  # (rows, C)
    lag = transform_lag(data.transform)
    index = series.index[: len(values)]
    work = apply_transform(values, data.transform, data.columns, index, str(series.path))
    fit_horizon = model_horizon(config)
    if rows is None:
        split = plan_split(
            len(work),
            config.split,
            window.input_steps,
            window.horizon,
            str(series.path),
            fit_horizon=fit_horizon,
        )
    else:
        split = fit_only_split(len(work), config, str(series.path))
    shape = check_stack(
        config.model, window.input_steps, len(data.features), fit_horizon, len(data.targets)
    )
    scaler = Scaler.fit(
        work[: split.fit_end], data.columns, config.scaling.method, config.scaling.feature_range
    )
    season = config.evaluation.season_length
    if season == "auto":
        season = season_length(series.index)
    return Prepared(
        config,
        series,
        values,
        lag,
        split,
        scaler,
        scaler.transform(work),
        int(season),
        shape.params,
    )


def fit_only_split(rows: int, config: Config, source: str) -> Split:
    """All rows train (the last `split.validation` of them validate); no test part."""
    window = config.window
    fit_horizon = model_horizon(config)
    val_rows = row_count(config.split.validation, rows)
    fit_end = rows - val_rows
    if fit_end < window.input_steps + fit_horizon or (val_rows and val_rows < fit_horizon):
        raise DataError(
            f"{source}: {rows} rows before this origin are too few to train on "
            f"(input_steps + horizon = {window.input_steps + fit_horizon} plus validation); "
            "use fewer folds or a smaller window"
        )
    return Split(rows, fit_end, rows, window.input_steps, window.horizon, fit_horizon)


def fit(
    prepared: Prepared, quiet: bool, backup_dir: Path | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """Seed, build and fit the model: (model, FitResult, {timings, strategy, unroll})."""
    import time

    from forecast.models import build_model, resolve_unroll, without_unroll
    from forecast.training import compile_model, seed_everything, strategy_scope, window_dataset
    from forecast.training import fit as fit_model

    cfg, split = prepared.config, prepared.split
    clock = time.perf_counter()
    seed_everything(cfg.seed)

    def dataset(origins: np.ndarray, shuffle: bool) -> Any:
        return window_dataset(
            prepared.features,
            prepared.targets,
            origins,
            cfg.window.input_steps,
            prepared.model_horizon,
            cfg.training.batch_size,
            shuffle=shuffle,
            seed=cfg.seed,
        )

    train_ds = dataset(split.train_origins, shuffle=True)
    val_ds = dataset(split.val_origins, shuffle=False) if len(split.val_origins) else None
    window_seconds = time.perf_counter() - clock
    unroll = resolve_unroll(cfg.training.unroll, cfg.window.input_steps, cfg.training.jit_compile)
    scope, strategy = strategy_scope(cfg.training.distribute)
    with scope:
        model = build_model(
            cfg.model,
            cfg.window.input_steps,
            len(cfg.data.features),
            prepared.model_horizon,
            len(cfg.data.targets),
            unroll=unroll,
        )
        compile_model(model, cfg.training)
    fitted = fit_model(model, cfg.training, train_ds, val_ds, quiet=quiet, backup_dir=backup_dir)
    model = without_unroll(model)  # forecasts and the saved model use the looped layers
    timings = {"window": round(window_seconds, 4), "fit": round(fitted.seconds, 4)}
    return model, fitted, {"timings": timings, "strategy": strategy, "unroll": unroll}


def forecast_levels(
    forecaster: Any,
    scaler: Scaler,
    config: Config,
    scaled_features: np.ndarray,  # (work rows, F)
    target_levels: np.ndarray | None,  # (rows, K) original units; needed for differences
    work_origins: np.ndarray,  # (N,)
    steps: int,
) -> np.ndarray:
    """Forecast `steps` from each origin and return them in original units: (N, steps, K)."""
    data = config.data
    scaled = forecaster.from_origins(scaled_features, work_origins, steps)  # (N, steps, K)
    transformed = scaler.subset(data.targets).inverse_transform(scaled)
    lag = transform_lag(data.transform)
    last = target_levels[work_origins + lag] if lag else None  # (N, K) at each origin
    return invert_transform(transformed, last, data.transform)


def forecast_prepared(
    prepared: Prepared, model: Any, work_origins: np.ndarray, steps: int
) -> np.ndarray:
    """Forecasts of a freshly fitted model from `work_origins`: (N, steps, K) original units."""
    from forecast.forecasting import Forecaster

    data = prepared.config.data
    return forecast_levels(
        Forecaster(model, data.features, data.targets),
        prepared.scaler,
        prepared.config,
        prepared.features,
        prepared.target_values,
        work_origins,
        steps,
    )
