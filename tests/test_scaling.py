import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from forecast.data.scaling import Scaler
from forecast.errors import RunError

VALUES = np.array([[1.0, 10.0], [3.0, 30.0], [2.0, 50.0], [5.0, 20.0]])


def test_minmax_matches_scikit_learn():
    ours = Scaler.fit(VALUES, ["a", "b"], "minmax", (0.0, 1.0))
    reference = MinMaxScaler().fit(VALUES)
    np.testing.assert_allclose(ours.transform(VALUES), reference.transform(VALUES))


def test_standard_matches_scikit_learn():
    ours = Scaler.fit(VALUES, ["a", "b"], "standard")
    np.testing.assert_allclose(
        ours.transform(VALUES), StandardScaler().fit(VALUES).transform(VALUES)
    )


@pytest.mark.parametrize("method", ["minmax", "standard", "none"])
def test_round_trip(method):
    scaler = Scaler.fit(VALUES, ["a", "b"], method, (-1.0, 1.0))
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(VALUES)), VALUES)


def test_fits_on_the_rows_it_is_given_only():
    train, later = VALUES[:3], np.array([[100.0, -100.0]])
    scaler = Scaler.fit(train, ["a", "b"])
    assert scaler.data_max.tolist() == [3.0, 50.0]
    # a later value above the training maximum scales above 1: nothing was refitted
    assert scaler.transform(later)[0, 0] == pytest.approx((100 - 1) / (3 - 1))


def test_constant_column_does_not_divide_by_zero():
    scaler = Scaler.fit(np.array([[7.0], [7.0]]), ["c"], "minmax", (0.0, 1.0))
    assert scaler.transform(np.array([[7.0]]))[0, 0] == 0.0
    assert scaler.inverse_transform(np.array([[0.0]]))[0, 0] == 7.0


def test_json_round_trip_and_subset(tmp_path):
    scaler = Scaler.fit(VALUES, ["a", "b"])
    path = tmp_path / "scaler.json"
    scaler.save(path)
    loaded = Scaler.load(path)
    assert json.loads(path.read_text())["columns"]["b"]["max"] == 50.0
    np.testing.assert_allclose(loaded.transform(VALUES), scaler.transform(VALUES))
    only_b = loaded.subset(["b"])
    np.testing.assert_allclose(only_b.inverse_transform(np.array([[0.0], [1.0]])), [[10.0], [50.0]])


def test_corrupt_json_is_a_run_error(tmp_path):
    path = tmp_path / "scaler.json"
    path.write_text('{"method": "minmax", "columns": {"a": {"scale": 0}}}')
    with pytest.raises(RunError, match="corrupt scaler file"):
        Scaler.load(path)


@settings(max_examples=60, deadline=None)
@given(
    values=arrays(
        np.float64, st.tuples(st.integers(1, 30), st.integers(1, 3)), elements=st.floats(-1e6, 1e6)
    ),
    method=st.sampled_from(["minmax", "standard", "none"]),
)
def test_round_trip_property(values, method):
    columns = [f"c{i}" for i in range(values.shape[1])]
    scaler = Scaler.from_dict(Scaler.fit(values, columns, method).to_dict())  # via JSON form
    restored = scaler.inverse_transform(scaler.transform(values))
    np.testing.assert_allclose(restored, values, rtol=1e-9, atol=1e-9 * (1 + np.abs(values).max()))
    if method == "minmax":
        scaled = scaler.transform(values)
        assert scaled.min() >= -1e-9 and scaled.max() <= 1 + 1e-9


@pytest.mark.parametrize("method", ["minmax", "standard"])
def test_a_subnormal_range_counts_as_constant(method):
    # found by the property test above: 1 / 5e-324 overflows to inf
    values = np.array([[5e-324], [0.0]])
    scaler = Scaler.fit(values, ["a"], method)
    assert np.isfinite(scaler.scale).all() and scaler.scale[0] == 1.0
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(values)), values)
