"""Transforms round-trip exactly, and nothing fitted ever sees validation or test rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from forecast import api
from forecast.config.file import validate_config
from forecast.config.schema import DataConfig
from forecast.data.prepare import prepare
from forecast.data.reading import read_series
from forecast.data.transforms import apply_transform, invert_transform, transform_lag
from forecast.errors import DataError

from .conftest import monthly_frame, tiny_config_file, tiny_sections, write_csv

KINDS = ["none", "diff", "log", "log_diff"]


@pytest.mark.parametrize("kind", KINDS)
def test_invert_gives_back_the_original_values(kind):
    values = np.array([[100.0, 5.0], [110.0, 4.0], [99.0, 6.5], [120.0, 6.0], [130.0, 7.0]])
    index = pd.RangeIndex(5)
    work = apply_transform(values, kind, ["a", "b"], index, "x")
    lag = transform_lag(kind)
    assert len(work) == len(values) - lag
    # forecast "perfectly" from origin row 1: the true next 3 transformed rows
    origin = 1
    future_work = work[origin + 1 - lag : origin + 4 - lag][None]  # (1, 3, 2)
    restored = invert_transform(future_work, values[[origin]], kind)
    np.testing.assert_allclose(restored[0], values[origin + 1 : origin + 4], rtol=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    arrays(np.float64, (12, 2), elements=st.floats(0.01, 1e6)),
    st.sampled_from(KINDS),
    st.integers(0, 6),
)
def test_round_trip_property(values, kind, origin):
    work = apply_transform(values, kind, ["a", "b"], pd.RangeIndex(12), "x")
    lag = transform_lag(kind)
    steps = 12 - 1 - origin
    future = work[origin + 1 - lag : origin + 1 - lag + steps][None]
    restored = invert_transform(future, values[[origin]], kind)
    # sums of differences cancel: exact up to float rounding of the largest magnitude
    atol = 1e-12 * np.abs(values).max() * len(values)
    np.testing.assert_allclose(restored[0], values[origin + 1 :], rtol=1e-9, atol=atol)


def test_log_needs_positive_values(tmp_path):
    frame = monthly_frame(20)
    frame.loc[3, "sales"] = 0.0
    path = write_csv(tmp_path / "z.csv", frame)
    config = DataConfig(path=str(path), time_column="date", features=["sales"], transform="log")
    series = read_series(config)
    with pytest.raises(DataError, match=r"column 'sales' at 2000-04-01 .* needs values > 0"):
        apply_transform(series.values, "log", ["sales"], series.index, str(path))


def leaky_config(tmp_path, csv_name: str, transform: str = "none"):
    return validate_config(
        tiny_sections(
            name="leak",
            seed=5,
            data={
                "path": str(tmp_path / csv_name),
                "features": ["sales", "price"],
                "targets": ["sales"],
                "transform": transform,
            },
            window={"input_steps": 6, "horizon": 2},
            model={"architecture": "gru", "units": [4]},
            # the held-out model is the one under test (a final fit sees every row)
            training={"final_fit": False},
        )
    )


@pytest.mark.parametrize("transform", ["none", "diff"])
def test_scaler_never_sees_validation_or_test_rows(tmp_path, transform):
    frame = monthly_frame(120)
    write_csv(tmp_path / "a.csv", frame)
    changed = frame.copy()
    changed.loc[86:, ["sales", "price"]] *= 50  # every validation and test row (val_start = 86)
    write_csv(tmp_path / "b.csv", changed)
    one = prepare(leaky_config(tmp_path, "a.csv", transform))
    two = prepare(leaky_config(tmp_path, "b.csv", transform))
    assert one.split.val_start + one.lag == 86
    assert one.scaler.to_dict() == two.scaler.to_dict()
    assert one.scaler.data_max[0] < 200  # it would be ~7,000 had it seen the changed rows


def test_trained_weights_do_not_depend_on_test_rows(tmp_path):
    frame = monthly_frame(120)
    write_csv(tmp_path / "a.csv", frame)
    changed = frame.copy()
    changed.loc[96:, "sales"] = changed.loc[96:, "sales"] * 3 + 1000  # the test rows
    write_csv(tmp_path / "b.csv", changed)
    runs = tmp_path / "runs"
    one = api.train(leaky_config(tmp_path, "a.csv"), runs_dir=runs, quiet=True)
    two = api.train(leaky_config(tmp_path, "b.csv"), runs_dir=runs, quiet=True)
    scaler_one = json.loads((one.run_dir / "scaler.json").read_text())
    assert scaler_one == json.loads((two.run_dir / "scaler.json").read_text())
    import keras

    weights_one = keras.saving.load_model(one.run_dir / "model.keras").get_weights()
    weights_two = keras.saving.load_model(two.run_dir / "model.keras").get_weights()
    for a, b in zip(weights_one, weights_two, strict=True):
        np.testing.assert_array_equal(a, b)
    # ...while the scores, computed on those rows, do change
    assert one.metrics["model"]["mae"] != two.metrics["model"]["mae"]


def test_train_with_log_diff_reports_original_units(tmp_path):
    config = tiny_config_file(tmp_path, data={"transform": "log_diff"}, window={"horizon": 3})
    frame, csv = monthly_frame(120), tmp_path / "sales.csv"
    result = api.train(config, runs_dir=tmp_path / "runs", quiet=True)
    preds = pd.read_csv(result.run_dir / "test_predictions.csv")
    merged = preds.merge(frame, left_on="time", right_on="date")
    np.testing.assert_allclose(merged["actual"], merged["sales"])
    # forecasts of a ~150-level series stay on its scale (differences were summed back)
    assert preds["predicted"].between(50, 400).all()
    # test origins start at the last row before the test split, as without a transform
    assert preds["time"].iloc[0] == frame["date"].iloc[96]
    future, _ = api.predict(result.run_dir, csv, horizon=4)
    assert future["sales"].between(50, 400).all() and len(future) == 4


def test_interpolated_holes_never_borrow_from_the_test_rows(tmp_path):
    """A hole at the end of the training rows is filled from earlier rows only."""
    frame = monthly_frame(120)
    # no validation: rows 0..95 train, 96.. test; holes at the last training rows
    frame.loc[[94, 95], "sales"] = np.nan
    frame.loc[60, "price"] = np.nan
    write_csv(tmp_path / "a.csv", frame)
    changed = frame.copy()
    changed.loc[96:, ["sales", "price"]] = changed.loc[96:, ["sales", "price"]] * 3 + 500
    write_csv(tmp_path / "b.csv", changed)

    def config(name: str):
        raw = leaky_config(tmp_path, name).model_dump()
        raw["data"]["missing"] = "interpolate"
        raw["split"]["validation"] = 0
        raw["training"]["early_stopping"] = False
        return validate_config(raw)

    one, two = prepare(config("a.csv")), prepare(config("b.csv"))
    assert one.split.test_start == 96
    # rows 94-95 carry row 93 forward instead of leaning towards row 96
    assert one.values[94, 0] == one.values[95, 0] == frame.loc[93, "sales"]
    assert one.values[60, 1] == pytest.approx((frame.loc[59, "price"] + frame.loc[61, "price"]) / 2)
    assert one.scaler.to_dict() == two.scaler.to_dict()
    runs = tmp_path / "runs"
    first = api.train(config("a.csv"), runs_dir=runs, quiet=True)
    second = api.train(config("b.csv"), runs_dir=runs, quiet=True)
    import keras

    weights_one = keras.saving.load_model(first.run_dir / "model.keras").get_weights()
    weights_two = keras.saving.load_model(second.run_dir / "model.keras").get_weights()
    for a, b in zip(weights_one, weights_two, strict=True):
        np.testing.assert_array_equal(a, b)
    assert first.metrics["model"]["mae"] != second.metrics["model"]["mae"]
