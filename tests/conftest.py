"""Shared fixtures: tiny real CSV files and configs written to tmp_path."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# the CLI's subprocesses run in-process, as a fresh process each; tests/test_warm.py turns
# the warm server (forecast/cli/warm.py) on for its own commands, and stops it
os.environ["FORECAST_WARM"] = "0"

ROOT = Path(__file__).resolve().parents[1]


def write_csv(path: Path, frame: pd.DataFrame, encoding: str = "utf-8") -> Path:
    path.write_text(frame.to_csv(index=False), encoding=encoding)
    return path


def monthly_frame(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    """A seasonal monthly series with a trend, plus a second column: small and learnable."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    level = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, rows)
    return pd.DataFrame(
        {
            "date": pd.date_range("2000-01-01", periods=rows, freq="MS").strftime("%Y-%m-%d"),
            "sales": level.round(3),
            "price": (50 + 0.1 * t + rng.normal(0, 0.5, rows)).round(3),
        }
    )


def write_config(path: Path, **sections) -> Path:
    path.write_text(yaml.safe_dump(sections, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def monthly_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "sales.csv", monthly_frame())


# the tiny config: a univariate LSTM(8) on sales.csv (monthly_frame) that trains in a second
TINY = {
    "name": "tiny",
    "seed": 7,
    "data": {"path": "sales.csv", "time_column": "date", "features": ["sales"]},
    "window": {"input_steps": 12, "horizon": 1},
    "split": {"test": 0.2, "validation": 0.1},
    "model": {"architecture": "lstm", "units": [8]},
    "training": {"epochs": 2, "batch_size": 16},
}


def merged(sections: dict, changes: dict) -> dict:
    """A copy of `sections` with `changes`: a dict updates that section key by key, anything
    else replaces the entry (or adds one `sections` lacks, such as evaluation or intervals)."""
    sections = copy.deepcopy(sections)
    for key, value in changes.items():
        both = isinstance(value, dict) and isinstance(sections.get(key), dict)
        sections[key] = {**sections[key], **value} if both else value
    return sections


def tiny_sections(**changes) -> dict:
    """TINY with `changes` (see merged)."""
    return merged(TINY, changes)


def tiny_config_file(
    folder: Path, file: str = "tiny.yaml", rows: int = 120, data_seed: int = 0, **changes
) -> Path:
    """folder/file: tiny_sections(**changes), beside folder/sales.csv of monthly_frame(rows)."""
    write_csv(folder / "sales.csv", monthly_frame(rows, seed=data_seed))
    return write_config(folder / file, **tiny_sections(**changes))


def fold_config(folder: Path, file: str = "bt.yaml", rows: int = 60, **changes) -> Path:
    """A tiny config a backtest (or a tune) folds quickly: GRU(4), window 6, horizon 2, one
    epoch, monthly seasons, beside folder/sales.csv of `rows` rows; `changes` on top."""
    sections = {
        "name": "bt",
        "seed": 3,
        "window": {"input_steps": 6, "horizon": 2},
        "model": {"architecture": "gru", "units": [4]},
        "training": {"epochs": 1},
        "evaluation": {"season_length": 12},
    }
    return tiny_config_file(folder, file, rows=rows, **{**sections, **changes})


@pytest.fixture
def tiny_config(tmp_path: Path, monthly_csv: Path) -> Path:
    """A univariate config that trains in a second or two."""
    return tiny_config_file(tmp_path)


def early_stopping_config(folder: Path, restore: bool = True, final_fit: bool = True) -> Path:
    """Early stopping (patience 3) that stops well before its 80 epochs on a small series."""
    return tiny_config_file(
        folder,
        "es.yaml",
        rows=150,
        data_seed=3,
        name="es",
        seed=4,
        data={"features": ["sales", "price"]},
        split={"test": 0.15, "validation": 0.25},
        model={"units": [16], "dropout": 0.2},
        training={
            "epochs": 80,
            "learning_rate": 0.02,
            "early_stopping": {"patience": 3, "restore_best_weights": restore},
            "final_fit": final_fit,
        },
    )


def small_gru_config(folder: Path, **training) -> Path:
    """A univariate GRU(4) on 100 monthly rows: a run in a few seconds."""
    model = {"architecture": "gru", "units": [4]}
    return tiny_config_file(folder, "t.yaml", rows=100, name="t", model=model, training=training)


def one_line_error(result) -> str:
    """The one stderr line of a CLI result that exited 2 (a user error), without traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


LONG_EPOCHS = 40


@pytest.fixture
def long_config(tmp_path: Path) -> Path:
    """A GRU whose fits take a few seconds each (epochs of 30 batches, no early stopping);
    its final fit trains from scratch for all its epochs, so that it lasts as long as the
    held-out fit (the tests stop it in the middle)."""
    return tiny_config_file(
        tmp_path,
        "long.yaml",
        rows=300,
        name="long",
        seed=1,
        model={"architecture": "gru", "units": [8]},
        training={
            "epochs": LONG_EPOCHS,
            "batch_size": 8,
            "early_stopping": False,
            "final_fit_start": "scratch",
        },
    )


def train_and_signal(config: Path, marker: str, sig: int, delay: float = 0.0) -> tuple:
    """Run `python -m forecast train CONFIG` and send `sig` `delay` seconds after the stderr
    line that starts with `marker`: (exit code, seconds from the signal to the exit, the
    whole stderr)."""
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "forecast", "train", config.name],
        cwd=config.parent,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith(marker):
            break
    else:
        process.wait()
        raise AssertionError(f"no line starting with {marker!r}:\n{''.join(lines)}")
    time.sleep(delay)
    sent = time.monotonic()
    process.send_signal(sig)
    _, rest = process.communicate(timeout=120)
    return process.returncode, time.monotonic() - sent, "".join(lines) + (rest or "")
