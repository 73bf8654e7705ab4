"""The final fit from the held-out weights against the final fit from scratch: accuracy of
the model `predict` uses, and what each costs, per series.

    python benchmarks/final_fit.py --seeds 1 2 3
    python benchmarks/final_fit.py --series a10_monthly nottem_monthly --seeds 1

A backtest's folds forecast with held-out models and never run a final fit, so
benchmarks/accuracy.py cannot see it. Here, as a user does it: for each of the 3 folds of
data/accuracy's protocol (origins `horizon` rows apart, the last fold ending at the last
row), the rows up to and including the origin are a CSV; `forecast init` writes its config;
`forecast train` runs (held-out fit, evaluation, final fit on every row) once per
`training.final_fit_start`, and `forecast predict` on that CSV forecasts the next `horizon`
rows, which are scored against the actual ones (MASE, scaled on the CSV's rows). The
held-out fit of both is the same (same seed, same rows): only the final fit differs.

Per series: MASE per fold for each start, and the final fit's seconds over the held-out
fit's (run.json `timings`: `final_fit` over `build` + `window` + `fit`). Results go to
benchmarks/results/final_fit.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

# each command measured here is a process of its own, TensorFlow imported in it (the warm
# start, forecast/cli/warm.py, is off; benchmarks/run.py's group backtest_cli measures it)
os.environ["FORECAST_WARM"] = "0"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import EXTRA, fold_origins, init_config, mase_scale, series_list  # noqa: E402

from forecast import api  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "final_fit.json"
STARTS = ("held_out", "scratch")
SKIPPED = {"msft_daily", "sine"}  # 8,000 rows of a random walk, and a pure sine


def one_fold(spec: dict, origin: int, seed: int, folder: Path) -> dict:
    frame = pd.read_csv(spec["path"])
    horizon, target = spec["horizon"], spec["target"]
    history = frame.iloc[: origin + 1]
    actual = frame[target].to_numpy(float)[origin + 1 : origin + 1 + horizon]
    csv = folder / f"{spec['name']}.csv"
    history.to_csv(csv, index=False)
    config = init_config(csv, target, horizon, folder / spec["name"])
    scale = mase_scale(history[target].to_numpy(float), spec["season_length"])
    out = {}
    for start in STARTS:
        result = api.train(
            config,
            runs_dir=folder / "runs",
            overrides=[f"training.final_fit_start={start}"],
            seed=seed,
            quiet=True,
        )
        info = json.loads((result.run_dir / "run.json").read_text())
        forecast, _ = api.predict(result.run_dir, csv, output=folder / f"{start}.csv")
        predicted = forecast[target].to_numpy(float)
        timings = info["timings"]
        out[start] = {
            "mase": float(np.mean(np.abs(predicted - actual))) / scale,
            # the held-out fit's build, windows and model.fit, against the whole final fit
            "held_out_fit": timings["build"] + timings["window"] + timings["fit"],
            "final_fit": timings.get("final_fit", 0.0),
            "final_epochs": (info.get("final_fit") or {}).get("epochs", 0),
            "best_epoch": info.get("best_epoch"),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--series", nargs="*", help="names (file stems); default: all")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.getLogger("forecast").setLevel(logging.ERROR)
    chosen = [
        s
        for s in series_list(panels=False)
        if s["name"] not in SKIPPED and (not args.series or s["name"] in args.series)
    ]
    assert all(e["file"] for e in EXTRA)
    started = time.perf_counter()
    results: dict = {}
    for seed in args.seeds:
        for spec in chosen:
            y = pd.read_csv(spec["path"])[spec["target"]].to_numpy(float)
            folds = []
            for origin in fold_origins(y, spec["horizon"]):
                with tempfile.TemporaryDirectory() as tmp:
                    folds.append(one_fold(spec, int(origin), seed, Path(tmp)))
            entry = {
                start: {
                    "mase": [f[start]["mase"] for f in folds],
                    "final_over_held_out": [
                        f[start]["final_fit"] / f[start]["held_out_fit"] for f in folds
                    ],
                    "final_epochs": [f[start]["final_epochs"] for f in folds],
                    "best_epoch": [f[start]["best_epoch"] for f in folds],
                }
                for start in STARTS
            }
            results.setdefault(spec["name"], {})[str(seed)] = entry
            warm, cold = (statistics.mean(entry[s]["mase"]) for s in STARTS)
            cost = [statistics.mean(entry[s]["final_over_held_out"]) for s in STARTS]
            print(
                f"seed {seed} {spec['name']:28s} MASE held_out {warm:.3f} scratch {cold:.3f} "
                f"ratio {warm / cold:.3f}; final/held-out fit {cost[0]:.2f}x vs {cost[1]:.2f}x",
                flush=True,
            )
    ratios, costs = [], {s: [] for s in STARTS}
    for per_seed in results.values():
        for entry in per_seed.values():
            warm, cold = (statistics.mean(entry[s]["mase"]) for s in STARTS)
            ratios.append(warm / cold)
            for s in STARTS:
                costs[s] += entry[s]["final_over_held_out"]
    summary = {
        "geomean_mase_ratio_held_out_over_scratch": math.exp(
            statistics.mean(math.log(r) for r in ratios)
        ),
        "series_seeds_better": sum(r < 1 for r in ratios),
        "series_seeds": len(ratios),
        "median_final_over_held_out": {s: statistics.median(costs[s]) for s in STARTS},
        "seconds": round(time.perf_counter() - started),
    }
    print(json.dumps(summary, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"summary": summary, "series": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
