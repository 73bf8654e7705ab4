"""Import TensorFlow once, without its C++ start-up chatter on the terminal.

TensorFlow's native libraries print CUDA probing lines to file descriptor 2 before its own
log level applies. The CLI imports it through `import_tensorflow_quietly()`, which parks fd 2
in a temporary file during the import and device set-up, and replays it if anything fails.
"""

from __future__ import annotations

import os
import sys
import tempfile


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
