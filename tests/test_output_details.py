"""Output details: intervals of a series that never goes below 0 are clipped at 0, forecast
dates of trading-day data continue on business days, and `make install` prints no setuptools
banner."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from forecast.cli.app import app
from forecast.data.timesteps import future_index, season_length
from forecast.forecasting.intervals import Calibration, calibrate

from .conftest import ROOT, tiny_sections, write_config, write_csv

runner = CliRunner()


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def days(index: pd.Index) -> list[str]:
    return list(index.strftime("%a %Y-%m-%d"))


# --- forecast dates of trading-day data --------------------------------------------------


@pytest.mark.parametrize("rows", [3, 5, 60, 200])
def test_msft_tail_continues_on_business_days(rows):
    """The shipped stock data ends on Friday 2017-11-10; its last 3 rows (Wed-Fri) and last 5
    (Mon-Fri) are a week pandas calls daily, the last 60 hold Labor Day (2017-09-04)."""
    dates = pd.read_csv(ROOT / "data/msft_daily.csv", usecols=["Date"])["Date"].tail(rows)
    index = pd.DatetimeIndex(pd.to_datetime(dates), name="Date")
    assert days(future_index(index, 3)) == ["Mon 2017-11-13", "Tue 2017-11-14", "Wed 2017-11-15"]
    assert season_length(index) == 5


def test_trading_days_stamped_with_a_time_of_day_continue_on_business_days():
    closes = pd.bdate_range("2024-01-02", "2024-03-28").delete(33) + pd.Timedelta(hours=16)
    assert closes[-1].day_name() == "Thursday" and pd.infer_freq(closes) is None  # one holiday
    assert list(future_index(closes, 3).strftime("%a %Y-%m-%dT%H:%M")) == [
        "Fri 2024-03-29T16:00",
        "Mon 2024-04-01T16:00",
        "Tue 2024-04-02T16:00",
    ]


def test_a_daily_series_with_weekends_keeps_calendar_days():
    daily = pd.date_range("2024-01-01", "2024-03-01", freq="D").delete(20)  # a missing day
    assert days(future_index(daily, 3)) == ["Sat 2024-03-02", "Sun 2024-03-03", "Mon 2024-03-04"]
    assert days(future_index(daily[-7:], 2)) == ["Sat 2024-03-02", "Sun 2024-03-03"]


# --- intervals clipped at 0 --------------------------------------------------------------


def _calibration(values: np.ndarray, kind: str = "additive") -> Calibration:
    """Calibrated on a constant forecast of 1 from every origin of a (rows, 1) series:
    training origins 4..29, validation 30..38, test from row 40."""
    train, val = np.arange(4, 30), np.arange(30, 39)
    forecasts = np.ones((len(train), 2, 1)), np.ones((len(val), 2, 1))
    return calibrate(
        values, (train, forecasts[0]), (val, forecasts[1]), 30, 40, [80], kind, 5, [True]
    )


def test_bounds_of_a_series_never_below_zero_are_clipped_at_zero():
    counts = np.tile([0.0, 3.0, 0.0, 1.0, 4.0], 10)[:, None]  # 50 rows of counts
    calibration = _calibration(counts)
    assert calibration.clip_at_zero == [True]
    scales = calibration.scales(counts, np.array([44]))
    lo, hi = calibration.bounds(np.full((1, 2, 1), 0.5), scales)
    half = calibration.quantile[0, :, 0] * calibration.ratio[0] * scales[0, 0]
    assert (half > 0.5).all()  # unclipped, 0.5 - half would be below 0
    assert lo[0, 0, :, 0].tolist() == [0.0, 0.0]
    assert hi[0, 0, :, 0] == pytest.approx(0.5 + half)
    assert Calibration.from_json(calibration.to_json()).clip_at_zero == [True]

    signed = counts - 0.5  # one value below 0 before the test part: no clipping
    calibration = _calibration(signed)
    assert calibration.clip_at_zero == [False]
    lo, _ = calibration.bounds(np.full((1, 2, 1), 0.5), calibration.scales(signed, np.array([44])))
    assert (lo < 0).all()


def test_log_errors_flag_no_clipping_as_their_bounds_stay_above_zero():
    """Under data.transform log or log_diff the bounds are ratios of a positive forecast,
    never below 0: nothing to clip, so nothing is flagged (and train says nothing)."""
    prices = np.tile([1.0, 3.0, 2.0, 1.5, 4.0], 10)[:, None]
    calibration = _calibration(prices, kind="log")
    assert calibration.clip_at_zero == [False]
    lo, _ = calibration.bounds(np.full((1, 2, 1), 0.5), calibration.scales(prices, np.array([44])))
    assert (lo > 0).all()


def test_a_calibration_from_an_older_run_clips_nothing():
    counts = np.tile([0.0, 3.0, 0.0, 1.0, 4.0], 10)[:, None]
    saved = _calibration(counts).to_json()
    del saved["clip_at_zero"]  # intervals.json as runs before it wrote it
    old = Calibration.from_json(saved)
    lo, _ = old.bounds(np.full((1, 2, 1), 0.5), old.scales(counts, np.array([44])))
    assert (lo < 0).all()


def trading_day_sales(rows: int = 170, seed: int = 3) -> pd.DataFrame:
    """Daily unit sales on trading days (two holidays), often 0, ending on Friday 2024-08-30."""
    dates = pd.bdate_range(end="2024-08-30", periods=rows + 2).delete([40, 120])
    rng = np.random.default_rng(seed)
    rate = np.array([0.5, 1.0, 2.0, 1.0, 3.0])[dates.dayofweek]
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "sales": rng.poisson(rate)})


@pytest.fixture(scope="module")
def sales_run(tmp_path_factory):
    """(folder, config, run dir, train's stderr) of a run on trading_day_sales()."""
    folder = tmp_path_factory.mktemp("clip")
    write_csv(folder / "sales.csv", trading_day_sales())
    config = write_config(
        folder / "sales.yaml",
        **tiny_sections(
            name="sales",
            seed=1,
            window={"input_steps": 5, "horizon": 2},
            split={"validation": 0.2},
            model={"units": [4]},
            training={"batch_size": 32, "final_fit": False},
            intervals=[80, 95],
        ),
    )
    result = cli("train", config, "--runs-dir", folder / "runs")
    assert result.exit_code == 0, result.output
    return folder, config, Path(result.stdout.strip().splitlines()[-1]), result.stderr


NOTE = "intervals of sales clipped at 0: the series never goes below 0"


@pytest.mark.slow
def test_train_clips_test_intervals_at_zero_and_scores_the_clipped_bounds(sales_run):
    _, _, run, stderr = sales_run
    assert stderr.count(NOTE) == 1, stderr
    assert json.loads((run / "intervals.json").read_text())["clip_at_zero"] == [True]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["clip_at_zero"] == ["sales"]
    table = pd.read_csv(run / "test_predictions.csv")
    for level in ("80", "95"):
        assert (table[f"lo_{level}"] >= 0).all()
        assert (table[f"lo_{level}"] == 0).mean() > 0.5  # most lower bounds were below 0
        inside = (table["actual"] >= table[f"lo_{level}"]) & (
            table["actual"] <= table[f"hi_{level}"]
        )
        scores = metrics["intervals"][level]
        assert scores["coverage"] == pytest.approx(inside.mean())
        width = table[f"hi_{level}"] - table[f"lo_{level}"]
        assert scores["width"] == pytest.approx(width.mean())
    assert (table["predicted"] > 0).any()  # point forecasts are the model's, not clipped


@pytest.mark.slow
def test_predict_clips_at_zero_and_dates_continue_on_business_days(sales_run):
    folder, _, run, _ = sales_run
    result = cli(
        "predict", "--run", run, "--csv", folder / "sales.csv", "--output", folder / "f.csv"
    )
    assert result.exit_code == 0, result.output
    forecast = pd.read_csv(folder / "f.csv")
    assert forecast["date"].tolist() == ["2024-09-02", "2024-09-03"]  # Friday -> Monday
    assert (forecast["sales_lo_80"] == 0).all() and (forecast["sales_lo_95"] == 0).all()
    assert (forecast["sales_hi_95"] > forecast["sales_hi_80"]).all()

    week = write_csv(folder / "week.csv", trading_day_sales().tail(5))  # Mon-Fri, 5 rows
    result = cli("predict", "--run", run, "--csv", week, "--output", folder / "w.csv")
    assert result.exit_code == 0, result.output
    assert pd.read_csv(folder / "w.csv")["date"].tolist() == ["2024-09-02", "2024-09-03"]


@pytest.mark.slow
def test_serve_clips_at_zero_like_predict(sales_run):
    from tests.test_serve import free_port, request

    folder, _, run, _ = sales_run
    history = trading_day_sales().tail(20)
    recent, output = write_csv(folder / "h.csv", history), folder / "h-forecast.csv"
    expected = cli("predict", "--run", run, "--csv", recent, "--output", output)
    assert expected.exit_code == 0, expected.output
    predicted = pd.read_csv(output)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "forecast", "serve", "--run", str(run), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "no server"
            try:
                if request(f"{base}/health")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        body = json.dumps({"history": history.to_dict(orient="records")}).encode()
        status, answer = request(f"{base}/forecast", body)
    finally:
        process.kill()
        process.communicate()
    assert status == 200, answer
    served = pd.DataFrame(answer["forecast"])
    assert served["date"].tolist() == ["2024-09-02", "2024-09-03"]
    assert served["sales_lo_80"].tolist() == [0.0, 0.0]
    assert served["sales_hi_80"].to_numpy() == pytest.approx(predicted["sales_hi_80"].to_numpy())


@pytest.mark.slow
def test_backtest_clips_at_zero_and_says_so_once(sales_run):
    folder, config, _, _ = sales_run
    result = cli("backtest", config, "--folds", 2, "--runs-dir", folder / "backtests")
    assert result.exit_code == 0, result.output
    assert result.stderr.count(NOTE) == 1, result.stderr
    report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    assert [fold["clip_at_zero"] for fold in report["folds"]] == [["sales"], ["sales"]]
    for fold in report["folds"]:  # 2 steps: a width is a mean of two, each hi - max(lo, 0)
        assert fold["intervals"]["80"]["coverage"] in (0.0, 0.5, 1.0)


@pytest.mark.slow
def test_a_long_table_clips_the_series_that_never_go_below_zero(tmp_path):
    counts, shifted = trading_day_sales(120, seed=1), trading_day_sales(120, seed=2)
    shifted["sales"] -= 1  # a series with values below 0: its bounds are not clipped
    table = pd.concat([counts.assign(store="A"), shifted.assign(store="B")])
    write_csv(tmp_path / "long.csv", table)
    config = write_config(
        tmp_path / "long.yaml",
        **tiny_sections(
            name="stores",
            seed=1,
            data={"path": "long.csv", "id_column": "store"},
            window={"input_steps": 5, "horizon": 2},
            split={"validation": 0.25},
            model={"units": [4]},
            training={"epochs": 1, "batch_size": 32, "final_fit": False},
            intervals=[80],
        ),
    )
    result = cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    note = "intervals of sales clipped at 0 (in 1 of 2 series): the series never goes below 0"
    assert result.stderr.count(note) == 1, result.stderr
    run = Path(result.stdout.strip().splitlines()[-1])
    saved = json.loads((run / "intervals.json").read_text())["series"]
    assert {sid: c["clip_at_zero"] for sid, c in saved.items()} == {"A": [True], "B": [False]}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["per_series"]["A"]["clip_at_zero"] == ["sales"]
    assert "clip_at_zero" not in metrics["per_series"]["B"] and "clip_at_zero" not in metrics
    rows = pd.read_csv(run / "test_predictions.csv")
    assert (rows.loc[rows["store"] == "A", "lo_80"] >= 0).all()
    assert (rows.loc[rows["store"] == "B", "lo_80"] < 0).any()


# --- a quiet `make install` ----------------------------------------------------------------


def _makefile_install_lines() -> list[str]:
    """The pip command lines of the Makefile's install recipe, for a venv in VENV."""
    recipe = (ROOT / "Makefile").read_text().split("$(STAMP): pyproject.toml", 1)[1]
    lines = [line.strip() for line in recipe.split("\n\n", 1)[0].splitlines()]
    return [line.replace("$(BIN)", "VENV/bin") for line in lines if "pip install" in line]


SETUPTOOLS_UNREACHABLE = (
    r"requirement setuptools|NewConnectionError|name resolution|Could not fetch"
)


@pytest.mark.slow
def test_make_install_prints_no_setuptools_banner(tmp_path):
    """The Makefile's install lines (with --no-deps: the dependencies are not the point) in
    a fresh venv, on a copy of the project: setuptools' editable build says nothing."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project)
    shutil.copytree(
        ROOT / "forecast", project / "forecast", ignore=shutil.ignore_patterns("__pycache__")
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True)
    upgrade, install = _makefile_install_lines()
    assert upgrade.endswith("pip install --quiet --no-cache-dir --upgrade pip"), upgrade
    assert install.endswith("pip install --quiet --no-cache-dir -e '.[dev]'"), install
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(line: str) -> subprocess.CompletedProcess:
        command = line.replace("VENV", str(venv))
        return subprocess.run(
            command, shell=True, cwd=project, env=env, capture_output=True, text=True, timeout=600
        )

    upgraded = run(upgrade)
    if upgraded.returncode != 0:
        pytest.skip(f"the package registry is unreachable: {upgraded.stderr.strip()[-300:]}")
    installed = run(install + " --no-deps")
    if installed.returncode != 0 and re.search(SETUPTOOLS_UNREACHABLE, installed.stderr):
        pytest.skip(f"no setuptools for the build: {installed.stderr.strip()[-300:]}")
    assert installed.returncode == 0, installed.stderr
    assert "Please be careful" not in installed.stderr, installed.stderr
    assert "Editable installation" not in installed.stderr, installed.stderr
    check = [str(venv / "bin" / "python"), "-c", "import forecast; print(forecast.__file__)"]
    where = subprocess.run(check, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.stdout.strip() == str(project / "forecast" / "__init__.py")
