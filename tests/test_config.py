from pathlib import Path

import pytest
import yaml

from forecast.config.file import (
    apply_override,
    config_to_yaml,
    load_config,
    revalidate,
    validate_config,
)
from forecast.config.layouts import infer_layout
from forecast.errors import ConfigError

from .conftest import write_config

BASE = {"data": {"path": "x.csv", "features": ["a"]}}


def with_(**sections):
    raw = {"data": {"path": "x.csv", "features": ["a"]}}
    raw.update(sections)
    return raw


def error_of(raw) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    return str(info.value)


def test_defaults_are_filled_in():
    config = validate_config(dict(BASE))
    assert config.data.targets == ["a"]
    assert config.window.input_steps == 60 and config.window.horizon == 1
    assert config.layout == "univariate"
    assert config.model.architecture == "lstm" and config.model.units == [50, 50]
    assert config.training.early_stopping.patience == 10


def test_data_path_is_relative_to_the_config_file(tmp_path: Path):
    sub = tmp_path / "configs"
    sub.mkdir()
    path = write_config(sub / "c.yaml", data={"path": "../data/x.csv", "features": ["a"]})
    config = load_config(path)
    assert Path(config.data.path) == (tmp_path / "data" / "x.csv").resolve()
    assert config.name == "c"  # default: the file's stem


def test_unknown_key_names_path_and_suggests():
    message = error_of(with_(model={"layrs": []}))
    assert message.startswith("config: model: unknown key 'layrs' (did you mean 'layers'?)")


def test_unknown_top_level_key_suggests():
    assert "unknown key 'traning' (did you mean 'training'?)" in error_of(with_(traning={}))


def test_error_names_the_layer_field_path():
    raw = with_(
        model={
            "layers": [{"lstm": {"units": 4, "return_sequences": True}}, {"lstm": {"units": -3}}]
        }
    )
    assert "model.layers[1].units: must be >= 1, got -3" in error_of(raw)


def test_unknown_layer_type_lists_valid_ones():
    message = error_of(with_(model={"layers": [{"lstn": 8}]}))
    assert "model.layers[0]: unknown layer type 'lstn' (did you mean 'lstm'?)" in message
    assert "simple_rnn" in message and "conv1d" in message


def test_unknown_optimizer_lists_valid_ones():
    message = error_of(with_(training={"optimizer": "adm"}))
    assert (
        "training.optimizer: must be one of 'adam', 'rmsprop', 'sgd' or 'adamw', got 'adm'"
        in message
    )


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"window": {"input_steps": 0}}, "window.input_steps: must be >= 1, got 0"),
        ({"window": {"horizon": -1}}, "window.horizon: must be >= 1"),
        ({"training": {"epochs": "many"}}, "training.epochs: must be an integer, got 'many'"),
        ({"training": {"learning_rate": 0}}, "training.learning_rate: must be > 0"),
        ({"split": {"test": 1.5}}, "split.test: must be a fraction in (0, 1) or a whole row count"),
        (
            {"evaluation": {"season_length": 0}},
            "evaluation.season_length: must be 'auto' or an integer >= 1",
        ),
        ({"scaling": {"feature_range": [1, 0]}}, "scaling.feature_range: must be [low, high]"),
    ],
)
def test_out_of_range_values(section, expected):
    assert expected in error_of(with_(**section))


def test_shorthand_expands_to_layers():
    config = validate_config(
        with_(model={"architecture": "gru", "units": [32, 16], "dropout": 0.1})
    )
    kinds = [
        (s.type, getattr(s, "units", None), getattr(s, "return_sequences", None))
        for s in config.model.layer_specs()
    ]
    assert kinds == [
        ("gru", 32, True),
        ("dropout", None, None),
        ("gru", 16, False),
        ("dropout", None, None),
    ]


def test_layers_and_shorthand_together_is_an_error():
    assert "either 'layers' or the 'architecture' shorthand" in error_of(
        with_(model={"architecture": "lstm", "layers": [{"lstm": {}}]})
    )


@pytest.mark.parametrize(
    ("features", "targets", "horizon", "layout"),
    [
        (["a"], ["a"], 1, "univariate"),
        (["a", "b"], ["a"], 1, "multivariate"),
        (["a", "b"], ["a", "b"], 1, "multi_output"),
        (["a"], ["a"], 3, "univariate_multi_step"),
        (["a", "b"], ["b"], 2, "multivariate_multi_step"),
        (["a", "b"], ["a", "b"], 4, "multi_output_multi_step"),
    ],
)
def test_layout_is_inferred(features, targets, horizon, layout):
    assert infer_layout(features, targets, horizon) == layout


def test_stated_layout_must_agree():
    raw = {"data": {"path": "x.csv", "features": ["a", "b"]}, "layout": "univariate"}
    assert "layout 'univariate' disagrees" in error_of(raw)


def test_recursive_needs_every_feature_as_target():
    raw = {
        "data": {"path": "x.csv", "features": ["a", "b"], "targets": ["a"]},
        "window": {"horizon": 3, "multi_step": "recursive"},
    }
    message = error_of(raw)
    assert "use multi_step: direct or add the columns b to data.targets" in message


def test_set_overrides_parse_yaml_values():
    raw = {
        "data": {"path": "x.csv", "features": ["a"]},
        "model": {"layers": [{"lstm": {"units": 4}}]},
    }
    apply_override(raw, "training.epochs=3")
    apply_override(raw, "data.features=[a, b]")
    apply_override(raw, "model.layers[0].lstm.units=9")
    assert raw["training"] == {"epochs": 3}
    assert raw["data"]["features"] == ["a", "b"]
    assert raw["model"]["layers"][0]["lstm"]["units"] == 9
    with pytest.raises(ConfigError, match="expected key.path=value"):
        apply_override(raw, "training.epochs")


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  path: x.csv\n  features: [a\nwindow: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml: YAML syntax error at line \d+, column \d+"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "the config is empty"), ("- a\n- b\n", "must be a mapping of sections")],
)
def test_empty_or_list_config(tmp_path: Path, text, expected):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "model",
    [
        {"architecture": "conv1d_lstm", "units": [8]},
        {"layers": [{"lstm": {"units": 4, "return_sequences": True}}, "flatten", {"dense": 3}]},
    ],
)
def test_resolved_config_round_trips(model):
    config = validate_config(with_(model=model))
    again = validate_config(yaml.safe_load(config_to_yaml(config)))
    assert again == config


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            {"architecture": "lstm", "filters": 16},
            "'filters' applies only to architecture conv1d_lstm",
        ),
        (
            {"architecture": "gru", "layer": "lstm"},
            "'layer' applies only to architecture bidirectional",
        ),
        ({"architecture": "bidirectional", "pool_size": 2}, "'pool_size' applies only to"),
    ],
)
def test_shorthand_keys_must_fit_the_architecture(model, expected):
    message = error_of(with_(model=model))
    assert message.startswith("config: model: " + expected), message


def test_shorthand_keys_of_the_architecture_are_accepted():
    conv = validate_config(with_(model={"architecture": "conv1d_lstm", "filters": 16}))
    assert conv.model.layer_specs()[0].filters == 16
    bi = validate_config(with_(model={"architecture": "bidirectional", "layer": "gru"}))
    assert {spec.layer for spec in bi.model.layer_specs()} == {"gru"}


def test_seed_from_the_command_line_is_validated_and_named(tmp_path: Path):
    path = write_config(tmp_path / "c.yaml", data={"path": "x.csv", "features": ["a"]})
    assert load_config(path, seed=5).seed == 5
    with pytest.raises(ConfigError) as info:
        load_config(path, seed=-1)
    assert str(info.value) == "--seed -1: seed: must be >= 0, got -1"


def test_a_bad_set_value_is_blamed_on_the_option(tmp_path: Path):
    path = write_config(tmp_path / "c.yaml", data={"path": "x.csv", "features": ["a"]})
    with pytest.raises(ConfigError) as info:
        load_config(path, ["training.epochs=-2"])
    assert str(info.value) == "--set training.epochs=-2: training.epochs: must be >= 1, got -2"
    with pytest.raises(ConfigError) as info:
        load_config(path, ["window.horizon=0"])
    assert str(info.value).startswith("--set window.horizon=0: window.horizon: must be >= 1")


def test_a_changed_config_object_is_checked_again():
    config = validate_config(dict(BASE))
    # pydantic's model_copy(update=...) and attribute assignment skip validation...
    config.seed = -3
    # ...so the API checks every Config it is given
    with pytest.raises(ConfigError, match="config: seed: must be >= 0, got -3"):
        revalidate(config)
    assert revalidate(validate_config(dict(BASE)), seed=9).seed == 9


def test_unknown_keys_have_one_mechanism_with_did_you_mean():
    # pydantic's own extra-key error, worded with the section's valid keys
    message = error_of(with_(training={"epochz": 3}))
    assert message.startswith("config: training: unknown key 'epochz' (did you mean 'epochs'?)")
    assert "valid keys: batch_size, clipvalue" in message
    layer = error_of(with_(model={"layers": [{"gru": {"unitz": 3}}]}))
    assert "model.layers[0]: unknown key 'unitz' (did you mean 'units'?)" in layer
    # the valid keys are those of the section the key is in: the second layer's type, the
    # mapping member of `early_stopping: {...} | false`
    pool = error_of(with_(model={"layers": [{"gru": {}}, {"max_pooling1d": {"pool": 2}}]}))
    assert pool == (
        "config: model.layers[1]: unknown key 'pool' (did you mean 'pool_size'?); "
        "valid keys: pool_size, type"
    )
    stopping = error_of(with_(training={"early_stopping": {"patiense": 3}}))
    assert stopping.startswith(
        "config: training.early_stopping: unknown key 'patiense' (did you mean 'patience'?); "
        "valid keys: patience, restore_best_weights"
    )


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ({"architecture": "bidirectional", "units": [8]}, "bi-lstm(8)"),
        ({"architecture": "conv1d_lstm", "units": [16]}, "conv1d(64)-max_pooling1d-lstm(16)"),
        ({"architecture": "gru", "units": [8, 4], "dropout": 0.1}, "gru(8)-dropout-gru(4)-dropout"),
    ],
)
def test_one_model_label_everywhere(model, name):
    """The verdict's name is the stack's (run.json's `model`), not BIDIRECTIONAL/CONV1D_LSTM."""
    cfg = validate_config({"data": {"path": "x.csv", "features": ["a"]}, "model": model})
    assert cfg.model.label() == cfg.model.describe() == name
