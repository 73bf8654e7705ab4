"""Import TensorFlow once, without its C++ start-up chatter on the terminal; set up a worker
process's TensorFlow threads.

TensorFlow's native libraries print CUDA probing lines to file descriptor 2 before its own
log level applies. The CLI imports it through `import_tensorflow_quietly()`, which parks fd 2
in a temporary file during the import and device set-up, and replays it if anything fails.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile

_WORKER_THREADS: list[int] = []  # what configure_worker set in this process
_WARM: list[bool] = []  # set in a command forked by the warm server (forecast.cli.warm)


def mark_warm() -> None:
    """This process was forked from a server that imported TensorFlow and ran nothing."""
    _WARM.append(True)


def gpu_present() -> bool:
    """This machine has an NVIDIA GPU that TensorFlow would use (its device files), unless
    CUDA_VISIBLE_DEVICES hides every one; judged without importing TensorFlow."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return False
    return any(name[6:].isdecimal() for name in _listdir("/dev") if name.startswith("nvidia"))


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def forkable() -> bool:
    """Whether a worker pool may fork this process instead of spawning fresh ones: only a
    command forked by the warm server, before TensorFlow has run anything here (its runtime
    and thread pools start with the first op; a fork after that is not safe). A forked
    worker starts in ~0.05 s with everything imported, a spawned one in ~4-5 s."""
    if not _WARM or "tensorflow" not in sys.modules:
        return False
    try:
        from tensorflow.python.eager import context

        return context.context()._context_handle is None  # not initialized yet
    except Exception:  # noqa: BLE001 - a TensorFlow without that attribute: be safe
        return False


def import_tensorflow_quietly() -> None:
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as parked:
        os.dup2(parked.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # device probing prints too
        except BaseException:
            os.dup2(saved, 2)
            parked.seek(0)
            sys.stderr.write(parked.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def configure_worker(threads: int) -> None:
    """In a worker process (a local pool's or Ray's): only warnings from `forecast`,
    TensorFlow's thread pools `threads` wide, and no GPU (each of many processes would
    claim every GPU's memory; a fanned-out fit is small and runs on its CPU), set once,
    before TensorFlow runs anything."""
    if _WORKER_THREADS:
        return
    logging.getLogger("forecast").setLevel(logging.WARNING)
    import_tensorflow_quietly()
    import tensorflow as tf  # imported by import_tensorflow_quietly: no cost here

    tf.config.set_visible_devices([], "GPU")
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    _WORKER_THREADS.append(threads)
