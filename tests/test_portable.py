"""`forecast predict` without TensorFlow: the first predict of a run keeps model.onnx, later
ones run it with onnxruntime and give the same forecasts (to 1e-5 relative) and intervals.

Real runs trained for one epoch, one per kind of network the config builds: each recurrent
layer, Bidirectional, Conv1D-LSTM, per-window normalisation with a seasonal residual and a
joint ensemble's median, an independent ensemble, several targets with calendar inputs, and a
long table. Each is forecast by the Keras model (runtime "tensorflow"), then through
`api.predict` twice: the first keeps model.onnx, the second forecasts from it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast import api
from forecast.data.reading import read_panel, read_series
from forecast.forecasting.forecaster import Forecaster
from forecast.forecasting.portable import PortableForecaster
from forecast.workflows.predictor import Predictor
from tests.conftest import monthly_frame, tiny_config_file, write_config, write_csv
from tests.test_panel import PANEL, long_frame

KINDS = {
    "lstm_recursive": {
        "data": {"transform": "diff"},
        "window": {"input_steps": 12, "horizon": 3, "multi_step": "recursive"},
        "model": {
            "architecture": "lstm",
            "units": [8, 4],
            "window_norm": True,
            "residual": "seasonal_naive",
            "ensemble": 2,
        },
        "intervals": [80],
    },
    "gru_direct_calendar": {
        "data": {
            "features": ["sales", "price"],
            "targets": ["sales", "price"],
            "transform": "log",
            "calendar": ["month"],
        },
        "window": {"input_steps": 12, "horizon": 3},
        "model": {"architecture": "gru", "units": [8]},
    },
    "simple_rnn": {"model": {"architecture": "simple_rnn", "units": [6]}},
    "bidirectional": {"model": {"architecture": "bidirectional", "units": [4]}},
    "conv1d_lstm": {"model": {"architecture": "conv1d_lstm", "units": [4]}},
    "independent_ensemble": {
        "model": {"architecture": "gru", "units": [4], "ensemble": 2, "ensemble_fit": "independent"}
    },
}


def relative_gap(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """The largest difference of two forecasts' numbers, relative to each number."""
    assert list(a.columns) == list(b.columns)
    numbers = a.select_dtypes("number").columns
    x, y = a[numbers].to_numpy(float), b[numbers].to_numpy(float)
    assert np.array_equal(np.isnan(x), np.isnan(y))
    x, y = np.nan_to_num(x), np.nan_to_num(y)
    return float(np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-12)))


def train(folder: Path, kind: str) -> tuple[Path, Path]:
    """(run dir, a history CSV to forecast from) of one kind of network."""
    folder.mkdir(exist_ok=True)
    if kind == "long_table":
        write_csv(folder / "long.csv", long_frame({"A": 40, "B": 36, "C": 44}))
        config = write_config(folder / "stores.yaml", **PANEL)
        history = folder / "long.csv"
    else:
        sections = {"training": {"epochs": 1}, **KINDS[kind]}
        config = tiny_config_file(folder, "c.yaml", name=kind, seed=3, **sections)
        history = write_csv(folder / "recent.csv", monthly_frame(130, seed=5).tail(40))
    return api.train(config, runs_dir=folder / "runs", quiet=True).run_dir, history


@pytest.mark.parametrize("kind", [*KINDS, "long_table"])
def test_the_second_predict_runs_model_onnx_and_gives_the_same_forecast(tmp_path, kind):
    run_dir, history = train(tmp_path, kind)
    keras_predictor = Predictor(run_dir)  # runtime "tensorflow": the Keras model
    data = keras_predictor.config.data
    if data.id_column is not None:
        series = read_panel(data, path=history, require_targets=False)
    else:
        series = read_series(data, path=history, require_targets=keras_predictor.needs_targets)
    horizon = keras_predictor.config.window.horizon
    steps = horizon + 2 if data.inputs == data.targets else horizon
    by_keras, _ = keras_predictor.forecast(series, steps)
    assert not (run_dir / "model.onnx").exists()

    first, _ = api.predict(run_dir, history, horizon=steps, output=tmp_path / "first.csv")
    assert (run_dir / "model.onnx").is_file()  # kept by the first predict
    second, _ = api.predict(run_dir, history, horizon=steps, output=tmp_path / "second.csv")

    assert isinstance(Predictor(run_dir, runtime="auto").forecaster, PortableForecaster)
    assert relative_gap(by_keras, first) == 0.0  # the first is Keras' forecast
    assert 0.0 <= relative_gap(by_keras, second) < 1e-5
    if kind == "lstm_recursive":  # intervals come along, recursion past the trained horizon
        assert "sales_lo_80" in second.columns and second["sales_lo_80"].notna().all()
        assert len(second) == 5


def test_an_artifact_of_another_model_or_a_broken_one_is_never_used(tmp_path):
    run_a, history = train(tmp_path / "a", "simple_rnn")
    run_b, _ = train(tmp_path / "b", "bidirectional")
    api.predict(run_a, history, output=tmp_path / "a.csv")  # keeps a's model.onnx
    expected, _ = Predictor(run_b).forecast(read_series(Predictor(run_b).config.data, history))

    shutil.copy(run_a / "model.onnx", run_b / "model.onnx")  # another run's, same shapes
    assert isinstance(Predictor(run_b, runtime="auto").forecaster, Forecaster)
    got, _ = api.predict(run_b, history, output=tmp_path / "b.csv")
    assert relative_gap(expected, got) == 0.0
    # b's own, written in its place
    assert (run_b / "model.onnx").read_bytes() != (run_a / "model.onnx").read_bytes()
    assert isinstance(Predictor(run_b, runtime="auto").forecaster, PortableForecaster)

    (run_b / "model.onnx").write_bytes(b"not an onnx file")
    assert isinstance(Predictor(run_b, runtime="auto").forecaster, Forecaster)
    got, _ = api.predict(run_b, history, output=tmp_path / "b2.csv")
    assert relative_gap(expected, got) == 0.0
    assert isinstance(Predictor(run_b, runtime="auto").forecaster, PortableForecaster)


@pytest.mark.slow
def test_predict_from_model_onnx_imports_no_tensorflow(tmp_path):
    run_dir, history = train(tmp_path, "simple_rnn")
    api.predict(run_dir, history, output=tmp_path / "first.csv")
    script = (
        "import sys\n"
        "from forecast.cli.app import main\n"
        f"sys.argv = ['forecast', 'predict', '--run', {str(run_dir)!r}, '--csv', "
        f"{str(history)!r}, '--output', {str(tmp_path / 'second.csv')!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "loaded = [m for m in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules]\n"
        "print('imported:', loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "imported: []" in done.stdout
    first = pd.read_csv(tmp_path / "first.csv")
    assert relative_gap(first, pd.read_csv(tmp_path / "second.csv")) < 1e-5


def test_serving_converts_in_memory_and_runs_onnx_on_one_thread(tmp_path):
    """load_for_serving (what `serve` calls at start) on a run without model.onnx: the
    network converted in memory (nothing written), forecast on one onnxruntime thread
    (predict's session keeps onnxruntime's default, 0: one per core), within 1e-5 of Keras;
    a worker given those bytes forecasts the same; runtime "tensorflow" stays Keras."""
    run_dir, history = train(tmp_path, "simple_rnn")
    keras = Predictor(run_dir)
    keras.load_for_serving()
    assert not keras.portable and keras.serve_bytes is None

    serving = Predictor(run_dir, runtime="auto")
    serving.load_for_serving()
    serving.load_for_serving()  # again (the CLI, then api.serve): the same
    assert serving.portable and serving.serve_bytes and not (run_dir / "model.onnx").exists()
    assert serving.forecaster.session.get_session_options().intra_op_num_threads == 1
    series = read_series(serving.config.data, path=history)
    by_keras, _ = keras.forecast(series)
    served, _ = serving.forecast(series)
    assert 0.0 <= relative_gap(by_keras, served) < 1e-5

    worker = Predictor(run_dir, runtime="auto")
    worker.load_for_serving(serving.serve_bytes)
    assert worker.portable and relative_gap(served, worker.forecast(series)[0]) == 0.0

    api.predict(run_dir, history, output=tmp_path / "first.csv")  # keeps model.onnx
    predicting = Predictor(run_dir, runtime="auto")
    assert predicting.forecaster.session.get_session_options().intra_op_num_threads == 0
    from_file = Predictor(run_dir, runtime="auto")
    from_file.load_for_serving()
    assert from_file.serve_bytes == (run_dir / "model.onnx").read_bytes()
    assert from_file.forecaster.session.get_session_options().intra_op_num_threads == 1
    session = from_file.forecaster.session
    from_file.load_for_serving()  # again (the CLI, then api.serve): the same session
    assert from_file.forecaster.session is session


def test_a_small_request_is_answered_on_the_loop_and_never_waits_for_a_batch(tmp_path):
    """serve's rule for answering on the event loop: one series, served as ONNX, a body
    up to 64 KB and at most 8 model calls. Such a forecast (shared=False) runs its own
    model call even while another caller holds the shared batch, which would make it wait."""
    from forecast.workflows.serve import INLINE_BODY, answered_on_loop

    run_dir, history = train(tmp_path, "simple_rnn")  # horizon 1: a call per step
    keras = Predictor(run_dir)
    keras.load_for_serving()
    served = Predictor(run_dir, runtime="auto")
    served.load_for_serving()
    assert answered_on_loop(served, INLINE_BODY, 8)
    assert not answered_on_loop(served, INLINE_BODY + 1, 8)
    assert not answered_on_loop(served, 100, 9)
    assert not answered_on_loop(keras, 100, 1)  # Keras: worker threads, batched calls
    stores, _ = train(tmp_path / "stores", "long_table")
    panel = Predictor(stores, runtime="auto")
    panel.load_for_serving()
    assert panel.portable and not answered_on_loop(panel, 100, 1)  # many series: threads

    served.share_model_calls()
    series = read_series(served.config.data, path=history)
    alone, _ = served.forecast(series, shared=False)
    served.shared._busy = True  # another request's batch, running
    done: list = []
    thread = threading.Thread(target=lambda: done.append(served.forecast(series, shared=False)))
    thread.start()
    thread.join(30)
    assert done and relative_gap(done[0][0], alone) == 0.0
    waiting = threading.Thread(target=lambda: done.append(served.forecast(series)), daemon=True)
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive()  # the shared path waits for the batch, as it should
    with served.shared._changed:
        served.shared._busy = False
        served.shared._changed.notify_all()
    waiting.join(30)
    assert not waiting.is_alive() and relative_gap(done[1][0], alone) == 0.0


def test_a_broken_onnx_extra_leaves_predict_and_serve_on_keras(tmp_path, monkeypatch):
    """The conversion failing outright (an onnx extra installed but broken: tf2onnx that
    fails to import) is never an error: predict writes its forecast and no model.onnx,
    serve's loading serves Keras."""
    from forecast.model import portable

    run_dir, history = train(tmp_path, "simple_rnn")

    def broken(*args, **kwargs):
        raise ImportError("tf2onnx: initialization failed")

    monkeypatch.setattr(portable, "portable_bytes", broken)
    forecast, path = api.predict(run_dir, history, output=tmp_path / "f.csv")
    assert path.is_file() and len(forecast) == 1 and not (run_dir / "model.onnx").exists()
    serving = Predictor(run_dir, runtime="auto")
    serving.load_for_serving()
    assert not serving.portable and serving.serve_bytes is None
