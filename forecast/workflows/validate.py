"""`forecast validate`: a config and its data checked without training (layout, shapes,
split sizes, parameters), for one series or summed over a long table's series."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forecast.config.schema import Config
from forecast.data.panel import prepare_panel, read_data
from forecast.data.prepare import Prepared
from forecast.workflows.loading import resolve_config


def validate(config: Config | str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Check config and data without training: layout, shapes, split sizes, parameter count;
    for a long table, summed over the series that train, with how many there are (and which
    are left out)."""
    cfg = resolve_config(config, overrides)
    panel = prepare_panel(cfg, read_data(cfg.data))  # one series: a table of one
    per = {sid: _split_sizes(m) for sid, m in panel.members.items()}
    cfg = panel.config
    steps, feats = cfg.window.input_steps, len(cfg.data.inputs)

    def total(key: str) -> int:
        return sum(p[key] for p in per.values())

    many = {"series": len(panel.members), "skipped_series": list(panel.skipped)}
    return {
        "layout": cfg.layout,
        **({} if panel.one is not None else many),
        "rows": sum(len(m.values) for m in panel.members.values()),
        "split": {
            k: sum(p["split"][k] for p in per.values()) for k in ("train", "validation", "test")
        },
        "train_windows": [total("train_windows"), steps, feats],
        "val_windows": [total("val_windows"), steps, feats],
        "test_origins": [total("test_origins"), steps, feats],
        "output": [cfg.window.horizon, len(cfg.data.targets)],
        "model": cfg.model.describe(),
        "parameters": panel.params,
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
