"""Would combining the network with a statistical model help? Offline, on accuracy.py's folds.

    python benchmarks/combinations.py              # seed 1: run everything, then score
    python benchmarks/combinations.py --score-only # score the saved forecasts again

Runs the recommended config of every development series through `forecast backtest`
exactly as benchmarks/accuracy.py does (panels in one model), keeps each fold's forecast,
and fits statsforecast's AutoETS, AutoTheta and AutoARIMA on the same folds. Then scores
single models and their equal-weight combinations (mean, or median of three) by MASE over
seasonal naive's MASE, geometric mean over series. The forecasts go to
benchmarks/results/combinations-forecasts.json (not committed: rerun to get them).

The network's forecasts are taken from `forecast.backtest.run_backtest` and
`run_panel_backtest` by wrapping them: what they return is what `forecast backtest` plots.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402

FORECASTS = accuracy.ROOT / "benchmarks" / "results" / "combinations-forecasts.json"


def collect(seed: int) -> dict[str, Any]:
    """Per series: values, season, horizon, fold origins, the network's and each
    statsforecast model's forecast per fold."""
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

    from forecast import backtest as rolling

    captured: dict[str, Any] = {}
    single, panel = rolling.run_backtest, rolling.run_panel_backtest

    def run_backtest(*args: Any, **kwargs: Any) -> Any:
        result = single(*args, **kwargs)
        captured["single"] = result[1]  # (folds, H, K)
        return result

    def run_panel_backtest(*args: Any, **kwargs: Any) -> Any:
        result = panel(*args, **kwargs)
        captured["panel"] = result[1]  # per fold, id -> (H, K)
        return result

    rolling.run_backtest, rolling.run_panel_backtest = run_backtest, run_panel_backtest
    logging.getLogger("forecast").setLevel(logging.ERROR)
    out: dict[str, Any] = {}
    panels: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in accuracy.series_list():
            y = pd.read_csv(spec["path"])[spec["target"]].to_numpy(dtype=float)
            m, h = spec["season_length"], spec["horizon"]
            origins = [int(o) for o in accuracy.fold_origins(y, h)]
            entry = {"y": y.tolist(), "m": m, "h": h, "origins": origins}
            if "panel" in spec:
                file = spec["panel"]["file"]
                if file not in panels:
                    accuracy.network_panel(spec["panel"], seed, Path(tmp), [])
                    panels[file] = captured["panel"]
                sid = spec["name"].removeprefix(Path(file).stem.removesuffix("_long") + "_")
                entry["network"] = [np.asarray(f[sid])[:, 0].tolist() for f in panels[file]]
            else:
                accuracy.network(spec, seed, Path(tmp), [])
                entry["network"] = np.asarray(captured["single"])[:, :, 0].tolist()
            makers = {"AutoETS": AutoETS, "AutoTheta": AutoTheta, "AutoARIMA": AutoARIMA}
            for name, make in makers.items():
                entry[name] = [
                    make(season_length=m).forecast(y=y[: o + 1], h=h)["mean"].tolist()
                    for o in origins
                ]
            out[spec["name"]] = entry
            print(spec["name"], file=sys.stderr, flush=True)
    return out


COMBINATIONS = {
    "network": ["network"],
    "AutoETS": ["AutoETS"],
    "AutoTheta": ["AutoTheta"],
    "AutoARIMA": ["AutoARIMA"],
    "mean(network, AutoETS)": ["network", "AutoETS"],
    "mean(network, AutoTheta)": ["network", "AutoTheta"],
    "mean(network, AutoARIMA)": ["network", "AutoARIMA"],
    "median(network, AutoETS, AutoTheta)": ["network", "AutoETS", "AutoTheta"],
    "mean(AutoETS, AutoTheta, AutoARIMA)": ["AutoETS", "AutoTheta", "AutoARIMA"],
    "mean(all four)": ["network", "AutoETS", "AutoTheta", "AutoARIMA"],
}


def ratios(forecasts: dict[str, Any]) -> dict[str, dict[str, float]]:
    """combination -> series -> mean MASE over folds / seasonal naive's."""
    out: dict[str, dict[str, float]] = {name: {} for name in COMBINATIONS}
    for series, entry in forecasts.items():
        y, m, h = np.asarray(entry["y"]), entry["m"], entry["h"]
        snaive, scores = [], {name: [] for name in COMBINATIONS}
        for fold, origin in enumerate(entry["origins"]):
            history, actual = y[: origin + 1], y[origin + 1 : origin + 1 + h]
            scale = accuracy.mase_scale(history, m)
            naive = accuracy.seasonal_naive(history, h, m)
            snaive.append(np.mean(np.abs(naive - actual)) / scale)
            for name, parts in COMBINATIONS.items():
                stack = np.array([entry[p][fold] for p in parts])
                combined = np.median(stack, 0) if len(parts) == 3 and "median" in name else None
                combined = stack.mean(0) if combined is None else combined
                scores[name].append(np.mean(np.abs(combined - actual)) / scale)
        for name in COMBINATIONS:
            out[name][series] = float(np.mean(scores[name]) / np.mean(snaive))
    return out


def table(scored: dict[str, dict[str, float]]) -> str:
    names = list(next(iter(scored.values())))
    real = [n for n in names if n != "sine"]
    development = [n for n in real if not n.startswith(("visnights_", "eustocks_"))]

    def cell(name: str, series: list[str]) -> str:
        values = np.array([scored[name][s] for s in series])
        return f"{np.exp(np.mean(np.log(values))):.3f} ({int((values < 1).sum())})"

    lines = [
        f"| forecast | {len(development)} development series | all {len(real)} real |",
        "|---|---:|---:|",
    ]
    lines += [f"| {n} | {cell(n, development)} | {cell(n, real)} |" for n in scored]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--score-only", action="store_true")
    args = parser.parse_args()
    if args.score_only:
        forecasts = json.loads(FORECASTS.read_text())
    else:
        forecasts = collect(args.seed)
        FORECASTS.write_text(json.dumps(forecasts))
    print(table(ratios(forecasts)))


if __name__ == "__main__":
    main()
