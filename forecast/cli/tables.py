"""The tables the commands print: a DataFrame (predict, runs), the metrics after training, the
folds of a backtest and the trials of a tune."""

from __future__ import annotations

from typing import Any

TABLE_WIDTH = 100  # a wider table wraps into blocks of columns, as pandas prints them
SERIES_LINES = 30  # a long table's backtest prints one line per series up to this many


def format_table(frame: Any, **to_string: Any) -> str:
    """A DataFrame as printed text, without the index: a wide (CJK) character counts as the
    two columns a terminal gives it, so names like 收盘价 line up, and (unless `line_width`
    says otherwise) columns that do not fit in TABLE_WIDTH continue in a block below."""
    import pandas as pd  # only where a table is printed: --help stays quick

    with pd.option_context("display.unicode.east_asian_width", True):
        return frame.to_string(index=False, **{"line_width": TABLE_WIDTH, **to_string})


def format_metrics(metrics: dict[str, Any], model_label: str) -> str:
    """The model vs baselines table printed after training."""
    rows = [("model", metrics["model"])] + list(metrics["baselines"].items())
    head = f"{'':16}{'MAE':>12}{'RMSE':>12}{'MAPE%':>10}{'sMAPE%':>10}{'MASE':>8}"

    def cell(value: float | None, width: int, digits: int) -> str:
        return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.{digits}g}"

    lines = [
        f"test split: {metrics['test_rows']} rows, {metrics['test_origins']} forecast origins, "
        f"horizon {metrics['horizon']}, season length {metrics['season_length']}; "
        f"model {model_label}",
        head,
    ]
    for name, m in rows:
        lines.append(
            f"{name:16}{cell(m['mae'], 12, 5)}{cell(m['rmse'], 12, 5)}"
            f"{cell(m['mape'], 10, 4)}{cell(m['smape'], 10, 4)}{cell(m['mase'], 8, 3)}"
        )
    if metrics.get("mape_excluded_zero_actuals"):
        lines.append(
            f"MAPE leaves out {metrics['mape_excluded_zero_actuals']} forecast(s) whose actual is 0"
        )
    return "\n".join(lines)


def _mase_cell(block: dict[str, Any], name: str) -> str:
    """The MASE of the model or a baseline in a backtest block, 21 wide."""
    value = block["model"]["mase"] if name == "model" else block["baselines"][name]["mase"]
    return f"{'n/a':>21}" if value is None else f"{value:>21.3f}"


def format_backtest(report: dict[str, Any]) -> str:
    """One line per fold and the mean: MAE and MASE of the model and each baseline. For a
    long table, one line per series (its mean over the folds; up to SERIES_LINES) and the
    mean over series."""
    names = ["model", "naive", "seasonal_naive", "mean"]
    if "per_series" in report:
        return _format_panel_backtest(report, names)

    def when(value: Any) -> str:
        return str(value)[:19].replace("T00:00:00", "")

    spans = [f"{when(f['test_start'])} .. {when(f['test_end'])}" for f in report["folds"]]
    width = max([len("forecasts"), *map(len, spans)])
    head = f"{'fold':>5} {'origin':>20}  {'forecasts':<{width}}" + "".join(
        f"{n + ' MASE':>21}" for n in names
    )

    lines = [head]
    for fold, span in zip(report["folds"], spans, strict=True):
        lines.append(
            f"{fold['fold']:>5} {when(fold['origin']):>20}  {span:<{width}}"
            + "".join(_mase_cell(fold, n) for n in names)
        )
    lines.append(
        f"{'mean':>5} {'':>20}  {'':<{width}}"
        + "".join(_mase_cell(report["mean"], n) for n in names)
    )
    return "\n".join(lines)


def _format_panel_backtest(report: dict[str, Any], names: list[str]) -> str:
    per_series = report["per_series"]
    width = max([len("series"), *(len(str(i)) for i in per_series)])
    head = f"{'series':<{width}}" + "".join(f"{n + ' MASE':>21}" for n in names)

    lines = [head]
    for sid, block in list(per_series.items())[:SERIES_LINES]:
        lines.append(f"{sid:<{width}}" + "".join(_mase_cell(block, n) for n in names))
    if len(per_series) > SERIES_LINES:
        lines.append(f"... {len(per_series) - SERIES_LINES} more series in backtest.json")
    folds = len({f["fold"] for f in report["folds"]})
    lines.append(
        f"{'mean':<{width}}"
        + "".join(_mase_cell(report["mean"], n) for n in names)
        + f"   ({len(per_series)} series x {folds} folds)"
    )
    return "\n".join(lines)


def format_trials(result: Any, folds: int) -> str:
    """One line per trial of a tune, the best marked `*`, then the best's score beside the
    seasonal naive forecast's."""
    lines = []
    for number, trial in enumerate(result.trials, start=1):
        score = f"{trial.mase:.4g}" if trial.error is None else "skipped"
        mark = "*" if number - 1 == result.best else " "
        lines.append(
            f"{mark} trial {number}: MASE {score}  {' '.join(trial.overrides) or 'as given'}"
        )
    best = result.trials[result.best]
    naive = "n/a" if best.seasonal_naive is None else f"{best.seasonal_naive:.4g}"
    lines.append(
        f"best: trial {result.best + 1}, mean MASE {best.mase:.4g} over {folds} "
        f"fold{'s' if folds != 1 else ''} on the first {result.rows} rows "
        f"(seasonal naive {naive})"
    )
    return "\n".join(lines)
