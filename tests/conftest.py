"""Shared fixtures: tiny real CSV files and configs written to tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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


@pytest.fixture
def tiny_config(tmp_path: Path, monthly_csv: Path) -> Path:
    """A univariate config that trains in a second or two."""
    return write_config(
        tmp_path / "tiny.yaml",
        name="tiny",
        seed=7,
        data={"path": monthly_csv.name, "time_column": "date", "features": ["sales"]},
        window={"input_steps": 12, "horizon": 1},
        split={"test": 0.2, "validation": 0.1},
        model={"architecture": "lstm", "units": [8]},
        training={"epochs": 2, "batch_size": 16},
    )
