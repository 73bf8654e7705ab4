"""One series' figures of a training run: test_forecast.png (the test split, actual against
predicted, with the error by step), forecast.png (after predict), and loss.png (plots/loss.py);
a long table's run goes to plots/panel.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

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
from forecast.plots.panel import draw_panel_run

SHOWN_BY_DEFAULT = 300  # test origins drawn in detail when there are more than ...
OVERVIEW_FROM = 500  # ... this many: the rest is in an overview panel above


def draw_run(
    run_dir: Path, config: Config, out_dir: Path, last: int | None = None, *, write: FileWriter
) -> list[Path]:
    """The run's PNGs, each written through `write` (whole or not at all). `last`: draw only
    the last N test origins (0: all); by default all up to 500 origins, else the last 300 in
    detail under an overview of the whole test split."""
    if config.data.id_column is not None:
        return draw_panel_run(run_dir, config, out_dir, write=write)
    with style_for(config.data.columns + [config.data.time_column or ""]):
        written = [
            _test_forecast(run_dir, config, out_dir, last, write),
            draw_loss(run_dir, config, out_dir, write),
        ]
        future = _future(run_dir, config, out_dir, write)
    if future is not None:
        written.append(future)
    return written


def _test_forecast(
    run_dir: Path, config: Config, out_dir: Path, last: int | None, write: FileWriter
) -> Path:
    frame = pd.read_csv(run_dir / "test_predictions.csv")
    frame["time"] = as_times(frame["time"], config)
    horizon = int(frame["step"].max())
    targets = list(config.data.targets)
    columns = 2 if horizon > 1 else 1
    origins = np.sort(frame.loc[frame["step"] == 1, "time"].unique())
    overview = last is None and len(origins) > OVERVIEW_FROM
    if last is None:
        last = SHOWN_BY_DEFAULT if overview else 0
    whole = frame
    if 0 < last < len(origins):
        frame = frame[frame["time"] >= origins[-last]]  # the last N origins' steps 1..H
    path = out_dir / "test_forecast.png"
    panels = 2 * len(targets) if overview else len(targets)
    with saved_figure(
        path,
        write,
        panels,
        columns,
        figsize=(
            12 if columns == 1 else 16,
            figure_height(len(targets)) + (2.4 if overview else 0),
        ),
        squeeze=False,
        gridspec_kw={"height_ratios": [1, 2] * len(targets)} if overview else None,
    ) as (fig, axes):
        for row, target in enumerate(targets):
            if overview:
                top = axes[2 * row][0]
                every = whole[(whole["target"] == target) & (whole["step"] == 1)]
                top.plot(every["time"], every["actual"], color="black", linewidth=0.8)
                top.plot(every["time"], every["predicted"], color="tab:blue", linewidth=0.6)
                top.axvspan(origins[-last], origins[-1], color="tab:orange", alpha=0.15)
                top.set_title(
                    f"{target}: the whole test split, {len(origins)} origins; shaded: the last "
                    f"{last}, drawn below (plot --last N)"
                )
                top.grid(alpha=0.3)
                for spare in axes[2 * row][1:]:
                    spare.axis("off")
            _test_panel(
                axes[2 * row + 1 if overview else row], frame, target, horizon, len(origins), last
            )
        axes[-1][0].set_xlabel(config.data.time_column or "step")
        if config.data.time_column:
            for ax in axes[:, 0]:  # every time axis keeps its dates (the overview's too)
                ax.tick_params(axis="x", labelrotation=30)
    return path


def _test_panel(
    axes_row: np.ndarray,  # (columns,) of Axes: the test panel, then the error by step
    frame: pd.DataFrame,
    target: str,
    horizon: int,
    origins: int,
    last: int,
) -> None:
    rows = frame[frame["target"] == target]
    ax = axes_row[0]
    first = rows[rows["step"] == 1]
    # every actual the test rows hold: the last origins' later steps reach past the step-1
    # rows by horizon - 1
    actual = rows[["time", "actual"]].drop_duplicates("time").sort_values("time")
    draw_line(ax, actual["time"], actual["actual"], "actual", "black", 1.2)
    draw_line(ax, first["time"], first["predicted"], "predicted, step 1", "tab:blue", 1.0)
    bands = [(lv, first[f"lo_{lv}"], first[f"hi_{lv}"]) for lv in interval_levels(rows, "")]
    shade_bands(ax, first["time"], bands, "tab:blue")
    if horizon > 1:
        final = rows[rows["step"] == horizon]
        draw_line(
            ax, final["time"], final["predicted"], f"predicted, step {horizon}", "tab:orange", 1.0
        )
    span = f", the last {last} of {origins} origins" if 0 < last < origins else ""
    ax.set_title(f"{target}: test split, actual vs predicted{span}")
    ax.set_ylabel(target)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    if horizon > 1:
        by_step = (
            rows.assign(err=(rows["predicted"] - rows["actual"]).abs())
            .groupby("step")["err"]
            .mean()
        )
        bar = axes_row[1]
        bar.bar(by_step.index, by_step.to_numpy(), color="tab:blue")
        bar.set_title(f"{target}: mean absolute error by step")
        bar.set_xlabel("step ahead")
        bar.set_ylabel("MAE")
        bar.set_xticks(np.arange(1, horizon + 1))
        bar.grid(alpha=0.3, axis="y")


def _future(run_dir: Path, config: Config, out_dir: Path, write: FileWriter) -> Path | None:
    forecast_csv, history_csv = run_dir / "forecast.csv", run_dir / "forecast_history.csv"
    if not (forecast_csv.is_file() and history_csv.is_file()):
        return None
    future = read_forecast(forecast_csv, config)
    history = pd.read_csv(history_csv)
    time_name = future.columns[0]
    future[time_name] = as_times(future[time_name], config)
    history[time_name] = as_times(history[time_name], config)
    targets = [t for t in config.data.targets if t in future.columns]
    path = out_dir / "forecast.png"
    with saved_figure(
        path, write, len(targets), 1, figsize=(12, figure_height(len(targets))), squeeze=False
    ) as (fig, axes):
        for row, target in enumerate(targets):
            ax = axes[row][0]
            if target in history.columns:
                ax.plot(
                    history[time_name],
                    history[target],
                    color="black",
                    linewidth=1.2,
                    label="history",
                )
                # join the last observation to the first forecast step
                joined_t = pd.concat([history[time_name].iloc[-1:], future[time_name]])
                joined_v = np.concatenate(
                    [history[target].to_numpy()[-1:], future[target].to_numpy()]
                )
                ax.plot(
                    joined_t,
                    joined_v,
                    color="tab:orange",
                    linewidth=1.5,
                    marker="o",
                    markersize=3,
                    label="forecast",
                )
            else:
                ax.plot(
                    future[time_name],
                    future[target],
                    color="tab:orange",
                    marker="o",
                    label="forecast",
                )
            levels = interval_levels(future.columns, f"{target}_")
            bands = [
                (lv, future[f"{target}_lo_{lv}"], future[f"{target}_hi_{lv}"]) for lv in levels
            ]
            shade_bands(ax, future[time_name], bands, "tab:orange")
            ax.set_title(f"{target}: next {len(future)} step(s)")
            ax.set_ylabel(target)
            ax.legend(loc="best")
            ax.grid(alpha=0.3)
        axes[-1][0].set_xlabel(time_name)
        if config.data.time_column:
            fig.autofmt_xdate()
    return path
