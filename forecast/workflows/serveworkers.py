"""`forecast serve --workers N`: N processes answering on one listening socket.

The command's own process is the first: it loaded the run (so a bad run is one line,
once) and bound the port. It starts N-1 more with

    python -m forecast.workflows.serveworkers RUN_DIR FD SHA256

each in its own session (Ctrl-C in the terminal reaches the first process alone). A
worker loads the run itself (TensorFlow cannot be shared across a fork), checks that its
model.keras is the one the first process loaded (SHA256), then accepts on the inherited
socket FD: the kernel hands each new connection to one of the processes waiting on it.
Every process forecasts with the same files, loaded the same way: the same numbers.

Stopping: the first process forwards Ctrl-C or SIGTERM to the workers as it gets it (each
then gives its running requests SHUTDOWN_GRACE seconds and answers the rest 503, as the
first does), waits for them together, and kills any still running after that. A worker
whose first process is gone (its stdin pipe closes: even after a SIGKILL) stops itself. A
worker that cannot serve says why in one line; one that dies otherwise is said by the
first process; the others go on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("forecast")
CANNOT_SERVE = 2  # a worker's exit code after it said why (a changed or broken run)


class Workers:
    """The extra worker processes of one server."""

    def __init__(self, run_dir: Path, count: int, sock: socket.socket, sha256: str) -> None:
        self.stopping = False
        self.processes: list[subprocess.Popen] = []
        fd = sock.fileno()
        argv = [sys.executable, "-m", __name__, str(run_dir.resolve()), str(fd), sha256]
        try:
            for _ in range(count):
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,  # closed when this process ends, however it ends
                    pass_fds=(fd,),
                    start_new_session=True,
                )
                self.processes.append(process)
                threading.Thread(target=self._watch, args=(process,), daemon=True).start()
        except BaseException:
            self.stop(grace=0)
            raise

    def _watch(self, process: subprocess.Popen) -> None:
        code = process.wait()
        if self.stopping or code == CANNOT_SERVE:  # a worker that cannot serve said why
            return
        how = f"was killed (signal {-code})" if code < 0 else f"stopped (exit code {code})"
        log.warning("serve: worker process %d %s; the others go on serving", process.pid, how)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Pass a stop request on to every worker still running."""
        self.stopping = True
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(sig)

    def stop(self, grace: float) -> None:
        """Stop every worker: a stop request, `grace` seconds for all of them together,
        then SIGKILL for any still running (also when this wait is interrupted)."""
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        try:
            for process in self.processes:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=max(deadline - time.monotonic(), 0))
        finally:
            for process in self.processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                if process.stdin is not None:
                    process.stdin.close()


class _Stops:
    """A worker's SIGTERM and SIGINT: while it loads, they end it at once (as by default);
    from the moment it settles, they are only noted (uvicorn takes them over while it
    serves, and raises them again when it has stopped: noted then, so the cancelled
    requests still get their 503 before the process ends)."""

    def __init__(self) -> None:
        self.loading = True
        self.noted: list[int] = []
        signal.signal(signal.SIGTERM, self.handle)
        signal.signal(signal.SIGINT, self.handle)

    def handle(self, sig: int, frame: Any) -> None:
        self.noted.append(sig)
        if self.loading:
            raise SystemExit(128 + sig)


def _stop_when_orphaned() -> None:
    """SIGTERM to this process when its stdin (the first process' pipe) closes. os.read,
    not sys.stdin: a thread blocked in a buffered read would abort the interpreter's exit."""

    def wait_for_eof() -> None:
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait_for_eof, daemon=True).start()


def main(argv: list[str]) -> int:
    """A worker: load the run at argv[0], check its model's SHA256 against argv[2], answer
    on the listening socket fd argv[1] until a stop request; the exit code."""
    stops = _Stops()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING)
    log.propagate = False
    _stop_when_orphaned()
    from forecast.errors import ForecastError

    run_dir, fd, sha256 = Path(argv[0]), int(argv[1]), argv[2]
    sock = socket.socket(fileno=fd)
    try:
        from forecast.workflows.predictor import Predictor
        from forecast.workflows.serve import answer_on, freeze_loaded

        predictor = Predictor(run_dir)
        if predictor.model_sha256 != sha256:
            log.warning(
                "serve: worker process %d: %s changed since the server started; it stops, "
                "the others go on serving",
                os.getpid(),
                predictor.model_path,
            )
            return CANNOT_SERVE
        predictor.forecaster  # noqa: B018 - the model, loaded before the first request
        stops.loading = False
        freeze_loaded()
        if stops.noted:  # a stop request while it settled
            return 128 + stops.noted[0]
        answer_on(predictor, sock, stopped=lambda: bool(stops.noted))
    except ForecastError as exc:  # the run changed or broke under the server since it started
        log.warning(
            "serve: worker process %d: %s; it stops, the others go on serving", os.getpid(), exc
        )
        return CANNOT_SERVE
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
