"""Ctrl-C, SIGTERM and SIGKILL during training: clean exits, nothing visible, --resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from .conftest import monthly_frame, write_config, write_csv

FORECAST = str(Path(sys.executable).parent / "forecast")
EPOCHS = 40


@pytest.fixture
def long_config(tmp_path: Path) -> Path:
    write_csv(tmp_path / "s.csv", monthly_frame(300))
    return write_config(
        tmp_path / "long.yaml",
        name="long",
        seed=1,
        data={"path": "s.csv", "time_column": "date", "features": ["sales"]},
        window={"input_steps": 12},
        model={"architecture": "gru", "units": [8]},
        training={"epochs": EPOCHS, "batch_size": 8, "early_stopping": False},
    )


def start_and_stop_at_epoch(config: Path, epoch: int, sig: int) -> tuple[int, float, str]:
    """Run `forecast train`, send `sig` once epoch `epoch` is reported; return code, seconds
    from signal to exit, and stderr."""
    process = subprocess.Popen(
        [FORECAST, "train", config.name],
        cwd=config.parent,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith(f"epoch {epoch}/"):
            break
    sent = time.monotonic()
    process.send_signal(sig)
    _, rest = process.communicate(timeout=60)
    return process.returncode, time.monotonic() - sent, "".join(lines) + (rest or "")


def visible_runs(folder: Path) -> list[Path]:
    return [p for p in (folder / "runs").iterdir() if not p.name.startswith(".")]


def resume(config: Path) -> Path:
    result = subprocess.run(
        [FORECAST, "train", config.name, "--resume", "--quiet"],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return config.parent / result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_exits_cleanly_and_resume_continues(long_config, sig, code):
    returncode, seconds, stderr = start_and_stop_at_epoch(long_config, 3, sig)
    assert returncode == code, stderr
    assert seconds < 10
    assert "Traceback" not in stderr and "--resume" in stderr
    folder = long_config.parent
    assert visible_runs(folder) == []
    (partial,) = (folder / "runs").glob(".long-*.partial")
    assert (partial / "backup").is_dir()

    run_dir = resume(long_config)
    assert run_dir.name == partial.name[1 : -len(".partial")]  # the interrupted run's stamp
    assert not partial.exists()
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))  # no epoch lost or repeated
    assert not (run_dir / "backup").exists()


@pytest.mark.slow
def test_a_killed_training_can_be_resumed(long_config):
    returncode, _, _ = start_and_stop_at_epoch(long_config, 3, signal.SIGKILL)
    assert returncode == -signal.SIGKILL
    assert visible_runs(long_config.parent) == []
    run_dir = resume(long_config)
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))


def test_resume_without_an_interrupted_run_is_a_user_error(long_config):
    result = subprocess.run(
        [FORECAST, "train", long_config.name, "--resume"],
        cwd=long_config.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "no interrupted run of 'long' to resume; train without --resume"
    )
