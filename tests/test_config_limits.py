"""Config limits and the wording of `--set`: alias bombs and huge values refused or echoed
in a bounded excerpt, models that cannot fit in memory refused before training, `--set`
named in its errors, and `tune` under `--set`."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from forecast.cli.app import app

from .conftest import monthly_frame, write_config, write_csv

runner = CliRunner()

# nine levels of nine references each: 9**9 (387 million) strings once expanded
BOMB = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
)


def _cli(args: list[str]) -> tuple[int, str]:
    result = runner.invoke(app, args)
    return result.exit_code, result.output


def _bomb_config(folder: Path, where: str) -> Path:
    """tiny's config with the bomb's last alias as `name` or as `model.layers`."""
    write_csv(folder / "s.csv", monthly_frame(60))
    data = "data: {path: s.csv, time_column: date, features: [sales]}\n"
    use = {"name": "name: *a8\n", "layers": "model: {layers: *a8}\n"}[where]
    path = folder / "bomb.yaml"
    path.write_text(f"bombs:\n  {BOMB.replace(chr(10), chr(10) + '  ')}\n{data}{use}")
    return path


# --------------------------------------------------------------------------- item 2


@pytest.mark.parametrize("where", ["name", "layers"])
def test_an_alias_bomb_is_refused_in_a_short_line_quickly(tmp_path: Path, where: str):
    path = _bomb_config(tmp_path, where)
    _cli(["validate", str(tmp_path / "none.yaml")])  # the CLI's own imports, before timing
    tracemalloc.start()
    started = time.perf_counter()
    code, out = _cli(["validate", str(path)])
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert code == 2, out
    assert out.startswith(f"error: {path}: ") and out.count("\n") == 1, out
    assert "100,000" in out and len(out) < 300, out
    assert seconds < 0.5, seconds
    assert peak < 50 * 2**20, peak


def test_a_long_value_is_echoed_as_a_short_excerpt(tmp_path: Path):
    write_csv(tmp_path / "s.csv", monthly_frame(60))
    long_name = "x" * 5000 + " y"
    path = write_config(
        tmp_path / "c.yaml",
        name=long_name,
        data={"path": "s.csv", "time_column": "date", "features": ["sales"]},
    )
    code, out = _cli(["validate", str(path)])
    assert code == 2, out
    assert "name: must use only letters" in out and "'xxxxx" in out, out
    assert "xxx...xxx" in out and len(out) < 300, out


def test_an_alias_bomb_in_a_set_value_is_refused(tiny_config: Path):
    levels = ["&b0 [" + ", ".join(["lol"] * 9) + "]"]
    levels += [f"&b{i} [" + ", ".join([f"*b{i - 1}"] * 9) + "]" for i in range(1, 9)]
    value = "[" + ", ".join(levels) + "]"  # the last item alone is 9**9 strings
    code, out = _cli(["validate", str(tiny_config), "--set", f"name={value}"])
    assert code == 2, out
    assert out.startswith("error: --set name: the config expands to more than 100,000"), out


def test_a_long_list_in_a_wrong_place_is_echoed_as_a_short_excerpt(tmp_path: Path):
    write_csv(tmp_path / "s.csv", monthly_frame(60))
    path = write_config(
        tmp_path / "c.yaml",
        data={"path": "s.csv", "time_column": "date", "features": ["sales"]},
        training={"epochs": list(range(20_000))},
    )
    code, out = _cli(["validate", str(path)])
    assert code == 2, out
    assert "training.epochs: must be an integer, got [0, 1, 2" in out, out
    assert len(out) < 300, out


# --------------------------------------------------------------------------- item 8


def _tiny(folder: Path, **model) -> Path:
    write_csv(folder / "s.csv", monthly_frame(60))
    return write_config(
        folder / "c.yaml",
        data={"path": "s.csv", "time_column": "date", "features": ["sales"]},
        window={"input_steps": 6},
        model=model,
        training={"epochs": 1},
    )


def test_absurd_units_are_a_field_error(tmp_path: Path):
    code, out = _cli(["validate", str(_tiny(tmp_path, architecture="lstm", units=[10**12]))])
    assert code == 2, out
    assert "model.units[0]: must be <= 65536, got 1000000000000" in out, out


def test_absurd_filters_are_a_field_error(tmp_path: Path):
    layers = [{"conv1d": {"filters": 10**6}}, {"lstm": 4}]
    code, out = _cli(["validate", str(_tiny(tmp_path, layers=layers))])
    assert code == 2, out
    assert "model.layers[0].filters: must be <= 65536, got 1000000" in out, out


@pytest.mark.parametrize("command", ["validate", "train", "backtest", "tune"])
def test_a_model_too_big_for_memory_is_refused_with_the_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
):
    from forecast.model import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * 10**9)
    path = _tiny(tmp_path, layers=[{"lstm": {"units": 30_000}}])
    runs = tmp_path / "runs"
    args = {"train": ["--runs-dir", str(runs)], "backtest": ["--runs-dir", str(runs)]}
    args["tune"] = ["--trials", "1", "--folds", "1"]
    code, out = _cli([command, str(path), *args.get(command, [])])
    assert code == 2, out
    # LSTM(30000) on one feature: 3.6e9 parameters, x4 float32 copies = 57.6 GB
    assert out == (
        "error: model.layers[0].units: 30000 units need about 58 GB for training, "
        "this machine has 8 GB available; use fewer units\n"
    ), out
    assert not runs.exists() or not any(runs.iterdir())
    assert not (tmp_path / "c.tuned.yaml").exists()


def test_a_model_that_fits_is_not_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from forecast.model import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * 10**9)
    code, out = _cli(["validate", str(_tiny(tmp_path, layers=[{"lstm": {"units": 64}}]))])
    assert code == 0, out


def test_available_memory_is_read_from_this_machine():
    from forecast.model import memory

    found = memory.available_bytes()
    assert found is None or 10**7 < found < 2**50


# --------------------------------------------------------------------------- item 22


def test_an_unknown_key_from_set_names_the_option(tiny_config: Path):
    code, out = _cli(["validate", str(tiny_config), "--set", "training.epoch=3"])
    assert code == 2, out
    assert out.startswith("error: --set training.epoch=3: training: unknown key 'epoch'"), out
    assert "did you mean 'epochs'" in out


def test_an_unknown_section_from_set_names_the_option(tiny_config: Path):
    code, out = _cli(["validate", str(tiny_config), "--set", "trainin.epochs=3"])
    assert code == 2, out
    assert out.startswith("error: --set trainin.epochs=3: unknown key 'trainin'"), out
    assert "did you mean 'training'" in out


def test_an_unknown_key_in_the_file_still_names_the_file(tiny_config: Path):
    text = tiny_config.read_text().replace("epochs: 2", "epoch: 2")
    tiny_config.write_text(text)
    code, out = _cli(["validate", str(tiny_config), "--set", "training.batch_size=8"])
    assert code == 2, out
    assert out.startswith(f"error: {tiny_config}: training: unknown key 'epoch'"), out


def test_a_bad_choice_gets_a_did_you_mean(tiny_config: Path):
    code, out = _cli(["validate", str(tiny_config), "--set", "data.transform=logdiff"])
    assert code == 2, out
    assert out == (
        "error: --set data.transform=logdiff: data.transform: must be one of 'none', 'diff', "
        "'log' or 'log_diff', got 'logdiff'; did you mean 'log_diff'?\n"
    ), out


def test_a_bad_choice_in_the_file_gets_a_did_you_mean(tiny_config: Path):
    raw = yaml.safe_load(tiny_config.read_text())
    raw["training"]["optimizer"] = "rmsprp"
    tiny_config.write_text(yaml.safe_dump(raw))
    code, out = _cli(["validate", str(tiny_config)])
    assert code == 2, out
    assert "training.optimizer: must be one of" in out
    assert "got 'rmsprp'; did you mean 'rmsprop'?" in out, out


@pytest.mark.slow
def test_predict_with_a_missing_csv_names_the_option(tiny_config: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    code, out = _cli(["train", str(tiny_config), "--runs-dir", str(runs), "--quiet"])
    assert code == 0, out
    missing = tmp_path / "missing.csv"
    code, out = _cli(["predict", "--run", out.strip().splitlines()[-1], "--csv", str(missing)])
    assert code == 2, out
    assert out.startswith(f"error: {missing}: ") and "--csv" in out, out
    assert "data.path" not in out, out


# --------------------------------------------------------------------------- item 25


def _long_window_config(folder: Path) -> Path:
    """100 monthly rows, 12 for the test: a 60-step window fits the training part, but not
    a 3-fold backtest with folds `horizon` rows apart (the first fold has 70 rows, and the
    window, horizon and validation need 72)."""
    write_csv(folder / "s.csv", monthly_frame(100))
    return write_config(
        folder / "c.yaml",
        name="long",
        seed=3,
        data={"path": "s.csv", "time_column": "date", "features": ["sales"]},
        window={"input_steps": 60, "horizon": 6},
        split={"test": 12, "validation": 6},
        model={"architecture": "gru", "units": [4]},
        training={"epochs": 50, "batch_size": 16},
    )


def test_tune_spaces_its_folds_so_the_config_as_given_can_train(tmp_path: Path):
    from forecast.config.file import load_config
    from forecast.data.prepare import prepare
    from forecast.data.reading import read_series
    from forecast.workflows.tune import fold_origins, training_part

    config = load_config(_long_window_config(tmp_path), ["training.epochs=1"])
    part = training_part(config, read_series(config.data))
    origins = fold_origins(config, part, 3)
    assert len(part.frame) == 88 and origins[-1] == 88 - 1 - 6
    assert list(origins) == [71, 76, 81]  # 5 rows apart: the first fold has the 72 it needs
    prepare(config, part, rows=int(origins[0]) + 1)  # no DataError


@pytest.mark.slow
def test_tune_runs_the_config_as_given_and_records_the_set_it_ran_under(tmp_path: Path):
    path = _long_window_config(tmp_path)
    out_path = tmp_path / "best.yaml"
    code, out = _cli(
        ["tune", str(path), "--trials", "2", "--set", "training.epochs=1", "-o", str(out_path)]
    )
    assert code == 0, out
    assert "trial 1: MASE " in out and "skipped" not in out, out
    text = out_path.read_text()
    assert "# tuned under: --set training.epochs=1" in text, text
    assert "5 rows apart" in text, text
    tuned = yaml.safe_load(text)
    assert tuned["training"]["epochs"] == 1


def test_yaml_nested_deeper_than_python_is_one_line(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("name: " + "[" * 3000 + "]" * 3000 + "\n", encoding="utf-8")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert (
        result.stderr.strip() == f"error: {path}: nested too deeply for a config; write it out flat"
    )
