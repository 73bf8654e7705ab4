"""Runs a list of fit tasks (forecast.fitting.task) and gives their outcomes back in order.

    InProcess()        one after another in this process, reusing compiled models
    ProcessPool(n)     in n fresh worker processes (spawned: no TensorFlow state is forked;
                       forked from a warm command before TensorFlow has run anything, see
                       forecast.cli.warm), the machine's cores shared out between them
    OnRay(address)     as Ray tasks on a cluster, or on a local Ray (forecast.fitting.onray)

Both call `started(i, task)` before task i begins where they can (in process: always) and
`done(i, result)` as each ends. A task that fails raises its error from `run`, or with
`errors="keep"` leaves the error (a ForecastError, the user's to fix) in its place (and
`done` is given it).

`run_groups` hands the tasks of many groups (the folds of several configs, the trials of a
search) to an executor as one list, so that a pool runs tasks of different groups at once,
and gives each group's results back, in group order, as soon as the group is complete.

A chained fold (FitTask.chained: it continues from the model of the fold before it) runs
after that fold: here in turn, given its handoff (task.continued); in a pool or on Ray,
the chained folds of a backtest go as one FoldChain, so that they run in one worker, in
order, reusing the model the first one built there. Their results come back per fold.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Literal, Protocol

from forecast.errors import ConfigError, ForecastError, RunError
from forecast.fitting.fit import SHARED
from forecast.fitting.onray import OnRay, check_reachable, head_address, import_ray
from forecast.fitting.placement import choose_workers, usable_cores
from forecast.fitting.task import Done, FitOutcome, FitTask, FoldChain, Work, continued
from forecast.model.tf_setup import configure_worker, forkable

log = logging.getLogger("forecast")

Result = Done | ForecastError
Started = Callable[[int, Work], None]
Finished = Callable[[int, Result], None]


def pool_worker(threads: int) -> None:
    """A local pool's worker: Ctrl-C and SIGTERM as in any new process (a forked one would
    keep the command's handlers, which wait for the end of a batch), then its threads."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    configure_worker(threads)


def run_work(task: Work) -> Done:
    """In a worker process: the task, reusing the models an earlier task of the same shape
    built there (fitting.fit.SHARED)."""
    return task.run(SHARED)


class Executor(Protocol):
    def describe(self, tasks: int) -> str: ...

    def record(self, tasks: int) -> dict[str, Any]: ...

    def run(
        self,
        tasks: Sequence[Work],
        started: Started | None = None,
        done: Finished | None = None,
        errors: Literal["raise", "keep"] = "raise",
    ) -> list[Result]: ...


class InProcess:
    """Every task in turn, here; each reuses the models an earlier task (or an earlier run
    in this process) built for the same shape (fitting.fit.SHARED)."""

    def __init__(self, chosen: str = "given: 1 worker") -> None:
        self.chosen = chosen  # why in turn here: the option given, or auto's reason

    def describe(self, tasks: int) -> str:
        return "here, one after another"

    def record(self, tasks: int) -> dict[str, Any]:
        """Where the fits ran, for backtest.json and run.json."""
        return {"engine": "in process", "workers": 1, "chosen": self.chosen}

    def run(
        self,
        tasks: Sequence[Work],
        started: Started | None = None,
        done: Finished | None = None,
        errors: Literal["raise", "keep"] = "raise",
    ) -> list[Result]:
        results: list[Result] = []
        for i, task in enumerate(tasks):
            task = continued(task, results[-1] if results else None)  # a chained fold
            if started is not None:
                started(i, task)
            result: Result
            try:
                result = task.run(SHARED)
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

    def __init__(self, workers: int, chosen: str = "") -> None:
        self.workers = workers
        self.chosen = chosen or f"given: {workers} workers"

    def describe(self, tasks: int) -> str:
        processes, threads = self.threads(tasks)
        return f"in {processes} worker processes, {threads} thread(s) each"

    def record(self, tasks: int) -> dict[str, Any]:
        processes, threads = self.threads(tasks)
        return {
            "engine": "local processes",
            "workers": processes,
            "threads": threads,
            "start": "fork" if forkable() else "spawn",  # forked from a warm command
            "chosen": self.chosen,
        }

    def threads(self, tasks: int) -> tuple[int, int]:
        """(processes, threads each) for `tasks` tasks on this machine."""
        workers = min(self.workers, tasks)
        return workers, max(1, usable_cores() // workers)

    def run(
        self,
        tasks: Sequence[Work],
        started: Started | None = None,
        done: Finished | None = None,
        errors: Literal["raise", "keep"] = "raise",
    ) -> list[Result]:
        workers, threads = self.threads(len(tasks))
        results: dict[int, Result] = {}
        with ProcessPoolExecutor(
            workers,
            # forked from a warm command that has run nothing in TensorFlow yet (the same
            # state a spawned worker reaches after its imports), else spawned
            mp_context=multiprocessing.get_context("fork" if forkable() else "spawn"),
            initializer=pool_worker,
            initargs=(threads,),
        ) as pool:
            running = {pool.submit(run_work, task): i for i, task in enumerate(tasks)}
            try:
                self._collect(running, results, done, errors)
            except BrokenProcessPool:  # a worker killed (by the kernel: out of memory)
                _stop(pool)
                raise RunError(
                    f"a worker process died while {workers} fitted at once (the machine may be "
                    "out of memory): run again with fewer --workers, or --workers 1"
                ) from None
            except BaseException:  # Ctrl-C, or a failed task: the rest are not wanted
                _stop(pool)
                raise
        return [results[i] for i in range(len(tasks))]

    @staticmethod
    def _collect(
        running: dict[Any, int], results: dict[int, Result], done: Finished | None, errors: str
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


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued tasks and end the running ones now (leaving the pool would wait
    for them to finish)."""
    # pid -> process (CPython's pool), taken first: shutdown() sets it to None, so the
    # workers were never terminated and a running fit outlived the command
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()


AUTO = None  # --workers auto: chosen from the cores and the work (choose_workers)


@dataclass(frozen=True)
class Fanout:
    """Where independent fits run: `workers` local processes (None: auto, chosen from the
    cores and the work), or Ray (`ray`: an address, or `auto` for a local Ray); the
    default of the Python API, here in turn."""

    workers: int | None = 1
    ray: str | None = None

    def __post_init__(self) -> None:
        if self.workers == "auto":  # as the CLI writes it
            object.__setattr__(self, "workers", AUTO)

    def check(self) -> Fanout:
        """The user errors of --workers and --ray, before anything runs."""
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be >= 1 or auto, got {self.workers}")
        if self.ray is not None:
            if self.workers is not None and self.workers > 1:
                raise ConfigError(
                    "--workers and --ray: give one (Ray runs one task per CPU of the cluster)"
                )
            import_ray()
            if head_address(self.ray) is not None:
                check_reachable(self.ray)
        return self


IN_TURN = Fanout()  # every fit here, one after another


def executor_for(fanout: int | Fanout, tasks: Sequence[Work]) -> Executor:
    """On Ray with `ray`, else in this process for 1 worker (or 1 task), else a pool of
    `workers` processes (auto: choose_workers). Its `record()` says where and why."""
    fanout = fanout if isinstance(fanout, Fanout) else Fanout(fanout)
    tasks = in_chains(tasks)  # what a pool would run
    if not tasks:
        return InProcess("nothing to fit")
    if fanout.ray:
        return OnRay(fanout.ray)
    if fanout.workers is AUTO:
        workers, why = choose_workers(tasks)
        chosen = f"auto: {why}"
    else:
        workers, chosen = fanout.workers, f"given: {fanout.workers} worker(s)"
    if workers > 1 and len(tasks) == 1 and isinstance(tasks[0], FoldChain):
        chosen += "; the folds continue one from another (training.fold_start), so in turn"
    if workers <= 1 or len(tasks) <= 1:
        return InProcess(chosen)
    return ProcessPool(workers, chosen)


def in_chains(tasks: Sequence[Work]) -> list[Work]:
    """The tasks as a pool or Ray runs them: a fold and the chained folds after it as one
    FoldChain."""
    out: list[Work] = []
    for task in tasks:
        last = out[-1] if out else None
        if isinstance(task, FitTask) and task.chained and isinstance(last, FitTask | FoldChain):
            before = last.tasks if isinstance(last, FoldChain) else (last,)
            out[-1] = FoldChain((*before, task))
        else:
            out.append(task)
    return out


def _per_fold(results: Sequence[Result]) -> list[Result]:
    """A group's results with each FoldChain's outcomes in place of its list."""
    return [o for r in results for o in (r if isinstance(r, list) else [r])]


def run_groups(
    executor: Executor,
    groups: Sequence[Sequence[Work]],
    started: Callable[[int, int, Work], None] | None = None,
    finished: Callable[[int, list[Result]], None] | None = None,
    done: Callable[[int, int, Result], None] | None = None,
    errors: Literal["raise", "keep"] = "raise",
) -> list[list[Result]]:
    """Run every group's tasks as one list on `executor`; each group's results in task order.

    `started(g, k, task)` before task k of group g begins (where the executor says so),
    `done(g, k, result)` as it ends; `finished(g, results)` once group g and every group
    before it are complete, in group order (a group without tasks is complete at once).
    With errors="raise", the first failure stops the run: the groups finished before it
    have had their `finished` call. Chained folds run in turn here, and elsewhere as one
    FoldChain per backtest; `done` and the results are per fold either way (a FoldChain
    that failed: its error, once)."""
    chained = any(isinstance(t, FitTask) and t.chained for tasks in groups for t in tasks)
    if chained and not isinstance(executor, InProcess):
        units = [in_chains(tasks) for tasks in groups]
        return _run_chains(executor, units, started, finished, done, errors)
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

    def on_started(i: int, task: Work) -> None:
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


def _run_chains(
    executor: Executor,
    units: Sequence[Sequence[Work]],
    started: Callable[[int, int, Work], None] | None,
    finished: Callable[[int, list[Result]], None] | None,
    done: Callable[[int, int, Result], None] | None,
    errors: Literal["raise", "keep"],
) -> list[list[Result]]:
    """run_groups of groups holding FoldChains: `done` and the results per fold."""

    def each(g: int, k: int, result: Result) -> None:
        if done is not None:
            for outcome in result if isinstance(result, list) else [result]:
                fold = outcome.number - 1 if isinstance(outcome, FitOutcome) else k
                done(g, fold, outcome)

    def whole(g: int, results: list[Result]) -> None:
        if finished is not None:
            finished(g, _per_fold(results))

    out = run_groups(executor, units, started, whole, each, errors)
    return [_per_fold(results) for results in out]
