"""Reading finished runs: open_run (config and run.json), the model (safe mode, its shape
checked against the config), the scalers and intervals of a long table, and the table
`forecast runs` prints. Whatever a damaged or foreign file makes fail is a RunError that says
to train the run again; any other exception is a bug and left to rise.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from forecast.config.file import validate_config
from forecast.config.schema import Config
from forecast.data.reading import SeriesId
from forecast.data.scaling import Scaler
from forecast.errors import ConfigError, RunError
from forecast.forecasting.intervals import Calibration
from forecast.runs.layout import FORMAT_VERSION, finished_runs, is_backtest, missing_files

log = logging.getLogger("forecast")

# What Keras 3 raises for a damaged or foreign .keras file (each seen on one): ValueError for
# a file that is no zip at all (truncated, garbage: "File not found"), an unknown layer, bad
# layer arguments or a Lambda in safe mode; zipfile.BadZipFile for damaged bytes inside the
# archive (a bad CRC); KeyError for an archive without config.json; json's ValueError for a
# config.json that is no JSON; TypeError for a config of the wrong shape (Keras wraps a
# layer's failing from_config in one); OSError from h5py for damaged weights.
# Anything else is a bug, ours or Keras's: exit 1, not "train the run again".
KERAS_FILE_ERRORS = (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile)


@dataclass
class Run:
    path: Path
    config: Config
    info: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"


def load_panel_scalers(path: Path, columns: list[str]) -> dict[SeriesId, Scaler]:
    """A long table's scaler.json: id -> Scaler."""
    scalers: dict[SeriesId, Scaler]
    try:
        series = _series(json.loads(path.read_text(encoding="utf-8")))
        scalers = {str(sid): Scaler.from_dict(entry, str(path)) for sid, entry in series.items()}
    except FileNotFoundError:
        raise RunError(f"{path}: missing; the run is incomplete, train it again") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path}: unreadable scaler ({exc!r}); train the run again") from None
    if not scalers or any(s.columns != columns for s in scalers.values()):
        raise RunError(f"{path}: scaler columns do not match config.yaml; train again")
    return scalers


def load_panel_intervals(run_dir: Path) -> dict[SeriesId, Calibration]:
    """A long table's intervals.json: id -> Calibration ({} for a run without them)."""

    path = run_dir / "intervals.json"
    if not path.is_file():
        return {}
    try:
        series = _series(json.loads(path.read_text(encoding="utf-8")))
        return {str(sid): Calibration.from_json(entry) for sid, entry in series.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path}: unreadable ({exc}); train the run again") from None


def _series(data: Any) -> dict[str, Any]:
    """A long table's scaler.json or intervals.json: its "series" mapping, id -> entry;
    KeyError or TypeError if the file holds something else."""
    series = data["series"]
    if not isinstance(series, dict):
        raise TypeError(f"'series' is a {type(series).__name__}, not a mapping of ids")
    return series


def load_intervals(run_dir: Path) -> Calibration | None:
    """The run's calibrated intervals (intervals.json), or None for a run without them."""

    path = run_dir / "intervals.json"
    if not path.is_file():
        return None
    try:
        return Calibration.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path}: unreadable ({exc}); train the run again") from None


def open_run(path: Path) -> Run:
    """Check the files and read config.yaml and run.json (the model is loaded separately)."""
    missing = missing_files(path)
    if missing:
        raise RunError(f"{path}: incomplete run (no {missing[0]}); train it again")
    try:
        info = _read_json(path, "run.json")
        version = info.get("format_version") if isinstance(info, dict) else None
        if version != FORMAT_VERSION:
            raise RunError(
                f"{path}: run format {version!r} is not supported by this forecast "
                f"(needs {FORMAT_VERSION}); train the run again with this version"
            )
        config = _read_config(path)
    except _Unreadable as exc:
        raise RunError(f"{path / exc.name}: {exc.why}; {exc.advice}") from None
    return Run(path, config, info)


class _Unreadable(Exception):
    """A file of a run that cannot be used: its `name` in the run folder, `why` in one line,
    and the `advice` open_run gives with it."""

    def __init__(self, name: str, why: str, advice: str = "train the run again") -> None:
        super().__init__(f"{name}: {why}")
        self.name, self.why, self.advice = name, why, advice


def _read_json(folder: Path, name: str, mapping: bool = False) -> Any:
    """A JSON file of a run (with `mapping`, one that must hold an object)."""
    try:
        data = json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _Unreadable(name, f"unreadable ({exc})") from None
    if mapping and not isinstance(data, dict):
        raise _Unreadable(name, f"unreadable (a JSON {type(data).__name__}, not an object)")
    return data


def _read_config(folder: Path) -> Config:
    """A run's config.yaml, validated as this version validates a config file."""
    path = folder / "config.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:  # YAML's own message spans lines
        raise _Unreadable(path.name, f"unreadable ({_first_line(exc)})", "train again") from None
    if not isinstance(raw, dict):
        raise _Unreadable(path.name, "not a config mapping")
    try:
        return validate_config(raw, source=str(path))
    except ConfigError as exc:
        why = str(exc).removeprefix(f"{path}: ")
        advice = "the run does not match this version, train it again"
        raise _Unreadable(path.name, why, advice) from None


def load_model(path: Path, config: Config | None = None) -> Any:
    """Keras native format, safe mode: a model carrying Python code (Lambda) is refused.
    With `config` (the run's), a model whose input or output shape is not the config's
    (another run's model.keras copied in) is refused too."""
    import keras

    from forecast.model.layers import register

    register()  # our own layers (per-window normalisation) are known before loading
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except KERAS_FILE_ERRORS as exc:
        first = _first_line(exc)
        if "safe_mode" in str(exc):  # a Lambda layer: code that safe mode never runs
            raise RunError(
                f"{path}: refused by safe mode, it carries Python code ({first[:160]}); "
                "train the run again"
            ) from None
        raise RunError(
            f"{path}: corrupted or incomplete, Keras cannot load it ({first[:160]}); "
            "train the run again"
        ) from None
    if config is not None:
        _check_model_shapes(model, path, config)
    return model


def _first_line(exc: BaseException) -> str:
    """An exception's message in one line: its first (or its type's name if it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_model_shapes(model: Any, path: Path, config: Config) -> None:
    """The model takes (None, input_steps, inputs) and gives (None, output steps, targets),
    as the run's config says; else it is another run's."""
    data, window = config.data, config.window
    expected = {
        "input steps": (model.input_shape, 1, window.input_steps),
        "output steps": (model.output_shape, 1, window.output_steps),
        "targets": (model.output_shape, 2, len(data.targets)),
    }
    if data.calendar != "auto":  # the calendar's columns are known: the inputs are too
        expected["input columns"] = (model.input_shape, 2, len(data.inputs))
    for what, (shape, axis, wanted) in expected.items():
        three_axes = isinstance(shape, tuple) and len(shape) == 3
        has = shape[axis] if three_axes else None
        if three_axes and has is None:
            continue  # a length the model leaves open fits any config
        if has != wanted:
            takes = "takes" if what.startswith("input") else "gives"
            said = f"it {takes} {has} {what}" if has is not None else f"its shape is {shape}"
            raise RunError(
                f"{path} does not belong to this run ({said}, the config says {wanted}); "
                "put back the run's own model.keras or train the run again"
            )


def run_summaries(runs_dir: Path) -> pd.DataFrame:
    """Finished training runs and backtests, oldest first: run, kind (train or backtest),
    finished (UTC), layout, model, MASE, seasonal naive MASE (a training run's on its test
    split; a backtest's the mean over its folds). A folder whose run.json or metrics.json
    (a backtest's backtest.json or config.yaml) cannot be read is not listed: a warning
    names it and what is wrong."""
    rows = [_listed(path, _run_summary) for path in finished_runs(runs_dir)]
    if runs_dir.is_dir():
        found = (p for p in runs_dir.iterdir() if not p.name.startswith(".") and is_backtest(p))
        rows += [_listed(path, _backtest_summary) for path in sorted(found)]
    listed = [row for row in rows if row is not None]
    listed.sort(key=lambda row: row["finished"])  # stable: runs finished alike keep their order
    columns = ["run", "kind", "finished", "layout", "model", "mase", "seasonal_naive_mase"]
    return pd.DataFrame(listed, columns=columns)


def _listed(path: Path, summary: Callable[[Path], dict[str, Any]]) -> dict[str, Any] | None:
    """`summary(path)`, or None with a warning when a file of the run cannot be read."""
    try:
        return summary(path)
    except _Unreadable as exc:
        log.warning("%s: %s, not listed; train it again or delete it", path, exc)
        return None


def _run_summary(path: Path) -> dict[str, Any]:
    """A training run's row of run_summaries. Its config.yaml is not read: PyYAML takes some
    10 ms for one, and predict or plot names a damaged one (exit 2)."""
    info = _read_json(path, "run.json", mapping=True)
    metrics = _read_json(path, "metrics.json", mapping=True)
    return {
        "run": path.name,
        "kind": "train",
        "finished": str(info.get("finished", ""))[:19].replace("T", " "),
        "layout": metrics.get("layout"),
        "model": info.get("model"),
        "mase": _entry(metrics, "model", "mase"),
        "seasonal_naive_mase": _entry(metrics, "baselines", "seasonal_naive", "mase"),
    }


def _backtest_summary(path: Path) -> dict[str, Any]:
    """A backtest's row of run_summaries. Finished: when backtest.json was written (the
    folder is renamed into place right after)."""
    report = _read_json(path, "backtest.json", mapping=True)
    if "mean" not in report:
        raise _Unreadable("backtest.json", "no 'mean' over the folds")
    try:
        written = (path / "backtest.json").stat().st_mtime
    except OSError as exc:  # removed meanwhile
        raise _Unreadable("backtest.json", f"unreadable ({exc})") from None
    finished = datetime.fromtimestamp(written, timezone.utc)
    return {
        "run": path.name,
        "kind": "backtest",
        "finished": finished.isoformat()[:19].replace("T", " "),
        "layout": report.get("layout"),
        "model": _read_config(path).model.describe(),  # as a training run's run.json names it
        "mase": _entry(report, "mean", "model", "mase"),
        "seasonal_naive_mase": _entry(report, "mean", "baselines", "seasonal_naive", "mase"),
    }


def _entry(data: dict[str, Any], *keys: str) -> Any:
    """data[k1][k2]...; None where a key is missing or a level is not a mapping."""
    node: Any = data
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node
