"""Running `forecast serve`: the listening socket, uvicorn, stop requests, and with
`--workers N` the N-1 extra processes (the app itself, what a request gets, is
forecast.workflows.serve).

With `--workers N`, N processes answer on one listening socket. The command's own process
is the first: it loaded the run (so a bad run is one line, once) and bound the port. It
starts N-1 more with

    python -m forecast.workflows.server RUN_DIR FD SHA256 RUNTIME

each in its own session (Ctrl-C in the terminal reaches the first process alone). A
worker loads the run itself (TensorFlow cannot be shared across a fork), checks that its
model.keras is the one the first process loaded (SHA256), loads the network the first
process serves (RUNTIME `onnx`: the ONNX bytes it sends on the worker's stdin, run by
onnxruntime, ~0.16 GB and no TensorFlow; `tensorflow`: model.keras, ~0.9 GB), then accepts
on the inherited socket FD: the kernel hands each new connection to one of the processes
waiting on it. Every process forecasts with the same network: the same numbers.

Stopping: the first process forwards Ctrl-C or SIGTERM to the workers as it gets it (each
then gives its running requests SHUTDOWN_GRACE seconds and answers the rest 503, as the
first does), waits for them together, and kills any still running after that. A worker
whose first process is gone (its stdin pipe closes: even after a SIGKILL) stops itself. A
worker that cannot serve says why in one line; one that dies otherwise is said by the
first process; the others go on.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn  # the serve extra (api.serve checks it first, with a one-line error)
from uvicorn.protocols.http.h11_impl import H11Protocol

from forecast.errors import ConfigError
from forecast.interrupts import raise_if_stop_requested, tensorflow_work
from forecast.workflows.serve import KEEP_ALIVE, SHUTDOWN_GRACE, body_timeout, create_app

if TYPE_CHECKING:
    from forecast.workflows.predictor import Predictor

log = logging.getLogger("forecast")
LISTEN_BACKLOG = 2048  # uvicorn's own
CANNOT_SERVE = 2  # a worker's exit code after it said why (a changed or broken run)
ONNX = "onnx"  # a worker's runtime when the first process serves ONNX (it sends the bytes)


SERVE_WORKERS_AUTO_MAX = 4  # --workers auto: processes at most


def serve_workers(portable: bool, cores: int) -> int:
    """`serve --workers auto` (the CLI's default): one process per core, at most
    SERVE_WORKERS_AUTO_MAX, where the model is served as ONNX (~0.16 GB and ~1 s to start
    each; one process runs Python one request at a time, so on 2 cores 2 processes
    answered 50 clients ~1.75x as fast, p99 121-138 ms); one process with Keras, whose
    every process would hold TensorFlow (~0.9 GB) and take seconds to start."""
    return max(1, min(cores, SERVE_WORKERS_AUTO_MAX)) if portable else 1


def headers_deadline_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol, but a connection whose request headers are not all in
    `seconds` after it opened (or after the previous response) is closed. uvicorn times out
    only idle keep-alive connections, so a client that connects and sends nothing (or half
    a header) would hold its socket forever; a stalled body is the app's to answer (408)."""

    class HeadersDeadline(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.headers_due = self.loop.call_later(seconds, self.drop_without_headers)

        def drop_without_headers(self) -> None:
            idle = self.cycle is None or self.cycle.response_complete  # no request under way
            if idle and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self) -> None:  # the next request's headers: a new deadline
            super().on_response_complete()
            self.headers_due.cancel()
            self.headers_due = self.loop.call_later(seconds, self.drop_without_headers)

        def connection_lost(self, exc: Exception | None) -> None:
            self.headers_due.cancel()
            super().connection_lost(exc)

    return HeadersDeadline


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) as uvicorn's Config.bind_socket binds it, for
    `Server.run(sockets=...)`: the one bind, so no other process can take the port between
    a check and the server's start. A bind error is one line (uvicorn would log it and exit
    1): the port taken, no permission for it, a host that is no address here."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # connections wait in the queue from now, not refused until uvicorn has started
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        why = exc.strerror or str(exc)
        raise ConfigError(f"--host {host} --port {port}: cannot listen ({why})") from None
    return sock


def serve(predictor: Predictor, host: str, port: int, workers: int = 1) -> None:
    """Run the server until Ctrl-C or SIGTERM, in `workers` processes (this one and
    workers-1 more) on one listening socket."""
    seconds = body_timeout()  # a bad FORECAST_SERVE_BODY_TIMEOUT: one line, before it starts
    with listening_socket(host, port) as sock:  # closed here too if uvicorn never starts
        with tensorflow_work():  # a stop request meanwhile is noted, and raised just below
            freeze_loaded()
        others = None
        try:
            if workers > 1:  # model.keras's SHA-256: what the workers must load too
                others = Workers(predictor, workers - 1, sock)
            processes = f", {workers} processes" if workers > 1 else ""
            logging.getLogger("forecast").info(
                "serving %s on http://%s:%d%s (Ctrl-C stops)",
                predictor.run.name,
                host,
                sock.getsockname()[1],  # the port given, or the one the system chose for 0
                processes,
            )
            answer_on(predictor, sock, seconds, others)
        finally:
            if others is not None:
                others.stop(grace=SHUTDOWN_GRACE + 5)
    # uvicorn stops on Ctrl-C or SIGTERM and passes the signal on to our handlers, which
    # note it: exit 130 or 143 as every other command does
    raise_if_stop_requested()


def freeze_loaded() -> None:
    """The loaded model's Python objects out of the garbage collector's reach: its full
    collections no longer walk TensorFlow's and Keras' heap, which held requests for up to
    ~0.2 s. (A signal handler that raises during the collection is lost in a collector
    callback: the callers note stop requests meanwhile.)"""
    gc.collect()
    gc.freeze()


def answer_on(
    predictor: Predictor,
    sock: socket.socket,
    seconds: float,
    others: Workers | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> None:
    """Answer requests on the listening `sock` until Ctrl-C or SIGTERM, a body due within
    `seconds`; a stop request is passed on to `others` as it comes. `stopped()`: a stop
    request came before the server took the signals over (it then stops at once)."""
    config = uvicorn.Config(
        create_app(predictor, body_seconds=seconds),
        log_level="warning",
        timeout_keep_alive=KEEP_ALIVE,
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
        http=headers_deadline_protocol(seconds),
    )
    # the cancelled requests got their 503 and one line from us; not uvicorn's ERROR too
    logging.getLogger("uvicorn.error").addFilter(
        lambda record: "graceful shutdown exceeded" not in record.getMessage()
    )
    # a 500's traceback, whole, on stderr (the CLI's own handler prints messages only)
    traces = logging.StreamHandler(sys.stderr)
    traces.setFormatter(logging.Formatter("%(message)s"))
    requests_log = logging.getLogger("forecast.serve")
    requests_log.handlers[:] = [traces]
    requests_log.propagate = False

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if stopped():
                self.should_exit = True

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.should_exit:  # a second Ctrl-C: already stopping, within SHUTDOWN_GRACE
                return  # (uvicorn's forced exit left its lifespan task to log a traceback)
            if others is not None:  # the workers start their grace period with ours
                others.signal(signal.SIGTERM)
            super().handle_exit(sig, frame)

    # as uvicorn.run: the stop request that ended it is noted, and raised by serve()
    with contextlib.suppress(KeyboardInterrupt):
        Server(config).run(sockets=[sock])


class Workers:
    """The extra worker processes of one server."""

    def __init__(self, predictor: Predictor, count: int, sock: socket.socket) -> None:
        self.stopping = False
        self.processes: list[subprocess.Popen] = []
        fd = sock.fileno()
        run_dir, sha256 = predictor.run.resolve(), predictor.model_sha256
        onnx = predictor.serve_bytes  # the ONNX model this process serves, or None: Keras
        runtime = "tensorflow" if onnx is None else ONNX
        argv = [sys.executable, "-m", __name__, str(run_dir), str(fd), sha256, runtime]
        try:
            for _ in range(count):
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,  # closed when this process ends, however it ends
                    bufsize=0,  # the ONNX bytes go straight to the pipe (send)
                    pass_fds=(fd,),
                    start_new_session=True,
                )
                self.processes.append(process)
                threading.Thread(target=self._watch, args=(process,), daemon=True).start()
                if onnx is not None:  # on its stdin: the worker reads it as it starts
                    threading.Thread(target=send, args=(process.stdin, onnx), daemon=True).start()
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
                if process.stdin is not None:  # what a dead worker left unread: dropped
                    with contextlib.suppress(OSError):
                        process.stdin.close()


def send(stream: Any, data: bytes) -> None:
    """`data` to a worker's stdin `stream` (unbuffered: nothing is left to flush when the
    worker is gone), its length first (8 bytes, big-endian); nothing if the worker is gone
    or stopping meanwhile."""
    view = memoryview(len(data).to_bytes(8, "big") + data)
    with contextlib.suppress(OSError, ValueError):  # a closed pipe, or closed here by stop()
        while view:
            view = view[stream.write(view) :]


def received(fd: int = 0) -> bytes | None:
    """What `send` wrote to `fd` (a worker's stdin), or None if it closed before all of it
    came (the first process is gone)."""

    def read(n: int) -> bytes | None:
        chunks = []
        while n:
            chunk = os.read(fd, min(n, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    size = read(8)
    return None if size is None else read(int.from_bytes(size, "big"))


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
    """A worker: load the run at argv[0], check its model's SHA256 against argv[2], load
    the model as argv[3] says (`onnx`: the ONNX bytes the first process sends on stdin;
    else Keras), answer on the listening socket fd argv[1] until a stop request; the exit
    code."""
    stops = _Stops()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING)
    log.propagate = False
    run_dir, fd, sha256, runtime = Path(argv[0]), int(argv[1]), argv[2], argv[3]
    onnx = received() if runtime == ONNX else None  # before stdin only watches for its end
    if runtime == ONNX and onnx is None:  # the first process ended before it was sent
        return CANNOT_SERVE
    _stop_when_orphaned()
    from forecast.errors import ForecastError

    sock = socket.socket(fileno=fd)
    try:
        from forecast.workflows.predictor import Predictor

        predictor = Predictor(run_dir, runtime="auto" if runtime == ONNX else "tensorflow")
        if predictor.model_sha256 != sha256:
            log.warning(
                "serve: worker process %d: %s changed since the server started; it stops, "
                "the others go on serving",
                os.getpid(),
                predictor.model_path,
            )
            return CANNOT_SERVE
        predictor.load_for_serving(onnx)  # the model, before the first request
        stops.loading = False
        freeze_loaded()
        if stops.noted:  # a stop request while it settled
            return 128 + stops.noted[0]
        answer_on(predictor, sock, body_timeout(), stopped=lambda: bool(stops.noted))
    except ForecastError as exc:  # the run changed or broke under the server since it started
        log.warning(
            "serve: worker process %d: %s; it stops, the others go on serving", os.getpid(), exc
        )
        return CANNOT_SERVE
    except Exception:
        # the stop request's SystemExit, raised inside an import while the worker loaded,
        # comes back as that module's error (onnxruntime's: "ImportError: initialization
        # failed"): it is the stop, not a failure
        if stops.loading and stops.noted:
            return 128 + stops.noted[0]
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
