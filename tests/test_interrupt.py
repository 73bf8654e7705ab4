"""Ctrl-C, SIGTERM and SIGKILL during training: clean exits, nothing visible, --resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.workflows import trainrun

from .conftest import (
    LONG_EPOCHS,
    early_stopping_config,
    small_gru_config,
    train_and_signal,
)

FORECAST = str(Path(sys.executable).parent / "forecast")


def start_and_stop_at_epoch(config: Path, epoch: int, sig: int) -> tuple[int, float, str]:
    """`forecast train`, sent `sig` once epoch `epoch` is reported: return code, seconds
    from signal to exit, and stderr."""
    return train_and_signal(config, f"epoch {epoch}/", sig)


def visible_runs(folder: Path) -> list[Path]:
    return [p for p in (folder / "runs").iterdir() if not p.name.startswith(".")]


def resume(config: Path) -> Path:
    result = subprocess.run(
        [FORECAST, "train", config.name, "--resume", "--quiet"],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return config.parent / result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_exits_cleanly_and_resume_continues(long_config, sig, code):
    returncode, seconds, stderr = start_and_stop_at_epoch(long_config, 3, sig)
    assert returncode == code, stderr
    assert seconds < 10
    assert "Traceback" not in stderr
    assert f"continue with `forecast train {long_config.name} --resume`" in stderr
    folder = long_config.parent
    assert visible_runs(folder) == []
    (partial,) = (folder / "runs").glob(".long-*.partial")
    assert (partial / "backup").is_dir()

    run_dir = resume(long_config)
    assert run_dir.name == partial.name[1 : -len(".partial")]  # the interrupted run's stamp
    assert not partial.exists()
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == list(range(1, LONG_EPOCHS + 1))  # no epoch lost or repeated
    assert not (run_dir / "backup").exists()


@pytest.mark.slow
def test_a_killed_training_can_be_resumed(long_config):
    returncode, _, _ = start_and_stop_at_epoch(long_config, 3, signal.SIGKILL)
    assert returncode == -signal.SIGKILL
    assert visible_runs(long_config.parent) == []
    run_dir = resume(long_config)
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == list(range(1, LONG_EPOCHS + 1))


def test_resume_without_an_interrupted_run_is_a_user_error(long_config):
    result = subprocess.run(
        [FORECAST, "train", long_config.name, "--resume"],
        cwd=long_config.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "no interrupted run of 'long' to resume; train without --resume"
    )


# --------------------------------------------------------------------------- in process


def model_weights(run_dir: Path) -> list:
    from forecast.runs import read

    return read.load_model(run_dir / "model.keras").get_weights()


def interrupt_at_epoch(monkeypatch, config: Path, epoch: int) -> None:
    """Make the training loop see a Ctrl-C as epoch `epoch` begins (the loop checks for stop
    requests as each epoch begins and after every call of the training function, which runs
    training.steps_per_execution(batches) batches)."""
    from forecast.config.file import load_config
    from forecast.data.prepare import prepare
    from forecast.fitting import callbacks, training

    cfg = load_config(config)
    batches = -(-len(prepare(cfg).split.train_origins) // cfg.training.batch_size)
    calls = {"n": 0}
    calls_per_epoch = 1 + -(-batches // training.steps_per_execution(batches))
    stop_at = (epoch - 1) * calls_per_epoch + 1

    def check() -> None:
        calls["n"] += 1
        if calls["n"] == stop_at:
            raise KeyboardInterrupt

    monkeypatch.setattr(callbacks, "raise_if_stop_requested", check)  # checked by the Recorder


def test_a_resumed_run_stops_where_an_uninterrupted_one_stops(tmp_path: Path, monkeypatch):
    from forecast import api
    from forecast.fitting import callbacks

    config = early_stopping_config(tmp_path)
    whole = api.train(config, runs_dir=tmp_path / "whole", quiet=True)
    history = pd.read_csv(whole.run_dir / "history.csv")
    stopped = len(history)
    info = json.loads((whole.run_dir / "run.json").read_text())
    assert 5 <= stopped < 80, "the config must stop early for this test to mean anything"
    assert info["best_epoch"] == int(history["val_loss"].idxmin()) + 1 == stopped - 3

    # Ctrl-C as the second-to-last epoch begins: the checkpoint holds the epoch before it,
    # when early stopping was already waiting (wait = 1)
    interrupt_at_epoch(monkeypatch, config, stopped - 1)
    with pytest.raises(KeyboardInterrupt):
        api.train(config, runs_dir=tmp_path / "cut", quiet=True)
    (partial,) = (tmp_path / "cut").glob(".es-*.partial")
    state = json.loads((partial / "backup" / "state.json").read_text())
    assert state["epoch"] == stopped - 2 and state["early_stopping"]["wait"] == 1

    monkeypatch.setattr(callbacks, "raise_if_stop_requested", lambda: None)
    resumed = api.train(config, runs_dir=tmp_path / "cut", quiet=True, resume=True)
    again = pd.read_csv(resumed.run_dir / "history.csv")
    assert again["epoch"].tolist() == history["epoch"].tolist()
    np.testing.assert_allclose(again["loss"], history["loss"], rtol=1e-6)
    np.testing.assert_allclose(again["val_loss"], history["val_loss"], rtol=1e-6)
    assert (
        json.loads((resumed.run_dir / "run.json").read_text())["best_epoch"] == (info["best_epoch"])
    )
    for a, b in zip(model_weights(resumed.run_dir), model_weights(whole.run_dir), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert resumed.metrics["model"] == pytest.approx(whole.metrics["model"], rel=1e-5)


def ctrl_c(*args, **kwargs):
    raise KeyboardInterrupt


def no_training(*args, **kwargs):
    raise AssertionError("--resume trained a model again")


def test_an_interruption_after_training_keeps_the_trained_model(tmp_path: Path, monkeypatch):
    from forecast import api
    from forecast.fitting import fit as fitting

    # no final fit: any training on --resume would be the held-out fit again
    config = small_gru_config(tmp_path, epochs=3, early_stopping=False, final_fit=False)
    real_evaluate = trainrun.evaluate_on_test

    monkeypatch.setattr(trainrun, "evaluate_on_test", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        api.train(config, runs_dir=tmp_path / "runs", quiet=True)
    (partial,) = (tmp_path / "runs").glob(".t-*.partial")
    assert (partial / "held_out.keras").is_file() and (partial / "fit.json").is_file()
    assert not (partial / "backup").exists()  # the trained model replaced the checkpoint

    monkeypatch.setattr(trainrun, "evaluate_on_test", real_evaluate)
    monkeypatch.setattr(trainrun, "fit", no_training)
    monkeypatch.setattr(fitting, "fit", no_training)
    result = api.train(config, runs_dir=tmp_path / "runs", quiet=True, resume=True)
    assert result.run_dir.name == partial.name[1 : -len(".partial")]
    assert pd.read_csv(result.run_dir / "history.csv")["epoch"].tolist() == [1, 2, 3]
    assert not partial.exists()


def test_an_error_while_saving_keeps_the_trained_model(tmp_path: Path, monkeypatch):
    from forecast import api
    from forecast.errors import RunError
    from forecast.runs import read, write

    config = small_gru_config(tmp_path, epochs=2)

    def read_only(*args, **kwargs):  # (a full disk removes the run instead: test_run_safety)
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(write, "write_results", read_only)
    with pytest.raises(RunError) as caught:  # one line: the CLI's error, no warning besides
        api.train(config, runs_dir=tmp_path / "runs", quiet=True)
    (partial,) = (tmp_path / "runs").glob(".t-*.partial")
    kept = json.loads((partial / "fit.json").read_text())  # the finished fit's record
    assert [row["epoch"] for row in kept["history"]] == [1, 2]
    assert np.isfinite([row["loss"] for row in kept["history"]]).all()
    held_out = read.load_model(partial / "held_out.keras")  # the trained model, whole
    assert held_out.output_shape == (None, 1, 1)  # (batch, horizon, targets)
    assert "is read-only: cannot write" in str(caught.value)
    assert f"the trained model is kept in {partial}" in str(caught.value)
    assert "--resume" in str(caught.value)


def test_an_interruption_after_the_final_fit_keeps_both_models(tmp_path: Path, monkeypatch):
    """The held-out evaluation on --resume uses the held-out model, never the final one
    (which saw the test rows), and neither is trained again."""
    from forecast import api
    from forecast.runs import write

    config = small_gru_config(tmp_path, epochs=3, early_stopping=False)
    whole = api.train(config, runs_dir=tmp_path / "whole", quiet=True)
    real_write = write.write_run_info

    monkeypatch.setattr(write, "write_run_info", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        api.train(config, runs_dir=tmp_path / "cut", quiet=True)
    (partial,) = (tmp_path / "cut").glob(".t-*.partial")
    assert {"held_out.keras", "fit.json", "model.keras", "final.json"} <= {
        p.name for p in partial.iterdir()
    }

    monkeypatch.setattr(write, "write_run_info", real_write)
    monkeypatch.setattr(trainrun, "fit", no_training)
    monkeypatch.setattr(trainrun, "fit_final", no_training)
    resumed = api.train(config, runs_dir=tmp_path / "cut", quiet=True, resume=True)
    assert resumed.metrics == whole.metrics  # the held-out model's scores
    info = json.loads((resumed.run_dir / "run.json").read_text())
    assert info["final_fit"] == json.loads((whole.run_dir / "run.json").read_text())["final_fit"]
    assert sorted(p.name for p in resumed.run_dir.iterdir() if p.suffix in (".keras", ".json")) == [
        "intervals.json",
        "metrics.json",
        "model.keras",
        "run.json",
        "scaler.json",
    ]
    for a, b in zip(model_weights(resumed.run_dir), model_weights(whole.run_dir), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_the_resume_hint_is_the_exact_command():
    """With --runs-dir, --set and --seed, the hint repeats them (quoted for the shell)."""
    from forecast import api

    assert api.resume_command("long.yaml") == "forecast train long.yaml --resume"
    assert api.resume_command(
        "my configs/a.yaml", "out", ["training.epochs=80", "data.features=[a, b]"], 7
    ) == (
        "forecast train 'my configs/a.yaml' --runs-dir out --set training.epochs=80 "
        "--set 'data.features=[a, b]' --seed 7 --resume"
    )


def test_a_resumed_run_keeps_the_residual_base_as_an_uninterrupted_one_does(
    tmp_path: Path, monkeypatch
):
    """Early stopping's best is the untrained model (the naive base) from before epoch 1;
    a fit cut after epoch 1 saves it in the checkpoint and, resumed, still keeps it."""
    from forecast import api
    from forecast.fitting import callbacks

    config = early_stopping_config(tmp_path)
    overrides = ["model.residual=naive", "training.learning_rate=10", "model.dropout=0"]
    whole = api.train(config, runs_dir=tmp_path / "whole", quiet=True, overrides=overrides)
    history = pd.read_csv(whole.run_dir / "history.csv")
    assert json.loads((whole.run_dir / "run.json").read_text())["best_epoch"] == 0
    interrupt_at_epoch(monkeypatch, config, 2)
    with pytest.raises(KeyboardInterrupt):
        api.train(config, runs_dir=tmp_path / "cut", quiet=True, overrides=overrides)
    (partial,) = (tmp_path / "cut").glob(".es-*.partial")
    state = json.loads((partial / "backup" / "state.json").read_text())
    assert state["epoch"] == 1 and state["early_stopping"]["best_epoch"] == -1
    monkeypatch.setattr(callbacks, "raise_if_stop_requested", lambda: None)
    resumed = api.train(
        config, runs_dir=tmp_path / "cut", quiet=True, overrides=overrides, resume=True
    )
    again = pd.read_csv(resumed.run_dir / "history.csv")
    np.testing.assert_allclose(again["val_loss"], history["val_loss"], rtol=1e-6)
    assert json.loads((resumed.run_dir / "run.json").read_text())["best_epoch"] == 0
    for a, b in zip(model_weights(resumed.run_dir), model_weights(whole.run_dir), strict=True):
        np.testing.assert_array_equal(a, b)  # the starting weights, in both
