"""`forecast serve --workers N`: N processes answering on one listening socket.

The command's own process is the first: it loaded the run (so a bad run is one line,
once) and bound the port. It starts N-1 more with

    python -m forecast.workflows.serveworkers RUN_DIR FD

each in its own session (Ctrl-C in the terminal reaches the first process alone). A
worker loads the run itself (TensorFlow cannot be shared across a fork), then accepts on
the inherited socket FD: the kernel hands each new connection to one of the processes
waiting on it, so a busy one takes fewer. Each forecasts with its own model; every process
answers with the same numbers (the same files, loaded the same way).

Stopping: the first process forwards Ctrl-C or SIGTERM to the workers as it gets it (each
then gives its running requests SHUTDOWN_GRACE seconds, as it does), then waits for them.
A worker whose first process is gone (its stdin pipe closes: even after a SIGKILL) stops
itself. A worker that dies while the server runs is said once on stderr; the others go on.
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
from pathlib import Path

log = logging.getLogger("forecast")


class Workers:
    """The extra worker processes of one server."""

    def __init__(self, run_dir: Path, count: int, sock: socket.socket) -> None:
        self.stopping = False
        self.processes: list[subprocess.Popen] = []
        fd = sock.fileno()
        for _ in range(count):
            process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(run_dir.resolve()), str(fd)],
                stdin=subprocess.PIPE,  # closed when this process ends, however it ends
                pass_fds=(fd,),
                start_new_session=True,
            )
            self.processes.append(process)
            threading.Thread(target=self._watch, args=(process,), daemon=True).start()

    def _watch(self, process: subprocess.Popen) -> None:
        code = process.wait()
        if not self.stopping:
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
        """Stop every worker: a stop request, `grace` seconds to finish, then SIGKILL."""
        self.signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdin is not None:
                process.stdin.close()


def _stop_when_orphaned() -> None:
    """SIGTERM to this process when its stdin (the first process' pipe) closes."""

    def wait_for_eof() -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdin.buffer.read()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait_for_eof, daemon=True).start()


def main(argv: list[str]) -> int:
    """A worker: load the run at argv[0], answer on the listening socket fd argv[1] until
    SIGTERM; the exit code."""
    from forecast.errors import ForecastError

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING)
    log.propagate = False
    _stop_when_orphaned()
    try:
        run_dir, fd = Path(argv[0]), int(argv[1])
        sock = socket.socket(fileno=fd)
        from forecast.workflows.predictor import Predictor
        from forecast.workflows.serve import answer_on

        predictor = Predictor(run_dir)
        answer_on(predictor, sock)
    except ForecastError as exc:  # the run changed under the server since it started
        print(f"forecast serve worker {os.getpid()}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a SIGINT sent to it before its server ran
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
