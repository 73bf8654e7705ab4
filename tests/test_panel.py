"""Many series in one model (data.id_column): reading long tables, per-series splits and
scalers, windows that never cross series, per-series metrics, predict with --id and unseen
ids, backtest and plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from forecast import api
from forecast.cli.app import app
from forecast.config.file import load_config
from forecast.data.panel import prepare_panel
from forecast.data.reading import read_panel
from forecast.data.windows import input_windows, target_windows
from forecast.errors import DataError
from forecast.forecasting.scoring import mean_reports

from .conftest import merged, tiny_sections, write_config, write_csv


def long_frame(lengths: dict[str, int], seed: int = 0, shuffle: bool = True) -> pd.DataFrame:
    """Quarterly seasonal series of their own lengths, levels and start dates, rows mixed."""
    rng = np.random.default_rng(seed)
    parts = []
    for n, (sid, rows) in enumerate(lengths.items()):
        t = np.arange(rows)
        level = 10 * (n + 1) + 0.05 * t + 2 * np.sin(2 * np.pi * t / 4) + rng.normal(0, 0.2, rows)
        start = pd.Timestamp("2000-01-01") + pd.offsets.QuarterBegin(n, startingMonth=1)
        dates = pd.date_range(start, periods=rows, freq="QS")
        parts.append(
            pd.DataFrame(
                {"store": sid, "date": dates.strftime("%Y-%m-%d"), "sales": level.round(4)}
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    if shuffle:
        frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return frame


# the tiny config on a long table of stores (long_frame)
PANEL = tiny_sections(
    name="stores",
    seed=3,
    data={"path": "long.csv", "id_column": "store"},
    window={"input_steps": 8, "horizon": 2},
    split={"test": 6, "validation": 4},
)


def panel_config(folder: Path, frame: pd.DataFrame, **changes) -> Path:
    write_csv(folder / "long.csv", frame)
    return write_config(folder / "stores.yaml", **merged(PANEL, changes))


# --------------------------------------------------------------------------- reading


def test_a_long_table_in_any_order_gives_each_series_sorted_on_its_own(tmp_path):
    frame = long_frame({"A": 30, "B": 41, "C": 25})
    config = load_config(panel_config(tmp_path, frame))
    panel = read_panel(config.data)
    assert panel.ids == list(dict.fromkeys(frame["store"]))  # in the order ids first appear
    for sid, rows in {"A": 30, "B": 41, "C": 25}.items():
        series = panel.members[sid]
        assert len(series.frame) == rows
        assert series.index.is_monotonic_increasing
        expected = frame[frame["store"] == sid].sort_values("date")["sales"].to_numpy()
        np.testing.assert_array_equal(series.frame["sales"].to_numpy(), expected)
    # each starts on its own date
    assert panel.members["A"].index[0] != panel.members["B"].index[0]


def test_long_table_errors_name_the_file_the_column_and_the_series(tmp_path):
    frame = long_frame({"A": 30, "B": 30}, shuffle=False)
    frame.loc[3, "store"] = ""
    config = load_config(panel_config(tmp_path, frame))
    with pytest.raises(DataError, match=r"long.csv: column 'store' row 5 is empty"):
        read_panel(config.data)
    frame = long_frame({"A": 30, "B": 30}, shuffle=False)
    frame.loc[35, "date"] = frame.loc[34, "date"]  # a duplicate time in B
    config = load_config(panel_config(tmp_path, frame))
    with pytest.raises(DataError, match=r"long.csv \(series B\): column 'date': duplicate time"):
        read_panel(config.data)
    with pytest.raises(DataError, match=r"no series 'Z' in column 'store'; it holds 'A', 'B'"):
        read_panel(config.data.model_copy(), only=["Z"])


def test_id_column_cannot_also_be_a_feature(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "validate",
            str(
                panel_config(tmp_path, long_frame({"A": 30}), data={"features": ["sales", "store"]})
            ),
        ],
    )
    assert result.exit_code == 2
    assert "id_column 'store' names the series" in result.output


# --------------------------------------------------------------------------- windows and scalers


def test_windows_never_cross_from_one_series_into_another(tmp_path):
    # np.arange series with different offsets: inside one series every step is +1, so a
    # window or target that crossed into the next series would show a jump
    lengths = {"A": 23, "B": 31, "C": 17}
    offsets = {"A": 0, "B": 1000, "C": 5000}
    parts = [
        pd.DataFrame(
            {"store": sid, "step": np.arange(n), "sales": offsets[sid] + np.arange(n, dtype=float)}
        )
        for sid, n in lengths.items()
    ]
    config = load_config(
        panel_config(
            tmp_path,
            pd.concat(parts),
            data={"time_column": "step"},
            window={"input_steps": 5, "horizon": 3},
            split={"test": 4, "validation": 4},
            scaling={"method": "none"},
        )
    )
    prepared = prepare_panel(config, read_panel(config.data))
    combined, split = prepared.combined, prepared.combined.split
    assert len(combined.scaled) == sum(lengths.values())
    for origins in (split.train_origins, split.val_origins, split.every):
        windows = input_windows(combined.features, origins, 5)[..., 0]  # (N, 5)
        targets = target_windows(combined.targets, origins, 3)[..., 0]  # (N, 3)
        joined = np.concatenate([windows, targets], axis=1)
        assert (np.diff(joined, axis=1) == 1).all()  # never a jump between series
    # every origin of every series is there once, and the counts add up per series
    assert len(split.every) == sum(n - 5 - 3 + 1 for n in lengths.values())
    member = prepared.members["B"]
    assert len(split.train_origins) == sum(
        len(m.split.train_origins) for m in prepared.members.values()
    )
    # B's training origins shifted by where B starts
    start = prepared.offsets["B"]
    assert start == lengths["A"]
    np.testing.assert_array_equal(
        np.intersect1d(split.train_origins, np.arange(start, start + 31)) - start,
        member.split.train_origins,
    )


def test_each_series_is_scaled_on_its_own_training_rows_only(tmp_path):
    frame = long_frame({"A": 40, "B": 40, "C": 40}, shuffle=False)
    config_path = panel_config(tmp_path, frame)
    config = load_config(config_path)
    base = prepare_panel(config, read_panel(config.data))
    a = base.members["A"]
    # A's scaler is the min/max of A's first val_start rows, nothing else
    train_rows = frame[frame["store"] == "A"]["sales"].to_numpy()[: a.split.val_start]
    assert a.scaler.data_min[0] == train_rows.min() and a.scaler.data_max[0] == train_rows.max()

    # change B's test rows (its last 6): no scaler changes, no other series' rows change
    changed = frame.copy()
    b_rows = changed.index[changed["store"] == "B"][-6:]
    changed.loc[b_rows, "sales"] = changed.loc[b_rows, "sales"] * 50
    write_csv(tmp_path / "long.csv", changed)
    after = prepare_panel(config, read_panel(config.data))
    for sid in "ABC":
        np.testing.assert_array_equal(
            after.members[sid].scaler.scale, base.members[sid].scaler.scale
        )
        np.testing.assert_array_equal(
            after.members[sid].scaler.offset, base.members[sid].scaler.offset
        )
    for sid in "AC":
        np.testing.assert_array_equal(after.members[sid].scaled, base.members[sid].scaled)

    # change B's training rows: B's scaler moves, A's and C's do not
    changed = frame.copy()
    b_first = changed.index[changed["store"] == "B"][:3]
    changed.loc[b_first, "sales"] = -100.0
    write_csv(tmp_path / "long.csv", changed)
    after = prepare_panel(config, read_panel(config.data))
    assert after.members["B"].scaler.data_min[0] == -100.0
    for sid in "AC":
        np.testing.assert_array_equal(after.members[sid].scaled, base.members[sid].scaled)


def test_series_too_short_are_left_out_with_one_warning_or_an_error_if_none_remain(
    tmp_path, caplog
):
    config = load_config(
        panel_config(tmp_path, long_frame({"A": 40, "tiny": 9, "B": 40, "wee": 5}))
    )
    with caplog.at_level("WARNING", logger="forecast"):
        prepared = prepare_panel(config, read_panel(config.data))
    assert prepared.ids == [i for i in read_panel(config.data).ids if i in ("A", "B")]
    assert set(prepared.skipped) == {"tiny", "wee"}
    lines = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(lines) == 1 and "2 of 4 series" in lines[0]
    config = load_config(panel_config(tmp_path, long_frame({"tiny": 9, "wee": 5})))
    with pytest.raises(DataError, match="none of the 2 series in 'store' is long enough"):
        prepare_panel(config, read_panel(config.data))


def test_mean_reports_averages_numbers_and_skips_nulls():
    reports = [
        {"model": {"mae": 1.0, "mase": None}, "per_step": [{"step": 1, "mae": 2.0}], "why": "x"},
        {"model": {"mae": 3.0, "mase": 0.5}, "per_step": [{"step": 1, "mae": 4.0}], "why": "y"},
    ]
    mean = mean_reports(reports)
    assert mean["model"] == {"mae": 2.0, "mase": 0.5}
    assert mean["per_step"] == [{"step": 1, "mae": 3.0}]
    assert mean["why"] == "x"


# --------------------------------------------------------------------------- end to end


def _mase_by_hand(
    actual_series: np.ndarray, test_start: int, table: pd.DataFrame, season: int
) -> float:
    scale = np.abs(actual_series[season:test_start] - actual_series[: test_start - season]).mean()
    return float(np.abs(table["predicted"] - table["actual"]).mean() / scale)


@pytest.mark.slow
def test_train_predict_plot_backtest_on_a_long_table(tmp_path):
    frame = long_frame({"A": 40, "B": 48, "C": 36, "short": 8})
    config = panel_config(tmp_path, frame)
    runner, runs_dir = CliRunner(), tmp_path / "runs"
    result = runner.invoke(app, ["train", str(config), "--runs-dir", str(runs_dir)])
    assert result.exit_code == 0, result.output
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    info = json.loads((run_dir / "run.json").read_text())
    assert metrics["series"] == 3 and list(metrics["skipped_series"]) == ["short"]
    assert set(metrics["per_series"]) == {"A", "B", "C"}

    # test_predictions.csv: the id column first; per-series MASE recomputed by hand
    table = pd.read_csv(run_dir / "test_predictions.csv")
    assert list(table.columns[:3]) == ["store", "time", "target"]
    by_hand = {}
    for sid in "ABC":
        actual = frame[frame["store"] == sid].sort_values("date")["sales"].to_numpy()
        test_start = info["split"]["series"][sid]["test_start"]
        assert test_start == len(actual) - 6
        rows = table[table["store"] == sid]
        assert len(rows) == (6 - 2 + 1) * 2  # test origins x steps
        by_hand[sid] = _mase_by_hand(actual, test_start, rows, metrics["season_length"])
        assert metrics["per_series"][sid]["model"]["mase"] == pytest.approx(by_hand[sid], rel=1e-9)
    # the overall MASE is the mean over series of each series' own MASE
    assert metrics["model"]["mase"] == pytest.approx(np.mean(list(by_hand.values())), rel=1e-9)

    # scaler.json holds one entry per series; the final fit trained on every window of all
    scalers = json.loads((run_dir / "scaler.json").read_text())
    assert set(scalers["series"]) == {"A", "B", "C"}
    assert info["final_fit"]["windows"] == sum(n - 8 - 2 + 1 for n in (40, 48, 36))

    # predict: every series in the file, or the named ones; the id column first
    result = runner.invoke(
        app, ["predict", "--run", str(run_dir), "--csv", str(tmp_path / "long.csv")]
    )
    assert result.exit_code == 0, result.output
    forecast = pd.read_csv(run_dir / "forecast.csv")
    assert list(forecast.columns[:3]) == ["store", "date", "sales"]
    assert forecast["store"].tolist() == [
        s for s in dict.fromkeys(frame["store"]) for _ in range(2)
    ]
    assert "sales_lo_80" in forecast.columns
    # 'short' was never trained on: forecast from its own history, said once, no intervals
    assert "1 series not in training (short)" in result.output
    assert forecast.loc[forecast["store"] == "short", "sales_lo_80"].isna().all()
    assert forecast.loc[forecast["store"] == "A", "sales_lo_80"].notna().all()
    # the next quarter after each series' own last date
    last_a = pd.Timestamp(frame[frame["store"] == "A"]["date"].max())
    assert forecast.loc[forecast["store"] == "A", "date"].iloc[0] == str(
        (last_a + pd.offsets.QuarterBegin(1, startingMonth=1)).date()
    )

    only = tmp_path / "only.csv"
    result = runner.invoke(
        app,
        [
            "predict",
            "--run",
            str(run_dir),
            "--csv",
            str(tmp_path / "long.csv"),
            "--id",
            "C",
            "--id",
            "A",
            "--output",
            str(only),
        ],
    )
    assert result.exit_code == 0, result.output
    picked = pd.read_csv(only)
    assert picked["store"].tolist() == ["C", "C", "A", "A"]
    np.testing.assert_allclose(
        picked.loc[picked["store"] == "A", "sales"].to_numpy(),
        forecast.loc[forecast["store"] == "A", "sales"].to_numpy(),
    )
    # a series too short to forecast is left out with one warning; the others are forecast
    tiny = pd.DataFrame(
        {"store": "tiny", "date": ["2001-01-01", "2001-04-01"], "sales": [1.0, 2.0]}
    )
    write_csv(tmp_path / "with_tiny.csv", pd.concat([frame, tiny]))
    result = runner.invoke(
        app,
        ["predict", "--run", str(run_dir), "--csv", str(tmp_path / "with_tiny.csv"),
         "--output", str(tmp_path / "with_tiny_forecast.csv")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 series left out (tiny)" in result.output
    assert "tiny" not in set(pd.read_csv(tmp_path / "with_tiny_forecast.csv")["store"])
    result = runner.invoke(
        app, ["predict", "--run", str(run_dir), "--csv", str(tmp_path / "long.csv"), "--id", "Nope"]
    )
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "no series 'Nope' in column 'store'" in result.output

    # plots: a panel per series, the per-series MASE against seasonal naive, the forecast
    result = runner.invoke(app, ["plot", "--run", str(run_dir)])
    assert result.exit_code == 0, result.output
    for name in ("test_forecast.png", "series_mase.png", "loss.png", "forecast.png"):
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # backtest: rows per fold and series, the id first, per_series means
    result = runner.invoke(
        app, ["backtest", str(config), "--folds", "2", "--runs-dir", str(runs_dir)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    assert [(r["fold"], r["store"]) for r in report["folds"]] == [
        (f, s) for f in (1, 2) for s in dict.fromkeys(frame["store"]) if s != "short"
    ]
    assert list(report["folds"][0])[:2] == ["store", "fold"]
    a_folds = [r["model"]["mase"] for r in report["folds"] if r["store"] == "A"]
    assert report["per_series"]["A"]["model"]["mase"] == pytest.approx(np.mean(a_folds))
    means = [report["per_series"][s]["model"]["mase"] for s in "ABC"]
    assert report["mean"]["model"]["mase"] == pytest.approx(np.mean(means))
    # the last fold of each series ends at that series' own last date
    last_b = frame[frame["store"] == "B"]["date"].max()
    assert [r["test_end"] for r in report["folds"] if r["store"] == "B"][-1] == last_b
    assert (
        Path(report_dir := result.stdout.strip().splitlines()[-1]).parent / "backtest.png"
    ).is_file(), report_dir


def test_init_recognises_the_id_column_of_a_long_table(tmp_path):
    import yaml

    from forecast.workflows.starter import starter_config

    long_csv = write_csv(tmp_path / "long.csv", long_frame({"A": 40, "B": 44, "C": 36}))
    config = yaml.safe_load(starter_config("univariate", long_csv, horizon=2))
    assert config["data"]["id_column"] == "store"
    assert config["data"]["features"] == ["sales"]
    # the same rows of one series only: no id column
    one = long_frame({"A": 40})[["date", "sales"]]
    one_csv = write_csv(tmp_path / "one.csv", one)
    config = yaml.safe_load(starter_config("univariate", one_csv, horizon=2))
    assert "id_column" not in config["data"]


def test_calibrating_a_few_series_at_a_time_gives_the_same_intervals(tmp_path, monkeypatch):
    from forecast.fitting.fit import fit
    from forecast.forecasting import calibration as panel_module
    from forecast.forecasting.forecaster import Forecaster

    config = load_config(panel_config(tmp_path, long_frame({"A": 40, "B": 44, "C": 36})))
    prepared = prepare_panel(config, read_panel(config.data))
    model, _, _ = fit(prepared.combined, quiet=True)
    forecaster = Forecaster(model, config.data.features, config.data.targets)
    together, _ = panel_module.calibrate_members(prepared, forecaster)
    monkeypatch.setattr(panel_module, "CALIBRATION_ORIGINS", 5)  # one series per forecast call
    apart, _ = panel_module.calibrate_members(prepared, forecaster)
    assert set(together) == set(apart) == {"A", "B", "C"}
    for sid in together:
        np.testing.assert_allclose(apart[sid].quantile, together[sid].quantile, rtol=1e-6)
        np.testing.assert_allclose(apart[sid].ratio, together[sid].ratio, rtol=1e-6)


def test_a_long_tables_series_without_validation_rows_say_why_they_have_no_intervals(tmp_path):
    """A one-series CSV without validation rows is calibrated on inner folds; a long table's
    series are one model of every series, so they say they need validation rows."""
    from forecast.fitting.fit import fit
    from forecast.fitting.task import inner_forecasts
    from forecast.forecasting.calibration import NO_VALIDATION, calibrate_members
    from forecast.forecasting.forecaster import Forecaster

    frame = long_frame({"A": 40, "B": 44})
    config = load_config(panel_config(tmp_path, frame, split={"test": 6, "validation": 0}))
    panel = read_panel(config.data)
    prepared = prepare_panel(config, panel)
    assert inner_forecasts(config, panel, prepared) == {}
    model, _, _ = fit(prepared.combined, quiet=True)
    forecaster = Forecaster(model, config.data.features, config.data.targets)
    calibrations, missing = calibrate_members(prepared, forecaster)
    assert calibrations == {} and missing == {"A": NO_VALIDATION, "B": NO_VALIDATION}


def test_calendar_features_per_series_of_a_long_table(tmp_path):
    from forecast.data.calendar import encode

    frame = long_frame({"A": 40, "B": 44})
    config = load_config(panel_config(tmp_path, frame, data={"calendar": "auto"}))
    prepared = prepare_panel(config, read_panel(config.data))
    assert prepared.config.data.calendar == ["quarter"]  # auto, from the quarterly dates
    assert prepared.combined.features.shape[1] == 3  # sales + quarter sine and cosine
    for member in prepared.members.values():
        # each series' own dates: row t carries the quarter of row t + 1
        expected = encode(member.series.index, ["quarter"], "x")["calendar.quarter_sin"]
        np.testing.assert_allclose(member.series.frame["calendar.quarter_sin"], expected)


def test_calendar_auto_is_one_choice_for_the_whole_table(tmp_path):
    # a monthly series and a quarterly one: auto follows the longest (monthly), for both
    monthly = long_frame({"M": 60}, shuffle=False)
    monthly["date"] = pd.date_range("2000-01-01", periods=60, freq="MS").strftime("%Y-%m-%d")
    frame = pd.concat([monthly, long_frame({"Q": 30}, shuffle=False)])
    config = load_config(panel_config(tmp_path, frame, data={"calendar": "auto"}))
    panel = read_panel(config.data)
    assert panel.members["M"].calendar == panel.members["Q"].calendar == ["month"]
    assert list(panel.members["M"].frame.columns) == list(panel.members["Q"].frame.columns)


def test_plots_pick_series_even_when_no_series_has_a_mase_ratio():
    from forecast.plots.panel import chosen_series

    undefined = {"model": {"mase": None}, "baselines": {"seasonal_naive": {"mase": None}}}
    per_series = {f"s{i}": undefined for i in range(9)}
    assert [sid for sid, _ in chosen_series(per_series)] == [f"s{i}" for i in range(6)]
    scored = {
        f"s{i}": {"model": {"mase": r}, "baselines": {"seasonal_naive": {"mase": 1.0}}}
        for i, r in enumerate([0.5, 2.0, 0.9, 1.5, 0.7, 1.1, 0.6, 1.3])
    }
    chosen = chosen_series(scored)
    assert chosen[:3] == [("s1", "worst 1"), ("s3", "worst 2"), ("s7", "worst 3")]
    assert chosen[3:] == [("s0", "best 1"), ("s6", "best 2"), ("s4", "best 3")]


def test_init_recognises_an_integer_store_number_as_the_id(tmp_path):
    import yaml

    from forecast.workflows.starter import starter_config

    frame = long_frame({"1": 40, "2": 40, "3": 40})
    frame["store"] = frame["store"].astype(int)
    config = yaml.safe_load(
        starter_config("univariate", write_csv(tmp_path / "stores.csv", frame), horizon=2)
    )
    assert config["data"]["id_column"] == "store"
    assert config["data"]["features"] == ["sales"]


@pytest.mark.parametrize(
    ("features", "targets", "horizon"),
    [(["sales", "price"], ["sales"], 1), (["sales", "price"], ["sales", "price"], 2)],
    ids=["multivariate", "multi_output_multi_step"],
)
def test_other_layouts_train_per_series_of_a_long_table(tmp_path, features, targets, horizon):
    frame = long_frame({"A": 40, "B": 44})
    frame["price"] = (frame["sales"] * 0.5 + np.arange(len(frame)) % 7).round(3)
    config = panel_config(
        tmp_path,
        frame,
        data={"features": features, "targets": targets},
        window={"horizon": horizon},
    )
    result = api.train(config, runs_dir=tmp_path / "runs", quiet=True)
    table = pd.read_csv(result.run_dir / "test_predictions.csv")
    assert set(table["target"]) == set(targets)
    assert set(table["store"]) == {"A", "B"}
    assert set(result.metrics["per_series"]) == {"A", "B"}
    # the errors every series' intervals rest on: summed over the series, each its own
    per = [result.metrics["per_series"][sid]["intervals_calibration"] for sid in ("A", "B")]
    assert result.metrics["intervals_calibration"] == {
        "out_of_sample": "validation",
        "training_errors": per[0]["training_errors"] + per[1]["training_errors"],
        "out_of_sample_errors": per[0]["out_of_sample_errors"] + per[1]["out_of_sample_errors"],
    }
    assert all(p["out_of_sample_errors"] > 0 for p in per)
    scalers = json.loads((result.run_dir / "scaler.json").read_text())["series"]
    assert list(scalers["A"]["columns"]) == ["sales", "price"]
