"""Figures are written whole or not at all, and never left open."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from forecast import api


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
