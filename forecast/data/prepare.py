"""The one preprocessing path that `train`, `backtest` and `predict` share.

    CSV -> Series -> fill holes (part by part) -> transform -> scale -> Prepared

`prepare` fits the scaler on the training rows of a split; `prepare_history` reuses a saved
scaler on recent rows (for `predict`). Both go through `_transform_and_scale`. Whether the
model stack fits the window and the machine's memory is checked once the data of every
series is prepared (forecast.data.panel.prepare_panel).

Row bookkeeping with transforms: a transform may consume rows at the start (`lag` = 1 for
diff and log_diff). The model works on the transformed rows ("work rows"); work row i belongs
to original row i + lag. Splits, windows and the scaler live on work rows; forecasts are
turned back into original units (`to_original`, the way back) before anything is scored or
saved.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

from forecast.config.schema import Config
from forecast.data.missing import fill_missing
from forecast.data.numbers import check_float32
from forecast.data.reading import Series, read_series
from forecast.data.scaling import Scaler
from forecast.data.timesteps import season_length
from forecast.data.transforms import apply_transform, invert_transform, transform_lag
from forecast.data.windows import Split, plan_split, row_count
from forecast.errors import ConfigError, DataError

log = logging.getLogger("forecast")


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

    @functools.cached_property
    def features(self) -> np.ndarray:  # (work rows, F) scaled: the model's inputs
        index = [self.columns.index(c) for c in self.config.data.inputs]
        if index == list(range(len(index))):
            return self.scaled[:, : len(index)]  # a view, no copy
        return self.scaled[:, index]  # the features and the calendar columns

    @property
    def fit_split(self) -> Split:
        """The split of data prepared to fit a model on (`prepare`, not `prepare_history`)."""
        assert self.split is not None, "history prepared only to forecast from has no split"
        return self.split

    @property
    def targets(self) -> np.ndarray:  # (work rows, K) scaled
        return self.scaled[:, self.config.data.target_index]

    @property
    def target_values(self) -> np.ndarray:  # (rows, K) original units
        return self.values[:, self.config.data.target_index]


def prepare(config: Config, series: Series | None = None, rows: int | None = None) -> Prepared:
    """Read (unless given), fill, transform, split and scale.

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
    data = config.data
    index = series.index[-len(values) :] if split is None else series.index[: len(values)]
    work = apply_transform(values, data.transform, columns, index, series.source)
    lag = transform_lag(data.transform)
    transformed = f"data.transform {data.transform}" if data.transform != "none" else ""
    check_float32(work, columns, index[lag:], series.source, transformed)
    if scaler is None:
        assert split is not None, "a scaler is fitted on a split's training rows"
        scaling = config.scaling
        scaler = Scaler.fit(work[: split.val_start], columns, scaling.method, scaling.feature_range)
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
