"""Independent fits fanned out: a real local Ray on 127.0.0.1 gives the sequential results.

The CLI runs in a subprocess, as a user runs it: `--ray auto` starts a local Ray for the one
command and stops it when the command ends (the test checks that no Ray process is left).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from .conftest import fold_config, tiny_config_file


def forecast(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "forecast", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def ray_processes() -> set[int]:
    """Pids of Ray's own processes (raylet, GCS, workers) on this machine."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdecimal():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"raylet" in command or b"gcs_server" in command or b"ray::" in command:
                found.add(int(entry.name))
    return found


def backtest_json(done: subprocess.CompletedProcess) -> dict[str, Any]:
    """backtest.json without what differs from run to run: seconds, and where the folds ran
    (its `fanout`, checked on its own)."""
    report = json.loads(Path(done.stdout.strip().splitlines()[-1]).read_text())
    for fold in report["folds"]:
        fold.pop("seconds", None)
    report.pop("fanout")
    return report


def run_files(done: subprocess.CompletedProcess) -> dict[str, Any]:
    """What a training run found and forecast: its metrics, test forecasts, final fit, each
    member's fit (without seconds) and the saved model's weights."""
    from forecast.runs.read import load_model

    run = Path(done.stdout.strip().splitlines()[-1])
    info = json.loads((run / "run.json").read_text())
    members = [{k: v for k, v in m.items() if k != "seconds"} for m in info["members"]]
    final = {k: v for k, v in info["final_fit"].items() if k != "fanout"}
    model = load_model(run / "model.keras")
    return {
        "metrics": (run / "metrics.json").read_text(),
        "predictions": (run / "test_predictions.csv").read_text(),
        # history.csv without the seconds each epoch took
        "history": pd.read_csv(run / "history.csv").drop(columns="seconds").to_dict("list"),
        "final": final,
        "members": members,
        "weights": [w.tolist() for w in model.get_weights()],
        "fanout": info["fanout"],
    }


@pytest.mark.slow  # a local Ray starts, and each of its workers imports TensorFlow
def test_a_backtest_on_a_local_ray_equals_the_sequential_one(tmp_path: Path) -> None:
    config = fold_config(tmp_path, training={"epochs": 2})
    before = ray_processes()
    common = ["backtest", str(config), "--folds", "3"]
    alone = forecast(*common, "--runs-dir", str(tmp_path / "alone"))
    on_ray = forecast(*common, "--runs-dir", str(tmp_path / "ray"), "--ray", "auto")
    assert alone.returncode == 0, alone.stderr
    assert on_ray.returncode == 0, on_ray.stderr
    assert "3 folds as Ray tasks on a local Ray, one CPU and one thread each" in on_ray.stderr
    # the same folds, forecasts and scores, bit for bit: each task seeds its own fit
    assert backtest_json(on_ray) == backtest_json(alone)
    placed = json.loads(Path(on_ray.stdout.strip().splitlines()[-1]).read_text())["fanout"]
    assert placed == {"engine": "ray", "address": "auto", "threads": 1, "chosen": "given: ray"}
    for _ in range(20):  # the command stopped the Ray it started
        if ray_processes() <= before:
            break
        time.sleep(0.5)
    assert ray_processes() <= before


def test_ray_options_a_user_gets_wrong_are_one_line(tmp_path: Path) -> None:
    config = tiny_config_file(tmp_path, "c.yaml", rows=60)
    started = time.perf_counter()
    nobody = forecast("backtest", str(config), "--ray", "127.0.0.1:1")
    assert nobody.returncode == 2
    assert len(nobody.stderr.splitlines()) == 1  # said before anything runs
    assert nobody.stderr.startswith("error: --ray 127.0.0.1:1: nothing answers there (")
    assert nobody.stderr.endswith(
        "start the head with `ray start --head`, check the address, or use --ray auto for a "
        "local Ray\n"
    )
    assert time.perf_counter() - started < 60  # refused at once, not after Ray's long wait
    both = forecast("backtest", str(config), "--ray", "auto", "--workers", "2")
    assert both.returncode == 2
    assert both.stderr == (
        "error: --workers and --ray: give one (Ray runs one task per CPU of the cluster)\n"
    )
    shapeless = forecast("backtest", str(config), "--ray", "headnode")
    assert shapeless.returncode == 2 and shapeless.stderr == (
        "error: --ray headnode: give the head's HOST:PORT (e.g. 10.0.0.5:6379, or "
        "ray://10.0.0.5:10001), or auto for a local Ray\n"
    )


@pytest.mark.slow  # a local Ray starts, and each of its workers imports TensorFlow
def test_tune_on_a_local_ray_writes_the_sequential_choice(tmp_path: Path) -> None:
    """Every trial's folds as Ray tasks: the same scores, the same best config, byte for
    byte."""
    config = fold_config(tmp_path, "t.yaml", rows=80, name="t", seed=4)
    common = ["tune", str(config), "--trials", "2", "--folds", "2"]
    alone = forecast(*common, "--output", str(tmp_path / "alone.yaml"))
    on_ray = forecast(*common, "--output", str(tmp_path / "ray.yaml"), "--ray", "auto")
    assert alone.returncode == 0, alone.stderr
    assert on_ray.returncode == 0, on_ray.stderr
    assert "2 trials' folds as Ray tasks on a local Ray" in on_ray.stderr
    tuned = (tmp_path / "alone.yaml").read_text()
    assert "trial 2:" in tuned and (tmp_path / "ray.yaml").read_text() == tuned


@pytest.mark.slow  # a local Ray and a process pool start, each worker importing TensorFlow
def test_an_independent_ensemble_trains_the_same_in_turn_in_processes_and_on_ray(
    tmp_path: Path,
) -> None:
    """`train` of a 3-member ensemble fitted member by member: in turn here, in 2 local
    processes and as Ray tasks, the same members, metrics, forecasts and saved weights."""
    config = fold_config(
        tmp_path,
        "e.yaml",
        rows=80,
        name="e",
        model={"architecture": "gru", "units": [4], "ensemble": 3,
               "ensemble_fit": "independent", "residual": "auto", "window_norm": True},
        training={"epochs": 6, "early_stopping": {"patience": 1}},
    )  # fmt: skip
    before = ray_processes()
    common = ["train", str(config), "--quiet"]
    alone = forecast(*common, "--runs-dir", str(tmp_path / "alone"))
    pooled = forecast(*common, "--runs-dir", str(tmp_path / "pool"), "--workers", "2")
    on_ray = forecast(*common, "--runs-dir", str(tmp_path / "ray"), "--ray", "auto")
    for done in (alone, pooled, on_ray):
        assert done.returncode == 0, done.stderr
    first = run_files(alone)
    assert [m["member"] for m in first["members"]] == [1, 2, 3]
    assert first["members"][0]["seed"] == 3  # member 1 keeps the config's seed
    assert len({m["seed"] for m in first["members"]}) == 3
    # the three fitted on their own: each early stop is its own (read from run.json), and
    # each member's final fit continues it for a quarter of its epochs (at least one)
    assert first["final"]["member_epochs"] == [
        math.ceil((m["epochs"] if m["best_epoch"] is None else m["best_epoch"]) / 4)
        for m in first["members"]
    ]
    assert first["fanout"]["engine"] == "in process"
    assert first["fanout"]["chosen"].startswith("auto: ")
    for other, engine in ((run_files(pooled), "local processes"), (run_files(on_ray), "ray")):
        assert other.pop("fanout")["engine"] == engine
        assert other == {k: v for k, v in first.items() if k != "fanout"}
    for _ in range(20):  # the command stopped the Ray it started
        if ray_processes() <= before:
            break
        time.sleep(0.5)
    assert ray_processes() <= before
