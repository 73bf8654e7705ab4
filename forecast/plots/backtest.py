"""backtest.png: the actual series around the folds, each fold's forecast drawn from its
origin (one series with its intervals shaded; a long table: a handful of series)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.config.schema import Config
from forecast.data.reading import Panel, SeriesId
from forecast.forecasting.intervals import label
from forecast.plots.common import (
    FileWriter,
    cycle_colors,
    figure_height,
    saved_figure,
    shade_bands,
    style_for,
)
from forecast.plots.panel import chosen_series, grid, hide_spare, series_axes, series_title


def backtest_figure(
    frame: pd.DataFrame,  # (rows, columns) original units, indexed by time
    config: Config,
    origins: np.ndarray,  # (K,) rows
    forecasts: np.ndarray,  # (K, H, targets)
    path: Path,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,  # lo, hi (levels, K, H, targets)
    *,
    write: FileWriter,
) -> Path:
    """The actual series around the folds, with each fold's forecast drawn from its origin
    and its intervals shaded; written through `write`."""
    horizon = forecasts.shape[1]
    start = max(0, int(origins[0]) - max(3 * horizon, 2 * config.window.input_steps, 30))
    shown = frame.iloc[start:]
    targets = list(config.data.targets)
    with (
        style_for(config.data.columns + [config.data.time_column or ""]),
        saved_figure(
            path, write, len(targets), 1, figsize=(12, figure_height(len(targets))), squeeze=False
        ) as (fig, axes),
    ):
        colors = cycle_colors()
        for row, target in enumerate(targets):
            ax = axes[row][0]
            ax.plot(shown.index, shown[target], color="black", linewidth=1.2, label="actual")
            for k, origin in enumerate(origins):
                times = frame.index[origin : origin + horizon + 1]
                values = np.concatenate([[frame[target].iloc[origin]], forecasts[k, :, row]])
                ax.plot(
                    times,
                    values,
                    color=colors[k % len(colors)],
                    marker="o",
                    markersize=3,
                    linewidth=1.5,
                    label=f"fold {k + 1}",
                )
                ax.axvline(
                    frame.index[origin], color=colors[k % len(colors)], alpha=0.3, linewidth=0.8
                )
                if bounds is not None:
                    bands = [
                        (label(level), bounds[0][i, k, :, row], bounds[1][i, k, :, row])
                        for i, level in enumerate(config.intervals)
                    ]
                    shade_bands(ax, times[1:], bands, colors[k % len(colors)], legend=k == 0)
            ax.set_title(f"{target}: backtest, {len(origins)} fold(s) of {horizon} step(s)")
            ax.set_ylabel(target)
            ax.legend(loc="best", fontsize="small")
            ax.grid(alpha=0.3)
        axes[-1][0].set_xlabel(config.data.time_column or "step")
        if config.data.time_column:
            fig.autofmt_xdate()
    return path


def panel_backtest_figure(
    panel: Panel,
    config: Config,
    report: dict[str, Any],
    forecasts: list[dict[SeriesId, np.ndarray]],
    backs: list[int],
    path: Path,
    *,
    write: FileWriter,
) -> Path:
    """A long table's backtest: a handful of series (the worst and best by MASE beyond
    PANELS), each with its folds' forecasts from their origins; written through `write`."""
    id_column = config.data.id_column
    chosen = chosen_series(report["per_series"])
    rows, columns = grid(len(chosen))
    target = config.data.targets[0]
    k = config.data.targets.index(target)
    horizon = config.window.horizon
    with (
        style_for(config.data.columns + [config.data.time_column or "", str(id_column)]),
        saved_figure(
            path, write, rows, columns, figsize=(16, figure_height(rows)), squeeze=False
        ) as (fig, axes),
    ):
        colors = cycle_colors()
        for n, (sid, why) in enumerate(chosen):
            ax = axes[n // columns][n % columns]
            frame = panel.members[sid].frame
            first = len(frame) - 1 - backs[0]
            start = max(0, first - max(3 * horizon, 2 * config.window.input_steps, 30))
            shown = frame.iloc[start:]
            ax.plot(shown.index, shown[target], color="black", linewidth=1.2, label="actual")
            for f, back in enumerate(backs):
                if sid not in forecasts[f]:
                    continue
                origin = len(frame) - 1 - back
                times = frame.index[origin : origin + horizon + 1]
                values = np.concatenate([[frame[target].iloc[origin]], forecasts[f][sid][:, k]])
                ax.plot(times, values, color=colors[f % len(colors)], marker="o", markersize=3,
                        linewidth=1.5, label=f"fold {f + 1}")  # fmt: skip
            title = series_title(sid, why, report["per_series"].get(sid))
            series_axes(ax, title, target, n == 0)
        hide_spare(axes, len(chosen))
        fig.suptitle(
            f"{target}: backtest of {len(chosen)} of {len(report['per_series'])} series, "
            f"{len(backs)} fold(s) of {horizon} step(s)"
        )
    return path
