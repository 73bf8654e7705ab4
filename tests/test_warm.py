"""The warm start (forecast/cli/warm.py): `train`, `backtest` and `tune` forked from a server
that has imported TensorFlow, with the command's own streams, folder, exit code and signals;
the same numbers as a fresh process. Real processes and a real Unix socket; every server a
test starts is stopped, and its exit checked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from forecast.cli import warm
from tests.conftest import fold_config

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or not hasattr(socket, "send_fds"), reason="fork and Unix sockets"
)


def forecast(args: list[str], cwd: Path, env: dict, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "forecast", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kwargs,
    )  # fmt: skip


def ready_lines(folder: Path) -> list[str]:
    return [
        line
        for log in folder.glob("*.log")
        for line in log.read_text().splitlines()
        if line.startswith("forecast warm server")
    ]


@pytest.fixture
def warm_env():
    """FORECAST_WARM on, its sockets in a short private folder of this test's (a Unix
    socket's path is limited to ~100 bytes); every server stopped at the end."""
    folder = Path(tempfile.mkdtemp(prefix="fw-"))
    env = {**os.environ, "FORECAST_WARM": "1", "FORECAST_WARM_DIR": str(folder)}
    yield env, folder
    stopped = subprocess.run(
        [sys.executable, "-m", "forecast.cli.warm", "stop"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while (list(folder.glob("*.sock")) or servers(folder)) and time.monotonic() < deadline:
        time.sleep(0.1)
    leftover, running = list(folder.glob("*.sock")), servers(folder)
    for pid in running:  # none should be: stop them before failing
        os.kill(pid, signal.SIGKILL)
    logs = "".join(log.read_text() for log in folder.glob("*.log"))
    shutil.rmtree(folder, ignore_errors=True)
    assert not leftover and not running, (stopped.stdout, logs)


def servers(folder: Path) -> list[int]:
    """Processes whose command line names `folder`: its servers and their children."""
    found: list[int] = []
    if not Path("/proc").is_dir():  # not Linux: nothing to look in
        return found
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                line = (entry / "cmdline").read_bytes().decode("utf-8", "replace")
            except OSError:
                continue
            if str(folder) in line:
                found.append(int(entry.name))
    return found


def test_which_commands_go_warm(monkeypatch):
    monkeypatch.setenv("FORECAST_WARM", "1")
    assert warm.wanted(["train", "c.yaml"])
    assert warm.wanted(["--debug", "backtest", "c.yaml", "--folds", "2"])
    assert warm.wanted(["tune", "c.yaml"])
    for argv in (["predict"], ["serve", "runs/x"], ["train", "--help"], ["--version"], []):
        assert not warm.wanted(argv), argv
    monkeypatch.setenv("FORECAST_WARM", "0")
    assert not warm.wanted(["train", "c.yaml"])


def test_the_key_follows_what_imports_read(monkeypatch):
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "1")
    first = warm.key()
    assert warm.key() == first
    monkeypatch.setenv("FORECAST_WARM_IDLE", "5")  # the server's own settings: same server
    assert warm.key() == first
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "2")  # read as TensorFlow is imported
    assert warm.key() != first


def test_the_socket_folder_must_be_private(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    monkeypatch.setenv("FORECAST_WARM_DIR", str(shared))
    with pytest.raises(OSError, match="not a private folder"):
        warm.folder()


@pytest.mark.slow
def test_backtests_forked_from_one_server_give_the_fresh_process_numbers(tmp_path, warm_env):
    env, folder = warm_env
    # every fold a task of its own (fold_start: scratch), so that one config's 2 folds can go
    # to a pool of 2 (by default they continue one from another, in turn)
    config = fold_config(tmp_path, training={"epochs": 1, "fold_start": "scratch"})
    cold = forecast(["backtest", config.name, "--folds", "2", "--runs-dir", "cold"],
                    tmp_path, {**env, "FORECAST_WARM": "0"})  # fmt: skip
    assert cold.returncode == 0, cold.stderr
    assert not ready_lines(folder)  # FORECAST_WARM=0: no server
    runs = []
    for attempt in range(2):
        done = forecast(
            ["backtest", config.name, "--folds", "2", "--runs-dir", f"warm{attempt}"],
            tmp_path, env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        runs.append(tmp_path / done.stdout.strip().splitlines()[-1])
        assert "fold 2/2" in done.stderr  # the child wrote to this command's own stderr
    assert len(ready_lines(folder)) == 1  # the second command reused the first's server
    # folds in 2 processes forked from the warm command (not spawned): the same numbers
    done = forecast(["backtest", config.name, "--folds", "2", "--workers", "2",
                     "--runs-dir", "forked"], tmp_path, env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    runs.append(tmp_path / done.stdout.strip().splitlines()[-1])
    fanout = json.loads(runs[-1].read_text())["fanout"]
    assert (fanout["engine"], fanout["workers"], fanout["start"]) == ("local processes", 2, "fork")
    expected = json.loads((tmp_path / cold.stdout.strip().splitlines()[-1]).read_text())
    for run in runs:
        got = json.loads(run.read_text())
        assert [f["model"] for f in got["folds"]] == [f["model"] for f in expected["folds"]]
        assert got["mean"] == expected["mean"]


@pytest.mark.slow
def test_a_user_error_keeps_its_line_and_exit_code(tmp_path, warm_env):
    env, folder = warm_env
    config = fold_config(tmp_path)
    config.write_text(config.read_text() + "\nbogus_section: 1\n")
    done = forecast(["backtest", config.name], tmp_path, env)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "bogus_section" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(ready_lines(folder)) == 1


@pytest.mark.slow
def test_ctrl_c_reaches_the_forked_training_and_the_server_stays(long_config, warm_env):
    env, folder = warm_env
    process = train_until(long_config, env, "epoch 2/")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    (partial,) = (long_config.parent / "runs").glob(".long-*.partial")
    assert (partial / "backup").is_dir()
    (path,) = folder.glob("*.sock")
    still = warm.connect(path)
    assert still is not None  # still serving
    still.close()


@pytest.mark.slow
def test_an_idle_server_exits_by_itself(tmp_path, warm_env):
    env, folder = warm_env
    config = fold_config(tmp_path)
    done = forecast(["backtest", config.name, "--folds", "1"], tmp_path,
                    {**env, "FORECAST_WARM_IDLE": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 30
    while list(folder.glob("*.sock")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list(folder.glob("*.sock"))
    assert len(ready_lines(folder)) == 1


@pytest.mark.slow
def test_two_first_commands_at_once_both_run(tmp_path, warm_env):
    env, folder = warm_env
    config = fold_config(tmp_path)
    both = [
        subprocess.Popen(
            [sys.executable, "-m", "forecast", "backtest", config.name, "--runs-dir", f"r{i}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in both]
    assert [p.returncode for p in both] == [0, 0], [err for _, err in outputs]
    reports = [
        json.loads((tmp_path / out.strip().splitlines()[-1]).read_text()) for out, _ in outputs
    ]
    assert reports[0]["mean"] == reports[1]["mean"]
    assert len(ready_lines(folder)) == 1  # the second waited for the server the first started
    assert len(list(folder.glob("*.sock"))) == 1


@pytest.mark.slow
def test_stop_lets_a_running_command_finish(long_config, warm_env):
    env, folder = warm_env
    process = subprocess.Popen(
        [sys.executable, "-m", "forecast", "train", long_config.name,
         "--set", "training.epochs=6"],
        cwd=long_config.parent, env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for line in process.stderr:
        if line.startswith("epoch 1/"):
            break
    stopped = subprocess.run(
        [sys.executable, "-m", "forecast.cli.warm", "stop"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert stopped.stdout.strip() == "stopped 1 warm server(s)"
    assert not list(folder.glob("*.sock"))  # no new command is taken
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert (long_config.parent / out.strip().splitlines()[-1] / "model.keras").is_file()


def test_the_folder_must_not_be_a_symlink_and_is_made_absolute(tmp_path, monkeypatch):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(private)
    monkeypatch.setenv("FORECAST_WARM_DIR", str(tmp_path / "link"))
    with pytest.raises(OSError, match="not a private folder"):
        warm.folder()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FORECAST_WARM_DIR", "relative")
    assert warm.folder() == tmp_path / "relative"
    monkeypatch.setenv("FORECAST_WARM_DIR", str(tmp_path / ("x" * 120)))
    with pytest.raises(OSError, match="too long for a Unix socket"):
        warm.socket_path()


def train_until(config: Path, env: dict, marker: str, **kwargs) -> subprocess.Popen:
    """`forecast train CONFIG --set training.epochs=6`, returned once a stderr line starts
    with `marker` (the rest of stderr is left in the pipe)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "forecast", "train", config.name, "--set", "training.epochs=6"],
        cwd=config.parent, env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
    )  # fmt: skip
    for line in process.stderr:
        if line.startswith(marker):
            return process
    process.wait()
    raise AssertionError(f"no line starting with {marker!r}")


@pytest.mark.slow
def test_nohup_s_ignored_hangup_stays_ignored(long_config, warm_env):
    env, _ = warm_env

    def ignore_hangup() -> None:  # what nohup does before it runs the command
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    process = train_until(long_config, env, "epoch 1/", preexec_fn=ignore_hangup)
    process.send_signal(signal.SIGHUP)  # the terminal closed
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert (long_config.parent / out.strip().splitlines()[-1] / "model.keras").is_file()


@pytest.mark.slow
def test_a_killed_server_does_not_fail_its_running_command(long_config, warm_env):
    env, folder = warm_env
    process = train_until(long_config, env, "epoch 1/")
    (line,) = ready_lines(folder)
    os.kill(int(line.split()[3]), signal.SIGKILL)  # "forecast warm server PID ready ..."
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err  # the child told the command its own exit code
    assert (long_config.parent / out.strip().splitlines()[-1] / "model.keras").is_file()
