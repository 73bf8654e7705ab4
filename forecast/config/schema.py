"""The config's typed schema: pydantic models with defaults, bounds and cross-field rules.

This module knows nothing about YAML files: `forecast.config.file` reads them, applies
`--set` and turns layer shorthand into these models; `forecast.config.wording` words
pydantic's errors. A notebook user can build a `Config` directly; `revalidate` checks a
changed copy of one.

The `model` section (layers and the architecture shorthand) lives in `forecast.config.modelspec`.
Cross-field rules are small named functions (`_layout_agrees`, `_recursion_needs_targets`,
...) whose messages say what is wrong and how to fix it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from forecast.config.layouts import LAYOUTS, infer_layout
from forecast.config.modelspec import ModelConfig, Strict
from forecast.errors import excerpt, shorten

CALENDAR_NAMES = ("minute", "hour", "weekday", "day", "dayofyear", "week", "month", "quarter")
CALENDAR_PREFIX = "calendar."  # data.calendar [month] -> calendar.month_sin, calendar.month_cos


def calendar_columns(names: list[str]) -> list[str]:
    """The model's input columns of these calendar features (a sine and a cosine each)."""
    return [f"{CALENDAR_PREFIX}{name}_{part}" for name in names for part in ("sin", "cos")]


# --------------------------------------------------------------------------- data


class DataConfig(Strict):
    path: str = Field(description="CSV file, relative to the config file")
    encoding: str = Field("auto", description="auto (utf-8, utf-8-sig, gb18030) or a codec")
    time_column: str | None = Field(None, description="time column; without it rows are steps")
    id_column: str | None = Field(
        None,
        description="long format: the column naming each row's series (a ticker, a store); "
        "every series is split, transformed and scaled on its own, one model learns them all",
    )
    features: list[str] = Field(min_length=1, description="input columns")
    if TYPE_CHECKING:  # a validated config's: `_default_targets` fills in the features
        targets: list[str] = Field(default_factory=list)
    else:
        targets: list[str] | None = Field(None, description="predicted columns; default: features")
    calendar: list[Literal[CALENDAR_NAMES]] | Literal["auto"] = Field(  # type: ignore[valid-type]
        default_factory=list,
        description="calendar features known in advance, as model inputs: minute, hour, "
        "weekday, day, dayofyear, week, month, quarter; auto = those that vary at the data's "
        "frequency (resolved when the data is read); [] = none",
    )
    missing: Literal["error", "drop", "ffill", "interpolate"] = "error"
    transform: Literal["none", "diff", "log", "log_diff"] = "none"
    decimal: Literal[".", ","] = Field(".", description="decimal mark in number cells")
    thousands: Literal["auto", "none", ",", ".", " ", "'"] = Field(
        "auto",
        description="thousands separator in number cells; auto accepts '1,234.5' where it "
        "cannot be read another way",
    )

    @field_validator("features", "targets")
    @classmethod
    def _unique_columns(cls, columns: list[str] | None) -> list[str] | None:
        if columns is not None:
            if len(columns) == 0:
                raise ValueError("must list at least one column")
            dupes = sorted({c for c in columns if columns.count(c) > 1})
            if dupes:
                raise ValueError(f"lists {shorten(', '.join(dupes))} more than once")
        return columns

    @model_validator(mode="after")
    def _default_targets(self) -> DataConfig:
        if self.targets is None:
            self.targets = list(self.features)
        return self

    @model_validator(mode="after")
    def _id_column_apart(self) -> DataConfig:
        if self.id_column is not None:
            if self.id_column == self.time_column:
                raise ValueError(f"id_column and time_column are both '{self.id_column}'")
            if self.id_column in self.columns:
                raise ValueError(
                    f"id_column '{self.id_column}' names the series; it cannot also be a "
                    "feature or target"
                )
        return self

    @model_validator(mode="after")
    def _separators_differ(self) -> DataConfig:
        if self.thousands == self.decimal:
            raise ValueError(
                f"decimal and thousands are both {excerpt(self.decimal)}; "
                "set thousands to another separator or none"
            )
        return self

    @field_validator("calendar")
    @classmethod
    def _unique_calendar(cls, names: list[str] | str) -> list[str] | str:
        if isinstance(names, list):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"lists {shorten(', '.join(dupes))} more than once")
        return names

    @property
    def calendar_columns(self) -> list[str]:
        """The calendar features' input columns (a sine and a cosine each)."""
        assert self.calendar != "auto", "calendar: auto is resolved when the data is read"
        return calendar_columns(list(self.calendar))

    @property
    def read_columns(self) -> list[str]:
        """The columns read from the CSV: the features, then targets that are not features."""
        return self.features + [t for t in self.targets if t not in self.features]

    @property
    def columns(self) -> list[str]:
        """Every column the model needs: the CSV's (`read_columns`), then the calendar's."""
        return self.read_columns + (self.calendar_columns if self.calendar != "auto" else [])

    @property
    def inputs(self) -> list[str]:
        """The model's input columns: the features, then the calendar's."""
        return self.features + (self.calendar_columns if self.calendar != "auto" else [])

    @property
    def input_index(self) -> list[int]:
        """Position of each input in `columns`."""
        return [self.columns.index(c) for c in self.inputs]

    @property
    def target_index(self) -> list[int]:
        """Position of each target in `columns`."""
        return [self.columns.index(t) for t in self.targets]

    @property
    def target_features(self) -> list[int]:
        """Each target's position among the features, or -1 where it is no input."""
        return [self.features.index(t) if t in self.features else -1 for t in self.targets]


# --------------------------------------------------------------------------- window, split


class WindowConfig(Strict):
    input_steps: int = Field(60, ge=1, description="rows the model sees per forecast")
    horizon: int = Field(1, ge=1, description="steps ahead to predict")
    multi_step: Literal["direct", "recursive"] = "direct"

    @property
    def output_steps(self) -> int:
        """Steps one model call emits: 1 for recursive multi-step, else the horizon."""
        return 1 if self.multi_step == "recursive" else self.horizon


def _fraction_or_count(value: Any, allow_zero: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a fraction in (0, 1) or a row count, got {excerpt(value)}")
    if isinstance(value, int) or (isinstance(value, float) and value >= 1 and value.is_integer()):
        if value < 0 or (value == 0 and not allow_zero):
            raise ValueError(
                f"must be a fraction in (0, 1) or a row count >= 1, got {excerpt(value)}"
            )
        return int(value)
    if not (0 < value < 1) and not (allow_zero and value == 0):
        raise ValueError(f"must be a fraction in (0, 1) or a whole row count, got {excerpt(value)}")
    return float(value)


class SplitConfig(Strict):
    test: float | int = Field(0.2, description="fraction (0,1) or a row count")
    validation: float | int = Field(0.1, description="fraction of the training part, from its end")

    @field_validator("test", mode="before")
    @classmethod
    def _test(cls, value: Any) -> float | int:
        return _fraction_or_count(value, allow_zero=False)

    @field_validator("validation", mode="before")
    @classmethod
    def _validation(cls, value: Any) -> float | int:
        return _fraction_or_count(value, allow_zero=True)


class ScalingConfig(Strict):
    method: Literal["minmax", "standard", "none"] = "minmax"
    feature_range: tuple[float, float] = (0.0, 1.0)

    @field_validator("feature_range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not value[0] < value[1]:
            raise ValueError(f"must be [low, high] with low < high, got {list(value)}")
        return value


# --------------------------------------------------------------------------- training


class EarlyStoppingConfig(Strict):
    patience: int = Field(10, ge=0)
    restore_best_weights: bool = True


class TrainingConfig(Strict):
    epochs: int = Field(50, ge=1, le=100_000)
    batch_size: int = Field(32, ge=1)
    optimizer: Literal["adam", "rmsprop", "sgd", "adamw"] = "adam"
    learning_rate: float = Field(0.001, gt=0, le=10)
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant",
        description="constant, or cosine: decay from learning_rate to a tenth of it over the "
        "configured epochs",
    )
    loss: Literal["mse", "mae", "huber"] = "mse"
    clipvalue: float | None = Field(None, gt=0)
    early_stopping: EarlyStoppingConfig | Literal[False] = Field(
        default_factory=EarlyStoppingConfig
    )
    distribute: Literal["none", "mirrored", "multi_worker"] = Field(
        "none", description="none | mirrored (local GPUs) | multi_worker (TF_CONFIG's workers)"
    )
    jit_compile: Literal["auto"] | bool = Field(
        "auto",
        description="compile training steps with XLA: auto = on CPU-only machines when the "
        "whole fit is expected to be shortest so, compilation included (forecast.fitting."
        "speedups: about 1.1 s to compile against ~45 us saved per batch, input step and "
        "recurrent layer, less at large batches)",
    )
    final_fit: bool = Field(
        True,
        description="after the held-out evaluation, refit on every row for the epochs early "
        "stopping found; predict uses that model",
    )
    final_fit_start: Literal["held_out", "scratch"] = Field(
        "held_out",
        description="held_out: the final fit continues from the held-out model's weights for a "
        "quarter of its best epoch count (at least one); scratch: it trains a new model for "
        "all of them",
    )
    fold_start: Literal["previous", "scratch"] = Field(
        "previous",
        description="a backtest's (and a tune trial's) later folds: previous = each continues "
        "from the fold before it, training on its own rows for a quarter of that fold's best "
        "epoch count (as final_fit_start: held_out); scratch: each trains a new model with "
        "early stopping",
    )
    tensorboard: bool = Field(
        False,
        description="write TensorBoard logs (loss, val_loss, learning rate per epoch) under "
        "RUN_DIR/tensorboard/ (held_out/ and final/); view with tensorboard --logdir runs",
    )
    unroll: Literal["auto"] | bool = Field(
        "auto",
        description="unroll recurrent layers: auto = on CPU-only machines for input_steps <= 100 "
        "when the whole fit is expected to be shortest so, build included (about 0.07 s per "
        "input step and layer; only LSTM layers gain); never with XLA, nor on GPUs, where it "
        "would lose cuDNN",
    )

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _true_means_defaults(cls, value: Any) -> Any:
        return {} if value is True else value


class EvaluationConfig(Strict):
    season_length: Literal["auto"] | int = Field(
        "auto", description="season length for seasonal naive and MASE: auto or an integer >= 1"
    )

    @field_validator("season_length", mode="before")
    @classmethod
    def _auto_or_positive(cls, value: Any) -> Any:
        if value == "auto" or (
            isinstance(value, int) and not isinstance(value, bool) and value >= 1
        ):
            return value
        raise ValueError(f"must be 'auto' or an integer >= 1, got {excerpt(value)}")


# --------------------------------------------------------------------------- whole config


NAME_BYTES = 200  # a run name; the folder adds "-backtest-YYYYmmdd-HHMMSS-N.partial"


def run_name(stem: str) -> str:
    """A valid run name from a file's stem: other characters as '_', no leading dot, cut to
    NAME_BYTES (the default name, and the one `init` writes)."""
    name = re.sub(r"[^\w.\-]", "_", stem).lstrip(".")
    return name.encode()[:NAME_BYTES].decode(errors="ignore") or "run"


class Config(Strict):
    name: str | None = Field(None, description="run name; default: the config file's stem")
    seed: int = Field(42, ge=0, le=2**31 - 1)
    data: DataConfig
    layout: Literal[LAYOUTS] | None = Field(  # type: ignore[valid-type]
        None, description="optional; inferred from features/targets/horizon; must agree"
    )
    window: WindowConfig = Field(default_factory=WindowConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    intervals: list[int | float] = Field(
        default_factory=lambda: list[int | float]([80, 95]),
        description="prediction-interval levels in percent, calibrated on the validation "
        "origins (conformal); [] = none",
    )

    @field_validator("intervals")
    @classmethod
    def _levels(cls, levels: list[int | float]) -> list[int | float]:
        for level in levels:
            if not 1 <= level < 100:
                raise ValueError(
                    f"levels are percentages from 1 to below 100 (80 for an 80% interval), "
                    f"got {level:g}"
                )
        if len(set(levels)) != len(levels):
            raise ValueError(f"lists a level more than once: {excerpt(levels)}")
        return sorted(levels)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.\-]+", value):
            raise ValueError(
                f"must use only letters, digits, '_', '-' and '.', got {excerpt(value)} "
                "(it names the run directory)"
            )
        if value is not None and len(value.encode()) > NAME_BYTES:
            raise ValueError(
                f"is {len(value.encode())} bytes long, got {excerpt(value)}; at most "
                f"{NAME_BYTES} (with its date stamp it names the run directory, and a file "
                "system takes names of 255 bytes); use a shorter name"
            )
        if value is not None and value.startswith("."):
            raise ValueError(
                f"must not start with '.', got {excerpt(value)} (a hidden run directory is never "
                "listed: `forecast runs` would not show it); remove the leading dot"
            )
        return value

    @model_validator(mode="after")
    def _layout_agrees(self) -> Config:
        inferred = infer_layout(self.data.features, self.data.targets, self.window.horizon)
        if self.layout is not None and self.layout != inferred:
            raise ValueError(
                f"layout '{self.layout}' disagrees with the data and window: features "
                f"{excerpt(self.data.features)} -> targets {excerpt(self.data.targets)}, horizon "
                f"{self.window.horizon} is '{inferred}'; "
                "fix features/targets/horizon (names must match exactly) or drop 'layout'"
            )
        self.layout = inferred
        return self

    @model_validator(mode="after")
    def _recursion_needs_targets(self) -> Config:
        fed_back = set(self.data.features) <= set(self.data.targets)
        if self.window.multi_step == "recursive" and not fed_back:
            missing = ", ".join(c for c in self.data.features if c not in self.data.targets)
            raise ValueError(
                "window.multi_step 'recursive' feeds predictions back as inputs, so every "
                "feature must be a target; use multi_step: direct or add the columns "
                f"{shorten(missing)} to data.targets"
            )
        return self

    @model_validator(mode="after")
    def _calendar_is_direct(self) -> Config:
        explicit = isinstance(self.data.calendar, list) and self.data.calendar
        if explicit and self.window.multi_step == "recursive":  # `auto`: once it is resolved
            raise ValueError(
                "data.calendar needs window.multi_step: direct (a recursive forecast would "
                "need the calendar of every later step fed back in); set multi_step: direct"
            )
        return self

    @property
    def recursive_ok(self) -> bool:
        """Predictions can be fed back as inputs: every feature is also a target (and no
        calendar feature, whose future values the loop does not feed)."""
        calendar = self.data.calendar
        known = calendar == "auto" or bool(calendar)  # `auto` may add some once resolved
        return set(self.data.features) <= set(self.data.targets) and not known
