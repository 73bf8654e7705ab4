"""A long table's figures (data.id_column): a handful of series' test forecasts (the worst and
best by MASE beyond PANELS), series_mase.png (each series' MASE against seasonal naive's),
loss.png and, after predict, their forecasts; and the panel helpers the backtest figure
shares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from forecast.config.schema import Config
from forecast.plots.common import (
    FileWriter,
    as_times,
    draw_line,
    figure_height,
    interval_levels,
    read_forecast,
    saved_figure,
    shade_bands,
    style_for,
)
from forecast.plots.loss import draw_loss

PANELS = 6  # series drawn one panel each; beyond that the worst and best by MASE


def chosen_series(per_series: dict[str, Any], shown: int = PANELS) -> list[tuple[str, str]]:
    """The series to draw, with why: all of them up to `shown`, else the worst and the best
    by the model's MASE over seasonal naive's (series without a ratio last)."""
    ids = list(per_series)
    if len(ids) <= shown:
        return [(i, "") for i in ids]

    def ratio(sid: str) -> float:
        block = per_series[sid]
        ours = block["model"]["mase"]
        naive = block["baselines"]["seasonal_naive"]["mase"]
        return ours / naive if ours is not None and naive else float("nan")

    ordered = sorted((i for i in ids if np.isfinite(ratio(i))), key=ratio)
    if not ordered:  # no series has both MASEs: the first ones
        return [(i, "") for i in ids[:shown]]
    worst = ordered[::-1][: shown // 2]
    best = [i for i in ordered[: shown - len(worst)] if i not in worst]
    return [(i, f"worst {n + 1}") for n, i in enumerate(worst)] + [
        (i, f"best {n + 1}") for n, i in enumerate(best)
    ]


def grid(count: int) -> tuple[int, int]:
    """(rows, columns) for `count` panels: two columns, or one for a single panel."""
    columns = 1 if count == 1 else 2
    return -(-count // columns), columns


def series_title(sid: str, why: str, block: dict[str, Any] | None) -> str:
    """A series' panel title: its id, why it was chosen, its MASE and seasonal naive's."""
    if block is None:
        return sid
    ours, naive = block["model"]["mase"], block["baselines"]["seasonal_naive"]["mase"]
    scores = f"MASE {ours:.3g}" if ours is not None else "MASE n/a"
    if naive is not None:
        scores += f", seasonal naive {naive:.3g}"
    return f"{sid}{f' ({why})' if why else ''}: {scores}"


def series_axes(ax: Axes, title: str, target: str, legend: bool) -> None:
    """One series' panel: title, label, grid, slanted dates; the legend on the first only."""
    ax.set_title(title, fontsize="medium")
    ax.set_ylabel(target)
    ax.grid(alpha=0.3)
    ax.tick_params(axis="x", labelrotation=30)
    if legend:
        ax.legend(loc="best", fontsize="small")


def hide_spare(axes: np.ndarray, used: int) -> None:
    """Blank the grid's cells after the first `used` (row-major)."""
    for ax in axes.ravel()[used:]:
        ax.axis("off")


def draw_panel_run(
    run_dir: Path, config: Config, out_dir: Path, *, write: FileWriter
) -> list[Path]:
    """A long table's PNGs, each written through `write`: the test forecasts of a handful of
    series, the per-series MASE against seasonal naive's, the loss, and the forecast after
    predict."""
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    per_series = metrics["per_series"]
    labels = [*config.data.columns, config.data.time_column or "", str(config.data.id_column)]
    with style_for(labels):
        written = [
            _test_forecast(run_dir, config, per_series, out_dir, write),
            _series_mase(per_series, config, out_dir, write),
            draw_loss(run_dir, config, out_dir, write),
        ]
        future = _panel_future(run_dir, config, out_dir, write)
    if future is not None:
        written.append(future)
    return written


def _test_forecast(
    run_dir: Path, config: Config, per_series: dict[str, Any], out_dir: Path, write: FileWriter
) -> Path:
    id_column = config.data.id_column
    frame = pd.read_csv(run_dir / "test_predictions.csv", dtype={id_column: str})
    frame["time"] = as_times(frame["time"], config)
    target = config.data.targets[0]
    chosen = chosen_series(per_series)
    rows, columns = grid(len(chosen))
    path = out_dir / "test_forecast.png"
    horizon = int(frame["step"].max())
    with saved_figure(
        path, write, rows, columns, figsize=(16, figure_height(rows)), squeeze=False
    ) as (fig, axes):
        for n, (sid, why) in enumerate(chosen):
            ax = axes[n // columns][n % columns]
            one = frame[(frame[id_column] == sid) & (frame["target"] == target)]
            first = one[one["step"] == 1]
            actual = one[["time", "actual"]].drop_duplicates("time").sort_values("time")
            draw_line(ax, actual["time"], actual["actual"], "actual", "black", 1.2)
            draw_line(ax, first["time"], first["predicted"], "predicted, step 1", "tab:blue", 1.0)
            bands = [(lv, first[f"lo_{lv}"], first[f"hi_{lv}"]) for lv in interval_levels(one, "")]
            shade_bands(ax, first["time"], bands, "tab:blue", legend=n == 0)
            if horizon > 1:
                final = one[one["step"] == horizon]
                draw_line(ax, final["time"], final["predicted"], f"predicted, step {horizon}",
                          "tab:orange", 1.0)  # fmt: skip
            series_axes(ax, series_title(sid, why, per_series.get(sid)), target, n == 0)
        hide_spare(axes, len(chosen))
        fig.suptitle(
            f"{target}: test split of {len(chosen)} of {len(per_series)} series ({id_column})"
        )
    return path


def _series_mase(
    per_series: dict[str, Any], config: Config, out_dir: Path, write: FileWriter
) -> Path:
    """Each series' model MASE against its seasonal naive MASE (below the diagonal: the
    model wins), and the distribution of their ratio."""
    ids = [
        i
        for i, b in per_series.items()
        if b["model"]["mase"] is not None and b["baselines"]["seasonal_naive"]["mase"]
    ]
    ours = np.array([per_series[i]["model"]["mase"] for i in ids], dtype=float)
    naive = np.array([per_series[i]["baselines"]["seasonal_naive"]["mase"] for i in ids], float)
    path = out_dir / "series_mase.png"
    with saved_figure(path, write, 1, 2, figsize=(16, 6)) as (fig, (scatter, hist)):
        if len(ids):
            scatter.scatter(naive, ours, color="tab:blue", s=18)
            top = float(max(ours.max(), naive.max())) * 1.05
            scatter.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1)
            ratio = ours / naive
            hist.hist(ratio, bins=min(30, max(5, len(ids) // 3)), color="tab:blue", alpha=0.8)
            hist.axvline(1.0, color="grey", linestyle="--", linewidth=1)
            wins = int((ratio < 1).sum())
            geo = float(np.exp(np.mean(np.log(ratio)))) if (ratio > 0).all() else float("nan")
            hist.set_title(
                f"model MASE / seasonal naive MASE: below 1 on {wins} of {len(ids)} series, "
                f"geometric mean {geo:.3g}"
            )
        scatter.set_xlabel("seasonal naive MASE")
        scatter.set_ylabel("model MASE")
        scatter.set_title("per series (below the dashed line: the model wins)")
        hist.set_xlabel("ratio")
        hist.set_ylabel("series")
        for ax in (scatter, hist):
            ax.grid(alpha=0.3)
    return path


def _panel_future(run_dir: Path, config: Config, out_dir: Path, write: FileWriter) -> Path | None:
    forecast_csv, history_csv = run_dir / "forecast.csv", run_dir / "forecast_history.csv"
    if not (forecast_csv.is_file() and history_csv.is_file()):
        return None
    id_column = str(config.data.id_column)
    future = read_forecast(forecast_csv, config)
    history = pd.read_csv(history_csv, dtype={id_column: str})
    if id_column not in future.columns or id_column not in history.columns:
        return None
    future[id_column] = future[id_column].astype(str)
    time_name = future.columns[1]
    future[time_name] = as_times(future[time_name], config)
    history[time_name] = as_times(history[time_name], config)
    target = config.data.targets[0]
    ids = list(dict.fromkeys(future[id_column]))[:PANELS]
    rows, columns = grid(len(ids))
    path = out_dir / "forecast.png"
    with saved_figure(
        path, write, rows, columns, figsize=(16, figure_height(rows)), squeeze=False
    ) as (fig, axes):
        for n, sid in enumerate(ids):
            ax = axes[n // columns][n % columns]
            past = history[history[id_column] == sid]
            ahead = future[future[id_column] == sid]
            if target in past.columns and len(past):
                ax.plot(
                    past[time_name], past[target], color="black", linewidth=1.2, label="history"
                )
            draw_line(ax, ahead[time_name], ahead[target], "forecast", "tab:orange", 1.5)
            levels = interval_levels(ahead.columns, f"{target}_")
            bands = [(lv, ahead[f"{target}_lo_{lv}"], ahead[f"{target}_hi_{lv}"]) for lv in levels]
            shade_bands(ax, ahead[time_name], bands, "tab:orange", legend=n == 0)
            series_axes(ax, f"{sid}: next {len(ahead)} step(s)", target, n == 0)
        hide_spare(axes, len(ids))
        shown = len(ids)
        total = future[id_column].nunique()
        fig.suptitle(f"{target}: forecast of {shown} of {total} series ({id_column})")
    return path
