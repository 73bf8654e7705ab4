"""The real CLI through Typer's CliRunner: train -> predict -> plot on a small real CSV."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from forecast.cli.app import app

from .conftest import monthly_frame, write_config, write_csv

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny univariate run shared by the tests below."""
    folder = tmp_path_factory.mktemp("cli")
    csv = write_csv(folder / "sales.csv", monthly_frame(120))
    config = write_config(
        folder / "tiny.yaml",
        name="tiny",
        seed=7,
        data={"path": "sales.csv", "time_column": "date", "features": ["sales"]},
        window={"input_steps": 12, "horizon": 1},
        split={"test": 0.2, "validation": 0.1},
        model={"architecture": "lstm", "units": [8]},
        training={"epochs": 2, "batch_size": 16},
    )
    result = invoke("train", config, "--runs-dir", folder / "runs")
    assert result.exit_code == 0, result.output
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    return folder, csv, config, run_dir, result


def test_train_writes_a_complete_run_directory(trained):
    folder, _, _, run_dir, result = trained
    assert run_dir.parent == folder / "runs" and run_dir.name.startswith("tiny-")
    for name in (
        "config.yaml",
        "model.keras",
        "scaler.json",
        "history.csv",
        "metrics.json",
        "test_predictions.csv",
        "run.json",
    ):
        assert (run_dir / name).stat().st_size > 0, name
    assert not [p for p in run_dir.parent.iterdir() if p.name.startswith(".")], (
        "partial left behind"
    )
    assert "epoch 2/2" in result.stderr  # progress goes to stderr
    assert "naive" in result.stdout and "MASE" in result.stdout
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history.columns) == ["epoch", "loss", "val_loss", "learning_rate", "seconds"]
    assert history["epoch"].tolist() == [1, 2]


def test_metrics_use_the_test_rows_of_the_csv(trained):
    _, csv, _, run_dir, _ = trained
    sales = pd.read_csv(csv)["sales"].to_numpy()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["layout"] == "univariate" and metrics["horizon"] == 1
    # 120 rows, test 0.2 -> rows 96..119; the naive forecast of row t is row t-1
    test_rows = np.arange(96, 120)
    naive_mae = np.abs(sales[test_rows] - sales[test_rows - 1]).mean()
    assert metrics["baselines"]["naive"]["mae"] == pytest.approx(naive_mae)
    assert metrics["test_rows"] == 24 and metrics["test_origins"] == 24
    # the mean baseline repeats the mean of every row before the test split
    mean_mae = np.abs(sales[test_rows] - sales[:96].mean()).mean()
    assert metrics["baselines"]["mean"]["mae"] == pytest.approx(mean_mae)
    assert set(metrics["model"]) == {"mae", "rmse", "mape", "smape", "mase"}


def test_test_predictions_are_in_original_units(trained):
    _, csv, _, run_dir, _ = trained
    frame = pd.read_csv(csv)
    preds = pd.read_csv(run_dir / "test_predictions.csv")
    assert list(preds.columns) == [
        "time", "target", "step", "actual", "predicted", "lo_80", "hi_80", "lo_95", "hi_95"
    ]  # fmt: skip
    assert len(preds) == 24 and set(preds["step"]) == {1} and set(preds["target"]) == {"sales"}
    merged = preds.merge(frame, left_on="time", right_on="date")
    np.testing.assert_allclose(merged["actual"], merged["sales"])
    assert preds["time"].iloc[0] == frame["date"].iloc[96]
    # predictions live on the data's scale (around 150), not the scaler's [0, 1]
    assert preds["predicted"].abs().mean() > 20


def test_predict_continues_the_monthly_dates_and_matches_the_saved_model(trained):
    import keras

    _, csv, _, run_dir, _ = trained
    result = invoke("predict", "--run", run_dir, "--csv", csv, "--horizon", "3")
    assert result.exit_code == 0, result.output
    out = Path(result.stdout.strip().splitlines()[-1])
    assert out == run_dir / "forecast.csv"
    forecast = pd.read_csv(out)
    assert list(forecast.columns) == [
        "date", "sales", "sales_lo_80", "sales_hi_80", "sales_lo_95", "sales_hi_95"
    ]  # fmt: skip
    assert forecast["date"].tolist() == ["2010-01-01", "2010-02-01", "2010-03-01"]
    # the first step by hand: scale the last 12 rows, one model call, invert the scaling
    scaler = json.loads((run_dir / "scaler.json").read_text())["columns"]["sales"]
    last = pd.read_csv(csv)["sales"].to_numpy()[-12:]
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    scaled = model.predict_on_batch((last * scaler["scale"] + scaler["offset"]).reshape(1, 12, 1))
    first = (scaled[0, 0, 0] - scaler["offset"]) / scaler["scale"]
    assert forecast["sales"].iloc[0] == pytest.approx(first, rel=1e-5)
    # the config's horizon is 1: steps 2-3 are recursive, said once
    said = [line for line in result.stderr.splitlines() if "trained horizon" in line]
    assert said == [
        "warning: --horizon 3 goes past the trained horizon 1: steps 2-3 are forecast "
        "recursively, from the model's own predictions fed back as inputs"
    ]
    within = invoke("predict", "--run", run_dir, "--csv", csv)
    assert within.exit_code == 0 and "trained horizon" not in within.stderr


def test_predict_output_option_and_latest_run(trained, tmp_path, monkeypatch):
    folder, csv, _, run_dir, _ = trained
    monkeypatch.chdir(folder)  # --run defaults to the latest run under runs/
    result = invoke("predict", "--csv", csv, "--output", tmp_path / "f.csv")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "f.csv")) == 1  # default: the config's horizon


def test_plot_writes_pngs_into_output(trained, tmp_path):
    _, csv, _, run_dir, _ = trained
    assert invoke("predict", "--run", run_dir, "--csv", csv, "--horizon", "4").exit_code == 0
    result = invoke("plot", "--run", run_dir, "--output", tmp_path / "plots")
    assert result.exit_code == 0, result.output
    paths = [Path(p) for p in result.stdout.split()]
    assert sorted(p.name for p in paths) == ["forecast.png", "loss.png", "test_forecast.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def assert_user_error(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_missing_config_file(tmp_path):
    assert_user_error(invoke("train", tmp_path / "nope.yaml"), "nope.yaml", "not found")


def test_unknown_key_in_config(tmp_path, monthly_csv):
    config = write_config(
        tmp_path / "c.yaml", data={"path": monthly_csv.name, "features": ["sales"]}, windw={}
    )
    assert_user_error(
        invoke("train", config), "c.yaml", "unknown key 'windw'", "did you mean 'window'"
    )


def test_bad_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: [unclosed\n", encoding="utf-8")
    assert_user_error(invoke("train", path), "YAML syntax error at line")


def test_missing_column(tmp_path, monthly_csv):
    config = write_config(
        tmp_path / "c.yaml", data={"path": monthly_csv.name, "features": ["Close"]}
    )
    assert_user_error(invoke("train", config), "no column 'Close'", "date, sales, price")


def test_set_override_errors_name_the_field(tiny_config):
    assert_user_error(
        invoke("train", tiny_config, "--set", "training.epochs=0"), "training.epochs: must be >= 1"
    )


def test_predict_errors(trained, tmp_path):
    _, csv, _, run_dir, _ = trained
    assert_user_error(
        invoke("predict", "--run", tmp_path / "nope", "--csv", csv), "run directory not found"
    )
    assert_user_error(
        invoke("predict", "--run", run_dir, "--csv", csv, "--horizon", "0"),
        "--horizon must be >= 1",
    )
    short = write_csv(tmp_path / "short.csv", monthly_frame(5))
    assert_user_error(
        invoke("predict", "--run", run_dir, "--csv", short), "short.csv", "needs the last 12"
    )
    other = write_csv(tmp_path / "other.csv", monthly_frame(20).rename(columns={"sales": "units"}))
    assert_user_error(invoke("predict", "--run", run_dir, "--csv", other), "no column 'sales'")


def test_plot_without_runs(tmp_path):
    assert_user_error(invoke("plot", "--runs-dir", tmp_path / "runs"), "no finished run found")


def test_validate_prints_shapes(tiny_config):
    result = invoke("validate", tiny_config)
    assert result.exit_code == 0, result.output
    assert "layout:          univariate" in result.stdout
    # 120 rows: test 24, validation round(96 * 0.1) = 10, train 86 -> 86 - 12 origins
    assert "train windows:   74x12x1" in result.stdout
    assert "test origins:    24x12x1" in result.stdout


def test_every_command_has_help():
    for command in ("train", "predict", "plot", "validate", "schema"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output


def test_chinese_gb18030_csv_end_to_end(tmp_path):
    """The seed's workflow: a GB18030 export with Chinese headers, through train/predict/plot."""
    from .conftest import ROOT

    text = (ROOT / "data/msft_gb18030.csv").read_bytes().decode("gb18030").splitlines()
    (tmp_path / "平安.csv").write_bytes(("\n".join(text[:301]) + "\n").encode("gb18030"))
    config = write_config(
        tmp_path / "cn.yaml",
        data={
            "path": "平安.csv",
            "time_column": "日期",
            "features": ["开盘价(元)", "收盘价(元)"],
            "targets": ["收盘价(元)"],
        },
        window={"input_steps": 10, "horizon": 2},
        model={"architecture": "lstm", "units": [4]},
        training={"epochs": 1},
    )
    result = invoke("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert result.exit_code == 0, result.output
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    assert (
        "收盘价(元)"
        in json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["per_target"]
    )
    result = invoke("predict", "--run", run_dir, "--csv", tmp_path / "平安.csv")
    assert result.exit_code == 0, result.output
    # written as it came, GB18030, so that Excel on Chinese Windows shows the headers
    raw = (run_dir / "forecast.csv").read_bytes()
    assert raw.decode("gb18030").startswith("日期,收盘价(元),")
    forecast = pd.read_csv(run_dir / "forecast.csv", encoding="gb18030")
    assert list(forecast.columns)[:2] == ["日期", "收盘价(元)"] and len(forecast) == 2
    assert "收盘价(元)_lo_80" in forecast.columns
    # or UTF-8 with a BOM, on request; an unknown codec is one line
    out = tmp_path / "utf8.csv"
    args = ["predict", "--run", run_dir, "--csv", tmp_path / "平安.csv", "--output", out]
    assert invoke(*args, "--encoding", "utf-8-sig").exit_code == 0
    assert out.read_bytes().startswith("\ufeff日期,".encode())
    bad = invoke(*args, "--encoding", "klingon")
    assert bad.exit_code == 2
    assert bad.stderr.strip() == (
        "error: --encoding klingon: unknown; use auto, utf-8, utf-8-sig or gb18030"
    )
    result = invoke("plot", "--run", run_dir)
    assert result.exit_code == 0, result.output
    assert {Path(p).name for p in result.stdout.split()} == {
        "test_forecast.png",
        "loss.png",
        "forecast.png",
    }


def test_version():
    from forecast import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"forecast {__version__}"


def test_predict_says_which_model_it_used(trained):
    _, csv, _, run_dir, _ = trained
    result = invoke("predict", "--run", run_dir, "--csv", csv)
    assert result.exit_code == 0, result.output
    assert "forecast by the final model, refitted on all 120 rows" in result.stderr
    info = json.loads((run_dir / "run.json").read_text())
    assert info["final_fit"]["rows"] == 120 and info["final_fit"]["windows"] == 120 - 12


def test_a_horizon_past_the_calendar_is_one_line(trained):
    _, csv, _, run_dir, _ = trained
    result = invoke("predict", "--run", run_dir, "--csv", csv, "--horizon", "4000")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --horizon 4000: the dates would run past what pandas can hold (year 2262); "
        "ask for fewer steps"
    )
