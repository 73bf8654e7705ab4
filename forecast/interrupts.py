"""Stop requests: Ctrl-C arrives as KeyboardInterrupt; SIGTERM is turned into `Terminated`.

The CLI's SIGINT and SIGTERM handlers call `request_stop()`, which records the request and,
outside TensorFlow work, raises it at once (reading data, before training starts). Inside
`tensorflow_work()` (the fits, the test forecasts, saving models) it only records it: an
exception raised from a signal handler lands wherever Python happens to be, and inside
TensorFlow that can be a `__del__` (printed as "Exception ignored in AtomicFunction.__del__")
or a C callback (`SystemError`, exit 1). The request is raised instead where it is safe: the
training loop calls `raise_if_stop_requested()` after every batch and as each epoch begins,
`tensorflow_work()` on its way out, and train between its stages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs (exit code 143)."""


_requested: list[type[BaseException]] = []
_tensorflow_work = [0]  # depth of nested tensorflow_work() sections


def request_stop(kind: type[BaseException] = Terminated) -> None:
    """Record a stop request; raise it now unless TensorFlow work is running."""
    _requested.append(kind)
    if not _tensorflow_work[0]:
        raise kind()


def raise_if_stop_requested() -> None:
    if _requested:
        raise _requested[-1]()


@contextlib.contextmanager
def tensorflow_work() -> Iterator[None]:
    """A section in which a stop request is only recorded; raised as the section ends."""
    _tensorflow_work[0] += 1
    try:
        yield
    finally:
        _tensorflow_work[0] -= 1
    raise_if_stop_requested()


@contextlib.contextmanager
def waiting_on_others() -> Iterator[None]:
    """Inside tensorflow_work, a section that only waits for other processes (fits fanned
    out to a pool or Ray): a stop request is raised at once, so the waiting executor
    cancels the fits still queued or running."""
    raise_if_stop_requested()
    depth, _tensorflow_work[0] = _tensorflow_work[0], 0
    try:
        yield
    finally:
        _tensorflow_work[0] = depth
