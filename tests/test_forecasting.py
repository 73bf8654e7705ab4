import numpy as np
import pytest

from forecast.config.file import validate_config
from forecast.errors import ConfigError
from forecast.forecasting.forecaster import Forecaster
from forecast.model.build import build_model


def small_model(features, targets, horizon, seed=3):
    import keras

    keras.utils.set_random_seed(seed)
    config = validate_config(
        {
            "data": {"path": "x.csv", "features": ["a"]},
            "model": {"architecture": "gru", "units": [4]},
        }
    )
    return build_model(
        config.model, input_steps=5, features=features, horizon=horizon, targets=targets
    )


def by_hand(model, window, steps, feed):
    """The tutorial way: one call per step, prediction appended to the window."""
    window = window.copy()
    outputs = []
    while sum(o.shape[1] for o in outputs) < steps:
        predicted = model.predict_on_batch(window)  # (B, h, K)
        outputs.append(predicted)
        window = np.concatenate([window, predicted[:, :, feed]], axis=1)[:, -window.shape[1] :, :]
    return np.concatenate(outputs, axis=1)[:, :steps]


def test_recursive_equals_one_step_calls_fed_back_by_hand():
    model = small_model(features=1, targets=1, horizon=1)
    windows = np.random.default_rng(0).random((7, 5, 1)).astype("float32")
    ours = Forecaster(model, ["a"], ["a"])(windows, steps=9)
    assert ours.shape == (7, 9, 1)
    np.testing.assert_allclose(ours, by_hand(model, windows, 9, [0]), rtol=1e-5, atol=1e-6)


def test_recursive_with_two_columns_in_a_different_target_order():
    # features [a, b]; the model predicts [b, a]: the fed-back columns must be reordered
    model = small_model(features=2, targets=2, horizon=2)
    windows = np.random.default_rng(1).random((4, 5, 2)).astype("float32")
    ours = Forecaster(model, ["a", "b"], ["b", "a"])(windows, steps=5)
    np.testing.assert_allclose(ours, by_hand(model, windows, 5, [1, 0]), rtol=1e-5, atol=1e-6)


def test_direct_within_the_trained_horizon_is_one_call():
    model = small_model(features=2, targets=1, horizon=3)
    windows = np.random.default_rng(2).random((3, 5, 2)).astype("float32")
    ours = Forecaster(model, ["a", "b"], ["a"])(windows, steps=2)
    np.testing.assert_allclose(ours, model.predict_on_batch(windows)[:, :2], rtol=1e-5, atol=1e-6)


def test_beyond_the_horizon_without_every_feature_as_target_is_refused():
    model = small_model(features=2, targets=1, horizon=3)
    windows = np.zeros((1, 5, 2), dtype="float32")
    with pytest.raises(
        ConfigError,
        match=r"needs every feature to be a target \(b is not\); ask for --horizon 3 or less",
    ):
        Forecaster(model, ["a", "b"], ["a"])(windows, steps=4)


def test_batches_give_the_same_numbers_as_one_batch():
    model = small_model(features=1, targets=1, horizon=1)
    windows = np.random.default_rng(4).random((10, 5, 1)).astype("float32")
    forecaster = Forecaster(model, ["a"], ["a"])
    np.testing.assert_allclose(
        forecaster(windows, 4, batch_size=3), forecaster(windows, 4), rtol=1e-6
    )


def test_xla_loop_gives_the_same_numbers():
    model = small_model(features=1, targets=1, horizon=1)
    windows = np.random.default_rng(5).random((6, 5, 1)).astype("float32")
    forecaster = Forecaster(model, ["a"], ["a"])
    np.testing.assert_allclose(
        forecaster(windows, 7, jit=True), forecaster(windows, 7, jit=False), rtol=1e-5, atol=1e-6
    )


def test_windows_cut_per_batch_of_origins_match_whole_windows():
    from forecast.data.windows import input_windows

    model = small_model(features=1, targets=1, horizon=1)
    series = np.random.default_rng(6).random((40, 1))
    origins = np.arange(4, 40)
    forecaster = Forecaster(model, ["a"], ["a"])
    whole = forecaster(input_windows(series, origins, 5), 3)
    cut = forecaster.from_origins(series, origins, 3, batch_size=7)
    np.testing.assert_allclose(cut, whole, rtol=1e-5, atol=1e-6)  # batch shapes vary rounding


@pytest.mark.parametrize("architecture", ["lstm", "bidirectional"])
def test_unrolled_layers_give_the_same_numbers(architecture):
    from forecast.config.file import validate_config
    from forecast.model.build import build_model
    from forecast.model.execution import without_unroll

    config = validate_config(
        {
            "data": {"path": "x.csv", "features": ["a"]},
            "model": {"architecture": architecture, "units": [6, 4]},
        }
    )
    looped = build_model(config.model, 12, 2, 3, 1, unroll=False)
    unrolled = build_model(config.model, 12, 2, 3, 1, unroll=True)
    unrolled.set_weights(looped.get_weights())
    x = np.random.default_rng(7).random((9, 12, 2)).astype("float32")
    np.testing.assert_allclose(
        unrolled.predict_on_batch(x), looped.predict_on_batch(x), rtol=1e-5, atol=1e-6
    )
    # training unrolls; forecasting and saving use the looped twin with the same weights
    plain = without_unroll(unrolled)
    assert '"unroll": true' not in plain.to_json() and '"unroll": true' in unrolled.to_json()
    np.testing.assert_allclose(
        plain.predict_on_batch(x), looped.predict_on_batch(x), rtol=1e-6, atol=1e-7
    )


def test_from_origins_refuses_origins_without_a_full_window():
    model = small_model(features=1, targets=1, horizon=1)  # input_steps 5
    forecaster = Forecaster(model, ["a"], ["a"])
    series = np.arange(40.0).reshape(-1, 1)
    with pytest.raises(ValueError, match=r"`origins` must lie in \[4, 39\] .* Received: origin 3"):
        forecaster.from_origins(series, np.array([3, 10]), 2)
    assert forecaster._compiled == {}  # checked before anything was compiled
