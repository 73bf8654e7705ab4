from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from forecast.cli.app import app
from forecast.config.file import load_config
from forecast.data.prepare import prepare
from forecast.data.reading import read_series
from forecast.workflows.backtest import backtest_origins

from .conftest import fold_config, monthly_frame, write_csv


def test_origins_are_horizon_apart_and_end_at_the_last_row():
    assert backtest_origins(rows=100, folds=3, horizon=5).tolist() == [84, 89, 94]
    # the last fold forecasts rows 95..99: the last row is 99
    assert backtest_origins(rows=10, folds=1, horizon=1).tolist() == [8]
    # --step: origins 7 rows apart, still ending at the last row
    assert backtest_origins(rows=100, folds=3, horizon=5, step=7).tolist() == [80, 87, 94]


def test_backtest_step_and_the_dates_each_fold_forecasts(tmp_path):
    config = fold_config(tmp_path)
    result = CliRunner().invoke(
        app,
        ["backtest", str(config), "--folds", "2", "--step", "6", "--runs-dir", str(tmp_path / "r")],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    frame = pd.read_csv(tmp_path / "sales.csv")
    # 60 rows, horizon 2, step 6: origins 51 and 57
    assert [f["origin"] for f in report["folds"]] == frame["date"].iloc[[51, 57]].tolist()
    assert report["step"] == 6
    table = result.stdout.splitlines()
    assert "forecasts" in table[0]
    dates = frame["date"]
    assert f"{dates[52]} .. {dates[53]}" in table[1] and f"{dates[58]} .. {dates[59]}" in table[2]
    bad = CliRunner().invoke(app, ["backtest", str(config), "--folds", "3", "--step", "0"])
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "error: --step must be >= 1 (rows between fold origins), got 0"


def test_several_configs_in_one_backtest_command(tmp_path):
    """Each config its own run and block of output; all checked before any is run."""
    first = fold_config(tmp_path)
    write_csv(tmp_path / "other.csv", monthly_frame(70, seed=5))
    text = first.read_text(encoding="utf-8").replace("sales.csv", "other.csv")
    second = tmp_path / "other.yaml"
    second.write_text(text.replace("name: bt", "name: other"), encoding="utf-8")
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        app, ["backtest", str(first), str(second), "--folds", "2", "--runs-dir", str(runs)]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"== {first} =="
    assert f"== {second} ==" in lines
    paths = [Path(line) for line in lines if line.endswith("backtest.json")]
    assert [p.parent.name.split("-backtest-")[0] for p in paths] == ["bt", "other"]
    assert paths[-1] == Path(lines[-1])
    # the second's folds end at its own last row (70 rows, horizon 2: origins 65, 67)
    dates = pd.read_csv(tmp_path / "other.csv")["date"]
    folds = json.loads(paths[1].read_text())["folds"]
    assert [f["origin"] for f in folds] == dates.iloc[[65, 67]].tolist()
    # a bad config among them: exit 2 naming it, before anything runs
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("architecture: gru", "architecture: grux"), encoding="utf-8")
    before = sorted(runs.iterdir())
    failed = CliRunner().invoke(app, ["backtest", str(first), str(bad), "--runs-dir", str(runs)])
    assert failed.exit_code == 2
    assert failed.stderr.startswith("error: ") and "bad.yaml" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    assert sorted(runs.iterdir()) == before  # the first was not run either


def test_a_fold_fits_on_rows_up_to_its_origin_only(tmp_path):
    config = load_config(fold_config(tmp_path))
    series = read_series(config.data)
    prepared = prepare(config, series, rows=50)  # origin = row 49
    assert len(prepared.values) == 50
    assert prepared.scaler.data_max[0] == series.values[: prepared.split.val_start, 0].max()
    # every training target row is before the fold's validation rows, all before row 50
    assert prepared.split.train_origins[-1] + 2 < prepared.split.val_start <= 50


def test_backtest_cli_three_folds(tmp_path):
    config = fold_config(tmp_path)
    result = CliRunner().invoke(
        app, ["backtest", str(config), "--folds", "3", "--runs-dir", str(tmp_path / "runs")]
    )
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.name == "backtest.json" and (path.parent / "backtest.png").is_file()
    assert "fold 3/3" in result.stderr  # progress
    report = json.loads(path.read_text())
    frame = pd.read_csv(tmp_path / "sales.csv")
    # 60 rows, horizon 2: origins 53, 55, 57; the last fold forecasts rows 58 and 59
    assert [f["origin"] for f in report["folds"]] == frame["date"].iloc[[53, 55, 57]].tolist()
    assert [f["test_start"] for f in report["folds"]] == frame["date"].iloc[[54, 56, 58]].tolist()
    assert [f["test_end"] for f in report["folds"]] == frame["date"].iloc[[55, 57, 59]].tolist()
    sales = frame["sales"].to_numpy()
    for fold, origin in zip(report["folds"], [53, 55, 57], strict=True):
        naive = np.abs(sales[origin + 1 : origin + 3] - sales[origin]).mean()
        assert fold["baselines"]["naive"]["mae"] == pytest.approx(naive)
        scale = np.abs(sales[12 : origin + 1] - sales[: origin + 1 - 12]).mean()
        assert fold["baselines"]["naive"]["mase"] == pytest.approx(naive / scale)
    maes = [f["model"]["mae"] for f in report["folds"]]
    assert report["mean"]["model"]["mae"] == pytest.approx(np.mean(maes))
    assert "averaged over 3 backtest folds" in result.stdout


def test_too_many_folds_is_a_user_error(tmp_path):
    config = fold_config(tmp_path)
    result = CliRunner().invoke(app, ["backtest", str(config), "--folds", "40"])
    assert result.exit_code == 2
    assert "too few to train on" in result.stderr or "use fewer --folds" in result.stderr


def run_fold(config, series, origin, number, compiled=None):
    """One backtest fold as its fit task: rows [0, origin] fit, the next horizon forecast."""
    from forecast.fitting.task import FitTask, run_task

    back = len(series.frame) - 1 - origin
    return run_task(FitTask(config, series, back, number), compiled)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        # dropout draws random numbers, members have their own weights; unrolled for training
        # (over 10 s: two unrolled members traced for each of the four fits)
        pytest.param(
            ["model.dropout=0.3", "model.ensemble=2", "training.unroll=true"],
            marks=pytest.mark.slow,
        ),
        ["model.ensemble=3"],  # the members trained as one wide model (forecast.model.stacked)
    ],
)
def test_folds_that_reuse_the_first_folds_model_forecast_as_new_models_do(tmp_path, overrides):
    from forecast.fitting.fit import Compiled

    config = load_config(fold_config(tmp_path), [*overrides, "training.epochs=3"])
    series = read_series(config.data)
    # two folds: the second refits the first's model, reset to its starting state
    origins = backtest_origins(len(series.frame), 2, config.window.horizon)
    compiled = Compiled()
    reused = [run_fold(config, series, int(o), i, compiled) for i, o in enumerate(origins)]
    assert len(compiled.slots) == 1 and len(compiled.forecasters) == 1  # built once
    for number, origin in enumerate(origins):
        new = run_fold(config, series, int(origin), number)  # a model of its own
        np.testing.assert_array_equal(reused[number].forecasts[None], new.forecasts[None])
        assert reused[number].reports[0]["model"] == new.reports[0]["model"]


def test_a_stacked_ensemble_forecasts_as_its_plain_members_trained_apart(tmp_path, monkeypatch):
    import forecast.model.build

    config = load_config(fold_config(tmp_path), ["model.ensemble=3", "training.epochs=3"])
    series = read_series(config.data)
    origin = int(backtest_origins(len(series.frame), 1, config.window.horizon)[0])
    stacked = run_fold(config, series, origin, 1)
    monkeypatch.setattr(forecast.model.build, "stackable", lambda model: False)
    plain = run_fold(config, series, origin, 1)  # N models side by side, as before
    np.testing.assert_allclose(stacked.forecasts[None], plain.forecasts[None], rtol=1e-4)
    assert not np.allclose(
        stacked.forecasts[None],
        run_fold(config.model_copy(update={"seed": 7}), series, origin, 1).forecasts[None],
    )


def test_a_backtest_of_another_series_reuses_the_models_and_forecasts_as_new_ones(tmp_path):
    from forecast.fitting.fit import SHARED
    from forecast.workflows.backtest import run_backtest

    # every fold a new model (fold_start: scratch), each as it would be fitted alone
    config = load_config(
        fold_config(tmp_path), ["training.epochs=3", "training.fold_start=scratch"]
    )
    run_backtest(config, read_series(config.data), np.array([50, 52]), quiet=True)
    slots = len(SHARED.slots)
    # the same config on another series of the same shape (rows in any number)
    write_csv(tmp_path / "other.csv", monthly_frame(70, seed=5))
    other = config.model_copy(
        update={"data": config.data.model_copy(update={"path": tmp_path / "other.csv"})}
    )
    series = read_series(other.data)
    origins = backtest_origins(len(series.frame), 2, other.window.horizon)
    _, forecasts, _ = run_backtest(other, series, origins, quiet=True)
    assert len(SHARED.slots) == slots  # nothing built again
    for number, origin in enumerate(origins):
        new = run_fold(other, series, int(origin), number)  # a model of its own
        np.testing.assert_array_equal(forecasts[number], new.forecasts[None])


def test_the_shared_models_keep_only_the_most_recently_used():
    from types import SimpleNamespace

    from forecast.fitting.fit import Compiled

    compiled = Compiled(limit=2)
    slots = {key: SimpleNamespace(model=object(), plain=object()) for key in "abc"}
    for key in "ab":
        compiled.keep(key, slots[key])
        compiled.forecasters[id(slots[key].plain)] = key
    assert compiled.take("a") is slots["a"]  # now the most recent
    compiled.keep("c", slots["c"])  # over the limit: b, the least recently used, goes
    assert list(compiled.slots) == ["a", "c"] and compiled.take("b") is None
    assert list(compiled.forecasters.values()) == ["a"]  # b's forecaster went with it


@pytest.mark.slow  # two worker processes that each import TensorFlow and train
def test_folds_in_worker_processes_give_the_sequential_results(tmp_path):
    """--workers 2 with two configs: the folds of both go to one pool as one list; each
    config gets the same folds, in order, with the same forecasts and scores as in one
    process (each worker has its own models; the numbers agree to float tolerance)."""
    config = fold_config(tmp_path)
    write_csv(tmp_path / "other.csv", monthly_frame(70, seed=5))
    other = tmp_path / "other.yaml"
    text = config.read_text(encoding="utf-8").replace("sales.csv", "other.csv")
    other.write_text(text.replace("name: bt", "name: other"), encoding="utf-8")
    both = [str(config), str(other), "--seed", "5"]
    one = CliRunner().invoke(app, ["backtest", *both, "--runs-dir", str(tmp_path / "one")])
    two = CliRunner().invoke(
        app, ["backtest", *both, "--runs-dir", str(tmp_path / "two"), "--workers", "2"]
    )
    assert one.exit_code == 0 and two.exit_code == 0, two.output
    assert "6 folds in 2 worker processes" in two.stderr
    assert [line for line in two.stdout.splitlines() if line.startswith("== ")] == [
        f"== {config} ==",
        f"== {other} ==",
    ]

    def reports(result: Any) -> list[dict[str, Any]]:
        paths = [p for p in result.stdout.split() if p.endswith("backtest.json")]
        return [json.loads(Path(p).read_text()) for p in paths]

    for first, second in zip(reports(one), reports(two), strict=True):
        # where they ran, recorded: auto chose this process for these tiny folds
        assert first["fanout"]["engine"] == "in process"
        assert first["fanout"]["chosen"].startswith("auto: ")
        assert second["fanout"] == {
            "engine": "local processes",
            "workers": 2,
            "threads": max(1, (os.cpu_count() or 1) // 2),
            "start": "spawn",  # a command run in its own process (FORECAST_WARM=0)
            "chosen": "given: 2 worker(s)",
        }
        assert [f["origin"] for f in second["folds"]] == [f["origin"] for f in first["folds"]]
        for a, b in zip(first["folds"], second["folds"], strict=True):
            assert b["model"]["mae"] == pytest.approx(a["model"]["mae"], rel=1e-4)
            assert b["baselines"] == a["baselines"]
    bad = CliRunner().invoke(app, ["backtest", str(config), "--workers", "0"])
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "error: --workers must be >= 1 or auto, got 0"


def test_a_data_error_in_a_later_config_stops_the_backtests_before_any_runs(tmp_path):
    first = fold_config(tmp_path)
    short = tmp_path / "short.yaml"
    write_csv(tmp_path / "short.csv", monthly_frame(20))
    short.write_text(first.read_text(encoding="utf-8").replace("sales.csv", "short.csv"))
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        app, ["backtest", str(first), str(short), "--folds", "3", "--runs-dir", str(runs)]
    )
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "short.yaml: " in result.stderr and "short.csv" in result.stderr
    assert "use fewer folds" in result.stderr
    assert not runs.exists()  # the first config's backtest did not run either


def test_a_fit_task_holds_back_rows_seeds_and_gives_residuals(tmp_path):
    """The unit of work: `back` rows are forecast from the row before them, `seed` is the
    seed the fit uses (the config's otherwise), and the residuals are actual - forecast on
    the rows held back, as read from the CSV."""
    from forecast.fitting.executor import InProcess
    from forecast.fitting.task import FitTask, run_task

    config = load_config(fold_config(tmp_path))
    series = read_series(config.data)
    task = FitTask(config, series, back=2, number=4)
    outcome = run_task(task)
    (report,) = outcome.reports
    assert report["fold"] == 4 and report["origin"] == series.index[57].strftime("%Y-%m-%d")
    forecast = outcome.forecasts[None]  # (horizon 2, 1 target)
    actual = series.frame["sales"].to_numpy()[58:60, None]
    np.testing.assert_allclose(outcome.residuals[None], actual - forecast)
    # the same task through the executor, and a seed given as the config's own
    (again,) = InProcess().run([FitTask(config, series, back=2, number=4, seed=config.seed)])
    np.testing.assert_array_equal(again.forecasts[None], forecast)
    seeded = run_task(FitTask(config, series, back=2, seed=11))
    reseeded = run_task(FitTask(config.model_copy(update={"seed": 11}), series, back=2))
    np.testing.assert_array_equal(seeded.forecasts[None], reseeded.forecasts[None])
    assert not np.array_equal(seeded.forecasts[None], forecast)


def test_later_folds_continue_from_the_model_of_the_fold_before(tmp_path):
    """`training.fold_start: previous` (the default): fold 1 trains a new model as before;
    folds 2 and 3 each begin from the weights of the fold before and train a quarter of
    its epochs (8 without early stopping: 2) on their own rows, which a fold given those
    weights by hand repeats exactly, keeping what they learnt only where it beats the
    residual base on the fold's validation rows; `scratch` trains a new model every fold."""
    from dataclasses import replace

    from forecast.fitting.task import FitTask, Handoff, run_task
    from forecast.workflows.backtest import fold_tasks, run_backtest, series_backs

    config = load_config(
        fold_config(tmp_path),
        ["training.epochs=8", "training.early_stopping=false", "model.residual=naive"],
    )
    series = read_series(config.data)
    origins = backtest_origins(len(series.frame), 3, config.window.horizon)
    report, chained, _ = run_backtest(config, series, origins, quiet=True)
    scratch = config.model_copy(
        update={"training": config.training.model_copy(update={"fold_start": "scratch"})}
    )
    apart, new, _ = run_backtest(scratch, series, origins, quiet=True)
    assert [f["start"] for f in report["folds"]] == ["new model", "previous fold", "previous fold"]
    assert {f["start"] for f in apart["folds"]} == {"new model"}
    np.testing.assert_array_equal(chained[0], new[0])  # the first fold: the same fit
    assert not np.array_equal(chained[1], new[1])
    for k, origin in enumerate(origins):  # scratch: each fold is the fold fitted alone
        alone = run_fold(scratch, series, int(origin), k + 1)
        np.testing.assert_array_equal(new[k], alone.forecasts[None])
    # fold 2 by hand: fold 1's model handed off, 2 epochs on fold 2's rows
    first, second, _ = fold_tasks(config, series, series_backs(series, origins))
    assert (first.hands_off, first.chained, second.hands_off, second.chained) == (
        True, False, True, True,
    )  # fmt: skip
    handed = run_task(first).handoff
    assert handed is not None and handed.epochs == 2
    again = run_task(FitTask(config, series, second.back, 2, start=handed))
    np.testing.assert_array_equal(again.forecasts[None], chained[1])
    # weights that belong to another model (residual: auto chose another base, say): anew
    other = Handoff(handed.weights, 2, "another model", handed.residual)
    fresh = run_task(FitTask(config, series, second.back, 2, start=other))
    np.testing.assert_array_equal(fresh.forecasts[None], new[1])
    assert fresh.reports[0]["start"] == "new model"
    # what it learnt from weights that miss its validation rows more than the residual base
    # alone: the base kept (the head zeroed, as a new model starts), and handed on so
    wild = {
        name: [w * 50 if name.endswith("head_dense") else w for w in weights]
        for name, weights in handed.weights.items()
    }
    based = run_task(
        FitTask(config, series, second.back, 2, hands_off=True, start=replace(handed, weights=wild))
    )
    assert based.reports[0]["start"] == "previous fold" and based.handoff is not None
    assert all(not np.any(w) for w in based.handoff.weights["head_dense"])
    assert np.any(handed.weights["head_dense"][0])  # fold 1's own head had learnt


def test_an_ensembles_folds_each_train_new_members(tmp_path):
    """An ensemble (its members trained as one wide model here) does not continue from the
    fold before: every fold trains new members, as with `fold_start: scratch`."""
    from forecast.workflows.backtest import fold_tasks, run_backtest, series_backs

    config = load_config(fold_config(tmp_path), ["model.ensemble=2", "training.epochs=2"])
    series = read_series(config.data)
    origins = backtest_origins(len(series.frame), 2, config.window.horizon)
    tasks = fold_tasks(config, series, series_backs(series, origins))
    assert not any(t.chained or t.hands_off for t in tasks)
    report, _, _ = run_backtest(config, series, origins, quiet=True)
    assert [f["start"] for f in report["folds"]] == ["new model", "new model"]


def test_workers_auto_counts_a_chains_later_folds_at_a_quarter_of_their_epochs(tmp_path):
    """--workers auto's estimate: a FoldChain's first fold in full, each later one a quarter
    of its batches (it continues for a quarter of the epochs); its inner folds in full."""
    from forecast.fitting.executor import in_chains
    from forecast.fitting.placement import task_work
    from forecast.workflows.backtest import fold_tasks, series_backs

    config = load_config(fold_config(tmp_path), ["training.epochs=8"])
    series = read_series(config.data)
    origins = backtest_origins(len(series.frame), 3, config.window.horizon)
    tasks = fold_tasks(config, series, series_backs(series, origins))
    (chain,) = in_chains(tasks)
    alone = [task_work(t)[1] for t in tasks]
    assert task_work(chain)[1] == alone[0] + sum(-(-b // 4) for b in alone[1:])
    assert task_work(chain)[1] < sum(alone)
