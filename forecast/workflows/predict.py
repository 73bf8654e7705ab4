"""`forecast predict`: a run's forecast of the steps after a CSV's last rows, written as
forecast.csv (atomically, never over a run's file or the input), through a `Predictor`."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from forecast.data.csvfile import check_text_encoding
from forecast.data.reading import Panel, Series, read_panel, read_series
from forecast.errors import ConfigError
from forecast.interrupts import tensorflow_work
from forecast.runs import atomic, layout, write
from forecast.workflows.predictor import Predictor

log = logging.getLogger("forecast")


def predict(
    run: str | Path | None,
    csv_path: str | Path,
    horizon: int | None = None,
    output: str | Path | None = None,
    runs_dir: str | Path = "runs",
    encoding: str = "auto",
    ids: list[str] | None = None,
) -> tuple[pd.DataFrame, Path]:
    """`api.predict`: checks that nothing of the run or its inputs is written over, reads the
    CSV (a long table's series, or only `ids`), forecasts, and writes the CSV atomically."""
    check_text_encoding(encoding, "--encoding")
    predictor = Predictor(run, runs_dir, runtime="auto")
    out_path = Path(output) if output is not None else predictor.run / "forecast.csv"
    own = ("forecast.csv", "forecast_history.csv")  # the history only without --output
    if out_path.is_dir():
        raise ConfigError(f"--output {out_path}: is a folder; give the forecast CSV's file path")
    for path in [out_path] + ([predictor.run / own[1]] if output is None else []):
        # before any work: never over a run's file or the input
        inputs = (Path(csv_path), Path(predictor.config.data.path))  # and the run's data
        layout.refuse_overwrite(path, "--output", predictor.run, own, inputs=inputs)
    data = predictor.config.data
    if ids and data.id_column is None:
        raise ConfigError(f"--id: the run {predictor.run.name} has no data.id_column (one series)")
    series: Series | Panel
    if data.id_column is not None:
        series = read_panel(
            data, path=csv_path, require_targets=predictor.needs_targets, only=ids or None
        )
        unseen = [i for i in series.ids if i not in predictor.scalers]
        if unseen and set(data.read_columns) > set(data.features):
            # a series never trained on is scaled on its own history: its targets too
            series = read_panel(data, path=csv_path, require_targets=True, only=ids or None)
    else:
        series = read_series(data, path=csv_path, require_targets=predictor.needs_targets)
    with tensorflow_work():
        result, warnings = predictor.forecast(series, horizon)
    # said once the forecast stands, so that an error stays the only line
    for line in warnings:
        log.warning(line)
    final = predictor.info.get("final_fit")
    if predictor.info.get("best_epoch") == 0:  # the final fit, if any, trained no epochs
        base = predictor.info.get("residual")
        log.info("forecast by the %s base alone: no training epoch beat it on validation", base)
    elif final:
        log.info("forecast by the final model, refitted on all %d rows", final["rows"])
    elif data.id_column is not None:
        log.info("forecast by the model fitted before each series' validation rows (final_fit off)")
    else:
        held_out = predictor.info.get("split", {}).get("val_start")
        log.info("forecast by the model fitted on the first %s rows (final_fit off)", held_out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    written = series.encoding if encoding == "auto" else encoding
    try:
        atomic.write_text_atomic(out_path, result.to_csv(index=False), encoding=written)
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"--encoding {written}: cannot write {exc.object[exc.start : exc.end]!r} of the "
            "forecast's header; use --encoding utf-8-sig"
        ) from None
    if output is None:
        steps = predictor.config.window.horizon if horizon is None else horizon
        write.write_forecast_history(predictor.run, series, predictor.config, steps)
    predictor.keep_portable()  # after the forecast is out: a failure here changes nothing
    return result, out_path
