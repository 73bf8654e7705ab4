"""How cost grows: `forecast train` and `forecast backtest --folds 3` time and peak memory
for one series of 1k, 10k, 100k and 1M rows, and for long tables of 10, 100, 1,000 and
10,000 series of 100 rows each (1k to 1M rows), each a new process as a user runs it.

    python benchmarks/growth.py                 # everything (about 25 minutes on 2 cores)
    python benchmarks/growth.py --largest 100000

The data: a seasonal series with trend and noise (each series of a long table its own
level and phase), generated with a fixed seed. The config: one LSTM(32) over 24 steps, one
step ahead, batch 64, 1 epoch, no final fit, so that what grows is the work per row:
reading, windows, one pass of training, the test forecasts, calibration and scoring.
Results go to benchmarks/results/growth.json and the figure to
benchmarks/results/growth.png.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

# each command measured here is a process of its own, TensorFlow imported in it (the warm
# start, forecast/cli/warm.py, is off; benchmarks/run.py's group backtest_cli measures it)
os.environ["FORECAST_WARM"] = "0"
ROOT = Path(__file__).resolve().parents[1]
FORECAST = str(Path(sys.executable).parent / "forecast")
RESULTS = ROOT / "benchmarks" / "results" / "growth.json"
FIGURE = ROOT / "benchmarks" / "results" / "growth.png"
SIZES = [1_000, 10_000, 100_000, 1_000_000]
SERIES = [10, 100, 1_000, 10_000]
ROWS_PER_SERIES = 100


def series_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    value = 100 + 0.001 * t + 10 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, rows)
    return pd.DataFrame({"step": t, "value": value.round(4)})


def long_frame(series: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    t = np.tile(np.arange(ROWS_PER_SERIES), series)
    ids = np.repeat([f"s{i:05d}" for i in range(series)], ROWS_PER_SERIES)
    level = np.repeat(rng.uniform(50, 150, series), ROWS_PER_SERIES)
    phase = np.repeat(rng.uniform(0, 2 * np.pi, series), ROWS_PER_SERIES)
    value = level + 5 * np.sin(2 * np.pi * t / 12 + phase) + rng.normal(0, 1, len(t))
    return pd.DataFrame({"id": ids, "step": t, "value": value.round(4)})


def config(csv: Path, long: bool) -> dict:
    data = {"path": str(csv), "time_column": "step", "features": ["value"]}
    if long:
        data["id_column"] = "id"
    return {
        "name": "growth",
        "seed": 1,
        "data": data,
        "window": {"input_steps": 24, "horizon": 1},
        "split": {"test": 0.2, "validation": 0.1} if not long else {"test": 10, "validation": 10},
        "model": {"architecture": "lstm", "units": [32]},
        "training": {"epochs": 1, "batch_size": 64, "final_fit": False},
        "evaluation": {"season_length": 12 if long else 24},
    }


def measured(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of a command run in a child of a fresh helper process."""
    code = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "took = time.perf_counter() - start\n"
        "assert r.returncode == 0, r.stderr[-2000:]\n"
        "print(took, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    seconds, mb = out.stdout.split()
    return float(seconds), float(mb)


def case(frame: pd.DataFrame, long: bool, folder: Path) -> dict:
    csv = folder / "data.csv"
    frame.to_csv(csv, index=False)
    path = folder / "growth.yaml"
    path.write_text(yaml.safe_dump(config(csv, long)))
    runs = str(folder / "runs")
    train = measured([FORECAST, "train", str(path), "--runs-dir", runs, "--quiet"])
    backtest = measured(
        [FORECAST, "backtest", str(path), "--folds", "3", "--runs-dir", runs, "--quiet",
         "--workers", "1"]
    )  # fmt: skip
    return {
        "rows": len(frame),
        "train_seconds": round(train[0], 2),
        "train_peak_mb": round(train[1]),
        "backtest_seconds": round(backtest[0], 2),
        "backtest_peak_mb": round(backtest[1]),
    }


def plot(results: dict) -> None:
    """Top: seconds above the smallest size's (the fixed start-up: Python, TensorFlow, the
    model's build), with a line of slope 1 through the largest size: linear growth runs
    parallel to it. Bottom: peak memory."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 6), dpi=100)
    for column, (kind, label) in enumerate(
        (("rows", "one series: rows"), ("series", "long table: series (100 rows each)"))
    ):
        entries = results[kind]
        x = [e["size"] for e in entries]
        ax = figure.add_subplot(2, 2, 1 + column)
        for command in ("train", "backtest"):
            seconds = [e[f"{command}_seconds"] for e in entries]
            above = [s - seconds[0] for s in seconds[1:]]
            ax.loglog(x[1:], above, "o-", label=f"{command} (start-up {seconds[0]:.1f} s)")
            ax.loglog(x[1:], [above[-1] * s / x[-1] for s in x[1:]], ":", color="grey")
        ax.set_xlabel(label)
        ax.set_ylabel("seconds above the smallest size")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, title="dotted: linear", title_fontsize=8)
        ax = figure.add_subplot(2, 2, 3 + column)
        for command in ("train", "backtest"):
            ax.semilogx(x, [e[f"{command}_peak_mb"] for e in entries], "o-", label=command)
        ax.set_xlabel(label)
        ax.set_ylabel("peak memory, MB")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle("forecast train and backtest --folds 3 (1 epoch, LSTM(32), window 24)")
    figure.tight_layout()
    figure.savefig(FIGURE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--largest", type=int, default=1_000_000, help="rows, at most")
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict = {"rows": [], "series": []}
    for rows in [s for s in SIZES if s <= args.largest]:
        with tempfile.TemporaryDirectory() as tmp:
            entry = {"size": rows, **case(series_frame(rows), False, Path(tmp))}
        print("rows", entry, flush=True)
        results["rows"].append(entry)
    for count in [s for s in SERIES if s * ROWS_PER_SERIES <= args.largest]:
        with tempfile.TemporaryDirectory() as tmp:
            entry = {"size": count, **case(long_frame(count), True, Path(tmp))}
        print("series", entry, flush=True)
        results["series"].append(entry)
    results["seconds"] = round(time.perf_counter() - started)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    plot(results)


if __name__ == "__main__":
    assert resource  # the helper process measures with it
    if sys.argv[1:] == ["--plot"]:  # the figure again from the saved results
        plot(json.loads(RESULTS.read_text()))
    else:
        main()
