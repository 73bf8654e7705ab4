"""A training run from start to finish: the partial run folder, the held-out fit, scoring on
the test split, the final fit on every row, resume after an interruption, and what is kept
or discarded when it stops early."""

from __future__ import annotations

import importlib.util
import logging
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from forecast.config.file import config_to_yaml
from forecast.config.schema import Config
from forecast.data.panel import prepare_panel, read_data
from forecast.data.prepare import Prepared
from forecast.errors import ConfigError, ForecastError, RunError
from forecast.fitting.announce import log_layout
from forecast.fitting.callbacks import Checkpoint
from forecast.fitting.executor import IN_TURN, Fanout
from forecast.fitting.fit import (
    Compiled,
    final_epochs,
    final_split,
    fit,
    fit_final,
    layer_weights,
    scoring_model,
)
from forecast.fitting.members import independent, member_epochs
from forecast.fitting.multiworker import cluster_from_env
from forecast.fitting.residual import choose_residual
from forecast.fitting.task import inner_forecasts
from forecast.fitting.training import multi_worker_strategy
from forecast.forecasting.scoring import evaluate_on_test
from forecast.interrupts import raise_if_stop_requested, tensorflow_work
from forecast.model.stacked import stackable
from forecast.model.tf_setup import import_tensorflow_quietly
from forecast.runs import atomic, layout, write
from forecast.workflows.ensemble import Members
from forecast.workflows.loading import resolve_config

log = logging.getLogger("forecast")


@dataclass
class TrainResult:
    run_dir: Path | None  # None: a multi-worker run's worker other than the chief
    config: Config
    metrics: dict[str, Any]
    verdict: str
    history: list[dict[str, float]] = field(default_factory=list)
    worker: int | None = None  # under multi_worker, this process's index


def _resume_point(partial: Path) -> str:
    """Where a resumed run goes on, "after epoch 7 of {epochs}" (the config's epochs left to
    fill in), or after its trained model; "" when its snapshot cannot be read (the fit says
    why itself)."""
    if (partial / "fit.json").is_file():  # read (and checked) once, when the run loads it
        return "after training had ended (finishing the run)"
    if write.members_kept(partial):
        return f"with {write.members_kept(partial)} ensemble member(s) trained"
    try:
        done = Checkpoint(partial / "backup").epochs_done()
    except (OSError, ValueError, KeyError):  # a damaged snapshot
        return ""
    return f"after epoch {done} of {{epochs}}" if done else "from epoch 1 of {epochs}"


def _copy_chief_partial(runs_dir: Path, name: str, scratch: Path) -> None:
    """A multi-worker run's other worker resumes from the chief's newest interrupted run of
    `name`, which it must see in the same runs folder (one machine, or a shared folder)."""
    partial = layout.newest_partial(runs_dir, name)
    if partial is None:
        raise RunError(
            f"{runs_dir}: this worker sees no interrupted run of '{name}' to resume from; give "
            "every worker the chief's runs folder (a shared folder), or train without --resume"
        )
    shutil.copytree(partial, scratch / partial.name)


def _fitted_model(
    partial: Path, prepared: Prepared, quiet: bool, members: Members, compiled: Compiled
) -> tuple[Any, dict[str, Any]]:
    """The model this partial run already trained, or a newly fitted one (kept at once).
    A new fit leaves its model, built and traced, in `compiled` for the final fit."""
    kept = write.load_fitted(partial)
    if kept is not None:
        log.info("the model was trained before the interruption; finishing the run")
        return kept
    checkpoint = Checkpoint(partial / "backup")
    board = partial / "tensorboard" / "held_out" if prepared.config.training.tensorboard else None
    if independent(prepared.config):
        if board is not None:
            log.warning(
                "training.tensorboard: an independent ensemble's members write no TensorBoard "
                "logs (each is its own fit); its history.csv and loss.png hold their mean"
            )
        model, result, info = members.fit(prepared, quiet, partial=partial)
    else:
        model, result, info = fit(
            prepared,
            quiet,
            checkpoint_dir=checkpoint.folder,
            tensorboard_dir=board,
            compiled=compiled,
            saved=True,
        )
    clock = time.perf_counter()
    fitted = write.fit_record(result, info)
    write.save_fitted(partial, model, fitted)
    fitted["timings"]["save_model"] = round(time.perf_counter() - clock, 4)
    checkpoint.discard()
    return model, fitted


def _final_fit(
    partial: Path,
    prepared: Prepared,
    fitted: dict[str, Any],
    quiet: bool,
    members: Members,
    held_out: Any,
    compiled: Compiled,
) -> dict[str, Any]:
    """Refit on every row and make it the run's model.keras, its history
    final_history.csv; run.json's `final_fit` (and `seconds`). From scratch, for the
    epochs the held-out fit used (its best epoch when early stopping restored one; an
    independent ensemble's members each their own); by default (`final_fit_start:
    held_out`) from the `held_out` model's weights, for a quarter of them
    (fitting.fit.final_epochs). Where the held-out fit left its model in `compiled` (the
    same shape: the same settings, and the same batches per call), the final fit resets and
    refits that model, which is then no longer the held-out one: the numbers a new model
    gives, without building and tracing it again."""
    best = fitted["best_epoch"]  # 0: no epoch beat the residual base, which is kept
    each = member_epochs(fitted) if "members" in fitted else None
    epochs = max(each) if each else len(fitted["history"]) if best is None else best
    start = prepared.config.training.final_fit_start
    warm = start == "held_out"
    # the held-out weights to start from: the model's, or each independent member's own
    prefixes = [""] if each is None else [f"m{i}_" for i in range(len(each))]
    starts = [layer_weights(held_out, p) if warm else None for p in prefixes]
    if each is None:
        epochs = final_epochs(epochs, start)
    else:
        each = [final_epochs(e, start) for e in each]
        epochs = max(each)
    rows = len(prepared.values)
    clock = time.perf_counter()
    model, loss = None, None  # no epochs: the held-out model, the base, is the final one
    if epochs == 0 and not quiet:
        log.info("final fit: none, the model is its residual base, which no epoch beat")
    elif epochs:
        if not quiet:
            said = f"{epochs}" if each is None else f"{'/'.join(map(str, each))} (per member)"
            began = " from the held-out weights" if start == "held_out" else ""
            log.info("final fit: %s epoch(s) on all %d rows%s", said, rows, began)
        board = partial / "tensorboard" / "final" if prepared.config.training.tensorboard else None
        # its epochs on stderr as the first fit's: it takes as long
        if each is not None:
            model, result, _ = members.fit(prepared, quiet, epochs=each, starts=starts)
        else:
            model, result, _ = fit_final(
                prepared,
                epochs,
                quiet=quiet,
                tensorboard_dir=board,
                start=starts[0],
                compiled=compiled,
            )
        loss = result.history[-1]["loss"]
        write.write_history(partial / "final_history.csv", result.history)  # for loss.png
    info: dict[str, Any] = {
        "rows": rows,
        "windows": len(final_split(prepared).train_origins),
        "epochs": epochs,
        "start": start,
        "loss": loss,
        "seconds": round(time.perf_counter() - clock, 4),
    }
    if each is not None:
        info["member_epochs"] = each
        info["fanout"] = members.record
    write.save_final(partial, model, info)
    return info


def _check_fanout(cfg: Config, fanout: Fanout) -> None:
    """--workers/--ray on `train` fan out an independent ensemble's members, and only that."""
    if fanout.ray is None and fanout.workers in (None, 1):  # auto: only where it applies
        return
    option = "--ray" if fanout.ray else "--workers"
    if cfg.training.distribute != "none":
        raise ConfigError(
            f"{option}: training.distribute is {cfg.training.distribute}, so this fit already "
            f"spans devices or workers; leave out {option}, or set training.distribute: none"
        )
    if not independent(cfg):
        has = (
            "one member"
            if cfg.model.ensemble == 1
            else f"{cfg.model.ensemble} members trained jointly"
        )
        raise ConfigError(
            f"{option} runs an ensemble's members in parallel, but model.ensemble has {has}; "
            "set model.ensemble: N and model.ensemble_fit: independent (e.g. --set "
            "model.ensemble=5 --set model.ensemble_fit=independent), or leave out "
            f"{option}"
        )


def resume_command(
    config: Config | str | Path,
    runs_dir: str | Path = "runs",
    overrides: list[str] | None = None,
    seed: int | None = None,
) -> str:
    """The `forecast train` command that continues this training, options included."""
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
    if (partial / "fit.json").is_file():
        return "the trained model is"
    if write.members_kept(partial):
        return "the finished ensemble members are"
    if resume or Checkpoint(partial / "backup").exists():
        return "the finished epochs are"
    return None


def _keep_or_discard(partial: Path, exc: BaseException, resume: bool, command: str) -> None:
    """Keep a partial run that holds finished epochs or a trained model; else remove it."""
    trained = (partial / "fit.json").is_file() or write.members_kept(partial) > 0
    if isinstance(exc, ForecastError) and not resume and not trained:
        # bad data or a diverged first fit: resuming would only repeat it; a trained
        # held-out model is kept all the same (nothing trained is thrown away)
        layout.discard(partial)
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
    layout.discard(partial)


def train(
    config: Config | str | Path,
    runs_dir: str | Path = "runs",
    overrides: list[str] | None = None,
    seed: int | None = None,
    quiet: bool = False,
    resume: bool = False,
    fanout: Fanout = IN_TURN,
    _worker: bool = False,
) -> TrainResult:
    """`api.train`: the partial run folder and its lock, the held-out fit, the test split's
    scores, the final fit, then the finished run; on a stop, what is kept for --resume.
    Under `training.distribute: multi_worker`, a worker other than the chief trains its
    part of every step in a scratch folder that it removes: it writes nothing visible, and
    its result has no run directory. `fanout` (--workers, --ray) fits the members of an
    independent ensemble (`model.ensemble_fit: independent`) in parallel."""
    clock = time.perf_counter()
    command = resume_command(config, runs_dir, overrides, seed)  # said if training stops
    cfg = resolve_config(config, overrides, seed)
    _check_fanout(cfg, fanout.check())
    if cfg.training.distribute == "multi_worker" and not _worker:
        worker = cluster_from_env()  # before the data is read and prepared
        multi_worker_strategy()  # TensorFlow's collectives are set up before it runs anything
        if not worker.chief:  # the chief writes the run; this worker leaves nothing
            with tempfile.TemporaryDirectory(prefix=".forecast-worker-") as scratch:
                if resume:  # from the chief's snapshot, as the chief resumes
                    _copy_chief_partial(Path(runs_dir), cfg.name or "run", Path(scratch))
                said = log.level
                log.setLevel(logging.ERROR)  # the chief says what is kept, and where
                try:
                    done = train(cfg, scratch, quiet=True, resume=resume, _worker=True)
                finally:
                    log.setLevel(said)
            return replace(done, run_dir=None, worker=worker.index)
    layout.check_runs_dir(Path(runs_dir))  # before the data is read and prepared
    if cfg.training.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "training.tensorboard: needs the tensorboard extra: "
            "pip install 'forecast[tensorboard]' (or set training.tensorboard: false)"
        )
    data = read_data(cfg.data)  # one series: a table of one
    prepared = prepare_panel(cfg, data)
    cfg = prepared.config  # data.calendar: auto made concrete, as config.yaml keeps it
    config_text = config_to_yaml(cfg)  # the run's config.yaml
    timings: dict[str, Any] = {"load": round(time.perf_counter() - clock, 4)}
    if not quiet:
        log_layout(cfg)
    runs_path, name = Path(runs_dir), cfg.name or "run"
    if resume:
        partial, when = layout.resumable_partial(runs_path, name, config_text)
        lock = layout.PartialLock(partial)  # a second resume of it stops here
        point = _resume_point(partial).format(epochs=cfg.training.epochs)
        log.info("resuming %s %s", partial, point)
    else:
        when = layout.stamp()
        partial = layout.start_partial(runs_path, name, when)
        lock = layout.PartialLock(partial)
    try:
        if not resume:
            write.write_config(partial, config_text)
        # Ctrl-C and SIGTERM are only noted while TensorFlow works (see
        # forecast.interrupts), and raised after each batch and between these stages
        with tensorflow_work():
            import_tensorflow_quietly()
            chosen = choose_residual(prepared.combined)  # `residual: auto` made concrete
            prepared = prepared.with_config(chosen.config)
            fitting = prepared.combined  # every series' rows end to end
            members = Members(prepared.config, data, fanout)
            raise_if_stop_requested()
            compiled = Compiled(limit=1)  # the held-out fit's model, for the final fit
            model, fitted = _fitted_model(partial, fitting, quiet, members, compiled)
            timings |= fitted["timings"]
            raise_if_stop_requested()
            clock = time.perf_counter()  # the inner folds of a series without validation rows
            inner = inner_forecasts(cfg, data, prepared)
            if inner:
                timings["inner_folds"] = round(time.perf_counter() - clock, 4)
                found = inner[None]
                if not quiet and not isinstance(found, str):
                    log.info(
                        "intervals: no validation rows; calibrated on %d inner folds (%.1f s)",
                        len(found[0]),
                        timings["inner_folds"],
                    )
            raise_if_stop_requested()
            clock = time.perf_counter()  # the stacked twin's build counts as forecasting
            scorer = scoring_model(fitting, model) if stackable(cfg.model) else model
            built = time.perf_counter() - clock
            metrics, predictions, calibration = evaluate_on_test(prepared, scorer, timings, inner)
            timings["forecast"] = round(timings["forecast"] + built, 4)
            raise_if_stop_requested()
            clock = time.perf_counter()
            write.write_results(partial, prepared, fitted, metrics, predictions, calibration)
            timings["save"] = round(time.perf_counter() - clock, 4)
            raise_if_stop_requested()
            final = None
            if cfg.training.final_fit:
                final = write.load_final(partial) or _final_fit(
                    partial, fitting, fitted, quiet, members, model, compiled
                )
                timings["final_fit"] = final["seconds"]
            else:
                write.keep_held_out(partial)
        write.write_run_info(partial, prepared, fitted, timings, final)
        write.drop_resume_files(partial)
        run_dir = layout.finish(partial, runs_path, name, when)
    except BaseException as exc:
        failure = atomic.write_failure(exc, partial)
        if failure is None:
            _keep_or_discard(partial, exc, resume, command)
            raise
        # one line: what could not be written, and what (if anything) is kept to resume
        kept = _kept_work(partial, resume)
        if kept is None or (atomic.out_of_space(exc) and not resume):
            # a new half-written run: on a full disk it holds the space the user needs back
            layout.discard(partial)
            raise failure from None
        raise RunError(f"{failure}; {kept} kept in {partial}: continue with `{command}`") from None
    finally:
        lock.release()
    return TrainResult(run_dir, cfg, metrics, metrics["verdict"], fitted["history"])
