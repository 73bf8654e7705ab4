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


def test_auto_picks_the_speedup_whose_whole_fit_is_expected_shortest():
    from forecast.fitting.fit import expected_epochs
    from forecast.fitting.speedups import choose_speedups, has_dropout, recurrent_layer_count

    lstm2 = [("lstm", 50)] * 2

    def auto(steps, batch, batches, layers=lstm2, members=1):
        return choose_speedups("auto", "auto", steps, batch, batches, layers, members)

    # benchmarks/speedups.py's cases: 2 x LSTM(50) over 60 steps at batch 32, 3 epochs of
    # 174 batches: XLA (its 1.1 s compile is won back after ~300 batches); the same at batch
    # 256 for 220 batches: looped (XLA's products lose there, unrolling takes 8 s to build);
    # GRU(16) over 60 steps, 522 batches: XLA; a small series' 120 batches of 16: looped
    assert auto(60, 32, 522) == (True, False)
    assert auto(60, 32, 250) == (False, False)  # too short to win back the compilation
    assert auto(60, 256, 220) == (False, False)
    assert auto(60, 32, 522, [("gru", 16)]) == (True, False)
    assert auto(72, 16, 120, [("lstm", 32)]) == (False, False)
    # long LSTM fits at large batches unroll (its build is won back, XLA would lose)
    assert auto(60, 256, 5000) == (False, True)
    assert auto(101, 256, 10**6)[1] is False  # windows over 100 steps: too long to build
    assert auto(60, 256, 10**6, [("gru", 50)]) == (False, False)  # a GRU gains nothing
    # five stacked members do five times the arithmetic: XLA's slower products weigh more
    assert auto(60, 64, 2000, members=5) == (False, True)
    assert auto(60, 64, 2000, members=1)[0] is True
    # what is configured is kept, and the other setting never joins it
    assert choose_speedups(True, "auto", 60, 256, 10**6, lstm2) == (True, False)
    assert choose_speedups("auto", True, 60, 32, 10**6, lstm2) == (False, True)
    assert choose_speedups(False, False, 60, 32, 10**6, lstm2) == (False, False)
    assert auto(60, 32, None) == (True, False)  # a fit of unknown length: XLA, as before
    # dropout: neither pays (the shipped config: 4.1 s per epoch with XLA, 1.3-1.4 s
    # unrolled after a longer build, 1.3 s looped), so a model with dropout stays looped
    assert choose_speedups("auto", "auto", 60, 64, 1300, lstm2, 1, True) == (False, False)
    assert auto(60, 64, 1300) == (True, False)  # the same without dropout
    shipped = validate_config(
        {"data": {"path": "x.csv", "features": ["a"]},
         "model": {"layers": [{"lstm": {"units": 50}}, {"dropout": 0.2}]}}
    ).model  # fmt: skip
    assert has_dropout(shipped) and not has_dropout(model_config(STACKS["gru"]))
    assert has_dropout(model_config(STACKS["lstm"]))  # architecture shorthand, dropout 0.1
    stacks = {"lstm": 2, "bidirectional": 2, "conv1d_lstm": 1, "explicit": 1, "gru": 1}
    assert {n: recurrent_layer_count(model_config(STACKS[n])) for n in stacks} == stacks
    training = validate_config({"data": {"path": "x.csv", "features": ["a"]}}).training
    assert expected_epochs(training) == 30  # early stopping, patience 10: three patiences
    assert expected_epochs(training.model_copy(update={"early_stopping": False})) == 50  # all
