"""The tables the CLI prints: `forecast runs` (training runs and backtests, wide characters
lined up), a wide `predict` forecast wrapped to 100 columns, and backtest's layout line."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from forecast import api
from forecast.cli.app import app

from .conftest import monthly_frame, write_config, write_csv

runner = CliRunner()
HEADER = ["run", "kind", "finished", "layout", "model", "mase", "seasonal_naive_mase"]


def display_width(text: str) -> int:
    """Terminal columns: a wide (CJK) character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def fake_folder(runs_dir: Path, name: str) -> Path:
    """A run folder holding the config.yaml of a small GRU, as `forecast runs` reads it."""
    folder = runs_dir / name
    folder.mkdir(parents=True)
    write_config(
        folder / "config.yaml",
        name=name.split("-")[0],
        data={"path": "s.csv", "time_column": "date", "features": ["sales"]},
        window={"input_steps": 12, "horizon": 3},
        model={"architecture": "gru", "units": [8]},
    )
    return folder


def fake_run(runs_dir: Path, name: str, finished: str, mase: float) -> Path:
    """A finished training run's folder: every file it must hold, as far as `forecast runs`
    reads them (no model is loaded: model.keras and scaler.json are placeholders)."""
    folder = fake_folder(runs_dir, name)
    (folder / "model.keras").write_bytes(b"a model")
    (folder / "scaler.json").write_text("{}")
    info = {"format_version": 1, "finished": finished, "model": "gru(8)"}
    (folder / "run.json").write_text(json.dumps(info))
    metrics = {
        "layout": "univariate",
        "model": {"mase": mase},
        "baselines": {"seasonal_naive": {"mase": 1.0}},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def fake_backtest(runs_dir: Path, name: str, mase: float, seasonal: float) -> Path:
    """A backtest folder as write_backtest leaves it: config.yaml, backtest.json."""
    folder = fake_folder(runs_dir, name)
    baseline = {"mae": 1.0, "mase": seasonal}
    report = {
        "layout": "univariate",
        "horizon": 3,
        "folds": [],
        "mean": {
            "model": {"mae": 1.0, "mase": mase},
            "baselines": {"naive": baseline, "seasonal_naive": baseline, "mean": baseline},
        },
    }
    (folder / "backtest.json").write_text(json.dumps(report), encoding="utf-8")
    return folder


@pytest.mark.slow
def test_runs_lists_a_backtest_as_a_backtest_with_its_mean_mase(tiny_config: Path):
    folder = tiny_config.parent / "runs"
    trained = api.train(tiny_config, folder, overrides=["training.epochs=1"], quiet=True)
    backtest = api.backtest(
        tiny_config, folds=1, runs_dir=folder, overrides=["training.epochs=1"], quiet=True
    )
    listed = runner.invoke(app, ["runs", "--runs-dir", str(folder)])
    assert listed.exit_code == 0, listed.output
    assert "incomplete" not in listed.stderr and "delete" not in listed.stderr, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert lines[0].split() == HEADER
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == [trained.run_dir.name, backtest.path.parent.name]
    train_row, backtest_row = rows.values()
    assert train_row[1] == "train" and backtest_row[1] == "backtest"
    mean = backtest.report["mean"]
    assert backtest_row[-2:] == [
        f"{mean['model']['mase']:.3g}",
        f"{mean['baselines']['seasonal_naive']['mase']:.3g}",
    ]
    assert backtest_row[4:6] == ["univariate", "lstm(8)"]


def test_runs_with_only_backtests_lists_them_and_warns_of_nothing(tmp_path: Path):
    runs_dir = tmp_path / "runs"
    fake_backtest(runs_dir, "sales-backtest-20261201-101010", 0.8123, 1.0)
    listed = runner.invoke(app, ["runs", "--runs-dir", str(runs_dir)])
    assert listed.exit_code == 0, listed.output
    assert listed.stderr == ""
    lines = listed.stdout.strip().splitlines()
    assert lines[0].split() == HEADER
    assert lines[1].split()[:2] == ["sales-backtest-20261201-101010", "backtest"]
    assert lines[1].split()[-3:] == ["gru(8)", "0.812", "1"]


def test_runs_names_each_run_it_cannot_read(tmp_path: Path):
    """A damaged run.json or metrics.json (a backtest's backtest.json or config.yaml): the
    folder is not listed, and a warning on stderr names it and what is wrong."""
    runs_dir = tmp_path / "runs"
    fake_run(runs_dir, "good-20261201-101010", "2026-12-01T10:10:10+00:00", 0.5)
    fake_backtest(runs_dir, "good-backtest-20261202-101010", 0.8, 1.0)
    run_files = {"run.json": "{not json", "metrics.json": "[0.5, 1.0]"}
    for day, (file, content) in enumerate(run_files.items(), start=3):
        name = f"{file.split('.')[0]}-2026120{day}-101010"
        folder = fake_run(runs_dir, name, f"2026-12-0{day}T10:10:10+00:00", 0.25)
        (folder / file).write_text(content)
    backtest_files = {
        "backtest.json": '{"layout": "univ',
        "config.yaml": "window: [12, 3\n",
        "edited": "data: {path: s.csv}\n",  # a config.yaml without features
    }
    for day, (file, content) in enumerate(backtest_files.items(), start=5):
        name = f"{file.split('.')[0]}-backtest-2026120{day}-101010"
        folder = fake_backtest(runs_dir, name, 0.25, 1.0)
        (folder / file.replace("edited", "config.yaml")).write_text(content)
    listed = runner.invoke(app, ["runs", "--runs-dir", str(runs_dir)])
    assert listed.exit_code == 0, listed.output
    rows = [line.split()[0] for line in listed.stdout.strip().splitlines()[1:]]
    assert sorted(rows) == ["good-20261201-101010", "good-backtest-20261202-101010"]
    tail = "not listed; train it again or delete it"
    assert sorted(listed.stderr.strip().splitlines()) == [
        f"warning: {runs_dir / 'backtest-backtest-20261205-101010'}: backtest.json: "
        f"unreadable (Unterminated string starting at: line 1 column 12 (char 11)), {tail}",
        f"warning: {runs_dir / 'config-backtest-20261206-101010'}: config.yaml: unreadable "
        f"(while parsing a flow sequence), {tail}",
        f"warning: {runs_dir / 'edited-backtest-20261207-101010'}: config.yaml: "
        f"data.features: required field is missing, {tail}",
        f"warning: {runs_dir / 'metrics-20261204-101010'}: metrics.json: unreadable (a JSON "
        f"list, not an object), {tail}",
        f"warning: {runs_dir / 'run-20261203-101010'}: run.json: unreadable (Expecting "
        f"property name enclosed in double quotes: line 1 column 2 (char 1)), {tail}",
    ]


def test_runs_help_says_what_is_listed():
    text = " ".join(runner.invoke(app, ["runs", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "backtest" in text and "mean over its folds" in text, text


def test_runs_lines_up_wide_characters(tmp_path: Path):
    """A run named 收盘价 takes 6 terminal columns, not 3: every column starts at the same
    place on screen in every row."""
    runs_dir = tmp_path / "runs"
    fake_backtest(runs_dir, "收盘价-backtest-20261201-101010", 0.5, 1.0)
    fake_backtest(runs_dir, "sales-backtest-20261202-101010", 0.25, 1.0)
    listed = runner.invoke(app, ["runs", "--runs-dir", str(runs_dir)])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.rstrip("\n").splitlines()
    assert len(lines) == 3 and "收盘价" in listed.stdout
    starts = {display_width(line[: line.index("backtest ")]) for line in lines[1:]}
    dates = {
        display_width(line[: re.search(r"\d{4}-\d\d-\d\d", line).start()]) for line in lines[1:]
    }
    assert len(starts) == 1 and len(dates) == 1, lines
    assert len({display_width(line) for line in lines}) == 1, lines


def test_predict_table_of_many_columns_fits_100_columns(tmp_path: Path, monkeypatch):
    """Six targets x (value + 80% and 95% bounds) and a date: 31 columns of numbers."""
    columns = [f"target_{i}" for i in range(6)]
    frame = pd.DataFrame({"date": pd.date_range("2026-01-01", periods=3, freq="D")})
    for name in columns:
        for suffix in ("", "_lo_80", "_hi_80", "_lo_95", "_hi_95"):
            frame[name + suffix] = 123456.789
    out = tmp_path / "forecast.csv"

    def fake_predict(*args, **kwargs):
        frame.to_csv(out, index=False)
        return frame, out

    monkeypatch.setattr(api, "predict", fake_predict)
    result = runner.invoke(app, ["predict", "--csv", "x.csv"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.rstrip("\n").splitlines()
    assert max(map(display_width, lines)) <= 100, max(map(len, lines))
    shown = " ".join(lines)
    assert all(f"{name}_hi_95" in shown for name in columns)  # wrapped, not cut
    assert lines[-1] == str(out)


def test_predict_table_lines_up_chinese_columns(tmp_path: Path, monkeypatch):
    frame = pd.DataFrame(
        {"日期": ["2026-01-01", "2026-01-02"], "收盘价": [10.5, 11.25], "收盘价_lo_80": [9.0, 9.5]}
    )
    monkeypatch.setattr(api, "predict", lambda *a, **k: (frame, tmp_path / "f.csv"))
    result = runner.invoke(app, ["predict", "--csv", "x.csv"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.rstrip("\n").splitlines()[:-1]
    assert len({display_width(line) for line in lines}) == 1, lines


@pytest.mark.slow
def test_backtest_logs_the_calendar_columns_train_logs(tmp_path: Path):
    """`calendar: auto` on a monthly series is the month: train and backtest both say so."""
    write_csv(tmp_path / "sales.csv", monthly_frame())
    config = write_config(
        tmp_path / "cal.yaml",
        name="cal",
        seed=3,
        data={
            "path": "sales.csv",
            "time_column": "date",
            "features": ["sales"],
            "calendar": "auto",
        },
        window={"input_steps": 12, "horizon": 2, "multi_step": "direct"},
        split={"test": 0.2, "validation": 0.1},
        model={"architecture": "gru", "units": [4]},
        training={"epochs": 1, "batch_size": 32},
    )
    runs_dir = str(tmp_path / "runs")
    train = runner.invoke(app, ["train", str(config), "--runs-dir", runs_dir])
    backtest = runner.invoke(app, ["backtest", str(config), "-k", "1", "--runs-dir", runs_dir])
    assert train.exit_code == 0 and backtest.exit_code == 0, train.output + backtest.output

    def layout(stderr: str) -> str:
        return next(line for line in stderr.splitlines() if line.startswith("layout "))

    assert "calendar month" in layout(train.stderr), train.stderr
    assert layout(backtest.stderr) == layout(train.stderr)
