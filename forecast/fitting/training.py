"""Fit a model: seeding, a tf.data pipeline that gathers windows per batch, early stopping,
and a checkpoint after every epoch from which an interrupted fit resumes exactly.

Windows are never materialised for training: the dataset holds origin indices and each batch
gathers its rows from the (rows, F) series with one vectorised `tf.gather`, so memory does
not grow with rows x input_steps and nothing is re-windowed per epoch.

Resuming gives the same result as not stopping: each epoch's shuffle is a function of
(seed, epoch) only, and the checkpoint holds weights, optimizer, the dropout generators'
state, early stopping's state and the history rows, written as one snapshot.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import sys
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forecast.config.schema import TrainingConfig
from forecast.interrupts import raise_if_stop_requested, tensorflow_work


def seed_everything(seed: int) -> None:
    """Same config + seed on the same machine -> same weights and metrics."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


@dataclass
class WindowSource:
    """The scaled series that training windows are gathered from."""

    features: np.ndarray  # (rows, F) scaled
    targets: np.ndarray  # (rows, K) scaled
    input_steps: int
    output_steps: int
    members: int = 1  # an ensemble's model emits (B, members, H, K); targets get that axis


class EpochOrder:
    """The training windows' order in the current epoch, a function of (seed, epoch) only,
    held in a tf.Variable that the training dataset reads its batches from; `set(epoch)`
    before each epoch's pass (the Recorder does)."""

    def __init__(self, origins: np.ndarray, seed: int, epoch: int = 0) -> None:
        import tensorflow as tf

        self.origins = tf.constant(origins.astype(np.int64))  # (N,)
        self.seed = tf.constant(seed, tf.int64)
        self.variable = tf.Variable(self.origins, trainable=False)
        self.set(epoch)

    def of(self, epoch: Any) -> Any:
        """Epoch `epoch`'s order (N,)."""
        import tensorflow as tf

        seed = tf.stack([self.seed, tf.cast(epoch, tf.int64)])
        return tf.random.experimental.stateless_shuffle(self.origins, seed=seed)

    def set(self, epoch: int) -> None:
        self.variable.assign(self.of(epoch))


def window_dataset(
    source: WindowSource,
    origins: np.ndarray,  # (N,)
    batch_size: int,
    order: EpochOrder | None = None,
    epochs: range | None = None,
) -> Any:
    """A tf.data.Dataset of (B, L, F) inputs and (B, H, K) targets, gathered per batch: the
    origins once, in order; with `order`, once in the order it holds when iteration starts;
    with `order` and `epochs`, every epoch in `epochs` one after the other, each in its own
    order (one iterator for the whole fit).

    A dataset that ends with its epoch lets Keras run many batches per call of the training
    function (steps_per_execution) without a call running into the next epoch; but each pass
    starts a new iterator (10-15 ms here), which short epochs avoid with `epochs`.
    """
    import tensorflow as tf

    series_in = tf.constant(source.features, dtype=tf.float32)  # (rows, F)
    series_out = tf.constant(source.targets, dtype=tf.float32)  # (rows, K)
    in_offsets = tf.range(-source.input_steps + 1, 1, dtype=tf.int64)  # (L,)
    out_offsets = tf.range(1, source.output_steps + 1, dtype=tf.int64)  # (H,)

    def gather(batch_origins: Any) -> tuple[Any, Any]:  # (B,)
        x = tf.gather(series_in, batch_origins[:, None] + in_offsets)  # (B, L, F)
        y = tf.gather(series_out, batch_origins[:, None] + out_offsets)  # (B, H, K)
        if source.members > 1:
            y = y[:, None]  # (B, 1, H, K): every member is scored against the same targets
        return x, y

    if order is None:
        ds = tf.data.Dataset.from_tensor_slices(origins.astype(np.int64)).batch(batch_size)
    elif epochs is not None:

        def one_epoch(epoch: Any) -> Any:
            return tf.data.Dataset.from_tensor_slices(order.of(epoch)).batch(batch_size)

        ds = tf.data.Dataset.range(epochs.start, epochs.stop).flat_map(one_epoch)
    else:
        # batch b is rows b*B .. (b+1)*B of the epoch's order, read as the batch is made (a
        # pass starts in microseconds, where a shuffled tf.data pipeline took 6-15 ms)
        variable, size = order.variable, tf.constant(batch_size, tf.int64)
        batches = -(-len(origins) // batch_size)
        ds = tf.data.Dataset.range(batches).map(lambda b: variable[b * size : (b + 1) * size])
    ds = ds.map(gather).prefetch(2)
    options = tf.data.Options()
    # autotune's teardown blocks model.fit for up to seconds after the last batch on this
    # kind of machine (PERFORMANCE.md); fixed prefetch depth is as fast here
    options.autotune.enabled = False
    options.deterministic = True
    return ds.with_options(options)


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


def strategy_scope(distribute: str) -> tuple[Any, dict[str, Any]]:
    """A context to build and compile the model in, and run.json's `strategy` entry."""
    if distribute == "mirrored":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
        return strategy.scope(), {"name": "mirrored", "replicas": strategy.num_replicas_in_sync}
    return contextlib.nullcontext(), {"name": "default", "replicas": 1}


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    best_epoch: int | None = None  # 1-based epoch whose weights the model holds, if restored
    # (0: the starting weights, which no epoch beat on validation)
    stopped_epoch: int | None = None  # 1-based epoch after which early stopping stopped
    seconds: float = 0.0  # the model.fit call with its callbacks
    dataset_seconds: float = 0.0  # building the tf.data pipelines


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
) -> FitResult:
    """Fit a compiled model with early stopping.

    History rows: epoch, loss, val_loss, learning_rate, seconds. With `checkpoint_dir`, the
    whole training state is saved there after every epoch, and a later call with the same
    folder continues from the last finished epoch, ending where an uninterrupted fit ends.
    With `start_is_candidate` (a model that starts as a forecast of its own, its residual
    base), early stopping that restores the best weights scores the starting weights on the
    validation windows too, before the first epoch: when no epoch beats them they are
    kept, and `best_epoch` is 0.
    """
    saved = Checkpoint(checkpoint_dir).load(model) if checkpoint_dir is not None else None
    result = FitResult(history=list(saved["history"]) if saved else [])
    first_epoch = saved["epoch"] if saved else 0
    clock = time.perf_counter()
    val_ds = val_scorer = None
    if 0 < len(val_origins) <= VALIDATION_IN_MEMORY:
        val_scorer = _validation_loss_class()(model, source, val_origins)
    elif len(val_origins):
        val_ds = window_dataset(source, val_origins, training.batch_size)
    order = EpochOrder(train_origins, seed, first_epoch)
    steps = math.ceil(len(train_origins) / training.batch_size)
    if steps_per_execution(steps) != model.steps_per_execution:  # compiled for other epochs
        model.steps_per_execution = steps_per_execution(steps)
        model.make_train_function(force=True)
    whole = model.steps_per_execution == 1  # one batch per call: one pass over every epoch
    epochs = range(first_epoch, training.epochs) if whole else None
    # otherwise one pass per epoch, in the order the Recorder sets as the epoch begins
    train_ds = window_dataset(source, train_origins, training.batch_size, order, epochs)
    result.dataset_seconds = time.perf_counter() - clock
    stopper = None
    if training.early_stopping is not False:
        stopper = _early_stopping_class()(
            saved["early_stopping"] if saved else None,
            monitor="val_loss" if len(val_origins) else "loss",
            patience=training.early_stopping.patience,
            restore_best_weights=training.early_stopping.restore_best_weights,
        )
    done = first_epoch >= training.epochs or (stopper is not None and stopper.resumed_stopped)
    start = time.perf_counter()
    if not done:
        callbacks: list[Any] = [
            _recorder_class()(result, training.epochs, quiet, None if whole else order, steps)
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
            callbacks.append(
                _checkpoint_writer_class()(Checkpoint(checkpoint_dir), result, stopper)
            )
        if tensorboard_dir is not None:  # after the Recorder, which adds learning_rate
            import keras

            callbacks.append(
                keras.callbacks.TensorBoard(
                    log_dir=str(tensorboard_dir), write_graph=False, profile_batch=0
                )
            )
        with tensorflow_work():  # a stop request waits for the end of a batch
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


def _extra_state(model: Any) -> list[Any]:
    """Variables a model holds besides its weights: the dropout layers' random generators."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


WEIGHTS = "training.keras"  # a checkpoint's weights and optimizer state


class Checkpoint:
    """The training state after an epoch, written as one snapshot: a new folder is filled,
    then swapped in with renames, so a kill at any moment leaves a complete snapshot."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.new = folder.with_name(folder.name + ".new")
        self.old = folder.with_name(folder.name + ".old")

    def _snapshot(self) -> Path | None:
        """The folder of the newest complete snapshot (the current one, or the previous one
        kept while a new one was written), or None."""
        return next((f for f in (self.folder, self.old) if (f / "state.json").is_file()), None)

    def exists(self) -> bool:
        return self._snapshot() is not None

    def save(self, model: Any, state: dict[str, Any], best_weights: list | None) -> None:
        shutil.rmtree(self.new, ignore_errors=True)
        self.new.mkdir(parents=True)
        # weights and optimizer in a .keras archive, whose HDF5 part Keras builds in
        # memory: HDF5 writing a .weights.h5 to a full disk crashes the process (a
        # segmentation fault in its close) instead of raising
        try:
            model.save(self.new / WEIGHTS)
        except OSError as exc:  # Keras writes through a file object: name the file
            if exc.filename is not None or exc.errno is None:
                raise
            raise OSError(exc.errno, exc.strerror, str(self.new / WEIGHTS)) from exc
        state = {**state, "generators": [np.asarray(v).tolist() for v in _extra_state(model)]}
        if best_weights is not None:
            np.savez(self.new / "best_weights.npz", *best_weights)
        (self.new / "state.json").write_text(json.dumps(state), encoding="utf-8")
        if self.folder.exists():
            shutil.rmtree(self.old, ignore_errors=True)
            os.rename(self.folder, self.old)
        os.rename(self.new, self.folder)
        shutil.rmtree(self.old, ignore_errors=True)

    def epochs_done(self) -> int:
        """Epochs the snapshot holds (0 without one)."""
        folder = self._snapshot()
        if folder is None:
            return 0
        return int(json.loads((folder / "state.json").read_text(encoding="utf-8"))["epoch"])

    def load(self, model: Any) -> dict[str, Any] | None:
        """Restore weights, optimizer and generators into `model`; the rest of the state."""
        folder = self._snapshot()
        if folder is None:
            return None
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        weights = folder / WEIGHTS
        model.load_weights(weights if weights.is_file() else folder / "training.weights.h5")
        for variable, value in zip(_extra_state(model), state["generators"], strict=True):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        best = folder / "best_weights.npz"
        if state.get("early_stopping") and best.is_file():
            with np.load(best, allow_pickle=False) as arrays:
                state["early_stopping"]["best_weights"] = [
                    arrays[f"arr_{i}"] for i in range(len(arrays.files))
                ]
        return state

    def discard(self) -> None:
        for folder in (self.folder, self.new, self.old):
            shutil.rmtree(folder, ignore_errors=True)


@functools.cache
def _early_stopping_class() -> type:
    """Keras' EarlyStopping, whose state (best value, wait, best epoch and weights) can be
    saved and restored, so a resumed fit stops where an uninterrupted one stops."""
    import keras

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        def __init__(self, saved: dict[str, Any] | None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.saved = saved
            self.resumed_stopped = bool(saved and saved["stopped_epoch"] > 0)
            self.start: float | None = None  # the starting weights' score, if a candidate
            if saved:
                self._restore()

        def on_train_begin(self, logs: Any = None) -> None:
            super().on_train_begin(logs)
            if self.saved:
                self._restore()
            elif self.start is not None:  # the starting weights are the best before epoch 1
                self.best, self.best_weights = self.start, self.model.get_weights()
                self.best_epoch = -1  # reported 1-based: 0

        def _restore(self) -> None:
            saved = self.saved
            self.wait, self.best_epoch = saved["wait"], saved["best_epoch"]
            self.stopped_epoch = saved["stopped_epoch"]
            self.best = saved["best"]
            self.best_weights = saved.get("best_weights")

        def state(self) -> dict[str, Any]:
            return {
                "wait": int(self.wait),
                "best": None if self.best is None else float(self.best),
                "best_epoch": int(self.best_epoch),
                "stopped_epoch": int(self.stopped_epoch),
            }

    return ResumableEarlyStopping


VALIDATION_IN_MEMORY = 4096  # validation windows held as one tensor; more go through tf.data
PROGRESS_EVERY = 0.5  # seconds between progress lines within an epoch, on a terminal
_VALIDATION_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@functools.cache
def _validation_loss_class() -> type:
    """The validation loss after every epoch, from windows gathered once, with one call of
    a function traced once per model. Keras' own validation builds a tf.data iterator per
    epoch (about 10 ms each here), which dominated short fits. The value is the loss over
    all validation windows, as Keras' batch-size-weighted mean of batch losses is."""
    import keras
    import tensorflow as tf

    class ValidationLoss(keras.callbacks.Callback):
        def __init__(self, model: Any, source: WindowSource, origins: np.ndarray) -> None:
            super().__init__()
            from forecast.data.windows import input_windows, target_windows

            x = input_windows(source.features, origins, source.input_steps)  # (N, L, F)
            y = target_windows(source.targets, origins, source.output_steps)  # (N, H, K)
            if source.members > 1:
                y = y[:, None]  # (N, 1, H, K): every member against the same targets
            self.x = tf.constant(x, dtype=tf.float32)
            self.y = tf.constant(y, dtype=tf.float32)
            if model not in _VALIDATION_FUNCTIONS:
                loss = keras.losses.get(model.loss)

                @tf.function(reduce_retracing=True)
                def score(x: Any, y: Any) -> Any:
                    return tf.reduce_mean(loss(y, model(x, training=False)))

                _VALIDATION_FUNCTIONS[model] = score
            self.score = _VALIDATION_FUNCTIONS[model]

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if logs is not None:
                logs["val_loss"] = float(self.score(self.x, self.y))

    return ValidationLoss


@functools.cache
def _checkpoint_writer_class() -> type:
    import keras

    class CheckpointWriter(keras.callbacks.Callback):
        """Last in the callback list: snapshots the epoch once every other callback
        (history, early stopping) has recorded it."""

        def __init__(self, checkpoint: Checkpoint, result: FitResult, stopper: Any) -> None:
            super().__init__()
            self.checkpoint, self.result, self.stopper = checkpoint, result, stopper

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            state = {"epoch": epoch + 1, "history": self.result.history}
            best = None
            if self.stopper is not None:
                state["early_stopping"] = self.stopper.state()
                best = self.stopper.best_weights
            self.checkpoint.save(self.model, state, best)

    return CheckpointWriter


def _check_loss(row: dict[str, float], validated: bool) -> None:
    """A loss that became NaN or inf stops the fit with a DataError: every weight after it
    is NaN, and so would be every forecast."""
    from forecast.errors import DataError

    for name, kind in (("loss", "training"), ("val_loss", "validation")):
        if (name == "loss" or validated) and not math.isfinite(row[name]):
            raise DataError(
                f"training: the {kind} loss became {row[name]} at epoch {row['epoch']}; the "
                f"fit diverged: lower training.learning_rate (now {row['learning_rate']:g}), "
                "scale the data (scaling.method: minmax or standard) or set "
                "training.clipvalue (e.g. 1.0)"
            )


@functools.cache
def _recorder_class() -> type:
    """A Keras callback that records one history row per epoch and prints it to stderr
    (built on first use so that importing this module does not import Keras)."""
    import keras

    class Recorder(keras.callbacks.Callback):
        def __init__(
            self, result: FitResult, epochs: int, quiet: bool, order: Any, steps: int
        ) -> None:
            super().__init__()
            self.result, self.epochs, self.quiet = result, epochs, quiet
            self.order, self.steps = order, steps  # the training windows' order, batches
            self._start = self._shown = 0.0
            self._epoch = 0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = self._shown = time.perf_counter()
            self._epoch = epoch + 1
            if self.order is not None:
                self.order.set(epoch)  # before Keras starts the epoch's pass over the data
            raise_if_stop_requested()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            raise_if_stop_requested()
            # on a terminal, a long epoch shows its batches on one line, rewritten twice a
            # second; elsewhere (a log file) only the line per epoch
            if self.quiet or not sys.stderr.isatty():
                return
            now = time.perf_counter()
            if now - self._shown >= PROGRESS_EVERY:
                self._shown = now
                steps = self.steps
                loss = (logs or {}).get("loss")
                shown = f"  loss {float(loss):.6g}" if loss is not None else ""
                print(
                    f"\repoch {self._epoch}/{self.epochs}  batch {min(batch + 1, steps)}/{steps}"
                    f"{shown}",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            lr = self.model.optimizer.learning_rate
            row = {
                "epoch": epoch + 1,
                "loss": float(logs.get("loss", np.nan)),
                "val_loss": float(logs.get("val_loss", np.nan)),
                "learning_rate": float(np.asarray(lr)),
                "seconds": round(time.perf_counter() - self._start, 4),
            }
            self.result.history.append(row)
            logs["learning_rate"] = row["learning_rate"]  # for TensorBoard, after this one
            _check_loss(row, "val_loss" in logs)
            if not self.quiet:
                val = f"  val_loss {row['val_loss']:.6g}" if "val_loss" in logs else ""
                if self._shown > self._start:  # a progress line is showing: clear it
                    print("\r\033[K", end="", file=sys.stderr)
                print(
                    f"epoch {row['epoch']}/{self.epochs}  loss {row['loss']:.6g}{val}"
                    f"  ({row['seconds']:.1f}s)",
                    file=sys.stderr,
                    flush=True,
                )

    return Recorder
