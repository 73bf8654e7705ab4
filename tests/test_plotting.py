"""Figures are written whole or not at all, and never left open."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from forecast import api
from forecast.runs import read


@pytest.fixture
def run_dir(tiny_config: Path) -> Path:
    result = api.train(
        tiny_config,
        runs_dir=tiny_config.parent / "runs",
        quiet=True,
        overrides=["training.epochs=1"],
    )
    return result.run_dir


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
    assert plt.get_fignums() == []  # the figure was closed all the same


def test_an_error_while_drawing_closes_the_figure(run_dir: Path, monkeypatch, tmp_path: Path):
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    def broken_legend(self, *args, **kwargs):
        raise ValueError("bad legend")

    monkeypatch.setattr(Axes, "legend", broken_legend)
    with pytest.raises(ValueError, match="bad legend"):
        api.plot(run_dir, output=tmp_path / "plots")
    assert plt.get_fignums() == []
    assert list((tmp_path / "plots").iterdir()) == []


def test_pngs_are_real_images(run_dir: Path):
    for path in api.plot(run_dir):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 5_000


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG header."""
    head = path.read_bytes()[:24]
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_every_png_is_at_least_1200_by_600(run_dir: Path, tmp_path: Path):
    monthly = run_dir.parent.parent / "sales.csv"
    api.predict(run_dir, monthly)
    paths = api.plot(run_dir, output=tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["forecast.png", "loss.png", "test_forecast.png"]
    for path in paths:
        width, height = png_size(path)
        assert width >= 1200 and height >= 600, (path.name, width, height)


def test_the_actual_line_covers_every_test_row_and_one_origin_is_drawn(tmp_path: Path, monkeypatch):
    """Multi-step: the actual line reaches the last test row (not horizon - 1 rows short);
    a single test origin is drawn with markers; the loss axis says what units it is in."""
    import matplotlib.pyplot as plt

    from forecast import plots as plotting
    from tests.conftest import monthly_frame, write_config, write_csv

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
    drawn = {}
    real_close = plt.close

    def keep(fig=None):  # read the lines before the figure goes
        for ax in fig.axes:
            drawn[ax.get_title() or ax.get_ylabel()] = ax
        return real_close(fig)

    monkeypatch.setattr(plt, "close", keep)
    (tmp_path / "out").mkdir()
    plotting.draw_run(run, read.open_run(run).config, tmp_path / "out")
    monkeypatch.undo()
    test_ax = drawn["sales: test split, actual vs predicted"]
    lines = {line.get_label(): line for line in test_ax.get_lines()}
    assert len(lines["actual"].get_xdata()) == 4  # one origin, 4 steps: every actual row
    assert len(lines["predicted, step 1"].get_xdata()) == 1
    assert lines["predicted, step 1"].get_marker() == "o"  # a dot, not an invisible line
    loss_ax = drawn["training and validation loss"]
    assert loss_ax.get_ylabel() == "mse loss (original units)"


def test_a_stale_font_list_is_rebuilt_before_warning(monkeypatch, caplog):
    """A CJK font installed after matplotlib cached its font list is found by rebuilding the
    list; with none even then, the warning says what to install."""
    from types import SimpleNamespace

    from matplotlib import font_manager, rcParams

    from forecast import plots as plotting

    for key in ("font.sans-serif", "font.family", "axes.unicode_minus"):
        monkeypatch.setitem(rcParams, key, rcParams[key])
    stale = SimpleNamespace(ttflist=[SimpleNamespace(name="DejaVu Sans")])
    fresh = SimpleNamespace(ttflist=[*stale.ttflist, SimpleNamespace(name="Noto Sans CJK SC")])
    monkeypatch.setattr(font_manager, "fontManager", stale)
    rebuilt = []
    monkeypatch.setattr(
        font_manager, "_load_fontmanager", lambda try_read_cache: rebuilt.append(1) or fresh
    )
    plotting._use_fonts_for(["收盘价(元)"])
    assert rebuilt == [1] and rcParams["font.sans-serif"][0] == "Noto Sans CJK SC"
    assert "Chinese" not in caplog.text

    monkeypatch.setattr(font_manager, "fontManager", stale)
    monkeypatch.setattr(font_manager, "_load_fontmanager", lambda try_read_cache: stale)
    plotting._use_fonts_for(["收盘价(元)"])
    assert "was rebuilt and has none" in caplog.text
    assert "apt-get install fonts-noto-cjk" in caplog.text


def test_a_long_test_split_is_drawn_as_its_last_300_under_an_overview(tmp_path: Path, monkeypatch):
    """600 test origins: by default the detail panel holds the last 300 and an overview the
    whole split; `--last 50` draws 50 and no overview; `--last 0` all 600."""
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    from typer.testing import CliRunner

    from forecast.cli.app import app
    from tests.conftest import write_config, write_csv

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
    real_close = plt.close

    def drawn_with(*options: str) -> dict:
        axes = {}

        def keep(fig=None):
            if fig is not None and any("test split" in ax.get_title() for ax in fig.axes):
                axes.update({ax.get_title(): ax for ax in fig.axes})
            return real_close(fig)

        monkeypatch.setattr(plt, "close", keep)
        result = CliRunner().invoke(app, ["plot", "--run", str(run), *options])
        monkeypatch.undo()
        assert result.exit_code == 0, result.output
        return axes

    def points(ax) -> int:
        return len({line.get_label(): line for line in ax.get_lines()}["actual"].get_xdata())

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
    from tests.conftest import monthly_frame, write_config

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
