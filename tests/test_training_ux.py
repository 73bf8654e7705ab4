"""The training experience: Ctrl-C at any moment, the final fit's progress and its place in
loss.png, predict's extrapolation warning, and the cuDNN warning only where a GPU is."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import pytest

from forecast.fitting import announce

from .conftest import monthly_frame, tiny_config_file, train_and_signal, write_config, write_csv


def assert_clean_stop(returncode: int, expected: int, stderr: str) -> None:
    assert returncode == expected, stderr
    for bad in ("Traceback", "Exception ignored", "internal error"):
        assert bad not in stderr, stderr


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.05, 0.2, 0.6, 1.5])
def test_ctrl_c_during_the_final_fit_exits_130_without_a_traceback(long_config, delay):
    returncode, stderr = train_and_signal(long_config, "final fit:", signal.SIGINT, delay)[::2]
    assert_clean_stop(returncode, 130, stderr)
    assert f"continue with `forecast train {long_config.name} --resume`" in stderr
    (partial,) = (long_config.parent / "runs").glob(".long-*.partial")
    assert (partial / "held_out.keras").is_file() and (partial / "fit.json").is_file()
    assert [p for p in (long_config.parent / "runs").iterdir() if p.name[0] != "."] == []


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_during_the_first_fit_exits_cleanly(long_config, sig, code):
    returncode, stderr = train_and_signal(long_config, "epoch 2/", sig, 0.05)[::2]
    assert_clean_stop(returncode, code, stderr)
    (partial,) = (long_config.parent / "runs").glob(".long-*.partial")
    assert (partial / "backup").is_dir()  # the finished epochs, for --resume


def test_a_stop_waits_for_the_end_of_tensorflow_work_and_is_immediate_elsewhere(monkeypatch):
    from forecast import interrupts

    monkeypatch.setattr(interrupts, "_requested", [])
    with pytest.raises(KeyboardInterrupt):  # reading data, say: at once
        interrupts.request_stop(KeyboardInterrupt)
    monkeypatch.setattr(interrupts, "_requested", [])
    done = []
    with pytest.raises(interrupts.Terminated), interrupts.tensorflow_work():
        with interrupts.tensorflow_work():
            interrupts.request_stop(interrupts.Terminated)  # in a batch: only noted
            done.append("the batch ends")
        done.append("never: the inner section's end raised it")
    assert done == ["the batch ends"]


# --------------------------------------------------------------------------- the final fit


@pytest.mark.slow
def test_the_final_fit_shows_its_epochs_and_loss_png_marks_it(tmp_path: Path, monkeypatch):
    import json

    import pandas as pd
    from matplotlib.figure import Figure
    from typer.testing import CliRunner

    from forecast.cli.app import app

    from .conftest import early_stopping_config

    config = early_stopping_config(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    info = json.loads((run_dir / "run.json").read_text())
    best, epochs = info["best_epoch"], info["final_fit"]["epochs"]
    assert 1 <= best < info["epochs_run"]  # early stopping restored an epoch
    assert epochs == math.ceil(best / 4)  # continued from it for a quarter of its epochs

    # stderr: the final fit's epochs, one line each, as the first fit's
    lines = result.stderr.splitlines()
    announced = lines.index(
        f"final fit: {epochs} epoch(s) on all 150 rows from the held-out weights"
    )
    shown = [line.split("  ")[0] for line in lines[announced + 1 :] if line.startswith("epoch ")]
    assert shown == [f"epoch {e}/{epochs}" for e in range(1, epochs + 1)]

    # final_history.csv: history.csv's columns (DESIGN.md section 3), no validation loss
    final = pd.read_csv(run_dir / "final_history.csv")
    assert list(final.columns) == ["epoch", "loss", "val_loss", "learning_rate", "seconds"]
    assert final["epoch"].tolist() == list(range(1, epochs + 1))
    assert final["val_loss"].isna().all() and (final["loss"] > 0).all()
    assert final["loss"].iloc[-1] == pytest.approx(info["final_fit"]["loss"])
    held_out = pd.read_csv(run_dir / "history.csv")
    assert held_out["epoch"].tolist() == list(range(1, info["epochs_run"] + 1))  # unchanged

    # loss.png: the restored epoch as a vertical line, the final fit's curve, both labelled
    drawn = {}
    real_savefig = Figure.savefig

    def keep_lines(self, fname, *args, **kwargs):
        ax = self.axes[0]
        drawn[ax.get_title()] = {
            line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
            for line in ax.get_lines()
        }
        return real_savefig(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep_lines)
    plotted = runner.invoke(app, ["plot", "--run", str(run_dir)])
    assert plotted.exit_code == 0, plotted.output
    loss = drawn["training and validation loss"]
    assert loss[f"restored (best) epoch {best}"][0] == [best, best]
    xs, ys = loss["final fit loss (all 150 rows)"]
    assert xs == list(range(1, epochs + 1))
    assert ys == pytest.approx(final["loss"].tolist())
    assert loss["train loss"][0] == held_out["epoch"].tolist()


# --------------------------------------------------------------------------- cuDNN warning


def relu_gru_config(folder: Path) -> Path:
    write_csv(folder / "s.csv", monthly_frame(60))
    return write_config(
        folder / "relu.yaml",
        name="relu",
        seed=1,
        data={"path": "s.csv", "time_column": "date", "features": ["sales"]},
        window={"input_steps": 6},
        model={"layers": [{"gru": {"units": 2, "activation": "relu"}}]},
        training={"epochs": 1, "batch_size": 32, "final_fit": False},
    )


def train_stderr(config: Path) -> str:
    from typer.testing import CliRunner

    from forecast.cli.app import app

    result = CliRunner().invoke(app, ["train", str(config), "--runs-dir", str(config.parent)])
    assert result.exit_code == 0, result.output
    return result.stderr


CUDNN = "model.layers[0] (gru): activation relu rules out the cuDNN kernel"


def test_no_cudnn_warning_without_a_gpu(tmp_path: Path):
    import tensorflow as tf

    assert tf.config.list_physical_devices("GPU") == []  # this machine, as most users'
    assert "cuDNN" not in train_stderr(relu_gru_config(tmp_path))


def test_the_cudnn_warning_where_a_gpu_is_visible_once_per_process(tmp_path: Path, monkeypatch):

    monkeypatch.setattr(announce, "gpu_visible", lambda: True)
    monkeypatch.setattr(announce, "_SAID", set())  # a new process
    config = relu_gru_config(tmp_path)
    assert train_stderr(config).count(CUDNN) == 1
    assert CUDNN not in train_stderr(config)  # the same process: said already


def test_the_gpu_query_asks_tensorflow(monkeypatch):
    import tensorflow as tf

    from forecast.model.build import gpu_visible

    gpu = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")
    asked = []

    def devices(kind=None):
        asked.append(kind)
        return [gpu] if kind == "GPU" else []

    monkeypatch.setattr(tf.config, "list_physical_devices", devices)
    assert gpu_visible() is True and asked == ["GPU"]
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert gpu_visible() is False


# --------------------------------------------------------------------------- extrapolation


def quick_run(folder: Path, name: str, model: dict, transform: str = "none") -> Path:
    """A GRU(4) trained 1 epoch on 100 monthly rows (the scaler sees rows 0-71)."""
    from forecast import api

    config = tiny_config_file(
        folder,
        f"{name}.yaml",
        rows=100,
        name=name,
        seed=1,
        data={"transform": transform},
        model={"architecture": "gru", "units": [4], **model},
        training={"epochs": 1, "final_fit": False},
        intervals=[],
    )
    return api.train(config, runs_dir=folder / "runs", quiet=True).run_dir


def predict_warnings(run_dir: Path, csv: Path) -> list[str]:
    from typer.testing import CliRunner

    from forecast.cli.app import app

    result = CliRunner().invoke(app, ["predict", "--run", str(run_dir), "--csv", str(csv)])
    assert result.exit_code == 0, result.output
    return [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


def recent_rows(folder: Path, raise_last: int, by: float) -> tuple[Path, float, float]:
    """The 72 rows the scaler saw, the last `raise_last` of them `by` training spans above
    the training max: (csv, training max, highest value written)."""
    frame = monthly_frame(100).iloc[:72].copy()
    high = float(frame["sales"].max())
    span = high - float(frame["sales"].min())
    frame.loc[72 - raise_last :, "sales"] = high + by * span
    return write_csv(folder / "recent.csv", frame), high, high + by * span


def test_predict_says_why_values_outside_the_training_range_matter(tmp_path: Path):
    run_dir = quick_run(tmp_path, "plain", {})
    csv, high, top = recent_rows(tmp_path, 3, 0.5)
    assert predict_warnings(run_dir, csv) == [
        f"warning: {csv}: 3 of the last 12 values of sales (up to {top:.6g}) lie above "
        f"anything the model saw in training (max {high:.6g}); without window_norm the "
        "network's inputs are then outside its scaler's range, so its forecasts are "
        "extrapolation"
    ]


def test_no_extrapolation_warning_with_window_norm(tmp_path: Path):
    """Each window is centred on its last value and scaled by its own steps: a level above
    anything in training reaches the network as an ordinary input."""
    run_dir = quick_run(tmp_path, "normed", {"window_norm": True, "residual": "naive"})
    csv, _, _ = recent_rows(tmp_path, 3, 0.5)
    assert predict_warnings(run_dir, csv) == []


def test_under_differences_the_changes_are_checked_not_the_level(tmp_path: Path):
    run_dir = quick_run(tmp_path, "diffs", {"residual": "naive"}, transform="diff")
    frame = monthly_frame(100).iloc[:72].copy()
    frame["sales"] += 1000  # every level far above training, the changes as they were
    assert predict_warnings(run_dir, write_csv(tmp_path / "shifted.csv", frame)) == []
    frame.loc[71, "sales"] += 500  # one change far above any in training
    (line,) = predict_warnings(run_dir, write_csv(tmp_path / "jump.csv", frame))
    assert line.startswith(f"warning: {tmp_path / 'jump.csv'}: 1 of the last 12 changes of ")
    assert "sales (up to +5" in line and "lies above anything the model saw in training" in line
    assert line.endswith("so its correction to the naive base is extrapolation")
