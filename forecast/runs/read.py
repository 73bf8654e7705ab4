"""Reading finished runs: open_run (config and run.json), the model (safe mode, its shape
checked against the config), the scalers and intervals of a long table, and the table
`forecast runs` prints. Whatever a damaged or foreign file makes fail is a RunError that says
to train the run again; any other exception is a bug and left to rise.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from forecast.config.file import validate_config
from forecast.config.schema import Config
from forecast.errors import ConfigError, RunError
from forecast.runs.layout import FORMAT_VERSION, finished_runs, is_backtest, missing_files

# What Keras raises for a damaged or foreign .keras file (each seen on one): ValueError for
# a file that is no zip at all (truncated, garbage: "File not found"), an unknown layer, bad
# layer arguments or a Lambda in safe mode; zipfile.BadZipFile for damaged bytes inside the
# archive (a bad CRC); KeyError for an archive without config.json; json's ValueError for a
# config.json that is no JSON; TypeError for a config of the wrong shape (Keras wraps a
# layer's failing from_config in one); OSError from h5py for damaged weights; EOFError for a
# compressed member cut short. Anything else is a bug of ours or of Keras: not "train again".
KERAS_FILE_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile)


@dataclass
class Run:
    path: Path
    config: Config
    info: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"


def load_panel_scalers(path: Path, columns: list[str]) -> dict[str, Any]:
    """A long table's scaler.json: id -> Scaler."""
    from forecast.data.scaling import Scaler

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


def load_panel_intervals(run_dir: Path) -> dict[str, Any]:
    """A long table's intervals.json: id -> Calibration ({} for a run without them)."""
    from forecast.forecasting.intervals import Calibration

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


def load_intervals(run_dir: Path) -> Any:
    """The run's calibrated intervals (intervals.json), or None for a run without them."""
    from forecast.forecasting.intervals import Calibration

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
        info = json.loads((path / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{path / 'run.json'}: unreadable ({exc}); train the run again") from None
    version = info.get("format_version") if isinstance(info, dict) else None
    if version != FORMAT_VERSION:
        raise RunError(
            f"{path}: run format {version!r} is not supported by this forecast "
            f"(needs {FORMAT_VERSION}); train the run again with this version"
        )
    try:
        raw = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RunError(f"{path / 'config.yaml'}: unreadable ({exc}); train again") from None
    if not isinstance(raw, dict):
        raise RunError(f"{path / 'config.yaml'}: not a config mapping; train the run again")
    try:
        config = validate_config(raw, source=str(path / "config.yaml"))
    except ConfigError as exc:
        raise RunError(f"{exc}; the run does not match this version, train it again") from None
    return Run(path, config, info)


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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
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
    split; a backtest's the mean over its folds)."""
    rows = []
    for path in finished_runs(runs_dir):
        try:
            info = json.loads((path / "run.json").read_text(encoding="utf-8"))
            metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        rows.append(
            {
                "run": path.name,
                "kind": "train",
                "finished": str(info.get("finished", ""))[:19].replace("T", " "),
                "layout": metrics.get("layout"),
                "model": info.get("model"),
                "mase": metrics.get("model", {}).get("mase"),
                "seasonal_naive_mase": (
                    metrics.get("baselines", {}).get("seasonal_naive") or {}
                ).get("mase"),
            }
        )
    if runs_dir.is_dir():
        found = (p for p in runs_dir.iterdir() if not p.name.startswith(".") and is_backtest(p))
        rows += [row for row in map(_backtest_summary, sorted(found)) if row is not None]
    rows.sort(key=lambda row: row["finished"])  # stable: runs finished alike keep their order
    columns = ["run", "kind", "finished", "layout", "model", "mase", "seasonal_naive_mase"]
    return pd.DataFrame(rows, columns=columns)


def _backtest_summary(path: Path) -> dict[str, Any] | None:
    """A backtest's row of run_summaries; None if its backtest.json is unreadable. Finished:
    when backtest.json was written (the folder is renamed into place right after)."""
    report_path = path / "backtest.json"
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        mean = report["mean"]
        finished = datetime.fromtimestamp(report_path.stat().st_mtime, timezone.utc)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:  # the model as a training run names it (run.json's "model")
        raw = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
        source = str(path / "config.yaml")
        model = validate_config(raw, source).model.describe() if isinstance(raw, dict) else None
    except (OSError, yaml.YAMLError, ConfigError):
        model = None
    return {
        "run": path.name,
        "kind": "backtest",
        "finished": finished.isoformat()[:19].replace("T", " "),
        "layout": report.get("layout"),
        "model": model,
        "mase": (mean.get("model") or {}).get("mase"),
        "seasonal_naive_mase": ((mean.get("baselines") or {}).get("seasonal_naive") or {}).get(
            "mase"
        ),
    }
