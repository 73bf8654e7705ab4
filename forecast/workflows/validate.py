"""`forecast validate`: a config and its data checked without training (layout, shapes,
split sizes, parameters), for one series or summed over a long table's series."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forecast.config.schema import Config
from forecast.data.panel import PreparedPanel, prepare_panel
from forecast.data.prepare import Prepared, prepare
from forecast.data.reading import read_panel, resolve_config
from forecast.workflows.tune import TuneResult, tune  # noqa: F401  (the API: api.tune)


def _validate_panel(panel: PreparedPanel) -> dict[str, Any]:
    """`validate` of a long table: the same keys summed over the series that train, and
    how many there are (and which are left out)."""
    per = {sid: _split_sizes(m) for sid, m in panel.members.items()}
    cfg = panel.config
    steps, feats = cfg.window.input_steps, len(cfg.data.inputs)

    def total(key: str) -> int:
        return sum(p[key] for p in per.values())

    first = next(iter(panel.members.values()))
    return {
        "layout": cfg.layout,
        "series": len(panel.members),
        "skipped_series": list(panel.skipped),
        "rows": sum(len(m.values) for m in panel.members.values()),
        "split": {
            k: sum(p["split"][k] for p in per.values()) for k in ("train", "validation", "test")
        },
        "train_windows": [total("train_windows"), steps, feats],
        "val_windows": [total("val_windows"), steps, feats],
        "test_origins": [total("test_origins"), steps, feats],
        "output": [cfg.window.horizon, len(cfg.data.targets)],
        "model": cfg.model.describe(),
        "parameters": first.params,
        "season_length": panel.combined.season,
    }


def _split_sizes(prepared: Prepared) -> dict[str, Any]:
    split, lag = prepared.fit_split, prepared.lag
    return {
        "split": {
            "train": split.val_start + lag,
            "validation": split.test_start - split.val_start,
            "test": split.rows - split.test_start,
        },
        "train_windows": len(split.train_origins),
        "val_windows": len(split.val_origins),
        "test_origins": len(split.test_origins),
    }


def validate(config: Config | str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Check config and data without training: layout, shapes, split sizes, parameter count."""
    cfg = resolve_config(config, overrides)
    if cfg.data.id_column is not None:
        return _validate_panel(prepare_panel(cfg, read_panel(cfg.data)))
    prepared = prepare(cfg)
    cfg, split, lag = prepared.config, prepared.fit_split, prepared.lag
    steps, feats, targs = cfg.window.input_steps, len(cfg.data.inputs), len(cfg.data.targets)
    return {
        "layout": cfg.layout,
        "rows": len(prepared.values),
        "split": {
            "train": split.val_start + lag,
            "validation": split.test_start - split.val_start,
            "test": split.rows - split.test_start,
        },
        "train_windows": [len(split.train_origins), steps, feats],
        "val_windows": [len(split.val_origins), steps, feats],
        "test_origins": [len(split.test_origins), steps, feats],
        "output": [cfg.window.horizon, targs],
        "model": cfg.model.describe(),
        "parameters": prepared.params,
        "season_length": prepared.season,
    }
