"""loss.png: a training run's loss per epoch (train, validation, the final fit's), one series
or many."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from matplotlib.ticker import MaxNLocator

from forecast.config.schema import Config
from forecast.plots.common import FileWriter, saved_figure


def draw_loss(run_dir: Path, config: Config, out_dir: Path, write: FileWriter) -> Path:
    """Train and validation loss per epoch; where early stopping restored the best epoch's
    weights, a vertical line there; and the final fit's loss on every row, if it ran."""
    history = pd.read_csv(run_dir / "history.csv")
    info_path, final_path = run_dir / "run.json", run_dir / "final_history.csv"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    final = pd.read_csv(final_path) if final_path.is_file() else None
    best = info.get("best_epoch")
    path = out_dir / "loss.png"
    with saved_figure(path, write, figsize=(12, 6)) as (fig, ax):
        ax.plot(history["epoch"], history["loss"], marker="o", markersize=3, label="train loss")
        if history["val_loss"].notna().any():
            ax.plot(
                history["epoch"],
                history["val_loss"],
                marker="o",
                markersize=3,
                label="validation loss",
            )
        if final is not None and len(final):
            rows = (info.get("final_fit") or {}).get("rows")
            ax.plot(
                final["epoch"],
                final["loss"],
                marker="s",
                markersize=3,
                linestyle="--",
                color="tab:green",
                label=f"final fit loss (all {rows} rows)" if rows else "final fit loss (all rows)",
            )
        if best is not None:
            base = f": the {info.get('residual')} base, no epoch beat it" if best == 0 else ""
            restored = f"restored (best) epoch {best}{base}"
            ax.axvline(best, color="grey", linestyle=":", label=restored)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{config.training.loss} loss ({_loss_units(config)})")
        losses = pd.concat([history["loss"], final["loss"] if final is not None else None])
        ax.set_yscale("log" if (losses > 0).all() else "linear")
        ax.set_title("training and validation loss")
        ax.legend(loc="best")
        ax.grid(alpha=0.3)
    return path


def _loss_units(config: Config) -> str:
    """What the loss is measured in: the model's targets after transform and scaling."""
    transform = config.data.transform
    if config.scaling.method != "none":
        return "scaled units" + (
            f", after data.transform {transform}" if transform != "none" else ""
        )
    return "original units" if transform == "none" else f"units after data.transform {transform}"
