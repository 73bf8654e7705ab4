"""Accuracy on the development set: `forecast init` + `forecast backtest --folds 3` per series,
next to seasonal naive and statsforecast's AutoETS, AutoTheta and AutoARIMA on the same folds.

    python benchmarks/accuracy.py                 # every series, seed 1
    python benchmarks/accuracy.py --seeds 1 2 3   # stability over seeds
    python benchmarks/accuracy.py --series a10_monthly airline_monthly --no-stats

Protocol (data/accuracy/spec.json): 3 folds, one origin each, `horizon` rows apart, the last
fold ending at the last row; everything refitted per fold on the rows up to and including the
origin; MASE scaled by the mean absolute lag-m difference of those rows (m = the spec's
season length). The network runs exactly as a user runs it: the config `forecast init --csv
FILE --target COL --horizon H` prints, unchanged, through `api.backtest` (what `forecast
backtest` calls). statsforecast is in the dev extra only.

Per series: the mean over folds of each model's MASE, and its ratio to seasonal naive's.
Summary: the geometric mean of the ratios and how many are below 1. Results go to
benchmarks/results/accuracy.json and, with --write-readme, into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forecast import api  # noqa: E402
from forecast.workflows.backtest import backtest_origins  # noqa: E402
from forecast.workflows.starter import starter_config  # noqa: E402

DATA = ROOT / "data"
RESULTS = ROOT / "benchmarks" / "results" / "accuracy.json"
STATS = ("AutoETS", "AutoTheta", "AutoARIMA")
# the shipped series besides data/accuracy/, with the same protocol
EXTRA = [
    {"file": "airline_monthly.csv", "target": "passengers", "time_column": "date",
     "season_length": 12, "horizon": 12},
    {"file": "macrodata_quarterly.csv", "target": "realgdp", "time_column": "date",
     "season_length": 4, "horizon": 8},
    {"file": "msft_daily.csv", "target": "Close", "time_column": "Date",
     "season_length": 5, "horizon": 10},
    {"file": "sine.csv", "target": "value", "time_column": "step",
     "season_length": 1, "horizon": 10},
]  # fmt: skip


# each panel's series as its own CSV, cut from the panel file on first use
PANELS = Path(tempfile.gettempdir()) / "forecast-accuracy-panels"


def series_list(panels: bool = True) -> list[dict]:
    """The development series: data/accuracy/spec.json's series, the shipped EXTRA ones and,
    with `panels`, every series of the spec's long-format panels on its own (one CSV each
    in PANELS, cut from the panel file as a user would)."""
    spec = json.loads((DATA / "accuracy" / "spec.json").read_text())
    found = [{**s, "path": DATA / "accuracy" / s["file"]} for s in spec["series"]]
    found += [{**s, "path": DATA / s["file"]} for s in EXTRA]
    for s in found:
        s["name"] = Path(s["file"]).stem
    for panel in spec.get("panels", []) if panels else []:
        found += panel_series(panel)
    return found


def panel_series(panel: dict) -> list[dict]:
    """A long-format panel (id, time, target) as one spec per series, each in its own CSV."""
    frame = pd.read_csv(DATA / "accuracy" / panel["file"])
    stem = Path(panel["file"]).stem.removesuffix("_long")
    out = []
    for key, part in frame.groupby(panel["id_column"], sort=True):
        name = f"{stem}_{key}"
        path = PANELS / f"{name}.csv"
        if not path.is_file():
            PANELS.mkdir(parents=True, exist_ok=True)
            part[[panel["time_column"], panel["target"]]].to_csv(path, index=False)
        spec = {k: v for k, v in panel.items() if k not in ("file", "id_column")}
        out.append({**spec, "file": path.name, "path": path, "name": name, "panel": panel})
    return out


def mase_scale(y: np.ndarray, season: int) -> float:
    return float(np.mean(np.abs(y[season:] - y[:-season])))


def fold_origins(y: np.ndarray, horizon: int) -> np.ndarray:
    return backtest_origins(len(y), 3, horizon)


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    steps = np.arange(horizon)
    return history[len(history) - season + steps % season]


def stats_models() -> dict[str, Any]:
    """STATS by name -> its statsforecast class (the dev extra)."""
    from statsforecast import models

    return {name: getattr(models, name) for name in STATS}


def stats_forecasts(y: np.ndarray, spec: dict) -> dict[str, dict]:
    """Each statsforecast model's MASE per fold and seconds, on exactly the network's folds."""
    season, horizon = spec["season_length"], spec["horizon"]
    out = {}
    for name, model in stats_models().items():
        started, scores = time.perf_counter(), []
        for origin in fold_origins(y, horizon):
            history, actual = y[: origin + 1], y[origin + 1 : origin + 1 + horizon]
            try:
                predicted = model(season_length=season).forecast(y=history, h=horizon)["mean"]
                scores.append(
                    float(np.mean(np.abs(predicted - actual))) / mase_scale(history, season)
                )
            except Exception as exc:  # a model that cannot fit this series: say so
                print(f"  {name} failed on {spec['name']}: {exc}", file=sys.stderr)
                scores.append(math.nan)
        out[name] = {"mase": scores, "seconds": round(time.perf_counter() - started, 3)}
    return out


def network(spec: dict, seed: int, folder: Path, overrides: list[str], trials: int = 0) -> dict:
    """`forecast init` + `forecast backtest --folds 3`, as a user runs them; with `trials`,
    `forecast tune` in between, on the rows before the first fold only."""
    config = init_config(spec["path"], spec["target"], spec["horizon"], folder / spec["name"])
    started = time.perf_counter()
    if trials:
        # the test part is the three folds' rows: tuning backtests the rows before them
        hidden = [f"split.test={3 * spec['horizon']}"]
        tuned = folder / f"{spec['name']}-{seed}.tuned.yaml"
        api.tune(config, trials, 3, tuned, overrides=hidden + overrides, seed=seed, quiet=True)
        config, overrides = tuned, []
    result = backtest(config, folder, overrides, seed)
    seconds = time.perf_counter() - started
    return summary(spec, result.report["folds"], seconds, result.report["season_length"])


def init_config(csv: Path, target: str, horizon: int, stem: Path) -> Path:
    """`forecast init --csv CSV --target TARGET --horizon H` written to STEM.yaml."""
    config = stem.with_suffix(".yaml")
    config.write_text(starter_config("univariate", csv, target, horizon), encoding="utf-8")
    return config


def backtest(config: Path, folder: Path, overrides: list[str], seed: int) -> Any:
    """`forecast backtest --folds 3` of `config`, quietly, its runs under `folder`."""
    return api.backtest(
        config, folds=3, runs_dir=folder / "runs", overrides=overrides, seed=seed, quiet=True
    )


def summary(spec: dict, folds: list[dict], seconds: float, season: int) -> dict:
    """One series' entry from its backtest.json fold rows: MASE and interval scores per fold."""
    if season != spec["season_length"]:
        print(
            f"  note: {spec['name']}: the config's season length {season} "
            f"differs from the spec's {spec['season_length']}",
            file=sys.stderr,
        )
    intervals = {}
    for level in ("80", "95"):
        scored = [f.get("intervals", {}).get(level) for f in folds]
        if all(scored):
            intervals[level] = {
                "coverage": [f["coverage"] for f in scored],
                "msis": [f["msis"] for f in scored],
                "seasonal_naive_coverage": [f["seasonal_naive"]["coverage"] for f in scored],
                "seasonal_naive_msis": [f["seasonal_naive"]["msis"] for f in scored],
            }
    return {
        "mase": [f["model"]["mase"] for f in folds],
        "seconds": round(seconds, 3),
        "season_length": season,
        "intervals": intervals,
    }


def network_panel(panel: dict, seed: int, folder: Path, overrides: list[str]) -> dict:
    """A long-format panel as a user runs it: `forecast init --csv LONG.csv` (one model for
    every series) + `forecast backtest --folds 3`; per series name, its entry as `network`
    gives, with the panel's seconds shared out equally between its series."""
    path = DATA / "accuracy" / panel["file"]
    stem = path.stem.removesuffix("_long")
    config = init_config(path, panel["target"], panel["horizon"], folder / stem)
    started = time.perf_counter()
    result = backtest(config, folder, overrides, seed)
    seconds = time.perf_counter() - started
    report, id_column = result.report, panel["id_column"]
    ids = list(dict.fromkeys(str(f[id_column]) for f in report["folds"]))
    out = {}
    for sid in ids:
        folds = sorted(
            (f for f in report["folds"] if str(f[id_column]) == sid), key=lambda f: f["fold"]
        )
        spec = {"name": f"{stem}_{sid}", "season_length": panel["season_length"]}
        out[spec["name"]] = {
            **summary(spec, folds, seconds / len(ids), report["season_length"]),
            "panel_seconds": round(seconds, 3),
        }
    return out


def run(
    names: list[str] | None,
    seeds: list[int],
    with_stats: bool,
    overrides: list[str],
    trials: int = 0,
    panels: str = "together",
) -> dict:
    """Each series' entry in the results file; a panel's series `together` in one model, as
    `forecast init` sets up a long table, or `apart`, each series on its own."""
    logging.getLogger("forecast").setLevel(logging.ERROR)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    together: dict[tuple[str, int], dict] = {}  # (panel file, seed) -> its series' entries
    with tempfile.TemporaryDirectory() as tmp:
        for spec in series_list():
            if names and spec["name"] not in names:
                continue
            frame = pd.read_csv(spec["path"])
            y = frame[spec["target"]].to_numpy(dtype=float)
            entry = results.setdefault(spec["name"], {})
            season, horizon = spec["season_length"], spec["horizon"]
            entry["rows"], entry["season_length"], entry["horizon"] = len(y), season, horizon
            entry["seasonal_naive"] = [
                float(
                    np.mean(
                        np.abs(
                            seasonal_naive(y[: o + 1], horizon, season) - y[o + 1 : o + 1 + horizon]
                        )
                    )
                )
                / mase_scale(y[: o + 1], season)
                for o in fold_origins(y, horizon)
            ]
            if with_stats:
                entry["stats"] = stats_forecasts(y, spec)
            entry.setdefault("network", {})
            for seed in seeds:
                try:
                    if "panel" in spec and panels == "together":
                        key = (spec["panel"]["file"], seed)
                        if key not in together:
                            together[key] = network_panel(spec["panel"], seed, Path(tmp), overrides)
                        entry["network"][str(seed)] = together[key][spec["name"]]
                    else:
                        entry["network"][str(seed)] = network(
                            spec, seed, Path(tmp), overrides, trials
                        )
                except Exception as exc:  # report a series the recommended config cannot run
                    entry["network"][str(seed)] = {"error": f"{type(exc).__name__}: {exc}"}
                shown = entry["network"][str(seed)]
                print(f"{spec['name']} seed {seed}: {shown}", file=sys.stderr, flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=1))
    return results


def table(results: dict, seeds: list[int]) -> str:
    """Markdown: per series, each model's mean MASE / seasonal naive's (lower is better)."""
    models = ["network", *STATS]
    lines = [
        "| series | rows | h | m | seasonal naive MASE | "
        + " | ".join(f"{m} / snaive" for m in models)
        + " | network s |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(models) + "---:|",
    ]
    ratios: dict[str, list[float]] = {m: [] for m in models}
    for name, entry in results.items():
        base = float(np.mean(entry["seasonal_naive"]))
        cells, seconds = [], []
        for model in models:
            if model == "network":
                runs = [entry["network"].get(str(s), {}) for s in seeds]
                values = [float(np.mean(r["mase"])) for r in runs if "mase" in r]
                seconds += [r["seconds"] for r in runs if "seconds" in r]
                value = float(np.mean(values)) if len(values) == len(seeds) else math.nan
            else:
                value = float(
                    np.nanmean(entry.get("stats", {}).get(model, {}).get("mase", [math.nan]))
                )
            ratio = value / base
            ratios[model].append(ratio)
            cells.append("fails" if math.isnan(ratio) else f"{ratio:.3f}")
        lines.append(
            f"| {name} | {entry['rows']} | {entry['horizon']} | {entry['season_length']} | "
            f"{base:.3f} | "
            + " | ".join(cells)
            + f" | {np.mean(seconds) if seconds else math.nan:.0f} |"
        )
    summary = []
    for model in models:
        values = np.array(ratios[model])
        ok = values[np.isfinite(values)]
        geo = float(np.exp(np.mean(np.log(ok)))) if len(ok) else math.nan
        summary.append(f"{geo:.3f} ({int((ok < 1).sum())}/{len(values)} below 1)")
    lines.append("| **geometric mean** | | | | | " + " | ".join(summary) + " | |")
    return "\n".join(lines)


def interval_table(results: dict, seeds: list[int]) -> str:
    """Markdown: per series, the network's 80% and 95% interval coverage and MSIS against
    seasonal naive's own empirical interval, averaged over folds and seeds; pooled coverage
    over every forecast step of every series."""
    lines = [
        "| series | h | 80% coverage | 95% coverage | MSIS 95% | snaive MSIS 95% | "
        "snaive 80% coverage |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    pooled: dict[str, list[float]] = {"80": [], "95": [], "s80": []}
    weights: list[int] = []
    missing = []
    for name, entry in results.items():
        runs = [entry["network"].get(str(s), {}).get("intervals", {}) for s in seeds]
        if not all("80" in r and "95" in r for r in runs):
            missing.append(name)
            continue

        def mean(level: str, key: str, runs: list = runs) -> float:
            return float(np.mean([v for r in runs for v in r[level][key]]))

        cov80, cov95 = mean("80", "coverage"), mean("95", "coverage")
        snaive80 = mean("80", "seasonal_naive_coverage")
        pooled["80"].append(cov80)
        pooled["95"].append(cov95)
        pooled["s80"].append(snaive80)
        weights.append(entry["horizon"])
        lines.append(
            f"| {name} | {entry['horizon']} | {cov80:.2f} | {cov95:.2f} | "
            f"{mean('95', 'msis'):.2f} | {mean('95', 'seasonal_naive_msis'):.2f} | "
            f"{snaive80:.2f} |"
        )
    if weights:
        w = np.array(weights, dtype=float)
        p80, p95, s80 = (float(np.average(pooled[k], weights=w)) for k in ("80", "95", "s80"))
        lines.append(f"| **pooled over every step** | | {p80:.3f} | {p95:.3f} | | | {s80:.3f} |")
    if missing:
        lines.append(f"\nNo intervals (no validation part in the config): {', '.join(missing)}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", nargs="*", help="names (file stems); default: all")
    parser.add_argument("--seeds", nargs="*", type=int, default=[1])
    parser.add_argument("--no-stats", action="store_true", help="skip statsforecast")
    parser.add_argument("--table-only", action="store_true", help="print the saved results")
    parser.add_argument(
        "--set", action="append", default=[], help="experiment: override the init config"
    )
    parser.add_argument("--results", type=Path, help="results JSON file (default: results/)")
    parser.add_argument(
        "--panels",
        choices=("together", "apart"),
        default="together",
        help="a panel's series in one model (what `forecast init` writes for a long table) "
        "or each on its own",
    )
    parser.add_argument(
        "--tune", type=int, default=0, metavar="N", help="experiment: `forecast tune --trials N`"
    )
    args = parser.parse_args()
    global RESULTS
    RESULTS = args.results or RESULTS
    if args.table_only:
        results = json.loads(RESULTS.read_text())
    else:
        results = run(args.series, args.seeds, not args.no_stats, args.set, args.tune, args.panels)
    print(table(results, args.seeds))
    print()
    print(interval_table(results, args.seeds))


if __name__ == "__main__":
    main()
