"""The markdown report of a listening test's results."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from mixdown.listening.analysis import Analysis
from mixdown.listening.manifest import Manifest
from mixdown.listening.screening import (
    MAX_FRACTION_BELOW,
    MID_ANCHOR_THRESHOLD,
    REFERENCE_THRESHOLD,
)
from mixdown.listening.statistics import Summary
from mixdown.listening.store import ParticipantRecord, TrialRecord

ALPHA = 0.05
"""Significance level the report marks Holm-adjusted p-values against."""


def render_report(analysis: Analysis, manifest: Manifest, participants: Sequence[ParticipantRecord],
                  trials: Sequence[TrialRecord], plots: Mapping[str, str]) -> str:
    """The report as markdown.

    Args:
        analysis: The analysis.
        manifest: The test.
        participants: Every registered participant.
        trials: Every submitted trial (for comments).
        plots: ``{"overall" or song name: PNG file name relative to the report}``; songs
            without kept ratings have none.

    Returns:
        Markdown text.
    """
    level = f"{analysis.confidence:.0%}"
    rated = analysis.screening
    kept = [r for r in rated if not r.excluded]
    mid = analysis.mid_anchor
    mid_rule = (f", or who rate the mid anchor `{mid}` above {MID_ANCHOR_THRESHOLD:g} in more than "
                f"{MAX_FRACTION_BELOW:.0%} of their trials" if mid else
                " (the mid-anchor rule needs an anchor with `level: mid`; this test has none)")
    lines = [
        f"# Listening test results: {manifest.name}",
        "",
        f"MUSHRA-style test (ITU-R BS.1534-3): {len(manifest.songs)} songs x {len(manifest.conditions)} "
        f"conditions, excerpts of {manifest.songs[0].duration_s:g} s loudness-matched to "
        f"{manifest.target_lufs:g} LUFS (BS.1770-4), hidden reference `{manifest.reference}`, anchors "
        + (", ".join(f"`{name}`" for name in manifest.conditions if manifest.roles[name] == "anchor") or "none")
        + f", randomisation seed {manifest.seed}.",
        "",
        "## Participants",
        "",
        f"{len(participants)} registered, {len(rated)} rated at least one trial, "
        f"{sum(p.finished_at is not None for p in participants)} finished. Post-screening (BS.1534-3): "
        f"participants who rate the hidden reference below {REFERENCE_THRESHOLD:g} in more than "
        f"{MAX_FRACTION_BELOW:.0%} of their trials{mid_rule} are excluded: {len(rated) - len(kept)} excluded, "
        f"{len(kept)} kept.",
        "",
    ]
    if rated:
        mid_header = [f"mid anchor > {MID_ANCHOR_THRESHOLD:g}"] if mid else []
        lines += _table(["participant", "trials", f"reference < {REFERENCE_THRESHOLD:g}", *mid_header, "kept"],
                        [[_cell(r.participant_id), str(r.trials), f"{r.reference_below} ({r.fraction_below:.0%})",
                          *([f"{r.mid_anchor_above} ({r.fraction_mid_above:.0%})"] if mid else []),
                          "no" if r.excluded else "yes"] for r in rated])
    if not kept:
        lines += ["No participant is left after screening, so there are no statistics.", ""]
        return "\n".join(lines)
    lines += ["## All songs", "", f"Mean, median and {level} confidence interval of the mean "
              "(Student t, clipped to the 0-100 scale) over every kept trial.", ""]
    lines += _summary_table(analysis.overall, analysis.roles, level)
    lines += [f"![ratings, all songs]({plots['overall']})", ""]
    lines += ["## Pairwise comparisons", "",
              f"Two-sided Wilcoxon signed-rank tests over trials rated by the same participant, "
              f"{len(analysis.pairwise)} pairs (anchors excluded), Holm-corrected as one family; "
              f"* marks p_Holm < {ALPHA:g}.", ""]
    lines += _table(["A", "B", "n", "median A - B", "W", "p", "p (Holm)", ""],
                    [[f"`{t.condition_a}`", f"`{t.condition_b}`", str(t.n), _number(t.median_difference),
                      _number(t.statistic), _p(t.p_value), _p(t.p_holm), "*" if t.p_holm < ALPHA else ""]
                     for t in analysis.pairwise])
    for song, summaries in analysis.per_song.items():
        lines += [f"## Song `{song}`", ""]
        lines += _summary_table(summaries, analysis.roles, level)
        if song in plots:
            lines += [f"![ratings, {song}]({plots[song]})", ""]
    comments = [(t.participant_id, f"song `{t.song}`", t.comment) for t in trials if t.comment.strip()]
    comments += [(p.participant_id, "closing", p.comment) for p in participants if p.comment.strip()]
    if comments:
        lines += ["## Comments", ""]
        lines += _table(["participant", "where", "comment"], [[_cell(a), b, _cell(c)] for a, b, c in comments])
    return "\n".join(lines)


def _summary_table(summaries: Mapping[str, Summary], roles: Mapping[str, str], level: str) -> list[str]:
    return _table(["condition", "role", "n", "mean", "median", f"{level} CI"],
                  [[f"`{name}`", roles[name], str(s.n), _number(s.mean), _number(s.median),
                    f"[{_number(s.ci_low)}, {_number(s.ci_high)}]"] for name, s in summaries.items()])


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _p(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3g}"


def _cell(text: str) -> str:
    """Free text made safe for one markdown table cell."""
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
