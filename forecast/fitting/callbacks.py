"""The Keras callbacks of a fit (validation loss, early stopping that may keep the starting
weights, progress and history, the per-epoch checkpoint) and the checkpoint itself, which
snapshots weights, optimizer, early-stopping and RNG state so a resumed fit repeats the
uninterrupted one. Built on first use, so that importing this module does not import Keras."""

from __future__ import annotations

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

from forecast.errors import DataError
from forecast.fitting.dataset import WindowSource
from forecast.interrupts import raise_if_stop_requested


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
def early_stopping_class() -> type:
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
                self._restore(saved)

        def on_train_begin(self, logs: Any = None) -> None:
            super().on_train_begin(logs)
            if self.saved:
                self._restore(self.saved)
            elif self.start is not None:  # the starting weights are the best before epoch 1
                self.best, self.best_weights = self.start, self.model.get_weights()
                self.best_epoch = -1  # reported 1-based: 0

        def _restore(self, saved: dict[str, Any]) -> None:
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


PROGRESS_EVERY = 0.5  # seconds between progress lines within an epoch, on a terminal


_VALIDATION_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@functools.cache
def validation_loss_class() -> type:
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
def checkpoint_writer_class() -> type:
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

    for name, kind in (("loss", "training"), ("val_loss", "validation")):
        if (name == "loss" or validated) and not math.isfinite(row[name]):
            raise DataError(
                f"training: the {kind} loss became {row[name]} at epoch {row['epoch']}; the "
                f"fit diverged: lower training.learning_rate (now {row['learning_rate']:g}), "
                "scale the data (scaling.method: minmax or standard) or set "
                "training.clipvalue (e.g. 1.0)"
            )


@functools.cache
def recorder_class() -> type:
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


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    best_epoch: int | None = None  # 1-based epoch whose weights the model holds, if restored
    # (0: the starting weights, which no epoch beat on validation)
    stopped_epoch: int | None = None  # 1-based epoch after which early stopping stopped
    seconds: float = 0.0  # the model.fit call with its callbacks
    dataset_seconds: float = 0.0  # building the tf.data pipelines
    steps_per_worker: int | None = None  # a multi-worker fit's steps per epoch on each worker
