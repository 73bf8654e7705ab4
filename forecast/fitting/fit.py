"""Fit one model on prepared data: seed, build (or reuse a compiled model of the same shape),
train, and turn it into the model that forecasts; the final fit on every row."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from forecast.config.schema import TrainingConfig
from forecast.data.prepare import Prepared
from forecast.data.windows import Split
from forecast.fitting.callbacks import FitResult, validation_loss_class
from forecast.fitting.dataset import WindowSource, window_dataset
from forecast.fitting.speedups import choose_speedups, has_dropout, recurrent_layers
from forecast.fitting.training import (
    VALIDATION_IN_MEMORY,
    compile_model,
    seed_everything,
    steps_per_execution,
    strategy_scope,
)
from forecast.fitting.training import fit as fit_model
from forecast.forecasting.forecaster import Forecaster
from forecast.model.build import STACKED, build_models, forecasting_model
from forecast.model.stacked import copy_into_stacked

log = logging.getLogger("forecast")


@dataclass
class Compiled:
    """Models built, compiled and traced once, reused by later fits of the same shape.

    A backtest refits the same model on more rows at every fold: instead of building and
    tracing it again, the next fit restores the variables (weights, optimizer state, random
    generators) the first one started from, so it starts exactly where a new model would,
    and reuses the traced training, validation and forecasting functions.
    """

    slots: dict[str, Any] = field(default_factory=dict)  # shape key -> _Slot, oldest first
    forecasters: dict[int, Forecaster] = field(default_factory=dict)  # id(model) -> it
    limit: int | None = None  # at most this many slots; the least recently used go first

    def forecaster(self, model: Any, features: list[str], targets: list[str]) -> Forecaster:
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
    start: Any = None,
    saved: bool = False,
    epochs: int | None = None,
) -> tuple[Any, FitResult, dict[str, Any]]:
    """Seed, build and fit the model: (model, FitResult, {timings, strategy, unroll}).

    With `start` (layer name -> weights, as `layer_weights` gives them of a model of this
    config), the fit begins from those weights instead of a new initialisation (the final
    fit's `final_fit_start: held_out`, a backtest fold's `fold_start: previous`). With
    `epochs`, it trains for that many on the training rows, without early stopping and
    without scoring the validation rows (which stay unseen: a fold continued from the one
    before it calibrates its intervals on them).

    With `compiled`, a model of the same shape built by an earlier fit is reset to its
    starting state and refitted (see Compiled); the result is the same as a new model's.
    Those fits are a backtest's, whose models are never saved (a stacked ensemble with
    looped layers then forecasts through them: models.forecasting_model, copy=False), and a
    train's final fit, in the model of its held-out fit, saved before. `saved`: the model
    returned is saved, so a stacked ensemble's is its plain members, as without `compiled`."""

    cfg, split = prepared.config, prepared.split
    assert split is not None, "fit needs a split"
    val_origins = split.val_origins
    if epochs is not None:
        training = cfg.training.model_copy(update={"epochs": epochs, "early_stopping": False})
        cfg = cfg.model_copy(update={"training": training})
        prepared, val_origins = replace(prepared, config=cfg), val_origins[:0]
    clock = time.perf_counter()
    seed_everything(cfg.seed)
    scope, strategy, distributed = strategy_scope(cfg.training.distribute)
    batches = max(-(-len(split.train_origins) // cfg.training.batch_size), 1)  # per epoch
    expected = batches * expected_epochs(cfg.training)
    jit, unroll = choose_speedups(
        cfg.training.jit_compile,
        cfg.training.unroll,
        cfg.window.input_steps,
        cfg.training.batch_size,
        expected,
        recurrent_layers(cfg.model),
        cfg.model.ensemble,
        has_dropout(cfg.model),
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
            trained, model = models_for(prepared, unroll)
            compile_model(trained, cfg.training, steps_per_epoch=batches, jit=jit)
        if compiled is not None and strategy["name"] == "default":  # not under a strategy
            trained.optimizer.build(trained.trainable_variables)
            slot = _Slot(
                trained,
                model,
                None,
                [v.numpy() for v in trained.variables],
                [v.numpy() for v in trained.optimizer.variables],
            )
            compiled.keep(key, slot)
    if start is not None:
        for layer in model.layers:  # the layers build_models names, as it named them before
            if layer.weights:
                layer.set_weights(start[layer.name])
        if trained in STACKED:  # and into the stacked model that trains
            copy_into_stacked(model, trained)
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
        val_origins,
        seed=cfg.seed,
        quiet=quiet,
        checkpoint_dir=checkpoint_dir,
        tensorboard_dir=tensorboard_dir,
        # the untrained model forecasts its residual base (the head starts at zero)
        start_is_candidate=cfg.model.residual != "none",
        distributed=distributed,
    )
    if start is not None and epochs and cfg.model.residual != "none" and len(split.val_origins):
        fitted.best_epoch = base_or_trained(trained, source, split.val_origins, epochs, cfg)
    if fitted.steps_per_worker is not None:
        strategy = {**strategy, "steps_per_epoch_per_worker": fitted.steps_per_worker}
    if not quiet and fitted.stopped_epoch is not None:
        restored = {
            None: "",
            0: f"; no epoch beat the {cfg.model.residual} base on validation: the base kept",
        }.get(fitted.best_epoch, f"; weights of epoch {fitted.best_epoch} restored")
        log.info("early stopping after epoch %d%s", fitted.stopped_epoch, restored)
    # forecasts and the saved model use the looped layers (and an ensemble's plain members)
    model = forecasting_model(
        trained,
        model,
        slot.plain if slot is not None else None,
        copy=slot is None or unroll or saved,
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


def base_or_trained(
    trained: Any, source: WindowSource, val_origins: np.ndarray, epochs: int, cfg: Any
) -> int:
    """A fit continued from given weights for `epochs` without early stopping (a backtest
    fold from the fold before it) keeps what it learnt only where that misses its
    validation rows less than the residual base alone (its output head zeroed, as a new
    model starts): the epoch whose weights it holds, `epochs`, or 0 for the base. A new
    fit makes the same choice through early stopping (`start_is_candidate`)."""
    if len(val_origins) <= VALIDATION_IN_MEMORY:
        scorer = validation_loss_class()(trained, source, val_origins)

        def loss() -> float:
            return float(scorer.score(scorer.x, scorer.y))
    else:
        batches = window_dataset(source, val_origins, cfg.training.batch_size)

        def loss() -> float:
            return float(trained.evaluate(batches, verbose=0))

    learnt = loss()
    heads = [layer for layer in trained.layers if layer.name.endswith("head_dense")]
    kept = [layer.get_weights() for layer in heads]
    for layer, weights in zip(heads, kept, strict=True):
        layer.set_weights([np.zeros_like(w) for w in weights])
    if loss() <= learnt:
        return 0
    for layer, weights in zip(heads, kept, strict=True):
        layer.set_weights(weights)
    return epochs


def models_for(prepared: Prepared, unroll: bool) -> tuple[Any, Any]:
    """The untrained (model to train, model that forecasts) of `prepared`'s config, data
    and season (model.build.build_models)."""
    cfg, data = prepared.config, prepared.config.data
    return build_models(
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


def fit_final(
    prepared: Prepared,
    epochs: int,
    quiet: bool,
    tensorboard_dir: Path | None = None,
    start: Any = None,
    compiled: Compiled | None = None,
) -> tuple[Any, FitResult, dict[str, Any]]:
    """Refit on every row (the test rows too) for `epochs`, with the held-out run's scaler
    and settings, without validation or early stopping: the model `predict` uses. With
    `start` (`layer_weights` of the held-out model), from its weights; with `compiled`,
    in a model of the same shape an earlier fit built (see fit)."""
    cfg = prepared.config
    training = cfg.training.model_copy(update={"epochs": epochs, "early_stopping": False})
    final = replace(
        prepared, config=cfg.model_copy(update={"training": training}), split=final_split(prepared)
    )
    return fit(
        final, quiet, tensorboard_dir=tensorboard_dir, start=start, compiled=compiled, saved=True
    )


def scoring_model(prepared: Prepared, model: Any) -> Any:
    """The model to forecast the test split with: `model` itself, or for an ensemble whose
    members train stacked, the same members in member-batched layers (forecast.model.stacked)
    with `model`'s weights, forecasting their median: the same numbers (to float rounding),
    in one batched loop instead of one loop per member. Made from `model` alone, so a
    resumed run scores exactly as an uninterrupted one."""
    trained, _ = models_for(prepared, unroll=False)
    if trained not in STACKED:
        return model
    copy_into_stacked(model, trained)
    return forecasting_model(trained, None, copy=False)


def layer_weights(model: Any, prefix: str = "") -> dict[str, list[Any]]:
    """Layer name (without `prefix`) -> weights, of `model`'s layers named with `prefix`
    that have weights: what `fit(start=...)` begins from (an ensemble member's: "m<i>_")."""
    return {
        layer.name.removeprefix(prefix): layer.get_weights()
        for layer in model.layers
        if layer.weights and layer.name.startswith(prefix)
    }


def final_epochs(best: int, start: str) -> int:
    """The final fit's epochs after a held-out fit whose best epoch was `best`: all of them
    from scratch; from the held-out weights, which have learnt what those epochs taught, a
    quarter of them (at least one) to take in the rows the held-out fit never trained on."""
    if start == "scratch" or best == 0:
        return best
    return max(1, math.ceil(best / 4))


def final_split(prepared: Prepared) -> Any:
    """Every row trains: a Split without validation or test rows (for a long table's
    combined rows, a PanelSplit of every origin of every series)."""
    split = prepared.split
    if split is not None and not isinstance(split, Split):
        return type(split)(split.every, split.every[:0], split.every, split.rows)
    rows, window = len(prepared.scaled), prepared.config.window
    return Split(rows, rows, rows, window.input_steps, window.horizon, window.output_steps)
