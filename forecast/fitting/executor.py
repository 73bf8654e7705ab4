"""Runs a list of fit tasks (forecast.fitting.task) and gives their outcomes back in order.

    InProcess()        one after another in this process, reusing compiled models
    ProcessPool(n)     in n fresh worker processes (spawned: no TensorFlow state is forked),
                       the machine's cores shared out between them
    OnRay(address)     as Ray tasks on a cluster, or on a local Ray (forecast.fitting.onray)

Both call `started(i, task)` before task i begins where they can (in process: always) and
`done(i, result)` as each ends. A task that fails raises its error from `run`, or with
`errors="keep"` leaves the error (a ForecastError, the user's to fix) in its place (and
`done` is given it).

`run_groups` hands the tasks of many groups (the folds of several configs, the trials of a
search) to an executor as one list, so that a pool runs tasks of different groups at once,
and gives each group's results back, in group order, as soon as the group is complete.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Literal, Protocol

from forecast.errors import ConfigError, ForecastError
from forecast.fitting.fit import SHARED
from forecast.fitting.onray import OnRay, check_reachable, head_address, import_ray
from forecast.fitting.task import FitOutcome, FitTask, run_task
from forecast.model.tf_setup import configure_worker

log = logging.getLogger("forecast")

Result = FitOutcome | ForecastError
Started = Callable[[int, FitTask], None]
Done = Callable[[int, Result], None]


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
            result: Result
            try:
                result = run_task(task, SHARED)
            except ForecastError as exc:
                if errors == "raise":
                    raise
                result = exc
            results.append(result)
            if done is not None:
                done(i, result)
        return results


class ProcessPool:
    """The tasks in `workers` fresh processes; their outcomes come back in task order."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def describe(self, tasks: int) -> str:
        processes, threads = self.threads(tasks)
        return f"in {processes} worker processes, {threads} thread(s) each"

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
            initializer=configure_worker,
            initargs=(threads,),
        ) as pool:
            running = {pool.submit(run_task, task): i for i, task in enumerate(tasks)}
            try:
                self._collect(running, results, done, errors)
            except BaseException:  # Ctrl-C, or a failed task: the rest are not wanted
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        return [results[i] for i in range(len(tasks))]

    @staticmethod
    def _collect(
        running: dict[Any, int], results: dict[int, Result], done: Done | None, errors: str
    ) -> None:
        for finished in as_completed(running):
            i = running[finished]
            try:
                results[i] = finished.result()
            except ForecastError as exc:
                if errors == "raise":
                    raise
                results[i] = exc
            if done is not None:
                done(i, results[i])


@dataclass(frozen=True)
class Fanout:
    """Where independent fits run: `workers` local processes, or Ray (`ray`: an address, or
    `auto` for a local Ray); the default, here in turn."""

    workers: int = 1
    ray: str | None = None

    def check(self) -> Fanout:
        """The user errors of --workers and --ray, before anything runs."""
        if self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")
        if self.ray is not None:
            if self.workers > 1:
                raise ConfigError(
                    "--workers and --ray: give one (Ray runs one task per CPU of the cluster)"
                )
            import_ray()
            if head_address(self.ray) is not None:
                check_reachable(self.ray)
        return self


IN_TURN = Fanout()  # every fit here, one after another


def executor_for(workers: int | Fanout, tasks: int = 2) -> Executor:
    """On Ray with `ray`, else in this process for 1 worker (or 1 task), else a pool of
    `workers` processes."""
    fanout = workers if isinstance(workers, Fanout) else Fanout(workers)
    if fanout.ray:
        return OnRay(fanout.ray)
    return InProcess() if fanout.workers <= 1 or tasks <= 1 else ProcessPool(fanout.workers)


def run_groups(
    executor: Executor,
    groups: Sequence[Sequence[FitTask]],
    started: Callable[[int, int, FitTask], None] | None = None,
    finished: Callable[[int, list[Result]], None] | None = None,
    done: Callable[[int, int, Result], None] | None = None,
    errors: Literal["raise", "keep"] = "raise",
) -> list[list[Result]]:
    """Run every group's tasks as one list on `executor`; each group's results in task order.

    `started(g, k, task)` before task k of group g begins (where the executor says so),
    `done(g, k, result)` as it ends; `finished(g, results)` once group g and every group
    before it are complete, in group order (a group without tasks is complete at once).
    With errors="raise", the first failure stops the run: the groups finished before it
    have had their `finished` call."""
    starts = [0, *accumulate(len(tasks) for tasks in groups)]
    owner = [g for g, tasks in enumerate(groups) for _ in tasks]
    results: dict[int, Result] = {}
    left = [len(tasks) for tasks in groups]
    released = 0

    def release() -> None:
        nonlocal released
        while released < len(groups) and left[released] == 0:
            if finished is not None:
                g = released
                finished(g, [results[i] for i in range(starts[g], starts[g + 1])])
            released += 1

    def on_started(i: int, task: FitTask) -> None:
        if started is not None:
            started(owner[i], i - starts[owner[i]], task)

    def on_done(i: int, result: Result) -> None:
        results[i] = result
        g = owner[i]
        if done is not None:
            done(g, i - starts[g], result)
        left[g] -= 1
        release()

    release()  # groups without tasks before the first task
    flat = [task for tasks in groups for task in tasks]
    out = executor.run(flat, on_started, on_done, errors)
    release()  # groups without tasks after the last
    return [out[starts[g] : starts[g + 1]] for g in range(len(groups))]
