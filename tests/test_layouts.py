"""The six layouts and five stacks, on the seed tutorial's toy sequences and shipped configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from forecast import api
from forecast.cli.app import app
from forecast.config.file import load_config, validate_config

from .conftest import ROOT, tiny_config_file, write_config

# seed 003: a = 10, 20, 30, ...; the two-column form is a, a + 1 (10/11, 20/21, ...)
LAYOUTS = {
    "univariate": (["a"], ["a"], 1),
    "multivariate": (["a", "b"], ["a"], 1),
    "multi_output": (["a", "b"], ["a", "b"], 1),
    "univariate_multi_step": (["a"], ["a"], 2),
    "multivariate_multi_step": (["a", "b"], ["a"], 2),
    "multi_output_multi_step": (["a", "b"], ["a", "b"], 2),
}
TOLERANCE = 2.5  # absolute, on values around 125-136 (2%)


@pytest.fixture(scope="module")
def sequences(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("seq")
    a = np.arange(10, 510, 10.0)  # 50 rows
    pd.DataFrame({"a": a, "b": a + 1}).to_csv(folder / "seq.csv", index=False)
    # an unseen window: between the training windows' values (75 is no training value)
    x = np.array([75, 85, 95, 105, 115.0])
    pd.DataFrame({"a": x, "b": x + 1}).to_csv(folder / "unseen.csv", index=False)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_seed_sequences_are_learned_for_each_layout(layout, sequences):
    features, targets, horizon = LAYOUTS[layout]
    config = validate_config(
        {
            "name": layout,
            "seed": 1,
            "data": {"path": str(sequences / "seq.csv"), "features": features, "targets": targets},
            "window": {"input_steps": 5, "horizon": horizon},
            "split": {"test": 4, "validation": 0},
            # no intervals: without validation rows they would fit 3 inner folds of 300
            # epochs (tests/test_intervals.py tests those)
            "intervals": [],
            "model": {"architecture": "lstm", "units": [50]},
            # lr 0.02 x 100 epochs (the tutorial's pace) ends within 2.5 for only some seeds
            # (121-127 over seeds 1-6); 0.005 x 300 ended within it for seeds 1-6 of the
            # two-column layouts, so the check is about learning, not about a lucky seed
            "training": {
                "epochs": 300,
                "batch_size": 8,
                "learning_rate": 0.005,
                "early_stopping": False,
                "final_fit": False,  # the layouts are under test, not the refit
            },
        }
    )
    assert config.layout == layout
    result = api.train(config, runs_dir=sequences / "runs", quiet=True)
    assert result.metrics["layout"] == layout

    forecast, _ = api.predict(result.run_dir, sequences / "unseen.csv")
    # [75, 85, 95, 105, 115] -> 125, 135 (a) and 126, 136 (b)
    expected = {"a": [125.0, 135.0][:horizon], "b": [126.0, 136.0][:horizon]}
    assert list(forecast.columns) == ["step", *targets]
    assert forecast["step"].tolist() == [5, 6][:horizon]
    for target in targets:
        assert forecast[target].to_numpy() == pytest.approx(expected[target], abs=TOLERANCE)

    # the run's files hold k targets x H steps
    preds = pd.read_csv(result.run_dir / "test_predictions.csv")
    origins = result.metrics["test_origins"]
    assert len(preds) == origins * horizon * len(targets)
    assert sorted(preds["target"].unique()) == sorted(targets)
    assert sorted(preds["step"].unique()) == list(range(1, horizon + 1))
    assert set(result.metrics["per_target"]) == set(targets)
    assert len(result.metrics["per_step"]) == horizon


STACKS = {
    "simple_rnn": {"architecture": "simple_rnn", "units": [8, 4]},
    "lstm": {"architecture": "lstm", "units": [8], "dropout": 0.1},
    "gru": {"architecture": "gru", "units": [8]},
    "bidirectional": {"architecture": "bidirectional", "units": [6], "layer": "lstm"},
    "conv1d_lstm": {"architecture": "conv1d_lstm", "units": [6], "filters": 4},
}


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_every_stack_trains_saves_and_reloads_in_safe_mode(stack, tmp_path):
    import keras

    from forecast.model.build import build_model
    from forecast.runs import read

    keras.utils.set_random_seed(0)
    config = validate_config({"data": {"path": "x.csv", "features": ["a"]}, "model": STACKS[stack]})
    model = build_model(config.model, input_steps=10, features=2, horizon=3, targets=2)
    x = np.random.default_rng(0).random((32, 10, 2)).astype("float32")
    y = np.random.default_rng(1).random((32, 3, 2)).astype("float32")
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.save(tmp_path / "model.keras")
    reloaded = read.load_model(tmp_path / "model.keras")  # safe_mode=True
    np.testing.assert_array_equal(reloaded.predict_on_batch(x), model.predict_on_batch(x))


runner = CliRunner()


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_recursive_without_every_feature_as_target_exits_2(tmp_path, monthly_csv):
    config = write_config(
        tmp_path / "c.yaml",
        data={"path": monthly_csv.name, "features": ["sales", "price"], "targets": ["sales"]},
        window={"input_steps": 6, "horizon": 3, "multi_step": "recursive"},
    )
    line = one_line_error(runner.invoke(app, ["train", str(config)]))
    assert "use multi_step: direct or add the columns price to data.targets" in line


def test_invalid_stack_exits_2_with_a_fix(tmp_path, monthly_csv):
    config = write_config(
        tmp_path / "c.yaml",
        data={"path": monthly_csv.name, "features": ["sales"]},
        window={"input_steps": 6},
        model={"layers": [{"gru": 8}, {"lstm": 8}]},
    )
    line = one_line_error(runner.invoke(app, ["train", str(config)]))
    assert "model.layers[1] (lstm): needs a sequence input" in line
    assert "set return_sequences: true on model.layers[0]" in line


def test_predict_beyond_the_horizon(tmp_path, monthly_csv):
    """Recursion continues where every feature is a target, and is refused where not."""
    runs = tmp_path / "runs"
    common = {
        "window": {"input_steps": 6, "horizon": 2},
        "model": {"architecture": "gru", "units": [4]},
        "training": {"epochs": 1},
    }
    both = tiny_config_file(tmp_path, "both.yaml", data={"features": ["sales", "price"]}, **common)
    one = tiny_config_file(
        tmp_path, "one.yaml", data={"features": ["sales", "price"], "targets": ["sales"]}, **common
    )
    run_both = api.train(both, runs_dir=runs, quiet=True).run_dir
    result = runner.invoke(
        app, ["predict", "--run", str(run_both), "--csv", str(monthly_csv), "--horizon", "5"]
    )
    assert result.exit_code == 0, result.output
    forecast = pd.read_csv(run_both / "forecast.csv")
    bounds = ["lo_80", "hi_80", "lo_95", "hi_95"]
    assert list(forecast.columns) == [
        "date", "sales", *[f"sales_{b}" for b in bounds], "price", *[f"price_{b}" for b in bounds]
    ]  # fmt: skip
    assert len(forecast) == 5 and forecast.notna().all().all()  # 5 steps calibrated by recursion

    run_one = api.train(one, runs_dir=runs, quiet=True).run_dir
    result = runner.invoke(
        app, ["predict", "--run", str(run_one), "--csv", str(monthly_csv), "--horizon", "5"]
    )
    line = one_line_error(result)
    assert "trained for horizon 2" in line and "price is not" in line
    assert not (run_one / "forecast.csv").exists()


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_checks_out_against_its_data(path):
    info = api.validate(path)
    config = load_config(path)
    assert info["layout"] == config.layout
    assert info["train_windows"][0] > 0 and info["test_origins"][0] > 0


def test_there_is_a_config_per_layout_and_per_stack():
    names = {p.stem for p in (ROOT / "configs").glob("*.yaml")}
    assert set(LAYOUTS) <= names
    assert set(STACKS) <= names
    layouts = {load_config(ROOT / "configs" / f"{name}.yaml").layout for name in LAYOUTS}
    assert layouts == set(LAYOUTS)


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_trains_one_epoch(path, tmp_path):
    from forecast.runs.read import load_model

    result = api.train(path, runs_dir=tmp_path, overrides=["training.epochs=1"], quiet=True)
    config = load_config(path)
    history = pd.read_csv(result.run_dir / "history.csv")
    assert history["epoch"].tolist() == [1] and np.isfinite(history["loss"]).all()
    assert result.metrics["layout"] == config.layout
    assert np.isfinite(result.metrics["model"]["mae"]) and result.metrics["model"]["mae"] > 0
    # the saved model loads in safe mode and forecasts (horizon, targets) per window
    model = load_model(result.run_dir / "model.keras")
    targets = len(config.data.targets)
    assert model.output_shape == (None, config.window.output_steps, targets)
