"""Run directories and every file in them, one job per module:

    layout   where runs live: partial and finished folders, their names, the lock, which
             files a run holds, finding runs, refusing to write over them
    atomic   writing a file whole or not at all; a failed write as one line
    write    what a training run and a backtest write
    read     opening a run, its model, scalers and intervals; the `forecast runs` table

Import from the module that does the job (`from forecast.runs import read`). This face
re-exports what forecast.api reaches as `runs.<name>` while it is being split; it defines
nothing.
"""

from forecast.runs.atomic import out_of_space, write_failure, write_text_atomic
from forecast.runs.layout import (
    FIGURES,
    PartialLock,
    check_runs_dir,
    discard,
    finish,
    incomplete_runs,
    refuse_overwrite,
    resolve_run,
    resumable_partial,
    stamp,
    start_partial,
)
from forecast.runs.read import (
    load_intervals,
    load_model,
    load_panel_intervals,
    load_panel_scalers,
    open_run,
    run_summaries,
)
from forecast.runs.write import (
    drop_resume_files,
    fit_record,
    keep_held_out,
    load_final,
    load_fitted,
    save_final,
    save_fitted,
    write_backtest,
    write_config,
    write_forecast_history,
    write_history,
    write_results,
    write_run_info,
)

__all__ = [
    "FIGURES",
    "PartialLock",
    "check_runs_dir",
    "discard",
    "drop_resume_files",
    "finish",
    "fit_record",
    "incomplete_runs",
    "keep_held_out",
    "load_final",
    "load_fitted",
    "load_intervals",
    "load_model",
    "load_panel_intervals",
    "load_panel_scalers",
    "open_run",
    "out_of_space",
    "refuse_overwrite",
    "resolve_run",
    "resumable_partial",
    "run_summaries",
    "save_final",
    "save_fitted",
    "stamp",
    "start_partial",
    "write_backtest",
    "write_config",
    "write_failure",
    "write_forecast_history",
    "write_history",
    "write_results",
    "write_run_info",
    "write_text_atomic",
]
