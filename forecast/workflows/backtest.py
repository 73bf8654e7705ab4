"""Rolling-origin evaluation: K origins `horizon` rows apart, the last fold ending at the last row.

Each fold refits everything (holes, transform, scaler, model) on the rows up to and including
its origin and forecasts the next `horizon` rows; the model and the baselines are scored on
them. `run_fold` is one fold, a plain function of (config, series, origin) that a worker
process can run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from forecast.config.schema import Config
from forecast.data.missing import fill_missing
from forecast.data.reading import Series
from forecast.data.timesteps import time_labels
from forecast.errors import ConfigError, DataError
from forecast.forecasting.evaluation import BASELINES, METRICS, evaluate, verdict
from forecast.forecasting.intervals import clip_note
from forecast.pipeline import (
    SHARED,
    Compiled,
    calibrate_intervals,
    choose_residual,
    fit,
    forecast,
    prepare,
    score_intervals,
)

log = logging.getLogger("forecast")


def backtest_origins(rows: int, folds: int, horizon: int, step: int | None = None) -> np.ndarray:
    """K origins `step` rows apart (default `horizon`); the last fold's forecast ends at the
    last row."""
    last = rows - 1 - horizon
    return last - (horizon if step is None else step) * np.arange(folds - 1, -1, -1)


@dataclass
class Fold:
    report: dict[str, Any]  # backtest.json's entry for the fold
    forecast: np.ndarray  # (H, K) original units
    season: int
    bounds: tuple[np.ndarray, np.ndarray] | None = None  # lo, hi (levels, 1, H, K)


def check_folds(config: Config, series: Series, folds: int, step: int | None = None) -> np.ndarray:
    """The folds' origins, or a user error when the series cannot hold them."""
    if folds < 1:
        raise ConfigError(f"--folds must be >= 1, got {folds}")
    if step is not None and step < 1:
        raise ConfigError(f"--step must be >= 1 (rows between fold origins), got {step}")
    horizon = config.window.horizon
    origins = backtest_origins(len(series.frame), folds, horizon, step)
    if origins[0] < 0:
        apart = "" if step is None else f", {step} rows apart"
        raise DataError(
            f"{series.path}: {len(series.frame)} rows cannot hold {folds} folds of horizon "
            f"{horizon}{apart}; use fewer --folds{' or a smaller --step' if step else ''}"
        )
    prepare(config, series, rows=int(origins[0]) + 1)  # the first fold has the fewest rows
    return origins


def run_fold(
    config: Config, series: Series, origin: int, number: int, compiled: Compiled | None = None
) -> Fold:
    """Refit on rows [0, origin] and forecast rows origin+1 .. origin+horizon; with
    `compiled`, reusing the models an earlier fold built (pipeline.Compiled)."""
    import_tensorflow()
    started = time.perf_counter()
    horizon = config.window.horizon
    prepared = choose_residual(prepare(config, series, rows=origin + 1))
    compiled = compiled if compiled is not None else Compiled()
    model, _, _ = fit(prepared, quiet=True, compiled=compiled)
    data = prepared.config.data  # data.calendar: auto made concrete
    forecaster = compiled.forecaster(model, data.inputs, data.targets)
    work_origin = np.array([len(prepared.scaled) - 1])  # the fold's last row
    predicted = forecast(prepared, forecaster, work_origin, horizon)  # (1, H, K)
    calibration, missing = calibrate_intervals(prepared, forecaster)
    report, bounds = score_fold(
        config, series, origin, number, predicted, prepared.season, calibration, missing
    )
    report["seconds"] = round(time.perf_counter() - started, 3)
    return Fold(report, predicted[0], prepared.season, bounds)


def score_fold(
    config: Config,
    series: Series,
    origin: int,  # original row
    number: int,
    predicted: np.ndarray,  # (1, H, K) original units
    season: int,
    calibration: Any,
    missing: str | None,
    head: dict[str, Any] | None = None,  # keys that come first (a long table's id)
) -> tuple[dict[str, Any], Any]:
    """backtest.json's row for a fold's forecast from `origin`: dates, model and baselines
    scored on the next horizon rows, intervals; and the interval bounds (or None)."""
    data, horizon = config.data, config.window.horizon
    # actuals in hindsight: holes in the fold's future are filled from the whole series
    actual = fill_missing(series.values, [len(series.frame)])[:, data.target_index]
    scores = evaluate(actual, np.array([origin]), predicted, data.targets, season, origin + 1)
    times = time_labels(series.index)
    report = {
        **(head or {}),
        "fold": number,
        "origin": times[origin],
        "test_start": times[origin + 1],
        "test_end": times[origin + horizon],
        "model": scores["model"],
        "baselines": scores["baselines"],
        "per_target": scores["per_target"],
    }
    bounds = score_intervals(
        report, calibration, missing, actual, np.array([origin]), predicted, season, origin + 1
    )
    return report, bounds


def run_backtest(
    config: Config, series: Series, origins: np.ndarray, quiet: bool, workers: int = 1
) -> tuple:
    """Every fold, in turn or in `workers` processes: (backtest.json's content, forecasts
    (folds, H, K), interval bounds lo, hi (levels, folds, H, K) or None)."""
    horizon = config.window.horizon
    times = time_labels(series.index)

    def said(fold: Fold, number: int) -> None:
        if not quiet:
            mase = fold.report["model"]["mase"]
            shown = "n/a" if mase is None else f"{mase:.3g}"
            log.info("fold %d/%d: model MASE %s", number, len(origins), shown)

    if workers > 1 and len(origins) > 1:
        folds = _parallel_folds(config, series, origins, workers, quiet, said)
    else:
        folds = []
        compiled = SHARED  # every fold reuses the models an earlier fold (or backtest) built
        for number, origin in enumerate(origins, start=1):
            if not quiet:
                log.info(
                    "fold %d/%d: origin %s, fitting on %d rows, forecasting %s .. %s",
                    number,
                    len(origins),
                    times[origin],
                    origin + 1,
                    times[origin + 1],
                    times[origin + horizon],
                )
            folds.append(run_fold(config, series, int(origin), number, compiled))
            said(folds[-1], number)
    reports = [f.report for f in folds]
    if not quiet and (note := clip_note(reports, "folds")):
        log.info("%s", note)
    result = {
        "layout": config.layout,
        "horizon": horizon,
        "step": int(origins[1] - origins[0]) if len(origins) > 1 else horizon,
        "folds": reports,
        "mean": mean_of_folds(reports),
        "season_length": folds[0].season,
    }
    where = f"averaged over {len(origins)} backtest folds"
    result["verdict"] = verdict(result["mean"], config.model.label(), where=where)
    bounds = None
    if all(f.bounds is not None for f in folds):
        lo = np.concatenate([f.bounds[0] for f in folds], axis=1)  # (levels, folds, H, K)
        bounds = (lo, np.concatenate([f.bounds[1] for f in folds], axis=1))
    return result, np.stack([f.forecast for f in folds]), bounds


INTERVAL_SCORES = ("coverage", "width", "msis")


def mean_of_folds(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each metric's mean over the folds where it is defined (null where it is nowhere)."""

    def mean(block: list[dict[str, Any]], metric: str) -> float | None:
        values = [b[metric] for b in block if b[metric] is not None]
        return float(np.mean(values)) if values else None

    def baseline(name: str) -> dict[str, Any]:
        blocks = [f["baselines"][name] for f in folds]
        out = {m: mean(blocks, m) for m in METRICS}
        reasons = [b["unavailable"] for b in blocks if "unavailable" in b]
        if reasons and len(reasons) == len(blocks):
            out["unavailable"] = reasons[0]
        return out

    out = {
        "model": {m: mean([f["model"] for f in folds], m) for m in METRICS},
        "baselines": {name: baseline(name) for name in BASELINES},
    }
    scored = [
        f["intervals"] for f in folds if "intervals" in f and "unavailable" not in f["intervals"]
    ]
    if scored:
        out["intervals"] = {
            level: {
                **{m: mean([s[level] for s in scored], m) for m in INTERVAL_SCORES},
                "seasonal_naive": {
                    m: mean([s[level]["seasonal_naive"] for s in scored], m)
                    for m in INTERVAL_SCORES
                },
            }
            for level in scored[0]
        }
    elif folds and "intervals" in folds[0]:
        out["intervals"] = folds[0]["intervals"]  # unavailable in every fold, with the reason
    return out


def _parallel_folds(
    config: Config, series: Series, origins: np.ndarray, workers: int, quiet: bool, said: Any
) -> list[Fold]:
    """The folds in `workers` fresh processes (spawned: no TensorFlow state is forked), the
    machine's cores shared out between them; the config goes as its YAML, the folds come
    back in order."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from forecast.config.file import config_to_yaml

    workers = min(workers, len(origins))
    threads = max(1, (os.cpu_count() or 1) // workers)
    if not quiet:
        log.info(
            "%d folds in %d worker processes, %d thread(s) each", len(origins), workers, threads
        )
    text = config_to_yaml(config)
    folds: dict[int, Fold] = {}
    with ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(threads,),
    ) as pool:
        running = {
            pool.submit(fold_in_worker, text, series, int(origin), number): number
            for number, origin in enumerate(origins, start=1)
        }
        for done in as_completed(running):
            number = running[done]
            folds[number] = done.result()
            said(folds[number], number)
    return [folds[n] for n in sorted(folds)]


def _start_worker(threads: int) -> None:
    import logging as _logging

    _logging.getLogger("forecast").setLevel(_logging.WARNING)
    import_tensorflow()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def fold_in_worker(config_yaml: str, series: Series, origin: int, number: int) -> Fold:
    """`run_fold` in a worker process, from the config's YAML (what a run directory keeps)."""
    import yaml

    from forecast.config.file import validate_config

    config = validate_config(yaml.safe_load(config_yaml), source="backtest worker")
    return run_fold(config, series, origin, number)


def import_tensorflow() -> None:
    from forecast.model.tf_setup import import_tensorflow_quietly

    import_tensorflow_quietly()


# --------------------------------------------------------------------------- long tables


def panel_backs(config: Config, panel: Any, folds: int, step: int | None = None) -> list[int]:
    """For each fold, the rows left out at the end of every series of a long table (the
    last fold's forecast ends at each series' last row), or a user error when no series can
    hold the first fold."""
    if folds < 1:
        raise ConfigError(f"--folds must be >= 1, got {folds}")
    if step is not None and step < 1:
        raise ConfigError(f"--step must be >= 1 (rows between fold origins), got {step}")
    horizon = config.window.horizon
    apart = horizon if step is None else step
    backs = [horizon + apart * (folds - k) for k in range(1, folds + 1)]
    from forecast.panel import prepare_panel

    prepare_panel(config, panel, back=backs[0])  # the first fold has the fewest rows
    return backs


def run_panel_fold(
    config: Config, panel: Any, back: int, number: int, compiled: Compiled | None = None
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], int]:
    """One fold of a long table: one model refitted on every series' rows up to its own
    origin (its last `back` rows left out), each series forecast from there and scored on
    its own scale: (backtest.json rows, id -> forecast (H, K), the model's season)."""
    from forecast.panel import calibrate_members, forecast_members, prepare_panel

    import_tensorflow()
    started = time.perf_counter()
    data, horizon = config.data, config.window.horizon
    prepared = prepare_panel(config, panel, back=back)
    prepared = prepared.with_config(choose_residual(prepared.combined).config)
    compiled = compiled if compiled is not None else Compiled()
    model, _, _ = fit(prepared.combined, quiet=True, compiled=compiled)
    inputs = prepared.config.data.inputs  # data.calendar: auto made concrete
    forecaster = compiled.forecaster(model, inputs, data.targets)
    last = {i: np.array([len(m.scaled) - 1]) for i, m in prepared.members.items()}
    predicted = forecast_members(prepared, forecaster, last, horizon)  # id -> (1, H, K)
    calibrations, missing = calibrate_members(prepared, forecaster)
    rows = []
    for sid, member in prepared.members.items():
        origin = len(member.values) - 1  # original rows of the series
        report, _ = score_fold(
            config, panel.members[sid], origin, number, predicted[sid], member.season,
            calibrations.get(sid), missing.get(sid),
            head={data.id_column: sid},  # first, as in test_predictions.csv and forecast.csv
        )  # fmt: skip
        rows.append(report)
    seconds = round(time.perf_counter() - started, 3)
    for report in rows:
        report["seconds"] = seconds  # the fold's one fit, shared by its series
    return rows, {i: p[0] for i, p in predicted.items()}, prepared.combined.season


def run_panel_backtest(
    config: Config, panel: Any, backs: list[int], quiet: bool
) -> tuple[dict[str, Any], list[dict[str, np.ndarray]]]:
    """Every fold of a long table: (backtest.json's content, per fold id -> forecast (H, K)).
    `mean` is the mean over series of each series'
    mean over its folds; `per_series` holds those."""
    from forecast.panel import mean_reports

    rows, forecasts, seasons = [], [], []
    for number, back in enumerate(backs, start=1):
        if not quiet:
            log.info(
                "fold %d/%d: every series' last %d rows held out, forecasting %d of them",
                number,
                len(backs),
                back,
                config.window.horizon,
            )
        fold_rows, fold_forecasts, season = run_panel_fold(config, panel, back, number, SHARED)
        rows += fold_rows
        forecasts.append(fold_forecasts)
        seasons.append(season)
        if not quiet:
            mase = mean_reports([r["model"]["mase"] for r in fold_rows])
            shown = "n/a" if mase is None else f"{mase:.3g}"
            log.info("fold %d/%d: model MASE %s (mean over %d series)", number, len(backs),
                     shown, len(fold_rows))  # fmt: skip
    if not quiet and (note := clip_note(rows, "series folds")):
        log.info("%s", note)
    id_column = config.data.id_column
    per_series = {
        sid: mean_of_folds([r for r in rows if r[id_column] == sid])
        for sid in dict.fromkeys(r[id_column] for r in rows)
    }
    result = {
        "layout": config.layout,
        "horizon": config.window.horizon,
        "step": backs[0] - backs[1] if len(backs) > 1 else config.window.horizon,
        "series": len(per_series),
        "folds": rows,
        "mean": mean_reports(list(per_series.values())),
        "per_series": per_series,
        "season_length": seasons[0],  # the season the model was built with
    }
    where = f"averaged over {len(backs)} backtest folds and {len(per_series)} series"
    result["verdict"] = verdict(result["mean"], config.model.label(), where=where)
    return result, forecasts
