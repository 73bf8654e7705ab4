"""Run directories stay safe: no command writes over a run's files or its own input, a full
or read-only disk is one line (exit 2) that leaves the earlier runs as they were, two
processes never resume one run at once, and run names and file modes are what a user
expects."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forecast.cli.app import app
from forecast.workflows import trainrun

from .conftest import monthly_frame, one_line_error, write_config, write_csv

runner = CliRunner()


def digests(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> sha256): what "left as it was" means."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def tiny(folder: Path, name: str = "tiny", epochs: int = 2, **extra) -> Path:
    write_csv(folder / "sales.csv", monthly_frame())
    return write_config(
        folder / f"{name}.yaml",
        name=name,
        seed=7,
        data={"path": "sales.csv", "time_column": "date", "features": ["sales"]},
        window={"input_steps": 12, "horizon": 1},
        model={"architecture": "lstm", "units": [4]},
        training={"epochs": epochs, "batch_size": 16, **extra},
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One finished run (tests copy it before touching it)."""
    folder = tmp_path_factory.mktemp("trained")
    result = runner.invoke(app, ["train", str(tiny(folder)), "--runs-dir", str(folder / "runs")])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def run_dir(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "runs" / trained.name
    shutil.copytree(trained, copy)
    shutil.copy(trained.parents[1] / "sales.csv", tmp_path / "sales.csv")
    return copy


# --------------------------------------------------------------------------- item 1


def output_paths(run: Path) -> dict[str, Path]:
    """Ways to name a file of `run`: plainly, via `.`, via `..`, and through a symlink."""
    (run.parent / "elsewhere").mkdir(exist_ok=True)
    link = run.parent / "elsewhere" / "out.csv"
    link.symlink_to(run / "model.keras")
    return {
        "model": run / "model.keras",
        "dot": run / "." / "model.keras",
        "dotdot": run.parent / "elsewhere" / ".." / run.name / "config.yaml",
        "symlink": link,
        "scaler": run / "scaler.json",
        "metrics": run / "metrics.json",
        "run.json": run / "run.json",
        "intervals": run / "intervals.json",
    }


@pytest.mark.parametrize(
    "way", ["model", "dot", "dotdot", "symlink", "scaler", "metrics", "run.json", "intervals"]
)
def test_predict_never_writes_over_a_file_of_the_run(run_dir: Path, way: str):
    before = digests(run_dir)
    out = output_paths(run_dir)[way]
    csv = run_dir.parents[1] / "sales.csv"
    argv = ["predict", "--run", str(run_dir), "--csv", str(csv), "--output", str(out)]
    line = one_line_error(runner.invoke(app, argv))
    assert str(out) in line and "of the run" in line and "outside the run directory" in line
    assert digests(run_dir) == before
    # the run still predicts (the symlink, a plain file elsewhere, is left as it was)
    ok = runner.invoke(app, ["predict", "--run", str(run_dir), "--csv", str(csv)])
    assert ok.exit_code == 0, ok.output
    assert Path(ok.stdout.strip().splitlines()[-1]) == run_dir / "forecast.csv"


def test_predict_never_writes_over_its_own_input(run_dir: Path):
    csv = run_dir.parents[1] / "sales.csv"
    before = csv.read_bytes()
    for out in (csv, csv.parent / "." / csv.name):
        argv = ["predict", "--run", str(run_dir), "--csv", str(csv), "--output", str(out)]
        line = one_line_error(runner.invoke(app, argv))
        assert f"--output {out}: is the input file {csv}" in line
    # without --output, forecast.csv of the run would replace an input read from there
    inside = shutil.copy(csv, run_dir / "forecast.csv")
    line = one_line_error(runner.invoke(app, ["predict", "--run", str(run_dir), "--csv", inside]))
    assert "is the input file" in line
    assert csv.read_bytes() == before == Path(inside).read_bytes()


def test_predict_output_that_is_a_folder_is_one_line(run_dir: Path, tmp_path: Path):
    folder = tmp_path / "out"
    folder.mkdir()
    csv = run_dir.parents[1] / "sales.csv"
    argv = ["predict", "--run", str(run_dir), "--csv", str(csv), "--output", str(folder)]
    line = one_line_error(runner.invoke(app, argv))  # before any work: no warning either
    assert line == f"error: --output {folder}: is a folder; give the forecast CSV's file path"


def test_predict_on_a_full_disk_is_one_line(run_dir: Path, tmp_path: Path, monkeypatch):
    """A write failure outside train (here the forecast CSV) is a user's problem too."""
    import errno

    import pandas as pd

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(out))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    csv = run_dir.parents[1] / "sales.csv"
    out = tmp_path / "f.csv"
    argv = ["predict", "--run", str(run_dir), "--csv", str(csv), "--output", str(out)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2 and "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]  # after predict's own notes
    assert last.startswith("error: no space left on ")
    assert last.endswith(
        f" while writing {out}; free space or choose another --output or --runs-dir"
    )


def test_init_with_a_missing_csv_names_the_option(tmp_path: Path):
    line = one_line_error(runner.invoke(app, ["init", "--csv", str(tmp_path / "nope.csv")]))
    assert "given with --csv" in line and "data.path" not in line


def test_plot_never_writes_over_another_runs_files(run_dir: Path, tmp_path: Path):
    other = run_dir.parent / "other"
    shutil.copytree(run_dir, other)
    runner.invoke(app, ["plot", "--run", str(other)])  # the other run's own figures
    assert (other / "loss.png").is_file()
    before = digests(other)
    line = one_line_error(
        runner.invoke(app, ["plot", "--run", str(run_dir), "--output", str(other)])
    )
    assert "loss.png" in line or "test_forecast.png" in line
    line = one_line_error(
        runner.invoke(
            app, ["plot", "--run", str(run_dir), "--output", str(run_dir / "model.keras")]
        )
    )
    assert "model.keras" in line
    assert digests(other) == before
    # its own run and a new folder are fine
    for out in (run_dir, tmp_path / "figures"):
        result = runner.invoke(app, ["plot", "--run", str(run_dir), "--output", str(out)])
        assert result.exit_code == 0, result.output
        assert (out / "loss.png").is_file()


def test_export_never_writes_over_the_model(run_dir: Path):
    before = digests(run_dir)
    argv = ["export", "--run", str(run_dir), "--format", "tflite"]
    line = one_line_error(runner.invoke(app, [*argv, "--output", str(run_dir / "model.keras")]))
    assert "model.keras" in line
    assert digests(run_dir) == before


def test_no_output_goes_over_the_runs_data_file(run_dir: Path, tmp_path: Path):
    """The CSV the run was trained on is an input too: export and predict refuse it."""
    import yaml

    data = Path(yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["path"])
    before = data.read_bytes()
    export = ["export", "--run", str(run_dir), "--format", "tflite", "--output", str(data)]
    assert f"is the input file {data}" in one_line_error(runner.invoke(app, export))
    other = shutil.copy(data, tmp_path / "recent.csv")
    predict = ["predict", "--run", str(run_dir), "--csv", str(other), "--output", str(data)]
    assert f"is the input file {data}" in one_line_error(runner.invoke(app, predict))
    assert data.read_bytes() == before


# --------------------------------------------------------------------------- item 4


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "no space left on "),
        (errno.EACCES, "permission denied writing "),
        (errno.EROFS, "is read-only: cannot write "),
    ],
)
def test_a_failed_write_is_one_line_and_removes_the_new_run(
    tmp_path: Path, monkeypatch, code, words
):
    from forecast.fitting import callbacks

    config = tiny(tmp_path, epochs=1)
    earlier = tmp_path / "runs" / "earlier"
    earlier.mkdir(parents=True)
    (earlier / "run.json").write_text("{}")

    def full(self, *args, **kwargs):  # the disk fills as the first epoch is kept
        raise OSError(code, os.strerror(code), str(self.new / callbacks.WEIGHTS))

    monkeypatch.setattr(callbacks.Checkpoint, "save", full)
    argv = ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"]
    line = one_line_error(runner.invoke(app, argv))
    assert words in line and "training.keras" in line and "--runs-dir" in line
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["earlier"]


def test_a_full_disk_after_training_removes_the_new_run(tmp_path: Path, monkeypatch):
    """The issue's rule: on a full disk the half-written run goes (it holds the space the
    user needs back), even with a trained model in it; earlier runs stay."""
    from forecast.runs import write

    config = tiny(tmp_path, epochs=1)
    real = write.write_run_info

    def full(partial, *args, **kwargs):  # the disk fills as run.json is written
        real(partial, *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(partial / "run.json"))

    monkeypatch.setattr(write, "write_run_info", full)
    argv = ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"]
    line = one_line_error(runner.invoke(app, argv))
    assert line.startswith("error: no space left on ") and "run.json" in line
    assert line.endswith("; free space or choose --runs-dir")
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_read_only_failure_after_training_keeps_the_model_to_resume(tmp_path: Path, monkeypatch):
    from forecast.runs import write

    config = tiny(tmp_path, epochs=1)
    real = write.write_run_info

    def read_only(partial, *args, **kwargs):  # the folder turns read-only at run.json
        real(partial, *args, **kwargs)
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(partial / "run.json"))

    monkeypatch.setattr(write, "write_run_info", read_only)
    argv = ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"]
    line = one_line_error(runner.invoke(app, argv))
    (partial,) = (tmp_path / "runs").glob(".tiny-*.partial")
    assert "is read-only: cannot write" in line and "run.json" in line
    assert f"the trained model is kept in {partial}" in line and line.endswith("--resume`")
    monkeypatch.setattr(write, "write_run_info", real)  # writable again
    result = runner.invoke(app, [*argv, "--resume"])
    assert result.exit_code == 0, result.output
    assert not partial.exists()


def test_the_failed_write_names_the_file_not_its_temporary(tmp_path: Path, monkeypatch):
    from forecast.runs import atomic

    def no_room(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "replace", no_room)
    with pytest.raises(OSError) as caught:
        atomic.write_json(tmp_path / "metrics.json", {"a": 1})
    assert caught.value.filename == str(tmp_path / "metrics.json")
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too
    message = str(atomic.write_failure(caught.value, tmp_path))
    assert message.startswith("no space left on /") and "metrics.json" in message


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MB tmpfs (root only); unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.slow
def test_a_full_disk_during_train_is_one_line_exit_2(small_disk: Path, trained: Path, tmp_path):
    earlier = small_disk / trained.name
    shutil.copytree(trained, earlier)
    before = digests(earlier)
    config = tiny(tmp_path)
    # a model whose weights and optimizer state (~2.5 MB) outgrow the disk at the first
    # checkpoint: Keras leaves the HDF5 file open, which crashed the process at exit
    result = subprocess.run(
        [sys.executable, "-m", "forecast", "train", str(config), "--runs-dir", str(small_disk)]
        + ["--set", "model.units=[128,128]", "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"error: no space left on {small_disk} while writing ")
    assert lines[0].endswith("; free space or choose --runs-dir")
    assert sorted(p.name for p in small_disk.iterdir()) == [trained.name]  # no partial left
    assert digests(earlier) == before


# --------------------------------------------------------------------------- item 10


def test_runs_dir_that_is_a_file(tmp_path: Path):
    config = tiny(tmp_path)
    (tmp_path / "runs").write_text("not a folder")
    argv = ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"]
    result = runner.invoke(app, argv)
    line = one_line_error(result)
    assert f"--runs-dir {tmp_path / 'runs'}: is a file" in line
    assert (tmp_path / "runs").read_text() == "not a folder"


def test_runs_dir_that_is_a_file_is_refused_before_any_work(tmp_path: Path, monkeypatch):
    config = tiny(tmp_path)
    (tmp_path / "runs").write_text("not a folder")
    from forecast.workflows import backtest

    monkeypatch.setattr(backtest, "run_backtest", lambda *a: pytest.fail("backtest ran"))
    for argv in (["backtest", str(config)], ["runs"]):
        result = runner.invoke(app, [*argv, "--runs-dir", str(tmp_path / "runs")])
        assert f"--runs-dir {tmp_path / 'runs'}: is a file" in one_line_error(result)
    assert (tmp_path / "runs").read_text() == "not a folder"


def test_data_path_that_is_a_symlink_loop(tmp_path: Path):
    config = tiny(tmp_path)
    (tmp_path / "a.csv").symlink_to(tmp_path / "b.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "a.csv")
    for argv in (["validate", str(config)], ["train", str(config)]):
        line = one_line_error(runner.invoke(app, [*argv, "--set", "data.path=a.csv"]))
        assert "data.path: a.csv is a symlink loop" in line


# --------------------------------------------------------------------------- items 11, 26


def interrupted(tmp_path: Path, monkeypatch, epochs: int, stop_at: int) -> tuple[Path, Path]:
    """A config and its partial run, interrupted as epoch `stop_at` began."""
    from forecast import api
    from forecast.fitting import callbacks

    from .test_interrupt import interrupt_at_epoch

    config = tiny(tmp_path, epochs=epochs, early_stopping=False)
    monkeypatch.setattr(logging.getLogger("forecast"), "handlers", [])  # no earlier CLI's
    interrupt_at_epoch(monkeypatch, config, stop_at)
    with pytest.raises(KeyboardInterrupt):
        api.train(config, runs_dir=tmp_path / "runs", quiet=True)
    monkeypatch.setattr(callbacks, "raise_if_stop_requested", lambda: None)
    (partial,) = (tmp_path / "runs").glob(".tiny-*.partial")
    return config, partial


HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(120)
"""


def test_a_run_resumed_elsewhere_is_not_resumed_twice(tmp_path: Path, monkeypatch):
    config, partial = interrupted(tmp_path, monkeypatch, epochs=4, stop_at=3)
    resume = ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "--resume"]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(partial)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        line = one_line_error(runner.invoke(app, [*resume, "-q"]))
        assert f"{partial}: is being trained or resumed by another forecast process" in line
        assert f"(pid {holder.pid})" in line
        assert (partial / "backup" / "state.json").is_file()  # left to its holder
    finally:
        holder.kill()  # the system releases a dead holder's lock
        holder.wait()
        holder.stdout.close()
    result = runner.invoke(app, resume)
    assert result.exit_code == 0, result.output
    assert f"resuming {partial} after epoch 2 of 4" in result.stderr
    run = Path(result.stdout.strip().splitlines()[-1])
    fresh = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "fresh")])
    fresh_run = Path(fresh.stdout.strip().splitlines()[-1])
    assert sorted(os.listdir(run)) == sorted(os.listdir(fresh_run))  # the lock left nothing


def test_a_dot_name_is_refused(tmp_path: Path):
    config = tiny(tmp_path)
    for argv in (["--set", "name=.hidden"], ["--set", "name=..x"]):
        line = one_line_error(runner.invoke(app, ["validate", str(config), *argv]))
        assert line.startswith("error: ") and "name" in line and "must not start with '.'" in line
    text = config.read_text().replace("name: tiny", "name: .hidden")
    hidden = tmp_path / "h.yaml"
    hidden.write_text(text)
    line = one_line_error(runner.invoke(app, ["train", str(hidden)]))
    assert "name" in line and ".hidden" in line
    assert not (tmp_path / "runs").exists()


def test_a_name_too_long_for_a_folder_is_refused_by_validate(tmp_path: Path):
    config = tiny(tmp_path)
    text = config.read_text().replace("name: tiny", "name: " + "x" * 50_000)
    (tmp_path / "long.yaml").write_text(text)
    line = one_line_error(runner.invoke(app, ["validate", str(tmp_path / "long.yaml")]))
    assert line.startswith("error: ") and "name: is 50000 bytes long" in line
    assert len(line) < 400 and "at most 200" in line


def test_run_files_follow_the_umask(tmp_path: Path):
    old = os.umask(0o022)
    try:
        config = tiny(tmp_path)
        result = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs")])
    finally:
        os.umask(old)
    run = Path(result.stdout.strip().splitlines()[-1])
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run.iterdir() if p.is_file()}
    assert modes and set(modes.values()) == {0o644}, modes
    assert json.loads((run / "run.json").read_text())["name"] == "tiny"


def test_an_error_after_training_keeps_the_trained_model(tmp_path: Path, monkeypatch):
    """A user error raised once the held-out model is trained (here: in the test scoring)
    leaves that model in the partial run to resume: nothing trained is thrown away."""
    from forecast.errors import DataError

    def bad_scoring(*args, **kwargs):
        raise DataError("s.csv: the forecasts are not finite")

    monkeypatch.setattr(trainrun, "evaluate_on_test", bad_scoring)
    argv = ["train", str(tiny(tmp_path, epochs=1)), "--runs-dir", str(tmp_path / "runs"), "-q"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2 and "the forecasts are not finite" in result.stderr
    (partial,) = (tmp_path / "runs").glob(".tiny-*.partial")
    assert (partial / "fit.json").is_file() and (partial / "held_out.keras").is_file()


def test_permission_denied_outside_train_is_one_line_without_writing(
    run_dir: Path, tmp_path: Path, monkeypatch
):
    import pandas as pd

    out = tmp_path / "f.csv"

    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(out))

    monkeypatch.setattr(pd.DataFrame, "to_csv", denied)
    csv = run_dir.parents[1] / "sales.csv"
    argv = ["predict", "--run", str(run_dir), "--csv", str(csv), "--output", str(out)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    last = result.stderr.strip().splitlines()[-1]
    assert (
        last == f"error: {out}: permission denied; check the permissions of the file and its folder"
    )


# --------------------------------------------------------------------------- a bug is no damage


def predict_argv(run: Path) -> list[str]:
    return ["predict", "--run", str(run), "--csv", str(run.parents[1] / "sales.csv")]


def test_a_bug_while_loading_the_model_is_an_internal_error(run_dir: Path, monkeypatch):
    """Only what a damaged file makes Keras raise means "train the run again" (exit 2); any
    other exception inside load_model is a bug: exit 1, its traceback under --debug."""
    import keras

    def buggy_load(*args, **kwargs):
        return 1 / 0

    monkeypatch.setattr(keras.saving, "load_model", buggy_load)
    result = runner.invoke(app, predict_argv(run_dir))
    assert result.exit_code == 1, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("internal error: ZeroDivisionError: division by zero (rerun with")
    assert "corrupted" not in result.stderr and "train" not in last
    debug = runner.invoke(app, ["--debug", *predict_argv(run_dir)])
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr and "in buggy_load" in debug.stderr


def flip_weight_bytes(path: Path) -> None:
    """40 bytes inverted inside the weights member: the zip is whole, its CRC is not."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 40] = bytes(b ^ 0xFF for b in data[middle : middle + 40])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),  # truncated
        lambda p: p.write_bytes(b"not a keras archive"),
        flip_weight_bytes,
    ],
    ids=["truncated", "garbage", "bad-crc"],
)
def test_a_damaged_model_still_says_train_again(run_dir: Path, damage):
    model = run_dir / "model.keras"
    damage(model)
    line = one_line_error(runner.invoke(app, predict_argv(run_dir)))
    assert line.startswith(f"error: {model}: corrupted or incomplete, Keras cannot load it (")
    assert line.endswith("); train the run again")
