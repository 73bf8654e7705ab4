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


def receive_message(conn: socket.socket, with_fds: bool = False) -> tuple[Any, list[int]]:
    """A message and, `with_fds`, the descriptors that came with its first bytes."""
    fds: list[int] = []
    header = b""
    if with_fds:
        header, fds, _, _ = socket.recv_fds(conn, 4, 8)
    try:
        header = read_exactly(conn, 4, header)
        (size,) = struct.unpack("!I", header)
        return json.loads(read_exactly(conn, size)), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def read_exactly(conn: socket.socket, size: int, data: bytes = b"") -> bytes:
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        data += chunk
    return data


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

    from forecast.cli.errors import NO_RUN_WRITTEN

    try:
        path = socket_path()
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # commands started at once start one server
            conn = connect(path) or start_server(path)
        if conn is None:
            return None
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
    except (OSError, ValueError):  # (ConnectionError is an OSError)
        return None
    except KeyboardInterrupt:  # a child, if forked already, sees this end close and stops
        sys.stderr.write(f"interrupted; {NO_RUN_WRITTEN}\n")
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
    except (OSError, ValueError, KeyError):
        # the child ended without a word and the server is gone (killed by a signal?)
        sys.stderr.write("error: the command's process ended without an exit code\n")
        return 1


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_CHILD: list[bool] = []
_ENDING: list[bool] = []  # set as the child reports its exit code


def in_child() -> bool:
    """Whether this process is a command forked by the warm server (it ends in run_child)."""
    return bool(_CHILD)


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
        from forecast.cli import warmserver

        idle = float(os.environ.get("FORECAST_WARM_IDLE", IDLE_SECONDS))
        warmserver.serve(Path(argv[1]), idle)
    elif argv == ["stop"]:
        print(f"stopped {stop()} warm server(s)")
    else:
        raise SystemExit("usage: python -m forecast.cli.warm stop")


if __name__ == "__main__":  # python -m forecast.cli.warm stop
    main()
