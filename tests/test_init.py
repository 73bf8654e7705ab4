from __future__ import annotations

import shutil

import pytest
import yaml
from typer.testing import CliRunner

from forecast import api
from forecast.cli.app import app

from .conftest import ROOT

runner = CliRunner()


@pytest.mark.parametrize(
    ("csv", "args", "expected"),
    [
        ("msft_daily.csv", [], {"time_column": "Date", "targets": ["Close"], "season": 5}),
        ("msft_gb18030.csv", [], {"time_column": "日期", "targets": ["收盘价(元)"], "season": 5}),
        (
            "airline_monthly.csv",
            ["--layout", "univariate_multi_step"],
            {"time_column": "date", "targets": ["passengers"], "season": 12},
        ),
        (
            "macrodata_quarterly.csv",
            ["--layout", "multi_output", "--target", "unemp"],
            {"time_column": "date", "targets": ["unemp", "realgdp"], "season": 4},
        ),
        ("sine.csv", ["--horizon", "5"], {"time_column": None, "targets": ["value"], "season": 1}),
    ],
)
def test_starter_config_from_a_csv_trains_as_printed(tmp_path, csv, args, expected):
    shutil.copy(ROOT / "data" / csv, tmp_path / csv)
    result = runner.invoke(app, ["init", "--csv", str(tmp_path / csv), *args])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# forecast config")
    raw = yaml.safe_load(result.stdout)
    assert raw["data"]["time_column"] == expected["time_column"]
    assert raw["data"]["targets"] == expected["targets"]
    assert raw["evaluation"]["season_length"] == expected["season"]
    path = tmp_path / "starter.yaml"
    path.write_text(result.stdout, encoding="utf-8")
    raw["data"]["path"] = csv  # relative to the config file, which sits beside the CSV
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    info = api.validate(path)  # the data fits the window and splits
    assert info["train_windows"][0] > 0 and info["test_origins"][0] > 0


def test_init_without_a_csv_prints_a_template():
    result = runner.invoke(app, ["init", "--layout", "multivariate_multi_step"])
    assert result.exit_code == 0
    raw = yaml.safe_load(result.stdout)
    assert raw["layout"] == "multivariate_multi_step" and raw["window"]["horizon"] >= 2


def test_init_unknown_layout_is_a_user_error():
    result = runner.invoke(app, ["init", "--layout", "bogus"])
    assert result.exit_code == 2
    assert "unknown layout 'bogus'; valid layouts: univariate" in result.stderr


def test_init_target_must_be_numeric(tmp_path):
    shutil.copy(ROOT / "data/airline_monthly.csv", tmp_path / "a.csv")
    before = (tmp_path / "a.csv").read_bytes()
    result = runner.invoke(app, ["init", "--csv", str(tmp_path / "a.csv"), "--target", "date"])
    assert result.exit_code == 2
    assert "--target 'date' is not a numeric column; numeric columns: passengers" in result.stderr
    assert result.stdout == ""  # no half config printed
    assert (tmp_path / "a.csv").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]  # nothing else written


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Date,Open,High,Low,Close,Volume,OpenInt", "Close"),
        ("日期,开盘价(元),最高价(元),最低价(元),收盘价(元),成交量", "收盘价(元)"),
        ("日期,开盘,收盘,成交量", "收盘"),
        ("Date,Open,Adj Close,Volume", "Adj Close"),
        ("date,sales,volume", "sales"),  # the last numeric column that is not a volume
    ],
)
def test_init_picks_a_closing_price_never_a_volume(tmp_path, header, expected):
    columns = header.split(",")
    rows = [
        ",".join([f"2020-01-{day:02d}"] + [str(10 * i + day) for i in range(1, len(columns))])
        for day in range(1, 29)
    ]
    csv = tmp_path / "prices.csv"
    csv.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["init", "--csv", str(csv)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["data"]["targets"] == [expected]
