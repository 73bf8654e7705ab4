"""The Python API that the CLI and notebook users call.

    from forecast import api
    result = api.train("configs/univariate.yaml", runs_dir="runs")
    print(result.verdict, result.run_dir)
    future, path = api.predict(result.run_dir, "data/msft_daily.csv", horizon=5)
    api.plot(result.run_dir)                     # PNG paths
    report = api.backtest("configs/univariate.yaml", folds=3)

Each entry point is a short sequence of calls into the modules that do the work. Errors the
user can fix raise `forecast.errors.ForecastError` subclasses.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast import runs
from forecast.config.file import config_to_yaml, load_config, revalidate
from forecast.config.schema import Config
from forecast.data.reading import Panel, read_panel, read_series, some_ids
from forecast.data.scaling import Scaler
from forecast.data.timesteps import future_index, time_labels
from forecast.data.transforms import transform_lag
from forecast.errors import ConfigError, DataError, ForecastError, RunError
from forecast.forecasting.evaluation import evaluate, verdict
from forecast.forecasting.forecaster import check_steps
from forecast.forecasting.intervals import clip_note, label
from forecast.interrupts import raise_if_stop_requested, tensorflow_work
from forecast.model.build import cudnn_warnings, gpu_visible
from forecast.model.tf_setup import import_tensorflow_quietly
from forecast.panel import PreparedPanel, prepare_panel
from forecast.pipeline import (
    Prepared,
    calibrate_intervals,
    choose_residual,
    final_split,
    fit,
    fit_final,
    forecast,
    outside_training_range,
    prepare,
    prepare_history,
    score_intervals,
    to_original,
    with_calendar,
)
from forecast.workflows.tune import TuneResult, tune  # noqa: F401  (the API: api.tune)

log = logging.getLogger("forecast")
write_failure = runs.write_failure  # a failed write as the one-line error the CLI shows


@dataclass
class TrainResult:
    run_dir: Path
    config: Config
    metrics: dict[str, Any]
    verdict: str
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class BacktestResult:
    run_dir: Path
    path: Path  # backtest.json
    report: dict[str, Any]


def load(
    config: Config | str | Path, overrides: list[str] | None = None, seed: int | None = None
) -> Config:
    """A validated Config from a file (with `--set` overrides) or a Config object."""
    if not isinstance(config, Config):
        return load_config(config, overrides, seed)
    if overrides:
        raise ConfigError("overrides apply to a config file; edit the Config object instead")
    return revalidate(config) if seed is None else revalidate(config, seed=seed)


def validate(config: Config | str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Check config and data without training: layout, shapes, split sizes, parameter count."""
    cfg = load(config, overrides)
    if cfg.data.id_column is not None:
        return _validate_panel(prepare_panel(cfg, read_panel(cfg.data)))
    prepared = prepare(cfg)
    cfg, split, lag = prepared.config, prepared.split, prepared.lag
    steps, feats, targs = cfg.window.input_steps, len(cfg.data.inputs), len(cfg.data.targets)
    return {
        "layout": cfg.layout,
        "rows": len(prepared.values),
        "split": {
            "train": split.val_start + lag,
            "validation": split.test_start - split.val_start,
            "test": split.rows - split.test_start,
        },
        "train_windows": [len(split.train_origins), steps, feats],
        "val_windows": [len(split.val_origins), steps, feats],
        "test_origins": [len(split.test_origins), steps, feats],
        "output": [cfg.window.horizon, targs],
        "model": cfg.model.describe(),
        "parameters": prepared.params,
        "season_length": prepared.season,
    }


def _validate_panel(panel: PreparedPanel) -> dict[str, Any]:
    """`validate` of a long table: the same keys summed over the series that train, and
    how many there are (and which are left out)."""
    per = {sid: _split_sizes(m) for sid, m in panel.members.items()}
    cfg = panel.config
    steps, feats = cfg.window.input_steps, len(cfg.data.inputs)

    def total(key: str) -> int:
        return sum(p[key] for p in per.values())

    first = next(iter(panel.members.values()))
    return {
        "layout": cfg.layout,
        "series": len(panel.members),
        "skipped_series": list(panel.skipped),
        "rows": sum(len(m.values) for m in panel.members.values()),
        "split": {
            k: sum(p["split"][k] for p in per.values()) for k in ("train", "validation", "test")
        },
        "train_windows": [total("train_windows"), steps, feats],
        "val_windows": [total("val_windows"), steps, feats],
        "test_origins": [total("test_origins"), steps, feats],
        "output": [cfg.window.horizon, len(cfg.data.targets)],
        "model": cfg.model.describe(),
        "parameters": first.params,
        "season_length": panel.combined.season,
    }


def _split_sizes(prepared: Prepared) -> dict[str, Any]:
    split, lag = prepared.split, prepared.lag
    return {
        "split": {
            "train": split.val_start + lag,
            "validation": split.test_start - split.val_start,
            "test": split.rows - split.test_start,
        },
        "train_windows": len(split.train_origins),
        "val_windows": len(split.val_origins),
        "test_origins": len(split.test_origins),
    }


def train(
    config: Config | str | Path,
    runs_dir: str | Path = "runs",
    overrides: list[str] | None = None,
    seed: int | None = None,
    quiet: bool = False,
    resume: bool = False,
) -> TrainResult:
    """Train, evaluate against baselines on the test split, and save a new run directory.

    While training, the run lives in a hidden `runs/.<name>-<stamp>.partial/` with a
    checkpoint after every epoch, and the trained model as soon as fitting ends. If the run
    is interrupted (Ctrl-C, SIGTERM, a kill, an error), that folder stays, and `resume=True`
    continues it: from the last finished epoch, or after training if that had ended.
    """
    clock = time.perf_counter()
    cfg = load(config, overrides, seed)
    runs.check_runs_dir(Path(runs_dir))  # before the data is read and prepared
    if cfg.training.tensorboard:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise ConfigError(
                "training.tensorboard: needs the tensorboard package: pip install tensorboard "
                "(or set training.tensorboard: false)"
            )
    many = cfg.data.id_column is not None
    prepared = prepare_panel(cfg, read_panel(cfg.data)) if many else prepare(cfg)
    cfg = prepared.config  # data.calendar: auto made concrete, as config.yaml keeps it
    timings: dict[str, Any] = {"load": round(time.perf_counter() - clock, 4)}
    if not quiet:
        _log_layout(cfg)
    runs_path, name = Path(runs_dir), cfg.name or "run"
    if resume:
        partial, when = runs.resumable_partial(runs_path, name, config_to_yaml(cfg))
        lock = runs.PartialLock(partial)  # a second resume of it stops here
        log.info("resuming %s %s", partial, _resume_point(partial, cfg))
    else:
        when = runs.stamp()
        partial = runs.start_partial(runs_path, name, when)
        lock = runs.PartialLock(partial)
    try:
        if not resume:
            runs.write_config(partial, cfg)
        # Ctrl-C and SIGTERM are only noted while TensorFlow works (see
        # forecast.interrupts), and raised after each batch and between these stages
        with tensorflow_work():
            import_tensorflow_quietly()
            if many:
                chosen = choose_residual(prepared.combined)
                prepared = prepared.with_config(chosen.config)
                fitting = prepared.combined
            else:
                prepared = fitting = choose_residual(prepared)
            raise_if_stop_requested()
            model, fitted = _fitted_model(partial, fitting, quiet)
            timings |= fitted["timings"]
            raise_if_stop_requested()
            evaluate_on_test = _evaluate_panel if many else _evaluate_on_test
            metrics, predictions, calibration = evaluate_on_test(prepared, model, timings)
            raise_if_stop_requested()
            clock = time.perf_counter()
            runs.write_results(partial, prepared, fitted, metrics, predictions, calibration)
            timings["save"] = round(time.perf_counter() - clock, 4)
            raise_if_stop_requested()
            final = None
            if cfg.training.final_fit:
                final = runs.load_final(partial) or _final_fit(partial, fitting, fitted, quiet)
                timings["final_fit"] = final["seconds"]
            else:
                runs.keep_held_out(partial)
        runs.write_run_info(partial, prepared, fitted, timings, final)
        runs.drop_resume_files(partial)
        run_dir = runs.finish(partial, runs_path, name, when)
    except BaseException as exc:
        command = resume_command(config, runs_dir, overrides, seed)
        failure = runs.write_failure(exc, partial)
        if failure is None:
            _keep_or_discard(partial, exc, resume, command)
            raise
        # one line: what could not be written, and what (if anything) is kept to resume
        kept = _kept_work(partial, resume)
        if kept is None or (runs.out_of_space(exc) and not resume):
            # a new half-written run: on a full disk it holds the space the user needs back
            runs.discard(partial)
            raise failure from None
        raise RunError(f"{failure}; {kept} kept in {partial}: continue with `{command}`") from None
    finally:
        lock.release()
    return TrainResult(run_dir, cfg, metrics, metrics["verdict"], fitted["history"])


def _resume_point(partial: Path, cfg: Config) -> str:
    """Where a resumed run goes on: "after epoch 7 of 50", or after its trained model."""
    from forecast.fitting.training import Checkpoint

    epochs = cfg.training.epochs
    if (partial / "fit.json").is_file():  # read (and checked) once, when the run loads it
        return "after training had ended (finishing the run)"
    try:
        done = Checkpoint(partial / "backup").epochs_done()
    except (OSError, ValueError, KeyError):  # a damaged snapshot: the fit says so itself
        return ""
    return f"after epoch {done} of {epochs}" if done else f"from epoch 1 of {epochs}"


def _fitted_model(partial: Path, prepared: Prepared, quiet: bool) -> tuple[Any, dict[str, Any]]:
    """The model this partial run already trained, or a newly fitted one (kept at once)."""
    kept = runs.load_fitted(partial)
    if kept is not None:
        log.info("the model was trained before the interruption; finishing the run")
        return kept
    from forecast.fitting.training import Checkpoint

    checkpoint = Checkpoint(partial / "backup")
    board = partial / "tensorboard" / "held_out" if prepared.config.training.tensorboard else None
    model, result, info = fit(
        prepared, quiet, checkpoint_dir=checkpoint.folder, tensorboard_dir=board
    )
    clock = time.perf_counter()
    fitted = runs.fit_record(result, info)
    runs.save_fitted(partial, model, fitted)
    fitted["timings"]["save_model"] = round(time.perf_counter() - clock, 4)
    checkpoint.discard()
    return model, fitted


def _final_fit(
    partial: Path, prepared: Prepared, fitted: dict[str, Any], quiet: bool
) -> dict[str, Any]:
    """Refit on every row for the epochs the held-out fit used (its best epoch when early
    stopping restored one) and make it the run's model.keras, its history
    final_history.csv; run.json's `final_fit` (and `seconds`)."""
    best = fitted["best_epoch"]  # 0: no epoch beat the residual base, which is kept
    epochs = len(fitted["history"]) if best is None else best
    rows = len(prepared.values)
    clock = time.perf_counter()
    model, loss = None, None  # no epochs: the held-out model, the base, is the final one
    if epochs == 0 and not quiet:
        log.info("final fit: none, the model is its residual base, which no epoch beat")
    elif epochs:
        if not quiet:
            log.info("final fit: %d epoch(s) on all %d rows", epochs, rows)
        board = partial / "tensorboard" / "final" if prepared.config.training.tensorboard else None
        # its epochs on stderr as the first fit's: it takes as long
        model, result, _ = fit_final(prepared, epochs, quiet=quiet, tensorboard_dir=board)
        loss = result.history[-1]["loss"]
        runs.write_history(partial / "final_history.csv", result.history)  # for loss.png
    info = {
        "rows": rows,
        "windows": len(final_split(prepared).train_origins),
        "epochs": epochs,
        "loss": loss,
        "seconds": round(time.perf_counter() - clock, 4),
    }
    runs.save_final(partial, model, info)
    return info


def _evaluate_on_test(
    prepared: Prepared, model: Any, timings: dict[str, Any]
) -> tuple[dict[str, Any], pd.DataFrame, Any]:
    """Forecast every test origin, score model and baselines, and calibrate the intervals on
    the validation origins: (metrics, predictions, Calibration or None)."""
    from forecast.forecasting.forecaster import Forecaster

    cfg, split = prepared.config, prepared.split
    data, horizon = cfg.data, cfg.window.horizon
    clock = time.perf_counter()
    forecaster = Forecaster(model, data.inputs, data.targets)
    predicted = forecast(prepared, forecaster, split.test_origins, horizon)  # (N, H, K)
    calibration, missing = calibrate_intervals(prepared, forecaster)
    timings["forecast"] = round(time.perf_counter() - clock, 4)
    clock = time.perf_counter()
    metrics, table = _score(prepared, predicted, calibration, missing)
    if missing:
        log.warning("no prediction intervals: %s", missing)
    if note := clip_note([metrics], "runs"):
        log.info("%s", note)
    metrics["verdict"] = verdict(metrics, cfg.model.label())
    timings["evaluate"] = round(time.perf_counter() - clock, 4)
    return metrics, table, calibration


def _evaluate_panel(
    prepared: PreparedPanel, model: Any, timings: dict[str, Any]
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """`_evaluate_on_test` for a long table: every series scored on its own test rows
    (MASE on its own scale), and the overall metrics the mean over series of each series'
    metrics; intervals calibrated per series. (metrics, predictions with the id column
    first, id -> Calibration)."""
    from forecast.forecasting.forecaster import Forecaster
    from forecast.panel import calibrate_members, forecast_members, mean_reports

    cfg = prepared.config
    data, horizon, id_column = cfg.data, cfg.window.horizon, cfg.data.id_column
    clock = time.perf_counter()
    forecaster = Forecaster(model, data.inputs, data.targets)
    origins = {i: m.split.test_origins for i, m in prepared.members.items()}
    predicted = forecast_members(prepared, forecaster, origins, horizon)
    calibrations, missing = calibrate_members(prepared, forecaster)
    timings["forecast"] = round(time.perf_counter() - clock, 4)
    clock = time.perf_counter()
    reports, tables = {}, []
    for sid, member in prepared.members.items():
        report, table = _score(member, predicted[sid], calibrations.get(sid), missing.get(sid))
        reports[sid] = report
        table.insert(0, id_column, sid)
        tables.append(table)
    if missing:
        log.warning(
            "no prediction intervals for %d series: %s", len(missing), next(iter(missing.values()))
        )
    if note := clip_note(list(reports.values()), "series"):
        log.info("%s", note)
    overall = mean_reports(list(reports.values()))
    metrics = {
        "layout": cfg.layout,
        "horizon": horizon,
        "series": len(reports),
        "test_rows": sum(r["test_rows"] for r in reports.values()),
        "test_origins": sum(r["test_origins"] for r in reports.values()),
        **{
            k: v
            for k, v in overall.items()
            if k not in ("layout", "horizon", "test_rows", "test_origins", "clip_at_zero")
        },
        "per_series": {
            sid: {k: r[k] for k in ("model", "baselines", "intervals", "clip_at_zero") if k in r}
            for sid, r in reports.items()
        },
        "skipped_series": prepared.skipped,
    }
    metrics["mase_scale"] = {sid: r["mase_scale"] for sid, r in reports.items()}
    where = f"on the test split, mean over {len(reports)} series"
    metrics["verdict"] = verdict(metrics, cfg.model.label(), where=where)
    timings["evaluate"] = round(time.perf_counter() - clock, 4)
    return metrics, pd.concat(tables, ignore_index=True), calibrations


def _score(
    prepared: Prepared, predicted: np.ndarray, calibration: Any, missing: str | None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Score the forecasts (N, H, K) from every test origin and their intervals against the
    baselines: (metrics without the verdict, test_predictions table)."""
    cfg, split, lag = prepared.config, prepared.split, prepared.lag
    data, horizon = cfg.data, cfg.window.horizon
    origins, test_start = split.test_origins + lag, split.test_start + lag  # original rows
    actual = prepared.target_values
    report = evaluate(actual, origins, predicted, data.targets, prepared.season, test_start)
    metrics = {
        "layout": cfg.layout,
        "horizon": horizon,
        "test_rows": len(prepared.values) - test_start,
        "test_origins": len(origins),
        **report,
    }
    bounds = score_intervals(
        metrics, calibration, missing, actual, origins, predicted, prepared.season, test_start
    )
    table = runs.prediction_table(
        prepared.series.index, origins, actual, predicted, data.targets, bounds, cfg.intervals
    )
    return metrics, table


def resume_command(
    config: Config | str | Path,
    runs_dir: str | Path = "runs",
    overrides: list[str] | None = None,
    seed: int | None = None,
) -> str:
    """The `forecast train` command that continues this training, options included."""
    import shlex

    words = ["forecast", "train", str(config) if isinstance(config, str | Path) else "CONFIG"]
    if Path(runs_dir) != Path("runs"):
        words += ["--runs-dir", str(runs_dir)]
    for override in overrides or []:
        words += ["--set", override]
    if seed is not None:
        words += ["--seed", str(seed)]
    return shlex.join([*words, "--resume"])


def _kept_work(partial: Path, resume: bool) -> str | None:
    """What an interrupted partial run keeps for --resume ("the trained model is", "the
    finished epochs are"), or None when it holds nothing worth keeping."""
    from forecast.fitting.training import Checkpoint

    if (partial / "fit.json").is_file():
        return "the trained model is"
    if resume or Checkpoint(partial / "backup").exists():
        return "the finished epochs are"
    return None


def _keep_or_discard(partial: Path, exc: BaseException, resume: bool, command: str) -> None:
    """Keep a partial run that holds finished epochs or a trained model; else remove it."""
    if isinstance(exc, ForecastError) and not resume and not (partial / "fit.json").is_file():
        # bad data or a diverged first fit: resuming would only repeat it; a trained
        # held-out model is kept all the same (nothing trained is thrown away)
        runs.discard(partial)
        return
    what = _kept_work(partial, resume)
    if what is not None:
        log.warning(
            "training %s; %s kept in %s: continue with `%s`",
            "interrupted" if isinstance(exc, KeyboardInterrupt) else "stopped by an error",
            what,
            partial,
            command,
        )
        return
    if isinstance(exc, KeyboardInterrupt):
        log.warning("training interrupted before its first epoch finished; nothing kept")
    runs.discard(partial)


_SAID: set[str] = set()  # cuDNN warnings given in this process


def _log_layout(cfg: Config) -> None:
    unsaid = [w for w in cudnn_warnings(cfg.model) if w not in _SAID]
    if unsaid:  # only then TensorFlow is asked about GPUs (and imported, if not yet)
        with tensorflow_work():
            gpu = gpu_visible()
        for warning in unsaid if gpu else []:
            log.warning(warning)
            _SAID.add(warning)
    data, window = cfg.data, cfg.window
    calendar = data.calendar if isinstance(data.calendar, str) else ", ".join(data.calendar)
    log.info(
        "layout %s: %s%s -> %s, input_steps %d, horizon %d (%s)",
        cfg.layout,
        ", ".join(data.features),
        f" + calendar {calendar}" if calendar else "",
        ", ".join(data.targets),
        window.input_steps,
        window.horizon,
        window.multi_step,
    )


def backtest(
    config: Config | str | Path,
    folds: int = 3,
    runs_dir: str | Path = "runs",
    overrides: list[str] | None = None,
    seed: int | None = None,
    quiet: bool = False,
    step: int | None = None,
    workers: int = 1,
) -> BacktestResult:
    """Rolling-origin evaluation: for each of `folds` origins, `step` rows apart (default:
    the horizon), refit the scaler, transforms and model on the rows up to and including
    the origin and forecast the next horizon."""
    plan = check_backtest(config, folds, overrides, seed, step, workers)
    return run_backtest_plan(plan, runs_dir, quiet)


@dataclass
class BacktestPlan:
    """A backtest checked and ready to run (`check_backtest`)."""

    config: Config
    data: Any  # the Series, or a long table's Panel
    origins: Any  # fold origins, or for a long table each fold's rows back
    workers: int = 1


def check_backtest(
    config: Config | str | Path,
    folds: int = 3,
    overrides: list[str] | None = None,
    seed: int | None = None,
    step: int | None = None,
    workers: int = 1,
) -> BacktestPlan:
    """The config, its data and folds, with every check `backtest` makes before it fits
    anything (options, columns, rows for the folds): the user errors it raises up front,
    without TensorFlow."""
    from forecast.workflows import backtest as rolling

    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    cfg = load(config, overrides, seed)
    if cfg.data.id_column is not None:
        if workers > 1:
            raise ConfigError("--workers: not yet for long tables (data.id_column); use 1")
        panel = read_panel(cfg.data)
        return BacktestPlan(cfg, panel, rolling.panel_backs(cfg, panel, folds, step))
    series = read_series(cfg.data)
    return BacktestPlan(cfg, series, rolling.check_folds(cfg, series, folds, step), workers)


def run_backtest_plan(
    plan: BacktestPlan, runs_dir: str | Path = "runs", quiet: bool = False
) -> BacktestResult:
    """Run a checked backtest and save its run directory. A long table: in each fold one
    model refitted on every series up to its own origin; backtest.json rows per fold and
    series, `per_series`, and their mean."""
    from forecast.plots import backtest as backtest_figures
    from forecast.workflows import backtest as rolling

    runs.check_runs_dir(Path(runs_dir))  # before the folds, not after them
    cfg, data, origins = plan.config, plan.data, plan.origins
    if not quiet:  # the calendar columns `auto` chose, as train says them
        series = next(iter(data.members.values())) if isinstance(data, Panel) else data
        _log_layout(with_calendar(cfg, series))
    if cfg.data.id_column is not None:
        report, forecasts = rolling.run_panel_backtest(cfg, data, origins, quiet)

        def draw(path: Path) -> None:
            backtest_figures.panel_backtest_figure(
                data, cfg, report, forecasts, origins, path, write=runs.write_atomic
            )

    else:
        report, forecasts, bounds = rolling.run_backtest(cfg, data, origins, quiet, plan.workers)

        def draw(path: Path) -> None:
            backtest_figures.backtest_figure(
                data.frame, cfg, origins, forecasts, path, bounds, write=runs.write_atomic
            )

    run_dir = runs.write_backtest(Path(runs_dir), cfg, report, draw)
    return BacktestResult(run_dir, run_dir / "backtest.json", report)


class Predictor:
    """A finished run loaded once: its config, scaler, model and intervals. `forecast(series,
    steps)` gives what `predict` writes; `forecast serve` answers every request with one."""

    def __init__(self, run: str | Path | None, runs_dir: str | Path = "runs") -> None:
        opened = runs.open_run(runs.resolve_run(run, runs_dir))
        data = opened.config.data
        self.run, self.config, self.info = opened.path, opened.config, opened.info
        self.model_path = opened.model_path
        if data.id_column is not None:  # a long table: a scaler and intervals per series
            self.scalers = runs.load_panel_scalers(opened.path / "scaler.json", data.columns)
            self.calibrations = runs.load_panel_intervals(opened.path)
            return
        self.scaler = Scaler.load(opened.path / "scaler.json")
        if self.scaler.columns != data.columns:
            raise RunError(
                f"{opened.path}: scaler.json columns do not match config.yaml; train again"
            )
        self.calibration = runs.load_intervals(opened.path)

    @functools.cached_property
    def forecaster(self) -> Any:
        """The model, loaded (safe mode) on first use: a bad history CSV is reported before
        TensorFlow is imported; `serve` touches it at start, so it is loaded once."""
        import_tensorflow_quietly()
        from forecast.forecasting.forecaster import Forecaster

        data = self.config.data
        model = runs.load_model(self.model_path, self.config)
        return Forecaster(model, data.inputs, data.targets)

    @property
    def needs_targets(self) -> bool:
        """Differences are summed onto the targets' last values: the history needs them."""
        return transform_lag(self.config.data.transform) > 0

    def forecast(
        self, series: Any, steps: int | None = None, asked_as: str = "--horizon {}"
    ) -> tuple[pd.DataFrame, list[str]]:
        """The next `steps` (default: the config's horizon) after the last row of `series`:
        (time column, then per target its column and `<target>_lo_L`, `<target>_hi_L` per
        interval level; original units), and the warnings to tell the user, which name the
        steps asked for as `asked_as` does (the CLI's option; `horizon={}` over HTTP).

        For a long table (a `Panel`), every series in it is forecast: the id column comes
        first. A series the model never saw is scaled on its own history and has no
        intervals (a warning says so)."""
        steps = self.config.window.horizon if steps is None else steps
        data = self.config.data  # checked before any work, in the words of the request
        check_steps(data.inputs, data.targets, self.config.window.output_steps, steps, asked_as)
        if isinstance(series, Panel):
            frame, warnings = self._forecast_panel(series, steps)
        else:
            frame, warnings = self._forecast_one(series, steps, self.scaler, self.calibration)
        trained = self.config.window.horizon
        if steps > trained:  # said once, for every series
            warnings.insert(
                0,
                f"{asked_as.format(steps)} goes past the trained horizon {trained}: steps "
                f"{trained + 1}-{steps} are forecast recursively, from the model's own "
                "predictions fed back as inputs",
            )
        return frame, warnings

    def _forecast_panel(self, panel: Panel, steps: int) -> tuple[pd.DataFrame, list[str]]:
        data = self.config.data
        frames, warnings, unseen, outside = [], [], [], []
        short: list[str] = []
        histories: dict[str, Prepared] = {}
        for sid, series in panel.members.items():
            scaler = self.scalers.get(sid)
            try:
                if scaler is None:
                    scaler = _own_scaler(self.config, series)
                histories[sid] = prepare_history(self.config, series, scaler)
            except DataError as exc:
                if len(panel.members) == 1:
                    raise
                short.append(sid)
                reason = str(exc)
        if short and not histories:
            raise DataError(f"{panel.path}: no series can be forecast; the first: {reason}")
        # one batched model call for every series: each history is exactly one window
        steps_in = self.config.window.input_steps
        windows = np.stack([h.features[-steps_in:] for h in histories.values()])  # (N, L, F)
        scaled = self.forecaster(windows, steps)  # (N, steps, K)
        for n, (sid, history) in enumerate(histories.items()):
            series = panel.members[sid]
            last = np.array([len(history.scaled) - 1])
            future = to_original(history, scaled[n : n + 1], last)[0]  # (steps, K)
            frame, said = self._frame(series, history, future, self.calibrations.get(sid))
            if sid not in self.scalers:
                unseen.append(sid)
            frame.insert(0, data.id_column, sid)
            frames.append(frame)
            ranges = [w for w in said if w.startswith(series.source)]  # outside_training_range
            outside += [(sid, w) for w in ranges]
            warnings += [w for w in said if w not in warnings and w not in ranges]
        far = list(dict.fromkeys(sid for sid, _ in outside))
        if len(far) > 3:  # one line, not one per series
            warnings.insert(
                0,
                f"{panel.path}: the recent values of {len(far)} series ({some_ids(far)}) lie "
                "outside anything the model saw of them in training; without window_norm the "
                "network's inputs are then outside its scalers' range, so its forecasts there "
                "are extrapolation",
            )
        else:
            warnings[:0] = [w for _, w in outside]
        if short:
            warnings.append(
                f"{len(short)} series left out ({some_ids(short)}): {reason.split(': ', 1)[-1]}"
            )
        if unseen:
            warnings.append(
                f"{len(unseen)} series not in training ({some_ids(unseen)}): forecast from "
                "their own history, "
                "scaled on it, without intervals (the model has no series id feature)"
            )
        return pd.concat(frames, ignore_index=True), warnings

    def _forecast_one(
        self, series: Any, steps: int, scaler: Scaler, calibration: Any
    ) -> tuple[pd.DataFrame, list[str]]:
        history = prepare_history(self.config, series, scaler)
        last = np.array([len(history.scaled) - 1])
        future = forecast(history, self.forecaster, last, steps)[0]  # (H, K)
        return self._frame(series, history, future, calibration)

    def _frame(
        self, series: Any, history: Prepared, future: np.ndarray, calibration: Any
    ) -> tuple[pd.DataFrame, list[str]]:
        """The forecast (steps, K) after `history`'s last row as forecast.csv's rows, with
        its intervals, and the warnings to tell the user."""
        cfg, data = self.config, self.config.data
        steps, last = len(future), np.array([len(history.scaled) - 1])
        warnings = outside_training_range(history)
        time_name = data.time_column or "step"
        result = pd.DataFrame({time_name: time_labels(future_index(series.index, steps))})
        bounds = None
        levels = cfg.intervals if self.calibration_known else []
        if calibration is not None:
            # the last origin's window scale; a target that is no input is not scaled (and
            # may be missing from the CSV), so its column is never read
            recent = np.column_stack(
                [
                    history.values[:, history.columns.index(t)]
                    if t in history.columns
                    else np.zeros(len(history.values))
                    for t in data.targets
                ]
            )  # (rows, K)
            scales = calibration.scales(recent, last + history.lag)
            bounds = calibration.bounds(future[None], scales)
            if steps > calibration.steps:
                warnings.append(
                    f"intervals are calibrated for steps 1-{calibration.steps} only; later "
                    "steps have empty bounds"
                )
        for k, target in enumerate(data.targets):
            result[target] = future[:, k]
            for i, level in enumerate(levels):
                known = bounds is not None
                result[f"{target}_lo_{label(level)}"] = bounds[0][i, 0, :, k] if known else np.nan
                result[f"{target}_hi_{label(level)}"] = bounds[1][i, 0, :, k] if known else np.nan
        return result, warnings

    @property
    def calibration_known(self) -> bool:
        """The run has intervals (for a long table: for some series)."""
        if self.config.data.id_column is not None:
            return bool(self.calibrations)
        return self.calibration is not None


def _own_scaler(config: Config, series: Any) -> Scaler:
    """The scaler of a series the run never trained on: fitted on the rows given."""
    from forecast.data.reading import fill_missing
    from forecast.data.transforms import apply_transform

    data, scaling = config.data, config.scaling
    if list(series.frame.columns) != data.columns:
        missing = [c for c in data.columns if c not in series.frame.columns]
        raise ConfigError(
            f"{series.source}: was not in training, so it is scaled on its own history, "
            f"which needs the column '{missing[0]}' too"
        )
    values = fill_missing(series.values, [len(series.frame)])
    if len(values) < config.window.input_steps + transform_lag(data.transform):
        return Scaler.fit(
            np.zeros((1, len(data.columns))), data.columns
        )  # prepare_history says why
    work = apply_transform(values, data.transform, data.columns, series.index, series.source)
    return Scaler.fit(work, data.columns, scaling.method, scaling.feature_range)


def predict(
    run: str | Path | None,
    csv_path: str | Path,
    horizon: int | None = None,
    output: str | Path | None = None,
    runs_dir: str | Path = "runs",
    encoding: str = "auto",
    ids: list[str] | None = None,
) -> tuple[pd.DataFrame, Path]:
    """Forecast the next `horizon` steps after the last row of `csv_path`.

    Returns the forecast (time column, then per target its column and, for each interval
    level L, `<target>_lo_L` and `<target>_hi_L`; original units) and the CSV path it was
    written to (default: RUN_DIR/forecast.csv), in `encoding`: auto writes it the way the
    input CSV came (GB18030 stays GB18030, a UTF-8 BOM stays), or a codec such as utf-8-sig
    (what Excel on Windows reads as UTF-8).

    With `data.id_column` (a long table), every series in the CSV is forecast, or only
    those in `ids`; the id column comes first.
    """
    if encoding != "auto":
        import codecs

        try:
            if not codecs.lookup(encoding)._is_text_encoding:
                raise LookupError(encoding)  # base64, rot13...: bytes codecs, not text
        except LookupError:
            raise ConfigError(
                f"--encoding {encoding}: unknown; use auto, utf-8, utf-8-sig or gb18030"
            ) from None
    predictor = Predictor(run, runs_dir)
    out_path = Path(output) if output is not None else predictor.run / "forecast.csv"
    own = ("forecast.csv", "forecast_history.csv")  # the history only without --output
    if out_path.is_dir():
        raise ConfigError(f"--output {out_path}: is a folder; give the forecast CSV's file path")
    for path in [out_path] + ([predictor.run / own[1]] if output is None else []):
        # before any work: never over a run's file or the input
        inputs = (Path(csv_path), Path(predictor.config.data.path))  # and the run's data
        runs.refuse_overwrite(path, "--output", predictor.run, own, inputs=inputs)
    data = predictor.config.data
    if ids and data.id_column is None:
        raise ConfigError(f"--id: the run {predictor.run.name} has no data.id_column (one series)")
    if data.id_column is not None:
        series: Any = read_panel(
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
        runs.write_text_atomic(out_path, result.to_csv(index=False), encoding=written)
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"--encoding {written}: cannot write {exc.object[exc.start : exc.end]!r} of the "
            "forecast's header; use --encoding utf-8-sig"
        ) from None
    if output is None:
        steps = predictor.config.window.horizon if horizon is None else horizon
        runs.write_forecast_history(predictor.run, series, predictor.config, steps)
    return result, out_path


def plot(
    run: str | Path | None = None,
    output: str | Path | None = None,
    runs_dir: str | Path = "runs",
    last: int | None = None,
) -> list[Path]:
    """Draw the run's figures as PNG files; returns their paths. `last`: the test plot shows
    the last N test origins only (0: all; default: all up to 500, else the last 300 under
    an overview of the whole test split)."""
    from forecast.plots import run as run_figures

    if last is not None and last < 0:
        raise ConfigError(f"--last must be >= 0 (0: every test origin), got {last}")
    opened = runs.open_run(runs.resolve_run(run, runs_dir))
    out_dir = Path(output) if output is not None else opened.path
    for path in (out_dir, *(out_dir / name for name in runs.FIGURES)):
        runs.refuse_overwrite(path, "--output", opened.path, runs.FIGURES)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--output {out_dir}: is a file; give a folder for the PNGs")
    out_dir.mkdir(parents=True, exist_ok=True)
    return run_figures.draw_run(opened.path, opened.config, out_dir, last, write=runs.write_atomic)


def list_runs(runs_dir: str | Path = "runs") -> pd.DataFrame:
    """Finished training runs and backtests, oldest first: name, kind (train or backtest),
    finished, layout, model, MASE, seasonal naive MASE (a backtest's: the mean over its
    folds). Folders holding part of a training run only are left out, each with a warning."""
    runs.check_runs_dir(Path(runs_dir))
    for path, missing in runs.incomplete_runs(Path(runs_dir)):
        log.warning(
            "%s: incomplete run (no %s), not listed; train it again or delete it", path, missing
        )
    return runs.run_summaries(Path(runs_dir))
