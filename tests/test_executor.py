"""run_groups: the tasks of many groups as one list, each group's results back in order."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from forecast.errors import DataError, RunError
from forecast.fitting.executor import ProcessPool, Result, run_groups
from forecast.fitting.task import FitOutcome, FitTask


def _task(number: int) -> FitTask:
    return FitTask(config=None, data=None, back=number, number=number)  # type: ignore[arg-type]


class Scripted:
    """An executor that finishes its tasks last first, as a pool may (or first first, as
    in process): task `fail` (if any) ends in a DataError."""

    def __init__(self, fail: int | None = None, forward: bool = False) -> None:
        self.fail, self.forward = fail, forward

    def run(self, tasks: Sequence[FitTask], started: Any, done: Any, errors: str) -> list[Result]:
        results: dict[int, Result] = {}
        order = range(len(tasks))
        for i in order if self.forward else reversed(order):
            if i == self.fail:
                if errors == "raise":
                    raise DataError(f"task {i} failed")
                results[i] = DataError(f"task {i} failed")
            else:
                back = tasks[i].back
                results[i] = FitOutcome(back, [], {None: np.full((1, 1), back)}, {}, {}, 1, 0.0)
            done(i, results[i])
        return [results[i] for i in range(len(tasks))]


def test_groups_finish_in_their_order_with_their_own_results():
    groups = [[_task(1), _task(2)], [], [_task(3)], [_task(4), _task(5), _task(6)], []]
    finished: list[tuple[int, list[int]]] = []
    done: list[tuple[int, int]] = []
    out = run_groups(
        Scripted(),
        groups,
        finished=lambda g, results: finished.append((g, [r.number for r in results])),
        done=lambda g, k, result: done.append((g, k)),
    )
    # every group once, in order, each with its own tasks' results in task order, although
    # the last task ended first (the empty groups included, where they stand)
    assert finished == [(0, [1, 2]), (1, []), (2, [3]), (3, [4, 5, 6]), (4, [])]
    assert [[r.number for r in results] for results in out] == [[1, 2], [], [3], [4, 5, 6], []]
    assert done == [(3, 2), (3, 1), (3, 0), (2, 0), (0, 1), (0, 0)]  # as each task ended


def test_a_failed_task_is_kept_in_its_group_or_stops_the_run():
    groups = [[_task(1)], [_task(2), _task(3)]]
    out = run_groups(Scripted(fail=1), groups, errors="keep")
    assert isinstance(out[1][0], DataError) and str(out[1][0]) == "task 1 failed"
    assert out[1][1].number == 3 and out[0][0].number == 1
    for forward, before in ((True, [0]), (False, [])):
        finished: list[int] = []
        with pytest.raises(DataError, match="task 1 failed"):
            run_groups(
                Scripted(fail=1, forward=forward),
                groups,
                finished=lambda g, _: finished.append(g),  # noqa: B023 (called at once)
            )
        # in order, group 0 had ended (and was given back) before task 1 of group 1
        # failed; last first, it had not
        assert finished == before


def test_chained_folds_go_to_a_pool_as_one_chain_and_come_back_per_fold():
    """Folds that continue from the fold before them run as one FoldChain where the executor
    is not this process (so that one worker runs them in order); `done`, `finished` and the
    results are per fold, as for folds apart."""
    from forecast.fitting.executor import in_chains
    from forecast.fitting.task import FoldChain

    def fold(number: int, chained: bool) -> FitTask:
        return FitTask(None, None, number, number, chained=chained)  # type: ignore[arg-type]

    groups = [[fold(1, False), fold(2, True), fold(3, True)], [fold(1, False)]]
    seen: list[Any] = []

    class Chains:
        def run(self, tasks: Sequence[Any], started: Any, done: Any, errors: str) -> list[Any]:
            seen.extend(tasks)
            results: list[Any] = []
            for i, task in enumerate(tasks):
                folds = task.tasks if isinstance(task, FoldChain) else [task]
                made = [FitOutcome(f.number, [], {}, {}, {}, 1, 0.0) for f in folds]
                results.append(made if isinstance(task, FoldChain) else made[0])
                done(i, results[-1])
            return results

    done: list[tuple[int, int, int]] = []
    finished: list[tuple[int, list[int]]] = []
    out = run_groups(
        Chains(),
        groups,
        finished=lambda g, results: finished.append((g, [r.number for r in results])),
        done=lambda g, k, result: done.append((g, k, result.number)),
    )
    assert [type(t).__name__ for t in seen] == ["FoldChain", "FitTask"]
    assert [t.number for t in seen[0].tasks] == [1, 2, 3]
    assert [[r.number for r in results] for results in out] == [[1, 2, 3], [1]]
    assert done == [(0, 0, 1), (0, 1, 2), (0, 2, 3), (1, 0, 1)]
    assert finished == [(0, [1, 2, 3]), (1, [1])]
    # a chained fold after a fold apart joins it; folds apart stay apart
    assert [type(t).__name__ for t in in_chains([fold(1, False), fold(1, False)])] == [
        "FitTask", "FitTask",
    ]  # fmt: skip


@dataclass(frozen=True)
class Sleeper:
    """A unit of work for a real pool: sleeps `seconds`, or with `die` ends its process as
    the kernel's out-of-memory killer would."""

    seconds: float
    die: bool = False
    number: int = 1
    label: str = "sleeper"

    def run(self, compiled: Any = None) -> float:
        if self.die:
            os._exit(137)
        time.sleep(self.seconds)
        return self.seconds


@pytest.mark.slow  # two spawned workers import TensorFlow
def test_ctrl_c_ends_the_fits_still_running_in_a_pool_at_once() -> None:
    """The first fit ends, the caller is interrupted: the other worker's 120 s fit is ended
    then, not waited for."""

    def interrupt(i: int, result: Any) -> None:
        raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        ProcessPool(2).run([Sleeper(0.1), Sleeper(120)], done=interrupt)  # type: ignore[list-item]
    assert time.monotonic() - started < 60
    deadline = time.monotonic() + 30  # and its workers are gone (they outlived it before)
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not multiprocessing.active_children()


@pytest.mark.slow  # a spawned worker imports TensorFlow
def test_a_worker_killed_by_the_kernel_is_a_one_line_run_error() -> None:
    with pytest.raises(RunError) as failed:
        ProcessPool(2).run([Sleeper(0, die=True), Sleeper(0.1)])  # type: ignore[list-item]
    assert str(failed.value) == (
        "a worker process died while 2 fitted at once (the machine may be out of memory): "
        "run again with fewer --workers, or --workers 1"
    )
