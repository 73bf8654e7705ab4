"""Forecasting without TensorFlow: a run's model.onnx run by onnxruntime.

`forecast predict` spends most of its time importing TensorFlow (5 s of 6 on 2 cores) to
call a small network once. The first predict of a run keeps the network as model.onnx beside
model.keras (forecast.model.portable writes and checks it); later ones open it here, with
onnxruntime, and never import TensorFlow. The recursive loop is the same as
`Forecaster`'s, in numpy: the network's outputs are fed back as inputs when more steps are
asked than one call emits.

Shape legend: B origins, L input steps, F features, h output steps, K targets.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np

from forecast.forecasting.forecaster import DEFAULT_BATCH, check_steps, feedback_index
from forecast.model.portable import metadata


def can_run() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


class PortableForecaster:
    """`forecaster(windows, steps)` -> (B, steps, K) scaled, as `Forecaster` gives it."""

    def __init__(self, session: Any, features: list[str], targets: list[str]) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.features, self.targets = features, targets
        shape = session.get_modelmeta().custom_metadata_map["forecast.shape"]
        self.input_steps, self.n_features, self.output_steps, self.n_targets = (
            int(n) for n in shape.split(",")
        )
        self.feedback = feedback_index(features, targets)

    def __call__(
        self,
        windows: np.ndarray,
        steps: int,
        batch_size: int = DEFAULT_BATCH,
        jit: bool | None = None,  # accepted as Forecaster does; no compiler here
    ) -> np.ndarray:
        """windows (B, L, F) scaled -> (B, steps, K) scaled."""
        check_steps(self.features, self.targets, self.output_steps, steps)
        calls = math.ceil(steps / self.output_steps)
        windows = np.asarray(windows, dtype=np.float32)
        out = [
            self._loop(windows[start : start + batch_size], calls)
            for start in range(0, len(windows), batch_size)
        ]
        if not out:
            return np.empty((0, steps, self.n_targets), dtype=np.float32)
        return np.concatenate(out)[:, :steps, :]

    def _loop(self, window: np.ndarray, calls: int) -> np.ndarray:
        outputs = []
        for call in range(calls):
            predicted = self.session.run(None, {self.input_name: window})[0]  # (B, h, K)
            outputs.append(predicted)
            if call < calls - 1:
                assert self.feedback is not None  # check_steps refused it otherwise
                fed = predicted[:, :, self.feedback]  # (B, h, F)
                window = np.concatenate([window, fed], axis=1)[:, -self.input_steps :, :]
        return np.concatenate(outputs, axis=1)  # (B, calls*h, K)

    def jit_for(self, steps: int, origins: int) -> bool:
        return False


def open_portable(
    source: Path | bytes,
    model_sha256: str,
    shape: tuple[int, int, int, int],
    threads: int | None = None,
) -> Any | None:
    """An onnxruntime session of `source` (a model.onnx file, or its bytes) if it is this
    model's artifact (the model file's sha256, the config's shapes, this version's format);
    None otherwise, or when it cannot be opened: the caller then uses TensorFlow. `threads`:
    onnxruntime's threads per call (None: its default, one per core, which wait for work
    spinning; serve runs one, see Predictor.load_for_serving)."""
    if (isinstance(source, Path) and not source.is_file()) or not can_run():
        return None
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(
            source if isinstance(source, bytes) else str(source),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
    except Exception:  # onnxruntime raises its own kinds for a corrupt or foreign file
        return None
    meta = session.get_modelmeta().custom_metadata_map
    if any(meta.get(key) != value for key, value in metadata(model_sha256, shape).items()):
        return None
    return session
