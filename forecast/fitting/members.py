"""An ensemble whose members are independent fits (`model.ensemble_fit: independent`).

Each member is a one-member model fitted on its own: its own seed (member 0 the config's
seed, member i one derived from (seed, i)), its own early stop and best epoch. Each is a
`MemberTask`, the unit of work of forecast.fitting.task for a member: plain data that an
executor runs here, in worker processes or on Ray, and that gives back the member's weights
and fit. `combine` puts the members' weights into the plain ensemble model, which forecasts
their median and is saved exactly as a jointly trained ensemble is.

    member i:  prepare the slice -> fit a one-member model (seed_i) -> weights, history
    combined:  window -> [member 0 .. member N-1] -> median   (model.ensemble N, plain form)

Run in turn here or fanned out, the members and so the forecasts are the same numbers
(tests/test_fanout.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from forecast.config.schema import Config
from forecast.data.panel import as_panel, prepare_panel
from forecast.data.prepare import Prepared
from forecast.data.reading import Panel, Series
from forecast.fitting.callbacks import FitResult
from forecast.fitting.fit import Compiled, fit, fit_final, models_for
from forecast.fitting.training import seed_everything

log = logging.getLogger("forecast")

RunMembers = Callable[[Sequence[Any]], Sequence[Any]]  # an executor's run: tasks -> fits


def independent(config: Config) -> bool:
    """The config's ensemble is fitted member by member."""
    return config.model.ensemble > 1 and config.model.ensemble_fit == "independent"


def member_seed(seed: int, member: int) -> int:
    """Member 0 keeps the config's seed (a one-member ensemble is the plain model); member
    i > 0 a seed drawn from (seed, i), so that members of seed 1 and seed 2 differ."""
    if member == 0:
        return seed
    return int(np.random.SeedSequence([seed, member]).generate_state(1)[0] % (2**31 - 1))


@dataclass(frozen=True)
class MemberTask:
    """Fit member `number` - 1 of `config`'s ensemble on `data` without its last `back` rows
    of every series; `epochs` given: the final fit on every row for that many epochs (no
    validation, no early stop)."""

    config: Config  # concrete: calendar and residual chosen
    data: Series | Panel
    back: int | None  # None: the run's own split (train, validation, test)
    number: int  # 1-based, as its messages say it
    epochs: int | None = None
    start: dict[str, list[np.ndarray]] | None = None  # the final fit's first weights

    @property
    def label(self) -> str:
        return f"ensemble member {self.number}"

    def run(self, compiled: Compiled | None = None) -> MemberFit:
        said = log.level
        log.setLevel(logging.ERROR)  # the data's warnings: the command said them once
        one = self.config.model.model_copy(update={"ensemble": 1})  # what this task trains
        try:
            config = self.config.model_copy(update={"model": one})
            panel = prepare_panel(config, as_panel(self.data), back=self.back)
        finally:
            log.setLevel(said)
        return fit_member(
            panel.combined, self.number - 1, self.epochs, compiled=compiled, start=self.start
        )


@dataclass
class MemberFit:
    """What a member's fit gives back: plain arrays and numbers."""

    number: int
    seed: int
    weights: dict[str, list[np.ndarray]]  # layer name (without the member prefix) -> weights
    result: FitResult
    info: dict[str, Any]  # fit's timings, strategy, unroll, jit_compile

    def to_json(self) -> dict[str, Any]:
        """Everything but the weights, as JSON (kept beside them for --resume)."""
        result = self.result
        return {
            "member": self.number,
            "seed": self.seed,
            "history": result.history,
            "best_epoch": result.best_epoch,
            "stopped_epoch": result.stopped_epoch,
            "seconds": result.seconds,
            "dataset_seconds": result.dataset_seconds,
            "info": self.info,
        }

    @classmethod
    def from_json(cls, record: dict[str, Any], weights: dict[str, list[Any]]) -> MemberFit:
        result = FitResult(
            record["history"],
            record["best_epoch"],
            record["stopped_epoch"],
            record["seconds"],
            record["dataset_seconds"],
        )
        return cls(record["member"], record["seed"], weights, result, record["info"])


def member_config(config: Config, member: int) -> Config:
    """The one-member config of member `member` (0-based)."""
    model = config.model.model_copy(update={"ensemble": 1, "ensemble_fit": "joint"})
    return config.model_copy(update={"model": model, "seed": member_seed(config.seed, member)})


def fit_member(
    prepared: Prepared,
    member: int,
    epochs: int | None = None,
    quiet: bool = True,
    compiled: Compiled | None = None,
    start: dict[str, list[np.ndarray]] | None = None,
) -> MemberFit:
    """Fit member `member` (0-based) of `prepared`'s ensemble: held out (with validation and
    early stopping), or with `epochs` the final fit on every row (from `start`'s weights,
    the held-out member's, when given). Epochs 0 (no epoch beat the residual base): the
    member's starting weights, the base, untrained."""
    one = replace(prepared, config=member_config(prepared.config, member))
    if epochs is None:
        model, result, info = fit(one, quiet, compiled=compiled)
    elif epochs == 0:
        model, result, info = _untrained(one), FitResult(), {"timings": {}}
    else:
        model, result, info = fit_final(one, epochs, quiet, start=start)
    weights = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    return MemberFit(member + 1, one.config.seed, weights, result, info)


def fit_members(
    prepared: Prepared,
    quiet: bool,
    run: RunMembers | None = None,
    tasks: Sequence[MemberTask] = (),
    epochs: Sequence[int] | None = None,
    compiled: Compiled | None = None,
    kept: dict[int, MemberFit] | None = None,
    each: Callable[[MemberFit], None] | None = None,
    starts: Sequence[dict[str, list[np.ndarray]] | None] | None = None,
) -> tuple[Any, FitResult, dict[str, Any]]:
    """Fit every member and combine them: (model, FitResult, info) as `fit` gives them.

    `run` with `tasks` (one per member) fits them elsewhere (an executor, which calls `each`
    itself); otherwise each is fitted here in turn on `prepared` (reusing `compiled`'s
    models), `each(fit)` as it ends. `kept`: members fitted before (number -> fit), not
    fitted again. `epochs` (one per member): the final fit, from `starts`' weights."""
    clock = time.perf_counter()
    total = prepared.config.model.ensemble
    done = dict(kept or {})
    if run is not None:
        for fit in run([t for t in tasks if t.number not in done]):
            done[fit.number] = fit
    else:
        for i in range(total):
            if i + 1 in done:
                continue
            if not quiet:
                seed = member_seed(prepared.config.seed, i)
                log.info("ensemble member %d of %d (seed %d)", i + 1, total, seed)
            count = None if epochs is None else epochs[i]
            start = None if starts is None else starts[i]
            done[i + 1] = fit_member(prepared, i, count, quiet, compiled, start)
            if each is not None:
                each(done[i + 1])
    fits = [done[number] for number in range(1, total + 1)]
    model = combine(prepared, fits)
    result = merged_result(fits)
    info = {
        **fits[0].info,
        "timings": {"fit": round(time.perf_counter() - clock, 4)},  # every member, wall time
        "members": [member_record(f) for f in fits],
    }
    return model, result, info


def member_record(fit: MemberFit) -> dict[str, Any]:
    """What run.json keeps of one member's fit."""
    return {
        "member": fit.number,
        "seed": fit.seed,
        "epochs": len(fit.result.history),
        "best_epoch": fit.result.best_epoch,
        "stopped_epoch": fit.result.stopped_epoch,
        "seconds": round(fit.result.seconds, 4),
    }


def member_epochs(fitted: dict[str, Any]) -> list[int]:
    """Each member's final-fit epochs from its held-out fit (fit.json's `members`): its best
    epoch where early stopping restored one (0: the residual base kept), else all it ran."""
    members = fitted["members"]
    return [m["epochs"] if m["best_epoch"] is None else m["best_epoch"] for m in members]


def merged_result(fits: Sequence[MemberFit]) -> FitResult:
    """One FitResult for the run's history.csv and loss plot: each epoch's losses averaged
    over the members that ran it (members stop at different epochs); no single best or
    stopping epoch (each member's are in run.json's `members`)."""
    longest = max((len(f.result.history) for f in fits), default=0)
    history = []
    for epoch in range(longest):
        rows = [f.result.history[epoch] for f in fits if epoch < len(f.result.history)]
        keys = [k for k in rows[0] if all(k in r for r in rows)]
        history.append(
            {k: rows[0][k] if k == "epoch" else float(np.mean([r[k] for r in rows])) for k in keys}
        )
    return FitResult(
        history=history,
        seconds=sum(f.result.seconds for f in fits),
        dataset_seconds=sum(f.result.dataset_seconds for f in fits),
    )


def _untrained(prepared: Prepared) -> Any:
    """The one-member model's starting weights (seeded as `fit` seeds them): its residual
    base, where no epoch beat it."""
    seed_everything(prepared.config.seed)
    return _build(prepared)


def _build(prepared: Prepared) -> Any:
    """`prepared`'s forecasting model with looped layers, untrained."""
    return models_for(prepared, unroll=False)[1]


def combine(prepared: Prepared, fits: Sequence[MemberFit]) -> Any:
    """The plain ensemble model of `prepared`'s config (looped layers, as `train` saves it)
    holding each member's weights: member i's layer `lstm_0` is the ensemble's `m{i}_lstm_0`;
    a layer the members share (none has weights today) must hold the same weights in all."""
    model = _build(prepared)
    names = {layer.name for layer in model.layers}
    for i, member in enumerate(fits):
        for name, weights in member.weights.items():
            own = f"m{i}_{name}"
            if own in names:
                model.get_layer(own).set_weights(weights)
                continue
            first = fits[0].weights[name]
            if len(first) != len(weights) or not all(
                np.array_equal(a, b) for a, b in zip(first, weights, strict=True)
            ):
                raise AssertionError(f"layer {name} is shared by the members but differs")
            model.get_layer(name).set_weights(weights)
    return model
