"""A training run from start to finish: the partial run folder, the held-out fit, scoring on
the test split, the final fit on every row, resume after an interruption, and what is kept
or discarded when it stops early."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forecast import runs
from forecast.config.file import config_to_yaml
from forecast.config.schema import Config
from forecast.data.panel import PreparedPanel, prepare_panel
from forecast.data.prepare import Prepared, prepare
from forecast.data.reading import read_panel, resolve_config
from forecast.errors import ConfigError, ForecastError, RunError
from forecast.fitting.announce import log_layout
from forecast.fitting.fit import final_split, fit, fit_final
from forecast.fitting.residual import choose_residual
from forecast.forecasting.intervals import Calibration
from forecast.forecasting.scoring import evaluate_on_test, evaluate_panel
from forecast.interrupts import raise_if_stop_requested, tensorflow_work
from forecast.model.tf_setup import import_tensorflow_quietly
from forecast.workflows.tune import TuneResult, tune  # noqa: F401  (the API: api.tune)

log = logging.getLogger("forecast")


@dataclass
class TrainResult:
    run_dir: Path
    config: Config
    metrics: dict[str, Any]
    verdict: str
    history: list[dict[str, float]] = field(default_factory=list)


def _resume_point(partial: Path, cfg: Config) -> str:
    """Where a resumed run goes on: "after epoch 7 of 50", or after its trained model."""
    from forecast.fitting.callbacks import Checkpoint

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
    from forecast.fitting.callbacks import Checkpoint

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
    from forecast.fitting.callbacks import Checkpoint

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
    cfg = resolve_config(config, overrides, seed)
    runs.check_runs_dir(Path(runs_dir))  # before the data is read and prepared
    if cfg.training.tensorboard:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise ConfigError(
                "training.tensorboard: needs the tensorboard extra: "
                "pip install 'forecast[tensorboard]' (or set training.tensorboard: false)"
            )
    many = cfg.data.id_column is not None
    prepared = prepare_panel(cfg, read_panel(cfg.data)) if many else prepare(cfg)
    cfg = prepared.config  # data.calendar: auto made concrete, as config.yaml keeps it
    timings: dict[str, Any] = {"load": round(time.perf_counter() - clock, 4)}
    if not quiet:
        log_layout(cfg)
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
            if isinstance(prepared, PreparedPanel):  # many series
                chosen = choose_residual(prepared.combined)
                prepared = prepared.with_config(chosen.config)
                fitting = prepared.combined
            else:
                prepared = fitting = choose_residual(prepared)
            raise_if_stop_requested()
            model, fitted = _fitted_model(partial, fitting, quiet)
            timings |= fitted["timings"]
            raise_if_stop_requested()
            calibration: Calibration | dict[str, Calibration] | None  # a long table's: per id
            if isinstance(prepared, PreparedPanel):
                metrics, predictions, calibration = evaluate_panel(prepared, model, timings)
            else:
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
