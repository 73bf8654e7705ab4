from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from forecast import api
from forecast.errors import RunError
from forecast.runs import layout, read
from forecast.runs.layout import finish, resolve_run, start_partial

from .conftest import ROOT


def test_partial_is_hidden_and_finished_runs_are_never_overwritten(tmp_path: Path):
    runs = tmp_path / "runs"
    first = start_partial(runs, "m", "20260101-000000")
    second = start_partial(runs, "m", "20260101-000000")  # same second: a distinct folder
    assert first.name == ".m-20260101-000000.partial" and first != second
    (first / "a").write_text("1")
    (second / "b").write_text("2")
    done_1 = finish(first, runs, "m", "20260101-000000")
    done_2 = finish(second, runs, "m", "20260101-000000")
    assert done_1.name == "m-20260101-000000" and done_2.name == "m-20260101-000000-2"
    assert (done_1 / "a").read_text() == "1" and (done_2 / "b").read_text() == "2"


def test_a_partial_run_is_never_the_latest(tmp_path: Path):
    runs = tmp_path / "runs"
    start_partial(runs, "m", "20260101-000000")
    with pytest.raises(RunError, match="no finished run found"):
        resolve_run(None, runs)


def test_incomplete_run_is_refused(tmp_path: Path):
    (tmp_path / "config.yaml").write_text("{}")
    with pytest.raises(RunError, match=r"incomplete run \(no model.keras\)"):
        read.open_run(tmp_path)


def test_two_trainings_in_the_same_second_give_two_runs(tiny_config: Path, monkeypatch):
    monkeypatch.setattr(layout, "stamp", lambda: "20260101-120000")
    folder = tiny_config.parent / "runs"
    one = api.train(tiny_config, runs_dir=folder, overrides=["training.epochs=1"], quiet=True)
    two = api.train(tiny_config, runs_dir=folder, overrides=["training.epochs=1"], quiet=True)
    assert one.run_dir.name == "tiny-20260101-120000"
    assert two.run_dir.name == "tiny-20260101-120000-2"
    # the same config and seed on the same machine give the same metrics
    assert one.metrics["model"] == two.metrics["model"]


@pytest.mark.slow
def test_shipped_univariate_config_on_real_data(tmp_path: Path):
    result = api.train(
        ROOT / "configs/univariate.yaml",
        runs_dir=tmp_path / "runs",
        overrides=["training.epochs=1"],
        quiet=True,
    )
    metrics = result.metrics
    assert metrics["layout"] == "univariate" and metrics["test_rows"] == 1596
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["rows"] == {"train_windows": 5687, "val_windows": 639, "test_origins": 1596}
    assert set(info["timings"]) >= {"load", "window", "fit", "forecast", "evaluate", "save"}
    frame, path = api.predict(result.run_dir, ROOT / "data/msft_daily.csv", horizon=5)
    # 2017-11-10 is a Friday: trading days continue on Monday
    assert frame["Date"].tolist() == [
        "2017-11-13",
        "2017-11-14",
        "2017-11-15",
        "2017-11-16",
        "2017-11-17",
    ]
    last_close = pd.read_csv(ROOT / "data/msft_daily.csv")["Close"].iloc[-1]
    assert frame["Close"].between(0.2 * last_close, 5 * last_close).all()
    assert {p.name for p in api.plot(result.run_dir)} == {
        "test_forecast.png",
        "loss.png",
        "forecast.png",
    }


def test_runs_lists_complete_runs_only_and_a_broken_model_says_so(tiny_config: Path):
    """A run missing scaler.json is not listed (a warning names it) nor taken as the latest;
    a model.keras of garbage is "corrupted or incomplete", not "file not found"."""
    from typer.testing import CliRunner

    from forecast.cli.app import app

    folder = tiny_config.parent / "runs"
    older = api.train(tiny_config, runs_dir=folder, overrides=["training.epochs=1"], quiet=True)
    newer = api.train(tiny_config, runs_dir=folder, overrides=["training.epochs=1"], quiet=True)
    (newer.run_dir / "scaler.json").unlink()
    runner = CliRunner()
    listed = runner.invoke(app, ["runs", "--runs-dir", str(folder)])
    assert listed.exit_code == 0
    assert older.run_dir.name in listed.stdout and newer.run_dir.name not in listed.stdout
    assert listed.stderr.strip() == (
        f"warning: {newer.run_dir}: incomplete run (no scaler.json), not listed; train it "
        "again or delete it"
    )
    assert resolve_run(None, folder) == older.run_dir  # the latest complete one
    (older.run_dir / "model.keras").write_bytes(b"not a keras archive")
    csv = tiny_config.parent / "sales.csv"
    broken = runner.invoke(app, ["predict", "--run", str(older.run_dir), "--csv", str(csv)])
    assert broken.exit_code == 2
    (line,) = broken.stderr.strip().splitlines()
    assert line.startswith(f"error: {older.run_dir / 'model.keras'}: corrupted or incomplete")


@pytest.mark.parametrize(
    "content", ['{"series": ["a", "b"]}', '{"series": 3}', "[1, 2]", '{"id_column": "x"}']
)
def test_a_long_tables_scaler_or_intervals_of_the_wrong_shape_is_a_run_error(
    tmp_path: Path, content: str
):
    (tmp_path / "scaler.json").write_text(content)
    (tmp_path / "intervals.json").write_text(content)
    with pytest.raises(RunError, match=r"scaler.json: unreadable scaler \(.*train the run again"):
        read.load_panel_scalers(tmp_path / "scaler.json", ["sales"])
    with pytest.raises(RunError, match=r"intervals.json: unreadable \(.*train the run again"):
        read.load_panel_intervals(tmp_path)
