"""Figures show their data, are written whole or not at all, and leave the caller's matplotlib
settings as they were."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.image import imread

from forecast import api
from forecast.config.file import load_config
from forecast.data.reading import read_panel
from forecast.plots import common
from forecast.plots import run as run_figures
from forecast.plots.backtest import backtest_figure, panel_backtest_figure
from forecast.runs import read
from forecast.runs.atomic import write_atomic
from tests.conftest import monthly_frame, write_config, write_csv


def coloured_pixels(path: Path) -> int:
    """Pixels with a colour (not white, grey or black): the data's lines, bands, bars, dots."""
    rgb = imread(path)[..., :3]  # (height, width, 3) in 0..1
    return int((rgb.max(axis=2) - rgb.min(axis=2) > 0.2).sum())


@contextlib.contextmanager
def no_data() -> Iterator[None]:
    """Figures drawn with their titles, axes, grid and legend, but no data."""
    real_plot = Axes.plot
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Axes, "plot", lambda self, *args, **kwargs: real_plot(self, [], [], **kwargs))
        for name in ("fill_between", "bar", "scatter", "hist", "set_yscale"):
            patch.setattr(Axes, name, lambda self, *args, **kwargs: None)
        yield


def assert_drawn_beyond_blank(plot: Callable[[Path], list[Path]], folder: Path) -> list[Path]:
    """`plot(folder)`'s PNGs each hold several times the coloured pixels of the same figure
    drawn with no data (a legend's keys and a few coloured lines are all a blank one has).
    Measured on the figures here: drawn 850 (forecast.png of one step) to 390,000, blank 0 to
    660 (backtest.png's fold lines at the origins)."""
    for name in ("drawn", "blank"):
        (folder / name).mkdir(parents=True)
    paths = plot(folder / "drawn")
    with no_data():
        blanks = plot(folder / "blank")
    counts = {
        p.name: (coloured_pixels(p), coloured_pixels(b)) for p, b in zip(paths, blanks, strict=True)
    }
    for name, (drawn, blank) in counts.items():
        assert drawn > 4 * blank + 300, (name, counts)
    return paths


@pytest.fixture
def saved(monkeypatch) -> list[Figure]:
    """Every figure written while the test runs, to look at what was drawn."""
    figures: list[Figure] = []
    real_savefig = Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return real_savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def axes_titled(figures: list[Figure], start: str):
    (ax,) = [ax for fig in figures for ax in fig.axes if ax.get_title().startswith(start)]
    return ax


def lines_by_label(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


def bands(ax) -> list[PolyCollection]:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


@pytest.fixture
def run_dir(tiny_config: Path) -> Path:
    return api.train(tiny_config, runs_dir=tiny_config.parent / "runs", quiet=True).run_dir


def test_an_interrupted_plot_leaves_no_truncated_png(run_dir: Path, monkeypatch, tmp_path: Path):
    import matplotlib.pyplot as plt

    out = tmp_path / "plots"
    first = api.plot(run_dir, output=out)
    before = {p.name: p.read_bytes() for p in first}
    real_savefig = Figure.savefig

    def savefig_then_ctrl_c(self, fname, *args, **kwargs):
        real_savefig(self, fname, *args, **kwargs)
        Path(fname).write_bytes(Path(fname).read_bytes()[:100])  # half written...
        raise KeyboardInterrupt  # ...when Ctrl-C arrives

    monkeypatch.setattr(Figure, "savefig", savefig_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        api.plot(run_dir, output=out)
    # the PNG under its final name is the earlier, complete one; no temporary file is left
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert plt.get_fignums() == []  # no pyplot figure is opened (and so none left open)


def test_an_error_while_drawing_writes_nothing(run_dir: Path, monkeypatch, tmp_path: Path):
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    def broken_legend(self, *args, **kwargs):
        raise ValueError("bad legend")

    monkeypatch.setattr(Axes, "legend", broken_legend)
    with pytest.raises(ValueError, match="bad legend"):
        api.plot(run_dir, output=tmp_path / "plots")
    assert plt.get_fignums() == []
    assert list((tmp_path / "plots").iterdir()) == []


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG header."""
    head = path.read_bytes()[:24]
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_every_png_is_at_least_1200_by_600_and_shows_its_data(
    run_dir: Path, tmp_path: Path, saved: list[Figure]
):
    monthly = run_dir.parent.parent / "sales.csv"
    api.predict(run_dir, monthly)
    paths = assert_drawn_beyond_blank(lambda out: api.plot(run_dir, output=out), tmp_path)
    assert sorted(p.name for p in paths) == ["forecast.png", "loss.png", "test_forecast.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = png_size(path)
        assert width >= 1200 and height >= 600, (path.name, width, height)
    saved = saved[: len(paths)]  # not the blank ones

    test_rows = len(pd.read_csv(run_dir / "test_predictions.csv"))  # horizon 1: one per origin
    test_ax = axes_titled(saved, "sales: test split")
    lines = lines_by_label(test_ax)
    assert len(lines["actual"].get_xdata()) == len(lines["predicted, step 1"].get_xdata())
    assert len(lines["actual"].get_xdata()) == test_rows
    assert len(bands(test_ax)) == 2  # the 80% and 95% intervals
    future_ax = axes_titled(saved, "sales: next 1 step(s)")
    assert len(lines_by_label(future_ax)["history"].get_xdata()) > 12
    assert len(bands(future_ax)) == 2
    loss_ax = axes_titled(saved, "training and validation loss")
    assert len(lines_by_label(loss_ax)["train loss"].get_xdata()) == 2  # epochs


def test_the_actual_line_covers_every_test_row_and_one_origin_is_drawn(
    tmp_path: Path, saved: list[Figure]
):
    """Multi-step: the actual line reaches the last test row (not horizon - 1 rows short);
    a single test origin is drawn with markers; the loss axis says what units it is in."""
    write_csv(tmp_path / "s.csv", monthly_frame(60))
    config = write_config(
        tmp_path / "c.yaml",
        data={"path": "s.csv", "time_column": "date", "features": ["sales"]},
        window={"input_steps": 12, "horizon": 4},
        split={"test": 4, "validation": 0},
        scaling={"method": "none"},
        model={"architecture": "lstm", "units": [4]},
        training={"epochs": 1, "early_stopping": False},
    )
    run = api.train(config, runs_dir=tmp_path / "runs", quiet=True).run_dir
    (tmp_path / "out").mkdir()
    opened = read.open_run(run)
    run_figures.draw_run(run, opened.config, tmp_path / "out", write=write_atomic)
    test_ax = axes_titled(saved, "sales: test split, actual vs predicted")
    lines = lines_by_label(test_ax)
    assert len(lines["actual"].get_xdata()) == 4  # one origin, 4 steps: every actual row
    assert len(lines["predicted, step 1"].get_xdata()) == 1
    assert lines["predicted, step 1"].get_marker() == "o"  # a dot, not an invisible line
    loss_ax = axes_titled(saved, "training and validation loss")
    assert loss_ax.get_ylabel() == "mse loss (original units)"


def test_chinese_labels_use_a_cjk_font_found_on_disk_only_inside_the_drawing(monkeypatch, caplog):
    """A CJK font installed after matplotlib cached its font list is found among the font
    files on disk (here: a system font the list is made to lack, standing in for one); it is
    used inside `style_for` only. With none even then, the warning says what to install."""
    import copy

    from matplotlib import font_manager

    on_disk = font_manager.findSystemFonts()
    if not on_disk:
        pytest.skip("no font files outside matplotlib's own on this machine")
    name = font_manager.ttfFontProperty(font_manager.get_font(on_disk[0])).name
    stale = copy.copy(font_manager.fontManager)
    stale.ttflist = [font for font in stale.ttflist if font.name != name]  # cached before
    monkeypatch.setattr(font_manager, "fontManager", stale)
    monkeypatch.setattr(common, "CJK_FONTS", ("No Such Font", name))
    before = dict(matplotlib.rcParams)
    with common.style_for(["收盘价(元)"]):
        assert matplotlib.rcParams["font.sans-serif"][0] == name
        assert matplotlib.rcParams["axes.unicode_minus"] is False
    assert dict(matplotlib.rcParams) == before
    assert "Chinese" not in caplog.text
    with common.style_for(["sales"]):  # no Chinese: nothing looked up, nothing changed
        assert dict(matplotlib.rcParams) == before

    monkeypatch.setattr(common, "CJK_FONTS", ("No Such Font",))
    with common.style_for(["收盘价(元)"]):
        assert dict(matplotlib.rcParams) == before
    assert "was rebuilt and has none" in caplog.text
    assert "apt-get install fonts-noto-cjk" in caplog.text


def test_plot_leaves_the_callers_backend_rcparams_and_warning_filters_as_they_were(
    tmp_path: Path, monkeypatch
):
    """A notebook user's process: api.plot of a run with Chinese column names (a CJK font
    found, so fonts are set while drawing) changes no backend, rcParams or warning filter."""
    frame = monthly_frame(60).rename(columns={"sales": "销量"})
    write_csv(tmp_path / "s.csv", frame)
    config = write_config(
        tmp_path / "c.yaml",
        data={"path": "s.csv", "time_column": "date", "features": ["销量"]},
        window={"input_steps": 6},
        model={"architecture": "lstm", "units": [2]},
        training={"epochs": 1, "final_fit": False},
    )
    run = api.train(config, runs_dir=tmp_path / "runs", quiet=True).run_dir
    monkeypatch.setattr(common, "CJK_FONTS", ("DejaVu Sans",))  # stands in for an installed one
    backend = matplotlib.get_backend()
    matplotlib.use("pdf")  # not the Agg a library call might switch to
    try:
        rc, filters = dict(matplotlib.rcParams), list(warnings.filters)
        paths = api.plot(run, output=tmp_path / "plots")
        assert matplotlib.get_backend() == "pdf"
        assert dict(matplotlib.rcParams) == rc
        assert warnings.filters == filters
    finally:
        matplotlib.use(backend)
    assert [path.name for path in paths] == ["test_forecast.png", "loss.png"]


def test_a_long_test_split_is_drawn_as_its_last_300_under_an_overview(tmp_path: Path, monkeypatch):
    """600 test origins: by default the detail panel holds the last 300 and an overview the
    whole split; `--last 50` draws 50 and no overview; `--last 0` all 600."""
    from typer.testing import CliRunner

    from forecast.cli.app import app

    t = np.arange(700)
    write_csv(tmp_path / "s.csv", pd.DataFrame({"value": np.sin(t / 7).round(4)}))
    config = write_config(
        tmp_path / "c.yaml",
        data={"path": "s.csv", "features": ["value"]},
        window={"input_steps": 8},
        split={"test": 600, "validation": 0},
        model={"architecture": "lstm", "units": [2]},
        training={"epochs": 1, "early_stopping": False, "final_fit": False},
        intervals=[],
    )
    run = api.train(config, runs_dir=tmp_path / "runs", quiet=True).run_dir
    real_savefig = Figure.savefig

    def drawn_with(*options: str) -> dict:
        axes = {}

        def keep(self, *args, **kwargs):
            if any("test split" in ax.get_title() for ax in self.axes):
                axes.update({ax.get_title(): ax for ax in self.axes})
            return real_savefig(self, *args, **kwargs)

        monkeypatch.setattr(Figure, "savefig", keep)
        result = CliRunner().invoke(app, ["plot", "--run", str(run), *options])
        monkeypatch.undo()
        assert result.exit_code == 0, result.output
        return axes

    def points(ax) -> int:
        return len(lines_by_label(ax)["actual"].get_xdata())

    default = drawn_with()
    (detail,) = [ax for title, ax in default.items() if "the last 300 of 600 origins" in title]
    (overview,) = [ax for title, ax in default.items() if "the whole test split" in title]
    assert points(detail) == 300 and len(overview.get_lines()[0].get_xdata()) == 600
    few = drawn_with("--last", "50")
    assert list(few) == ["value: test split, actual vs predicted, the last 50 of 600 origins"]
    assert points(next(iter(few.values()))) == 50
    every = drawn_with("--last", "0")
    assert points(every["value: test split, actual vs predicted"]) == 600
    bad = CliRunner().invoke(app, ["plot", "--run", str(run), "--last", "-1"])
    assert bad.exit_code == 2 and "--last must be >= 0" in bad.stderr


def test_plot_reads_a_forecast_written_in_latin_1(tmp_path: Path):
    """data.encoding latin-1: predict writes forecast.csv in it, and plot reads it back
    (auto-detection alone would take the bytes for GB18030 and find no target)."""
    frame = monthly_frame(80).rename(columns={"sales": "Température"})
    (tmp_path / "t.csv").write_bytes(frame.to_csv(index=False).encode("latin-1"))
    config = write_config(
        tmp_path / "c.yaml",
        data={"path": "t.csv", "time_column": "date", "features": ["Température"],
              "encoding": "latin-1"},
        window={"input_steps": 12},
        model={"architecture": "lstm", "units": [2]},
        training={"epochs": 1, "final_fit": False},
    )  # fmt: skip
    run = api.train(config, runs_dir=tmp_path / "runs", quiet=True).run_dir
    api.predict(run, tmp_path / "t.csv")
    assert (run / "forecast.csv").read_bytes().startswith("date,Température".encode("latin-1"))
    names = sorted(p.name for p in api.plot(run, output=tmp_path / "plots"))
    assert names == ["forecast.png", "loss.png", "test_forecast.png"]


# --------------------------------------------------------------------------- backtest figures


def test_the_backtest_figure_draws_each_fold_from_its_origin_with_its_intervals(
    tmp_path: Path, saved: list[Figure]
):
    write_csv(tmp_path / "s.csv", monthly_frame(60))
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            data={"path": "s.csv", "time_column": "date", "features": ["sales"]},
            window={"input_steps": 6, "horizon": 3},
        )
    )
    frame = monthly_frame(60).set_index("date")[["sales"]]
    origins = np.array([50, 53, 56])  # (K,) rows
    forecasts = frame["sales"].to_numpy()[origins[:, None] + [1, 2, 3]][..., None] + 1.0
    width = np.array([4.0, 8.0])[:, None, None, None]  # the 80% and 95% half widths
    bounds = (forecasts[None] - width, forecasts[None] + width)  # (levels, K, H, targets)
    assert_drawn_beyond_blank(
        lambda out: [
            backtest_figure(
                frame, config, origins, forecasts, out / "b.png", bounds, write=write_atomic
            )
        ],
        tmp_path,
    )
    ax = axes_titled(saved[:1], "sales: backtest, 3 fold(s) of 3 step(s)")  # not the blank
    lines = lines_by_label(ax)
    for k, origin in enumerate(origins):  # the origin's actual, then the fold's 3 steps
        drawn = lines[f"fold {k + 1}"].get_ydata()
        assert drawn[0] == frame["sales"].iloc[origin]
        np.testing.assert_allclose(drawn[1:], forecasts[k, :, 0])
    assert len(bands(ax)) == 2 * 3  # two levels per fold


def test_the_long_table_backtest_figure_draws_the_worst_and_best_series(
    tmp_path: Path, saved: list[Figure]
):
    dates = pd.date_range("2000-01-01", periods=40, freq="QS").strftime("%Y-%m-%d")
    t = np.arange(40)
    ids = [f"s{i}" for i in range(8)]
    long = pd.concat(
        pd.DataFrame({"store": sid, "date": dates, "sales": 10 * i + np.sin(t)})
        for i, sid in enumerate(ids)
    )
    write_csv(tmp_path / "long.csv", long)
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            data={
                "path": "long.csv",
                "id_column": "store",
                "time_column": "date",
                "features": ["sales"],
            },
            window={"input_steps": 4, "horizon": 2},
        )  # fmt: skip
    )
    panel = read_panel(config.data)
    per_series = {
        sid: {"model": {"mase": 0.5 + i / 10}, "baselines": {"seasonal_naive": {"mase": 1.0}}}
        for i, sid in enumerate(ids)
    }
    backs = [5, 3]  # rows from each series' end to its fold's origin
    forecasts = [{sid: np.full((2, 1), 100.0 + f) for sid in ids} for f in range(2)]
    assert_drawn_beyond_blank(
        lambda out: [panel_backtest_figure(
            panel, config, {"per_series": per_series}, forecasts, backs, out / "b.png",
            write=write_atomic,
        )],
        tmp_path,
    )  # fmt: skip
    fig = saved[0]  # saved[1]: the blank one
    titled = [ax.get_title().split(":")[0] for ax in fig.axes if ax.get_title()]
    worst = ["s7 (worst 1)", "s6 (worst 2)", "s5 (worst 3)"]
    assert titled == [*worst, "s0 (best 1)", "s1 (best 2)", "s2 (best 3)"]
    for ax in fig.axes:
        lines = lines_by_label(ax)
        assert len(lines["actual"].get_xdata()) == 36  # from 30 rows before the first origin
        np.testing.assert_allclose(lines["fold 1"].get_ydata()[1:], [100.0, 100.0])
        np.testing.assert_allclose(lines["fold 2"].get_ydata()[1:], [101.0, 101.0])


# --------------------------------------------------------------------------- long tables


def test_a_long_tables_run_draws_its_series_and_their_mase(tmp_path: Path, saved: list[Figure]):
    dates = pd.date_range("2000-01-01", periods=36, freq="QS").strftime("%Y-%m-%d")
    t, rng = np.arange(36), np.random.default_rng(0)
    ids = [f"s{i}" for i in range(7)]
    long = pd.concat(
        pd.DataFrame({"store": sid, "date": dates,
                      "sales": 10 * (i + 1) + 2 * np.sin(t * (1 + i / 7)) + rng.normal(0, 0.3, 36)})
        for i, sid in enumerate(ids)
    )  # fmt: skip
    write_csv(tmp_path / "long.csv", long)
    config = write_config(
        tmp_path / "c.yaml",
        data={"path": "long.csv", "id_column": "store", "time_column": "date",
              "features": ["sales"]},
        window={"input_steps": 4, "horizon": 2},
        split={"test": 4, "validation": 3},
        model={"architecture": "lstm", "units": [2]},
        training={"epochs": 3, "early_stopping": False, "final_fit": False},
    )  # fmt: skip
    run = api.train(config, runs_dir=tmp_path / "runs", quiet=True).run_dir
    api.predict(run, tmp_path / "long.csv")
    paths = assert_drawn_beyond_blank(lambda out: api.plot(run, output=out), tmp_path)
    names = ["test_forecast.png", "series_mase.png", "loss.png", "forecast.png"]
    assert [p.name for p in paths] == names
    test_fig, mase_fig, _, future_fig = saved[:4]  # not the blank ones
    shown = [ax for ax in test_fig.axes if ax.get_title()]
    assert len(shown) == 6  # of 7 series: the worst 3 and the best 3
    for ax in shown:
        lines = lines_by_label(ax)
        assert len(lines["actual"].get_xdata()) == 4  # every test row
        assert len(lines["predicted, step 1"].get_xdata()) == 3  # 4 rows, 2 steps: 3 origins
        assert len(bands(ax)) == 2
    scatter = mase_fig.axes[0]
    assert len(scatter.collections[0].get_offsets()) == 7  # one dot per series
    assert sum(patch.get_height() for patch in mase_fig.axes[1].patches) == 7
    assert len([ax for ax in future_fig.axes if ax.get_title()]) == 6
