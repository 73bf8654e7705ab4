"""An independent ensemble's members in a training run: fitted here in turn or fanned out
to an executor (local processes, Ray), each kept in the partial run folder as it ends so
that `--resume` fits only the members left."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forecast.config.schema import Config
from forecast.data.prepare import Prepared
from forecast.data.reading import Panel, Series
from forecast.fitting.callbacks import FitResult
from forecast.fitting.executor import Fanout, InProcess, executor_for
from forecast.fitting.members import MemberFit, MemberTask, fit_members
from forecast.interrupts import waiting_on_others
from forecast.runs import write

log = logging.getLogger("forecast")


@dataclass
class Members:
    """Where an independent ensemble's members are fitted: here in turn, or (`fanout`) as
    tasks that each read `data` and prepare it under `config` themselves; `record` says
    where the last fit's members ran (run.json's `fanout`)."""

    config: Config
    data: Series | Panel
    fanout: Fanout
    record: dict[str, Any] = field(default_factory=dict)

    def fit(
        self,
        prepared: Prepared,
        quiet: bool,
        epochs: list[int] | None = None,
        partial: Path | None = None,
        starts: list[dict[str, list[Any]] | None] | None = None,
    ) -> tuple[Any, FitResult, dict[str, Any]]:
        """Every member (the final fit's with `epochs`, from `starts`' weights); with
        `partial`, each member is kept there as it ends, and those kept by an interrupted
        run are not fitted again."""
        kept = {}
        if partial is not None:
            kept = {
                n: MemberFit.from_json(r, w) for n, (w, r) in write.load_members(partial).items()
            }
            if kept and not quiet:
                log.info("ensemble members %s trained before the interruption", sorted(kept))

        def each(fit: MemberFit) -> None:
            if partial is not None:
                write.save_member(partial, fit.number, fit.weights, fit.to_json())

        def finished(_: int, fit: Any) -> None:  # an executor's result: a MemberFit
            each(fit)

        tasks = [
            MemberTask(
                self.config,
                self.data,
                None,
                i + 1,
                None if epochs is None else epochs[i],
                None if starts is None else starts[i],
            )
            for i in range(self.config.model.ensemble)
            if i + 1 not in kept
        ]
        executor = executor_for(self.fanout, tasks)
        self.record = executor.record(len(tasks))
        if isinstance(executor, InProcess):  # on the data prepared here
            model, result, info = fit_members(
                prepared, quiet, epochs=epochs, kept=kept, each=each, starts=starts
            )
        else:
            if not quiet:
                log.info("%d ensemble members %s", len(tasks), executor.describe(len(tasks)))

            def run(tasks: Sequence[MemberTask]) -> list[Any]:
                with waiting_on_others():  # Ctrl-C cancels the members still running
                    return executor.run(tasks, done=finished)

            model, result, info = fit_members(prepared, quiet, run, tasks, kept=kept)
        return model, result, {**info, "fanout": self.record}
