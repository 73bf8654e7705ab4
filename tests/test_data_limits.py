"""Hostile data and results that only look right, through the real CLI (and the server's app):
endless or huge files, values past float32, a diverging fit, NaN forecasts, another run's
model.keras, and time columns that mix UTC offsets."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from forecast.cli.app import app

from .conftest import monthly_frame, one_line_error, write_config, write_csv

runner = CliRunner()
MEMORY_GUARD = 3 * 1024**3  # bytes of address space for a subprocess that must not read much


def forecast_process(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m forecast ARGS` with at most MEMORY_GUARD of memory: a reader that reads on
    and on fails there (and the test with it) instead of taking the machine's memory."""
    import resource

    def guard() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_GUARD, MEMORY_GUARD))

    return subprocess.run(
        [sys.executable, "-m", "forecast", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        preexec_fn=guard,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def process_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def small_config(folder: Path, data_path: str, **sections) -> Path:
    raw = {
        "name": "small",
        "seed": 3,
        "data": {"path": data_path, "time_column": "date", "features": ["sales"]},
        "window": {"input_steps": 12},
        "model": {"architecture": "gru", "units": [4]},
        "training": {"epochs": 1, "batch_size": 16},
        "intervals": [],
    }
    for key, value in sections.items():
        merge = key != "model" and isinstance(raw.get(key), dict)  # a model is replaced
        raw[key] = {**raw[key], **value} if merge else value
    return write_config(folder / "c.yaml", **raw)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One tiny univariate run (input_steps 12, horizon 1) on 80 monthly rows."""
    folder = tmp_path_factory.mktemp("limits")
    write_csv(folder / "s.csv", monthly_frame(80))
    config = small_config(folder, "s.csv")
    result = runner.invoke(app, ["train", str(config), "--runs-dir", str(folder / "runs"), "-q"])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


def copy_run(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "runs" / run.name
    shutil.copytree(run, copy)
    (copy / "forecast.csv").unlink(missing_ok=True)
    return copy


def history(folder: Path, values: np.ndarray | None = None, name: str = "recent.csv") -> Path:
    frame = monthly_frame(80).tail(24).reset_index(drop=True)
    if values is not None:
        frame["sales"] = values
    return write_csv(folder / name, frame)


def post(app_, body: bytes, kind: str = "application/json") -> tuple[int, dict]:
    """One POST /forecast through the ASGI app itself: (status, JSON answer)."""
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/forecast",
        "raw_path": b"/forecast",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", kind.encode()), (b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app_(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


def json_history(frame: pd.DataFrame) -> bytes:
    rows = json.loads(frame.to_json(orient="records"))
    return json.dumps({"history": rows}).encode()


# --------------------------------------------------------------------- endless and huge files


def test_a_device_as_data_path_is_refused_without_reading_it(tmp_path):
    config = small_config(tmp_path, "/dev/zero")
    line = process_error(forecast_process("validate", str(config), cwd=tmp_path))
    assert "/dev/zero: is not a regular file" in line, line


def test_a_named_pipe_for_init_csv_is_refused_without_waiting_on_it(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)  # nothing ever writes: opening it to read would wait for ever
    line = process_error(forecast_process("init", "--csv", str(fifo), cwd=tmp_path, timeout=60))
    assert f"{fifo}: is not a regular file" in line, line


def test_predict_refuses_a_device_as_history(run, tmp_path):
    result = forecast_process("predict", "--run", str(run), "--csv", "/dev/zero", cwd=tmp_path)
    assert "/dev/zero: is not a regular file" in process_error(result)
    assert not (run / "forecast.csv").exists()


def test_files_over_the_size_limit_are_refused_saying_how_large(tmp_path, monkeypatch, run):
    csv = write_csv(tmp_path / "s.csv", monthly_frame(80))  # 1,966 bytes
    size = csv.stat().st_size
    assert 1900 < size < 2100
    monkeypatch.setenv("FORECAST_MAX_FILE_BYTES", "1000")
    said = f"s.csv: is {size / 1024:.3g} KiB; the limit is 1000 bytes (FORECAST_MAX_FILE_BYTES)"
    config = small_config(tmp_path, "s.csv")
    for argv in (
        ["validate", str(config)],
        ["init", "--csv", str(csv)],
        ["predict", "--run", str(run), "--csv", str(csv), "--output", str(tmp_path / "f.csv")],
    ):
        line = one_line_error(runner.invoke(app, argv))
        assert said in line, (argv[0], line)
    assert not (tmp_path / "f.csv").exists()
    monkeypatch.setenv("FORECAST_MAX_FILE_BYTES", str(size))  # exactly at the limit: read
    assert runner.invoke(app, ["init", "--csv", str(csv)]).exit_code == 0


# --------------------------------------------------------------------- values past float32


def alternating_huge(rows: int) -> np.ndarray:
    return np.where(np.arange(rows) % 2 == 0, 1e308, -1e308)


def test_values_past_float32_are_refused_naming_column_and_time(tmp_path):
    frame = monthly_frame(80)
    frame["sales"] = alternating_huge(80)
    write_csv(tmp_path / "s.csv", frame)
    line = one_line_error(runner.invoke(app, ["validate", str(small_config(tmp_path, "s.csv"))]))
    assert "s.csv: column 'sales' at 2000-01-01 is 1e+308" in line, line
    assert "float32" in line, line
    # +-3e38 fit in float32 (and scale to 0..1), but their differences do not
    frame["sales"] = 3e-270 * alternating_huge(80)
    write_csv(tmp_path / "s.csv", frame)
    assert runner.invoke(app, ["validate", str(small_config(tmp_path, "s.csv"))]).exit_code == 0
    config = small_config(tmp_path, "s.csv", data={"transform": "diff"})
    line = one_line_error(runner.invoke(app, ["validate", str(config)]))
    assert "column 'sales' at 2000-02-01 is -6e+38 after data.transform diff" in line, line


def test_history_that_scaling_takes_past_float32_is_refused(tmp_path):
    """1e30 is an ordinary float32, but a scaler fitted on a range of 1e-9 maps it to
    1e39: the history is refused, naming the column, the time and the scaling."""
    from forecast.config.file import load_config
    from forecast.data.prepare import prepare_history
    from forecast.data.reading import read_series
    from forecast.data.scaling import Scaler
    from forecast.errors import DataError

    values = np.full(24, 1e-9)
    values[-1] = 1e30
    csv = history(tmp_path, values)
    config = load_config(small_config(tmp_path, csv.name, data={"calendar": []}))
    scaler = Scaler.fit(np.array([[0.0], [1e-9]]), ["sales"])  # training rows 0 .. 1e-9
    with pytest.raises(DataError, match=r"column 'sales' at 2006-08-01 is 1e\+39 after scaling"):
        prepare_history(config, read_series(config.data, csv), scaler)


@pytest.mark.slow
def test_train_on_values_past_float32_leaves_no_run(tmp_path):
    frame = monthly_frame(60)
    frame["sales"] = alternating_huge(60)
    write_csv(tmp_path / "s.csv", frame)
    config = small_config(tmp_path, "s.csv", window={"input_steps": 6})
    runs_dir = tmp_path / "runs"
    line = one_line_error(runner.invoke(app, ["train", str(config), "--runs-dir", str(runs_dir)]))
    assert "column 'sales' at 2000-01-01 is 1e+308" in line, line
    assert not runs_dir.exists() or not list(runs_dir.iterdir())


@pytest.mark.slow
def test_a_diverging_fit_stops_with_one_line_and_leaves_no_run(tmp_path):
    """Unscaled values, a ReLU layer and SGD at learning rate 10: the loss is inf or NaN at
    epoch 2, after epoch 1 was checkpointed in the partial run (which loss goes first, the
    training loss to NaN or the validation loss to inf, differed between CPUs: AVX-512 or
    not)."""
    write_csv(tmp_path / "s.csv", monthly_frame(60))
    config = small_config(
        tmp_path,
        "s.csv",
        window={"input_steps": 6},
        scaling={"method": "none"},
        model={"layers": [{"flatten": {}}, {"dense": {"units": 8, "activation": "relu"}}]},
        training={"epochs": 5, "optimizer": "sgd", "learning_rate": 10},
    )
    runs_dir = tmp_path / "runs"
    result = runner.invoke(app, ["train", str(config), "--runs-dir", str(runs_dir), "-q"])
    line = one_line_error(result)
    assert re.search(r"training: the (training loss became nan|validation loss became inf) "
                     r"at epoch 2; the fit diverged", line), line  # fmt: skip
    assert "lower training.learning_rate (now 10)" in line and "clipvalue" in line, line
    assert list(runs_dir.iterdir()) == []  # neither a run nor a partial one


def test_smape_of_nan_forecasts_is_undefined_not_zero():
    from forecast.forecasting.evaluation import compute_metrics

    actual = np.array([[[1.0]], [[2.0]]])  # (N=2, H=1, K=1)
    nan = compute_metrics(actual, np.full_like(actual, np.nan), np.array([1.0]))
    assert nan == dict.fromkeys(("mae", "rmse", "mape", "smape", "mase"))
    zeros = np.zeros_like(actual)
    assert compute_metrics(zeros, zeros, np.array([1.0]))["smape"] == 0.0  # 0 vs 0: perfect
    half = compute_metrics(actual, np.array([[[1.0]], [[np.nan]]]), np.array([1.0]))
    assert half["smape"] is None  # one NaN forecast is not dropped from the mean


def test_predict_refuses_nan_forecasts_and_writes_nothing(run, tmp_path):
    import keras

    broken = copy_run(run, tmp_path)
    model = keras.saving.load_model(broken / "model.keras", compile=False, safe_mode=True)
    dense = next(layer for layer in model.layers if isinstance(layer, keras.layers.Dense))
    dense.kernel.assign(np.full(dense.kernel.shape, np.nan, dtype="float32"))
    model.save(broken / "model.keras")
    result = runner.invoke(app, ["predict", "--run", str(broken), "--csv", str(history(tmp_path))])
    line = one_line_error(result)
    assert "recent.csv: the model forecasts nan for 'sales' (step 1)" in line, line
    assert not (broken / "forecast.csv").exists()


def test_predict_refuses_history_past_float32(run, tmp_path):
    values = np.full(24, 100.0)
    values[-3] = 1e308
    csv = history(tmp_path, values)
    result = runner.invoke(app, ["predict", "--run", str(run), "--csv", str(csv)])
    line = one_line_error(result)
    assert "recent.csv: column 'sales' at 2006-06-01 is 1e+308" in line, line
    assert not (run / "forecast.csv").exists()


def test_predict_refuses_a_codec_that_writes_no_text(run, tmp_path):
    """base64 and rot13 are codecs Python knows, but not text encodings a CSV can be written
    in: refused before any work with the line an unknown name gets; latin-1 is written."""
    out = tmp_path / "f.csv"
    args = ["predict", "--run", str(run), "--csv", str(history(tmp_path)), "--output", str(out)]
    for codec in ("base64", "rot13", "klingon"):
        line = one_line_error(runner.invoke(app, [*args, "--encoding", codec]))
        assert line == f"error: --encoding {codec}: unknown; use auto, utf-8, utf-8-sig or gb18030"
        assert not out.exists()
    result = runner.invoke(app, [*args, "--encoding", "latin-1"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().decode("latin-1").startswith("date,sales")


def test_server_answers_400_for_values_past_float32(run):
    from forecast.api import Predictor
    from forecast.workflows.serve import create_app

    served = create_app(Predictor(run))
    frame = monthly_frame(80).tail(24)
    status, answer = post(served, json_history(frame))
    assert status == 200, answer  # the same rows with ordinary values are answered
    frame.loc[frame.index[-1], "sales"] = 1e308
    status, answer = post(served, json_history(frame))
    assert status == 400, answer
    assert "column 'sales' at 2006-08-01 is 1e+308" in answer["error"], answer
    assert "\n" not in answer["error"]


# --------------------------------------------------------------------- another run's model


@pytest.mark.parametrize(
    ("shape_in", "shape_out", "said"),
    [
        ((6, 1), (1, 1), "it takes 6 input steps, the config says 12"),
        ((12, 1), (3, 1), "it gives 3 output steps, the config says 1"),
        ((12, 2), (1, 1), "it takes 2 input columns, the config says 1"),
    ],
    ids=["input-steps", "horizon", "features"],
)
def test_a_model_keras_from_another_run_is_refused(run, tmp_path, shape_in, shape_out, said):
    import keras

    inputs = keras.Input(shape_in)
    flat = keras.layers.Dense(shape_out[0] * shape_out[1])(keras.layers.Flatten()(inputs))
    other = keras.Model(inputs, keras.layers.Reshape(shape_out)(flat))
    broken = copy_run(run, tmp_path)
    other.save(broken / "model.keras")
    result = runner.invoke(app, ["predict", "--run", str(broken), "--csv", str(history(tmp_path))])
    line = one_line_error(result)
    assert f"{broken / 'model.keras'} does not belong to this run ({said})" in line, line
    assert not (broken / "forecast.csv").exists()


# --------------------------------------------------------------------- mixed UTC offsets


def berlin_hours(rows: int = 240) -> pd.DataFrame:
    """Hourly rows over the March 2021 change to summer time, written with their offsets
    (+01:00, then +02:00), as a logger with local clocks writes them."""
    times = pd.date_range("2021-03-23", periods=rows, freq="h", tz="UTC").tz_convert(
        "Europe/Berlin"
    )
    hours = np.arange(rows)
    return pd.DataFrame(
        {
            "date": [t.isoformat() for t in times],
            "sales": (100 + 10 * np.sin(2 * np.pi * hours / 24) + 0.1 * hours).round(3),
        }
    )


def test_validate_and_init_read_mixed_utc_offsets_as_utc(tmp_path):
    frame = berlin_hours()
    assert {t[-6:] for t in frame["date"]} == {"+01:00", "+02:00"}
    csv = write_csv(tmp_path / "s.csv", frame)
    result = runner.invoke(app, ["validate", str(small_config(tmp_path, "s.csv"))])
    assert result.exit_code == 0, result.output
    assert "s.csv: column 'date' mixes UTC offsets; its times are converted to UTC" in (
        result.stderr
    )
    assert "irregular gap" not in result.stderr  # in UTC the hours are evenly spaced
    result = runner.invoke(app, ["init", "--csv", str(csv)])
    assert result.exit_code == 0, result.output
    starter = yaml.safe_load(result.stdout)
    assert starter["data"]["time_column"] == "date"
    assert starter["evaluation"]["season_length"] in ("auto", 24), starter["evaluation"]


@pytest.mark.slow
def test_train_predict_and_serve_work_on_mixed_utc_offsets(tmp_path):
    from forecast.api import Predictor
    from forecast.workflows.serve import create_app

    frame = berlin_hours(239)
    write_csv(tmp_path / "s.csv", frame)
    config = small_config(tmp_path, "s.csv", data={"calendar": []})
    result = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert result.exit_code == 0, result.output
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    recent = write_csv(tmp_path / "recent.csv", frame.tail(30))
    result = runner.invoke(app, ["predict", "--run", str(run_dir), "--csv", str(recent)])
    assert result.exit_code == 0, result.output
    # the last row, 2021-04-02T00:00:00+02:00, is 22:00 UTC: the forecast is for 23:00 UTC
    assert frame["date"].iloc[-1] == "2021-04-02T00:00:00+02:00"
    written = pd.read_csv(run_dir / "forecast.csv")
    assert written["date"].tolist() == ["2021-04-01T23:00:00"], written
    status, answer = post(create_app(Predictor(run_dir)), json_history(frame.tail(30)))
    assert status == 200, answer
    assert answer["forecast"][0]["date"] == "2021-04-01T23:00:00", answer
    assert answer["forecast"][0]["sales"] == pytest.approx(written["sales"][0])


def test_an_infinite_file_limit_setting_is_one_line(tmp_path, monkeypatch):
    from forecast.data.csvfile import max_file_bytes
    from forecast.errors import ConfigError

    monkeypatch.setenv("FORECAST_MAX_FILE_BYTES", "inf")
    with pytest.raises(ConfigError, match=r"^FORECAST_MAX_FILE_BYTES=inf: must be a positive"):
        max_file_bytes()
