"""Box plots of listening-test ratings (matplotlib, Agg canvas; no pyplot global state)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from mixdown.audio import atomic_path
from mixdown.errors import MixdownError
from mixdown.listening.statistics import Summary
from mixdown.listening.table import RatingsTable

ROLE_COLOURS = {"reference": "#9aa5b1", "test": "#4c78a8", "anchor": "#e45756"}
SCALE_LABELS = ("Bad", "Poor", "Fair", "Good", "Excellent")
"""The MUSHRA continuous quality scale, one label per 20 points from 0."""


def plot_ratings(table: RatingsTable, summaries: Mapping[str, Summary], roles: Mapping[str, str], title: str,
                 path: str | os.PathLike) -> None:
    """Write a PNG box plot of each condition's ratings with its mean and confidence interval.

    Boxes span the quartiles, whiskers 1.5 IQR, dots are outliers; the black diamond and
    bar are the mean and its confidence interval.

    Args:
        table: The ratings to plot (one box per condition).
        summaries: ``{condition: summary}`` of the same ratings.
        roles: ``{condition: role}``; boxes are coloured by role.
        title: Plot title.
        path: PNG file, written atomically.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
    except ImportError:
        raise MixdownError("plots need matplotlib: pip install 'mixdown[eval]'") from None
    conditions = table.conditions
    data = [column[~np.isnan(column)] for column in (table.column(name) for name in conditions)]
    figure = Figure(figsize=(max(4.0, 1.1 * len(conditions) + 1.5), 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = np.arange(1, len(conditions) + 1)
    shown = [values if len(values) else np.array([np.nan]) for values in data]
    boxes = axes.boxplot(shown, positions=positions, widths=0.55, patch_artist=True,
                         medianprops={"color": "black"}, flierprops={"markersize": 3})
    for box, name in zip(boxes["boxes"], conditions):
        box.set_facecolor(ROLE_COLOURS[roles[name]])
        box.set_alpha(0.8)
    means = np.array([summaries[name].mean for name in conditions])
    low = np.array([summaries[name].ci_low for name in conditions])
    high = np.array([summaries[name].ci_high for name in conditions])
    error = np.nan_to_num(np.vstack([means - low, high - means]))
    axes.errorbar(positions + 0.38, means, yerr=error, fmt="D", color="black", markersize=4, capsize=3)
    axes.set_xticks(positions, [f"{name}\n(n={len(values)})" for name, values in zip(conditions, data)],
                    fontsize=8)
    axes.set_ylim(-2, 102)
    axes.set_yticks(np.arange(0, 101, 20))
    axes.grid(axis="y", alpha=0.4)
    axes.set_ylabel("rating")
    for i, label in enumerate(SCALE_LABELS):
        axes.text(1.01, (20 * i + 10) / 104 + 2 / 104, label, transform=axes.transAxes, fontsize=7,
                  va="center", color="#555555")
    axes.set_title(title, fontsize=10)
    used = [role for role in ROLE_COLOURS if role in {roles[name] for name in conditions}]
    handles = [Patch(color=ROLE_COLOURS[role]) for role in used]
    handles.append(Line2D([], [], marker="D", markersize=4, color="black", linestyle="none"))
    figure.legend(handles, [*used, "mean and confidence interval"], fontsize=7, ncols=len(handles),
                  loc="outside lower center", frameon=False)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
