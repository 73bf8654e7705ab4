"""Per-window normalisation, residual bases and ensembles: the mechanics, on numbers a person
can check (accuracy is measured in benchmarks/accuracy.py, not here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forecast.config.file import load_config, validate_config
from forecast.errors import ConfigError
from forecast.model.build import build_model, build_models
from forecast.runs import read


def model_config(**model):
    return validate_config(
        {"data": {"path": "x.csv", "features": ["a"]}, "model": {"architecture": "gru", **model}}
    ).model


def window(rows: list[float]) -> np.ndarray:
    return np.asarray(rows, dtype="float32").reshape(1, -1, 1)  # (1, L, 1)


@pytest.mark.parametrize(
    ("residual", "season", "expected"),
    [
        ("seasonal_naive", 4, [5, 6, 7, 8, 5]),  # rows L-4.. of the window, repeating
        ("naive", 1, [8, 8, 8, 8, 8]),  # the last value
    ],
)
def test_an_untrained_residual_model_forecasts_its_base(residual, season, expected):
    config = model_config(units=[4], residual=residual, window_norm=True)
    model = build_model(config, 8, 1, 5, 1, target_features=[0], season=season)
    x = window([1, 2, 3, 4, 5, 6, 7, 8])
    np.testing.assert_allclose(model(x).numpy()[0, :, 0], expected, atol=1e-6)


def test_seasonal_average_base_by_hand():
    """Two seasons [1, 4, 2, 3] (mean 2.5) and [3, 8, 4, 5] (mean 5): the average deviation
    from each season's mean is [-1.75, 2.25, -0.75, 0.25], put on the last season's mean 5.
    A leading row that does not complete a season is left out."""
    config = model_config(units=[4], residual="seasonal_average", window_norm=True)
    model = build_model(config, 9, 1, 5, 1, target_features=[0], season=4)
    x = window([100, 1, 4, 2, 3, 3, 8, 4, 5])
    expected = [3.25, 7.25, 4.25, 5.25, 3.25]
    np.testing.assert_allclose(model(x).numpy()[0, :, 0], expected, atol=1e-5)


@pytest.mark.parametrize(
    ("residual", "share"), [("seasonal_drift", 1.0), ("seasonal_half_drift", 0.5)]
)
def test_drift_bases_by_hand(residual, share):
    """The same seasons: their means rise from 2.5 to 5 in one season of 4 rows, 0.625 per
    row. From the middle of the last season (1.5 rows before its end) step s lies s + 2.5
    rows ahead, so the drift base is the seasonal average plus share * 0.625 * (s + 2.5)."""
    config = model_config(units=[4], residual=residual, window_norm=True)
    model = build_model(config, 9, 1, 5, 1, target_features=[0], season=4)
    x = window([100, 1, 4, 2, 3, 3, 8, 4, 5])
    average = np.array([3.25, 7.25, 4.25, 5.25, 3.25])
    expected = average + share * 0.625 * (np.arange(5) + 2.5)
    np.testing.assert_allclose(model(x).numpy()[0, :, 0], expected, atol=1e-5)


def test_drift_without_season_and_with_one_season_only():
    # season 1: the last value plus the window's mean step (8 - 1) / 3 per row ahead
    config = model_config(units=[4], residual="seasonal_drift", window_norm=True)
    model = build_model(config, 4, 1, 2, 1, target_features=[0], season=1)
    np.testing.assert_allclose(
        model(window([1, 2, 4, 8])).numpy()[0, :, 0], [8 + 7 / 3, 8 + 14 / 3], rtol=1e-5
    )
    # a window of one season has no trend to continue: the seasonal average, i.e. the season
    model = build_model(config, 4, 1, 5, 1, target_features=[0], season=4)
    np.testing.assert_allclose(
        model(window([1, 2, 4, 8])).numpy()[0, :, 0], [1, 2, 4, 8, 1], rtol=1e-5
    )


def _auto_choice(tmp_path: Path, values: np.ndarray, input_steps: int, residual: str = "auto"):
    import pandas as pd

    from forecast.data.prepare import prepare
    from forecast.fitting.residual import choose_residual

    from .conftest import write_csv

    dates = pd.date_range("2000-01-01", periods=len(values), freq="MS").strftime("%Y-%m-%d")
    write_csv(tmp_path / "s.csv", pd.DataFrame({"date": dates, "sales": values}))
    config = validate_config(
        {
            "data": {"path": str(tmp_path / "s.csv"), "time_column": "date", "features": ["sales"]},
            "window": {"input_steps": input_steps, "horizon": 6},
            "model": {"architecture": "gru", "units": [4], "residual": residual},
            "evaluation": {"season_length": 12},
        }
    )
    return choose_residual(prepare(config)).config.model.residual


def test_auto_residual_is_chosen_on_the_training_rows(tmp_path: Path):
    t = np.arange(120)
    season = 10 * np.sin(2 * np.pi * t / 12)
    # a steady trend under the season: continuing it misses least
    assert _auto_choice(tmp_path, 100 + 2 * t + season, 24) == "seasonal_drift"
    # no trend: every drift is 0, the tie goes to the plain seasonal average
    assert _auto_choice(tmp_path, 100 + season, 24) == "seasonal_average"
    # a window shorter than the season: the last value
    assert _auto_choice(tmp_path, 100 + 2 * t + season, 6) == "naive"
    # a trend only in the test rows (the last 20%) cannot sway the choice
    late = np.where(t >= 96, 100 + 5 * (t - 96), 100) + season
    assert _auto_choice(tmp_path, late, 24) == "seasonal_average"
    # a base that was asked for is kept
    assert _auto_choice(tmp_path, 100 + 2 * t + season, 24, "seasonal_naive") == "seasonal_naive"


def test_a_run_records_the_base_auto_chose_and_its_model_uses_it(tmp_path: Path):
    import json

    from forecast import api

    from .conftest import tiny_config_file

    config = tiny_config_file(
        tmp_path,
        "a.yaml",
        rows=100,
        window={"input_steps": 24, "horizon": 3},
        model={"architecture": "gru", "units": [4], "window_norm": True, "residual": "auto"},
        training={"epochs": 1},
    )
    result = api.train(config, runs_dir=tmp_path / "runs", quiet=True)
    chosen = json.loads((result.run_dir / "run.json").read_text())["residual"]
    assert chosen == "seasonal_drift"  # monthly_frame rises 0.5 a month under its season
    layer = read.load_model(result.run_dir / "model.keras").get_layer("normalise")
    assert layer.base == chosen  # the final fit kept the choice
    assert "residual: auto" in (result.run_dir / "config.yaml").read_text()  # as asked
    frame, _ = api.predict(result.run_dir, tmp_path / "sales.csv")
    assert len(frame) == 3


def test_window_normalised_forecasts_move_with_the_window(tmp_path: Path):
    """Shifting a window by b and scaling it by a > 0 shifts and scales its forecast the
    same way: levels never seen in training are no problem."""
    import keras

    keras.utils.set_random_seed(2)
    config = model_config(units=[6], window_norm=True, residual="none")
    model = build_model(config, 6, 1, 3, 1, target_features=[0])
    x = np.random.default_rng(0).random((4, 6, 1)).astype("float32")
    a, b = 7.0, 1000.0
    np.testing.assert_allclose(
        model(a * x + b).numpy(), a * model(x).numpy() + b, rtol=1e-4, atol=1e-2
    )
    # the layers are saved and loaded in safe mode
    path = tmp_path / "m.keras"
    model.save(path)
    np.testing.assert_allclose(read.load_model(path)(x).numpy(), model(x).numpy(), rtol=1e-6)


def test_a_target_that_is_no_input_gets_no_base():
    config = model_config(units=[4], residual="naive", window_norm=True)
    # two features, targets: feature 1 and a column that is not an input
    model = build_model(config, 3, 2, 2, 2, target_features=[1, -1], season=1)
    x = np.array([[[1, 10], [2, 20], [3, 30]]], dtype="float32")
    out = model(x).numpy()[0]  # (H, K)
    np.testing.assert_allclose(out[:, 0], [30, 30])  # the last value of feature 1
    np.testing.assert_allclose(out[:, 1], [0, 0])  # zero head, no base


def test_an_ensemble_forecasts_the_median_of_its_members():
    import keras

    keras.utils.set_random_seed(3)
    config = model_config(units=[3], ensemble=3)
    train, forecast = build_models(config, 5, 1, 2, 1)
    x = np.random.default_rng(1).random((2, 5, 1)).astype("float32")
    members = train(x).numpy()  # (B, N, H, K)
    assert members.shape == (2, 3, 2, 1)
    assert not np.allclose(members[:, 0], members[:, 1])  # own initialisations
    np.testing.assert_allclose(forecast(x).numpy(), np.median(members, axis=1), rtol=1e-6)


@pytest.mark.parametrize(
    ("architecture", "units"), [("lstm", [3]), ("gru", [4, 3]), ("simple_rnn", [2])]
)
def test_a_stacked_ensemble_holds_the_plain_members_weights(architecture, units):
    import keras

    from forecast.model.build import STACKED, forecasting_model

    keras.utils.set_random_seed(3)
    config = validate_config(
        {
            "data": {"path": "x.csv", "features": ["a"]},
            "model": {"architecture": architecture, "units": units, "ensemble": 3},
        }
    ).model
    wide, plain = build_models(config, 6, 1, 2, 1)  # one wide model trains the 3 members
    assert wide in STACKED and len(wide.trainable_weights) == 3 * len(units) + 2  # + head
    x = np.random.default_rng(1).random((4, 6, 1)).astype("float32")
    rng = np.random.default_rng(0)
    plain.set_weights([rng.normal(size=w.shape).astype("float32") for w in plain.get_weights()])
    from forecast.model.stacked import copy_into_stacked

    copy_into_stacked(plain, wide)
    np.testing.assert_allclose(np.median(wide(x).numpy(), axis=1), plain(x).numpy(), atol=1e-5)
    # what the wide model learns goes back into the members that forecast and are saved
    wide.set_weights([w * 1.5 for w in wide.get_weights()])
    forecasting = forecasting_model(wide, plain)
    np.testing.assert_allclose(
        forecasting(x).numpy(), np.median(wide(x).numpy(), axis=1), atol=1e-5
    )
    # a backtest forecasts through the wide layers themselves: the same numbers
    np.testing.assert_allclose(
        forecasting_model(wide, plain, copy=False)(x).numpy(), forecasting(x).numpy(), atol=1e-5
    )
    # each member's weights, side by side: member 1's first kernel is plain member 1's
    gates = {"lstm": 4, "gru": 3, "simple_rnn": 1}[architecture]
    kernel = next(w for w in wide.trainable_weights if w.shape == (3, 1, gates * units[0]))
    own = next(layer for layer in plain.layers if layer.name.startswith("m1_") and layer.weights)
    np.testing.assert_array_equal(kernel.numpy()[1], own.get_weights()[0])


def test_dropout_keeps_an_ensemble_plain():
    from forecast.model.stacked import stackable

    assert stackable(model_config(units=[3], ensemble=2))
    assert not stackable(model_config(units=[3], ensemble=2, dropout=0.2))
    assert not stackable(model_config(units=[3], ensemble=1))
    assert not stackable(model_config(architecture="bidirectional", units=[3], ensemble=2))


def test_seasonal_residual_needs_a_window_of_a_season(tmp_path: Path):
    from forecast.data.prepare import prepare

    from .conftest import monthly_frame, write_csv

    write_csv(tmp_path / "s.csv", monthly_frame(80))
    config = validate_config(
        {
            "data": {"path": str(tmp_path / "s.csv"), "time_column": "date", "features": ["sales"]},
            "window": {"input_steps": 6},
            "model": {"architecture": "gru", "units": [4], "residual": "seasonal_naive"},
        }
    )
    with pytest.raises(ConfigError, match="needs window.input_steps >= the season length 12"):
        prepare(config)


def test_an_ensemble_with_a_seasonal_base_trains_saves_and_predicts(tmp_path: Path):
    from forecast import api

    from .conftest import tiny_config_file

    config = tiny_config_file(
        tmp_path,
        "e.yaml",
        rows=100,
        window={"input_steps": 24, "horizon": 3},
        model={"units": [4], "ensemble": 3, "window_norm": True, "residual": "seasonal_naive"},
    )
    result = api.train(config, runs_dir=tmp_path / "runs", quiet=True)
    model = read.load_model(result.run_dir / "model.keras")
    assert model.output_shape == (None, 3, 1)  # the median: one forecast per step
    frame, _ = api.predict(result.run_dir, tmp_path / "sales.csv")
    assert len(frame) == 3 and frame["sales"].between(100, 200).all()


def test_init_recommendations_follow_the_data():
    from forecast.workflows.csvprobe import seasonal_swing_grows
    from forecast.workflows.starter import recommend

    t = np.arange(120)
    season = np.sin(2 * np.pi * t / 12)
    assert seasonal_swing_grows((10 + t) * (1 + 0.3 * season), 12)  # multiplicative
    assert not seasonal_swing_grows(10 + t + 3 * season, 12)  # additive
    assert not seasonal_swing_grows(10 + t, 1)  # no season
    # 36 monthly rows, horizon 6: the first of 3 backtest folds has 18 rows to train on
    plan = recommend(36, 12, 6)
    assert plan["input_steps"] == 12 and plan["residual"] == "auto"
    assert plan["validation"] == 0  # one training window: nothing to spare
    # as many whole seasons as the first fold spares, keeping 12 windows besides validation:
    # 72 - 18 = 54 rows; 3 seasons would leave 54 - 36 - 12 + 1 = 7, 2 seasons leave 19
    assert recommend(72, 12, 6)["input_steps"] == 24
    assert recommend(200, 12, 12)["input_steps"] == 96  # 8 seasons, the most
    assert recommend(4032, 48, 48)["input_steps"] == 96  # 2 days: at most 104 steps
    assert recommend(98, 1, 6)["input_steps"] == 12  # no season: twice the horizon
    # validation: a tenth of the first fold's rows, at least a horizon, at most 50 origins
    assert recommend(204, 12, 12)["validation"] == 17  # 168 rows: 17, so 6 origins
    assert recommend(76, 4, 8)["validation"] == 8  # 52 rows: 6 is less than a horizon
    assert recommend(1860, 5, 10)["validation"] == 59  # 183 rows would be 174 origins
    # 23 rows, 14 windows: a tenth (3 rows) would leave 11 to train on, a horizon leaves 12
    assert recommend(29, 1, 2)["validation"] == 2


def test_the_recommended_config_backtests_a_36_row_series(tmp_path: Path):
    from forecast import api
    from forecast.workflows.starter import starter_config

    from .conftest import monthly_frame, write_csv

    csv = write_csv(tmp_path / "short.csv", monthly_frame(36))
    (tmp_path / "c.yaml").write_text(starter_config("univariate", csv, "sales", 6))
    result = api.backtest(
        tmp_path / "c.yaml", folds=3, runs_dir=tmp_path / "runs", quiet=True,
        overrides=["training.epochs=2"],
    )  # fmt: skip
    folds = result.report["folds"]
    # horizon 6 apart, the last ending at row 35: origins 17, 23, 29, each scored
    assert [f["origin"] for f in folds] == monthly_frame(36)["date"].iloc[[17, 23, 29]].tolist()
    mases = [f["model"]["mase"] for f in folds]
    assert all(np.isfinite(m) and m > 0 for m in mases), mases
    assert result.report["mean"]["model"]["mase"] == pytest.approx(np.mean(mases))


def test_predict_warns_when_recent_inputs_leave_the_training_range(
    tmp_path: Path, caplog, monkeypatch
):
    import logging

    import pandas as pd

    from forecast import api

    from .conftest import monthly_frame, small_gru_config, write_csv

    frame = monthly_frame(100)
    config = small_gru_config(tmp_path, epochs=1)  # the same 100 rows
    result = api.train(config, runs_dir=tmp_path / "runs", quiet=True)
    train_max = float(frame["sales"].iloc[:72].max())  # rows 0..71 fit the scaler
    span = train_max - float(frame["sales"].iloc[:72].min())
    recent = frame.iloc[:72].copy()
    recent.loc[71, "sales"] = train_max + span / 2  # half the training range above it
    write_csv(tmp_path / "recent.csv", recent)
    monkeypatch.setattr(logging.getLogger("forecast"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="forecast"):
        api.predict(result.run_dir, tmp_path / "recent.csv")
    lines = {r.getMessage() for r in caplog.records if "extrapolation" in r.getMessage()}
    assert lines == {
        f"{tmp_path / 'recent.csv'}: 1 of the last 12 values of sales (up to "
        f"{train_max + span / 2:.6g}) lies above anything the model saw in training (max "
        f"{train_max:.6g}); without window_norm the network's inputs are then outside its "
        "scaler's range, so its forecasts are extrapolation"
    }
    caplog.clear()
    write_csv(tmp_path / "inside.csv", frame.iloc[:72])  # the rows the scaler was fitted on
    with caplog.at_level(logging.WARNING, logger="forecast"):
        api.predict(result.run_dir, tmp_path / "inside.csv")
    assert not [r for r in caplog.records if "extrapolation" in r.getMessage()]
    assert pd.read_csv(result.run_dir / "forecast.csv").shape == (1, 6)  # date, sales, 4 bounds


def test_train_scores_a_stacked_ensemble_through_its_member_batched_twin(tmp_path: Path):
    """train forecasts the test split of a stacked ensemble through member-batched layers
    holding the saved (plain) model's weights: the same forecasts, one loop for all members."""
    from forecast.data.prepare import prepare
    from forecast.fitting.fit import models_for, scoring_model

    from .conftest import tiny_config_file

    config = tiny_config_file(
        tmp_path, model={"architecture": "gru", "units": [5, 3], "ensemble": 4}
    )
    prepared = prepare(load_config(config))
    _, plain = models_for(prepared, unroll=False)
    rng = np.random.default_rng(0)
    plain.set_weights([rng.normal(size=w.shape).astype("float32") for w in plain.get_weights()])
    twin = scoring_model(prepared, plain)
    assert twin is not plain and any(layer.name.startswith("stacked_") for layer in twin.layers)
    x = rng.random((16, 12, 1)).astype("float32")
    np.testing.assert_allclose(twin(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-6)
    one = tiny_config_file(tmp_path, "one.yaml")
    prepared_one = prepare(load_config(one))
    _, single = models_for(prepared_one, unroll=False)
    assert scoring_model(prepared_one, single) is single  # nothing to stack
