"""Fit a model: seeding, optimizer and loss, the distribution strategy, and `model.fit` over
the training windows (fitting/dataset.py) with early stopping and a checkpoint after every
epoch (fitting/callbacks.py) from which an interrupted fit resumes exactly.

Windows are never materialised for training: the dataset holds origin indices and each batch
gathers its rows from the (rows, F) series with one vectorised `tf.gather`, so memory does
not grow with rows x input_steps and nothing is re-windowed per epoch.

Resuming gives the same result as not stopping: each epoch's shuffle is a function of
(seed, epoch) only, and the checkpoint holds weights, optimizer, the dropout generators'
state, early stopping's state and the history rows, written as one snapshot.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from forecast.config.schema import TrainingConfig
from forecast.fitting.callbacks import (
    Checkpoint,
    FitResult,
    checkpoint_writer_class,
    early_stopping_class,
    recorder_class,
    validation_loss_class,
)
from forecast.fitting.dataset import EpochOrder, WindowSource, window_dataset
from forecast.fitting.multiworker import ENGINE, cluster_from_env, connect, distributed_epochs
from forecast.interrupts import tensorflow_work

VALIDATION_IN_MEMORY = 4096  # validation windows held as one tensor; more go through tf.data


def seed_everything(seed: int) -> None:
    """Same config + seed on the same machine -> same weights and metrics."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def make_optimizer(training: TrainingConfig, steps_per_epoch: int = 1) -> Any:
    """The configured optimizer; with lr_schedule cosine, its learning rate follows a cosine
    from learning_rate down to a tenth of it over `epochs * steps_per_epoch` updates (a
    function of the update count, which the checkpoint keeps, so a resumed fit follows the
    same curve)."""
    import keras

    kinds = {
        "adam": keras.optimizers.Adam,
        "rmsprop": keras.optimizers.RMSprop,
        "sgd": keras.optimizers.SGD,
        "adamw": keras.optimizers.AdamW,
    }
    rate: Any = training.learning_rate
    if training.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(
            training.learning_rate, decay_steps=training.epochs * steps_per_epoch, alpha=0.1
        )
    kwargs: dict[str, Any] = {"learning_rate": rate}
    if training.clipvalue is not None:
        kwargs["clipvalue"] = training.clipvalue
    return kinds[training.optimizer](**kwargs)


def make_loss(name: str) -> Any:
    import keras

    return {"mse": "mse", "mae": "mae", "huber": keras.losses.Huber()}[name]


# batches per call of the training function; a call ends with its epoch, so this is the
# most a call runs: one call per batch cost about 1 ms of Python per batch, 15-20% of a short
# fit's time (benchmarks/README.md), for the same batches, order and weights. Progress shows
# (and Ctrl-C is seen) between calls.
MAX_STEPS_PER_EXECUTION = 256
# an epoch of up to this many batches runs one batch per call from one iterator for the whole
# fit: a new iterator per epoch (10-15 ms, 30-35 ms per epoch with Keras' own) costs more
# than the calls it saves
SHORT_EPOCH = 32


def steps_per_execution(steps_per_epoch: int) -> int:
    """Batches per call of the training function for epochs of `steps_per_epoch` batches."""
    return 1 if steps_per_epoch <= SHORT_EPOCH else MAX_STEPS_PER_EXECUTION


def compile_model(
    model: Any, training: TrainingConfig, steps_per_epoch: int = 1, jit: bool | None = None
) -> None:
    """Compile for training; `jit` (default: training.jit_compile, auto meaning off) runs the
    training step with XLA."""
    model.compile(
        optimizer=make_optimizer(training, steps_per_epoch),
        loss=make_loss(training.loss),
        jit_compile=False,
        steps_per_execution=steps_per_execution(steps_per_epoch),
    )
    if (training.jit_compile is True) if jit is None else jit:
        # set past Keras' check, which turns XLA off whenever op determinism is on
        # (seed_everything) because some ops lack deterministic XLA kernels: the recurrent
        # stacks here have them, and their XLA fits repeat bit for bit
        # (tests/test_training.py)
        model._jit_compile = True


def strategy_scope(distribute: str) -> tuple[Any, dict[str, Any], Any]:
    """A context to build and compile the model in, run.json's `strategy` entry, and the
    strategy that runs the training steps itself (multi_worker), else None."""
    import tensorflow as tf

    if distribute == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        info = {"name": "mirrored", "engine": "keras model.fit"}
        return strategy.scope(), {**info, "replicas": strategy.num_replicas_in_sync}, None
    if distribute == "multi_worker":
        strategy = multi_worker_strategy()
        info = {"name": "multi_worker", "engine": ENGINE}
        return strategy.scope(), {**info, "replicas": strategy.num_replicas_in_sync}, strategy
    return (
        contextlib.nullcontext(),
        {"name": "default", "engine": "keras model.fit", "replicas": 1},
        None,
    )


_STRATEGIES: list[Any] = []  # a process joins its cluster once


def multi_worker_strategy() -> Any:
    """This process's MultiWorkerMirroredStrategy, joined once: before TensorFlow runs any
    op, as its collectives require."""
    if not _STRATEGIES:
        from forecast.model.tf_setup import import_tensorflow_quietly

        import_tensorflow_quietly()
        _STRATEGIES.append(connect(cluster_from_env()))
    return _STRATEGIES[0]


def fit(
    model: Any,
    training: TrainingConfig,
    source: WindowSource,
    train_origins: np.ndarray,
    val_origins: np.ndarray,
    seed: int,
    quiet: bool = False,
    checkpoint_dir: Path | None = None,
    tensorboard_dir: Path | None = None,
    start_is_candidate: bool = False,
    distributed: Any = None,
) -> FitResult:
    """Fit a compiled model with early stopping; with `distributed` (a multi-worker strategy,
    forecast.fitting.multiworker), data-parallel with this process as one of its workers.

    History rows: epoch, loss, val_loss, learning_rate, seconds. With `checkpoint_dir`, the
    whole training state is saved there after every epoch, and a later call with the same
    folder continues from the last finished epoch, ending where an uninterrupted fit ends.
    With `start_is_candidate` (a model that starts as a forecast of its own, its residual
    base), early stopping that restores the best weights scores the starting weights on the
    validation windows too, before the first epoch: when no epoch beats them they are
    kept, and `best_epoch` is 0.
    """
    with distributed.scope() if distributed is not None else contextlib.nullcontext():
        saved = Checkpoint(checkpoint_dir).load(model) if checkpoint_dir is not None else None
    result = FitResult(history=list(saved["history"]) if saved else [])
    first_epoch = saved["epoch"] if saved else 0
    clock = time.perf_counter()
    val_ds = val_scorer = None
    if 0 < len(val_origins) <= VALIDATION_IN_MEMORY or (distributed and len(val_origins)):
        val_scorer = validation_loss_class()(model, source, val_origins)
    elif len(val_origins):
        val_ds = window_dataset(source, val_origins, training.batch_size)
    order = EpochOrder(train_origins, seed, first_epoch)
    replicas = distributed.num_replicas_in_sync if distributed is not None else 1
    steps = math.ceil(len(train_origins) / (training.batch_size * replicas))  # per worker
    if distributed is None and steps_per_execution(steps) != model.steps_per_execution:
        model.steps_per_execution = steps_per_execution(steps)
        model.make_train_function(force=True)
    whole = model.steps_per_execution == 1 and distributed is None  # one pass, every epoch
    epochs = range(first_epoch, training.epochs) if whole else None
    # otherwise one pass per epoch, in the order the Recorder sets as the epoch begins
    train_ds = window_dataset(source, train_origins, training.batch_size, order, epochs)
    result.dataset_seconds = time.perf_counter() - clock
    stopper = None
    if training.early_stopping is not False:
        stopper = early_stopping_class()(
            saved["early_stopping"] if saved else None,
            monitor="val_loss" if len(val_origins) else "loss",
            patience=training.early_stopping.patience,
            restore_best_weights=training.early_stopping.restore_best_weights,
        )
    done = first_epoch >= training.epochs or (stopper is not None and stopper.resumed_stopped)
    start = time.perf_counter()
    if not done:
        callbacks: list[Any] = [
            recorder_class()(result, training.epochs, quiet, None if whole else order, steps)
        ]
        if val_scorer is not None:
            callbacks.insert(0, val_scorer)  # first: the others read its val_loss
        if stopper is not None:
            if start_is_candidate and stopper.restore_best_weights and len(val_origins):
                stopper.start = (  # the loss the epochs' val_loss is compared with
                    float(val_scorer.score(val_scorer.x, val_scorer.y))
                    if val_scorer is not None
                    else float(model.evaluate(val_ds, verbose=0))
                )
            callbacks.append(stopper)
        if checkpoint_dir is not None:
            callbacks.append(checkpoint_writer_class()(Checkpoint(checkpoint_dir), result, stopper))
        if tensorboard_dir is not None:  # after the Recorder, which adds learning_rate
            import keras

            callbacks.append(
                keras.callbacks.TensorBoard(
                    log_dir=str(tensorboard_dir), write_graph=False, profile_batch=0
                )
            )
        with tensorflow_work():  # a stop request waits for the end of a batch
            if distributed is not None:
                import keras

                driven = keras.callbacks.CallbackList(callbacks, model=model)
                model.stop_training = False
                driven.on_train_begin()
                result.steps_per_worker = distributed_epochs(
                    model,
                    distributed,
                    source,
                    order,
                    train_origins,
                    training.batch_size,
                    training.loss,
                    range(first_epoch, training.epochs),
                    driven,
                )
                driven.on_train_end()
            else:
                model.fit(
                    train_ds,
                    validation_data=val_ds,
                    epochs=training.epochs,
                    initial_epoch=first_epoch,
                    steps_per_epoch=steps if whole else None,
                    shuffle=False,  # the dataset shuffles itself, a function of (seed, epoch)
                    verbose=0,
                    callbacks=callbacks,
                )
    elif stopper is not None:
        stopper.set_model(model)
        stopper.on_train_end()  # restores the best weights, as the fit's end would have
    result.seconds = time.perf_counter() - start
    if stopper is not None:
        if stopper.stopped_epoch > 0:
            result.stopped_epoch = stopper.stopped_epoch + 1
        if stopper.restore_best_weights and stopper.best_weights is not None:
            result.best_epoch = stopper.best_epoch + 1
    return result
