"""Fit tasks as Ray tasks: on an existing Ray cluster, or on a local Ray started for one command.

    OnRay("auto")              a local Ray on 127.0.0.1 with this machine's cores, stopped after
    OnRay("10.0.0.5:6379")     the cluster whose head is there (`ray start --head` on it)
    OnRay("ray://host:10001")  the same through Ray Client

Each task reserves one CPU and its TensorFlow runs one thread, so N tasks on N cores do not
oversubscribe a machine. A data table shared by several tasks is put in Ray's object store
once. A task's user error (bad data for a fold) comes back as that error; Ctrl-C cancels the
tasks still waiting or running. Ray is the `ray` extra: without it, one line says how to
install it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from typing import Any, Literal

from forecast.errors import ConfigError, ForecastError, RunError
from forecast.fitting.fit import SHARED
from forecast.fitting.task import Done, Work, with_data
from forecast.model.tf_setup import configure_worker

log = logging.getLogger("forecast")

Outcome = Done | ForecastError
LOCAL = "auto"
CONNECT_SECONDS = 10  # a cluster's head that does not answer by then is named as unreachable
_THREADS = 1  # TensorFlow threads per task (each task reserves one CPU)


def import_ray() -> Any:
    """Ray, or the one-line user error that names the extra."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--ray needs the ray extra: pip install 'forecast[ray]' (or leave out --ray)"
        ) from None
    return ray


class OnRay:
    """The tasks as Ray tasks; their outcomes come back in task order."""

    def __init__(self, address: str) -> None:
        self.address = address

    def describe(self, tasks: int) -> str:
        where = "a local Ray" if self.address == LOCAL else f"the Ray cluster at {self.address}"
        return f"as Ray tasks on {where}, one CPU and one thread each"

    def record(self, tasks: int) -> dict[str, Any]:
        """Where the fits ran, for backtest.json and run.json."""
        return {
            "engine": "ray",
            "address": self.address,
            "threads": _THREADS,
            "chosen": "given: ray",
        }

    def run(
        self,
        tasks: Sequence[Work],
        started: Any = None,
        done: Any = None,
        errors: Literal["raise", "keep"] = "raise",
    ) -> list[Outcome]:
        ray = import_ray()
        started_here = self._connect(ray)
        try:
            return self._run(ray, tasks, done, errors)
        finally:
            if started_here:
                ray.shutdown()

    def _connect(self, ray: Any) -> bool:
        """Join the cluster (or start a local Ray): True when this call started Ray."""
        if ray.is_initialized():
            return False
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
        if self.address == LOCAL:
            ray.init(
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                **quiet,
            )
            return True
        check_reachable(self.address)  # again: it may have stopped since the check
        try:
            ray.init(address=self.address, **quiet)
        except ConnectionError as exc:
            raise RunError(
                f"--ray {self.address}: cannot join a Ray cluster there ({exc}); start one "
                "with `ray start --head` on that machine, or use --ray auto for a local Ray"
            ) from None
        return True

    def _run(self, ray: Any, tasks: Sequence[Work], done: Any, errors: str) -> list[Outcome]:
        remote = ray.remote(num_cpus=1, max_retries=0)(_run_remote)
        shared: dict[int, Any] = {}  # id(data) -> its object in Ray's store
        running: dict[Any, int] = {}
        for i, task in enumerate(tasks):
            if id(task.data) not in shared:
                shared[id(task.data)] = ray.put(task.data)
            light = with_data(task, None)
            running[remote.remote(light, shared[id(task.data)])] = i
        results: dict[int, Outcome] = {}
        pending = list(running)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                i = running[ready[0]]
                result = results[i] = _result(ray, ready[0], tasks[i])
                if isinstance(result, ForecastError) and errors == "raise":
                    raise result
                if done is not None:
                    done(i, result)
        except BaseException:
            for ref in pending:  # Ctrl-C, or a failed task: the rest are not wanted
                ray.cancel(ref, force=True)
            raise
        return [results[i] for i in range(len(tasks))]


def _result(ray: Any, ref: Any, task: Work) -> Outcome:
    """A task's outcome, or its user error; a bug in it is raised as the bug it is."""
    try:
        outcome: Done = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ForecastError):
            return cause
        raise RuntimeError(f"{task.label} failed on Ray:\n{exc}") from None
    except ray.exceptions.RayError as exc:  # a worker or node lost, not the task's doing
        raise RunError(
            f"{task.label}: its Ray worker was lost ({type(exc).__name__}); the "
            "cluster may be out of memory: run again with fewer workers per node"
        ) from None
    return outcome


def _run_remote(task: Work, data: Any) -> Done:
    """In a Ray worker: one thread of TensorFlow, then the task (its models kept for the next
    task of the same shape in this worker)."""
    configure_worker(_THREADS)
    return with_data(task, data).run(SHARED)


def head_address(address: str) -> tuple[str, int] | None:
    """(host, port) of `--ray HOST:PORT` (or ray://HOST:PORT), None for auto; a user error
    for anything else."""
    if address == LOCAL:
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdecimal():
        raise ConfigError(
            f"--ray {address}: give the head's HOST:PORT (e.g. 10.0.0.5:6379, or "
            "ray://10.0.0.5:10001), or auto for a local Ray"
        )
    return host, int(port)


def check_reachable(address: str) -> None:
    """A clear error at once, instead of Ray's long wait, when nothing answers at the head."""
    head = head_address(address)
    assert head is not None
    host, port = head
    try:
        with socket.create_connection((host, port), timeout=CONNECT_SECONDS):
            pass
    except OSError as exc:
        raise RunError(
            f"--ray {address}: nothing answers there ({exc.strerror or exc}); start the head "
            "with `ray start --head`, check the address, or use --ray auto for a local Ray"
        ) from None
