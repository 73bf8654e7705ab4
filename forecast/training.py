"""Fit a model: seeding, a tf.data pipeline that gathers windows per batch, callbacks.

Windows are never materialised for training: the dataset holds origin indices and each batch
gathers its rows from the (rows, F) series with one vectorised `tf.gather`, so memory does
not grow with rows x input_steps and nothing is re-windowed per epoch.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forecast.config import TrainingConfig
from forecast.errors import stop_requested


def seed_everything(seed: int) -> None:
    """Same config + seed on the same machine -> same weights and metrics."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def window_dataset(
    features: np.ndarray,  # (rows, F) scaled
    targets: np.ndarray,  # (rows, K) scaled
    origins: np.ndarray,  # (N,)
    input_steps: int,
    horizon: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
) -> Any:
    """A tf.data.Dataset of (B, L, F) inputs and (B, H, K) targets, gathered per batch."""
    import tensorflow as tf

    series_in = tf.constant(features, dtype=tf.float32)  # (rows, F)
    series_out = tf.constant(targets, dtype=tf.float32)  # (rows, K)
    in_offsets = tf.range(-input_steps + 1, 1, dtype=tf.int64)  # (L,)
    out_offsets = tf.range(1, horizon + 1, dtype=tf.int64)  # (H,)

    def gather(batch_origins: Any) -> tuple[Any, Any]:  # (B,)
        x = tf.gather(series_in, batch_origins[:, None] + in_offsets)  # (B, L, F)
        y = tf.gather(series_out, batch_origins[:, None] + out_offsets)  # (B, H, K)
        return x, y

    ds = tf.data.Dataset.from_tensor_slices(origins.astype(np.int64))
    if shuffle:
        ds = ds.shuffle(len(origins), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(gather).prefetch(2)
    options = tf.data.Options()
    # autotune's teardown blocks model.fit for up to seconds after the last batch on this
    # kind of machine (PERFORMANCE.md); fixed prefetch depth is as fast here
    options.autotune.enabled = False
    options.deterministic = True
    return ds.with_options(options)


def make_optimizer(training: TrainingConfig) -> Any:
    import keras

    kinds = {
        "adam": keras.optimizers.Adam,
        "rmsprop": keras.optimizers.RMSprop,
        "sgd": keras.optimizers.SGD,
        "adamw": keras.optimizers.AdamW,
    }
    kwargs: dict[str, Any] = {"learning_rate": training.learning_rate}
    if training.clipvalue is not None:
        kwargs["clipvalue"] = training.clipvalue
    return kinds[training.optimizer](**kwargs)


def make_loss(name: str) -> Any:
    import keras

    return {"mse": "mse", "mae": "mae", "huber": keras.losses.Huber()}[name]


def compile_model(model: Any, training: TrainingConfig) -> None:
    model.compile(
        optimizer=make_optimizer(training),
        loss=make_loss(training.loss),
        jit_compile=training.jit_compile,
    )


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
    best_epoch: int | None = None
    seconds: float = 0.0


def fit(
    model: Any,
    training: TrainingConfig,
    train_ds: Any,
    val_ds: Any | None,
    quiet: bool = False,
    backup_dir: Path | None = None,
) -> FitResult:
    """Fit a compiled model with early stopping.

    History rows: epoch, loss, val_loss, learning_rate, seconds. With `backup_dir`, weights,
    optimizer state and history are saved there after every epoch, and a later call with the
    same folder continues from the last finished epoch (Keras BackupAndRestore).
    """
    import keras

    result = FitResult()
    history_file = None
    if backup_dir is not None:
        history_file = backup_dir / "history.jsonl"
        result.history = _finished_history(backup_dir)
    callbacks: list[Any] = [_recorder_class()(result, training.epochs, quiet, history_file)]
    stopper = None
    if training.early_stopping is not False:
        stopper = keras.callbacks.EarlyStopping(
            monitor="val_loss" if val_ds is not None else "loss",
            patience=training.early_stopping.patience,
            restore_best_weights=training.early_stopping.restore_best_weights,
        )
        callbacks.append(stopper)
    if backup_dir is not None:
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True))
    start = time.perf_counter()
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=training.epochs,
        shuffle=False,  # the dataset shuffles itself, seeded
        verbose=0,
        callbacks=callbacks,
    )
    result.seconds = time.perf_counter() - start
    if stopper is not None:
        result.best_epoch = (stopper.best_epoch + 1) if stopper.best_weights is not None else None
    return result


def _finished_history(backup_dir: Path) -> list[dict[str, float]]:
    """History rows of the epochs the backup holds (a row written just before a kill, whose
    weights were not saved, is dropped: that epoch runs again)."""
    try:
        done = json.loads((backup_dir / "training_metadata.json").read_text())["epoch"]
        lines = (backup_dir / "history.jsonl").read_text().splitlines()
    except (OSError, ValueError, KeyError):
        return []
    rows = [json.loads(line) for line in lines if line.strip()]
    return [row for row in rows if row["epoch"] <= done]


@functools.cache
def _recorder_class() -> type:
    """A Keras callback that records one history row per epoch and prints it to stderr
    (built on first use so that importing this module does not import Keras)."""
    import keras

    class Recorder(keras.callbacks.Callback):
        def __init__(
            self, result: FitResult, epochs: int, quiet: bool, history_file: Path | None
        ) -> None:
            super().__init__()
            self.result, self.epochs, self.quiet = result, epochs, quiet
            self.history_file = history_file
            self._start = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()
            self._check_stop()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self._check_stop()

        def _check_stop(self) -> None:
            if stop_requested:
                raise stop_requested[-1]()

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
            if self.history_file is not None:
                self.history_file.parent.mkdir(parents=True, exist_ok=True)
                with self.history_file.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
            if not self.quiet:
                val = f"  val_loss {row['val_loss']:.6g}" if "val_loss" in logs else ""
                print(
                    f"epoch {row['epoch']}/{self.epochs}  loss {row['loss']:.6g}{val}"
                    f"  ({row['seconds']:.1f}s)",
                    file=sys.stderr,
                    flush=True,
                )

    return Recorder
