"""A trained Keras model as ONNX, for forecasting without TensorFlow (`predict`'s fast path).

The artifact is the bare network: scaled windows (B, L, F) in, scaled forecasts (B, h, K)
out, the same function as `model(x, training=False)`. Transforms, scaling, the recursive
loop and intervals stay in numpy, shared with the TensorFlow path, so the only numbers that
can differ are the network's own, to float rounding. Recurrent layers are converted looped
(tf2onnx turns Keras' LSTM, GRU and SimpleRNN loops into ONNX's LSTM, GRU and RNN ops:
0.3 s for two LSTM layers of 60 steps, against 4.6 s unrolled); a model that does not convert
that way is tried unrolled.

Every artifact is checked before it is kept: its forecasts of fixed windows must equal the
Keras model's to CHECK_TOLERANCE, or nothing is written. Its metadata names the model file's
sha256, the shapes and forecast's version, so a model.onnx that does not belong to the model
beside it, or was made by another version, is never used
(`forecast.forecasting.portable.open_portable`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

from forecast.model.execution import with_unroll

ARTIFACT_VERSION = "1"  # bump when what the artifact computes changes
OPSET = 17
CHECK_TOLERANCE = 1e-5  # largest difference allowed, relative to the largest forecast
CHECK_WINDOWS = 16
log = logging.getLogger("forecast")


def can_write() -> bool:
    """The onnx extra is installed (tf2onnx to write, onnxruntime to check and run)."""
    return all(importlib.util.find_spec(name) for name in ("tf2onnx", "onnxruntime"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def portable_bytes(model: Any, source_sha256: str) -> tuple[bytes | None, str]:
    """The model as checked ONNX bytes with its metadata, or (None, why not)."""
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    _, steps, features = model.input_shape
    spec = (tf.TensorSpec((None, steps, features), tf.float32, name="windows"),)
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(CHECK_WINDOWS, steps, features)).astype(np.float32)
    expected = np.asarray(model(windows, training=False))  # (B, h, K)
    why = "no conversion tried"
    for unroll in (False, True):
        try:  # tf2onnx and onnxruntime raise many kinds for graphs they cannot take
            candidate = with_unroll(model, unroll)

            def network(x: Any, candidate: Any = candidate) -> Any:
                return candidate(x, training=False)

            proto, _ = tf2onnx.convert.from_function(
                # no autograph: it would write its generated code to a temporary file
                tf.function(network, input_signature=spec, autograph=False),
                input_signature=spec,
                opset=OPSET,
            )
            _add_metadata(proto, source_sha256, model)
            data = proto.SerializeToString()
            session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
            got = session.run(None, {session.get_inputs()[0].name: windows})[0]
        except Exception as exc:
            why = f"it does not convert ({_first_line(exc)})"
            continue
        scale = max(float(np.max(np.abs(expected))), 1e-6)
        gap = float(np.max(np.abs(got - expected))) / scale if got.shape == expected.shape else 1
        if gap <= CHECK_TOLERANCE:
            return data, ""
        why = f"its forecasts differ from Keras' by {gap:.1e} (relative)"
    return None, why


def metadata(model_sha256: str, shape: tuple[int, int, int, int]) -> dict[str, str]:
    """What an artifact of the model file with this sha256 and shape (L, F, h, K) carries."""
    from forecast import __version__

    return {
        "forecast.artifact_version": ARTIFACT_VERSION,
        "forecast.version": __version__,  # a newer forecast may compute the layers otherwise
        "forecast.model_sha256": model_sha256,
        "forecast.shape": ",".join(str(n) for n in shape),
    }


def _add_metadata(proto: Any, source_sha256: str, model: Any) -> None:
    _, steps, features = model.input_shape
    _, out_steps, targets = model.output_shape
    for key, value in metadata(source_sha256, (steps, features, out_steps, targets)).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]
