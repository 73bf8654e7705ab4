"""`forecast init` in a newcomer's first hour: decimal-comma files, the target it picks, a
window that fits the file, aligned comments and helpful --help (issue items 13, 15, 16, 24,
26)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from forecast import api
from forecast.cli.app import app

runner = CliRunner()

FREQUENCIES = {"monthly": "MS", "quarterly": "QS", "weekly": "W-MON", "daily": "D", "hourly": "h"}


def seasonal_frame(rows: int, freq: str | None, seed: int = 0) -> pd.DataFrame:
    """sales (seasonal, trending, noisy) and a 0/1 promo dummy; a time column unless
    `freq` is None."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    sales = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, rows)
    frame = pd.DataFrame({"sales": sales.round(2), "promo": rng.integers(0, 2, rows)})
    if freq is not None:
        dates = pd.date_range("2001-01-01", periods=rows, freq=freq)
        frame.insert(0, "time", dates.strftime("%Y-%m-%d %H:%M"))
    return frame


def init(*args: str):
    return runner.invoke(app, ["init", *map(str, args)])


def save(tmp_path, text: str, name: str = "init.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# item 13: decimal-comma files


def decimal_comma_file(tmp_path, quoted: bool):
    frame = seasonal_frame(60, "MS")[["time", "sales"]]
    frame["price"] = (20 + np.arange(60) % 7 * 0.25).round(2)
    cells = frame.copy()
    for column in ("sales", "price"):
        cells[column] = frame[column].map(lambda v: f"{v:.2f}".replace(".", ","))
    path = tmp_path / "komma.csv"
    if quoted:  # a comma-separated export quotes its decimal-comma cells
        cells.to_csv(path, index=False, quoting=1)
    else:
        cells.to_csv(path, index=False, sep=";")
    return path, frame


@pytest.mark.parametrize("quoted", [False, True], ids=["semicolon", "quoted"])
def test_init_says_a_file_uses_a_decimal_comma(tmp_path, quoted):
    path, _ = decimal_comma_file(tmp_path, quoted)
    result = init("--csv", path)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line and "no numeric column" not in line
    assert "',' as the decimal mark" in line and "--decimal ," in line, line


@pytest.mark.parametrize("quoted", [False, True], ids=["semicolon", "quoted"])
def test_init_with_decimal_comma_writes_it_and_the_config_validates(tmp_path, quoted):
    path, frame = decimal_comma_file(tmp_path, quoted)
    result = init("--csv", path, "--decimal", ",")
    assert result.exit_code == 0, result.output
    raw = yaml.safe_load(result.stdout)
    assert raw["data"]["decimal"] == ","
    assert raw["data"]["targets"] == ["sales"]
    assert "encoding" not in raw["data"] or raw["data"]["encoding"] == "auto"
    info = api.validate(save(tmp_path, result.stdout))
    assert info["rows"] == 60 and info["train_windows"][0] > 0


def test_init_encoding_option_is_written_and_read(tmp_path):
    frame = seasonal_frame(48, "MS").rename(columns={"sales": "销量"})
    path = tmp_path / "gbk.csv"
    path.write_bytes(frame.to_csv(index=False).encode("gbk"))
    result = init("--csv", path, "--encoding", "gbk")
    assert result.exit_code == 0, result.output
    raw = yaml.safe_load(result.stdout)
    assert raw["data"]["encoding"] == "gbk" and raw["data"]["targets"] == ["销量"]
    assert api.validate(save(tmp_path, result.stdout))["rows"] == 48


# item 15: the target a person would choose, said on stderr


def test_init_chooses_sales_not_the_promo_dummy_and_says_so(tmp_path):
    path = tmp_path / "shop.csv"
    seasonal_frame(120, "MS").rename(columns={"time": "month"}).to_csv(path, index=False)
    result = init("--csv", path)
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["data"]["targets"] == ["sales"]
    assert "init: target sales" in result.stderr
    assert "promo" in result.stderr and "--target COL" in result.stderr


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        # a row counter, a constant and a 3-valued code are never the target
        ({"id": np.arange(1, 61), "flag": [1] * 60, "store": np.arange(60) % 3}, "level"),
        ({"demand": None, "temperature": None}, "demand"),  # a demand-like name first
        ({"sales": None, "price": None}, "sales"),
    ],
)
def test_init_target_choice(tmp_path, columns, expected):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=60).strftime("%Y-%m-%d")})
    for name, values in columns.items():
        frame[name] = values if values is not None else rng.normal(50, 5, 60).round(2)
    if expected == "level":
        frame["level"] = rng.normal(10, 3, 60).round(2)
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    result = init("--csv", path)
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["data"]["targets"] == [expected]
    assert f"init: target {expected} (" in result.stderr


def test_init_stderr_lists_the_other_candidates(tmp_path):
    frame = seasonal_frame(60, "MS")
    frame["price"] = np.linspace(10, 12, 60).round(3) + np.sin(np.arange(60))
    path = tmp_path / "p.csv"
    frame.to_csv(path, index=False)
    result = init("--csv", path)
    assert "init: target sales (other candidates: price;" in result.stderr, result.stderr


# item 16: a window that fits every file init accepts


LENGTHS = [36, 37, 40, 48, 53, 60, 73, 97, 100, 120, 121, 150, 200, 287, 400]


@pytest.mark.parametrize("freq", [*FREQUENCIES, None])
def test_init_config_validates_on_its_own_file_at_every_length(tmp_path, freq):
    failures = []
    for rows in LENGTHS:
        path = tmp_path / f"s{rows}.csv"
        seasonal_frame(rows, FREQUENCIES.get(freq)).to_csv(path, index=False)
        result = init("--csv", path)
        if result.exit_code != 0:
            failures.append(f"{rows} rows: init: {result.output.strip()}")
            continue
        config = save(tmp_path, result.stdout, f"s{rows}.yaml")
        try:
            info = api.validate(config)
            api.validate(config, ["data.transform=diff"])  # a difference costs a row
        except Exception as exc:  # noqa: BLE001 - collect every length that fails
            failures.append(f"{rows} rows: validate: {exc}")
            continue
        if info["train_windows"][0] < 1 or info["test_origins"][0] < 1:
            failures.append(f"{rows} rows: {info['train_windows']} {info['test_origins']}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("horizon", [1, 6])
def test_init_refuses_a_too_short_file_in_one_line(tmp_path, horizon):
    path = tmp_path / "short.csv"
    seasonal_frame(4 * horizon + 1, "MS").to_csv(path, index=False)
    result = init("--csv", path, "--horizon", horizon)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert "\n" not in message and f"{4 * horizon + 1} rows" in message, message
    needed = int(re.search(r"needs at least (\d+) rows", message).group(1))
    assert needed == 4 * horizon + 2
    # that many rows is enough: the config validates and backtests
    seasonal_frame(needed, "MS").to_csv(path, index=False)
    result = init("--csv", path, "--horizon", horizon)
    assert result.exit_code == 0, result.output
    assert api.validate(save(tmp_path, result.stdout))["train_windows"][0] > 0


@pytest.mark.slow
@pytest.mark.parametrize(("freq", "rows"), [("monthly", 120), ("weekly", 36), ("hourly", 100)])
def test_init_config_trains_on_its_own_file(tmp_path, freq, rows):
    path = tmp_path / "s.csv"
    seasonal_frame(rows, FREQUENCIES.get(freq)).to_csv(path, index=False)
    result = init("--csv", path)
    assert result.exit_code == 0, result.output
    config = save(tmp_path, result.stdout)
    result = runner.invoke(
        app,
        ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet",
         "--set", "training.epochs=1", "--set", "model.units=[4]"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1].startswith(str(tmp_path / "runs"))


# item 26: aligned comments


def test_init_comments_start_in_one_column(tmp_path):
    """As in DESIGN.md's config example: every `# ...` after a value starts in one column,
    whatever the values' widths (an id column's name, a one-digit window, `auto`)."""
    path = tmp_path / "s.csv"
    seasonal_frame(60, "D").to_csv(path, index=False)
    long_table = pd.concat(
        [seasonal_frame(40, "MS").assign(store_name=name) for name in ("north", "south")]
    )
    long_table.to_csv(tmp_path / "long.csv", index=False)
    for args in (
        ["--csv", path],
        ["--csv", path, "--horizon", "3"],
        ["--csv", tmp_path / "long.csv"],
        ["--layout", "multi_output"],
    ):
        result = init(*args)
        assert result.exit_code == 0, result.output
        columns = {
            line.index("#"): line
            for line in result.stdout.splitlines()
            if "#" in line and not line.startswith("#")
        }
        assert len(columns) == 1, "\n".join(columns.values())


# item 24 (init only): layouts and defaults in --help


def test_init_help_lists_layouts_and_defaults():
    result = runner.invoke(app, ["init", "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())  # the words, unwrapped
    for layout in (
        "univariate", "multivariate", "multi_output", "univariate_multi_step",
        "multivariate_multi_step", "multi_output_multi_step",
    ):  # fmt: skip
        assert layout in text
    assert "default: chosen from the CSV" in text
    assert "default: 1" in text and "one season" in text
    assert "--decimal" in text and "--encoding" in text


def test_init_unknown_layout_suggests_the_closest():
    result = init("--layout", "multivariate_multistep")
    assert result.exit_code == 2
    assert "did you mean 'multivariate_multi_step'?" in result.stderr


def test_init_on_a_file_with_holes_writes_a_missing_policy_that_validates(tmp_path):
    frame = seasonal_frame(60, "MS")
    frame.loc[[10, 31], "sales"] = np.nan  # two empty cells
    path = tmp_path / "holes.csv"
    frame.to_csv(path, index=False)
    result = init("--csv", path)
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["data"]["missing"] == "interpolate"
    assert api.validate(save(tmp_path, result.stdout))["rows"] == 60


def test_init_says_which_target_it_writes_even_when_given_or_several(tmp_path):
    """Always on stderr: the target(s) in the config, as given with --target (a 0/1 dummy
    gets a word), or both targets of a multi_output config."""
    path = tmp_path / "shop.csv"
    seasonal_frame(120, "MS").rename(columns={"time": "month"}).to_csv(path, index=False)
    given = init("--csv", path, "--target", "promo")
    assert given.exit_code == 0, given.output
    line = "init: target promo as given with --target; note: it looks like no target"
    assert line in given.stderr, given.stderr
    both = init("--csv", path, "--layout", "multi_output")
    assert both.exit_code == 0, both.output
    targets = yaml.safe_load(both.stdout)["data"]["targets"]
    assert len(targets) == 2
    assert f"init: targets {', '.join(targets)} (other candidates:" in both.stderr, both.stderr


def test_init_with_an_unknown_encoding_names_the_option(tmp_path):
    path = tmp_path / "shop.csv"
    seasonal_frame(60, "MS").to_csv(path, index=False)
    result = init("--csv", path, "--encoding", "nope")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {path}: unknown encoding 'nope' in --encoding; use auto, utf-8 or gb18030"
    )


def test_init_names_the_run_after_a_file_name_that_is_no_run_name(tmp_path):
    """`my data.csv` (a space), `.sales.csv` (a dot first): init still writes a config that
    validates, named my_data and sales."""
    for file, name in (("my data.csv", "my_data"), (".sales.csv", "sales")):
        path = tmp_path / file
        seasonal_frame(60, "MS").to_csv(path, index=False)
        result = init("--csv", path)
        assert result.exit_code == 0, result.output
        assert yaml.safe_load(result.stdout)["name"] == name
        api.validate(save(tmp_path, result.stdout))
