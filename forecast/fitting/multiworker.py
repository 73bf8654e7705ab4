"""One model trained data-parallel across worker processes: `training.distribute: multi_worker`.

The cluster comes from the standard `TF_CONFIG` variable, the same on every worker but for
its own index:

    TF_CONFIG='{"cluster": {"worker": ["10.0.0.5:12345", "10.0.0.6:12345"]},
                "task": {"type": "worker", "index": 0}}'

The engine is TensorFlow's MultiWorkerMirroredStrategy with our own training step
(`strategy.run` over `strategy.distribute_datasets_from_function`): Keras 3's `model.fit` fails
under that strategy (keras-team/keras#20585: its symbolic build and its metric reduction
both reduce per-replica values the strategy cannot), so the epochs here drive the same
Keras callbacks a `model.fit` would (validation loss, early stopping, progress and
history, the checkpoint), and everything else about a fit stays as it is.

Each step, worker i trains on its own `batch_size` windows of the epoch's order (the same
seeded order on every worker): the global batch is `batch_size x replicas`, and the
gradients of the mean loss over the global batch are summed across workers, as one
process would compute them for that batch. Every worker computes the validation loss
on all validation windows with the same weights, so early stopping decides the same
everywhere without a word between them.

Only the chief (worker 0) writes the run; a worker whose peers do not come up within
CONNECT_SECONDS stops with a one-line error instead of waiting forever.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from forecast.errors import ConfigError, RunError
from forecast.interrupts import raise_if_stop_requested

CONNECT_SECONDS = float(os.environ.get("FORECAST_CONNECT_SECONDS", "60"))
ENGINE = "tf.distribute.MultiWorkerMirroredStrategy (own training step)"


@dataclass(frozen=True)
class Cluster:
    workers: list[str]  # host:port of every worker, in index order
    index: int  # this worker's

    @property
    def chief(self) -> bool:
        return self.index == 0


def cluster_from_env() -> Cluster:
    """TF_CONFIG as a Cluster, or a one-line user error saying what is wrong with it."""
    text = os.environ.get("TF_CONFIG")
    example = (
        'e.g. TF_CONFIG=\'{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
        '"task": {"type": "worker", "index": 0}}\''
    )
    if not text:
        raise ConfigError(
            f"training.distribute: multi_worker takes its cluster from TF_CONFIG, which is not "
            f"set; {example}"
        )
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        index = task["index"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"TF_CONFIG: not a cluster and task in JSON; {example}") from None
    if not (
        isinstance(workers, list)
        and workers
        and all(isinstance(w, str) and w.rpartition(":")[2].isdecimal() for w in workers)
    ):
        raise ConfigError(f"TF_CONFIG: cluster.worker must list HOST:PORT strings; {example}")
    if task.get("type") != "worker" or not isinstance(index, int):
        raise ConfigError(f'TF_CONFIG: task must be {{"type": "worker", "index": N}}; {example}')
    if not 0 <= index < len(workers):
        raise ConfigError(
            f"TF_CONFIG: task.index {index} is not one of the {len(workers)} workers (0.."
            f"{len(workers) - 1})"
        )
    return Cluster(workers, index)


def connect(cluster: Cluster) -> Any:
    """The strategy over every worker of `cluster`, once all of them answer; a RunError naming
    the first that does not within CONNECT_SECONDS."""
    import tensorflow as tf

    rendezvous(cluster)  # TensorFlow's own wait for peers never ends, and holds the GIL
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=CONNECT_SECONDS)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)

    @tf.function
    def count() -> Any:
        return strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)

    try:  # the first collective: every worker has joined
        total = count()
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as exc:
        raise RunError(
            f"TF_CONFIG: the workers did not all join within {CONNECT_SECONDS:g} s "
            f"({type(exc).__name__}); start every worker with the same cluster"
        ) from None
    assert int(total) == strategy.num_replicas_in_sync
    return strategy


def rendezvous(cluster: Cluster) -> None:
    """Return once every worker of `cluster` is up, or raise a RunError naming the first that
    is not within CONNECT_SECONDS.

    Each worker listens on its own address while it reaches every peer's, and stops
    listening only once it has reached all of them and all of them have reached it: a peer
    that reached this worker has thus seen it up, and none waits for a listener already
    closed. Then TensorFlow binds the same address."""
    host, _, port = cluster.workers[cluster.index].rpartition(":")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, int(port)))
    except OSError as exc:
        raise RunError(
            f"TF_CONFIG: worker {cluster.index} cannot listen on {host}:{port} "
            f"({exc.strerror or exc}); give it a free port of this machine"
        ) from None
    listener.listen()
    listener.settimeout(0.2)
    peers = {i for i in range(len(cluster.workers)) if i != cluster.index}
    reached: set[int] = set()
    heard: set[int] = set()
    deadline = time.monotonic() + CONNECT_SECONDS
    try:
        while reached != peers or heard != peers:
            for i in peers - reached:
                if _say_hello(cluster.workers[i], cluster.index):
                    reached.add(i)
            try:
                connection, _ = listener.accept()
                with connection:
                    connection.settimeout(2)
                    hello = connection.recv(16).decode("ascii", "replace").strip()
                if hello.isdecimal() and int(hello) in peers:
                    heard.add(int(hello))
            except OSError:  # no one this time round
                pass
            if time.monotonic() > deadline:
                missing = min((peers - reached) | (peers - heard))
                raise RunError(
                    f"TF_CONFIG: worker {missing} at {cluster.workers[missing]} did not come "
                    f"up within {CONNECT_SECONDS:g} s; start it with the same cluster (and its "
                    "own task.index), or check the address"
                )
    finally:
        listener.close()


def _say_hello(address: str, index: int) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1) as connection:
            connection.sendall(f"{index}\n".encode("ascii"))
        return True
    except OSError:
        return False


def distributed_epochs(
    model: Any,
    strategy: Any,
    source: Any,
    order: Any,
    train_origins: np.ndarray,
    batch_size: int,
    loss: str,
    epochs: range,
    callbacks: Any,
) -> int:
    """Train `epochs` with `callbacks` driven as `model.fit` drives them; the steps each
    worker ran per epoch."""
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync
    global_batch = batch_size * replicas
    steps = max(math.ceil(len(train_origins) / global_batch), 1)
    series_in = tf.constant(source.features, dtype=tf.float32)
    series_out = tf.constant(source.targets, dtype=tf.float32)
    in_offsets = tf.range(-source.input_steps + 1, 1, dtype=tf.int64)
    out_offsets = tf.range(1, source.output_steps + 1, dtype=tf.int64)
    members = source.members

    def dataset_fn(context: Any) -> Any:
        first = tf.constant(context.input_pipeline_id * batch_size, tf.int64)
        size, stride = tf.constant(batch_size, tf.int64), tf.constant(global_batch, tf.int64)

        def batch(step: Any) -> Any:
            start = step * stride + first
            return order.variable[start : start + size]  # this worker's part of the step

        def gather(batch_origins: Any) -> tuple[Any, Any]:
            x = tf.gather(series_in, batch_origins[:, None] + in_offsets)
            y = tf.gather(series_out, batch_origins[:, None] + out_offsets)
            return x, (y[:, None] if members > 1 else y)

        return tf.data.Dataset.range(steps).map(batch).map(gather)

    per_window = _per_window_loss(loss)
    optimizer = model.optimizer

    @tf.function
    def step(iterator: Any) -> Any:
        def replica(x: Any, y: Any) -> Any:
            count = tf.cast(tf.shape(x)[0], tf.float32)
            total = tf.distribute.get_replica_context().all_reduce("SUM", count)
            with tf.GradientTape() as tape:
                predicted = model(x, training=True)
                value = tf.math.divide_no_nan(tf.reduce_sum(per_window(y, predicted)), total)
            grads = tape.gradient(value, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return value

        x, y = next(iterator)
        return strategy.reduce("SUM", strategy.run(replica, args=(x, y)), axis=None)

    for epoch in epochs:
        callbacks.on_epoch_begin(epoch)
        iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
        total = 0.0
        for _ in range(steps):
            try:
                total += float(step(iterator))
            except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as exc:
                # stopped here too (Ctrl-C to every worker): the others went first, and this
                # one's collective failed before its own stop was raised; the stop it is
                raise_if_stop_requested()
                raise RunError(
                    f"training.distribute: multi_worker: a worker stopped answering "
                    f"({type(exc).__name__}); start every worker again (with --resume to "
                    "go on from the last finished epoch)"
                ) from None
            raise_if_stop_requested()
        logs = {"loss": total / steps}
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    return steps


def _per_window_loss(name: str) -> Any:
    """(y, predicted) -> the loss of each window (B,): the configured loss averaged over its
    other axes, so that their mean over a batch is the Keras loss of that batch."""
    import keras
    import tensorflow as tf

    elementwise = {
        "mse": keras.losses.mean_squared_error,
        "mae": keras.losses.mean_absolute_error,
        "huber": keras.losses.huber,
    }[name]

    def per_window(y: Any, predicted: Any) -> Any:
        values = elementwise(y, predicted)  # (B, ...) averaged over the last axis
        return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)

    return per_window
