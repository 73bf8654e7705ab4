"""Run directories: written in a hidden partial folder, renamed into place when complete.

runs/.<name>-<stamp>.partial/   while training (never picked up as a run)
runs/<name>-<stamp>[-N]/        when complete; never overwritten
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from forecast.config import Config, validate_config
from forecast.errors import ConfigError, RunError

FORMAT_VERSION = 1


def stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def start_partial(runs_dir: Path, name: str, when: str) -> Path:
    """Create runs/.<name>-<when>.partial (with -N if a concurrent run took that name)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
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


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def finished_runs(runs_dir: Path) -> list[Path]:
    """Complete runs, oldest first (by the finish time recorded in run.json)."""
    if not runs_dir.is_dir():
        return []
    found = []
    for path in runs_dir.iterdir():
        if path.name.startswith(".") or not (path / "run.json").is_file():
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


@dataclass
class Run:
    path: Path
    config: Config
    info: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"


def open_run(path: Path) -> Run:
    """Check the files and read config.yaml and run.json (the model is loaded separately)."""
    missing = [
        f
        for f in ("config.yaml", "model.keras", "scaler.json", "run.json")
        if not (path / f).is_file()
    ]
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


def load_model(path: Path) -> Any:
    """Keras native format, safe mode: a model carrying Python code (Lambda) is refused."""
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many kinds for a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(
            f"{path}: cannot load the model ({first[:200]}); train the run again"
        ) from None
