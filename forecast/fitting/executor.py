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
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Literal, Protocol

from forecast.data.reading import Panel
from forecast.data.windows import row_count
from forecast.errors import ConfigError, ForecastError, RunError
from forecast.fitting.fit import SHARED, expected_epochs
from forecast.fitting.members import MemberTask, independent
from forecast.fitting.onray import OnRay, check_reachable, head_address, import_ray
from forecast.fitting.task import Done, FitTask, Work
from forecast.model.tf_setup import configure_worker

log = logging.getLogger("forecast")

Result = Done | ForecastError
Started = Callable[[int, Work], None]
Finished = Callable[[int, Result], None]


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
            mp_context=multiprocessing.get_context("spawn"),
            initializer=configure_worker,
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
    pool.shutdown(wait=False, cancel_futures=True)
    processes = getattr(pool, "_processes", None) or {}  # pid -> process (CPython's pool)
    for process in list(processes.values()):
        process.terminate()


AUTO = None  # --workers auto: chosen from the cores and the work (choose_workers)
# A pool pays for starting its processes (TensorFlow's import in each, every model shape
# traced again) only when it saves more than this many expected training batches (the
# batches of the tasks that run beside others instead of after them). Measured on the
# reference machine (2 cores, `forecast backtest` with its init config, 3 runs each):
# nottem, 6 folds of 145 batches in 2 processes (435 saved) took 0.79x the time in turn,
# ausbeer, 3 folds of 280 batches (280 saved) 0.98x: about 0.023 s a batch against 6 s
POOL_MIN_SAVED_BATCHES = 300
# What one worker process holds at its peak: 1.08 GB measured (DAX's folds, 1,860 rows);
# a pool never has more processes than the available memory holds
WORKER_BYTES = 1.25 * 2**30


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as file:
            return file.read()
    except OSError:
        return None


def available_memory() -> int | None:
    """Bytes of memory available to new processes: Linux's MemAvailable, or less where a
    container's limit (cgroup v2 memory.max) leaves less; None if unknown."""
    found = None
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemAvailable:"):
            found = int(line.split()[1]) * 1024
    limit, used = _read("/sys/fs/cgroup/memory.max"), _read("/sys/fs/cgroup/memory.current")
    if limit and used and limit.strip().isdecimal() and used.strip().isdecimal():
        left = int(limit) - int(used)
        found = left if found is None else min(found, left)
    return found


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, or less where a container's quota
    (cgroup v2 cpu.max) allows less."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = (_read("/sys/fs/cgroup/cpu.max") or "max").split()
    if len(quota) == 2 and quota[0].isdecimal() and quota[1].isdecimal():
        cores = min(cores, max(int(quota[0]) // int(quota[1]), 1))
    return cores


def gpu_present() -> bool:
    """This machine has an NVIDIA GPU that TensorFlow would use (its device files), unless
    CUDA_VISIBLE_DEVICES hides every one; judged without importing TensorFlow."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return False
    return any(name[6:].isdecimal() for name in _listdir("/dev") if name.startswith("nvidia"))


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


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


def task_work(task: Work) -> tuple[int, int]:
    """(training windows, expected training batches) of a task, from its data's rows and
    its config alone (before anything is prepared): an estimate for choose_workers."""
    cfg = task.config
    frames = task.data.members.values() if isinstance(task.data, Panel) else [task.data]
    final = isinstance(task, MemberTask) and task.epochs is not None  # every row trains
    windows = 0
    for one in frames:
        rows = len(one.frame) - (task.back or 0)
        if task.back is None and not final:  # the run's own split: the test part is out
            rows -= row_count(cfg.split.test, rows)
        if not final:
            rows -= row_count(cfg.split.validation, rows)
        windows += max(rows - cfg.window.input_steps - cfg.window.output_steps + 1, 0)
    epochs = expected_epochs(cfg.training)
    if isinstance(task, MemberTask) and task.epochs is not None:
        epochs = task.epochs
    fits = cfg.model.ensemble if isinstance(task, FitTask) and independent(cfg) else 1
    return windows, max(-(-windows // cfg.training.batch_size), 1) * epochs * fits


def choose_workers(
    tasks: Sequence[Work],
    cores: int | None = None,
    memory: int | None = None,
    gpu: bool | None = None,
) -> tuple[int, str]:
    """--workers auto: (local processes, why) for these tasks on `cores` cores with
    `memory` bytes available and a GPU or not (by default this machine's).

    One process per core, one TensorFlow thread each (on 2 cores, 6 folds of a 240-row
    series took 0.79x the time in turn, of a 1,860-row one 0.76x), at most as many as the
    tasks and as the memory holds (WORKER_BYTES each). In turn here when a pool cannot pay
    for itself: one task, one core, or too few batches saved (POOL_MIN_SAVED_BATCHES)."""
    cores = cores or usable_cores()
    memory = memory if memory is not None else available_memory()
    gpu = gpu_present() if gpu is None else gpu
    if len(tasks) < 2:
        return 1, "one fit"
    spread = {t.config.training.distribute for t in tasks} - {"none"}
    if spread:  # each fit spans devices or workers itself
        return 1, f"training.distribute: {spread.pop()}"
    if gpu:  # the fits train on it here, one after another (a worker process sees no GPU)
        return 1, "a GPU"
    if cores < 2:
        return 1, "one core"
    workers = min(len(tasks), cores)
    why = "one process per core"
    if memory is not None and memory // WORKER_BYTES < workers:
        workers = max(int(memory // WORKER_BYTES), 1)
        why = f"as many processes as {memory / 2**30:.1f} GiB of free memory holds"
        if workers < 2:
            return 1, f"{memory / 2**30:.1f} GiB of free memory holds one process"
    batches = sum(task_work(task)[1] for task in tasks)
    rounds = -(-len(tasks) // workers)  # tasks one process runs, one after another
    saved = round(batches * (1 - rounds / len(tasks)))
    if saved < POOL_MIN_SAVED_BATCHES:
        return 1, (
            f"{workers} processes would save {saved} of {batches} expected batches, too few "
            "to repay starting them"
        )
    return workers, why


def executor_for(fanout: int | Fanout, tasks: Sequence[Work]) -> Executor:
    """On Ray with `ray`, else in this process for 1 worker (or 1 task), else a pool of
    `workers` processes (auto: choose_workers). Its `record()` says where and why."""
    fanout = fanout if isinstance(fanout, Fanout) else Fanout(fanout)
    if not tasks:
        return InProcess("nothing to fit")
    if fanout.ray:
        return OnRay(fanout.ray)
    if fanout.workers is AUTO:
        workers, why = choose_workers(tasks)
        chosen = f"auto: {why}"
    else:
        workers, chosen = fanout.workers, f"given: {fanout.workers} worker(s)"
    if workers <= 1 or len(tasks) <= 1:
        return InProcess(chosen)
    return ProcessPool(workers, chosen)


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
