"""The warm server (forecast/cli/warm.py says what the warm start is): it imports what a
command needs once, listens on its Unix socket, and forks a child per command that becomes
that command (its streams, folder, umask, environment, ignored signals, CPU affinity); it
reports each child's exit code and exits when idle, stopped or replaced."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path

from forecast.cli import warm
from forecast.cli.warm import FORWARDED, leave, receive_message, same_user, send_message

PRELOAD = (
    "forecast.cli.app",
    "forecast.api",
    "forecast.workflows.trainrun",
    "forecast.workflows.backtest",
    "forecast.workflows.tune",
    "forecast.fitting.fit",
    "forecast.model.build",
    "forecast.forecasting.forecaster",
    "forecast.plots.common",
    "keras",
    "pandas",
    "sklearn.preprocessing",
)


def serve(path: Path, idle: float) -> None:
    # `python -c` put the working folder (/) on sys.path as ""; the `forecast` script puts
    # its own folder there instead: so do the commands forked from here
    if "" in sys.path:
        sys.path[sys.path.index("")] = str(Path(sys.executable).parent)
    before = dict(os.environ)
    from forecast.model.tf_setup import import_tensorflow_quietly

    import_tensorflow_quietly()
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    # what the imports set (TF_CPP_MIN_LOG_LEVEL, say): a fresh process has it too
    added = {k: v for k, v in os.environ.items() if before.get(k) != v}
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    listener.bind(str(temporary))
    listener.listen(16)
    os.replace(temporary, path)  # ready: a client's connect succeeds from here on
    mine = os.stat(path).st_ino
    parent = Path(f"/proc/{os.getppid()}/cmdline")  # to its log: the command that started it
    by = parent.read_text("utf-8", "replace").replace("\0", " ") if parent.exists() else ""
    print(f"forecast warm server {os.getpid()} ready at {path}; started by {by}", flush=True)
    children: dict[int, socket.socket] = {}
    last, stopping = time.monotonic(), False
    try:
        while True:
            ready, _, _ = select.select([] if stopping else [listener], [], [], 0.2)
            if ready:
                try:
                    conn, _ = listener.accept()
                except OSError:  # out of descriptors, say: the command runs in-process
                    continue
                if accept(conn, listener, children, added) == "stop":
                    stopping = True  # no new commands; the running ones still end here
                    release(path, mine)
                    listener.close()  # commands queued behind the stop run in-process
            reap(children)
            if children:
                last = time.monotonic()
            elif stopping or time.monotonic() - last >= idle or not same_file(path, mine):
                break  # (a name replaced or removed: a newer server owns it)
    finally:
        release(path, mine)
        listener.close()


def release(path: Path, inode: int) -> None:
    """Remove the socket's name if it is still this server's: later commands start anew."""
    with contextlib.suppress(OSError):
        if same_file(path, inode):
            path.unlink()


def same_file(path: Path, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def accept(
    conn: socket.socket,
    listener: socket.socket,
    children: dict[int, socket.socket],
    added: dict[str, str],
) -> str:
    conn.settimeout(5.0)  # a command sends its request at once; nobody stalls the server
    try:
        request, fds = receive_message(conn, with_fds=True)
    except (OSError, ValueError):
        conn.close()
        return "bad"
    conn.settimeout(None)
    if not isinstance(request, dict) or not same_user(conn):
        return refuse(conn, fds, "bad")
    if request.get("stop"):
        return refuse(conn, fds, "stop")
    if len(fds) != 3:
        return refuse(conn, fds, "bad")
    try:
        pid = os.fork()
    except OSError:  # no memory or processes left: the command runs in-process
        return refuse(conn, fds, "bad")
    if pid == 0:  # the child: becomes the command
        listener.close()
        for other in children.values():
            other.close()
        run_child(request, fds, conn, added)  # never returns
    for fd in fds:
        os.close(fd)
    try:
        send_message(conn, {"pid": pid})
    except OSError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    children[pid] = conn
    return "forked"


def refuse(conn: socket.socket, fds: list[int], answer: str) -> str:
    """Close a request that starts no child (its command then runs in-process)."""
    for fd in fds:
        os.close(fd)
    conn.close()
    return answer


def reap(children: dict[int, socket.socket]) -> None:
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done:
            continue
        code = os.waitstatus_to_exitcode(status)
        conn = children.pop(pid)
        with contextlib.suppress(OSError):
            send_message(conn, {"exit": code if code >= 0 else 128 - code})
        conn.close()


def run_child(request: dict, fds: list[int], conn: socket.socket, added: dict[str, str]) -> None:
    warm._CHILD.append(True)
    from forecast.model.tf_setup import mark_warm

    mark_warm()  # a worker pool of this command may fork it (fitting.executor)
    code = 1
    try:
        os.setpgid(0, 0)  # signals meant for the server's group do not reach the command
        for signum in (*FORWARDED, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        for signum in request.get("ignored", []):  # as the command had them (nohup)
            signal.signal(signum, signal.SIG_IGN)
        if request.get("cpus") and hasattr(os, "sched_setaffinity"):  # taskset
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, request["cpus"])
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.umask(int(request["umask"]))
        os.environ.clear()
        os.environ.update(request["env"])
        for name, value in added.items():
            os.environ.setdefault(name, value)
        reopen_standard_streams()
        watch_client(conn)
        sys.argv = ["forecast", *request["argv"]]
        from forecast.cli.app import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - a bug here must still end the child
        import traceback

        traceback.print_exc()
    finally:
        warm._ENDING.append(True)  # the command closing its end from here on is no stop request
        with contextlib.suppress(BaseException):  # the command hears it even if the server
            send_message(conn, {"exit": code})  # is gone; the server's own word comes second
        leave(code)


def reopen_standard_streams() -> None:
    """sys.stdin/stdout/stderr over the command's own descriptors, buffered as Python does
    for them (line-buffered on a terminal)."""
    import io

    encoding = os.environ.get("PYTHONIOENCODING", "").split(":")[0] or None
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))  # python -u
    for fd, name, mode in ((0, "stdin", "rb"), (1, "stdout", "wb"), (2, "stderr", "wb")):
        raw = io.FileIO(fd, mode, closefd=False)
        buffered = io.BufferedReader(raw) if mode == "rb" else io.BufferedWriter(raw)
        stream = io.TextIOWrapper(
            buffered, encoding=encoding, errors="backslashreplace" if fd == 2 else None,
            line_buffering=fd != 0 and (os.isatty(fd) or fd == 2),
            write_through=fd != 0 and unbuffered,
        )  # fmt: skip
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def watch_client(conn: socket.socket) -> None:
    """If the command that asked for this child is killed (its end of the socket closes
    before the child ends), stop the child as SIGTERM would."""
    import threading

    def watch() -> None:
        try:
            while conn.recv(64):
                pass
        except OSError:
            pass
        if not warm._ENDING:  # the command went away first: it was killed
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="forecast-warm-client", daemon=True).start()
