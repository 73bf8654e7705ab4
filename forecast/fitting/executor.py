"""Runs a list of fit tasks (forecast.fitting.task) and gives their outcomes back in order.

    InProcess()        one after another in this process, reusing compiled models
    ProcessPool(n)     in n fresh worker processes (spawned: no TensorFlow state is forked),
                       the machine's cores shared out between them

Both call `started(i, task)` before task i begins where they can (in process: always) and
`done(i, outcome)` as each ends. A task that fails raises its error from `run`, or with
`errors="keep"` leaves the error (a ForecastError, the user's to fix) in its place.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Literal, Protocol

from forecast.errors import ForecastError
from forecast.fitting.fit import SHARED
from forecast.fitting.task import FitOutcome, FitTask, run_task
from forecast.model.tf_setup import import_tensorflow_quietly

log = logging.getLogger("forecast")

Started = Callable[[int, FitTask], None]
Done = Callable[[int, FitOutcome], None]
Result = FitOutcome | ForecastError


class Executor(Protocol):
    def run(
        self,
        tasks: Sequence[FitTask],
        started: Started | None = None,
        done: Done | None = None,
        errors: Literal["raise", "keep"] = "raise",
    ) -> list[Result]: ...


class InProcess:
    """Every task in turn, here; each reuses the models an earlier task (or an earlier run
    in this process) built for the same shape (fitting.fit.SHARED)."""

    def run(
        self,
        tasks: Sequence[FitTask],
        started: Started | None = None,
        done: Done | None = None,
        errors: Literal["raise", "keep"] = "raise",
    ) -> list[Result]:
        results: list[Result] = []
        for i, task in enumerate(tasks):
            if started is not None:
                started(i, task)
            try:
                outcome = run_task(task, SHARED)
            except ForecastError as exc:
                if errors == "raise":
                    raise
                results.append(exc)
                continue
            results.append(outcome)
            if done is not None:
                done(i, outcome)
        return results


class ProcessPool:
    """The tasks in `workers` fresh processes; their outcomes come back in task order."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def threads(self, tasks: int) -> tuple[int, int]:
        """(processes, threads each) for `tasks` tasks on this machine."""
        workers = min(self.workers, tasks)
        return workers, max(1, (os.cpu_count() or 1) // workers)

    def run(
        self,
        tasks: Sequence[FitTask],
        started: Started | None = None,
        done: Done | None = None,
        errors: Literal["raise", "keep"] = "raise",
    ) -> list[Result]:
        workers, threads = self.threads(len(tasks))
        results: dict[int, Result] = {}
        with ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(threads,),
        ) as pool:
            running = {pool.submit(run_task, task): i for i, task in enumerate(tasks)}
            for finished in as_completed(running):
                i = running[finished]
                try:
                    outcome = finished.result()
                except ForecastError as exc:
                    if errors == "raise":
                        raise
                    results[i] = exc
                    continue
                results[i] = outcome
                if done is not None:
                    done(i, outcome)
        return [results[i] for i in range(len(tasks))]


def _start_worker(threads: int) -> None:
    logging.getLogger("forecast").setLevel(logging.WARNING)
    import_tensorflow_quietly()
    import tensorflow as tf  # imported by import_tensorflow_quietly: no cost here

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def executor_for(workers: int) -> Executor:
    """In this process for 1 worker, else a pool of `workers` processes."""
    return InProcess() if workers <= 1 else ProcessPool(workers)
