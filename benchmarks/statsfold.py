"""statsforecast's AutoETS, AutoTheta and AutoARIMA on the folds `forecast backtest --folds 3`
uses, as a user runs them: one process per series (statsforecast's import and numba's
compilation included), reading the CSV with pandas. The reference of run.py's group
`backtest_cli`; it imports nothing of forecast, so neither side pays for the other.

    python benchmarks/statsfold.py data/accuracy/a10_monthly.csv sales 12 12 [more ...]

Arguments come in fours: CSV, target column, horizon, season length; several series in one
process are the "one command for all" case. Prints one JSON line: {"seconds", "mase"}, the
mean MASE of each model per series (a check that the fits ran, not a result).
"""

from __future__ import annotations

import json
import sys
import time

started = time.perf_counter()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from statsforecast.models import AutoARIMA, AutoETS, AutoTheta  # noqa: E402

FOLDS = 3


def origins(rows: int, horizon: int) -> np.ndarray:
    """forecast's backtest_origins(rows, 3, horizon): the last fold ends at the last row."""
    return rows - 1 - horizon - horizon * np.arange(FOLDS - 1, -1, -1)


def one(csv: str, target: str, horizon: int, season: int) -> dict[str, float]:
    y = pd.read_csv(csv)[target].to_numpy(dtype=float)
    scale = float(np.mean(np.abs(y[season:] - y[:-season])))
    out = {}
    for model in (AutoETS, AutoTheta, AutoARIMA):
        errors = []
        for origin in origins(len(y), horizon):
            history, actual = y[: origin + 1], y[origin + 1 : origin + 1 + horizon]
            predicted = model(season_length=season).forecast(y=history, h=horizon)["mean"]
            errors.append(float(np.mean(np.abs(predicted - actual))) / scale)
        out[model.__name__] = round(float(np.mean(errors)), 4)
    return out


def main(args: list[str]) -> None:
    if not args or len(args) % 4:
        raise SystemExit("usage: statsfold.py CSV TARGET HORIZON SEASON [CSV TARGET ...]")
    mase = {}
    for i in range(0, len(args), 4):
        csv, target, horizon, season = args[i : i + 4]
        mase[csv] = one(csv, target, int(horizon), int(season))
    print(json.dumps({"seconds": round(time.perf_counter() - started, 3), "mase": mase}))


if __name__ == "__main__":
    main(sys.argv[1:])
