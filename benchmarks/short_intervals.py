"""Prediction intervals of short series: the last max(40, 4 * horizon + 2) rows of every
development series (benchmarks/accuracy.py's list), the config `forecast init` writes for
them (all get `split.validation: 0`, so their intervals are calibrated on inner folds:
README.md, Prediction intervals), `forecast backtest --folds 3` as a user runs it, one
command for all of them per seed.

Prints per seed the pooled coverage of the 80% and 95% intervals over every forecast step
of every fold that has intervals (and seasonal naive's own empirical interval's), the
geometric mean over folds of the model's MSIS over seasonal naive's, how many folds have
intervals, and then the coverage per series over the seeds.

    .venv/bin/python benchmarks/short_intervals.py --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import accuracy  # noqa: E402

FORECAST = str(Path(sys.executable).parent / "forecast")
LEVELS = ("80", "95")


def short_configs(folder: Path) -> list[str]:
    """Each development series cut to its last rows, and the config init writes for it."""
    env = {**os.environ, "FORECAST_WARM": "0"}
    names = []
    for spec in accuracy.series_list(panels=False):
        frame = pd.read_csv(spec["path"])
        rows = max(40, 4 * spec["horizon"] + 2)
        csv = folder / f"{spec['name']}_short.csv"
        frame.tail(rows).to_csv(csv, index=False)
        init = [FORECAST, "init", "--csv", str(csv), "--target", spec["target"]]
        text = subprocess.run(
            [*init, "--horizon", str(spec["horizon"])],
            capture_output=True, text=True, env=env, check=True,
        ).stdout  # fmt: skip
        (folder / f"{spec['name']}_short.yaml").write_text(text)
        names.append(f"{spec['name']}_short.yaml")
    return names


def folds_of(runs: Path) -> list[dict]:
    """Every fold of every backtest.json under `runs`, with its series name and horizon."""
    out = []
    for path in sorted(runs.glob("*/backtest.json")):
        report = json.loads(path.read_text())
        name = path.parent.name.split("-backtest")[0]
        out += [{**f, "series": name, "horizon": report["horizon"]} for f in report["folds"]]
    return out


def summary(folds: list[dict]) -> dict:
    scored = [f for f in folds if "unavailable" not in f.get("intervals", {"unavailable": 1})]
    steps = sum(f["horizon"] for f in scored)
    out: dict = {"folds": len(folds), "with_intervals": len(scored), "steps": steps}
    if not scored:
        return out
    for level in LEVELS:
        blocks = [(f["intervals"][level], f["horizon"]) for f in scored]
        naive = [(b["seasonal_naive"], h) for b, h in blocks]
        naive = [(n, h) for n, h in naive if n["coverage"] is not None]
        ratios = [b["msis"] / b["seasonal_naive"]["msis"] for b, _ in blocks
                  if b["seasonal_naive"]["msis"]]  # fmt: skip
        out[level] = {
            "coverage": sum(b["coverage"] * h for b, h in blocks) / steps,
            "seasonal_naive_coverage": sum(b["coverage"] * h for b, h in naive)
            / sum(h for _, h in naive),
            "msis_over_seasonal_naive": statistics.geometric_mean(ratios),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3])
    args = parser.parse_args()
    every: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="short-") as tmp:
        folder = Path(tmp)
        configs = short_configs(folder)
        for seed in args.seeds:
            runs = folder / f"runs{seed}"
            subprocess.run(
                [FORECAST, "backtest", *configs, "--folds", "3", "--runs-dir", runs.name,
                 "--seed", str(seed), "--quiet"],
                cwd=folder, check=True, env={**os.environ, "FORECAST_WARM": "0"},
            )  # fmt: skip
            folds = folds_of(runs)
            every += folds
            s = summary(folds)
            print(
                f"seed {seed}: {s['with_intervals']} of {s['folds']} folds with intervals, "
                f"{s['steps']} steps"
            )
            for level in LEVELS:
                b = s[level]
                print(
                    f"  {level}%: coverage {b['coverage']:.3f} (seasonal naive's own "
                    f"{b['seasonal_naive_coverage']:.3f}), MSIS / seasonal naive's "
                    f"{b['msis_over_seasonal_naive']:.2f} (geometric mean over folds)"
                )
    print("per series over the seeds (80% / 95% coverage):")
    for name in sorted({f["series"] for f in every}):
        s = summary([f for f in every if f["series"] == name])
        if s["with_intervals"]:
            print(f"  {name:32s} {s['80']['coverage']:.2f} / {s['95']['coverage']:.2f}")
        else:
            print(f"  {name:32s} no fold with intervals")


if __name__ == "__main__":
    main()
