"""How many local processes `--workers auto` runs a list of fits in: from the cores and the
memory this process may use (container limits included), a GPU or not, and the work the fits
are expected to do (training batches, estimated from the data's rows and the config before
anything is prepared). forecast.fitting.executor asks it, and records its answer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from forecast.data.reading import Panel
from forecast.data.windows import row_count
from forecast.fitting.fit import expected_epochs
from forecast.fitting.members import MemberTask, independent
from forecast.fitting.task import INNER_FOLDS, FitTask, FoldChain, Work
from forecast.model.tf_setup import forkable, gpu_present

# A pool pays for starting its processes (TensorFlow's import in each, every model shape
# traced again) only when it saves more than this many expected training batches (the
# batches of the tasks that run beside others instead of after them). Measured on the
# reference machine (2 cores, `forecast backtest` with its init config, 3 runs each):
# nottem, 6 folds of 145 batches in 2 processes (435 saved) took 0.79x the time in turn,
# ausbeer, 3 folds of 280 batches (280 saved) 0.98x: about 0.023 s a batch against 6 s
POOL_MIN_SAVED_BATCHES = 300
# ...and a pool forked from a warm command (forecast.cli.warm: everything imported, a worker
# up in ~0.05 s) only pays for tracing its model shapes again, about a second
FORKED_POOL_MIN_SAVED_BATCHES = 60
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


def task_work(task: Work) -> tuple[int, int]:
    """(training windows, expected training batches) of a task, from its data's rows and
    its config alone (before anything is prepared): an estimate for choose_workers. A
    FoldChain's later folds train a quarter of the epochs (fit.final_epochs); their inner
    folds, if any, are new fits all the same."""
    if isinstance(task, FoldChain):
        windows, batches, fits = _fits(task.tasks[0])
        total = batches * fits
        for fold in task.tasks[1:]:
            _, batches, fits = _fits(fold)
            total += -(-batches // 4) + batches * (fits - 1)
        return windows, total
    windows, batches, fits = _fits(task)
    return windows, batches * fits


def _fits(task: FitTask | MemberTask) -> tuple[int, int, int]:
    """(training windows, expected batches of one fit, fits: an independent ensemble's
    members, a series' inner folds) of a task."""
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
    if isinstance(task, FitTask) and cfg.intervals and cfg.data.id_column is None:
        # one series (a table of one) without validation rows: its intervals are calibrated
        # on inner folds
        rows = len(next(iter(frames)).frame)
        fits *= 1 + INNER_FOLDS if row_count(cfg.split.validation, rows) == 0 else 1
    return windows, max(-(-windows // cfg.training.batch_size), 1) * epochs, fits


def choose_workers(
    tasks: Sequence[Work],
    cores: int | None = None,
    memory: int | None = None,
    gpu: bool | None = None,
    forked: bool | None = None,
) -> tuple[int, str]:
    """--workers auto: (local processes, why) for these tasks on `cores` cores with
    `memory` bytes available and a GPU or not (by default this machine's).

    One process per core, one TensorFlow thread each (on 2 cores, 6 folds of a 240-row
    series took 0.79x the time in turn, of a 1,860-row one 0.76x), at most as many as the
    tasks and as the memory holds (WORKER_BYTES each). In turn here when a pool cannot pay
    for itself: one task, one core, or too few batches saved (POOL_MIN_SAVED_BATCHES, or
    FORKED_POOL_MIN_SAVED_BATCHES where the workers would be forked: `forked`, by default
    whether this process can be, tf_setup.forkable)."""
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
    forked = forkable() if forked is None else forked
    if saved < (FORKED_POOL_MIN_SAVED_BATCHES if forked else POOL_MIN_SAVED_BATCHES):
        return 1, (
            f"{workers} processes would save {saved} of {batches} expected batches, too few "
            "to repay starting them"
        )
    return workers, why
