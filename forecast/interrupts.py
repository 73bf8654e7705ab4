"""Stop requests: Ctrl-C arrives as KeyboardInterrupt; SIGTERM is turned into `Terminated`.

The CLI's SIGTERM and SIGINT handlers call `request_stop()`, which raises `Terminated` (or
KeyboardInterrupt) at once. An
exception raised while TensorFlow runs C++ code can be lost, so the request is also kept
here, and the training loop calls `raise_if_stop_requested()` after every batch.
"""

from __future__ import annotations


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs (exit code 143)."""


_requested: list[type[BaseException]] = []


def request_stop(kind: type[BaseException] = Terminated) -> None:
    _requested.append(kind)
    raise kind()


def raise_if_stop_requested() -> None:
    if _requested:
        raise _requested[-1]()
