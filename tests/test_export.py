"""`forecast export`: each artifact, loaded with its own runtime, gives `predict`'s numbers.

Two real runs trained for one epoch: a recursive univariate one with differences, per-window
normalisation, a seasonal residual and a 2-member ensemble (the recursive loop and the
inverse transform live in the graph), and a direct multi-output one with a log transform and
calendar inputs.
Each is exported through the CLI, loaded with TensorFlow's `saved_model.load`, LiteRT (the
TFLite runtime, without TensorFlow) or onnxruntime, fed the CSV's last raw rows, and compared
with `forecast predict` on the same CSV.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from forecast import api
from forecast.cli.app import app
from forecast.data.reading import read_series
from forecast.runs import read
from tests.conftest import monthly_frame, tiny_config_file, write_csv

runner = CliRunner()

RECURSIVE = {
    "data": {"transform": "diff"},
    "window": {"input_steps": 12, "horizon": 3, "multi_step": "recursive"},
    "model": {
        "architecture": "lstm",
        "units": [8],
        "window_norm": True,
        "residual": "seasonal_naive",
        "ensemble": 2,
    },
}
DIRECT_LOG = {
    "data": {
        "features": ["sales", "price"],
        "targets": ["sales", "price"],
        "transform": "log",
        "calendar": ["month"],  # extra inputs the caller sends, after the features
    },
    "window": {"input_steps": 12, "horizon": 3},
    "model": {"architecture": "gru", "units": [8], "window_norm": True},  # calendar not normalised
}


@pytest.fixture(scope="module", params=["recursive", "direct_log"])
def trained(request, tmp_path_factory) -> tuple[Path, Path, pd.DataFrame]:
    """(run dir, history CSV, predict's forecast of it)."""
    folder = tmp_path_factory.mktemp(request.param)
    sections = RECURSIVE if request.param == "recursive" else DIRECT_LOG
    config = tiny_config_file(
        folder, "c.yaml", name=request.param, seed=3, **sections, training={"epochs": 1}
    )
    run_dir = api.train(config, runs_dir=folder / "runs", quiet=True).run_dir
    history = write_csv(folder / "recent.csv", monthly_frame(130, seed=5).tail(40))
    frame, _ = api.predict(run_dir, history, output=folder / "predicted.csv")
    return run_dir, history, frame


def raw_values(run_dir: Path, history: Path) -> np.ndarray:
    """The CSV's last rows the artifact takes: (1, rows, features) float32, raw."""
    opened = read.open_run(run_dir)
    data = opened.config.data
    rows = opened.config.window.input_steps + (1 if data.transform in ("diff", "log_diff") else 0)
    # with data.calendar, its columns too, as forecast.data.calendar.encode computes them
    frame = read_series(data, path=history, require_targets=False).frame
    return frame[data.inputs].to_numpy("float32")[-rows:][None]


def expected(run_dir: Path, frame: pd.DataFrame) -> np.ndarray:
    targets = read.open_run(run_dir).config.data.targets
    return frame[targets].to_numpy()[None]  # (1, H, K)


def export(run_dir: Path, fmt: str, output: Path) -> Path:
    result = runner.invoke(
        app, ["export", "--run", str(run_dir), "--format", fmt, "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path == output and path.exists()
    return path


def test_saved_model_matches_predict(trained, tmp_path: Path) -> None:
    import tensorflow as tf

    run_dir, history, frame = trained
    path = export(run_dir, "saved_model", tmp_path / "sm")
    loaded = tf.saved_model.load(str(path))
    got = loaded.serve(tf.constant(raw_values(run_dir, history))).numpy()
    want = expected(run_dir, frame)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4)
    # a batch of origins: each row is forecast on its own
    batch = np.concatenate([raw_values(run_dir, history)] * 3)
    got = loaded.serve(tf.constant(batch)).numpy()
    np.testing.assert_allclose(got, np.repeat(want, 3, 0), rtol=1e-4)


def test_tflite_matches_predict(trained, tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter  # LiteRT: TFLite's own runtime

    run_dir, history, frame = trained
    path = export(run_dir, "tflite", tmp_path / "m.tflite")
    serve = Interpreter(model_path=str(path)).get_signature_runner("serve")
    (got,) = serve(values=raw_values(run_dir, history)).values()
    np.testing.assert_allclose(got, expected(run_dir, frame), rtol=1e-4)


def test_calendar_inputs_built_as_the_readme_says(trained, tmp_path: Path) -> None:
    """README (Export): the calendar columns follow the features; row t carries the
    calendar of the stamp after it, as sin and cos of its position in the cycle. Built here
    by that recipe alone, without forecast's own reader, they give predict's numbers."""
    from ai_edge_litert.interpreter import Interpreter

    run_dir, history, frame = trained
    if not read.open_run(run_dir).config.data.calendar:
        pytest.skip("this run has no calendar inputs")
    tail = pd.read_csv(history).tail(12)
    dates = pd.to_datetime(tail["date"])
    following = dates.shift(-1).fillna(dates.iloc[-1] + pd.DateOffset(months=1))
    angle = 2 * np.pi * (pd.DatetimeIndex(following).month - 1) / 12  # data.calendar: [month]
    values = np.column_stack([tail["sales"], tail["price"], np.sin(angle), np.cos(angle)]).astype(
        "float32"
    )[None]  # (1, 12, 2 features + 2 calendar)
    path = export(run_dir, "tflite", tmp_path / "c.tflite")
    serve = Interpreter(model_path=str(path)).get_signature_runner("serve")
    (got,) = serve(values=values).values()
    np.testing.assert_allclose(got, expected(run_dir, frame), rtol=1e-4)


def test_onnx_matches_predict(trained, tmp_path: Path) -> None:
    import onnxruntime

    run_dir, history, frame = trained
    path = export(run_dir, "onnx", tmp_path / "m.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    (got,) = session.run(None, {name: raw_values(run_dir, history)})
    np.testing.assert_allclose(got, expected(run_dir, frame), rtol=1e-4)


def test_default_path_and_bad_options(trained, monkeypatch) -> None:
    import importlib.util

    run_dir, _, _ = trained
    result = runner.invoke(app, ["export", "--run", str(run_dir), "--format", "pdf"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: --format must be one of saved_model, tflite, onnx, got 'pdf'"
    )
    # a folder that holds something else is never replaced
    keep = run_dir / "notes"
    keep.mkdir(exist_ok=True)
    (keep / "mine.txt").write_text("keep me")
    result = runner.invoke(
        app, ["export", "--run", str(run_dir), "--format", "saved_model", "--output", str(keep)]
    )
    assert result.exit_code == 2
    assert "holds no SavedModel" in result.stderr and len(result.stderr.splitlines()) == 1
    assert (keep / "mine.txt").read_text() == "keep me"
    # ONNX without tf2onnx installed: what to install, before any work
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else find_spec(name)
    )
    result = runner.invoke(app, ["export", "--run", str(run_dir), "--format", "onnx"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --format onnx needs the onnx extra: pip install")
    assert not (run_dir / "export" / "model.onnx").exists()
    monkeypatch.undo()
    # a folder beside the output named like a backup is never touched
    backup = run_dir / "export" / "saved_model.old"
    backup.mkdir(parents=True, exist_ok=True)
    (backup / "mine.txt").write_text("mine")
    # the default path, twice: the second export replaces the first
    for _ in range(2):
        result = runner.invoke(app, ["export", "--run", str(run_dir), "--format", "saved_model"])
        assert result.exit_code == 0, result.output
        assert result.stdout.strip().splitlines()[-1] == str(run_dir / "export" / "saved_model")
    assert sorted(p.name for p in (run_dir / "export").iterdir()) == [
        "saved_model",
        "saved_model.old",
    ]
    assert (backup / "mine.txt").read_text() == "mine"
    assert (run_dir / "export" / "saved_model" / "saved_model.pb").is_file()
