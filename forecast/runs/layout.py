"""Where runs live and what a run folder is.

runs/.<name>-<stamp>.partial/   while training (never picked up as a run)
runs/<name>-<stamp>[-N]/        when complete; never overwritten

A partial run is created here, locked while one process trains it, and renamed into place
when complete (forecast.runs.write says what goes into it). The files a finished run holds,
which folders are finished or incomplete runs, the latest run, and which paths no command may
write over are defined here too.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from datetime import datetime
from pathlib import Path

from forecast.errors import ConfigError, RunError

FORMAT_VERSION = 1  # run.json's format_version: what open_run reads


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


def _partial_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(name)}-(\d{{8}}-\d{{6}})(?:-\d+)?\.partial$")


def newest_partial(runs_dir: Path, name: str) -> Path | None:
    """The newest interrupted run of `name` in `runs_dir`, or None."""
    pattern = _partial_pattern(name)
    found = sorted(
        (p for p in runs_dir.glob(f".{name}-*.partial") if pattern.match(p.name)),
        key=lambda p: p.stat().st_mtime,
    )
    return found[-1] if found else None


def resumable_partial(runs_dir: Path, name: str, config_text: str) -> tuple[Path, str]:
    """The newest interrupted run of `name` (and its stamp), whose config is `config_text`."""
    partial = newest_partial(runs_dir, name)
    if partial is None:
        raise RunError(
            f"{runs_dir}: no interrupted run of '{name}' to resume; train without --resume"
        )
    saved = partial / "config.yaml"
    if saved.is_file() and saved.read_text(encoding="utf-8") != config_text:
        raise RunError(
            f"{partial}: the interrupted run was started with a different config; "
            "resume with the same config and --set options, or train without --resume"
        )
    stamp = _partial_pattern(name).match(partial.name)
    assert stamp is not None  # newest_partial finds only the names that match
    return partial, stamp.group(1)


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


PORTABLE_MODEL = "model.onnx"  # model.keras as ONNX, kept by the first predict
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
    PORTABLE_MODEL,
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


def is_backtest(path: Path) -> bool:
    """A folder `backtest` wrote (write_backtest): config.yaml and backtest.json, no model."""
    return (path / "backtest.json").is_file()
