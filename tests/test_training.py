"""Early stopping: when it stops, which weights the saved model holds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast import api
from forecast.config.file import load_config
from forecast.data.prepare import prepare
from forecast.data.windows import input_windows, target_windows
from forecast.runs import read

from .conftest import early_stopping_config


def config_file(folder: Path, restore: bool) -> Path:
    # the held-out fit's model is under test
    return early_stopping_config(folder, restore=restore, final_fit=False)


@pytest.fixture(scope="module")
def held_out_runs(tmp_path_factory):
    """held_out_runs(restore) -> (config, TrainResult): early stopping's held-out fit (no final
    fit), trained once per `restore` for the tests of this module, which only read it."""
    trained = {}

    def get(restore: bool) -> tuple[Path, api.TrainResult]:
        if restore not in trained:
            folder = tmp_path_factory.mktemp(f"restore-{restore}")
            config = config_file(folder, restore)
            trained[restore] = config, api.train(config, runs_dir=folder / "runs", quiet=True)
        return trained[restore]

    return get


def validation_loss(run_dir: Path, config: Path) -> float:
    """MSE of the saved model on the validation windows, in scaled units (as Keras logs it)."""
    prepared = prepare(load_config(config))
    origins = prepared.split.val_origins
    x = input_windows(prepared.features.astype("float32"), origins, 12)  # (N, L, F)
    y = target_windows(prepared.targets, origins, 1)  # (N, 1, K)
    predicted = read.load_model(run_dir / "model.keras").predict(x, verbose=0)
    return float(np.mean((predicted - y) ** 2))


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_stops_after_patience_and_keeps_the_right_weights(held_out_runs, restore):
    config, result = held_out_runs(restore)
    history = pd.read_csv(result.run_dir / "history.csv")
    best = int(history["val_loss"].idxmin()) + 1
    # stopped 3 epochs (the patience) after the best one, well before 80
    assert history["epoch"].tolist() == list(range(1, best + 4))
    kept = validation_loss(result.run_dir, config)
    if restore:  # the saved model is the best epoch's
        assert kept == pytest.approx(history["val_loss"].min(), rel=1e-4)
    else:  # the last epoch's
        assert kept == pytest.approx(history["val_loss"].iloc[-1], rel=1e-4)
        assert kept > history["val_loss"].min()


def test_the_final_fit_trains_on_every_row_for_the_epochs_found(held_out_runs, tmp_path):
    import json

    config, held_out = held_out_runs(True)  # the file says final_fit: false
    finals = {
        start: api.train(
            config,
            runs_dir=tmp_path / start,
            quiet=True,
            overrides=["training.final_fit=true", f"training.final_fit_start={start}"],
        )
        for start in ("held_out", "scratch")
    }
    rows = len(pd.read_csv(config.parent / "sales.csv"))
    first_loss = {}
    for start, final in finals.items():
        info = json.loads((final.run_dir / "run.json").read_text())
        # every row: all windows of the 150 rows (input 12, one step), none held out
        assert info["final_fit"]["rows"] == rows
        assert info["final_fit"]["windows"] == rows - 12 - 1 + 1
        assert info["final_fit"]["start"] == start
        best = info["best_epoch"]
        assert best >= 5  # so that a quarter of it is fewer epochs
        # from scratch: the epochs early stopping found; from the held-out weights, a quarter
        expected = best if start == "scratch" else math.ceil(best / 4)
        assert info["final_fit"]["epochs"] == expected
        history = pd.read_csv(final.run_dir / "final_history.csv")
        assert len(history) == expected
        first_loss[start] = history["loss"].iloc[0]
        # metrics.json is the held-out evaluation either way; the saved model is the refit
        assert final.metrics == held_out.metrics
        kept, refit = model_weights(held_out.run_dir), model_weights(final.run_dir)
        assert any(not np.array_equal(a, b) for a, b in zip(kept, refit, strict=True))
    # the held-out start begins where the held-out fit ended, not at a new model's loss
    held_out_history = pd.read_csv(held_out.run_dir / "history.csv")
    assert first_loss["held_out"] < first_loss["scratch"]
    assert first_loss["held_out"] < 2 * held_out_history["loss"].iloc[best - 1]
    assert json.loads((held_out.run_dir / "run.json").read_text())["final_fit"] is False


def model_weights(run_dir: Path) -> list:
    return read.load_model(run_dir / "model.keras").get_weights()


def test_cosine_schedule_decays_to_a_tenth_over_the_epochs(tmp_path: Path):
    from .conftest import small_gru_config

    config = small_gru_config(
        tmp_path,
        epochs=3,
        learning_rate=0.01,
        lr_schedule="cosine",
        early_stopping=False,
        final_fit=False,
    )
    result = api.train(config, runs_dir=tmp_path / "runs", quiet=True)
    rates = pd.read_csv(result.run_dir / "history.csv")["learning_rate"].to_numpy()
    # after epoch e of 3: 0.01 * (0.1 + 0.9 * (1 + cos(pi * e / 3)) / 2)
    expected = [0.01 * (0.1 + 0.9 * (1 + np.cos(np.pi * e / 3)) / 2) for e in (1, 2, 3)]
    assert rates == pytest.approx(expected, rel=1e-5)


def test_tensorboard_logs_each_epochs_loss_and_learning_rate(tmp_path: Path, held_out_runs):
    """training.tensorboard: the held-out fit's train and validation losses and the learning
    rate per epoch, and the final fit's, under RUN_DIR/tensorboard/; the same numbers as
    history.csv."""
    import pandas as pd
    import tensorflow as tf

    from forecast import api
    from tests.conftest import small_gru_config

    config = small_gru_config(tmp_path, epochs=3, tensorboard=True, early_stopping=False)
    run_dir = api.train(config, runs_dir=tmp_path / "runs", quiet=True).run_dir

    def scalars(folder: Path) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        for path in folder.glob("events.out.tfevents.*"):
            for raw in tf.data.TFRecordDataset(str(path)):
                event = tf.compat.v1.Event.FromString(raw.numpy())
                for value in event.summary.value:
                    found.setdefault(value.tag, []).append(float(tf.make_ndarray(value.tensor)))
        return found

    history = pd.read_csv(run_dir / "history.csv")
    train = scalars(run_dir / "tensorboard" / "held_out" / "train")
    assert train["epoch_loss"] == pytest.approx(history["loss"].tolist(), rel=1e-5)
    assert train["epoch_learning_rate"] == pytest.approx(history["learning_rate"].tolist())
    validation = scalars(run_dir / "tensorboard" / "held_out" / "validation")
    assert validation["epoch_loss"] == pytest.approx(history["val_loss"].tolist(), rel=1e-5)
    final = pd.read_csv(run_dir / "final_history.csv")  # 1: a quarter of 3, at least one
    final_board = scalars(run_dir / "tensorboard" / "final" / "train")["epoch_loss"]
    assert len(final) == 1 and final_board == pytest.approx(final["loss"].tolist(), rel=1e-5)
    # off by default: a run of a config that does not mention it has no such folder
    config, plain = held_out_runs(True)
    assert "tensorboard" not in config.read_text()
    assert not (plain.run_dir / "tensorboard").exists()


def test_tensorboard_without_the_package_is_one_line_before_training(tmp_path: Path, monkeypatch):
    import importlib.util

    from forecast import api
    from forecast.errors import ConfigError
    from tests.conftest import small_gru_config

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "tensorboard" else find_spec(n)
    )
    config = small_gru_config(tmp_path, epochs=1, tensorboard=True)
    with pytest.raises(ConfigError, match=r"pip install 'forecast\[tensorboard\]'"):
        api.train(config, runs_dir=tmp_path / "runs", quiet=True)
    assert not (tmp_path / "runs").exists()


def test_progress_within_an_epoch_on_a_terminal_only(tmp_path: Path, monkeypatch, capsys):
    """On a terminal, batches show on one rewritten line, cleared before the epoch's line;
    not on a terminal (a log file), only the line per epoch."""
    import io
    import sys

    from forecast import api
    from forecast.fitting import callbacks, training
    from tests.conftest import small_gru_config

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(callbacks, "PROGRESS_EVERY", 0.0)  # every batch
    monkeypatch.setattr(training, "MAX_STEPS_PER_EXECUTION", 1)  # one graph call per batch
    config = small_gru_config(tmp_path, epochs=2, batch_size=8, early_stopping=False)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    api.train(config, runs_dir=tmp_path / "runs", overrides=["training.final_fit=false"])
    shown = terminal.getvalue()
    assert "\repoch 1/2  batch 1/" in shown and "\repoch 2/2  batch 2/" in shown
    assert "\r\033[Kepoch 1/2  loss" in shown  # cleared, then the epoch's own line
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    api.train(config, runs_dir=tmp_path / "runs2", overrides=["training.final_fit=false"])
    logged = sys.stderr.getvalue()
    assert "batch" not in logged and "\r" not in logged
    assert [line.split("  ")[0] for line in logged.splitlines() if line.startswith("epoch")] == [
        "epoch 1/2",
        "epoch 2/2",
    ]


def test_the_training_dataset_is_one_epoch_in_the_order_of_seed_and_epoch():
    """Each pass over the training dataset is one epoch (so a call of many batches ends with
    it), every window once, in an order that is a function of (seed, epoch) only."""
    from forecast.fitting.dataset import EpochOrder, WindowSource, window_dataset

    series = np.arange(40, dtype="float32").reshape(-1, 1)
    origins = np.arange(3, 36)  # 33 windows of 4 rows, targets the next row
    order = EpochOrder(origins, seed=7)
    dataset = window_dataset(WindowSource(series, series, 4, 1), origins, 8, order)

    def one_pass() -> list[int]:
        return [int(v) for x, _ in dataset for v in x[:, -1, 0].numpy()]  # each window's origin

    orders = {}
    for number in (0, 1, 2, 1):
        order.set(number)
        orders.setdefault(number, []).append(one_pass())
    for seen in orders.values():
        assert sorted(seen[0]) == origins.tolist()  # every window once, nothing more
        assert all(order == seen[0] for order in seen)  # the same epoch, the same order
    assert orders[0][0] != orders[1][0] != orders[2][0]
    assert EpochOrder(origins, seed=7, epoch=2).variable.numpy().tolist() == orders[2][0]


def test_an_epoch_in_one_graph_call_trains_the_same_weights(tmp_path: Path, monkeypatch):
    """The same weights and losses whichever way the batches reach the model: one pass over
    every epoch at one batch per call (short epochs, the default here), or a pass per epoch
    with all its batches in one call of the training function or one call per batch."""
    from forecast.fitting import training
    from forecast.fitting.fit import fit
    from tests.conftest import small_gru_config

    config = small_gru_config(tmp_path, epochs=3, batch_size=8, early_stopping=False)
    runs = {}
    for name, short, most in (("whole", 32, 256), ("one call", 0, 256), ("per batch", 0, 1)):
        monkeypatch.setattr(training, "SHORT_EPOCH", short)
        monkeypatch.setattr(training, "MAX_STEPS_PER_EXECUTION", most)
        model, fitted, _ = fit(prepare(load_config(config)), quiet=True)  # the fit alone
        runs[name] = (model.get_weights(), [row["loss"] for row in fitted.history])
    first, losses = runs["whole"]
    assert len(losses) == 3 and all(np.isfinite(losses))
    for name in ("one call", "per batch"):
        assert all(np.array_equal(a, b) for a, b in zip(first, runs[name][0], strict=True))
        assert runs[name][1] == losses, name


def test_an_xla_fit_uses_xla_and_repeats_bit_for_bit(tmp_path: Path):
    """training.jit_compile: true compiles the training step with XLA although op determinism
    is on (Keras alone would turn it off), and the same seed gives the same weights."""
    from forecast.fitting.fit import fit
    from tests.conftest import small_gru_config

    # 60 training windows in 5 whole batches: one batch shape, so one XLA compile per fit
    config = small_gru_config(tmp_path, epochs=2, batch_size=12, early_stopping=False)
    fits = []
    for jit in ("true", "true", "false"):
        prepared = prepare(load_config(config, overrides=[f"training.jit_compile={jit}"]))
        model, _, info = fit(prepared, quiet=True)
        fits.append((info["jit_compile"], model.get_weights()))
    assert [f[0] for f in fits] == [True, True, False]
    assert all(np.array_equal(a, b) for a, b in zip(fits[0][1], fits[1][1], strict=True))
    # XLA's fused kernels round differently from the graph's: the same fit, other last bits
    assert not all(np.array_equal(a, b) for a, b in zip(fits[0][1], fits[2][1], strict=True))
    assert all(np.allclose(a, b, atol=1e-3) for a, b in zip(fits[0][1], fits[2][1], strict=True))


@pytest.mark.parametrize(
    ("schedule", "in_memory", "members"),
    [
        ("constant", True, 1),
        ("cosine", False, 1),  # False: the validation windows through tf.data
        ("constant", True, 3),  # an ensemble, trained as one wide model (forecast.model.stacked)
    ],
)
def test_a_residual_base_no_epoch_beats_is_kept(
    tmp_path, monkeypatch, schedule, in_memory, members
):
    """A learning rate far too high: every epoch forecasts worse than the untrained model,
    which forecasts its base (here the last value), so early stopping keeps the base."""
    import json

    import forecast.fitting.training

    if not in_memory:
        monkeypatch.setattr(forecast.fitting.training, "VALIDATION_IN_MEMORY", 0)
    config = early_stopping_config(tmp_path, restore=True, final_fit=True)
    overrides = ["model.residual=naive", "training.learning_rate=10", "model.dropout=0"]
    overrides += [f"training.lr_schedule={schedule}", f"model.ensemble={members}"]
    result = api.train(config, runs_dir=tmp_path / "runs", quiet=True, overrides=overrides)
    info = json.loads((result.run_dir / "run.json").read_text())
    history = pd.read_csv(result.run_dir / "history.csv")
    assert info["best_epoch"] == 0
    assert history["epoch"].tolist() == [1, 2, 3]  # the patience, then the stop
    assert info["final_fit"]["epochs"] == 0  # nothing to refit: the base needs no rows
    # the saved model forecasts the last value of each window (the two features' own)
    prepared = prepare(load_config(config))
    origins = prepared.split.val_origins
    x = input_windows(prepared.features.astype("float32"), origins, 12)  # (N, L, F)
    predicted = read.load_model(result.run_dir / "model.keras").predict(x, verbose=0)  # (N, 1, 2)
    np.testing.assert_allclose(predicted[:, 0, :], x[:, -1, :], atol=1e-6)
    # and its validation loss is below every epoch's, which is why it was kept
    y = target_windows(prepared.targets, origins, 1)
    assert float(np.mean((predicted - y) ** 2)) < history["val_loss"].min()
    # predict says so, and forecasts the last row's values
    from typer.testing import CliRunner

    from forecast.cli.app import app

    said = CliRunner().invoke(
        app, ["predict", "--run", str(result.run_dir), "--csv", str(tmp_path / "sales.csv")]
    )
    assert said.exit_code == 0, said.output
    assert "forecast by the naive base alone: no training epoch beat it" in said.stderr
    last = pd.read_csv(tmp_path / "sales.csv").iloc[-1]
    forecast = pd.read_csv(result.run_dir / "forecast.csv").iloc[0]
    assert forecast["sales"] == pytest.approx(last["sales"], rel=1e-5)


def test_mirrored_strategy_fits_under_the_strategy(tmp_path: Path, monkeypatch):
    """training.distribute: mirrored builds the model in a MirroredStrategy's scope, so
    Keras runs each training step through that strategy; run.json records it with its
    replicas (every local GPU, or the CPU as its one replica where there is none)."""
    import json

    import tensorflow as tf

    from tests.conftest import small_gru_config

    steps = []  # (step function, replicas) for each step Keras ran through the strategy

    class Watched(tf.distribute.MirroredStrategy):
        def run(self, fn, args=(), kwargs=None, options=None):
            steps.append((fn.__name__, self.num_replicas_in_sync))
            return super().run(fn, args=args, kwargs=kwargs, options=options)

    monkeypatch.setattr(tf.distribute, "MirroredStrategy", Watched)
    config = small_gru_config(tmp_path, epochs=2, early_stopping=False, final_fit=False)
    result = api.train(
        config, runs_dir=tmp_path / "runs", quiet=True, overrides=["training.distribute=mirrored"]
    )
    replicas = max(1, len(tf.config.list_logical_devices("GPU")))
    assert ("train_step", replicas) in steps
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["strategy"] == {
        "name": "mirrored",
        "engine": "keras model.fit",
        "replicas": replicas,
    }
    history = pd.read_csv(result.run_dir / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    assert np.isfinite(history["loss"]).all() and (history["loss"] > 0).all()
    assert np.isfinite(result.metrics["model"]["mae"])


@pytest.mark.parametrize("dropout", [0.0, 0.2])  # a stacked ensemble, and a plain one
def test_an_ensembles_final_fit_starts_from_its_held_out_members(tmp_path, dropout):
    from .conftest import tiny_config_file

    config = tiny_config_file(
        tmp_path,
        rows=150,
        model={"units": [8], "ensemble": 3, "dropout": dropout},
        training={"epochs": 8, "early_stopping": False, "learning_rate": 0.01},
    )
    scratch = api.train(
        config, runs_dir=tmp_path / "s", quiet=True, overrides=["training.final_fit_start=scratch"]
    )
    warm = api.train(config, runs_dir=tmp_path / "w", quiet=True)
    held_out = pd.read_csv(warm.run_dir / "history.csv")
    losses = pd.read_csv(scratch.run_dir / "history.csv")["loss"]
    assert held_out["loss"].equals(losses)  # the same held-out fit
    first = {
        name: pd.read_csv(result.run_dir / "final_history.csv")["loss"]
        for name, result in (("warm", warm), ("scratch", scratch))
    }
    assert len(first["warm"]) == 2 and len(first["scratch"]) == 8  # ceil(8 / 4), and 8
    # every member begins where its held-out fit ended (a new member's loss is far higher)
    assert first["warm"].iloc[0] < 2 * held_out["loss"].iloc[-1]
    assert first["warm"].iloc[0] < 0.5 * first["scratch"].iloc[0]


@pytest.mark.parametrize(
    "model",
    [
        {"units": [8], "dropout": 0.2},  # dropout: its random generators reset too
        {"units": [8], "ensemble": 3},  # a stacked ensemble: saved as its plain members
    ],
)
def test_the_final_fit_refits_the_held_out_model_as_a_new_one_would(tmp_path, monkeypatch, model):
    """The final fit resets and refits the model the held-out fit built and traced, instead
    of building another: one model built for both fits, and a final model.keras equal, to
    the bit, to the one a newly built model gives."""
    import forecast.fitting.fit as fitting
    import forecast.workflows.trainrun as trainrun

    from .conftest import tiny_config_file

    config = tiny_config_file(
        tmp_path,
        rows=150,
        model=model,
        training={"epochs": 8, "early_stopping": False, "learning_rate": 0.01},
    )
    built = []
    models_for = fitting.models_for
    monkeypatch.setattr(
        fitting, "models_for", lambda *a, **k: built.append(1) or models_for(*a, **k)
    )
    reused = api.train(config, runs_dir=tmp_path / "r", quiet=True)
    builds_reused = len(built)
    monkeypatch.setattr(trainrun, "Compiled", lambda limit: None)  # every fit builds its own
    built.clear()
    fresh = api.train(config, runs_dir=tmp_path / "f", quiet=True)
    assert builds_reused == len(built) - 1  # the final fit built nothing
    for name in ("history.csv", "final_history.csv"):  # the same losses, epoch by epoch
        a, b = (pd.read_csv(r.run_dir / name).drop(columns="seconds") for r in (reused, fresh))
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    weights = [read.load_model(r.run_dir / "model.keras").get_weights() for r in (reused, fresh)]
    assert len(weights[0]) == len(weights[1]) > 0
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)
