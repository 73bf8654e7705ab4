"""What every figure shares: a figure written whole as a PNG, fonts for Chinese labels, and the
small drawing helpers (time axes, lines, interval bands, forecast.csv read back).

No pyplot: a `matplotlib.figure.Figure` needs no backend, so nothing calls `matplotlib.use`,
and fonts and the missing-glyph warning filter are set only inside `style_for`'s block: a
notebook user's matplotlib settings are as they were after `api.plot`."""

from __future__ import annotations

import codecs
import contextlib
import io
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from forecast.config.schema import Config
from forecast.data.reading import file_encoding
from forecast.errors import RunError

log = logging.getLogger("forecast")


class FileWriter(Protocol):
    """Writes `path` whole or not at all: `write(tmp)` fills a temporary file (named with
    `suffix`) that is then renamed to `path` (the run files' `write_atomic`)."""

    def __call__(self, path: Path, write: Callable[[Path], Any], suffix: str = ...) -> None: ...


@contextlib.contextmanager
def saved_figure(
    path: Path, write: FileWriter, rows: int = 1, columns: int = 1, **subplots: Any
) -> Iterator[tuple[Figure, Any]]:
    """A figure of `rows` x `columns` axes (`figsize` for the figure, the rest for
    `Figure.subplots`); after the block it is laid out and written through `write`, so a
    Ctrl-C never leaves a truncated PNG under the final name. An error in the block writes
    nothing."""
    fig = Figure(figsize=subplots.pop("figsize"))
    axes = fig.subplots(rows, columns, **subplots)
    yield fig, axes
    fig.tight_layout()
    write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"), suffix=".png")


# --------------------------------------------------------------------------- fonts

# Fonts with Chinese glyphs, in order of preference; DejaVu Sans (matplotlib's default) has none.
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "AR PL UMing CN",
)
_CJK = re.compile(r"[\u3000-\u9fff\uf900-\ufaff\uff00-\uffef]")


@contextlib.contextmanager
def style_for(labels: list[str]) -> Iterator[None]:
    """Chinese column names (GB18030 files) need a CJK font: inside the block one installed
    is used and matplotlib's missing-glyph warning is silenced; after it, rcParams and the
    warning filters are as they were."""
    if not any(_CJK.search(label) for label in labels):
        yield
        return
    # matplotlib's stubs type rc keys as Literals; ours come from a dict built at run time
    with matplotlib.rc_context(_cjk_rc()), warnings.catch_warnings():  # type: ignore[arg-type]
        warnings.filterwarnings(
            "ignore", message="Glyph .* missing from font", category=UserWarning
        )
        yield


def _cjk_rc() -> dict[str, Any]:
    """The rcParams that put an installed CJK font first; none (and a warning) if none is."""
    found = _cjk_fonts()
    if not found:
        _add_fonts_on_disk()
        found = _cjk_fonts()
    if not found:
        log.warning(
            "no font with Chinese characters is installed (matplotlib's font list, cached in "
            "%s, was rebuilt and has none), so Chinese labels show as boxes; install one "
            "(Debian/Ubuntu: apt-get install fonts-noto-cjk) and run plot again",
            matplotlib.get_cachedir(),
        )
        return {}
    return {
        "font.sans-serif": [*found, *matplotlib.rcParams["font.sans-serif"]],
        "font.family": "sans-serif",
        "axes.unicode_minus": False,
    }


def _cjk_fonts() -> list[str]:
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return [name for name in CJK_FONTS if name in installed]


def _add_fonts_on_disk() -> None:
    """matplotlib lists fonts from a cache made before a font installed since: add the font
    files on disk that the list lacks."""
    manager = font_manager.fontManager
    listed = {font.fname for font in manager.ttflist}
    for path in font_manager.findSystemFonts():
        if path in listed:
            continue
        try:
            manager.addfont(path)
        except Exception as exc:  # as matplotlib's own scan: skip a file FreeType cannot read
            log.debug("font %s not added: %s", path, exc)


# --------------------------------------------------------------------------- drawing helpers


def as_times(values: pd.Series, config: Config) -> pd.Series:
    """Dates as datetimes (so the axis shows dates), step numbers as they are."""
    if config.data.time_column is None or pd.api.types.is_numeric_dtype(values):
        return values
    return pd.to_datetime(values)


def shade_bands(
    ax: Axes, x: Any, bands: list[tuple[str, Any, Any]], color: str, legend: bool = True
) -> None:
    """Shade prediction intervals, the widest level lightest: bands [(level, lo, hi)]."""
    ordered = sorted(bands, key=lambda band: -float(band[0]))
    for i, (level, lo, hi) in enumerate(ordered):
        ax.fill_between(
            x,
            np.asarray(lo, dtype=float),
            np.asarray(hi, dtype=float),
            color=color,
            alpha=0.15 + 0.15 * i,
            linewidth=0,
            label=f"{level}% interval" if legend else None,
        )


def figure_height(panels: int) -> float:
    """Inches: 3.6 per panel, at least 6 (every PNG at least 1200 x 600 px at 100 dpi)."""
    return max(6.0, 3.6 * panels)


def draw_line(ax: Axes, x: Any, y: Any, label: str, color: str, width: float) -> None:
    """A line, with markers where it has few points (one test origin draws a dot, not
    nothing)."""
    markers: dict[str, Any] = {"marker": "o", "markersize": 4} if len(x) <= 30 else {}
    ax.plot(x, y, color=color, linewidth=width, label=label, **markers)


def interval_levels(columns: Any, prefix: str) -> list[str]:
    """Interval levels present as `<prefix>lo_L` columns, as written."""
    return [c[len(prefix) + 3 :] for c in columns if c.startswith(f"{prefix}lo_")]


def cycle_colors() -> list[str]:
    """The colours matplotlib gives lines in turn (rcParams' `axes.prop_cycle`)."""
    return matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def read_forecast(path: Path, config: Config) -> pd.DataFrame:
    """forecast.csv, written in the input's encoding (or predict --encoding): the config's
    encoding first, then the detected one; the one whose header holds the targets."""
    raw = path.read_bytes()
    tried = [config.data.encoding] if config.data.encoding != "auto" else []
    for encoding in [*tried, file_encoding(raw), "utf-8", "gb18030"]:
        try:
            frame = pd.read_csv(io.StringIO(codecs.decode(raw, encoding)))
        except (UnicodeDecodeError, LookupError, ValueError):
            continue
        if any(t in frame.columns for t in config.data.targets):
            return frame
    raise RunError(
        f"{path}: holds none of the targets' columns in any encoding tried; run predict again"
    )
