"""Scores of a trained model on its test rows: per series, and the mean over many series."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from forecast.config.schema import Config
from forecast.data.missing import fill_missing
from forecast.data.panel import PreparedPanel
from forecast.data.prepare import Prepared
from forecast.data.reading import Series
from forecast.data.timesteps import time_labels
from forecast.forecasting.calibration import Inner, calibrate_members, score_intervals
from forecast.forecasting.evaluation import BASELINES, METRICS, evaluate, verdict
from forecast.forecasting.forecaster import Forecaster
from forecast.forecasting.intervals import Calibration, clip_note, label
from forecast.forecasting.original import forecast_members

log = logging.getLogger("forecast")


def mean_reports(reports: list[Any]) -> Any:
    """The mean over series of every number in reports of the same shape (dicts, lists,
    numbers); a number missing (null) in some series is the mean of the others, null where
    it is null in all; text (a reason) is kept from the first report that has it."""
    present = [r for r in reports if r is not None]
    if not present:
        return None
    first = present[0]
    if isinstance(first, dict):
        keys = list(dict.fromkeys(k for r in present if isinstance(r, dict) for k in r))
        return {k: mean_reports([r.get(k) for r in present if isinstance(r, dict)]) for k in keys}
    if isinstance(first, list):
        length = min(len(r) for r in present)
        return [mean_reports([r[i] for r in present]) for i in range(length)]
    if isinstance(first, bool) or not isinstance(first, (int, float)):
        return first
    numbers = [r for r in present if isinstance(r, (int, float)) and not isinstance(r, bool)]
    if all(n == numbers[0] for n in numbers):
        return numbers[0]  # the same in every series (a step number, a season length)
    return float(np.mean(numbers))


def evaluate_on_test(
    prepared: PreparedPanel,
    model: Any,
    timings: dict[str, Any],
    inner: dict[Any, Inner | str] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, Any]:
    """Forecast every test origin of every series, score model and baselines on each
    series' own test rows (MASE on its own scale), and calibrate each series' intervals on
    its validation origins (or, without them, its `inner` folds' forecasts:
    forecast.fitting.task.inner_forecasts): (metrics, predictions, calibration).

    One series (a table of one): its metrics, its test_predictions table and its Calibration
    (or None). A long table: the mean over series of each series' metrics with the series
    under `per_series`, the predictions with the id column first, and id -> Calibration."""
    cfg = prepared.config
    data, horizon = cfg.data, cfg.window.horizon
    clock = time.perf_counter()
    forecaster = Forecaster(model, data.inputs, data.targets)
    origins = {i: m.fit_split.test_origins for i, m in prepared.members.items()}
    predicted = forecast_members(prepared, forecaster, origins, horizon)
    calibrations, missing = calibrate_members(prepared, forecaster, inner)
    timings["forecast"] = round(time.perf_counter() - clock, 4)
    clock = time.perf_counter()
    scored = {
        sid: score(member, predicted[sid], calibrations.get(sid), missing.get(sid))
        for sid, member in prepared.members.items()
    }
    if prepared.one is not None:
        metrics, table = scored[None]
        if missing:
            log.warning("no prediction intervals: %s", missing[None])
        if note := clip_note([metrics], "runs"):
            log.info("%s", note)
        metrics["verdict"] = verdict(metrics, cfg.model.label())
        timings["evaluate"] = round(time.perf_counter() - clock, 4)
        return metrics, table, calibrations.get(None)
    metrics, table = _many_series(prepared, scored, missing)
    timings["evaluate"] = round(time.perf_counter() - clock, 4)
    return metrics, table, calibrations


def _many_series(
    prepared: PreparedPanel,
    scored: dict[Any, tuple[dict[str, Any], pd.DataFrame]],
    missing: dict[Any, str],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """A long table's metrics (the mean over series, and each under `per_series`) and its
    predictions with the id column first."""
    cfg = prepared.config
    reports, tables = {}, []
    for sid, (report, table) in scored.items():
        reports[sid] = report
        table.insert(0, cfg.data.id_column, sid)
        tables.append(table)
    if missing:
        log.warning(
            "no prediction intervals for %d series: %s", len(missing), next(iter(missing.values()))
        )
    if note := clip_note(list(reports.values()), "series"):
        log.info("%s", note)
    overall = mean_reports(list(reports.values()))
    metrics = {
        "layout": cfg.layout,
        "horizon": cfg.window.horizon,
        "series": len(reports),
        "test_rows": sum(r["test_rows"] for r in reports.values()),
        "test_origins": sum(r["test_origins"] for r in reports.values()),
        **{
            k: v
            for k, v in overall.items()
            if k
            not in (
                "layout",
                "horizon",
                "test_rows",
                "test_origins",
                "clip_at_zero",
                "intervals_calibration",
            )
        },  # fmt: skip
        "per_series": {
            sid: {
                k: r[k]
                for k in (
                    "model",
                    "baselines",
                    "intervals",
                    "intervals_calibration",
                    "clip_at_zero",
                )
                if k in r
            }
            for sid, r in reports.items()
        },
        "skipped_series": prepared.skipped,
    }
    summaries = [
        r["intervals_calibration"] for r in reports.values() if "intervals_calibration" in r
    ]
    if summaries:  # the errors every series' intervals rest on, in all
        metrics["intervals_calibration"] = {
            "out_of_sample": summaries[0]["out_of_sample"],
            **{
                k: sum(c[k] for c in summaries) for k in ("training_errors", "out_of_sample_errors")
            },
        }
    metrics["mase_scale"] = {sid: r["mase_scale"] for sid, r in reports.items()}
    where = f"on the test split, mean over {len(reports)} series"
    metrics["verdict"] = verdict(metrics, cfg.model.label(), where=where)
    return metrics, pd.concat(tables, ignore_index=True)


def score(
    prepared: Prepared, predicted: np.ndarray, calibration: Calibration | None, missing: str | None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Score the forecasts (N, H, K) from every test origin and their intervals against the
    baselines: (metrics without the verdict, test_predictions table)."""
    cfg, split, lag = prepared.config, prepared.fit_split, prepared.lag
    data, horizon = cfg.data, cfg.window.horizon
    origins, test_start = split.test_origins + lag, split.test_start + lag  # original rows
    actual = prepared.target_values
    report = evaluate(actual, origins, predicted, data.targets, prepared.season, test_start)
    metrics = {
        "layout": cfg.layout,
        "horizon": horizon,
        "test_rows": len(prepared.values) - test_start,
        "test_origins": len(origins),
        **report,
    }
    bounds = score_intervals(
        metrics, calibration, missing, actual, origins, predicted, prepared.season, test_start
    )
    table = prediction_table(
        prepared.series.index, origins, actual, predicted, data.targets, bounds, cfg.intervals
    )
    return metrics, table


def prediction_table(
    index: pd.Index,
    origins: np.ndarray,  # (N,) original rows
    actual_values: np.ndarray,  # (rows, K)
    predicted: np.ndarray,  # (N, H, K)
    targets: list[str],
    bounds: tuple[np.ndarray, np.ndarray] | None = None,  # lo, hi: (levels, N, H, K)
    levels: list[float] | None = None,
) -> pd.DataFrame:
    """test_predictions.csv: one row per origin, target and step; `lo_L, hi_L` per level."""

    n, horizon, k = predicted.shape
    steps = np.arange(1, horizon + 1)
    rows = np.broadcast_to(origins[:, None, None] + steps[None, None, :], (n, k, horizon))
    target_idx = np.broadcast_to(np.arange(k)[None, :, None], (n, k, horizon))
    table = pd.DataFrame(
        {
            "time": time_labels(index)[rows.ravel()],
            "target": np.asarray(targets, dtype=object)[target_idx.ravel()],
            "step": np.broadcast_to(steps, (n, k, horizon)).ravel(),
            "actual": actual_values[rows.ravel(), target_idx.ravel()],
            "predicted": predicted.transpose(0, 2, 1).ravel(),  # (N, K, H) order
        }
    )
    if bounds is not None and levels:
        for i, level in enumerate(levels):
            table[f"lo_{label(level)}"] = bounds[0][i].transpose(0, 2, 1).ravel()
            table[f"hi_{label(level)}"] = bounds[1][i].transpose(0, 2, 1).ravel()
    return table


def score_fold(
    config: Config,
    series: Series,
    origin: int,  # original row
    number: int,
    predicted: np.ndarray,  # (1, H, K) original units
    season: int,
    calibration: Calibration | None,
    missing: str | None,
    head: dict[str, Any] | None = None,  # keys that come first (a long table's id)
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray] | None]:
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
