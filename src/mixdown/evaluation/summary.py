"""Summaries of an evaluation: median and quartiles per method and metric.

Each metric of the results table (`mixdown.evaluation.results`) is summarised over songs
by its median and quartiles ``q25``, ``q75`` (the interquartile range is ``[q25, q75]``),
with nan values (a metric undefined for that song) left out. Signed differences (the
``diff_*`` feature differences and ``loudness_diff_lu``) are summarised by their absolute
values, as `mixdown.metrics` advises: a method that is too bright on one song and too
dull on the next is not right on average. SI-SDR can be ``+inf`` (an exact copy of the
reference), so quantiles are taken in the extended reals (`quantile`).

The same tables are written as CSV (`summary_csv`), markdown (`tables_markdown`) and
HTML (`mixdown.evaluation.html`); they come from `summary_tables`, so they agree.

`improvement_table` compares every method with the baselines (``mono``, ``random``) on
one metric, song by song: the relative improvement ``1 - mean(method) / mean(baseline)``
over the songs both have, and on how many of them the method is better.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mixdown.evaluation.results import AUDIO_METRICS, PARAM_METRICS, Row

ORACLE = "oracle"
"""The ground-truth settings rendered: the floor of every metric where songs have them."""


@dataclass(frozen=True)
class MetricSpec:
    """How one column of the results table is summarised and shown.

    Attributes:
        name: The column.
        label: How tables and plots name it.
        group: Which table it goes in: ``"audio"``, ``"features"``, ``"params"`` or ``"time"``.
        absolute: Summarise absolute values (for signed differences).
        higher_is_better: Better methods have larger values (else smaller); None for
            figures that are neither (timings).
    """

    name: str
    label: str
    group: str
    absolute: bool = False
    higher_is_better: bool | None = False


def _param_label(name: str) -> str:
    error = name.removeprefix("median_")
    return f"{error} error" if not error.endswith("log2") else f"{error.removesuffix('_log2')} error (log2)"


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("stereo_mrstft", "stereo MR-STFT (sum/diff, mean)", "audio"),
    MetricSpec("stereo_mrstft_matched", "loudness-matched stereo MR-STFT (sum/diff, mean)", "audio"),
    MetricSpec("mrstft", "MR-STFT (L/R pooled)", "audio"),
    MetricSpec("si_sdr_db", "SI-SDR dB (per channel, mean)", "audio", higher_is_better=True),
    MetricSpec("loudness_diff_lu", "loudness abs. diff LU (BS.1770, L+R)", "audio", absolute=True),
    *(MetricSpec(name, f"{name.removeprefix('diff_')} abs. diff", "features", absolute=True)
      for name in AUDIO_METRICS if name.startswith("diff_")),
    *(MetricSpec(name, _param_label(name), "params") for name in PARAM_METRICS),
    MetricSpec("predict_s", "predict s", "time", higher_is_better=None),
    MetricSpec("render_s", "render s", "time", higher_is_better=None),
)
"""Every summarised column, in table order."""

GROUP_TITLES = {
    "audio": "Audio distances to the target mix",
    "features": "Mix feature differences to the target (absolute)",
    "params": "Parameter errors (median over channels; songs with true settings only)",
    "time": "Wall time per song",
}


@dataclass(frozen=True)
class Summary:
    """One method's summary of one metric over songs.

    Attributes:
        method: The method.
        metric: The column (see `METRICS`).
        count: Songs with a value (nan left out).
        median: Median, nan when ``count`` is 0.
        q25: First quartile.
        q75: Third quartile.
    """

    method: str
    metric: str
    count: int
    median: float
    q25: float
    q75: float


def quantile(values: np.ndarray, q: float) -> float:
    """The ``q`` quantile of non-nan values with linear interpolation (numpy's default).

    Interpolation is done in the extended reals, where numpy gives nan: between a finite
    value and ``+inf`` any point past the finite one is ``+inf``.

    Args:
        values: 1-D, no nan; may hold ``+-inf``.
        q: In [0, 1].

    Returns:
        The quantile; nan for no values.
    """
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    if ordered.size == 0:
        return math.nan
    position = q * (ordered.size - 1)
    low = math.floor(position)
    fraction = position - low
    lo, hi = float(ordered[low]), float(ordered[min(low + 1, ordered.size - 1)])
    if fraction == 0.0 or lo == hi:
        return lo
    if math.isinf(lo) and math.isinf(hi):
        return math.nan
    if math.isinf(lo) or math.isinf(hi):
        return lo if math.isinf(lo) else hi
    return lo + fraction * (hi - lo)


def metric_values(rows: Sequence[Row], method: str, spec: MetricSpec) -> np.ndarray:
    """A method's values of one metric over its rows, absolute if ``spec.absolute``, nan dropped."""
    values = np.array([float(row[spec.name]) for row in rows if row["method"] == method], dtype=np.float64)
    values = values[~np.isnan(values)]
    return np.abs(values) if spec.absolute else values


def summarize(rows: Sequence[Row], methods: Sequence[str]) -> list[Summary]:
    """Median and quartiles of every metric of `METRICS` for each method.

    Args:
        rows: Results rows (`mixdown.evaluation.results`).
        methods: The methods to summarise, in order.

    Returns:
        One `Summary` per method and metric, method-major.
    """
    out = []
    for method in methods:
        for spec in METRICS:
            values = metric_values(rows, method, spec)
            out.append(Summary(method, spec.name, int(values.size), quantile(values, 0.5), quantile(values, 0.25),
                               quantile(values, 0.75)))
    return out


def summary_csv(summaries: Sequence[Summary]) -> str:
    """``method,metric,count,median,q25,q75`` lines (floats with ``repr``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "metric", "count", "median", "q25", "q75"])
    for s in summaries:
        writer.writerow([s.method, s.metric, s.count, repr(s.median), repr(s.q25), repr(s.q75)])
    return buffer.getvalue()


def format_value(value: float) -> str:
    """A number for a table: about three significant digits, no exponent for ordinary sizes."""
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    size = abs(value)
    if size >= 100.0:
        return f"{value:.0f}"
    if size >= 10.0:
        return f"{value:.1f}"
    if size >= 1.0:
        return f"{value:.2f}"
    if size >= 0.001 or size == 0.0:
        return f"{value:.3f}"
    return f"{value:.1e}"


@dataclass(frozen=True)
class Cell:
    """A table cell: its text and whether it is the best of its row."""

    text: str
    best: bool = False


@dataclass(frozen=True)
class Table:
    """A table of the report: a title, a header and rows of cells."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


def _best_methods(summaries: dict[str, Summary], spec: MetricSpec) -> set[str]:
    """Methods (the oracle excepted) with the best median of ``spec``."""
    if spec.higher_is_better is None:
        return set()
    medians = {m: s.median for m, s in summaries.items() if m != ORACLE and not math.isnan(s.median)}
    if not medians:
        return set()
    best = max(medians.values()) if spec.higher_is_better else min(medians.values())
    return {m for m, value in medians.items() if value == best}


def summary_tables(summaries: Sequence[Summary], methods: Sequence[str]) -> list[Table]:
    """One table per metric group: a row per metric, a column per method.

    Cells read ``median [q25, q75]``; the best median of a row (the oracle excepted) is
    marked. Groups where no method has a value (e.g. parameter errors of songs without
    true settings) are left out; so are rows without values.

    Args:
        summaries: From `summarize`.
        methods: Column order.

    Returns:
        The tables, in the order of `GROUP_TITLES`.
    """
    by_key = {(s.method, s.metric): s for s in summaries}
    tables = []
    for group, title in GROUP_TITLES.items():
        rows = []
        for spec in (spec for spec in METRICS if spec.group == group):
            cells = {m: by_key[(m, spec.name)] for m in methods}
            if not any(s.count for s in cells.values()):
                continue
            arrow = " (higher better)" if spec.higher_is_better else ""
            best = _best_methods(cells, spec)
            rows.append((Cell(spec.label + arrow),
                         *(Cell(f"{format_value(s.median)} [{format_value(s.q25)}, {format_value(s.q75)}]"
                                if s.count else "n/a", m in best) for m, s in cells.items())))
        if rows:
            tables.append(Table(title, ("metric", *methods), tuple(rows)))
    return tables


BASELINES = ("mono", "random")
"""Methods the others are compared with in `improvement_table`."""


def _per_song(rows: Sequence[Row], method: str, metric: str) -> dict[str, float]:
    values = {row["song"]: float(row[metric]) for row in rows if row["method"] == method}
    return {song: value for song, value in values.items() if math.isfinite(value)}


def relative_improvement(ours: Sequence[float], theirs: Sequence[float]) -> tuple[float, int]:
    """``(1 - mean(ours) / mean(theirs), how many of ours are lower)`` over paired values (same songs, same order)."""
    if len(ours) != len(theirs) or not ours:
        raise ValueError(f"need equally many paired values, got {len(ours)} and {len(theirs)}")
    return 1.0 - sum(ours) / sum(theirs), sum(a < b for a, b in zip(ours, theirs, strict=True))


def improvement_table(rows: Sequence[Row], methods: Sequence[str], metric: str = "stereo_mrstft",
                      baselines: Sequence[str] = BASELINES) -> Table | None:
    """Relative improvement of each method over each baseline on a lower-is-better metric.

    Cells read ``+52.0 % (29/30)``: ``1 - mean(method) / mean(baseline)`` over the songs
    where both have a finite value, and the songs where the method's value is lower.

    Args:
        rows: Results rows.
        methods: All methods of the evaluation; the baselines and the oracle get no row.
        metric: The column compared.
        baselines: The methods compared with, those of ``methods`` only.

    Returns:
        The table, or None when no baseline or no other method was evaluated.
    """
    present = [b for b in baselines if b in methods]
    others = [m for m in methods if m not in present and m != ORACLE]
    if not present or not others:
        return None
    label = next(spec.label for spec in METRICS if spec.name == metric)
    table_rows = []
    for method in others:
        ours = _per_song(rows, method, metric)
        cells = []
        for baseline in present:
            theirs = _per_song(rows, baseline, metric)
            songs = sorted(ours.keys() & theirs.keys())
            if not songs or sum(theirs[s] for s in songs) <= 0:
                cells.append(Cell("n/a"))
                continue
            gain, better = relative_improvement([ours[s] for s in songs], [theirs[s] for s in songs])
            cells.append(Cell(f"{100.0 * gain:+.1f} % ({better}/{len(songs)})"))
        table_rows.append((Cell(method), *cells))
    return Table(f"Improvement of the {label} over the baselines (1 - mean / baseline mean; songs better)",
                 ("method", *(f"vs {b}" for b in present)), tuple(table_rows))


def tables_markdown(tables: Sequence[Table]) -> str:
    """The tables as markdown (``###`` titles; best cells in bold)."""
    lines = []
    for table in tables:
        lines += [f"### {table.title}", "", "| " + " | ".join(table.header) + " |",
                  "|" + "---|" * len(table.header)]
        lines += ["| " + " | ".join(f"**{c.text}**" if c.best else c.text for c in row) + " |" for row in table.rows]
        lines.append("")
    return "\n".join(lines)
