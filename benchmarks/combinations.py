"""Would combining the network with a statistical model help? Offline, on accuracy.py's folds.

    python benchmarks/combinations.py              # seed 1: run everything, then score
    python benchmarks/combinations.py --score-only # score the saved forecasts again

Runs the recommended config of every development series through `forecast backtest`
exactly as benchmarks/accuracy.py does (panels in one model), keeps each fold's forecast,
and fits statsforecast's AutoETS, AutoTheta and AutoARIMA on the same folds. Then scores
single models and their equal-weight combinations (mean, or median of three) by MASE over
seasonal naive's MASE, geometric mean over series. The forecasts go to
benchmarks/results/combinations-forecasts.json (not committed: rerun to get them).

The network's forecasts are what `forecast backtest` plots: its checked plan run by
`forecast.workflows.backtest.run_backtest` (a long table: `run_panel_backtest`), with no run
directory.
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


def network_forecasts(config: Path, seed: int) -> Any:
    """`forecast backtest --folds 3` of `config` as accuracy.py runs it, without writing a
    run directory: per fold, the forecast (H, K), or for a long table id -> (H, K)."""
    from forecast import api
    from forecast.workflows import backtest as rolling

    plan = api.check_backtest(config, folds=3, seed=seed)
    if plan.config.data.id_column is not None:
        return rolling.run_panel_backtest(plan.config, plan.data, plan.origins, quiet=True)[1]
    return rolling.run_backtest(plan.config, plan.data, plan.origins, quiet=True)[1]


def collect(seed: int) -> dict[str, Any]:
    """Per series: values, season, horizon, fold origins, the network's and each
    statsforecast model's forecast per fold."""
    logging.getLogger("forecast").setLevel(logging.ERROR)
    out: dict[str, Any] = {}
    panels: dict[str, Any] = {}  # panel file -> its folds' forecasts, one model for all
    with tempfile.TemporaryDirectory() as tmp:
        for spec in accuracy.series_list():
            y = pd.read_csv(spec["path"])[spec["target"]].to_numpy(dtype=float)
            m, h = spec["season_length"], spec["horizon"]
            origins = [int(o) for o in accuracy.fold_origins(y, h)]
            entry = {"y": y.tolist(), "m": m, "h": h, "origins": origins}
            if "panel" in spec:
                path = accuracy.DATA / "accuracy" / spec["panel"]["file"]
                stem = path.stem.removesuffix("_long")
                if path.name not in panels:
                    config = accuracy.init_config(path, spec["target"], h, Path(tmp) / stem)
                    panels[path.name] = network_forecasts(config, seed)
                sid = spec["name"].removeprefix(f"{stem}_")
                entry["network"] = [f[sid][:, 0].tolist() for f in panels[path.name]]
            else:
                config = accuracy.init_config(
                    spec["path"], spec["target"], h, Path(tmp) / spec["name"]
                )
                entry["network"] = network_forecasts(config, seed)[:, :, 0].tolist()
            for name, model in accuracy.stats_models().items():
                entry[name] = [
                    model(season_length=m).forecast(y=y[: o + 1], h=h)["mean"].tolist()
                    for o in origins
                ]
            out[spec["name"]] = entry
            print(spec["name"], file=sys.stderr, flush=True)
    return out


MEAN, MEDIAN = np.mean, np.median
COMBINATIONS = {  # name -> (the forecasts combined, how: over them, step by step)
    "network": (["network"], MEAN),
    "AutoETS": (["AutoETS"], MEAN),
    "AutoTheta": (["AutoTheta"], MEAN),
    "AutoARIMA": (["AutoARIMA"], MEAN),
    "mean(network, AutoETS)": (["network", "AutoETS"], MEAN),
    "mean(network, AutoTheta)": (["network", "AutoTheta"], MEAN),
    "mean(network, AutoARIMA)": (["network", "AutoARIMA"], MEAN),
    "median(network, AutoETS, AutoTheta)": (["network", "AutoETS", "AutoTheta"], MEDIAN),
    "mean(AutoETS, AutoTheta, AutoARIMA)": (["AutoETS", "AutoTheta", "AutoARIMA"], MEAN),
    "mean(all four)": (["network", "AutoETS", "AutoTheta", "AutoARIMA"], MEAN),
}


def mase(predicted: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> float:
    """Mean over folds of MASE: forecasts and actuals (folds, H), scales (folds,)."""
    return float(np.mean(np.mean(np.abs(predicted - actual), axis=1) / scale))


def ratios(forecasts: dict[str, Any]) -> dict[str, dict[str, float]]:
    """combination -> series -> mean MASE over folds / seasonal naive's."""
    out: dict[str, dict[str, float]] = {name: {} for name in COMBINATIONS}
    for series, entry in forecasts.items():
        y, m, h = np.asarray(entry["y"]), entry["m"], entry["h"]
        histories = [y[: o + 1] for o in entry["origins"]]
        actuals = np.array([y[o + 1 : o + 1 + h] for o in entry["origins"]])  # (folds, H)
        scales = np.array([accuracy.mase_scale(past, m) for past in histories])
        naive = np.array([accuracy.seasonal_naive(past, h, m) for past in histories])
        for name, (parts, combine) in COMBINATIONS.items():
            combined = combine(np.array([entry[p] for p in parts]), axis=0)  # (folds, H)
            out[name][series] = mase(combined, actuals, scales) / mase(naive, actuals, scales)
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
