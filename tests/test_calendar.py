"""Calendar features known in advance (data.calendar): the encoding, `auto`, the config
rules, transforms and per-window normalisation leaving them alone, and predict computing
them for the future row."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from forecast import api
from forecast.cli.app import app
from forecast.config.file import load_config
from forecast.data.calendar import auto, encode
from forecast.data.prepare import prepare, prepare_history
from forecast.data.reading import read_series
from forecast.errors import DataError

from .conftest import monthly_frame, tiny_config_file, write_config, write_csv


def calendar_config(folder: Path, rows: int = 72, **data) -> Path:
    return tiny_config_file(
        folder,
        "cal.yaml",
        rows=rows,
        name="cal",
        seed=5,
        data=data,
        window={"horizon": 3},
        split={"test": 12, "validation": 6},
        model={"window_norm": True},
    )


def test_each_row_carries_the_calendar_of_the_row_after_it():
    index = pd.DatetimeIndex(pd.date_range("2020-01-01", periods=3, freq="MS"))
    table = encode(index, ["month"], "x.csv")
    assert list(table.columns) == ["calendar.month_sin", "calendar.month_cos"]
    # Jan carries Feb (month 1 of 0..11), Feb carries Mar, and Mar the April after the data
    for row, month in enumerate([1, 2, 3]):
        assert table.iloc[row, 0] == pytest.approx(math.sin(2 * math.pi * month / 12))
        assert table.iloc[row, 1] == pytest.approx(math.cos(2 * math.pi * month / 12))
    days = pd.bdate_range("2024-02-19", "2024-03-01")  # two trading weeks, ending a Friday
    weekday = encode(days, ["weekday"], "x.csv")["calendar.weekday_sin"].to_numpy()
    # Thursday carries Friday (4); the last Friday the Monday after the data (0)
    np.testing.assert_allclose(weekday[-2:], np.sin(2 * np.pi * np.array([4, 0]) / 7), atol=1e-12)


def test_auto_picks_the_cycles_of_the_data_frequency():
    def at(freq: str) -> list[str]:
        return auto(pd.date_range("2020-01-01", periods=20, freq=freq))

    assert at("h") == ["hour", "weekday"]
    assert at("30min") == ["hour", "weekday"]
    assert at("D") == ["weekday", "dayofyear"]
    assert at("B") == ["weekday", "dayofyear"]
    assert at("W-MON") == ["week"]
    assert at("MS") == ["month"]
    assert at("QS") == ["quarter"]
    assert at("YS") == []
    assert auto(pd.RangeIndex(10)) == []


def test_calendar_inputs_keep_the_layout_and_refuse_recursion(tmp_path):
    config = load_config(calendar_config(tmp_path, calendar=["month"]))
    assert config.layout == "univariate_multi_step"  # not multivariate: calendar is no feature
    assert config.data.inputs == ["sales", "calendar.month_sin", "calendar.month_cos"]
    assert not config.recursive_ok
    path = calendar_config(tmp_path, calendar=["month"])
    text = yaml.safe_load(path.read_text())
    text["window"]["multi_step"] = "recursive"
    path.write_text(yaml.safe_dump(text))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "data.calendar needs window.multi_step: direct" in result.output


def test_a_calendar_needs_dates(tmp_path):
    frame = monthly_frame(40).drop(columns="date")
    write_csv(tmp_path / "steps.csv", frame)
    path = write_config(
        tmp_path / "steps.yaml",
        data={"path": "steps.csv", "features": ["sales"], "calendar": ["month"]},
        window={"input_steps": 6},
    )
    with pytest.raises(DataError, match="data.calendar needs a time_column of dates"):
        read_series(load_config(path).data)


def test_transforms_and_window_normalisation_leave_calendar_columns_alone(tmp_path):
    import keras

    from forecast.model.layers import register

    config = load_config(calendar_config(tmp_path, calendar=["month"], transform="diff"))
    prepared = prepare(config)
    assert prepared.columns == ["sales", "calendar.month_sin", "calendar.month_cos"]
    raw = encode(prepared.series.index, ["month"], "x")["calendar.month_sin"].to_numpy()
    scaler = prepared.scaler.subset(["calendar.month_sin"])
    # not differenced: the diff's first row is original row 1, which carries row 1's calendar
    unscaled = scaler.inverse_transform(prepared.scaled[:, [1]])[:, 0]
    np.testing.assert_allclose(unscaled, raw[1:], atol=1e-12)
    assert prepared.features.shape[1] == 3

    window = np.stack([np.arange(6.0), np.linspace(0, 1, 6)], axis=-1)[None]  # (1, 6, 2)
    layer = register()["WindowNormalize"]([0], 2, True, "naive", 1, normalised=1)
    normalised = keras.ops.convert_to_numpy(layer(window.astype(np.float32))[0])
    np.testing.assert_allclose(normalised[0, :, 1], window[0, :, 1], rtol=1e-6)  # as it was
    assert normalised[0, -1, 0] == pytest.approx(0.0)  # the feature: centred on its last value


@pytest.mark.slow
def test_auto_is_resolved_in_the_run_and_predict_computes_the_future_calendar(tmp_path):
    path = calendar_config(tmp_path, calendar="auto")
    result = api.train(path, runs_dir=tmp_path / "runs", quiet=True)
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["data"]["calendar"] == ["month"]  # what predict and serve read back
    csv = tmp_path / "sales.csv"
    future, _ = api.predict(result.run_dir, csv)
    assert len(future) == 3
    assert np.isfinite(future["sales"]).all()
    # the history predict forecasts from ends with the calendar of the first future month
    predictor = api.Predictor(result.run_dir)
    series = read_series(predictor.config.data, path=csv, require_targets=False)
    history = prepare_history(predictor.config, series, predictor.scaler)
    last = predictor.scaler.subset(history.columns).inverse_transform(history.scaled[-1:])[0]
    next_month = pd.Timestamp(future["date"].iloc[0]).month - 1
    assert last[history.columns.index("calendar.month_sin")] == pytest.approx(
        math.sin(2 * math.pi * next_month / 12)
    )
    # past the trained horizon: one line, exit 2
    result = CliRunner().invoke(
        app, ["predict", "--run", str(result.run_dir), "--csv", str(csv), "--horizon", "4"]
    )
    assert result.exit_code == 2
    assert "with data.calendar it does not go further by recursion" in result.output
