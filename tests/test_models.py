import numpy as np
import pytest

from forecast.config.file import validate_config
from forecast.errors import ConfigError
from forecast.model.build import build_model, check_stack

STACKS = {
    "simple_rnn": {"architecture": "simple_rnn", "units": [6, 4]},
    "lstm": {"architecture": "lstm", "units": [6, 4], "dropout": 0.1},
    "gru": {"architecture": "gru", "units": [5]},
    "bidirectional": {"architecture": "bidirectional", "units": [4], "layer": "gru"},
    "conv1d_lstm": {"architecture": "conv1d_lstm", "units": [4], "filters": 3, "kernel_size": 2},
    "explicit": {
        "layers": [
            {"conv1d": {"filters": 4, "kernel_size": 3}},
            {"max_pooling1d": 2},
            {"lstm": {"units": 5, "return_sequences": True}},
            "flatten",
            {"dense": 3},
        ]
    },
}


def model_config(model):
    return validate_config({"data": {"path": "x.csv", "features": ["a"]}, "model": model}).model


@pytest.mark.parametrize("name", sorted(STACKS))
def test_output_shape_and_parameter_count(name):
    config = model_config(STACKS[name])
    model = build_model(config, input_steps=12, features=3, horizon=4, targets=2)
    out = model(np.zeros((5, 12, 3), dtype="float32"))
    assert tuple(out.shape) == (5, 4, 2)  # (batch, horizon, targets)
    # the analytic count (used by `validate` without TensorFlow) matches Keras
    assert check_stack(config, 12, 3, 4, 2).params == model.count_params()


def test_recurrent_after_a_vector_output_is_a_config_error():
    config = model_config({"layers": [{"lstm": {"units": 4}}, {"gru": {"units": 4}}]})
    with pytest.raises(
        ConfigError,
        match=r"model.layers\[1\] \(gru\): needs a sequence input.*"
        r"set return_sequences: true on model.layers\[0\]",
    ):
        check_stack(config, 10, 1, 1, 1)


def test_pooling_to_zero_steps_is_a_config_error():
    config = model_config({"layers": [{"max_pooling1d": 8}, {"lstm": {"units": 4}}]})
    with pytest.raises(ConfigError, match="shrinks 5 step"):
        check_stack(config, 5, 1, 1, 1)


def test_return_sequences_on_the_last_recurrent_layer_is_a_config_error():
    config = model_config({"layers": [{"lstm": {"units": 4, "return_sequences": True}}]})
    with pytest.raises(ConfigError, match="set it to false, or add a flatten layer"):
        check_stack(config, 10, 1, 1, 1)


def test_configs_that_forfeit_cudnn_are_named():
    from forecast.model.build import cudnn_warnings

    relu = model_config({"layers": [{"lstm": {"units": 4, "activation": "relu"}}]})
    (message,) = cudnn_warnings(relu)
    assert message.startswith("model.layers[0] (lstm): activation relu rules out the cuDNN kernel")
    assert cudnn_warnings(model_config({"architecture": "gru", "units": [4], "dropout": 0.2})) == []
    rnn = model_config({"layers": [{"simple_rnn": {"units": 4, "activation": "relu"}}]})
    assert cudnn_warnings(rnn) == []  # SimpleRNN has no cuDNN kernel to lose


def test_auto_unrolls_only_fits_long_enough_to_win_back_the_build():
    from forecast.fitting.fit import expected_epochs
    from forecast.fitting.speedups import recurrent_layer_count, resolve_unroll

    # 44 batches per input step and recurrent layer: 96 steps x 1 layer needs 4,224 batches
    assert not resolve_unroll("auto", 96, expected_batches=4223, recurrent_layers=1)
    assert resolve_unroll("auto", 96, expected_batches=4224, recurrent_layers=1)
    assert not resolve_unroll("auto", 24, expected_batches=4223, recurrent_layers=4)
    assert resolve_unroll("auto", 12, expected_batches=1056, recurrent_layers=2)
    assert not resolve_unroll("auto", 101, expected_batches=10**9)  # too long to build
    assert not resolve_unroll("auto", 12, True, expected_batches=10**9)  # not with XLA
    assert resolve_unroll(True, 200) and not resolve_unroll(False, 12)  # as configured
    stacks = {"lstm": 2, "bidirectional": 2, "conv1d_lstm": 1, "explicit": 1, "gru": 1}
    assert {n: recurrent_layer_count(model_config(STACKS[n])) for n in stacks} == stacks
    training = validate_config({"data": {"path": "x.csv", "features": ["a"]}}).training
    assert expected_epochs(training) == 30  # early stopping, patience 10: three patiences
    assert expected_epochs(training.model_copy(update={"early_stopping": False})) == 50  # all


def test_auto_jit_compiles_only_fits_long_enough_to_win_back_the_compilation():
    from forecast.fitting.speedups import resolve_jit

    # 25 batches per input step and recurrent layer: 40 steps x 1 layer -> 1,000 batches
    assert not resolve_jit("auto", 40, expected_batches=999, recurrent_layers=1)
    assert resolve_jit("auto", 40, expected_batches=1000, recurrent_layers=1)
    assert not resolve_jit("auto", 40, expected_batches=1999, recurrent_layers=2)
    assert resolve_jit("auto", 12, expected_batches=300, recurrent_layers=0)  # Dense: as one
    assert resolve_jit(True, 96, expected_batches=1) and not resolve_jit(False, 2, 10**9)
