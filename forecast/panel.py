"""Many series, one model (`data.id_column`): a long table's series prepared one by one, then
trained on together.

Every series goes through `pipeline.prepare` on its own: its own split (the same fractions or
counts), holes, transform and scaler fitted on its own training rows only. The model then
trains on all of them at once: their scaled rows are laid end to end in one array
(`combined`), and the training and validation origins of each series are shifted by the row
where it starts (`offsets`). An origin's window lies inside its own series, so windows never
cross from one series into another, and batches are gathered from the one array as for a
single series (memory flat in the number of windows).

    series A rows 0..4, B rows 0..5, input_steps 2:
        combined rows  A0 A1 A2 A3 A4 | B0 B1 B2 B3 B4 B5     offsets A: 0, B: 5
        origin 1 of B -> combined row 6: window rows 5, 6 (B0, B1)

Series too short for the window and split are skipped, with one warning naming them.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from forecast.config.schema import Config
from forecast.data.reading import Panel, some_ids
from forecast.errors import DataError
from forecast.pipeline import (
    CalibrationPlan,
    Prepared,
    calibrate_from,
    calibration_plan,
    prepare,
    to_original,
)

log = logging.getLogger("forecast")


@dataclass(frozen=True)
class PanelSplit:
    """The origins the one model trains and validates on, in combined rows; `every` is every
    origin with all its targets known (what the final fit trains on)."""

    train_origins: np.ndarray
    val_origins: np.ndarray
    every: np.ndarray
    rows: int

    @property
    def test_origins(self) -> np.ndarray:
        return np.empty(0, np.int64)


@dataclass
class PreparedPanel:
    config: Config
    panel: Panel
    members: dict[str, Prepared]  # id -> the series that train, each prepared on its own
    skipped: dict[str, str]  # id -> why it was left out
    offsets: dict[str, int]  # id -> its first row in `combined`
    combined: Prepared  # every member's rows end to end, with a PanelSplit

    @property
    def ids(self) -> list[str]:
        return list(self.members)

    def with_config(self, config: Config) -> PreparedPanel:
        """The same panel under a config that differs in model settings only (what
        `residual: auto` chose)."""
        members = {i: replace(p, config=config) for i, p in self.members.items()}
        return replace(
            self, config=config, members=members, combined=replace(self.combined, config=config)
        )


def prepare_panel(config: Config, panel: Panel, back: int | None = None) -> PreparedPanel:
    """Prepare every series of `panel` on its own and lay them end to end.

    With `back`, each series' last `back` rows are left out and there is no test part (a
    backtest fold fits on everything up to its origin)."""
    members: dict[str, Prepared] = {}
    skipped: dict[str, str] = {}
    for sid, series in panel.members.items():
        try:
            if back is None:
                members[sid] = prepare(config, series)
            else:
                rows = len(series.frame) - back
                if rows < 1:
                    raise DataError(
                        f"{series.source}: {len(series.frame)} rows, none before the origin"
                    )
                members[sid] = prepare(config, series, rows=rows)
        except DataError as exc:
            skipped[sid] = str(exc)
    if not members:
        first = next(iter(skipped.values()), f"{panel.path}: no rows")
        raise DataError(
            f"{panel.path}: none of the {len(skipped)} series in '{panel.id_column}' is long "
            f"enough; the first: {first.split(': ', 1)[-1]}"
        )
    if skipped:
        log.warning(
            "%s: %d of %d series too short for the window and split, left out: %s",
            panel.path,
            len(skipped),
            len(panel.members),
            some_ids(list(skipped), shown=10),
        )
    config = next(iter(members.values())).config  # data.calendar: auto made concrete
    return PreparedPanel(config, panel, members, skipped, *_combine(config, members))


def _combine(config: Config, members: dict[str, Prepared]) -> tuple[dict[str, int], Prepared]:
    offsets, start = {}, 0
    train, val, every = [], [], []
    window = config.window
    for sid, p in members.items():
        offsets[sid] = start
        assert p.split is not None
        train.append(p.split.train_origins + start)
        val.append(p.split.val_origins + start)
        rows = len(p.scaled)
        every.append(np.arange(window.input_steps - 1, rows - window.output_steps) + start)
        start += rows
    first = next(iter(members.values()))
    # the model's season (a seasonal residual base is built in): the most common one
    season = Counter(p.season for p in members.values()).most_common(1)[0][0]
    split = PanelSplit(np.concatenate(train), np.concatenate(val), np.concatenate(every), start)
    combined = replace(
        first,
        values=np.concatenate([p.values for p in members.values()]),
        scaled=np.concatenate([p.scaled for p in members.values()]),
        split=split,  # type: ignore[arg-type]
        season=season,
    )
    return offsets, combined


def forecast_members(
    prepared: PreparedPanel, forecaster: Any, origins: dict[str, np.ndarray], steps: int
) -> dict[str, np.ndarray]:
    """Forecast `steps` from each member's work-row origins in one batched call:
    id -> (N, steps, K) original units."""
    ids = list(origins)
    if not ids:
        return {}
    shifted = np.concatenate([origins[i] + prepared.offsets[i] for i in ids]).astype(np.int64)
    scaled = forecaster.from_origins(prepared.combined.features, shifted, steps)
    out, start = {}, 0
    for i in ids:
        n = len(origins[i])
        out[i] = to_original(prepared.members[i], scaled[start : start + n], origins[i])
        start += n
    return out


def calibrate_members(
    prepared: PreparedPanel, forecaster: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each member's intervals, calibrated on its own training and validation origins (one
    batched forecast for all): (id -> Calibration, id -> why it has none)."""
    plans: dict[str, CalibrationPlan] = {}
    missing: dict[str, str] = {}
    for sid, member in prepared.members.items():
        plan = calibration_plan(member)
        if isinstance(plan, CalibrationPlan):
            plans[sid] = plan
        elif plan is not None:
            missing[sid] = plan
    calibrations = {}
    for steps in sorted({p.steps for p in plans.values()}):
        same = [i for i, p in plans.items() if p.steps == steps]
        # a few series' forecasts at a time: memory stays flat in the number of series
        for chunk in _chunks(same, lambda i: len(plans[i].origins), CALIBRATION_ORIGINS):
            origins = {i: plans[i].origins for i in chunk}
            predicted = forecast_members(prepared, forecaster, origins, steps)
            for sid in chunk:
                calibrations[sid] = calibrate_from(
                    prepared.members[sid], plans[sid], predicted[sid]
                )
    return calibrations, missing


CALIBRATION_ORIGINS = 20_000  # origins forecast at once when calibrating many series


def _chunks(ids: list[str], size: Any, limit: int) -> list[list[str]]:
    """`ids` in consecutive groups of at most `limit` total size (one id may exceed it)."""
    groups: list[list[str]] = [[]]
    total = 0
    for i in ids:
        if groups[-1] and total + size(i) > limit:
            groups.append([])
            total = 0
        groups[-1].append(i)
        total += size(i)
    return [g for g in groups if g]


def mean_reports(reports: list[Any]) -> Any:
    """The mean over series of every number in reports of the same shape (dicts, lists,
    numbers); a number missing (null) in some series is the mean of the others, null where
    it is null in all; text (a reason) is kept from the first report that has it."""
    present = [r for r in reports if r is not None]
    if not present:
        return None
    first = present[0]
    if isinstance(first, dict):
        keys = list(dict.fromkeys(k for r in present if isinstance(r, dict) for k in r))
        return {k: mean_reports([r.get(k) for r in present if isinstance(r, dict)]) for k in keys}
    if isinstance(first, list):
        length = min(len(r) for r in present)
        return [mean_reports([r[i] for r in present]) for i in range(length)]
    if isinstance(first, bool) or not isinstance(first, (int, float)):
        return first
    numbers = [r for r in present if isinstance(r, (int, float)) and not isinstance(r, bool)]
    if all(n == numbers[0] for n in numbers):
        return numbers[0]  # the same in every series (a step number, a season length)
    return float(np.mean(numbers))
