"""The run's figures as PNG files (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from forecast.config.schema import Config
from forecast.data.reading import Panel
from forecast.forecasting.intervals import label
from forecast.runs import atomic

log = logging.getLogger("forecast")


# Fonts with Chinese glyphs, in order of preference; DejaVu Sans (matplotlib's default) has none.
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "AR PL UMing CN",
)
_CJK = re.compile(r"[\u3000-\u9fff\uf900-\ufaff\uff00-\uffef]")


def _pyplot() -> ModuleType:  # matplotlib.pyplot, with the Agg backend
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _use_fonts_for(labels: list[str]) -> None:
    """Chinese column names (GB18030 files) need a CJK font; use one if installed."""
    if not any(_CJK.search(label) for label in labels):
        return
    from matplotlib import font_manager, rcParams

    found = _cjk_fonts(font_manager.fontManager)
    if not found and hasattr(font_manager, "_load_fontmanager"):
        # matplotlib lists fonts from a cache made before a font installed since: rebuild it
        font_manager.fontManager = font_manager._load_fontmanager(try_read_cache=False)
        found = _cjk_fonts(font_manager.fontManager)
    if found:
        rcParams["font.sans-serif"] = [*found, *rcParams["font.sans-serif"]]
        rcParams["font.family"] = "sans-serif"
        rcParams["axes.unicode_minus"] = False
    else:
        import matplotlib

        log.warning(
            "no font with Chinese characters is installed (matplotlib's font list, cached in "
            "%s, was rebuilt and has none), so Chinese labels show as boxes; install one "
            "(Debian/Ubuntu: apt-get install fonts-noto-cjk) and run plot again",
            matplotlib.get_cachedir(),
        )
    warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)


def _cjk_fonts(manager: Any) -> list[str]:
    installed = {font.name for font in manager.ttflist}
    return [name for name in CJK_FONTS if name in installed]


@contextlib.contextmanager
def _figure(path: Path, *args: Any, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
    """`plt.subplots(*args, **kwargs)`; after the block, the figure is laid out and written
    through a temporary file and a rename (a Ctrl-C never leaves a truncated PNG under the
    final name), and it is always freed."""
    plt = _pyplot()
    fig, axes = plt.subplots(*args, **kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        atomic.write_atomic(
            path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"), suffix=".png"
        )
    finally:
        plt.close(fig)


def _times(values: pd.Series, config: Config) -> pd.Series:
    """Dates as datetimes (so the axis shows dates), step numbers as they are."""
    if config.data.time_column is None or pd.api.types.is_numeric_dtype(values):
        return values
    return pd.to_datetime(values)


def _bands(
    ax: Any, times: Any, bands: list[tuple[str, Any, Any]], color: str, legend: bool = True
) -> None:
    """Shade prediction intervals, the widest level lightest: bands [(level, lo, hi)]."""
    ordered = sorted(bands, key=lambda band: -float(band[0]))
    for i, (level, lo, hi) in enumerate(ordered):
        ax.fill_between(
            times,
            np.asarray(lo, dtype=float),
            np.asarray(hi, dtype=float),
            color=color,
            alpha=0.15 + 0.15 * i,
            linewidth=0,
            label=f"{level}% interval" if legend else None,
        )


def _height(panels: int) -> float:
    """Inches: 3.6 per panel, at least 6 (every PNG at least 1200 x 600 px at 100 dpi)."""
    return max(6.0, 3.6 * panels)


def _line(ax: Any, x: Any, y: Any, label: str, color: str, width: float) -> None:
    """A line, with markers where it has few points (one test origin draws a dot, not
    nothing)."""
    markers = {"marker": "o", "markersize": 4} if len(x) <= 30 else {}
    ax.plot(x, y, color=color, linewidth=width, label=label, **markers)


def _levels(columns: Any, prefix: str) -> list[str]:
    """Interval levels present as `<prefix>lo_L` columns, as written."""
    return [c[len(prefix) + 3 :] for c in columns if c.startswith(f"{prefix}lo_")]


SHOWN_BY_DEFAULT = 300  # test origins drawn in detail when there are more than ...
OVERVIEW_FROM = 500  # ... this many: the rest is in an overview panel above


def draw_run(run_dir: Path, config: Config, out_dir: Path, last: int | None = None) -> list[Path]:
    """The run's PNGs. `last`: draw only the last N test origins (0: all); by default all up
    to 500 origins, else the last 300 in detail under an overview of the whole test split."""
    if config.data.id_column is not None:
        return draw_panel_run(run_dir, config, out_dir)
    _use_fonts_for(config.data.columns + [config.data.time_column or ""])
    written = [
        _test_forecast(run_dir, config, out_dir, last),
        _loss(run_dir, config, out_dir),
    ]
    future = _future(run_dir, config, out_dir)
    if future is not None:
        written.append(future)
    return written


def _test_forecast(run_dir: Path, config: Config, out_dir: Path, last: int | None) -> Path:
    frame = pd.read_csv(run_dir / "test_predictions.csv")
    frame["time"] = _times(frame["time"], config)
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
    with _figure(
        path,
        panels,
        columns,
        figsize=(12 if columns == 1 else 16, _height(len(targets)) + (2.4 if overview else 0)),
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
    axes_row: Any, frame: pd.DataFrame, target: str, horizon: int, origins: int, last: int
) -> None:
    rows = frame[frame["target"] == target]
    ax = axes_row[0]
    first = rows[rows["step"] == 1]
    # every actual the test rows hold: the last origins' later steps reach past the step-1
    # rows by horizon - 1
    actual = rows[["time", "actual"]].drop_duplicates("time").sort_values("time")
    _line(ax, actual["time"], actual["actual"], "actual", "black", 1.2)
    _line(ax, first["time"], first["predicted"], "predicted, step 1", "tab:blue", 1.0)
    bands = [(lv, first[f"lo_{lv}"], first[f"hi_{lv}"]) for lv in _levels(rows, "")]
    _bands(ax, first["time"], bands, "tab:blue")
    if horizon > 1:
        final = rows[rows["step"] == horizon]
        _line(
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


def _loss(run_dir: Path, config: Config, out_dir: Path) -> Path:
    """Train and validation loss per epoch; where early stopping restored the best epoch's
    weights, a vertical line there; and the final fit's loss on every row, if it ran."""
    import json

    from matplotlib.ticker import MaxNLocator

    history = pd.read_csv(run_dir / "history.csv")
    info_path, final_path = run_dir / "run.json", run_dir / "final_history.csv"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    final = pd.read_csv(final_path) if final_path.is_file() else None
    best = info.get("best_epoch")
    path = out_dir / "loss.png"
    with _figure(path, figsize=(12, 6)) as (fig, ax):
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


def _future(run_dir: Path, config: Config, out_dir: Path) -> Path | None:
    forecast_csv, history_csv = run_dir / "forecast.csv", run_dir / "forecast_history.csv"
    if not (forecast_csv.is_file() and history_csv.is_file()):
        return None
    future = _read_forecast(forecast_csv, config)
    history = pd.read_csv(history_csv)
    time_name = future.columns[0]
    future[time_name] = _times(future[time_name], config)
    history[time_name] = _times(history[time_name], config)
    targets = [t for t in config.data.targets if t in future.columns]
    path = out_dir / "forecast.png"
    with _figure(path, len(targets), 1, figsize=(12, _height(len(targets))), squeeze=False) as (
        fig,
        axes,
    ):
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
            levels = _levels(future.columns, f"{target}_")
            bands = [
                (lv, future[f"{target}_lo_{lv}"], future[f"{target}_hi_{lv}"]) for lv in levels
            ]
            _bands(ax, future[time_name], bands, "tab:orange")
            ax.set_title(f"{target}: next {len(future)} step(s)")
            ax.set_ylabel(target)
            ax.legend(loc="best")
            ax.grid(alpha=0.3)
        axes[-1][0].set_xlabel(time_name)
        if config.data.time_column:
            fig.autofmt_xdate()
    return path


def _read_forecast(path: Path, config: Config) -> pd.DataFrame:
    """forecast.csv, written in the input's encoding (or predict --encoding): the config's
    encoding first, then the detected one; the one whose header holds the targets."""
    import codecs

    from forecast.data.csvfile import file_encoding
    from forecast.errors import RunError

    raw = path.read_bytes()
    tried = [config.data.encoding] if config.data.encoding != "auto" else []
    for encoding in [*tried, file_encoding(raw), "utf-8", "gb18030"]:
        try:
            frame = pd.read_csv(io.StringIO(codecs.decode(raw, encoding)))
        except (UnicodeDecodeError, LookupError, ValueError):
            continue
        if any(t in frame.columns for t in config.data.targets):
            return frame
    raise RunError(
        f"{path}: holds none of the targets' columns in any encoding tried; run predict again"
    )


def backtest_figure(
    frame: pd.DataFrame,  # (rows, columns) original units, indexed by time
    config: Config,
    origins: np.ndarray,  # (K,) rows
    forecasts: np.ndarray,  # (K, H, targets)
    path: Path,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,  # lo, hi (levels, K, H, targets)
) -> Path:
    """The actual series around the folds, with each fold's forecast drawn from its origin
    and its intervals shaded."""
    plt = _pyplot()
    _use_fonts_for(config.data.columns + [config.data.time_column or ""])
    horizon = forecasts.shape[1]
    start = max(0, int(origins[0]) - max(3 * horizon, 2 * config.window.input_steps, 30))
    shown = frame.iloc[start:]
    targets = list(config.data.targets)
    with _figure(path, len(targets), 1, figsize=(12, _height(len(targets))), squeeze=False) as (
        fig,
        axes,
    ):
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
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
                    _bands(ax, times[1:], bands, colors[k % len(colors)], legend=k == 0)
            ax.set_title(f"{target}: backtest, {len(origins)} fold(s) of {horizon} step(s)")
            ax.set_ylabel(target)
            ax.legend(loc="best", fontsize="small")
            ax.grid(alpha=0.3)
        axes[-1][0].set_xlabel(config.data.time_column or "step")
        if config.data.time_column:
            fig.autofmt_xdate()
    return path


# --------------------------------------------------------------------------- long tables

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


def _grid(count: int) -> tuple[int, int]:
    columns = 1 if count == 1 else 2
    return -(-count // columns), columns


def _series_title(sid: str, why: str, block: dict[str, Any] | None) -> str:
    if block is None:
        return sid
    ours, naive = block["model"]["mase"], block["baselines"]["seasonal_naive"]["mase"]
    scores = f"MASE {ours:.3g}" if ours is not None else "MASE n/a"
    if naive is not None:
        scores += f", seasonal naive {naive:.3g}"
    return f"{sid}{f' ({why})' if why else ''}: {scores}"


def _series_axes(ax: Any, title: str, target: str, legend: bool) -> None:
    """One series' panel: title, label, grid, slanted dates; the legend on the first only."""
    ax.set_title(title, fontsize="medium")
    ax.set_ylabel(target)
    ax.grid(alpha=0.3)
    ax.tick_params(axis="x", labelrotation=30)
    if legend:
        ax.legend(loc="best", fontsize="small")


def _hide_spare(axes: Any, used: int) -> None:
    """Blank the grid's cells after the first `used` (row-major)."""
    for ax in axes.ravel()[used:]:
        ax.axis("off")


def draw_panel_run(run_dir: Path, config: Config, out_dir: Path) -> list[Path]:
    """A long table's PNGs: the test forecasts of a handful of series, the per-series MASE
    against seasonal naive's, the loss, and the forecast after predict."""
    import json

    id_column = config.data.id_column
    _use_fonts_for(config.data.columns + [config.data.time_column or "", str(id_column)])
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    per_series = metrics["per_series"]
    frame = pd.read_csv(run_dir / "test_predictions.csv", dtype={id_column: str})
    frame["time"] = _times(frame["time"], config)
    target = config.data.targets[0]
    chosen = chosen_series(per_series)
    rows, columns = _grid(len(chosen))
    path = out_dir / "test_forecast.png"
    horizon = int(frame["step"].max())
    with _figure(path, rows, columns, figsize=(16, _height(rows)), squeeze=False) as (fig, axes):
        for n, (sid, why) in enumerate(chosen):
            ax = axes[n // columns][n % columns]
            one = frame[(frame[id_column] == sid) & (frame["target"] == target)]
            first = one[one["step"] == 1]
            actual = one[["time", "actual"]].drop_duplicates("time").sort_values("time")
            _line(ax, actual["time"], actual["actual"], "actual", "black", 1.2)
            _line(ax, first["time"], first["predicted"], "predicted, step 1", "tab:blue", 1.0)
            bands = [(lv, first[f"lo_{lv}"], first[f"hi_{lv}"]) for lv in _levels(one, "")]
            _bands(ax, first["time"], bands, "tab:blue", legend=n == 0)
            if horizon > 1:
                final = one[one["step"] == horizon]
                _line(ax, final["time"], final["predicted"], f"predicted, step {horizon}",
                      "tab:orange", 1.0)  # fmt: skip
            _series_axes(ax, _series_title(sid, why, per_series.get(sid)), target, n == 0)
        _hide_spare(axes, len(chosen))
        fig.suptitle(
            f"{target}: test split of {len(chosen)} of {len(per_series)} series ({id_column})"
        )
    written = [path, _series_mase(per_series, config, out_dir), _loss(run_dir, config, out_dir)]
    future = _panel_future(run_dir, config, out_dir)
    if future is not None:
        written.append(future)
    return written


def _series_mase(per_series: dict[str, Any], config: Config, out_dir: Path) -> Path:
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
    with _figure(path, 1, 2, figsize=(16, 6)) as (fig, (scatter, hist)):
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


def _panel_future(run_dir: Path, config: Config, out_dir: Path) -> Path | None:
    forecast_csv, history_csv = run_dir / "forecast.csv", run_dir / "forecast_history.csv"
    if not (forecast_csv.is_file() and history_csv.is_file()):
        return None
    id_column = str(config.data.id_column)
    future = _read_forecast(forecast_csv, config)
    history = pd.read_csv(history_csv, dtype={id_column: str})
    if id_column not in future.columns or id_column not in history.columns:
        return None
    future[id_column] = future[id_column].astype(str)
    time_name = future.columns[1]
    future[time_name] = _times(future[time_name], config)
    history[time_name] = _times(history[time_name], config)
    target = config.data.targets[0]
    ids = list(dict.fromkeys(future[id_column]))[:PANELS]
    rows, columns = _grid(len(ids))
    path = out_dir / "forecast.png"
    with _figure(path, rows, columns, figsize=(16, _height(rows)), squeeze=False) as (fig, axes):
        for n, sid in enumerate(ids):
            ax = axes[n // columns][n % columns]
            past = history[history[id_column] == sid]
            ahead = future[future[id_column] == sid]
            if target in past.columns and len(past):
                ax.plot(
                    past[time_name], past[target], color="black", linewidth=1.2, label="history"
                )
            _line(ax, ahead[time_name], ahead[target], "forecast", "tab:orange", 1.5)
            levels = _levels(ahead.columns, f"{target}_")
            bands = [(lv, ahead[f"{target}_lo_{lv}"], ahead[f"{target}_hi_{lv}"]) for lv in levels]
            _bands(ax, ahead[time_name], bands, "tab:orange", legend=n == 0)
            _series_axes(ax, f"{sid}: next {len(ahead)} step(s)", target, n == 0)
        _hide_spare(axes, len(ids))
        shown = len(ids)
        total = future[id_column].nunique()
        fig.suptitle(f"{target}: forecast of {shown} of {total} series ({id_column})")
    return path


def panel_backtest_figure(
    panel: Panel, config: Config, report: dict[str, Any],
    forecasts: list[dict[str | None, np.ndarray]],
    backs: list[int], path: Path,
) -> Path:  # fmt: skip
    """A long table's backtest: a handful of series (the worst and best by MASE beyond
    PANELS), each with its folds' forecasts from their origins."""
    plt = _pyplot()
    id_column = config.data.id_column
    _use_fonts_for(config.data.columns + [config.data.time_column or "", str(id_column)])
    chosen = chosen_series(report["per_series"])
    rows, columns = _grid(len(chosen))
    target = config.data.targets[0]
    k = config.data.targets.index(target)
    horizon = config.window.horizon
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    with _figure(path, rows, columns, figsize=(16, _height(rows)), squeeze=False) as (fig, axes):
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
            title = _series_title(sid, why, report["per_series"].get(sid))
            _series_axes(ax, title, target, n == 0)
        _hide_spare(axes, len(chosen))
        fig.suptitle(
            f"{target}: backtest of {len(chosen)} of {len(report['per_series'])} series, "
            f"{len(backs)} fold(s) of {horizon} step(s)"
        )
    return path
