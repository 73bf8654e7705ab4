"""`forecast export`: a run's model with its preprocessing inside, as SavedModel, TFLite or ONNX.

The artifact has one endpoint, `serve`: raw recent values in original units in, forecasts in
original units out. Inside the graph, in the order `predict` applies them: the transform
(log, differences), the run's saved scaling, the model (per-window normalisation, residual
base and ensemble median are layers of it), the recursive loop when the horizon is longer
than one model call, the inverse scaling and the inverse transform.

    values (B, R, F) float32 -> forecast (B, H, K) float32

R is `window.input_steps`, plus one row with a differencing transform (the first difference
needs the row before the window); F the features in config order; H the config's horizon; K
the targets. Prediction intervals are not part of the artifact (`predict` and `serve` give
them).

Shape legend: B origins, R raw rows, L input steps, F features, h steps one model call
emits, K targets, H horizon.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forecast.data.transforms import transform_lag
from forecast.errors import ConfigError
from forecast.forecasting.forecaster import check_steps, feedback_index
from forecast.model.execution import with_unroll
from forecast.runs import layout
from forecast.workflows.predictor import Predictor

if TYPE_CHECKING:  # export imports what it needs as it goes
    from forecast.config.schema import Config
    from forecast.data.scaling import Scaler

FORMATS = ("saved_model", "tflite", "onnx")
DEFAULT_NAMES = {"saved_model": "saved_model", "tflite": "model.tflite", "onnx": "model.onnx"}
ONNX_OPSET = 17
log = logging.getLogger("forecast")


def input_rows(config: Config) -> int:
    """Raw rows the artifact takes per origin: the window, plus one for differences."""

    return config.window.input_steps + transform_lag(config.data.transform)


def serving_function(model: Any, config: Config, scaler: Scaler) -> Any:
    """A function of raw values (B, R, F) -> forecast (B, H, K), all in TensorFlow ops."""
    import tensorflow as tf

    data, window = config.data, config.window
    kind, lag = data.transform, transform_lag(data.transform)
    features, targets, inputs = data.features, data.targets, data.inputs
    known = len(inputs) - len(features)  # calendar columns, after the features
    steps, per_call = window.horizon, window.output_steps
    check_steps(inputs, targets, per_call, steps, "window.horizon {}")
    calls = math.ceil(steps / per_call)
    feedback = feedback_index(inputs, targets)
    if lag and not set(targets) <= set(features):
        missing = next(t for t in targets if t not in features)
        raise ConfigError(
            f"cannot export: data.transform {kind} sums the forecast differences onto each "
            f"target's last value, and target '{missing}' is no feature, so the artifact "
            "would not see it; export a run with transform none or log, or with every "
            "target among data.features"
        )

    feature_scaler, target_scaler = scaler.subset(inputs), scaler.subset(targets)
    affine = {
        name: np.asarray(values, dtype=np.float32)
        for name, values in (
            ("f_scale", feature_scaler.scale),
            ("f_offset", feature_scaler.offset),
            ("t_scale", target_scaler.scale),
            ("t_offset", target_scaler.offset),
        )
    }
    level_index = [features.index(t) for t in targets] if lag else []
    input_steps, n_features = window.input_steps, len(inputs)

    def serve(values: Any) -> Any:  # (B, R, F) original units (and the calendar columns)
        # made inside the traced function: constants of the graph, not captured inputs
        # (which tf2onnx would turn into inputs of the ONNX model)
        f_scale, f_offset, t_scale, t_offset = (tf.constant(v) for v in affine.values())
        calendar = values[:, lag:, len(features) :]  # never transformed
        x = values[:, :, : len(features)] if known else values
        x = tf.math.log(x) if kind in ("log", "log_diff") else x
        if lag:
            levels = tf.gather(x[:, -1, :], level_index, axis=1)  # (B, K) transformed level
            x = x[:, 1:, :] - x[:, :-1, :]  # (B, L, F)
        if known:
            x = tf.concat([x, calendar], axis=2)
        x = x * f_scale + f_offset  # scaled, as the model was trained
        outputs = []
        for call in range(calls):  # a static count: no while loop in the graph
            predicted = model(x, training=False)  # (B, h, K)
            outputs.append(predicted)
            if call < calls - 1:
                fed = tf.gather(predicted, feedback, axis=2)  # (B, h, F)
                x = tf.concat([x, fed], axis=1)[:, -input_steps:, :]  # (B, L, F)
                x = tf.reshape(x, (-1, input_steps, n_features))  # static L (TFLite has no
                # EnsureShape)
        y = tf.concat(outputs, axis=1)[:, :steps, :]  # (B, H, K) scaled
        y = (y - t_offset) / t_scale
        if lag:
            y = levels[:, None, :] + tf.cumsum(y, axis=1)
        if kind in ("log", "log_diff"):
            y = tf.exp(y)
        return y  # (B, H, K) original units

    return serve


def export_run(
    run: str | Path | None,
    fmt: str,
    output: str | Path | None = None,
    runs_dir: str | Path = "runs",
) -> Path:
    """Write the artifact of `run` in `fmt`; returns its path (default RUN_DIR/export/...)."""

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    predictor = Predictor(run, runs_dir)  # the run's files checked as predict checks them
    if predictor.config.data.id_column is not None:
        raise ConfigError(
            f"{predictor.run.name}: a run on a long table (data.id_column) scales every series "
            "its own way; export does not carry those scalers yet: use forecast predict or "
            "forecast serve"
        )
    config, scaler = predictor.config, predictor.scaler
    out = Path(output) if output is not None else predictor.run / "export" / DEFAULT_NAMES[fmt]
    _check_output(out, fmt, predictor.run, Path(predictor.config.data.path))
    if fmt == "onnx":
        _require_onnx()
    model = predictor.keras_model
    if fmt != "saved_model":
        # a looping recurrent layer needs TensorFlow's tensor-list ops, which TFLite has only
        # as Select TF ops (the Flex delegate, not in the pip package's interpreter);
        # unrolled over its static steps it is plain matmuls that every runtime has
        model = with_unroll(model, True)
    serve = serving_function(model, config, scaler)
    rows, n_features = input_rows(config), len(config.data.inputs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return _build(model, serve, config, fmt, rows, n_features, out)
    except OSError as exc:
        raise ConfigError(f"--output {out}: cannot write there ({exc.strerror})") from None


def _build(
    model: Any, serve: Any, config: Config, fmt: str, rows: int, n_features: int, out: Path
) -> Path:
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as tmp:
        saved = Path(tmp) / "saved_model"
        _write_saved_model(model, serve, rows, n_features, saved)
        if fmt == "saved_model":
            built = saved
        elif fmt == "tflite":
            built = Path(tmp) / "model.tflite"
            built.write_bytes(_tflite_bytes(saved))
        else:
            built = Path(tmp) / "model.onnx"
            _write_onnx(serve, rows, n_features, built)
        _replace(built, out, Path(tmp) / "replaced")
    log.info(
        "%s: values (batch, %d, %d) float32, raw %s -> forecast (batch, %d, %d) in original "
        "units: %s",
        fmt,
        rows,
        n_features,
        ", ".join(config.data.inputs),
        config.window.horizon,
        len(config.data.targets),
        ", ".join(config.data.targets),
    )
    return out


def _write_saved_model(model: Any, serve: Any, rows: int, n_features: int, path: Path) -> None:
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec((None, rows, n_features), tf.float32, name="values")
    archive.add_endpoint(name="serve", fn=serve, input_signature=[spec])
    archive.write_out(str(path), verbose=False)


def _tflite_bytes(saved: Path) -> bytes:
    """TFLite builtin ops only, so that any TFLite runtime runs it (no Flex delegate)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serve"])
    try:
        return converter.convert()
    except Exception as exc:  # ConverterError and others, for ops TFLite lacks
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"--format tflite: this model needs ops TFLite's builtins lack ({first[:160]}); "
            "use --format saved_model"
        ) from None


def _require_onnx() -> None:

    if importlib.util.find_spec("tf2onnx") is None:  # not imported: it imports TensorFlow
        raise ConfigError(
            "--format onnx needs the onnx extra: pip install 'forecast[onnx]' (or use "
            "--format saved_model or tflite)"
        )


def _write_onnx(serve: Any, rows: int, n_features: int, path: Path) -> None:
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, rows, n_features), tf.float32, name="values"),)
    function = tf.function(serve, input_signature=spec)
    tf2onnx.convert.from_function(
        function, input_signature=spec, opset=ONNX_OPSET, output_path=str(path)
    )


def _check_output(out: Path, fmt: str, run: Path, data: Path) -> None:
    """Refuse, before any work, an output that is not this format's kind of path, a file of
    a run (other than the run's own export/) or the run's data file, and never replace a
    folder that is not a SavedModel."""
    if fmt == "saved_model":
        if out.is_file():
            raise ConfigError(
                f"--output {out}: is a file; a SavedModel is a folder, give a new path"
            )
        if out.is_dir() and any(out.iterdir()) and not (out / "saved_model.pb").is_file():
            raise ConfigError(
                f"--output {out}: is a folder that holds no SavedModel; give a new path"
            )
    elif out.is_dir():
        raise ConfigError(f"--output {out}: is a folder; give a file path for {fmt}")
    layout.refuse_overwrite(out, "--output", run, ("export",), inputs=(data,))


def _replace(built: Path, out: Path, parked: Path) -> None:
    """Move the finished artifact to `out`. An older artifact there is first parked inside
    the temporary folder (removed with it), and put back if the move fails."""
    if out.exists():
        out.rename(parked)
    try:
        shutil.move(str(built), str(out))
    except BaseException:
        if parked.exists() and not out.exists():
            parked.rename(out)
        raise
