"""Many series, one model (`data.id_column`): a long table's series prepared one by one, then
trained on together.

Every series goes through `prepare.prepare` on its own: its own split (the same fractions or
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

import numpy as np

from forecast.config.schema import Config, DataConfig
from forecast.data.prepare import Prepared, prepare
from forecast.data.reading import Panel, Series, SeriesId, read_panel, read_series, some_ids
from forecast.errors import DataError
from forecast.model.build import check_stack
from forecast.model.memory import check_training_fits

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
    members: dict[SeriesId, Prepared]  # id -> the series that train, each prepared alone
    skipped: dict[str, str]  # id -> why it was left out
    offsets: dict[SeriesId, int]  # id -> its first row in `combined`
    combined: Prepared  # every member's rows end to end, with a PanelSplit
    params: int  # the model's parameter count

    @property
    def ids(self) -> list[SeriesId]:
        return list(self.members)

    @property
    def one(self) -> Prepared | None:
        """The series of a CSV that holds one (a table of one, its id None), else None."""
        return self.members.get(None) if len(self.members) == 1 else None

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
    members: dict[SeriesId, Prepared] = {}
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
            if sid is None:  # one series: its own error, as it is
                raise
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
    offsets, combined = _combine(config, members)
    params = check_model(config, combined.fit_split.train_origins)
    return PreparedPanel(config, panel, members, skipped, offsets, combined, params)


def check_model(config: Config, train_origins: np.ndarray) -> int:
    """The model's parameter count, once the data is known good: a ConfigError when the stack
    does not fit the window, or training it (on every series' windows) not this machine's
    memory."""
    data, window = config.data, config.window
    shape = check_stack(
        config.model, window.input_steps, len(data.inputs), window.output_steps, len(data.targets)
    )
    check_training_fits(config, shape, windows=max(len(train_origins), 1))
    return shape.params


def _combine(
    config: Config, members: dict[SeriesId, Prepared]
) -> tuple[dict[SeriesId, int], Prepared]:
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
        values=_end_to_end([p.values for p in members.values()]),
        scaled=_end_to_end([p.scaled for p in members.values()]),
        split=split,  # type: ignore[arg-type]
        season=season,
    )
    return offsets, combined


def _end_to_end(arrays: list[np.ndarray]) -> np.ndarray:
    """The rows of every member in turn; one series' own array, not a copy."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def as_panel(data: Series | Panel) -> Panel:
    """A long table as it is; one series as a table of one, its id None."""
    if isinstance(data, Panel):
        return data
    members: dict[SeriesId, Series] = {None: data}
    return Panel(members, data.path, data.sha256, "", data.encoding)


def read_data(config: DataConfig) -> Panel:
    """The config's data as a table of series: a long table's, or the CSV's one series."""
    return read_panel(config) if config.id_column is not None else as_panel(read_series(config))
