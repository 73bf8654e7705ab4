"""Bad input through the real CLI: exit code 2, one line naming what is wrong, no traceback,
and nothing already saved lost or overwritten."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from forecast.cli.app import app

from .conftest import ROOT, monthly_frame, one_line_error, write_csv

runner = CliRunner()
GOOD_DATA = {"path": "s.csv", "time_column": "date", "features": ["sales"]}
TINY = {
    "window": {"input_steps": 6},
    "model": {"architecture": "gru", "units": [4]},
    "training": {"epochs": 1},
}


def config(folder: Path, text: str | None = None, **sections) -> str:
    path = folder / "c.yaml"
    if text is None:
        raw = {"data": dict(GOOD_DATA), **TINY}
        for key, value in sections.items():
            if key != "model" and isinstance(value, dict) and isinstance(raw.get(key), dict):
                raw[key] = {**raw[key], **value}
            else:
                raw[key] = value
        text = yaml.safe_dump(raw)
    path.write_text(text, encoding="utf-8")
    return str(path)


def csv(folder: Path, text: str | bytes, name: str = "s.csv") -> None:
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    (folder / name).write_bytes(data)


def rows(n: int, bad: dict[int, str] | None = None) -> str:
    dates = pd.date_range("2000-01-01", periods=n, freq="D").strftime("%Y-%m-%d")
    lines = ["date,sales"] + [f"{d},{100 + i}" for i, d in enumerate(dates)]
    for row, cell in (bad or {}).items():
        date = lines[row - 1].split(",")[0]
        lines[row - 1] = f"{date},{cell}"
    return "\n".join(lines) + "\n"


# (id, setup(folder) -> argv, words the one-line error must contain)
CASES = [
    ("config-missing", lambda f: ["train", str(f / "nope.yaml")], ["nope.yaml", "not found"]),
    ("config-empty", lambda f: ["train", config(f, "")], ["c.yaml", "the config is empty"]),
    (
        "config-yaml-syntax",
        lambda f: ["train", config(f, "data: [a\nx: 1\n")],
        ["YAML syntax error at line", "column"],
    ),
    (
        "config-a-list",
        lambda f: ["train", config(f, "- data\n- window\n")],
        ["must be a mapping of sections", "list"],
    ),
    (
        "config-unknown-key",
        lambda f: ["train", config(f, windw={})],
        ["unknown key 'windw'", "did you mean 'window'"],
    ),
    (
        "config-unknown-nested-key",
        lambda f: ["train", config(f, training={"early_stopping": {"patiense": 3}})],
        ["training.early_stopping", "did you mean 'patience'"],
    ),
    (
        "config-unknown-layer-param",
        lambda f: ["train", config(f, model={"layers": [{"lstm": {"unit": 4}}]})],
        ["model.layers[0]", "unknown key 'unit'", "did you mean 'units'"],
    ),
    (
        "config-wrong-type",
        lambda f: ["train", config(f, training={"epochs": "ten"})],
        ["training.epochs", "must be an integer", "'ten'"],
    ),
    (
        "config-negative-units",
        lambda f: ["train", config(f, model={"layers": [{"lstm": {"units": -3}}]})],
        ["model.layers[0].units: must be >= 1, got -3"],
    ),
    (
        "config-input-steps-0",
        lambda f: ["train", config(f, window={"input_steps": 0})],
        ["window.input_steps: must be >= 1"],
    ),
    (
        "config-horizon-0",
        lambda f: ["train", config(f, window={"horizon": 0})],
        ["window.horizon: must be >= 1"],
    ),
    (
        "config-test-fraction",
        lambda f: ["train", config(f, split={"test": 1.5})],
        ["split.test", "fraction in (0, 1)"],
    ),
    (
        "config-validation-negative",
        lambda f: ["train", config(f, split={"validation": -0.1})],
        ["split.validation", "got -0.1"],
    ),
    (
        "config-learning-rate",
        lambda f: ["train", config(f, training={"learning_rate": 0})],
        ["training.learning_rate: must be > 0"],
    ),
    (
        "config-epochs-0",
        lambda f: ["train", config(f, training={"epochs": 0})],
        ["training.epochs: must be >= 1"],
    ),
    (
        "config-layer-type",
        lambda f: ["train", config(f, model={"layers": [{"lstn": 4}]})],
        ["unknown layer type 'lstn'", "did you mean 'lstm'", "simple_rnn"],
    ),
    (
        "config-architecture",
        lambda f: ["train", config(f, model={"architecture": "transformer"})],
        ["model.architecture", "'conv1d_lstm'", "'transformer'"],
    ),
    (
        "config-optimizer",
        lambda f: ["train", config(f, training={"optimizer": "adm"})],
        ["training.optimizer", "'adamw'", "'adm'"],
    ),
    (
        "config-layout-disagrees",
        lambda f: ["train", config(f, layout="multi_output")],
        ["layout 'multi_output' disagrees", "'univariate'"],
    ),
    (
        "config-window-longer-than-data",
        lambda f: ["train", config(f, window={"input_steps": 500})],
        ["s.csv", "rows is too few", "input_steps + horizon = 501"],
    ),
    (
        "config-recursive-needs-targets",
        lambda f: [
            "train",
            config(
                f,
                data={"features": ["sales", "price"], "targets": ["sales"]},
                window={"horizon": 2, "multi_step": "recursive"},
            ),
        ],
        ["use multi_step: direct", "price to data.targets"],
    ),
    (
        "config-stack-order",
        lambda f: ["train", config(f, model={"layers": [{"gru": 4}, {"lstm": 4}]})],
        ["model.layers[1] (lstm): needs a sequence input", "return_sequences: true"],
    ),
    (
        "config-pooling-to-zero",
        lambda f: ["train", config(f, model={"layers": [{"max_pooling1d": 16}, {"lstm": 4}]})],
        ["pool_size 16 shrinks 6 step(s) to zero"],
    ),
    (
        "config-set-malformed",
        lambda f: ["train", config(f), "--set", "training.epochs"],
        ["--set", "expected key.path=value"],
    ),
    ("config-no-data-path", lambda f: ["train", config(f, data={"path": None})], ["data.path"]),
    (
        "config-distribute-unknown",
        lambda f: ["train", config(f, training={"distribute": "parameter_server"})],
        ["training.distribute", "must be one of 'none', 'mirrored' or 'multi_worker'"],
    ),
    (
        "config-seed-negative",
        lambda f: ["train", config(f), "--seed", "-1"],
        ["--seed -1: seed: must be >= 0, got -1"],
    ),
    (
        "config-set-names-the-option",
        lambda f: ["train", config(f), "--set", "window.input_steps=-4"],
        ["--set window.input_steps=-4: window.input_steps: must be >= 1"],
    ),
    (
        "config-shorthand-filters-with-lstm",
        lambda f: ["train", config(f, model={"architecture": "lstm", "filters": 8})],
        ["model: 'filters' applies only to architecture conv1d_lstm, not lstm"],
    ),
    (
        "config-shorthand-layer-with-gru",
        lambda f: ["train", config(f, model={"architecture": "gru", "layer": "lstm"})],
        ["model: 'layer' applies only to architecture bidirectional, not gru"],
    ),
    (
        "csv-decimal-comma",
        lambda f: (
            csv(f, rows(80).replace(",", ";").replace(";105", ";105,5")),
            ["train", config(f)],
        )[1],
        ["column 'sales' row 7", "'105,5' is not a number", "set data.decimal: ','"],
    ),
    (
        "csv-ambiguous-thousands",
        lambda f: (
            csv(f, rows(80).replace(",", ";").replace(";105", ";1,105")),
            ["train", config(f)],
        )[1],
        ["'1,105' is ambiguous", "data.thousands: ','", "data.decimal: ','"],
    ),
    (
        "csv-missing",
        lambda f: ["train", config(f, data={"path": "gone.csv"})],
        ["gone.csv", "data file not found"],
    ),
    ("csv-empty", lambda f: (csv(f, ""), ["train", config(f)])[1], ["s.csv", "empty"]),
    (
        "csv-header-only",
        lambda f: (csv(f, "date,sales\n"), ["train", config(f)])[1],
        ["s.csv", "no data rows"],
    ),
    (
        "csv-binary",
        lambda f: (csv(f, bytes(range(256)) * 4), ["train", config(f)])[1],
        ["s.csv", "cannot be read as text"],
    ),
    (
        "csv-missing-column",
        lambda f: ["train", config(f, data={"features": ["Close"]})],
        ["no column 'Close'", "the columns are: date, sales, price"],
    ),
    (
        "csv-text-in-numbers",
        lambda f: (csv(f, rows(80, {5: "abc"})), ["train", config(f)])[1],
        ["column 'sales' row 5", "'abc' is not a number"],
    ),
    (
        "csv-missing-value",
        lambda f: (csv(f, rows(80, {7: ""})), ["train", config(f)])[1],
        ["column 'sales' has a missing value", "data.missing"],
    ),
    (
        "csv-infinite",
        lambda f: (csv(f, rows(80, {9: "inf"})), ["train", config(f)])[1],
        ["column 'sales' row 9: infinite value"],
    ),
    (
        "csv-bad-time",
        lambda f: (csv(f, rows(80).replace("2000-01-03", "someday")), ["train", config(f)])[1],
        ["column 'date' row 4", "'someday' is not a date"],
    ),
    (
        "csv-duplicate-time",
        lambda f: (csv(f, rows(80).replace("2000-01-03", "2000-01-02")), ["train", config(f)])[1],
        ["duplicate time"],
    ),
    (
        "csv-too-few-rows",
        lambda f: (csv(f, rows(8)), ["train", config(f)])[1],
        ["8 rows is too few"],
    ),
    (
        "csv-log-of-zero",
        lambda f: (csv(f, rows(80, {6: "0"})), ["train", config(f, data={"transform": "log"})])[1],
        ["needs values > 0", "transform: diff or none"],
    ),
    (
        "csv-unknown-encoding",
        lambda f: ["train", config(f, data={"encoding": "klingon"})],
        ["unknown encoding 'klingon'"],
    ),
    (
        "csv-no-time-column",
        lambda f: ["train", config(f, data={"time_column": "when"})],
        ["no column 'when' (data.time_column)"],
    ),
    (
        "run-missing",
        lambda f: ["predict", "--run", str(f / "nope"), "--csv", str(f / "s.csv")],
        ["run directory not found"],
    ),
    ("plot-no-runs", lambda f: ["plot", "--runs-dir", str(f / "empty")], ["no finished run"]),
    (
        "backtest-folds-0",
        lambda f: ["backtest", config(f), "--folds", "0"],
        ["--folds must be >= 1"],
    ),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_csv(tmp_path / "s.csv", monthly_frame(80))
    return tmp_path


@pytest.mark.parametrize(("setup", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(folder, setup, words):
    line = one_line_error(runner.invoke(app, setup(folder)))
    for word in words:
        assert word in line, line


# --------------------------------------------------------------------------- broken runs


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    write_csv(folder / "s.csv", monthly_frame(80))
    result = runner.invoke(app, ["train", config(folder), "--runs-dir", str(folder / "runs"), "-q"])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


def broken_copy(good_run: Path, tmp_path: Path, damage) -> Path:
    run = tmp_path / "runs" / good_run.name
    shutil.copytree(good_run, run)
    damage(run)
    return run


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


RUN_CASES = [
    ("no-model", lambda r: (r / "model.keras").unlink(), ["incomplete run (no model.keras)"]),
    ("truncated-model", lambda r: truncate(r / "model.keras"), ["corrupted or incomplete"]),
    (
        "corrupt-scaler",
        lambda r: (r / "scaler.json").write_text("{not json"),
        ["scaler.json", "unreadable scaler"],
    ),
    (
        "scaler-zero-scale",
        lambda r: (r / "scaler.json").write_text(
            json.dumps({"method": "minmax", "columns": {"sales": {"scale": 0, "offset": 0}}})
        ),
        ["corrupt scaler file"],
    ),
    (
        "old-format",
        lambda r: (r / "run.json").write_text(json.dumps({"format_version": 99})),
        ["run format 99 is not supported", "train the run again"],
    ),
    (
        "config-edited",
        lambda r: (r / "config.yaml").write_text("data: {path: x.csv}\n"),
        ["config.yaml", "data.features"],
    ),
    (
        "scaler-other-columns",
        lambda r: (r / "scaler.json").write_text(
            json.dumps({"method": "minmax", "columns": {"price": {"scale": 1, "offset": 0}}})
        ),
        ["scaler.json columns do not match config.yaml", "train again"],
    ),
]


def test_a_scaler_that_does_not_match_the_config_is_a_run_error(good_run, tmp_path):
    from forecast import api
    from forecast.errors import RunError

    run = broken_copy(good_run, tmp_path, RUN_CASES[-1][1])
    with pytest.raises(RunError, match="scaler.json columns do not match config.yaml"):
        api.predict(run, good_run.parent.parent / "s.csv")


@pytest.mark.parametrize(
    ("damage", "words"), [c[1:] for c in RUN_CASES], ids=[c[0] for c in RUN_CASES]
)
def test_broken_runs_are_refused(good_run, tmp_path, damage, words):
    run = broken_copy(good_run, tmp_path, damage)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    result = runner.invoke(
        app, ["predict", "--run", str(run), "--csv", str(good_run.parent.parent / "s.csv")]
    )
    line = one_line_error(result)
    for word in words:
        assert word in line, line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing overwritten


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("date,price\n2000-01-01,1\n", ["no column 'sales'", "date, price"]),
        ("date,sales\n2000-01-01,1\n2000-01-02,2\n", ["has 2 usable row(s)", "needs the last 6"]),
    ],
    ids=["predict-csv-lacks-column", "predict-csv-too-short"],
)
def test_predict_csv_problems(good_run, tmp_path, content, words):
    csv(tmp_path, content, "recent.csv")
    result = runner.invoke(
        app, ["predict", "--run", str(good_run), "--csv", str(tmp_path / "recent.csv")]
    )
    line = one_line_error(result)
    for word in words:
        assert word in line, line


def test_predict_horizon_below_1(good_run):
    result = runner.invoke(
        app,
        [
            "predict",
            "--run",
            str(good_run),
            "--csv",
            str(good_run.parent.parent / "s.csv"),
            "--horizon",
            "0",
        ],
    )
    assert "--horizon must be >= 1, got 0" in one_line_error(result)


def test_a_model_with_a_lambda_layer_is_refused_without_running_it(good_run, tmp_path):
    import keras

    marker = tmp_path / "lambda-ran"
    # the Lambda's code would create `marker` if Keras ever ran it
    touch = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")
    inputs = keras.Input((6, 1))
    outputs = keras.layers.Reshape((1, 1))(
        keras.layers.Dense(1)(keras.layers.Flatten()(keras.layers.Lambda(touch)(inputs)))
    )
    evil = keras.Model(inputs, outputs)
    marker.unlink(missing_ok=True)  # building the model above ran it once
    run = broken_copy(good_run, tmp_path, lambda r: evil.save(r / "model.keras"))
    result = runner.invoke(
        app, ["predict", "--run", str(run), "--csv", str(good_run.parent.parent / "s.csv")]
    )
    line = one_line_error(result)
    assert "refused by safe mode" in line and "Lambda" in line
    assert not marker.exists()


@pytest.mark.parametrize(
    "case", ["config-yaml-syntax", "csv-text-in-numbers", "config-unknown-key"]
)
def test_bad_input_through_the_console_script(folder, case):
    setup, words = next(c[1:] for c in CASES if c[0] == case)
    argv = setup(folder)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "forecast"), *argv],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    for word in words:
        assert word in result.stderr


def test_a_misspelt_column_is_named_before_the_layout(tmp_path: Path):
    """收盤价(元) (traditional 盤) for the GB18030 file's 收盘价(元): the layout would disagree
    (features and targets differ), but the message names the column and the one meant."""
    (tmp_path / "prices.csv").write_bytes(
        b"".join((ROOT / "data" / "msft_gb18030.csv").read_bytes().splitlines(True)[:80])
    )
    config = tmp_path / "typo.yaml"
    config.write_text(
        "layout: univariate\n"
        "data:\n  path: prices.csv\n  time_column: 日期\n"
        "  features: [收盤价(元)]\n  targets: [收盘价(元)]\n",
        encoding="utf-8",
    )
    said = (
        f"error: {tmp_path / 'prices.csv'}: no column '收盤价(元)' (data.features/targets); "
        "the columns are: 日期, 开盘价(元), 最高价(元), 最低价(元), 收盘价(元), 成交量; "
        "did you mean '收盘价(元)'?"
    )
    for command in ("validate", "tune"):  # tune loads the config itself
        result = runner.invoke(app, [command, str(config)])
        assert result.exit_code == 2
        assert result.stderr.strip() == said
    # a name cut short, with the layout left to inference: the same hint
    config.write_text(
        "data:\n  path: prices.csv\n  time_column: 日期\n  features: [收盘价(元), 成交量]\n"
        "  targets: [收盘价(元)]\n",
        encoding="utf-8",
    )
    data = runner.invoke(
        app, ["validate", str(config), "--set", "data.features=[收盘价(元), 成交]"]
    )
    assert data.exit_code == 2
    assert data.stderr.strip().endswith("did you mean '成交量'?")
