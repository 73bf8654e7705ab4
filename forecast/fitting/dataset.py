"""Training windows as a tf.data pipeline: gathered per batch from the scaled series by
origin (memory flat in the number of windows), shuffled in a seeded order per epoch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


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
