"""The one preprocessing path that `train`, `backtest` and `predict` share, then fit and
forecast.

    CSV -> Series -> fill holes (part by part) -> transform -> scale -> Prepared
    Prepared -> fit -> model;  Prepared + model -> forecasts in original units

`prepare` fits the scaler on the training rows of a split; `prepare_history` reuses a saved
scaler on recent rows (for `predict`). Both go through `_transform_and_scale`.

Row bookkeeping with transforms: a transform may consume rows at the start (`lag` = 1 for
diff and log_diff). The model works on the transformed rows ("work rows"); work row i belongs
to original row i + lag. Splits, windows and the scaler live on work rows; forecasts are
turned back into original units before anything is scored or saved.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from forecast.config.schema import Config, TrainingConfig
from forecast.data.missing import fill_missing
from forecast.data.numbers import check_float32
from forecast.data.reading import Series, read_series
from forecast.data.scaling import Scaler
from forecast.data.timesteps import season_length
from forecast.data.transforms import apply_transform, invert_transform, transform_lag
from forecast.data.windows import Split, input_windows, plan_split, row_count, target_windows
from forecast.errors import ConfigError, DataError
from forecast.fitting.memory import check_training_fits
from forecast.model.build import check_stack

log = logging.getLogger("forecast")

CALIBRATED_STEPS = 30
RESIDUAL_ORIGINS = 2000  # at most this many recent training origins choose `residual: auto`


@dataclass
class Prepared:
    """A config with its data read, filled, transformed, split and scaled."""

    config: Config
    series: Series
    columns: list[str]  # the columns of `values`: config.data.columns, or the features only
    values: np.ndarray  # (rows, C) original units, holes filled
    lag: int
    split: Split | None  # on work rows; None for history that is only forecast from
    scaler: Scaler  # every column of the config; fitted on work rows [0, split.val_start) only
    scaled: np.ndarray  # (rows - lag, C) transformed and scaled
    season: int
    params: int

    @functools.cached_property
    def features(self) -> np.ndarray:  # (work rows, F) scaled: the model's inputs
        index = [self.columns.index(c) for c in self.config.data.inputs]
        if index == list(range(len(index))):
            return self.scaled[:, : len(index)]  # a view, no copy
        return self.scaled[:, index]  # the features and the calendar columns

    @property
    def targets(self) -> np.ndarray:  # (work rows, K) scaled
        return self.scaled[:, self.config.data.target_index]

    @property
    def target_values(self) -> np.ndarray:  # (rows, K) original units
        return self.values[:, self.config.data.target_index]


def prepare(config: Config, series: Series | None = None, rows: int | None = None) -> Prepared:
    """Read (unless given), fill, transform, split and scale; check the model stack.

    With `rows`, only the first `rows` rows are used and there is no test part: a backtest
    fold fits on everything up to and including its origin.
    """
    series = read_series(config.data) if series is None else series
    config = with_calendar(config, series)
    data, window = config.data, config.window
    values = series.values if rows is None else series.values[:rows]  # (rows, C)
    lag = transform_lag(data.transform)
    source = series.source
    work_rows = len(values) - lag
    if rows is None:
        split = plan_split(
            work_rows, config.split, window.input_steps, window.horizon, source, window.output_steps
        )
    else:
        split = fit_only_split(work_rows, config, source)
    # a hole is filled from its own part and earlier ones only, never from later rows
    values = fill_missing(values, [split.val_start + lag, split.test_start + lag, len(values)])
    return _transform_and_scale(config, series, data.columns, values, split, scaler=None)


def with_calendar(config: Config, series: Series) -> Config:
    """`data.calendar: auto` made concrete from the data's frequency (as the reader did)."""
    if config.data.calendar != "auto":
        return config
    if series.calendar and config.window.multi_step == "recursive":
        raise ConfigError(
            f"data.calendar: auto chose {', '.join(series.calendar)} for {series.source}, and "
            "calendar features need window.multi_step: direct; set multi_step: direct or "
            "calendar: []"
        )
    data = config.data.model_copy(update={"calendar": list(series.calendar)})
    return config.model_copy(update={"data": data})


def prepare_history(config: Config, series: Series, scaler: Scaler) -> Prepared:
    """The last rows of `series` that one forecast needs, transformed and scaled with the
    run's saved scaler: the same path as `prepare`, without a split."""
    data = config.data
    lag = transform_lag(data.transform)
    needed = config.window.input_steps + lag
    if len(series.frame) < needed:
        raise DataError(
            f"{series.source}: has {len(series.frame)} usable row(s); the model needs the last "
            f"{needed} (window.input_steps{' + 1 for the differences' if lag else ''})"
        )
    columns = list(series.frame.columns)  # the features, and the targets when they are read
    values = fill_missing(series.values, [len(series.frame)])[-needed:]  # (L + lag, C)
    return _transform_and_scale(config, series, columns, values, None, scaler)


def _transform_and_scale(
    config: Config,
    series: Series,
    columns: list[str],
    values: np.ndarray,  # (rows, C) original units
    split: Split | None,
    scaler: Scaler | None,
) -> Prepared:
    """Transform, then scale with `scaler`, or with one fitted on the split's training rows."""
    data, window = config.data, config.window
    index = series.index[-len(values) :] if split is None else series.index[: len(values)]
    work = apply_transform(values, data.transform, columns, index, series.source)
    lag = transform_lag(data.transform)
    transformed = f"data.transform {data.transform}" if data.transform != "none" else ""
    check_float32(work, columns, index[lag:], series.source, transformed)
    if scaler is None:
        assert split is not None, "a scaler is fitted on a split's training rows"
        scaling = config.scaling
        scaler = Scaler.fit(work[: split.val_start], columns, scaling.method, scaling.feature_range)
    shape = check_stack(
        config.model,
        window.input_steps,
        len(data.inputs),
        window.output_steps,
        len(data.targets),
    )
    if split is not None:  # a model is to be trained
        check_training_fits(config, shape, windows=max(len(split.train_origins), 1))
    season = config.evaluation.season_length
    if season == "auto":
        season = season_length(series.index)
    _check_window_covers(config, int(season))
    scaled = scaler.subset(columns).transform(work)  # a target may be absent from `values`
    check_float32(scaled, columns, index[lag:], series.source, "scaling")
    return Prepared(
        config=config,
        series=series,
        columns=columns,
        values=values,
        lag=lag,
        split=split,
        scaler=scaler,
        scaled=scaled,
        season=int(season),
        params=shape.params,
    )


def _check_window_covers(config: Config, season: int) -> None:
    """The model's own base forecast and window statistics need enough input steps."""
    steps, model = config.window.input_steps, config.model
    if model.residual.startswith("seasonal") and steps < season:
        raise ConfigError(
            f"model.residual {model.residual} needs window.input_steps >= the season length "
            f"{season}, got {steps}; raise input_steps or use residual: naive"
        )
    if model.window_norm and steps < 2:
        raise ConfigError("model.window_norm needs window.input_steps >= 2, got 1")


def choose_residual(prepared: Prepared) -> Prepared:
    """`model.residual: auto` made concrete from the training rows, before the fit.

    Of seasonal_average, seasonal_half_drift and seasonal_drift (forecast.model.layers), the base
    whose own forecasts miss the training targets least: mean absolute error in scaled
    units over the later half of the training origins (the recent trend matters most); a
    tie goes to the one with less trend. `naive` when the window is shorter than a season
    or no target is an input. The final fit keeps the choice; other configs pass as they are.
    """
    cfg, split = prepared.config, prepared.split
    if cfg.model.residual != "auto":
        return prepared
    assert split is not None, "the residual base is chosen on a split's training rows"
    from forecast.model.layers import AVERAGED

    data, window = cfg.data, cfg.window
    target_features = data.target_features
    inputs = np.array([f >= 0 for f in target_features])
    usable = window.input_steps >= prepared.season and inputs.any()
    candidates = list(AVERAGED) if usable else ["naive"]
    origins = split.train_origins
    origins = origins[len(origins) // 2 :][-RESIDUAL_ORIGINS:]
    errors: dict[str, float] = {}
    if len(candidates) > 1 and len(origins):
        from forecast.model.tf_setup import import_tensorflow_quietly

        import_tensorflow_quietly()
        import keras

        from forecast.model.layers import register

        windows = input_windows(prepared.features, origins, window.input_steps)  # (N, L, F)
        actual = target_windows(prepared.targets, origins, window.output_steps)  # (N, H, K)
        for base in candidates:
            layer = register()["WindowNormalize"](
                target_features, window.output_steps, False, base, prepared.season
            )
            predicted = keras.ops.convert_to_numpy(layer(windows.astype(np.float32))[1])
            errors[base] = float(np.mean(np.abs(predicted - actual)[..., inputs]))
    chosen = candidates[0]
    for base in candidates[1:]:  # more trend only for a lower error, not a rounding tie
        if errors[base] < errors[chosen] * (1 - 1e-6):
            chosen = base
    log.debug("residual: auto chose %s (training-window errors %s)", chosen, errors)
    model = cfg.model.model_copy(update={"residual": chosen})
    return replace(prepared, config=cfg.model_copy(update={"model": model}))


def fit_only_split(rows: int, config: Config, source: str) -> Split:
    """All rows train (the last `split.validation` of them validate); no test part."""
    window = config.window
    val_rows = row_count(config.split.validation, rows)
    val_start = rows - val_rows
    if val_start < window.input_steps + window.output_steps or (
        val_rows and val_rows < window.output_steps
    ):
        raise DataError(
            f"{source}: {rows} rows before this origin are too few to train on "
            f"(input_steps + horizon = {window.input_steps + window.output_steps} plus "
            "validation); use fewer folds or a smaller window"
        )
    return Split(rows, val_start, rows, window.input_steps, window.horizon, window.output_steps)


@dataclass
class Compiled:
    """Models built, compiled and traced once, reused by later fits of the same shape.

    A backtest refits the same model on more rows at every fold: instead of building and
    tracing it again, the next fit restores the variables (weights, optimizer state, random
    generators) the first one started from, so it starts exactly where a new model would,
    and reuses the traced training, validation and forecasting functions.
    """

    slots: dict[str, Any] = field(default_factory=dict)  # shape key -> _Slot, oldest first
    forecasters: dict[int, Any] = field(default_factory=dict)  # id(model) -> Forecaster
    limit: int | None = None  # at most this many slots; the least recently used go first

    def forecaster(self, model: Any, features: list[str], targets: list[str]) -> Any:
        from forecast.forecasting.forecaster import Forecaster

        if id(model) not in self.forecasters:
            self.forecasters[id(model)] = Forecaster(model, features, targets)
        return self.forecasters[id(model)]

    def take(self, key: str) -> Any:
        """The slot of `key`, marked as the most recently used, or None."""
        slot = self.slots.pop(key, None)
        if slot is not None:
            self.slots[key] = slot
        return slot

    def keep(self, key: str, slot: Any) -> None:
        self.slots[key] = slot
        while self.limit is not None and len(self.slots) > self.limit:
            old = self.slots.pop(next(iter(self.slots)))
            for model in (old.model, old.plain):
                self.forecasters.pop(id(model), None)


# Backtests in one process share their models: the same config on another series of the same
# shape (a panel's series, a benchmark's loop) skips building and tracing again.
SHARED = Compiled(limit=8)


@dataclass
class _Slot:
    trained: Any  # the model that trains (unrolled on CPUs)
    model: Any  # the forecasting model sharing its layers (the ensemble's median)
    plain: Any  # what forecasts: `model` with looped layers (models.forecasting_model)
    start: list[Any]  # the values of trained.variables before any fit
    optimizer_start: list[Any]  # the optimizer's variables before any update


def _shape_key(prepared: Prepared, unroll: bool, batches: int, jit: bool = False) -> str:
    """What a reusable model must share: every model/window/training setting that is built
    or traced in, the seed (the starting weights), and for a cosine schedule its length."""
    from forecast.fitting.training import steps_per_execution

    cfg = prepared.config
    return json.dumps(
        {
            "model": cfg.model.model_dump(mode="json"),
            "window": cfg.window.model_dump(mode="json"),
            "training": cfg.training.model_dump(mode="json", exclude={"epochs", "early_stopping"}),
            "features": cfg.data.inputs,
            "targets": cfg.data.targets,
            "season": prepared.season,
            "seed": cfg.seed,
            "unroll": unroll,
            "jit": jit,
            "steps_per_execution": steps_per_execution(batches),
            "schedule": batches * cfg.training.epochs
            if cfg.training.lr_schedule != "constant"
            else 0,
        },
        sort_keys=True,
    )


def expected_epochs(training: TrainingConfig) -> int:
    """Epochs a fit is expected to run: all of them, or with early stopping at most three
    patiences (most fits of the development set stopped within two)."""
    if training.early_stopping is False:
        return training.epochs
    return min(training.epochs, 3 * training.early_stopping.patience)


def fit(
    prepared: Prepared,
    quiet: bool,
    checkpoint_dir: Path | None = None,
    compiled: Compiled | None = None,
    tensorboard_dir: Path | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """Seed, build and fit the model: (model, FitResult, {timings, strategy, unroll}).

    With `compiled`, a model of the same shape built by an earlier fit is reset to its
    starting state and refitted (see Compiled); the result is the same as a new model's.
    Those fits are a backtest's, whose models are never saved: a stacked ensemble with
    looped layers then forecasts through them (models.forecasting_model, copy=False)."""
    from forecast.fitting.training import (
        WindowSource,
        compile_model,
        seed_everything,
        strategy_scope,
    )
    from forecast.fitting.training import fit as fit_model
    from forecast.model.build import (
        build_models,
        forecasting_model,
        recurrent_layer_count,
        resolve_jit,
        resolve_unroll,
    )

    cfg, split = prepared.config, prepared.split
    assert split is not None, "fit needs a split"
    clock = time.perf_counter()
    seed_everything(cfg.seed)
    scope, strategy = strategy_scope(cfg.training.distribute)
    batches = max(-(-len(split.train_origins) // cfg.training.batch_size), 1)  # per epoch
    expected = batches * expected_epochs(cfg.training)
    layers = recurrent_layer_count(cfg.model)
    jit = resolve_jit(cfg.training.jit_compile, cfg.window.input_steps, expected, layers)
    unroll = resolve_unroll(
        cfg.training.unroll,
        cfg.window.input_steps,
        jit,
        expected_batches=expected,
        recurrent_layers=layers,
    )
    key = _shape_key(prepared, unroll, batches, jit)
    slot = compiled.take(key) if compiled is not None else None
    if slot is not None:
        for variable, value in zip(slot.trained.variables, slot.start, strict=True):
            variable.assign(value)
        for variable, value in zip(
            slot.trained.optimizer.variables, slot.optimizer_start, strict=True
        ):
            variable.assign(value)
        trained, model = slot.trained, slot.model
    else:
        with scope:
            data = cfg.data
            trained, model = build_models(
                cfg.model,
                cfg.window.input_steps,
                len(data.inputs),
                cfg.window.output_steps,
                len(data.targets),
                unroll=unroll,
                target_features=data.target_features,
                season=prepared.season,
                known_inputs=len(data.inputs) - len(data.features),  # calendar columns
            )
            compile_model(trained, cfg.training, steps_per_epoch=batches, jit=jit)
        if compiled is not None and checkpoint_dir is None and strategy["replicas"] == 1:
            trained.optimizer.build(trained.trainable_variables)
            slot = _Slot(
                trained,
                model,
                None,
                [v.numpy() for v in trained.variables],
                [v.numpy() for v in trained.optimizer.variables],
            )
            compiled.keep(key, slot)
    source = WindowSource(
        prepared.features,
        prepared.targets,
        cfg.window.input_steps,
        cfg.window.output_steps,
        members=cfg.model.ensemble,
    )
    build_seconds = time.perf_counter() - clock
    fitted = fit_model(
        trained,
        cfg.training,
        source,
        split.train_origins,
        split.val_origins,
        seed=cfg.seed,
        quiet=quiet,
        checkpoint_dir=checkpoint_dir,
        tensorboard_dir=tensorboard_dir,
        # the untrained model forecasts its residual base (the head starts at zero)
        start_is_candidate=cfg.model.residual != "none",
    )
    if not quiet and fitted.stopped_epoch is not None:
        restored = {
            None: "",
            0: f"; no epoch beat the {cfg.model.residual} base on validation: the base kept",
        }.get(fitted.best_epoch, f"; weights of epoch {fitted.best_epoch} restored")
        log.info("early stopping after epoch %d%s", fitted.stopped_epoch, restored)
    # forecasts and the saved model use the looped layers (and an ensemble's plain members)
    model = forecasting_model(
        trained, model, slot.plain if slot is not None else None, copy=slot is None or unroll
    )
    if slot is not None:
        slot.plain = model
    timings = {
        "build": round(build_seconds, 4),
        "window": round(fitted.dataset_seconds, 4),
        "fit": round(fitted.seconds, 4),
    }
    info = {"timings": timings, "strategy": strategy, "unroll": unroll, "jit_compile": jit}
    return model, fitted, info


def fit_final(
    prepared: Prepared, epochs: int, quiet: bool, tensorboard_dir: Path | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """Refit on every row (the test rows too) for `epochs`, with the held-out run's scaler
    and settings, without validation or early stopping: the model `predict` uses."""
    cfg = prepared.config
    training = cfg.training.model_copy(update={"epochs": epochs, "early_stopping": False})
    final = replace(
        prepared, config=cfg.model_copy(update={"training": training}), split=final_split(prepared)
    )
    return fit(final, quiet, tensorboard_dir=tensorboard_dir)


def final_split(prepared: Prepared) -> Any:
    """Every row trains: a Split without validation or test rows (for a long table's
    combined rows, a PanelSplit of every origin of every series)."""
    split = prepared.split
    if split is not None and not isinstance(split, Split):
        return type(split)(split.every, split.every[:0], split.every, split.rows)
    rows, window = len(prepared.scaled), prepared.config.window
    return Split(rows, rows, rows, window.input_steps, window.horizon, window.output_steps)


def forecast(
    prepared: Prepared, forecaster: Any, work_origins: np.ndarray, steps: int
) -> np.ndarray:
    """Forecast `steps` from each origin, in original units: (N, steps, K)."""
    scaled = forecaster.from_origins(prepared.features, work_origins, steps)  # (N, steps, K)
    return to_original(prepared, scaled, work_origins)


def to_original(prepared: Prepared, scaled: np.ndarray, work_origins: np.ndarray) -> np.ndarray:
    """Forecasts from `work_origins` in scaled units (N, steps, K) -> original units."""
    data = prepared.config.data
    transformed = prepared.scaler.subset(data.targets).inverse_transform(scaled)
    last = prepared.target_values[work_origins + prepared.lag] if prepared.lag else None  # (N, K)
    forecasts = invert_transform(transformed, last, data.transform)  # (N, steps, K)
    check_forecasts(forecasts, data.targets, prepared.series.source)
    return forecasts


def check_forecasts(forecasts: np.ndarray, targets: list[str], source: object) -> None:
    """forecasts (N, steps, K) in original units: a DataError if any is NaN or infinite, so
    that no such forecast is scored as if it were one, written or served."""
    bad = ~np.isfinite(forecasts)
    if not bad.any():
        return
    _, step, k = np.argwhere(bad)[0]
    raise DataError(
        f"{source}: the model forecasts {forecasts[bad][0]} for '{targets[k]}' (step "
        f"{step + 1}), in {int(bad.sum())} of {bad.size} values; nothing is written. The fit "
        "diverged or the values are far outside the training range: train again with a lower "
        "training.learning_rate or a training.clipvalue, or check the history's values"
    )


def calibrate_intervals(prepared: Prepared, forecaster: Any) -> tuple[Any, str | None]:
    """Prediction intervals from the held-out model's errors at the training and validation
    origins (forecast.forecasting.intervals): (Calibration, None), or (None, why not); (None,
    None) when the config asks for none.

    Where the model can forecast by recursion, steps beyond the horizon are calibrated too
    (up to CALIBRATED_STEPS or the validation length), for `predict --horizon`."""
    plan = calibration_plan(prepared)
    if not isinstance(plan, CalibrationPlan):
        return None, plan
    predicted = forecast(prepared, forecaster, plan.origins, plan.steps)  # (N, S, K)
    return calibrate_from(prepared, plan, predicted), None


@dataclass
class CalibrationPlan:
    train_origins: np.ndarray  # work rows
    val_origins: np.ndarray
    steps: int

    @property
    def origins(self) -> np.ndarray:
        return np.concatenate([self.train_origins, self.val_origins])


def calibration_plan(prepared: Prepared) -> CalibrationPlan | str | None:
    """The origins and steps the intervals are calibrated on, or why there are none (None
    when the config asks for none)."""
    from forecast.forecasting.intervals import TRAINING_ORIGINS

    cfg, split = prepared.config, prepared.split
    assert split is not None, "calibration needs a split"
    if not cfg.intervals:
        return None
    window = cfg.window
    first = max(split.val_start - 1, window.input_steps - 1)
    val_origins = np.arange(first, split.test_start - 1)  # work rows
    train_origins = np.arange(window.input_steps - 1, split.val_start - 1)[-TRAINING_ORIGINS:]
    if split.test_start == split.val_start or len(val_origins) == 0:
        return (
            "no validation rows to calibrate them on; set split.validation > 0, "
            "or intervals: [] to turn them off"
        )
    if len(train_origins) == 0:
        return "no training origin before the validation rows to calibrate them on"
    steps = window.horizon
    if cfg.recursive_ok:  # `predict --horizon` may go further by recursion: calibrate that too
        steps = max(steps, min(CALIBRATED_STEPS, split.test_start - split.val_start))
    return CalibrationPlan(train_origins, val_origins, steps)


def calibrate_from(prepared: Prepared, plan: CalibrationPlan, predicted: np.ndarray) -> Any:
    """The Calibration from the forecasts (N, S, K) at `plan.origins`, original units."""
    from forecast.forecasting.intervals import calibrate, error_kind

    cfg, split, lag = prepared.config, prepared.split, prepared.lag
    data, window = cfg.data, cfg.window
    n = len(plan.train_origins)
    return calibrate(
        prepared.target_values,
        (plan.train_origins + lag, predicted[:n]),
        (plan.val_origins + lag, predicted[n:]),
        val_start=split.val_start + lag,
        test_start=split.test_start + lag,
        levels=cfg.intervals,
        kind=error_kind(data.transform),
        input_steps=window.input_steps,
        normalised=[t in data.features for t in data.targets],
    )


def score_intervals(
    report: dict[str, Any],
    calibration: Any,
    missing: str | None,
    actual: np.ndarray,  # (rows, K) original units
    origins: np.ndarray,  # (N,) original rows
    predicted: np.ndarray,  # (N, H, K)
    season: int,
    test_start: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Add `intervals` (overall and per target) to a metrics report, or why there are none,
    and `clip_at_zero`: the targets whose bounds were clipped at 0; returns the bounds lo, hi
    (levels, N, H, K), or None."""
    from forecast.forecasting.intervals import interval_report

    if calibration is None:
        if missing:
            report["intervals"] = {"unavailable": missing}
        return None
    bounds = calibration.bounds(predicted, calibration.scales(actual, origins))
    targets = list(report["per_target"])
    overall, per_target = interval_report(
        actual, origins, bounds, calibration.levels, calibration.kind,
        targets, season, test_start, calibration.clip_at_zero,
    )  # fmt: skip
    report["intervals"] = overall
    clipped = [t for t, c in zip(targets, calibration.clip_at_zero, strict=False) if c]
    if clipped:
        report["clip_at_zero"] = clipped
    for target, block in per_target.items():
        report["per_target"][target]["intervals"] = block
    return bounds


def outside_training_range(prepared: Prepared) -> list[str]:
    """One line per input column whose recent values, as the network reads them, leave the
    range its scaler saw in training, and why that matters. Nothing with model.window_norm:
    each window is then centred on its last value and scaled by its own steps, so levels
    (and scales) outside the training range reach the network as familiar inputs. Under a
    differencing transform the network reads changes, not levels: those are checked."""
    cfg = prepared.config
    scaler = prepared.scaler.subset(prepared.columns)
    if cfg.model.window_norm or scaler.data_min is None or scaler.data_max is None:
        return []
    transform = cfg.data.transform
    work = scaler.inverse_transform(prepared.scaled)  # (L, C) transformed units
    what = "changes" if transform in ("diff", "log_diff") else "values"
    shown = {  # transformed units -> what the user reads
        "log": lambda v: f"{np.exp(v):.6g}",
        "diff": lambda v: f"{v:+.6g}",
        "log_diff": lambda v: f"{100 * np.expm1(v):+.3g}%",
    }.get(transform, lambda v: f"{v:.6g}")
    result = "its forecasts are extrapolation"
    if cfg.model.residual != "none":  # the base carries the level; the correction does not
        base = "residual" if cfg.model.residual == "auto" else cfg.model.residual
        result = f"its correction to the {base} base is extrapolation"
    lines = []
    for c, column in enumerate(prepared.columns[: len(cfg.data.features)]):
        low, high = scaler.data_min[c], scaler.data_max[c]
        span = high - low if high > low else max(abs(high), 1.0)
        tolerance = 0.01 * span  # a hair past the edge is not worth a warning
        above, below = work[:, c] > high + tolerance, work[:, c] < low - tolerance
        if not (above.any() or below.any()):
            continue
        if work[:, c].max() - high >= low - work[:, c].min():
            outside, side, far, edge = above, "above", work[:, c].max(), f"max {shown(high)}"
        else:
            outside, side, far, edge = below, "below", work[:, c].min(), f"min {shown(low)}"
        count, verb = f"the last {len(work)}", "lie"
        if outside.sum() < len(work):
            count = f"{outside.sum()} of the last {len(work)}"
            verb = "lies" if outside.sum() == 1 else "lie"
        reach = "up to" if side == "above" else "down to"
        lines.append(
            f"{prepared.series.source}: {count} {what} of {column} ({reach} {shown(far)}) "
            f"{verb} {side} anything the model saw in training ({edge}); without window_norm the "
            f"network's inputs are then outside its scaler's range, so {result}"
        )
    return lines
