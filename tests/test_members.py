"""An ensemble fitted member by member (`model.ensemble_fit: independent`), and how many
local processes `--workers auto` chooses for a list of fits."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from forecast import api
from forecast.cli.app import app
from forecast.config.file import load_config
from forecast.data.panel import read_data
from forecast.fitting.members import member_seed
from forecast.fitting.placement import choose_workers, task_work
from forecast.fitting.task import FitTask
from forecast.runs.read import load_model

from .conftest import fold_config, one_line_error, tiny_config_file, train_and_signal


def _weights(model, prefix: str = "") -> dict[str, list[np.ndarray]]:
    """Layer name (without `prefix`) -> weights, of the layers named with `prefix`."""
    return {
        layer.name.removeprefix(prefix): layer.get_weights()
        for layer in model.layers
        if layer.weights and layer.name.startswith(prefix)
    }


def test_member_one_is_the_plain_model_and_the_others_differ(tmp_path: Path) -> None:
    """Member 1 keeps the config's seed and fits alone: the same weights as the model
    trained without an ensemble; member 2 starts from another seed, so it differs."""
    common = {"training": {"epochs": 2, "batch_size": 16}, "split": {"validation": 0.1}}
    plain = fold_config(tmp_path, "plain.yaml", rows=80, name="plain", **common)
    both = fold_config(
        tmp_path, "both.yaml", rows=80, name="both",
        model={"architecture": "gru", "units": [4], "ensemble": 2,
               "ensemble_fit": "independent"},
        **common,
    )  # fmt: skip
    alone = api.train(plain, tmp_path / "runs", quiet=True)
    pair = api.train(both, tmp_path / "runs", quiet=True)
    one = _weights(load_model(alone.run_dir / "model.keras"))
    ensemble = load_model(pair.run_dir / "model.keras")
    first, second = _weights(ensemble, "m0_"), _weights(ensemble, "m1_")
    assert first.keys() == one.keys() == second.keys()
    for name in one:
        for a, b in zip(first[name], one[name], strict=True):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(second["gru_0"][0], first["gru_0"][0])
    info = json.loads((pair.run_dir / "run.json").read_text())
    assert [m["seed"] for m in info["members"]] == [3, member_seed(3, 1)]
    # no early stopping: every epoch (2) is the best; the final fit continues each member
    # from its held-out weights for a quarter of them, at least one
    assert info["final_fit"]["member_epochs"] == [1, 1]
    assert info["fanout"]["engine"] == "in process" and info["fanout"]["workers"] == 1
    assert info["fanout"]["chosen"] == "given: 1 worker(s)"  # the Python API's default
    # the forecast is the members' median (of two, their mean); member 1 is the plain model
    import keras

    heads = [ensemble.get_layer(f"m{i}_head").output for i in (0, 1)]
    members = keras.Model(ensemble.input, heads)
    window = np.linspace(0.2, 0.8, 6, dtype="float32").reshape(1, 6, 1)
    m0, m1 = (out.numpy() for out in members(window))
    np.testing.assert_allclose(m0, load_model(alone.run_dir / "model.keras")(window), rtol=1e-6)
    np.testing.assert_allclose(ensemble(window).numpy(), (m0 + m1) / 2, rtol=1e-6)
    assert not np.allclose(m0, m1)


def test_a_backtest_fits_an_independent_ensemble_member_by_member(tmp_path: Path) -> None:
    config = fold_config(
        tmp_path, rows=60,
        model={"architecture": "gru", "units": [4], "ensemble": 3,
               "ensemble_fit": "independent"},
    )  # fmt: skip
    result = api.backtest(config, folds=2, runs_dir=tmp_path / "runs", quiet=True)
    assert [f["fold"] for f in result.report["folds"]] == [1, 2]
    assert np.isfinite(result.report["mean"]["model"]["mase"])
    assert result.report["fanout"]["engine"] == "in process"


def test_workers_on_a_joint_ensemble_or_one_model_is_one_line(tmp_path: Path) -> None:
    joint = tiny_config_file(tmp_path, model={"architecture": "lstm", "units": [8], "ensemble": 3})
    runner = CliRunner()
    done = runner.invoke(app, ["train", str(joint), "--workers", "2"])
    assert done.exit_code == 2
    assert one_line_error(done) == (
        "error: --workers runs an ensemble's members in parallel, but model.ensemble has 3 "
        "members trained jointly; set model.ensemble: N and model.ensemble_fit: independent "
        "(e.g. --set model.ensemble=5 --set model.ensemble_fit=independent), or leave out "
        "--workers"
    )
    assert not (tmp_path / "runs").exists()  # refused before anything is written
    # RAY_ADDRESS, as a Ray machine sets it, is used where there are members to fan out and
    # otherwise left alone: this plain model trains here (nothing answers at that address)
    plain = runner.invoke(
        app, ["train", str(joint), "--quiet", "--set", "model.ensemble=1"],
        env={"RAY_ADDRESS": "127.0.0.1:1"},
    )  # fmt: skip
    assert plain.exit_code == 0, plain.output
    bad = runner.invoke(app, ["backtest", str(joint), "--workers", "many"])
    assert bad.exit_code == 2
    assert "give a number of processes or auto, not 'many'" in bad.output


@pytest.fixture
def tasks_of(tmp_path: Path):
    """n fold tasks of a `rows`-row monthly series: window 10, horizon 1, batch 32, 20
    epochs without early stopping, validation 0.1."""

    def make(n: int, rows: int) -> list[FitTask]:
        path = tiny_config_file(
            tmp_path, f"w{rows}.yaml", rows=rows,
            window={"input_steps": 10, "horizon": 1},
            training={"epochs": 20, "batch_size": 32, "early_stopping": False},
        )  # fmt: skip
        config = load_config(path)
        data = read_data(config.data)
        return [FitTask(config, data, back=0, number=i + 1) for i in range(n)]

    return make


def test_workers_auto_is_chosen_from_the_cores_and_the_work(tasks_of) -> None:
    gib = 2**30
    # 400 rows, 40 of them validation: 360 - 10 windows; 11 batches of 32 x 20 epochs
    small = tasks_of(3, 400)
    assert task_work(small[0]) == (350, 220)
    # without validation rows a fold also fits up to 3 inner folds for its intervals: 4 fits
    # of 390 windows' 13 batches, 20 epochs; with intervals off, the one fit
    config = small[0].config
    noval = config.model_copy(update={"split": config.split.model_copy(update={"validation": 0})})
    assert task_work(replace(small[0], config=noval)) == (390, 4 * 13 * 20)
    quiet = noval.model_copy(update={"intervals": []})
    assert task_work(replace(small[0], config=quiet)) == (390, 13 * 20)
    assert choose_workers(small[:1], cores=8, memory=64 * gib, gpu=False) == (1, "one fit")
    assert choose_workers(small, cores=1, memory=64 * gib, gpu=False) == (1, "one core")
    # 2 processes for 2 or 3 fits save 1 fit's batches (220): less than starting them costs
    assert choose_workers(small[:2], cores=2, memory=64 * gib, gpu=False) == (
        1,
        "2 processes would save 220 of 440 expected batches, too few to repay starting them",
    )
    assert choose_workers(small, cores=2, memory=64 * gib, gpu=False)[0] == 1
    more = tasks_of(4, 400)  # 2 processes for 4 fits: 2 in turn each, 440 batches saved
    assert choose_workers(more, cores=2, memory=64 * gib, gpu=False) == (2, "one process per core")
    assert choose_workers(small, cores=8, memory=64 * gib, gpu=False) == (3, "one process per core")
    # each process holds up to 1.25 GiB: 3 GiB free holds 2 of them, 1 GiB none beside this
    assert choose_workers(more, cores=8, memory=3 * gib, gpu=False) == (
        2,
        "as many processes as 3.0 GiB of free memory holds",
    )
    assert choose_workers(more, cores=8, memory=gib, gpu=False) == (
        1,
        "1.0 GiB of free memory holds one process",
    )
    # fits that use a GPU, or span devices or workers themselves, run one after another
    assert choose_workers(more, cores=8, memory=64 * gib, gpu=True) == (1, "a GPU")
    mirrored = [
        replace(
            t,
            config=t.config.model_copy(
                update={"training": t.config.training.model_copy(update={"distribute": "mirrored"})}
            ),
        )
        for t in more
    ]
    assert choose_workers(mirrored, cores=8, memory=64 * gib, gpu=False) == (
        1,
        "training.distribute: mirrored",
    )
    # a fold of an independent ensemble of 3 is 3 fits
    model = small[0].config.model.model_copy(update={"ensemble": 3, "ensemble_fit": "independent"})
    three = replace(small[0], config=small[0].config.model_copy(update={"model": model}))
    assert task_work(three) == (350, 660)
    # 2,000 rows: 1,790 windows a fit, 56 batches x 20 epochs: worth 2 processes for 2 fits
    large = tasks_of(2, 2000)
    assert task_work(large[0]) == (1790, 1120)
    assert choose_workers(large, cores=2, memory=64 * gib, gpu=False) == (2, "one process per core")


def test_an_interrupted_ensemble_keeps_its_finished_members_and_resumes(tmp_path: Path) -> None:
    """Ctrl-C while member 2 of 3 trains: member 1 is kept; --resume fits members 2 and 3
    only, and the run equals one never stopped."""
    config = fold_config(
        tmp_path, "e.yaml", rows=80, name="e",
        model={"architecture": "gru", "units": [4], "ensemble": 3,
               "ensemble_fit": "independent"},
        training={"epochs": 40, "early_stopping": False},
    )  # fmt: skip
    code, _, stderr = train_and_signal(config, "ensemble member 2 of 3", signal.SIGINT, 1.0)
    assert code == 130, stderr
    kept = [p for p in (tmp_path / "runs").iterdir() if p.name.endswith(".partial")]
    assert len(kept) == 1 and sorted(p.name for p in (kept[0] / "members").iterdir()) == [
        "member_1.json",
        "member_1.npz",
    ]
    assert "the finished ensemble members are kept in" in stderr
    resumed = subprocess.run(
        [sys.executable, "-m", "forecast", "train", config.name, "--resume"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "with 1 ensemble member(s) trained" in resumed.stderr
    held_out = resumed.stderr.split("final fit:")[0]  # the final fit refits all three
    assert "ensemble member 1 of 3" not in held_out  # not fitted again
    assert "ensemble member 2 of 3" in held_out
    whole = api.train(config, tmp_path / "whole", quiet=True)
    run = Path(resumed.stdout.strip().splitlines()[-1])
    if not run.is_absolute():
        run = tmp_path / run
    for name in ("metrics.json", "test_predictions.csv"):
        assert (run / name).read_bytes() == (whole.run_dir / name).read_bytes(), name
    saved = [load_model(r / "model.keras").get_weights() for r in (run, whole.run_dir)]
    for a, b in zip(*saved, strict=True):
        np.testing.assert_array_equal(a, b)
    losses = ["epoch", "loss", "val_loss"]  # history.csv without the seconds an epoch took
    assert pd.read_csv(run / "history.csv")[losses].equals(
        pd.read_csv(whole.run_dir / "history.csv")[losses]
    )
    assert not (run / "members").exists()  # only --resume needed them
