"""What a training run and a backtest write into their partial run folder.

A partial run holds `backup/` (the training checkpoint, see forecast.fitting.training) while the
model trains, then `held_out.keras` and `fit.json` once `fit` has returned, and
`model.keras` with `final.json` once the final fit on every row has, so an interruption
keeps whatever was trained and `--resume` goes on from there (the held-out evaluation always
uses the held-out model). The results, history.csv and, last, run.json follow; a backtest
writes config.yaml, backtest.json and its figure.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast import __version__
from forecast.config.file import config_to_yaml
from forecast.config.schema import Config
from forecast.data.panel import PreparedPanel
from forecast.data.prepare import Prepared
from forecast.data.reading import Panel, Series
from forecast.data.timesteps import time_labels
from forecast.forecasting.intervals import Calibration
from forecast.runs.atomic import write_atomic, write_json, write_text_atomic
from forecast.runs.layout import FORMAT_VERSION, discard, finish, stamp, start_partial
from forecast.runs.read import load_model

HISTORY_COLUMNS = ["epoch", "loss", "val_loss", "learning_rate", "seconds"]


def write_config(partial: Path, config_text: str) -> None:
    """config.yaml: the config as `forecast.config.file.config_to_yaml` writes it."""
    write_text_atomic(partial / "config.yaml", config_text)


def fit_record(result: Any, info: dict[str, Any]) -> dict[str, Any]:
    """What a run keeps of a fit (a callbacks.FitResult and fitting.fit.fit's info)."""
    return {
        "history": result.history,
        "best_epoch": result.best_epoch,
        "stopped_epoch": result.stopped_epoch,
        **info,
    }


def save_fitted(partial: Path, model: Any, fitted: dict[str, Any]) -> None:
    """Keep the held-out model as soon as `fit` returns: held_out.keras, then fit.json
    (history, best epoch, timings...), which marks it as complete."""
    save_model(partial / "held_out.keras", model)
    write_json(partial / "fit.json", fitted)


def save_final(partial: Path, model: Any, info: dict[str, Any]) -> None:
    """The final fit on every row: model.keras, then final.json, which marks it complete.
    `model` None: the held-out model is the final one (a copy of held_out.keras)."""
    if model is None:
        held_out = partial / "held_out.keras"
        write_atomic(partial / "model.keras", lambda tmp: shutil.copyfile(held_out, tmp), ".keras")
    else:
        save_model(partial / "model.keras", model)
    write_json(partial / "final.json", info)


def load_final(partial: Path) -> dict[str, Any] | None:
    """final.json of a final fit that finished before an interruption, else None."""
    path = partial / "final.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def keep_held_out(partial: Path) -> None:
    """Without a final fit, the held-out model is the run's model.keras."""
    os.replace(partial / "held_out.keras", partial / "model.keras")


def drop_resume_files(partial: Path) -> None:
    """What only --resume needs; its content is in model.keras, history.csv and run.json."""
    for name in ("held_out.keras", "fit.json", "final.json"):
        (partial / name).unlink(missing_ok=True)
    shutil.rmtree(partial / MEMBERS, ignore_errors=True)


MEMBERS = "members"  # an independent ensemble's finished held-out members, for --resume


def save_member(
    partial: Path, number: int, weights: dict[str, Any], record: dict[str, Any]
) -> None:
    """Member `number`'s weights (layer -> arrays, .npz without pickled objects), then its
    record (.json, which marks it complete), as soon as its fit ends."""
    folder = partial / MEMBERS
    folder.mkdir(exist_ok=True)
    arrays = {f"{layer}/{i}": a for layer, values in weights.items() for i, a in enumerate(values)}
    write_atomic(folder / f"member_{number}.npz", lambda tmp: np.savez(tmp, **arrays), ".npz")
    write_json(folder / f"member_{number}.json", record)


def members_kept(partial: Path) -> int:
    """How many finished members `save_member` kept in this partial run."""
    return len(list((partial / MEMBERS).glob("member_*.json")))


def load_members(partial: Path) -> dict[int, tuple[dict[str, list[Any]], dict[str, Any]]]:
    """The members `save_member` kept: number -> (weights, record)."""
    kept = {}
    for path in sorted((partial / MEMBERS).glob("member_*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        weights: dict[str, list[Any]] = {}
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as arrays:
            for key in sorted(
                arrays.files, key=lambda k: (k.rpartition("/")[0], int(k.rpartition("/")[2]))
            ):
                weights.setdefault(key.rpartition("/")[0], []).append(arrays[key])
        kept[int(record["member"])] = (weights, record)
    return kept


def save_model(path: Path, model: Any) -> None:
    """Keras native format, through a temporary file and a rename."""
    write_atomic(path, model.save, suffix=".keras")


def load_fitted(partial: Path) -> tuple[Any, dict[str, Any]] | None:
    """The model and fit.json that `save_fitted` kept, or None if training did not finish."""
    if not (partial / "fit.json").is_file():
        return None
    info = json.loads((partial / "fit.json").read_text(encoding="utf-8"))
    return load_model(partial / "held_out.keras"), info


def write_results(
    partial: Path,
    prepared: PreparedPanel,
    fitted: dict[str, Any],
    metrics: dict[str, Any],
    predictions: pd.DataFrame,
    calibration: Calibration | dict[str, Calibration] | None = None,  # a long table's: per id
) -> None:
    """scaler.json, history.csv, metrics.json, test_predictions.csv and, with intervals,
    intervals.json (the calibrated half-widths `predict` uses)."""
    one = prepared.one
    if one is not None:  # one series' own files
        one.scaler.save(partial / "scaler.json")
        if isinstance(calibration, Calibration):
            write_json(partial / "intervals.json", calibration.to_json())
    else:
        scalers = {sid: m.scaler.to_dict() for sid, m in prepared.members.items()}
        write_json(
            partial / "scaler.json",
            {"format_version": 1, "id_column": prepared.config.data.id_column, "series": scalers},
        )
        if isinstance(calibration, dict) and calibration:
            series = {sid: c.to_json() for sid, c in calibration.items()}
            write_json(partial / "intervals.json", {"series": series})
    write_history(partial / "history.csv", fitted["history"])
    write_json(partial / "metrics.json", metrics)
    write_text_atomic(partial / "test_predictions.csv", predictions.to_csv(index=False))


def write_history(path: Path, rows: list[dict[str, float]]) -> None:
    """history.csv's columns, one row per epoch: the held-out fit's history.csv, and the
    final fit's final_history.csv (without val_loss, as it has no validation rows)."""
    write_text_atomic(path, pd.DataFrame(rows, columns=HISTORY_COLUMNS).to_csv(index=False))


def write_run_info(
    partial: Path,
    prepared: PreparedPanel,
    fitted: dict[str, Any],
    timings: dict[str, Any],
    final_fit: dict[str, Any] | None = None,
) -> None:
    """run.json, written last: a run directory with run.json is complete. `epochs_run` and
    `best_epoch` are the held-out fit's; `final_fit` (rows, epochs) the refit on every row."""
    info = run_info(prepared, timings) | {
        "strategy": fitted["strategy"],
        "unroll": fitted["unroll"],
        "jit_compile": fitted.get("jit_compile"),  # what the held-out fit ran (auto decided)
        "epochs_run": len(fitted["history"]),
        "best_epoch": fitted["best_epoch"],
        "final_fit": {k: v for k, v in final_fit.items() if k != "seconds"} if final_fit else False,
    }
    if "members" in fitted:  # an independent ensemble: each member's own fit, and where
        info["members"] = fitted["members"]
        info["fanout"] = fitted["fanout"]
    write_json(partial / "run.json", info)


def write_forecast_history(
    run_dir: Path, series: Series | Panel, config: Config, steps: int
) -> None:
    """forecast_history.csv: the history tail that forecast.png draws before the forecast
    (of every series of a long table, its id column first)."""
    members = series.members if isinstance(series, Panel) else {None: series}
    parts = []
    for sid, one in members.items():
        tail = one.frame.iloc[-max(4 * steps, 3 * config.window.input_steps, 50) :]
        history = pd.DataFrame({config.data.time_column or "step": time_labels(tail.index)})
        if sid is not None:
            history.insert(0, config.data.id_column, sid)
        for target in config.data.targets:
            if target in tail.columns:
                history[target] = tail[target].to_numpy()
        parts.append(history)
    table = pd.concat(parts, ignore_index=True)
    write_text_atomic(run_dir / "forecast_history.csv", table.to_csv(index=False))


def run_info(prepared: PreparedPanel, timings: dict[str, Any]) -> dict[str, Any]:
    """run.json: versions, data, seed, model, rows, split and timings (of one series, or a
    long table's series)."""
    one = prepared.one
    if one is None:
        return _panel_info(prepared, timings)
    return _series_info(one, prepared.params, timings)


def _series_info(prepared: Prepared, params: int, timings: dict[str, Any]) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    cfg, split, lag = prepared.config, prepared.fit_split, prepared.lag
    first, last = time_labels(prepared.series.index[[0, len(prepared.values) - 1]])
    return {
        "format_version": FORMAT_VERSION,
        "name": cfg.name,
        "finished": datetime.now(timezone.utc).isoformat(),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "forecast": __version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "data": {
            "path": str(prepared.series.path),
            "sha256": prepared.series.sha256,
            "rows": len(prepared.values),
            "first": first,
            "last": last,
        },
        "seed": cfg.seed,
        "layout": cfg.layout,
        "model": cfg.model.describe(),
        "residual": cfg.model.residual,  # what `auto` chose, when it was asked for
        "parameters": params,
        "rows": {
            "train_windows": len(split.train_origins),
            "val_windows": len(split.val_origins),
            "test_origins": len(split.test_origins),
        },
        "split": {
            "transform_lag": lag,
            "val_start": split.val_start + lag,
            "test_start": split.test_start + lag,
            "rows": len(prepared.values),
        },
        "timings": timings,
    }


def _panel_info(panel: PreparedPanel, timings: dict[str, Any]) -> dict[str, Any]:
    """run.json of a long table: as for one series, with `data.series` (how many trained,
    which were left out) and `split` per series (rows, val_start, test_start)."""
    combined = panel.combined
    info = _series_info(next(iter(panel.members.values())), panel.params, timings)
    split = combined.fit_split
    info["data"] = {
        "path": str(panel.panel.path),
        "sha256": panel.panel.sha256,
        "id_column": panel.config.data.id_column,
        "series": len(panel.members),
        "skipped": list(panel.skipped),
        "rows": int(sum(len(m.values) for m in panel.members.values())),
    }
    info["rows"] = {
        "train_windows": len(split.train_origins),
        "val_windows": len(split.val_origins),
        "test_origins": int(sum(len(m.fit_split.test_origins) for m in panel.members.values())),
    }
    info["split"] = {
        "transform_lag": combined.lag,
        "series": {
            sid: {
                "rows": len(m.values),
                "val_start": m.fit_split.val_start + m.lag,
                "test_start": m.fit_split.test_start + m.lag,
                "first": time_labels(m.series.index[[0]])[0],
                "last": time_labels(m.series.index[[len(m.values) - 1]])[0],
            }
            for sid, m in panel.members.items()
        },
    }
    return info


def write_backtest(
    runs_dir: Path,
    config: Config,
    report: dict[str, Any],
    draw: Callable[[Path], Any],
) -> Path:
    """A run directory `<name>-backtest-<stamp>` with config.yaml, backtest.json and the
    figure `draw(path)` makes; returns the directory."""
    name = f"{config.name or 'run'}-backtest"
    when = stamp()
    partial = start_partial(runs_dir, name, when)
    try:
        write_config(partial, config_to_yaml(config))
        write_json(partial / "backtest.json", report)
        draw(partial / "backtest.png")
        return finish(partial, runs_dir, name, when)
    except BaseException:
        discard(partial)
        raise
