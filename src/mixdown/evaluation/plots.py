"""Figures of an evaluation (matplotlib on the Agg canvas; no pyplot global state).

Every figure has a fixed size in pixels (`grid_size_px`, `FIGURE_SIZE_PX`) and is written
atomically as PNG.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from mixdown.audio import atomic_path
from mixdown.errors import MixdownError

DPI = 100
PALETTE_COLORS = 256
"""Most colours of a written PNG (see `_save`)."""
FIGURE_SIZE_PX = (900, 640)
"""Width and height of the spectrum and panning figures."""
TARGET = "target"
"""Name of the reference curve in the song figures (drawn last, black and dashed, so it stays visible)."""
_TARGET_STYLE = {"color": "black", "linewidth": 1.6, "linestyle": "--", "zorder": 3}


def _figure(size_px: tuple[int, int], layout: str | None = "constrained"):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MixdownError("plots need matplotlib: pip install 'mixdown[eval]'") from None
    figure = Figure(figsize=(size_px[0] / DPI, size_px[1] / DPI), dpi=DPI, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str | os.PathLike) -> None:
    """Draw ``figure`` and write it as a palette PNG of at most `PALETTE_COLORS` colours.

    Line plots use few colours; an adaptive palette (median cut, no dithering) keeps them
    and makes files about a third of an RGBA PNG's size, small enough to commit with docs.
    """
    from PIL import Image  # a dependency of matplotlib

    figure.canvas.draw()
    image = Image.fromarray(np.asarray(figure.canvas.buffer_rgba())).convert("RGB")
    palette = image.quantize(colors=PALETTE_COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    with atomic_path(path) as tmp:
        palette.save(tmp, format="PNG", optimize=True)


def _target_last(curves: Mapping[str, tuple]) -> list[tuple[str, tuple]]:
    return [item for item in curves.items() if item[0] != TARGET] + [(TARGET, curves[TARGET])]


GRID_COLUMNS = 3
PANEL_SIZE_PX = (330, 250)
"""Width and height of one metric's panel in a box-plot grid."""


def grid_size_px(panels: int) -> tuple[int, int]:
    """Width and height of a box-plot grid of ``panels`` metrics (`GRID_COLUMNS` per row, a title band)."""
    columns = min(panels, GRID_COLUMNS)
    rows = -(-panels // GRID_COLUMNS)
    return columns * PANEL_SIZE_PX[0], rows * PANEL_SIZE_PX[1] + 40


def box_grid(panels: Mapping[str, Mapping[str, np.ndarray]], title: str, path: str | os.PathLike) -> None:
    """Write a PNG of box plots, one panel per metric and a box per method in each.

    Boxes span the quartiles with the median line, whiskers reach 1.5 IQR, dots are the
    songs beyond. Infinite values (SI-SDR of an exact copy) cannot be drawn; their count
    is noted under the method's name. The size is `grid_size_px` of the panel count.

    Args:
        panels: ``{metric label: {method: values over songs}}``, nan already left out.
        title: Figure title.
        path: PNG file.
    """
    width, height = grid_size_px(len(panels))
    figure = _figure((width, height), layout=None)  # constrained layout costs more than drawing here
    rows = -(-len(panels) // GRID_COLUMNS)
    columns = min(len(panels), GRID_COLUMNS)
    # in pixels: a 40 px title band; per panel row 25 px for its title and 55 px for the tick labels
    axes_height = (height - 40 - rows * 80) / rows
    figure.subplots_adjust(left=0.1 / columns, right=1 - 0.03 / columns, top=1 - 65 / height, bottom=55 / height,
                           wspace=0.3, hspace=80 / axes_height)
    figure.suptitle(title, y=1 - 8 / height, va="top")
    for index, (label, values) in enumerate(panels.items()):
        axes = figure.add_subplot(rows, columns, index + 1)
        finite = [v[np.isfinite(v)] for v in values.values()]
        axes.boxplot([v if v.size else np.array([np.nan]) for v in finite], positions=np.arange(1, len(values) + 1),
                     widths=0.55, medianprops={"color": "black"}, flierprops={"markersize": 2})
        ticks = [name + (f"\n({v.size - f.size} inf)" if v.size > f.size else "")
                 for name, v, f in zip(values, values.values(), finite)]
        axes.set_xticks(np.arange(1, len(values) + 1), ticks, fontsize=7, rotation=20)
        axes.tick_params(axis="y", labelsize=7)
        axes.set_title(label, fontsize=9)
        axes.grid(axis="y", alpha=0.3)
    _save(figure, path)


def spectrum_plot(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], song: str, path: str | os.PathLike) -> None:
    """Write the long-term average spectra of one song's mixes and their difference to the target.

    Args:
        curves: ``{name: (centres_hz, level_db)}`` including `TARGET`
            (`mixdown.evaluation.analysis.band_spectrum_db`).
        song: Its name, for the title.
        path: PNG file.
    """
    figure = _figure(FIGURE_SIZE_PX)
    top, bottom = figure.subplots(2, 1, sharex=True)
    target_hz, target_db = curves[TARGET]
    for name, (hz, db) in _target_last(curves):
        style = _TARGET_STYLE if name == TARGET else {"linewidth": 1.2}
        top.semilogx(hz, db, label=name, **style)
        with np.errstate(invalid="ignore"):
            bottom.semilogx(hz, db - target_db, label=name, **style)
    top.set_ylabel("band level dB")
    top.set_title(f"{song}: long-term average spectrum (mid, third octaves)")
    bottom.set_ylabel("minus target dB")
    bottom.set_xlabel("frequency Hz")
    for axes in (top, bottom):
        axes.grid(alpha=0.3, which="both")
    top.legend(fontsize=8, ncols=min(4, len(curves)))
    _save(figure, path)


def panning_plot(curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], song: str,
                 path: str | os.PathLike) -> None:
    """Write the panning index by band of one song's mixes: weighted mean and RMS.

    Args:
        curves: ``{name: (centres_hz, mean, rms)}`` including `TARGET`
            (`mixdown.evaluation.analysis.band_panning`).
        song: Its name, for the title.
        path: PNG file.
    """
    figure = _figure(FIGURE_SIZE_PX)
    top, bottom = figure.subplots(2, 1, sharex=True)
    for name, (hz, mean, rms) in _target_last(curves):
        style = _TARGET_STYLE if name == TARGET else {"linewidth": 1.2}
        top.semilogx(hz, mean, marker="o", markersize=3, label=name, **style)
        bottom.semilogx(hz, rms, marker="o", markersize=3, label=name, **style)
    top.axhline(0.0, color="grey", linewidth=0.8)
    top.set_ylim(-1.0, 1.0)
    bottom.set_ylim(0.0, 1.0)
    top.set_ylabel("mean panning index\n(-1 left, +1 right)")
    bottom.set_ylabel("RMS panning index\n(0 centre, 1 hard)")
    bottom.set_xlabel("octave band centre Hz")
    top.set_title(f"{song}: panning by octave band (energy-weighted)")
    for axes in (top, bottom):
        axes.grid(alpha=0.3, which="both")
    top.legend(fontsize=8, ncols=min(4, len(curves)))
    _save(figure, path)

