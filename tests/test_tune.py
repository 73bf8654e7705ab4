"""`forecast tune`: the search space, the draws, and that the test rows are never read."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from forecast.cli.app import app
from forecast.config.file import load_config
from forecast.workflows.tune import draws, space

from .conftest import monthly_frame, tiny_config_file, write_csv


def tune_config(tmp_path: Path, rows: int = 90) -> Path:
    return tiny_config_file(
        tmp_path,
        "t.yaml",
        rows=rows,
        name="t",
        seed=5,
        window={"horizon": 3},
        split={"validation": 0},
        model={"architecture": "gru", "units": [4], "window_norm": True, "residual": "naive"},
        training={"epochs": 1},
        evaluation={"season_length": 12},
    )


def test_draws_are_distinct_seeded_and_keep_a_season_in_the_window(tmp_path: Path):
    config = load_config(tune_config(tmp_path))
    options = space(config, 12)
    assert options["window.input_steps"] == [12, 24, 36]
    first = draws(options, 12, 20, seed=1)
    assert first == draws(options, 12, 20, seed=1)  # the same seed, the same trials
    assert first != draws(options, 12, 20, seed=2)
    assert len({tuple(d) for d in first}) == 20
    # a window of 6 rows holds no season of 12: only `naive` may go with it
    short = draws(space(config, 12) | {"window.input_steps": [6]}, 12, 50, 1)
    assert short == []  # every residual in a seasonal space is seasonal
    without = space(config, 1)
    assert without["window.input_steps"] == [6, 12, 24]
    assert "naive" in without["model.residual"]


@pytest.mark.slow
def test_tune_writes_the_best_config_and_never_reads_the_test_rows(tmp_path: Path):
    config = tune_config(tmp_path)
    args = ["tune", str(config), "--trials", "2", "--folds", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path == tmp_path / "t.tuned.yaml"
    text = path.read_text(encoding="utf-8")
    header = [line for line in text.splitlines() if line.startswith("#   trial")]
    assert len(header) == 2 and "the config as given" in header[0]
    tuned = load_config(path)  # a complete, valid config
    assert tuned.data.features == ["sales"] and tuned.training.epochs == 1
    # 90 rows, 18 test rows: the search saw the first 72
    assert "on the first 72 rows" in result.stdout
    scores = [line.split("MASE ")[1].split()[0] for line in result.stdout.splitlines()[:2]]

    # the same search with wild test rows gives the same scores: they are never used
    frame = monthly_frame(90)
    frame.loc[72:, "sales"] = 1e6
    write_csv(tmp_path / "sales.csv", frame)
    again = CliRunner().invoke(app, [*args, "--output", str(tmp_path / "again.yaml")])
    assert again.exit_code == 0, again.output
    assert [line.split("MASE ")[1].split()[0] for line in again.stdout.splitlines()[:2]] == scores
    best = yaml.safe_load((tmp_path / "again.yaml").read_text(encoding="utf-8"))
    assert best["data"]["path"] == str(tmp_path / "sales.csv")


def test_tune_never_overwrites_a_file(tmp_path: Path):
    config = tune_config(tmp_path)
    (tmp_path / "t.tuned.yaml").write_text("mine\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["tune", str(config), "--trials", "1"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 't.tuned.yaml'}: exists; pass --output with a new path or remove it"
    ]
    assert (tmp_path / "t.tuned.yaml").read_text(encoding="utf-8") == "mine\n"


def test_tune_says_when_the_training_part_cannot_hold_the_folds(tmp_path: Path):
    config = tune_config(tmp_path, rows=40)
    result = CliRunner().invoke(app, ["tune", str(config), "--folds", "20"])
    assert result.exit_code == 2
    assert "training rows cannot hold 20 folds of horizon 3; use fewer --folds" in result.stderr
    assert not (tmp_path / "t.tuned.yaml").exists()
