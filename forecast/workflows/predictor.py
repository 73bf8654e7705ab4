"""A finished run loaded once (config, scalers, model, intervals) that forecasts the steps
after a history: what `predict` writes, `serve` answers and `export` wraps."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.config.schema import Config
from forecast.data.missing import fill_missing
from forecast.data.panel import as_panel
from forecast.data.prepare import Prepared, prepare_history, to_original
from forecast.data.ranges import outside_training_range
from forecast.data.reading import Panel, Series, SeriesId, some_ids
from forecast.data.scaling import Scaler
from forecast.data.timesteps import future_index, time_labels
from forecast.data.transforms import apply_transform, transform_lag
from forecast.errors import ConfigError, DataError, RunError
from forecast.forecasting.batching import SharedCalls
from forecast.forecasting.forecaster import Forecaster, check_steps
from forecast.forecasting.intervals import Calibration, label
from forecast.forecasting.portable import PortableForecaster, open_portable
from forecast.interrupts import tensorflow_work
from forecast.model import portable
from forecast.model.tf_setup import import_tensorflow_quietly
from forecast.runs import atomic, layout, read

log = logging.getLogger("forecast")


class Predictor:
    """A finished run loaded once: its config, scaler, model and intervals. `forecast(series,
    steps)` gives what `predict` writes; `forecast serve` answers every request with one.

    `runtime="auto"` (predict's) forecasts with the run's model.onnx where it has one that
    belongs to its model (forecast.forecasting.portable: no TensorFlow imported), else with
    Keras; `keep_portable()` then writes model.onnx for the next time. `"tensorflow"` always
    loads the Keras model (what export wraps). `load_for_serving()`: what serve runs."""

    def __init__(
        self, run: str | Path | None, runs_dir: str | Path = "runs", runtime: str = "tensorflow"
    ) -> None:
        opened = read.open_run(layout.resolve_run(run, runs_dir))
        data = opened.config.data
        self.run, self.config, self.info = opened.path, opened.config, opened.info
        self.model_path = opened.model_path
        self.runtime = runtime
        self.shared: SharedCalls | None = None  # set by share_model_calls()
        self._kept = False  # load_for_serving has tried to convert the network
        self.serve_bytes: bytes | None = None  # the ONNX model served (load_for_serving)
        # a scaler and intervals per series: a long table's by id, one series' under None
        if data.id_column is not None:
            self.scalers: dict[SeriesId, Scaler] = read.load_panel_scalers(
                opened.path / "scaler.json", data.columns
            )
            self.calibrations: dict[SeriesId, Calibration] = read.load_panel_intervals(opened.path)
            return
        scaler = Scaler.load(opened.path / "scaler.json")
        if scaler.columns != data.columns:
            raise RunError(
                f"{opened.path}: scaler.json columns do not match config.yaml; train again"
            )
        calibration = read.load_intervals(opened.path)
        self.scalers = {None: scaler}
        self.calibrations = {} if calibration is None else {None: calibration}

    def share_model_calls(self) -> None:
        """From now on, concurrent forecasts (serve's requests, each in its own thread)
        share batched model calls (forecasting.batching); the model is loaded now."""
        self.shared = SharedCalls(self.forecaster)

    @property
    def scaler(self) -> Scaler:
        """The scaler of a run on one series."""
        return self.scalers[None]

    @functools.cached_property
    def forecaster(self) -> Forecaster | PortableForecaster:
        """The model, loaded (safe mode) on first use: a bad history CSV is reported before
        TensorFlow is imported; `serve` touches it at start, so it is loaded once."""
        data = self.config.data
        if self.runtime == "auto":
            session = open_portable(self.portable_path, self.model_sha256, self.network_shape)
            if session is not None:
                return PortableForecaster(session, data.inputs, data.targets)
        import_tensorflow_quietly()
        model = read.load_model(self.model_path, self.config)
        return Forecaster(model, data.inputs, data.targets)

    @property
    def keras_model(self) -> Any:
        """The Keras model (what export wraps): a Predictor of runtime "tensorflow" has it."""
        forecaster = self.forecaster
        if not isinstance(forecaster, Forecaster):
            raise RunError(
                f"{self.run}: this Predictor runs model.onnx; open it with runtime "
                "'tensorflow' for the Keras model"
            )
        return forecaster.model

    @property
    def portable_path(self) -> Path:
        return self.run / layout.PORTABLE_MODEL

    @functools.cached_property
    def model_sha256(self) -> str:
        return portable.file_sha256(self.model_path)

    @property
    def network_shape(self) -> tuple[int, int, int, int]:
        """(L, F, h, K): input steps and columns, steps and targets of one model call."""
        window, data = self.config.window, self.config.data
        return window.input_steps, len(data.inputs), window.output_steps, len(data.targets)

    def keep_portable(self) -> None:
        """After a forecast by Keras: write model.onnx (checked against the Keras model, see
        forecast.model.portable) so that the next `predict` of this run skips TensorFlow.
        Never an error: without the onnx extra, or where it cannot be written, it says why
        and the run stays as it was."""
        forecaster = self.forecaster
        if self.runtime != "auto" or not isinstance(forecaster, Forecaster):
            return
        if not portable.can_write():
            log.debug("model.onnx not written: the onnx extra is not installed")
            return
        if not os.access(self.run, os.W_OK):  # before the conversion, which would be wasted
            log.info("%s not written (the run folder is read-only)", self.portable_path)
            return
        data, why = self._converted(forecaster)
        if data is None:
            log.info("%s not written (%s): predict keeps using TensorFlow", self.portable_path, why)
            return
        try:
            atomic.write_atomic(self.portable_path, lambda tmp: tmp.write_bytes(data))
        except OSError as exc:
            log.info(
                "%s not written (%s): predict keeps using TensorFlow",
                self.portable_path,
                exc.strerror,
            )
            return
        log.info(
            "kept %s: later predicts of this run run it with onnxruntime, without TensorFlow",
            self.portable_path,
        )

    def load_for_serving(self, onnx: bytes | None = None) -> None:
        """The model, loaded before the first request. With runtime "auto", as ONNX on
        onnxruntime: the run's model.onnx, else the network converted now, in memory (and
        checked against Keras, as predict checks the model.onnx it writes; serve writes
        nothing); a request's model call then costs ~0.1 ms instead of TensorFlow's ~2 ms.
        `onnx`: the bytes the first process serves (`serve_bytes`), for its `--workers`
        processes, which then load no TensorFlow. One onnxruntime thread: a server's
        processes are its parallelism (a pool of one thread per core, spinning while it
        waits, took the cores from the other processes and roughly halved their
        requests/s). Where nothing converts, Keras serves."""
        loaded = self.__dict__.get("forecaster")  # loaded before: as Keras, or from model.onnx
        if onnx is None and self.runtime == "auto" and not isinstance(loaded, Forecaster):
            if self.serve_bytes is None:
                with contextlib.suppress(OSError):  # none, or unreadable: as if there were none
                    onnx = self.portable_path.read_bytes()  # read once: opened from these bytes
                if onnx is not None:
                    self._serve_onnx(onnx)  # not this model's: converted below, as predict does
        elif onnx is not None and not self._serve_onnx(onnx):
            raise RunError(f"{self.model_path}: not the model the ONNX bytes were made from")
        if self.serve_bytes is None and self.runtime == "auto" and not self._kept:
            self._kept = True  # tried once: a second call says nothing again
            self._convert_for_serving()
        forecaster = self.forecaster  # loaded now (Keras where nothing above served ONNX)
        if self.shared is not None and self.shared.forecaster is not forecaster:
            self.share_model_calls()  # shared before: the batches go to the model now served

    def _serve_onnx(self, data: bytes) -> bool:
        """Serve `data` (ONNX) if it is this model's: True; False otherwise."""
        session = open_portable(data, self.model_sha256, self.network_shape, threads=1)
        if session is None:
            return False
        config = self.config.data
        self.__dict__["forecaster"] = PortableForecaster(session, config.inputs, config.targets)
        self.serve_bytes = data
        return True

    def _convert_for_serving(self) -> None:
        forecaster = self.forecaster
        if not isinstance(forecaster, Forecaster) or not portable.can_write():
            return
        converted, why = self._converted(forecaster)
        if converted is None or not self._serve_onnx(converted):
            log.info("serving with Keras (the network as ONNX: %s)", why or "not opened")

    def _converted(self, forecaster: Forecaster) -> tuple[bytes | None, str]:
        """The Keras network as checked ONNX bytes, or (None, why not). Never an error: an
        onnx extra that is installed but broken (tf2onnx failing to import, say) leaves
        predict and serve on Keras, as they were."""
        try:
            with tensorflow_work():
                return portable.portable_bytes(forecaster.model, self.model_sha256)
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}".splitlines()[0][:200]

    @property
    def portable(self) -> bool:
        """It forecasts with model.onnx (onnxruntime), not with Keras."""
        return isinstance(self.forecaster, PortableForecaster)

    @property
    def needs_targets(self) -> bool:
        """Differences are summed onto the targets' last values: the history needs them."""
        return transform_lag(self.config.data.transform) > 0

    def forecast(
        self,
        series: Series | Panel,
        steps: int | None = None,
        asked_as: str = "--horizon {}",
        shared: bool = True,
    ) -> tuple[pd.DataFrame, list[str]]:
        """The next `steps` (default: the config's horizon) after the last row of `series`:
        (time column, then per target its column and `<target>_lo_L`, `<target>_hi_L` per
        interval level; original units), and the warnings to tell the user, which name the
        steps asked for as `asked_as` does (the CLI's option; `horizon={}` over HTTP).

        For a long table (a `Panel`), every series in it is forecast: the id column comes
        first. A series the model never saw is scaled on its own history and has no
        intervals (a warning says so). After `share_model_calls()`, the model call joins
        the batches of concurrent forecasts, unless `shared` is False (it then runs at once,
        never waiting for another caller's batch)."""
        steps = self.config.window.horizon if steps is None else steps
        data = self.config.data  # checked before any work, in the words of the request
        check_steps(data.inputs, data.targets, self.config.window.output_steps, steps, asked_as)
        frame, warnings = self._forecast_series(as_panel(series), steps, shared)
        trained = self.config.window.horizon
        if steps > trained:  # said once, for every series
            warnings.insert(
                0,
                f"{asked_as.format(steps)} goes past the trained horizon {trained}: steps "
                f"{trained + 1}-{steps} are forecast recursively, from the model's own "
                "predictions fed back as inputs",
            )
        return frame, warnings

    def _forecast_series(
        self, panel: Panel, steps: int, shared: bool = True
    ) -> tuple[pd.DataFrame, list[str]]:
        """Every series of `panel` (one series: a table of one) from one batched model call."""
        data = self.config.data
        frames, warnings, unseen, outside = [], [], [], []
        short: list[SeriesId] = []
        histories: dict[SeriesId, Prepared] = {}
        for sid, series in panel.members.items():
            scaler = self.scalers.get(sid)
            try:
                if scaler is None:
                    scaler = _own_scaler(self.config, series)
                histories[sid] = prepare_history(self.config, series, scaler)
            except DataError as exc:
                if len(panel.members) == 1:
                    raise
                short.append(sid)
                reason = str(exc)
        if short and not histories:
            raise DataError(f"{panel.path}: no series can be forecast; the first: {reason}")
        # one batched model call for every series: each history is exactly one window
        steps_in = self.config.window.input_steps
        windows = np.stack([h.features[-steps_in:] for h in histories.values()])  # (N, L, F)
        call = self.shared if shared and self.shared is not None else self.forecaster
        scaled = call(windows, steps)  # (N, steps, K)
        for n, (sid, history) in enumerate(histories.items()):
            series = panel.members[sid]
            last = np.array([len(history.scaled) - 1])
            future = to_original(history, scaled[n : n + 1], last)[0]  # (steps, K)
            frame, said = self._frame(series, history, future, self.calibrations.get(sid))
            if sid not in self.scalers:
                unseen.append(sid)
            if sid is not None:  # a long table's: the id column first
                frame.insert(0, data.id_column, sid)
            frames.append(frame)
            ranges = [w for w in said if w.startswith(series.source)]  # outside_training_range
            outside += [(sid, w) for w in ranges]
            warnings += [w for w in said if w not in warnings and w not in ranges]
        far = list(dict.fromkeys(sid for sid, _ in outside))
        if len(far) > 3:  # one line, not one per series
            warnings.insert(
                0,
                f"{panel.path}: the recent values of {len(far)} series ({some_ids(far)}) lie "
                "outside anything the model saw of them in training; without window_norm the "
                "network's inputs are then outside its scalers' range, so its forecasts there "
                "are extrapolation",
            )
        else:
            warnings[:0] = [w for _, w in outside]
        if short:
            warnings.append(
                f"{len(short)} series left out ({some_ids(short)}): {reason.split(': ', 1)[-1]}"
            )
        if unseen:
            warnings.append(
                f"{len(unseen)} series not in training ({some_ids(unseen)}): forecast from "
                "their own history, "
                "scaled on it, without intervals (the model has no series id feature)"
            )
        if len(frames) == 1:
            return frames[0], warnings
        return pd.concat(frames, ignore_index=True), warnings

    def _frame(
        self, series: Series, history: Prepared, future: np.ndarray, calibration: Calibration | None
    ) -> tuple[pd.DataFrame, list[str]]:
        """The forecast (steps, K) after `history`'s last row as forecast.csv's rows, with
        its intervals, and the warnings to tell the user."""
        cfg, data = self.config, self.config.data
        steps, last = len(future), np.array([len(history.scaled) - 1])
        warnings = outside_training_range(history)
        time_name = data.time_column or "step"
        columns: dict[str, Any] = {time_name: time_labels(future_index(series.index, steps))}
        bounds = None
        levels = cfg.intervals if self.calibration_known else []
        if calibration is not None:
            # the last origin's window scale; a target that is no input is not scaled (and
            # may be missing from the CSV), so its column is never read
            recent = np.column_stack(
                [
                    history.values[:, history.columns.index(t)]
                    if t in history.columns
                    else np.zeros(len(history.values))
                    for t in data.targets
                ]
            )  # (rows, K)
            scales = calibration.scales(recent, last + history.lag)
            bounds = calibration.bounds(future[None], scales)
            if steps > calibration.steps:
                warnings.append(
                    f"intervals are calibrated for steps 1-{calibration.steps} only; later "
                    "steps have empty bounds"
                )
        empty = np.full(steps, np.nan)
        for k, target in enumerate(data.targets):
            columns[target] = future[:, k]
            for i, level in enumerate(levels):
                lo, hi = (empty, empty) if bounds is None else (b[i, 0, :, k] for b in bounds)
                columns[f"{target}_lo_{label(level)}"] = lo
                columns[f"{target}_hi_{label(level)}"] = hi
        return pd.DataFrame(columns), warnings  # one frame built at once: serve's hot path

    @property
    def calibration_known(self) -> bool:
        """The run has intervals (for a long table: for some series)."""
        return bool(self.calibrations)


def _own_scaler(config: Config, series: Series) -> Scaler:
    """The scaler of a series the run never trained on: fitted on the rows given."""

    data, scaling = config.data, config.scaling
    if list(series.frame.columns) != data.columns:
        missing = [c for c in data.columns if c not in series.frame.columns]
        raise ConfigError(
            f"{series.source}: was not in training, so it is scaled on its own history, "
            f"which needs the column '{missing[0]}' too"
        )
    values = fill_missing(series.values, [len(series.frame)])
    if len(values) < config.window.input_steps + transform_lag(data.transform):
        return Scaler.fit(
            np.zeros((1, len(data.columns))), data.columns
        )  # prepare_history says why
    work = apply_transform(values, data.transform, data.columns, series.index, series.source)
    return Scaler.fit(work, data.columns, scaling.method, scaling.feature_range)
