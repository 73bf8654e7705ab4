"""Run directories and every file in them.

runs/.<name>-<stamp>.partial/   while training (never picked up as a run)
runs/<name>-<stamp>[-N]/        when complete; never overwritten

A partial run holds `backup/` (the training checkpoint, see forecast.fitting.training) while the
model trains, then `held_out.keras` and `fit.json` once `fit` has returned, and
`model.keras` with `final.json` once the final fit on every row has, so an interruption
keeps whatever was trained and `--resume` goes on from there (the held-out evaluation always
uses the held-out model). Every file is written through a temporary file and a rename: a
reader never sees half of one.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from forecast import __version__
from forecast.config.file import config_to_yaml, validate_config
from forecast.config.schema import Config
from forecast.data.timesteps import time_labels
from forecast.errors import ConfigError, RunError

FORMAT_VERSION = 1
HISTORY_COLUMNS = ["epoch", "loss", "val_loss", "learning_rate", "seconds"]


# --------------------------------------------------------------------------- directories


def stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def check_runs_dir(runs_dir: Path) -> None:
    """Refuse a --runs-dir that is a file (a missing one is created when a run starts)."""
    if runs_dir.exists() and not runs_dir.is_dir():
        raise RunError(
            f"--runs-dir {runs_dir}: is a file, not a folder; choose a folder for the runs "
            "with --runs-dir"
        )


def start_partial(runs_dir: Path, name: str, when: str) -> Path:
    """Create runs/.<name>-<when>.partial (with -N if a concurrent run took that name)."""
    check_runs_dir(runs_dir)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent is a file, no permission, a read-only disk...
        raise RunError(
            f"--runs-dir {runs_dir}: cannot create it ({exc.strerror}); choose another --runs-dir"
        ) from None
    for n in range(1, 1000):
        suffix = "" if n == 1 else f"-{n}"
        partial = runs_dir / f".{name}-{when}{suffix}.partial"
        try:
            partial.mkdir()
            return partial
        except FileExistsError:
            continue
    raise RunError(f"{runs_dir}: cannot create a partial run directory for {name}")


def resumable_partial(runs_dir: Path, name: str, config_text: str) -> tuple[Path, str]:
    """The newest interrupted run of `name` (and its stamp), whose config is `config_text`."""
    pattern = re.compile(rf"^\.{re.escape(name)}-(\d{{8}}-\d{{6}})(?:-\d+)?\.partial$")
    found = sorted(
        (p for p in runs_dir.glob(f".{name}-*.partial") if pattern.match(p.name)),
        key=lambda p: p.stat().st_mtime,
    )
    if not found:
        raise RunError(
            f"{runs_dir}: no interrupted run of '{name}' to resume; train without --resume"
        )
    partial = found[-1]
    saved = partial / "config.yaml"
    if saved.is_file() and saved.read_text(encoding="utf-8") != config_text:
        raise RunError(
            f"{partial}: the interrupted run was started with a different config; "
            "resume with the same config and --set options, or train without --resume"
        )
    return partial, pattern.match(partial.name).group(1)


class PartialLock:
    """An exclusive lock on a partial run's folder for as long as one process trains it
    (`flock` on the folder itself: nothing is written into the run, and the system
    releases it when the holder ends, however it ends)."""

    def __init__(self, partial: Path) -> None:
        import fcntl

        try:
            self.fd = os.open(partial, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            raise RunError(
                f"{partial}: finished or removed by another forecast process meanwhile; see "
                "`forecast runs`"
            ) from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(os.fstat(self.fd).st_ino)
            os.close(self.fd)
            by = f" (pid {holder})" if holder else ""
            raise RunError(
                f"{partial}: is being trained or resumed by another forecast process{by}; "
                "wait for it to end, then resume again if it was interrupted"
            ) from None
        if not os.path.exists(partial) or not os.path.samestat(
            os.fstat(self.fd), os.stat(partial)
        ):  # the holder finished (renamed it) between our open and our lock
            self.release()
            raise RunError(
                f"{partial}: finished by another forecast process meanwhile; see `forecast runs`"
            )

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the folder's descriptor releases the lock
            self.fd = -1


def _lock_holder(inode: int) -> int | None:
    """The pid holding a flock on the file with this inode (Linux /proc/locks), or None."""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()  # 1: FLOCK ADVISORY WRITE <pid> <major>:<minor>:<inode> ...
        if "FLOCK" in fields and len(fields) > 5 and fields[5].endswith(f":{inode}"):
            return int(fields[4]) if fields[4].isdigit() else None
    return None


def finish(partial: Path, runs_dir: Path, name: str, when: str) -> Path:
    """Rename the complete partial folder to runs/<name>-<when>[-N]; never replaces a run."""
    for n in range(1, 1000):
        suffix = "" if n == 1 else f"-{n}"
        final = runs_dir / f"{name}-{when}{suffix}"
        if final.exists():
            continue
        try:
            os.rename(partial, final)  # atomic; fails if `final` appeared meanwhile (non-empty)
            return final
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                continue
            raise
    raise RunError(f"{runs_dir}: cannot name the finished run {name}-{when}")


def discard(partial: Path) -> None:
    shutil.rmtree(partial, ignore_errors=True)


REQUIRED_FILES = ("config.yaml", "model.keras", "scaler.json", "run.json", "metrics.json")
FIGURES = ("test_forecast.png", "loss.png", "forecast.png", "series_mase.png")
RUN_FILES = (
    *REQUIRED_FILES,
    *FIGURES,
    "intervals.json",
    "history.csv",
    "test_predictions.csv",
    "forecast.csv",
    "forecast_history.csv",
    "report.html",
    "backtest.json",
    "backtest.png",
    "held_out.keras",
    "fit.json",
    "final.json",
    "final_history.csv",
    "backup",
    "tensorboard",
    "export",
)


def refuse_overwrite(
    out: Path,
    option: str,
    run: Path | None = None,
    own: tuple[str, ...] = (),
    inputs: tuple[Path, ...] = (),
) -> None:
    """Refuse (ConfigError naming `option` and the path) an output that is, once symlinks,
    `.` and `..` are resolved, one of the command's `inputs`, or a file of a run directory
    (one that exists there, or a name a run's files have), except the names in `own`
    directly inside `run`: the command's own outputs in its own run."""
    target = Path(os.path.realpath(out))
    for source in inputs:
        if target == Path(os.path.realpath(source)):
            raise ConfigError(
                f"{option} {out}: is the input file {source}; write the output to another path"
            )
    folder = target.parent
    if not _is_run_folder(folder):
        return
    if run is not None and folder == Path(os.path.realpath(run)) and target.name in own:
        return
    if target.exists() or target.name in RUN_FILES:
        raise ConfigError(
            f"{option} {out}: would write over {target.name} of the run {folder}; "
            "give a path outside the run directory"
        )


def _is_run_folder(folder: Path) -> bool:
    """A finished run or backtest, or a partial one."""
    partial = folder.name.startswith(".") and folder.name.endswith(".partial")
    return partial or any((folder / f).is_file() for f in ("run.json", "backtest.json"))


def missing_files(path: Path) -> list[str]:
    """The files a finished run must hold that `path` lacks."""
    return [f for f in REQUIRED_FILES if not (path / f).is_file()]


def incomplete_runs(runs_dir: Path) -> list[tuple[Path, str]]:
    """Visible folders that hold part of a training run but not all of it: (path, a missing
    file). A backtest is complete without a model."""
    if not runs_dir.is_dir():
        return []
    found = []
    for path in sorted(runs_dir.iterdir()):
        if path.name.startswith(".") or not path.is_dir():
            continue
        missing = missing_files(path)
        if missing and len(missing) < len(REQUIRED_FILES) and not is_backtest(path):
            found.append((path, missing[0]))
    return found


def finished_runs(runs_dir: Path) -> list[Path]:
    """Complete runs (every file of REQUIRED_FILES), oldest first (by the finish time
    recorded in run.json)."""
    if not runs_dir.is_dir():
        return []
    found = []
    for path in runs_dir.iterdir():
        if path.name.startswith(".") or not path.is_dir() or missing_files(path):
            continue
        try:
            finished = json.loads((path / "run.json").read_text(encoding="utf-8"))["finished"]
        except (OSError, ValueError, KeyError, TypeError):
            finished = ""
        found.append((str(finished), path.stat().st_mtime, path.name, path))
    return [p for *_, p in sorted(found)]


def resolve_run(run: str | Path | None, runs_dir: str | Path = "runs") -> Path:
    """`--run DIR`, or the most recently finished run under runs_dir."""
    if run is not None:
        path = Path(run)
        if not path.is_dir():
            raise RunError(f"{path}: run directory not found; see `ls runs/` or `forecast runs`")
        return path
    runs = finished_runs(Path(runs_dir))
    if not runs:
        raise RunError(
            f"{runs_dir}: no finished run found; train one first "
            "(`forecast train CONFIG.yaml`) or pass --run DIR"
        )
    return runs[-1]


# --------------------------------------------------------------------------- writing files


def write_text_atomic(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half."""
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding=encoding, newline=""))


def write_atomic(path: Path, write: Callable[[Path], Any], suffix: str = ".tmp") -> None:
    """`write(tmp)` fills a temporary file beside `path`, which is then renamed to `path`.
    `suffix` keeps the extension a writer may insist on (Keras: .keras, matplotlib: .png)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> what a plain open would give
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc  # the file, not its tmp
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask, read without changing it (Linux), else by setting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


WRITE_ERRORS = {
    errno.ENOSPC: "no space left on {device} while writing {file}; free space or choose "
    "{elsewhere}",
    errno.EDQUOT: "disk quota exceeded on {device} while writing {file}; free space or choose "
    "{elsewhere}",
    errno.EFBIG: "file too large for {device} while writing {file}; choose {elsewhere}",
    errno.EROFS: "{device} is read-only: cannot write {file}; choose {elsewhere}",
    errno.EACCES: "permission denied writing {file}; make its folder writable or choose "
    "{elsewhere}",
    errno.EPERM: "operation not permitted writing {file}; make its folder writable or choose "
    "{elsewhere}",
    errno.EISDIR: "{file} is a folder, not a file; choose {elsewhere}",
}


def out_of_space(exc: BaseException) -> bool:
    """A write failed for want of space (a full disk, a quota, a file size limit)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_failure(
    exc: BaseException, fallback: Path | None, elsewhere: str = "--runs-dir"
) -> RunError | None:
    """A failed write to the disk (full, read-only, no permission) as the one-line error to
    show, or None for any other exception. `fallback`: the file to name when the error does
    not (h5py names it in its message only), None if unknown; `elsewhere`: the option that
    puts it elsewhere."""
    if not isinstance(exc, OSError) or exc.errno not in WRITE_ERRORS:
        return None
    file = exc.filename
    if file is None:
        named = re.search(r"filename = '([^']+)'", str(exc))
        file = named.group(1) if named else fallback
    if file is None:  # nothing says which file, nor so which disk
        return RunError(WRITE_ERRORS[exc.errno].format(device="the disk", file="a file",
                                                       elsewhere=elsewhere))  # fmt: skip
    device = Path(os.path.realpath(file))
    while not os.path.ismount(device) and device != device.parent:
        device = device.parent
    message = WRITE_ERRORS[exc.errno].format(device=device, file=file, elsewhere=elsewhere)
    return RunError(message)


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_config(partial: Path, config: Config) -> None:
    write_text_atomic(partial / "config.yaml", config_to_yaml(config))


def fit_record(result: Any, info: dict[str, Any]) -> dict[str, Any]:
    """What a run keeps of a fit (a training.FitResult and pipeline.fit's info)."""
    return {
        "history": result.history,
        "best_epoch": result.best_epoch,
        "stopped_epoch": result.stopped_epoch,
        **info,
    }


def save_fitted(partial: Path, model: Any, fitted: dict[str, Any]) -> None:
    """Keep the held-out model as soon as `fit` returns: held_out.keras, then fit.json
    (history, best epoch, timings...), which marks it as complete."""
    save_model(partial / "held_out.keras", model)
    write_json(partial / "fit.json", fitted)


def save_final(partial: Path, model: Any, info: dict[str, Any]) -> None:
    """The final fit on every row: model.keras, then final.json, which marks it complete.
    `model` None: the held-out model is the final one (a copy of held_out.keras)."""
    if model is None:
        held_out = partial / "held_out.keras"
        write_atomic(partial / "model.keras", lambda tmp: shutil.copyfile(held_out, tmp), ".keras")
    else:
        save_model(partial / "model.keras", model)
    write_json(partial / "final.json", info)


def load_final(partial: Path) -> dict[str, Any] | None:
    """final.json of a final fit that finished before an interruption, else None."""
    path = partial / "final.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def keep_held_out(partial: Path) -> None:
    """Without a final fit, the held-out model is the run's model.keras."""
    os.replace(partial / "held_out.keras", partial / "model.keras")


def drop_resume_files(partial: Path) -> None:
    """What only --resume needs; its content is in model.keras, history.csv and run.json."""
    for name in ("held_out.keras", "fit.json", "final.json"):
        (partial / name).unlink(missing_ok=True)


def save_model(path: Path, model: Any) -> None:
    """Keras native format, through a temporary file and a rename."""
    write_atomic(path, model.save, suffix=".keras")


def load_fitted(partial: Path) -> tuple[Any, dict[str, Any]] | None:
    """The model and fit.json that `save_fitted` kept, or None if training did not finish."""
    if not (partial / "fit.json").is_file():
        return None
    info = json.loads((partial / "fit.json").read_text(encoding="utf-8"))
    return load_model(partial / "held_out.keras"), info


def write_results(
    partial: Path,
    prepared: Any,
    fitted: dict[str, Any],
    metrics: dict[str, Any],
    predictions: pd.DataFrame,
    calibration: Any = None,
) -> None:
    """scaler.json, history.csv, metrics.json, test_predictions.csv and, with intervals,
    intervals.json (the calibrated half-widths `predict` uses)."""
    members = getattr(prepared, "members", None)  # a long table's series (forecast.panel)
    if members is None:
        prepared.scaler.save(partial / "scaler.json")
        if calibration is not None:
            write_json(partial / "intervals.json", calibration.to_json())
    else:
        scalers = {sid: m.scaler.to_dict() for sid, m in members.items()}
        write_json(
            partial / "scaler.json",
            {"format_version": 1, "id_column": prepared.config.data.id_column, "series": scalers},
        )
        if calibration:
            series = {sid: c.to_json() for sid, c in calibration.items()}
            write_json(partial / "intervals.json", {"series": series})
    write_history(partial / "history.csv", fitted["history"])
    write_json(partial / "metrics.json", metrics)
    write_text_atomic(partial / "test_predictions.csv", predictions.to_csv(index=False))


def write_history(path: Path, rows: list[dict[str, float]]) -> None:
    """history.csv's columns, one row per epoch: the held-out fit's history.csv, and the
    final fit's final_history.csv (without val_loss, as it has no validation rows)."""
    write_text_atomic(path, pd.DataFrame(rows, columns=HISTORY_COLUMNS).to_csv(index=False))


def write_run_info(
    partial: Path,
    prepared: Any,
    fitted: dict[str, Any],
    timings: dict[str, Any],
    final_fit: dict[str, Any] | None = None,
) -> None:
    """run.json, written last: a run directory with run.json is complete. `epochs_run` and
    `best_epoch` are the held-out fit's; `final_fit` (rows, epochs) the refit on every row."""
    info = run_info(prepared, timings) | {
        "strategy": fitted["strategy"],
        "unroll": fitted["unroll"],
        "epochs_run": len(fitted["history"]),
        "best_epoch": fitted["best_epoch"],
        "final_fit": {k: v for k, v in final_fit.items() if k != "seconds"} if final_fit else False,
    }
    write_json(partial / "run.json", info)


def write_forecast_history(run_dir: Path, series: Any, config: Config, steps: int) -> None:
    """forecast_history.csv: the history tail that forecast.png draws before the forecast
    (of every series of a long table, its id column first)."""
    members = getattr(series, "members", None)
    parts = []
    for sid, one in (members or {None: series}).items():
        tail = one.frame.iloc[-max(4 * steps, 3 * config.window.input_steps, 50) :]
        history = pd.DataFrame({config.data.time_column or "step": time_labels(tail.index)})
        if sid is not None:
            history.insert(0, config.data.id_column, sid)
        for target in config.data.targets:
            if target in tail.columns:
                history[target] = tail[target].to_numpy()
        parts.append(history)
    table = pd.concat(parts, ignore_index=True)
    write_text_atomic(run_dir / "forecast_history.csv", table.to_csv(index=False))


def run_info(prepared: Any, timings: dict[str, Any]) -> dict[str, Any]:
    """run.json: versions, data, seed, rows, split and timings."""
    import keras
    import tensorflow as tf

    members = getattr(prepared, "members", None)  # a long table's series (forecast.panel)
    if members is not None:
        return _panel_info(prepared, timings)
    cfg, split, lag = prepared.config, prepared.split, prepared.lag
    first, last = time_labels(prepared.series.index[[0, len(prepared.values) - 1]])
    return {
        "format_version": FORMAT_VERSION,
        "name": cfg.name,
        "finished": datetime.now(timezone.utc).isoformat(),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "forecast": __version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "data": {
            "path": str(prepared.series.path),
            "sha256": prepared.series.sha256,
            "rows": len(prepared.values),
            "first": first,
            "last": last,
        },
        "seed": cfg.seed,
        "layout": cfg.layout,
        "model": cfg.model.describe(),
        "residual": cfg.model.residual,  # what `auto` chose, when it was asked for
        "parameters": prepared.params,
        "rows": {
            "train_windows": len(split.train_origins),
            "val_windows": len(split.val_origins),
            "test_origins": len(split.test_origins),
        },
        "split": {
            "transform_lag": lag,
            "val_start": split.val_start + lag,
            "test_start": split.test_start + lag,
            "rows": len(prepared.values),
        },
        "timings": timings,
    }


def _panel_info(panel: Any, timings: dict[str, Any]) -> dict[str, Any]:
    """run.json of a long table: as for one series, with `data.series` (how many trained,
    which were left out) and `split` per series (rows, val_start, test_start)."""
    combined = panel.combined
    info = run_info(next(iter(panel.members.values())), timings)
    split = combined.split
    info["data"] = {
        "path": str(panel.panel.path),
        "sha256": panel.panel.sha256,
        "id_column": panel.config.data.id_column,
        "series": len(panel.members),
        "skipped": list(panel.skipped),
        "rows": int(sum(len(m.values) for m in panel.members.values())),
    }
    info["rows"] = {
        "train_windows": len(split.train_origins),
        "val_windows": len(split.val_origins),
        "test_origins": int(sum(len(m.split.test_origins) for m in panel.members.values())),
    }
    info["split"] = {
        "transform_lag": combined.lag,
        "series": {
            sid: {
                "rows": len(m.values),
                "val_start": m.split.val_start + m.lag,
                "test_start": m.split.test_start + m.lag,
                "first": time_labels(m.series.index[[0]])[0],
                "last": time_labels(m.series.index[[len(m.values) - 1]])[0],
            }
            for sid, m in panel.members.items()
        },
    }
    return info


def write_backtest(
    runs_dir: Path,
    config: Config,
    report: dict[str, Any],
    draw: Callable[[Path], Any],
) -> Path:
    """A run directory `<name>-backtest-<stamp>` with config.yaml, backtest.json and the
    figure `draw(path)` makes; returns the directory."""
    name = f"{config.name or 'run'}-backtest"
    when = stamp()
    partial = start_partial(runs_dir, name, when)
    try:
        write_config(partial, config)
        write_json(partial / "backtest.json", report)
        draw(partial / "backtest.png")
        return finish(partial, runs_dir, name, when)
    except BaseException:
        discard(partial)
        raise


# --------------------------------------------------------------------------- reading runs


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
        data = json.loads(path.read_text(encoding="utf-8"))
        series = data["series"]
        scalers = {str(sid): Scaler.from_dict(entry, str(path)) for sid, entry in series.items()}
    except FileNotFoundError:
        raise RunError(f"{path}: missing; the run is incomplete, train it again") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
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
        series = json.loads(path.read_text(encoding="utf-8"))["series"]
        return {str(sid): Calibration.from_json(entry) for sid, entry in series.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RunError(f"{path}: unreadable ({exc}); train the run again") from None


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
    except Exception as exc:  # Keras raises many kinds for a bad file
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


def is_backtest(path: Path) -> bool:
    """A folder `backtest` wrote (write_backtest): config.yaml and backtest.json, no model."""
    return (path / "backtest.json").is_file()


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
