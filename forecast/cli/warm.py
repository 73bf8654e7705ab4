"""A warm start for the commands that train: TensorFlow imported once, each command forked.

Importing TensorFlow takes ~3.6 s of a `forecast backtest` of a small series on a 2-core
machine, and tearing the interpreter down ~1 s more; the fits themselves ~2-3 s. A script
that runs one command per series pays that each time. So `train`, `backtest` and `tune`
(WARM_COMMANDS) run like this on Linux and macOS:

- The command connects to a local server (a Unix socket in a 0700 folder of the user's own,
  one server per Python, forecast's code and the environment variables read at import).
  The first command starts it (it imports TensorFlow, Keras, pandas and forecast's modules,
  then waits) and waits until it listens, so it costs what a command costs today.
- The server forks a child per command: a copy of itself before anything ran, the same
  state a fresh process has after its imports. The child takes the command's own stdin,
  stdout and stderr (passed over the socket), working folder, umask and environment, runs
  `forecast.cli.app.main` with its arguments, and the command exits with the child's code.
  Ctrl-C, SIGTERM and SIGHUP of the command are passed on to the child (the same clean-up
  and exit codes as in-process); if the command itself is killed, the child is sent SIGTERM.
- The server exits after FORECAST_WARM_IDLE seconds (default 300) with no command running,
  or on `python -m forecast.cli.warm stop` (every server of the user's). FORECAST_WARM=0
  turns the whole thing off: every command then runs in its own process, as before.
  Anything failing before the child starts (no server, a refused socket) runs the command
  in-process instead.

Numbers are the same as in a fresh process (the child starts from the state of a process
that has only imported modules; tests compare forecasts both ways). No pickle: the request
is JSON, the file descriptors go as SCM_RIGHTS.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WARM_COMMANDS = frozenset({"train", "backtest", "tune"})
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
IDLE_SECONDS = 300.0
START_SECONDS = 60.0  # how long a command waits for the server it started
# variables a module reads as it is imported: a server started under other values would
# not be the fresh process the command expects, so they are part of its key
IMPORT_TIME_PREFIXES = (
    "TF_", "XLA_", "CUDA", "KERAS_", "OMP_", "MKL_", "OPENBLAS", "PYTHON", "LD_", "MPL",
    "HOME", "LANG", "LC_", "FORECAST_", "RAY_", "TMPDIR", "TMP", "TEMP", "TZ", "KMP_", "GOMP_",
)  # fmt: skip
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


def enabled() -> bool:
    """On unless FORECAST_WARM=0, on a POSIX system (fork, SCM_RIGHTS) without a GPU: CUDA,
    once the server has probed it, cannot be used in a forked child."""
    if os.environ.get("FORECAST_WARM", "1").strip().lower() in ("0", "off", "false", "no"):
        return False
    if not (hasattr(socket, "send_fds") and hasattr(os, "fork")):
        return False
    from forecast.model.tf_setup import gpu_present

    return not gpu_present()


def command_of(argv: list[str]) -> str | None:
    """The command named in `argv` (the first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def wanted(argv: list[str]) -> bool:
    if in_child() or any(a in ("--help", "-h", "--version") for a in argv):
        return False
    return command_of(argv) in WARM_COMMANDS and enabled()


def folder() -> Path:
    """The user's own 0700 folder for the sockets (FORECAST_WARM_DIR, else the temp dir)."""
    place = os.environ.get("FORECAST_WARM_DIR") or os.path.join(
        tempfile.gettempdir(), f"forecast-warm-{os.getuid()}"
    )
    path = Path(place).absolute()  # the server works from /
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)  # a symlink planted by another user is refused, not followed
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or stat.S_IMODE(info.st_mode) & 0o077
    ):
        raise OSError(f"{path} is not a private folder of this user")
    return path


def code_fingerprint() -> str:
    """forecast's own files (names, sizes, modification times): an edited checkout gets a
    new server."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        info = path.stat()
        digest.update(f"{path}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def installed() -> list[str]:
    """The installed packages the server imports, by their top files' size and time: an
    upgrade (pip install -U tensorflow) gets a new server. Found without importing them."""
    import importlib.util

    out = []
    for name in ("tensorflow", "keras", "numpy", "pandas", "sklearn", "matplotlib"):
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if origin and os.path.exists(origin):
            info = os.stat(origin)
            out.append(f"{origin}:{info.st_size}:{info.st_mtime_ns}")
    return out


def key() -> str:
    env = sorted(
        (k, v)
        for k, v in os.environ.items()
        if k.startswith(IMPORT_TIME_PREFIXES) and not k.startswith("FORECAST_WARM")
    )
    material = json.dumps([sys.executable, sys.version, code_fingerprint(), installed(), env])
    return hashlib.sha256(material.encode()).hexdigest()[:20]


MAX_SOCKET_PATH = 100  # bytes; a Unix socket's address holds 104-108


def socket_path() -> Path:
    path = folder() / f"{key()}.sock"
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise OSError(f"{path}: too long for a Unix socket (set FORECAST_WARM_DIR)")
    return path


def same_user(conn: socket.socket) -> bool:
    """Whether the other end of `conn` runs as this user (Linux's SO_PEERCRED; elsewhere
    the private folder is the check)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1] == os.getuid()


# ----------------------------------------------------------------------------- messages


def send_message(conn: socket.socket, message: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
    data = json.dumps(message).encode()
    header = struct.pack("!I", len(data))
    if fds:
        socket.send_fds(conn, [header], list(fds))
        conn.sendall(data)
    else:
        conn.sendall(header + data)


def receive_message(conn: socket.socket, with_fds: bool = False) -> tuple[dict, list[int]]:
    fds: list[int] = []
    if with_fds:
        header, fds, _, _ = socket.recv_fds(conn, 4, 8)
    else:
        header = conn.recv(4, socket.MSG_WAITALL)
    while 0 < len(header) < 4:
        more = conn.recv(4 - len(header))
        if not more:
            break
        header += more
    if len(header) < 4:
        for fd in fds:
            os.close(fd)
        raise ConnectionError("the other side closed the connection")
    (size,) = struct.unpack("!I", header)
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        data += chunk
    return json.loads(data), fds


# ----------------------------------------------------------------------------- the client


def connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
        if not same_user(conn):
            raise OSError(f"{path}: served by another user")
    except OSError:
        conn.close()
        return None
    return conn


def start_server(path: Path) -> socket.socket | None:
    """Start a server for `path` in its own session, and wait until it listens (None if it
    ended first: the command then runs in-process, where the same failure shows)."""
    # started from / (the first command's folder shadows nothing), importing the forecast
    # this command runs: the installed one, or this checkout's if that is not it
    import forecast

    origin = os.path.realpath(forecast.__file__)
    here = str(Path(origin).parents[1])
    code = (
        "import os, sys, importlib.util as u; s = u.find_spec('forecast'); "
        f"o = s and s.origin and os.path.realpath(s.origin); "
        f"sys.path.insert(0, {here!r}) if o != {origin!r} else None; "
        "from forecast.cli import warm; warm.main()"
    )
    with open(path.with_suffix(".log"), "ab") as log:  # the server's own output
        server = subprocess.Popen(
            [sys.executable, "-c", code, "serve", str(path)], cwd="/",
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            close_fds=True,
        )  # fmt: skip
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and server.poll() is None:
        conn = connect(path)
        if conn is not None:
            return conn
        time.sleep(0.05)
    return None


def run_warm(argv: list[str]) -> int | None:
    """Run the command in a forked child of the warm server; its exit code, or None when
    it did not start there (the caller then runs it in this process)."""
    import fcntl  # POSIX, like fork: enabled() said both are here

    try:
        path = socket_path()
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # commands started at once start one server
            conn = connect(path) or start_server(path)
        if conn is None:
            return None
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; no run directory was written\n")
        return 130
    except OSError:
        return None
    try:
        ignored = [s for s in FORWARDED if signal.getsignal(s) == signal.SIG_IGN]  # nohup
        request = {
            "argv": argv,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "umask": current_umask(),
            "ignored": [int(s) for s in ignored],
            "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        }
        send_message(conn, request, (0, 1, 2))
        conn.settimeout(START_SECONDS)  # a server that takes the request answers at once
        started, _ = receive_message(conn)
        conn.settimeout(None)
    except (OSError, ValueError, ConnectionError):
        return None
    except KeyboardInterrupt:  # the child, if forked, sees this end close and stops
        sys.stderr.write("interrupted; no run directory was written\n")
        return 130
    child = int(started["pid"])

    def forward(signum: int, frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in FORWARDED:
        if signum not in ignored:  # ignored stays ignored, here and in the child
            signal.signal(signum, forward)
    try:
        ended, _ = receive_message(conn)  # from the child as it ends, or from the server
        return int(ended["exit"])
    except (OSError, ValueError, ConnectionError, KeyError):
        # the child ended without a word and the server is gone (killed by a signal?)
        sys.stderr.write("error: the command's process ended without an exit code\n")
        return 1


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------- the server


def serve(path: Path, idle: float) -> None:
    # `python -c` put the working folder (/) on sys.path as ""; the `forecast` script puts
    # its own folder there instead: so do the commands forked from here
    if "" in sys.path:
        sys.path[sys.path.index("")] = str(Path(sys.executable).parent)
    os.chdir("/")  # (started there) each child goes to its command's folder
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
    except (OSError, ValueError, ConnectionError):
        conn.close()
        return "bad"
    conn.settimeout(None)
    if not isinstance(request, dict) or not same_user(conn):
        for fd in fds:
            os.close(fd)
        conn.close()
        return "bad"
    if request.get("stop"):
        for fd in fds:
            os.close(fd)
        conn.close()
        return "stop"
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        conn.close()
        return "bad"
    try:
        pid = os.fork()
    except OSError:  # no memory or processes left: the command runs in-process
        for fd in fds:
            os.close(fd)
        conn.close()
        return "bad"
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


_CHILD: list[bool] = []
_ENDING: list[bool] = []  # set as the child reports its exit code


def in_child() -> bool:
    """Whether this process is a command forked by the warm server (it ends in run_child)."""
    return bool(_CHILD)


def run_child(request: dict, fds: list[int], conn: socket.socket, added: dict[str, str]) -> None:
    _CHILD.append(True)
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
        _ENDING.append(True)  # the command closing its end from here on is no stop request
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
        if not _ENDING:  # the command went away first: it was killed
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="forecast-warm-client", daemon=True).start()


def observed() -> bool:
    """A profiler, debugger or coverage tool is attached (it reports as Python ends)."""
    if sys.getprofile() or sys.gettrace():
        return True
    monitoring = getattr(sys, "monitoring", None)  # Python 3.12+: cProfile, coverage
    return monitoring is not None and any(monitoring.get_tool(tool) for tool in range(6))


def leave(code: int) -> None:
    """End this process now: atexit's functions run and the streams are flushed, but not the
    interpreter's ~1 s tear-down of TensorFlow's modules."""
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(code)


def stop() -> int:
    """Ask every warm server of this user (in this FORECAST_WARM_DIR) to exit; how many
    were running."""
    stopped = 0
    for path in sorted(folder().glob("*.sock")):
        conn = connect(path)
        if conn is None:
            with contextlib.suppress(OSError):
                path.unlink()  # left by a server that was killed
                path.with_suffix(".lock").unlink()
            continue
        with conn:
            send_message(conn, {"stop": True})
        stopped += 1
    return stopped


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"] and len(argv) == 2:
        idle = float(os.environ.get("FORECAST_WARM_IDLE", IDLE_SECONDS))
        serve(Path(argv[1]), idle)
    elif argv == ["stop"]:
        print(f"stopped {stop()} warm server(s)")
    else:
        raise SystemExit("usage: python -m forecast.cli.warm stop")


if __name__ == "__main__":
    # run as forecast.cli.warm, not as __main__: the child's state must be the module the
    # CLI imports
    from forecast.cli import warm

    warm.main(sys.argv[1:])
