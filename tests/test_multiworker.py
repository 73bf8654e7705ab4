"""One model trained data-parallel by two worker processes on 127.0.0.1 (TF_CONFIG), as a
user starts them: the chief writes one complete run, the other writes nothing visible."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import tiny_config_file


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tf_config(workers: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def start(config: Path, runs: Path, workers: list[str], index: int, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "forecast", "train", str(config), "--runs-dir", str(runs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": tf_config(workers, index),
             **env},
    )  # fmt: skip


def finish(process: subprocess.Popen, timeout: int = 240) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        process.kill()  # stops it if it timed out; nothing if it ended
    return process.returncode, out, err


def two_workers(config: Path, tmp_path: Path, tag: str) -> dict:
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    other = start(config, tmp_path / f"{tag}-other", workers, 1)
    chief = start(config, tmp_path / f"{tag}-chief", workers, 0)
    code, out, err = finish(chief)
    other_code, other_out, other_err = finish(other)
    assert code == 0, err
    assert other_code == 0, other_err
    assert other_out == "" and not (tmp_path / f"{tag}-other").exists()  # nothing visible
    assert other_err.strip().splitlines()[-1] == "worker 1: done; worker 0 wrote the run"
    run = Path(out.strip().splitlines()[-1])
    return {
        "run": json.loads((run / "run.json").read_text()),
        "metrics": json.loads((run / "metrics.json").read_text()),
        "files": {p.name for p in run.iterdir()},
    }


def mw_config(folder: Path, model: dict, training: dict) -> Path:
    """A tiny multi_worker config: LSTM(4), window 6, batch 8 per worker; `model` and
    `training` settings on top."""
    return tiny_config_file(
        folder,
        "mw.yaml",
        rows=120,
        name="mw",
        seed=2,
        window={"input_steps": 6, "horizon": 1},
        model={"architecture": "lstm", "units": [4], **model},
        training={"batch_size": 8, "distribute": "multi_worker", **training},
    )


@pytest.mark.slow  # two worker processes that each import TensorFlow and train
def test_two_workers_train_one_model_and_the_chief_writes_the_run(tmp_path: Path) -> None:
    config = mw_config(tmp_path, {"residual": "auto"}, {"epochs": 2})
    first = two_workers(config, tmp_path, "a")
    run = first["run"]
    assert run["strategy"]["name"] == "multi_worker" and run["strategy"]["replicas"] == 2
    # each worker's steps: half of one process's (global batch = batch_size x 2 workers)
    windows = run["rows"]["train_windows"]
    assert run["strategy"]["steps_per_epoch_per_worker"] == -(-windows // 16)
    assert -(-windows // 8) >= 2 * run["strategy"]["steps_per_epoch_per_worker"] - 1
    assert {"model.keras", "metrics.json", "run.json", "config.yaml"} <= first["files"]
    # the same workers again: the same numbers
    second = two_workers(config, tmp_path, "b")
    assert second["metrics"] == first["metrics"]


def test_a_worker_whose_peer_never_comes_up_stops_with_one_line(tmp_path: Path) -> None:
    config = tiny_config_file(tmp_path, "mw.yaml", training={"distribute": "multi_worker"})
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    started = time.perf_counter()
    alone = start(config, tmp_path / "runs", workers, 0, FORECAST_CONNECT_SECONDS="3")
    code, out, err = finish(alone, timeout=60)
    assert code == 2 and out == ""
    assert err.strip().splitlines()[-1] == (
        f"error: TF_CONFIG: worker 1 at {workers[1]} did not come up within 3 s; start it "
        "with the same cluster (and its own task.index), or check the address"
    )
    assert time.perf_counter() - started < 45
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (None, "training.distribute: multi_worker takes its cluster from TF_CONFIG, which is"),
        ("{not json", "TF_CONFIG: not a cluster and task in JSON;"),
        (tf_config(["127.0.0.1:1"], 3), "TF_CONFIG: task.index 3 is not one of the 1 workers"),
    ],
)
def test_a_missing_or_malformed_tf_config_is_one_line(tmp_path: Path, value, said) -> None:
    config = tiny_config_file(tmp_path, "mw.yaml", training={"distribute": "multi_worker"})
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    if value is not None:
        env["TF_CONFIG"] = value
    done = subprocess.run(
        [sys.executable, "-m", "forecast", "train", str(config), "--runs-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(f"error: {said}")


def start_logged(
    config: Path, runs: Path, workers: list[str], index: int, log: Any, *extra: str
) -> subprocess.Popen:
    """A worker whose stderr goes to the open file `log` (read while it runs)."""
    return subprocess.Popen(
        [sys.executable, "-m", "forecast", "train", str(config), "--runs-dir", str(runs), *extra],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": tf_config(workers, index)},
    )


@pytest.mark.slow  # three two-worker trainings, one of them interrupted
def test_two_workers_interrupted_and_resumed_end_where_they_would_have(tmp_path: Path) -> None:
    """Ctrl-C to both workers after a few epochs, then --resume on both (the other worker
    resumes from the chief's snapshot in the shared runs folder): the same model as a run
    never stopped."""
    import signal

    config = mw_config(tmp_path, {}, {"epochs": 30, "early_stopping": False, "final_fit": False})

    def run(runs: Path, *extra: str, stop_after: int | None = None) -> tuple[int, str]:
        workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
        logs = [tmp_path / f"{runs.name}-{i}.log" for i in (0, 1)]
        with logs[0].open("w") as log0, logs[1].open("w") as log1:
            other = start_logged(config, runs, workers, 1, log1, *extra)
            chief = start_logged(config, runs, workers, 0, log0, *extra)
            if stop_after is not None:
                deadline = time.monotonic() + 180
                while f"epoch {stop_after}/30" not in logs[0].read_text():
                    assert time.monotonic() < deadline and chief.poll() is None
                    time.sleep(0.1)
                chief.send_signal(signal.SIGINT)
                other.send_signal(signal.SIGINT)
            code, out, _ = finish(chief)
            finish(other)
        return code, out

    code, out = run(tmp_path / "whole")
    assert code == 0
    whole = json.loads((Path(out.strip().splitlines()[-1]) / "metrics.json").read_text())
    code, _ = run(tmp_path / "part", stop_after=5)
    assert code == 130
    assert "the finished epochs are kept" in (tmp_path / "part-0.log").read_text()
    code, out = run(tmp_path / "part", "--resume")
    assert code == 0, (tmp_path / "part-0.log").read_text()
    assert "resuming" in (tmp_path / "part-0.log").read_text()
    resumed = json.loads((Path(out.strip().splitlines()[-1]) / "metrics.json").read_text())
    assert resumed == whole
