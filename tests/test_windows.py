import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecast.config.schema import SplitConfig
from forecast.data.windows import input_windows, plan_split, target_windows
from forecast.errors import DataError


def test_input_windows_on_arange():
    values = np.arange(10.0).reshape(-1, 1)  # rows 0..9, one feature
    windows = input_windows(values, np.array([2, 3, 9]), input_steps=3)
    assert windows.shape == (3, 3, 1)
    assert windows[:, :, 0].tolist() == [[0, 1, 2], [1, 2, 3], [7, 8, 9]]


def test_target_windows_on_arange():
    values = np.arange(10.0).reshape(-1, 1)
    targets = target_windows(values, np.array([2, 7]), horizon=2)
    assert targets[:, :, 0].tolist() == [[3, 4], [8, 9]]


def test_two_columns_keep_their_order():
    # the seed's two-column sequence: [10, 11], [20, 21], ...
    values = np.stack([np.arange(10, 100, 10), np.arange(11, 101, 10)], axis=1).astype(float)
    windows = input_windows(values, np.array([4]), input_steps=5)
    assert windows[0].tolist() == [[10, 11], [20, 21], [30, 31], [40, 41], [50, 51]]
    assert target_windows(values, np.array([4]), 1)[0].tolist() == [[60, 61]]


def test_split_origins_follow_the_design():
    split = plan_split(
        100, SplitConfig(test=0.2, validation=0.1), input_steps=5, horizon=2, source="x"
    )
    assert (split.val_start, split.test_start) == (72, 80)
    # train: every target row (o+1..o+2) before val_start
    assert split.train_origins[0] == 4 and split.train_origins[-1] == 69
    # validation: targets inside rows 72..79
    assert split.val_origins[0] == 71 and split.val_origins[-1] == 77
    # test: from the last row before the test split to rows-1-horizon
    assert split.test_origins[0] == 79 and split.test_origins[-1] == 97
    assert len(split.test_origins) == 20 - 2 + 1


def test_row_counts_are_accepted():
    split = plan_split(50, SplitConfig(test=10, validation=5), input_steps=3, horizon=1, source="x")
    assert (split.val_start, split.test_start) == (35, 40)


def test_no_validation():
    split = plan_split(50, SplitConfig(test=10, validation=0), input_steps=3, horizon=1, source="x")
    assert split.val_start == split.test_start == 40 and len(split.val_origins) == 0


def test_too_few_rows_says_how_many_are_needed():
    with pytest.raises(DataError, match=r"one window needs input_steps \+ horizon = 61"):
        plan_split(40, SplitConfig(), input_steps=60, horizon=1, source="x.csv")


def test_test_split_shorter_than_horizon():
    with pytest.raises(DataError, match="the test split has 2 row"):
        plan_split(100, SplitConfig(test=2, validation=0), input_steps=3, horizon=5, source="x")


def test_recursive_training_windows_need_one_target_step_only():
    split = plan_split(
        100,
        SplitConfig(test=0.2, validation=0.1),
        input_steps=5,
        horizon=4,
        source="x",
        output_steps=1,
    )
    assert split.train_origins[-1] == 72 - 1 - 1  # the target row 71 is the last train row
    assert split.test_origins[-1] == 100 - 1 - 4  # scored over 4 steps


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(3, 60),
    features=st.integers(1, 3),
    input_steps=st.integers(1, 10),
    horizon=st.integers(1, 5),
)
def test_windows_match_plain_slicing(rows, features, input_steps, horizon):
    values = np.arange(rows * features, dtype=float).reshape(rows, features)
    origins = np.arange(input_steps - 1, rows - horizon)
    windows = input_windows(values, origins, input_steps)
    targets = target_windows(values, origins, horizon)
    assert windows.shape == (len(origins), input_steps, features)
    assert targets.shape == (len(origins), horizon, features)
    for i, o in enumerate(origins):
        np.testing.assert_array_equal(windows[i], values[o - input_steps + 1 : o + 1])
        np.testing.assert_array_equal(targets[i], values[o + 1 : o + 1 + horizon])


def test_training_batches_gathered_per_batch_equal_numpy_windows():
    """The tf.data pipeline train uses gives exactly the windows of the NumPy path."""
    from forecast.fitting.dataset import WindowSource, window_dataset

    series = np.arange(40, dtype="float32").reshape(20, 2)
    targets = series[:, :1] * 10
    origins = np.arange(3, 17)
    batches = list(window_dataset(WindowSource(series, targets, 4, 3), origins, 5))
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(x, input_windows(series, origins, 4))
    np.testing.assert_array_equal(y, target_windows(targets, origins, 3))
    assert [len(b[0]) for b in batches] == [5, 5, 4]


@pytest.mark.parametrize(
    ("origins", "message"),
    [
        (np.array([1, 5]), r"`origins` must lie in \[2, 9\] for 10 rows .* Received: origin 1"),
        (np.array([-1]), r"Received: origin -1"),
        (np.array([10]), r"Received: origin 10"),
        (np.array([2.0]), r"`origins` must be a 1-D array of row numbers. Received: "),
    ],
)
def test_input_windows_checks_origins_up_front(origins, message):
    # a negative row would silently wrap to the last rows of the series
    with pytest.raises(ValueError, match=message):
        input_windows(np.arange(10.0).reshape(-1, 1), origins, input_steps=3)


def test_target_windows_need_horizon_rows_after_the_origin():
    with pytest.raises(ValueError, match=r"must lie in \[0, 7\] .* Received: origin 8"):
        target_windows(np.arange(10.0).reshape(-1, 1), np.array([8]), horizon=2)
