"""Prediction intervals: conformal arithmetic on hand-made residuals, and the interval
columns and scores a real run writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from forecast import api
from forecast.config.file import load_config
from forecast.data.panel import prepare_panel, read_data
from forecast.fitting.task import FitTask, inner_forecasts, inner_origins, run_task
from forecast.forecasting.interval_scores import interval_scores, seasonal_naive_bounds
from forecast.forecasting.intervals import (
    calibrate,
    conformal_quantile,
    interval_bounds,
    needed,
    step_errors,
    step_quantiles,
    window_scales,
)

from .conftest import tiny_config_file


def test_conformal_quantile_is_the_finite_sample_rank():
    residuals = np.arange(1.0, 10.0)  # 1..9, shuffled order must not matter
    np.random.default_rng(0).shuffle(residuals)
    # n = 9, 80%: rank ceil(10 * 0.8) = 8
    assert conformal_quantile(residuals, 80) == (8.0, True)
    # 95%: rank ceil(9.5) = 10 > 9: not finite in theory; the largest residual, flagged
    assert conformal_quantile(residuals, 95) == (9.0, False)
    assert needed(80) == 4 and needed(95) == 19 and needed(50) == 1


def test_steps_with_too_few_errors_borrow_from_nearby_steps():
    step1 = np.array([[1.0], [-2.0], [3.0], [-4.0], [5.0]])  # 5 errors
    step2 = np.array([[-10.0]])  # 1 error: too few for 80% (4 needed)
    half, notes = step_quantiles([step1, step2], [50, 80])
    # 50%, step 1: rank ceil(6 * .5) = 3 of |1, 2, 3, 4, 5| -> 3; step 2 alone: rank 1 -> 10
    assert half[0, :, 0].tolist() == [3.0, 10.0]
    # 80%, step 1: rank ceil(4.8) = 5 -> 5; step 2 pools both steps (6): rank 6 -> 10
    assert half[1, :, 0].tolist() == [5.0, 10.0]
    assert notes == ["80%: steps 2 pooled the errors of nearby steps"]


def test_too_few_errors_in_all_is_said():
    half, notes = step_quantiles([np.array([[1.0], [2.0]])], [95])
    assert half[0, 0, 0] == 2.0
    assert "too few errors (2 in all, 19 needed per step)" in notes[0]


def test_errors_never_reach_the_end_row():
    values = np.arange(20.0)[:, None] ** 2  # (rows, 1)
    predicted = np.zeros((3, 2, 1))  # origins 5, 6, 7; two steps
    per_step = step_errors(values, np.array([5, 6, 7]), predicted, end=8, kind="additive")
    # step 1 lands on rows 6, 7 (origin 7 would reach row 8); step 2 on row 7 only
    assert per_step[0][:, 0].tolist() == [36.0, 49.0]
    assert per_step[1][:, 0].tolist() == [49.0]


def test_window_scale_is_the_mean_absolute_step_of_the_input_window():
    values = np.array([10.0, 12.0, 11.0, 15.0, 15.0, 9.0])[:, None]
    # input_steps 3: origin 2 sees 10, 12, 11 (steps 2, 1); origin 5 sees 15, 15, 9 (0, 6)
    scales = window_scales(values, np.array([2, 5]), 3, "additive", [True])
    assert scales[:, 0].tolist() == [1.5, 3.0]
    assert window_scales(values, np.array([2]), 3, "additive", [False]).tolist() == [[1.0]]
    assert window_scales(values, np.array([4]), 2, "additive", [True], np.array([0.5]))[0, 0] == 0.5


def test_validation_errors_widen_the_training_quantiles_by_their_ratio():
    """A flat-step series (window scale 1 everywhere): training errors 1..10 at step 1, the
    validation errors twice the training mean -> the quantile is doubled."""
    values = np.arange(40.0)[:, None]  # every step is 1, so every window scale is 1
    train_origins = np.arange(1, 11)  # steps land on rows 2..11, before val_start 30
    train_pred = values[train_origins + 1][:, None, :] - np.arange(1, 11)[:, None, None]
    val_origins = np.array([30, 31])
    val_pred = values[val_origins + 1][:, None, :] - 11.0  # errors 11: mean training 5.5
    calibration = calibrate(
        values, (train_origins, train_pred), (val_origins, val_pred), val_start=30,
        test_start=33, levels=[80], kind="additive", input_steps=2, normalised=[True],
    )  # fmt: skip
    assert calibration.ratio.tolist() == [2.0]
    assert calibration.quantile[0, 0, 0] == 9.0  # rank ceil(11 * 0.8) = 9 of 1..10
    lo, hi = calibration.bounds(np.array([[[100.0]]]), np.array([[3.0]]))
    assert (lo[0, 0, 0, 0], hi[0, 0, 0, 0]) == (100 - 9 * 2 * 3, 100 + 9 * 2 * 3)
    # validation errors smaller than the training ones never narrow the interval
    calm = calibrate(
        values, (train_origins, train_pred), (val_origins, val_pred + 10.5), val_start=30,
        test_start=33, levels=[80], kind="additive", input_steps=2, normalised=[True],
    )  # fmt: skip
    assert calm.ratio.tolist() == [1.0]


def test_log_errors_give_intervals_that_scale_with_the_forecast():
    predicted = np.array([[[100.0]], [[10.0]]])  # (N=2, H=1, K=1)
    lo, hi = interval_bounds(predicted, np.full((1, 1, 1, 1), np.log(2)), "log")
    assert lo[0, :, 0, 0] == pytest.approx([50.0, 5.0])
    assert hi[0, :, 0, 0] == pytest.approx([200.0, 20.0])


def test_coverage_width_and_msis_by_hand():
    actual = np.array([1.0, 2.0, 3.0, 10.0])[:, None]
    lo, hi = np.zeros_like(actual), np.full_like(actual, 2.0)
    scores = interval_scores(actual, lo, hi, 80, scale=np.array([2.0]))
    # 1 and 2 inside; 3 is 1 above, 10 is 8 above; 2/alpha = 10
    # scores 2, 2, 2 + 10, 2 + 80 -> mean 24.5, over the scale 2
    assert scores == pytest.approx({"coverage": 0.5, "width": 2.0, "msis": 12.25})


def test_seasonal_naive_interval_of_an_exactly_seasonal_series_is_zero_width():
    values = np.tile([1.0, 5.0, 3.0, 8.0], 10)[:, None]  # season 4
    lo, hi = seasonal_naive_bounds(values, np.array([31]), 32, 4, 2, [80, 95], "additive")
    assert np.all(lo == hi) and lo[0, 0, :, 0].tolist() == [1.0, 5.0]  # rows 32, 33
    # an origin without a season before it: none
    assert seasonal_naive_bounds(values, np.array([2]), 32, 4, 2, [80], "additive") is None


def interval_config(folder: Path, **extra) -> Path:
    return tiny_config_file(
        folder,
        "iv.yaml",
        data_seed=5,
        name="iv",
        seed=2,
        window={"horizon": 3},
        split={"validation": 0.25},
        model={"architecture": "gru", "units": [4]},
        training={"final_fit": False},
        **extra,
    )


def test_a_run_writes_interval_columns_and_scores_that_recompute(tmp_path):
    result = api.train(interval_config(tmp_path), runs_dir=tmp_path / "runs", quiet=True)
    run = result.run_dir
    table = pd.read_csv(run / "test_predictions.csv")
    assert list(table.columns) == [
        "time", "target", "step", "actual", "predicted", "lo_80", "hi_80", "lo_95", "hi_95"
    ]  # fmt: skip
    assert (table["lo_95"] <= table["lo_80"]).all() and (table["lo_80"] <= table["predicted"]).all()
    assert (table["predicted"] <= table["hi_80"]).all() and (table["hi_80"] <= table["hi_95"]).all()
    calibration = json.loads((run / "intervals.json").read_text())
    assert calibration["errors"] == "additive" and calibration["levels"] == [80, 95]
    # validation: 25% of the 96 rows before the test part = 24 rows; step h has 24 - h + 1.
    # A univariate model can recurse past its horizon, so steps up to 24 are calibrated too
    assert calibration["errors_per_step"]["validation"] == list(range(24, 0, -1))
    # training origins 11..70 (window 12, validation from row 72): step h lands before row 72
    assert calibration["errors_per_step"]["training"][:3] == [60, 59, 58]
    sales = pd.read_csv(tmp_path / "sales.csv")["sales"].to_numpy()
    for step in (1, 2, 3):
        rows = table[table["step"] == step]
        origins = np.arange(95, 95 + len(rows))  # test origins: rows 95 .. 116
        scale = np.array([np.abs(np.diff(sales[o - 11 : o + 1])).mean() for o in origins])
        half = calibration["quantile"]["80"][step - 1][0] * calibration["ratio"][0] * scale
        assert (rows["hi_80"] - rows["predicted"]).to_numpy() == pytest.approx(half)
    metrics = json.loads((run / "metrics.json").read_text())
    inside = (table["actual"] >= table["lo_80"]) & (table["actual"] <= table["hi_80"])
    scores = metrics["intervals"]["80"]
    assert scores["coverage"] == pytest.approx(inside.mean())
    assert scores["width"] == pytest.approx((table["hi_80"] - table["lo_80"]).mean())
    assert metrics["per_target"]["sales"]["intervals"]["80"]["coverage"] == scores["coverage"]
    assert 0 <= scores["seasonal_naive"]["coverage"] <= 1 and scores["seasonal_naive"]["msis"] > 0

    future, path = api.predict(run, tmp_path / "sales.csv", horizon=3)
    assert list(future.columns) == [
        "date", "sales", "sales_lo_80", "sales_hi_80", "sales_lo_95", "sales_hi_95"
    ]  # fmt: skip
    scale = np.abs(np.diff(sales[-12:])).mean()  # the last origin's window
    halves = np.array(calibration["quantile"]["95"])[:3, 0] * calibration["ratio"][0] * scale
    assert (future["sales_hi_95"] - future["sales"]).to_numpy() == pytest.approx(halves)
    written = [p.name for p in api.plot(run)]
    assert "forecast.png" in written


def test_intervals_off(tmp_path):
    off = api.train(interval_config(tmp_path, intervals=[]), runs_dir=tmp_path / "runs", quiet=True)
    assert "lo_80" not in pd.read_csv(off.run_dir / "test_predictions.csv").columns
    assert not (off.run_dir / "intervals.json").exists() and "intervals" not in off.metrics
    future, _ = api.predict(off.run_dir, tmp_path / "sales.csv")
    assert list(future.columns) == ["date", "sales"]


def test_inner_fold_origins_keep_the_most_rows():
    # training rows 0..23: the first origin whose 6 steps all land before row 24 is 17;
    # then forward by ceil(6 / 3) = 2 rows while a step still lands before row 24
    assert inner_origins(24, 6) == [17, 19, 21]
    assert inner_origins(24, 1) == [22, 21, 20]  # one step: forward ends at once, then back
    assert inner_origins(24, 2) == [21, 22, 20]
    assert inner_origins(30, 12) == [17, 21, 25]
    assert inner_origins(10, 12) == [1, 5]  # no row before -3: fewer folds (and they may fail)


def test_a_series_without_validation_rows_is_calibrated_on_inner_folds(tmp_path):
    """split.validation 0: the out-of-sample errors that widen the intervals come from models
    fitted inside the 96 training rows (origins 92, 93, 94: 3, 2 and 1 steps land before row
    96), and metrics.json says what the intervals rest on."""
    raw = yaml.safe_load(interval_config(tmp_path).read_text())
    raw["split"]["validation"] = 0
    raw.pop("intervals", None)  # the default levels
    (tmp_path / "noval.yaml").write_text(yaml.safe_dump(raw))
    noval = api.train(tmp_path / "noval.yaml", runs_dir=tmp_path / "runs", quiet=True)
    calibration = json.loads((noval.run_dir / "intervals.json").read_text())
    assert calibration["out_of_sample"] == "inner folds"
    assert calibration["errors_per_step"]["inner_folds"] == [3, 2, 1]
    # training origins 11..94: step h lands before row 96 from origins up to 95 - h
    assert calibration["errors_per_step"]["training"] == [84, 83, 82]
    assert noval.metrics["intervals_calibration"] == {
        "out_of_sample": "inner folds", "training_errors": 249, "out_of_sample_errors": 6
    }  # fmt: skip
    assert calibration["ratio"][0] >= 1.0
    table = pd.read_csv(noval.run_dir / "test_predictions.csv")
    sales = pd.read_csv(tmp_path / "sales.csv")["sales"].to_numpy()
    rows = table[table["step"] == 1]
    origins = np.arange(95, 95 + len(rows))
    scale = np.array([np.abs(np.diff(sales[o - 11 : o + 1])).mean() for o in origins])
    half = calibration["quantile"]["80"][0][0] * calibration["ratio"][0] * scale
    assert (rows["hi_80"] - rows["predicted"]).to_numpy() == pytest.approx(half)
    future, _ = api.predict(noval.run_dir, tmp_path / "sales.csv", horizon=3)
    assert "sales_lo_95" in future.columns and future["sales_lo_95"].notna().all()
    # the inner folds are plain backtest folds inside the training rows: fitted by hand on
    # rows 0..92, 0..93, 0..94, they forecast what inner_forecasts handed the calibration
    config = load_config(tmp_path / "noval.yaml")
    panel = read_data(config.data)
    inner = inner_forecasts(config, panel, prepare_panel(config, panel))
    origins, forecasts = inner[None]
    assert origins.tolist() == [92, 93, 94] and forecasts.shape == (3, 3, 1)
    plain = config.model_copy(update={"intervals": []})
    for k, origin in enumerate([92, 93, 94]):
        by_hand = run_task(FitTask(plain, panel, 120 - 1 - origin, k + 1)).forecasts[None]
        assert np.array_equal(by_hand, forecasts[k])


def test_too_few_rows_for_an_inner_fold_is_said(tmp_path):
    """18 rows, window 12, horizon 3, test 3: the 15 training rows hold one window; the
    inner folds would fit on 12, 13 and 14 rows, fewer than one window and its horizon (15)."""
    config = tiny_config_file(
        tmp_path, "short.yaml", rows=18, data_seed=5, name="short", seed=2,
        window={"input_steps": 12, "horizon": 3}, split={"test": 3, "validation": 0},
        model={"architecture": "gru", "units": [4]}, training={"final_fit": False},
    )  # fmt: skip
    result = api.train(config, runs_dir=tmp_path / "runs", quiet=True)
    line = result.metrics["intervals"]["unavailable"]
    assert line.startswith("no validation rows, and no model could be fitted inside the "
                           "training rows to calibrate them on ("), line  # fmt: skip
    # the first inner fold's own error: it would fit on rows 0..11
    assert "sales.csv: 12 rows before this origin are too few to train on" in line, line
    assert line.endswith("); set split.validation > 0, or intervals: [] to turn them off")
    assert "intervals_calibration" not in result.metrics


def test_backtest_folds_report_intervals(tmp_path):
    report = api.backtest(interval_config(tmp_path), folds=2, runs_dir=tmp_path / "r").report
    coverages = [fold["intervals"]["80"]["coverage"] for fold in report["folds"]]
    assert all(c in (0.0, 1 / 3, 2 / 3, 1.0) for c in coverages)  # 3 steps per fold
    assert report["mean"]["intervals"]["80"]["coverage"] == pytest.approx(np.mean(coverages))


def test_a_target_that_is_no_input_gets_bounds_without_its_column_in_the_csv(tmp_path):
    """features [price] -> target sales: sales' errors are not window-scaled, so predict
    needs no sales column and the half-width is the quantile times the ratio."""
    config = tiny_config_file(
        tmp_path,
        "mv.yaml",
        data_seed=5,
        name="mv",
        seed=2,
        data={"features": ["price"], "targets": ["sales"]},
        window={"horizon": 2},
        split={"validation": 0.25},
        model={"architecture": "gru", "units": [4]},
        training={"epochs": 1, "final_fit": False},
    )
    run = api.train(config, runs_dir=tmp_path / "runs", quiet=True).run_dir
    calibration = json.loads((run / "intervals.json").read_text())
    assert calibration["normalised"] == [False]
    pd.read_csv(tmp_path / "sales.csv").drop(columns="sales").to_csv(
        tmp_path / "p.csv", index=False
    )
    future, _ = api.predict(run, tmp_path / "p.csv")
    halves = np.array(calibration["quantile"]["80"])[:, 0] * calibration["ratio"][0]
    assert (future["sales_hi_80"] - future["sales"]).to_numpy() == pytest.approx(halves)
