"""The analysis of a listening test: post-screening, then summaries and pairwise tests.

Anchors are summarised but left out of the pairwise tests: they calibrate the scale and
are not among the mixes compared, and every extra pair makes Holm's correction stricter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mixdown.listening.screening import ScreeningResult, screen_participants
from mixdown.listening.statistics import (
    MUSHRA_SCALE,
    PairwiseTest,
    Summary,
    pairwise_wilcoxon,
    summarize,
)
from mixdown.listening.table import RatingsTable

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Analysis:
    """Results of a test.

    Attributes:
        roles: ``{condition: "reference" | "test" | "anchor"}``.
        screening: The post-screening of every participant who rated something.
        table: Ratings of the participants kept after screening.
        overall: ``{condition: summary over every kept trial}``.
        per_song: ``{song: {condition: summary}}``.
        pairwise: Wilcoxon tests of every pair of non-anchor conditions, Holm-corrected
            as one family.
        confidence: Coverage of the confidence intervals.
        mid_anchor: The mid anchor the screening used, or None.
    """

    roles: Mapping[str, str]
    screening: tuple[ScreeningResult, ...]
    table: RatingsTable
    overall: Mapping[str, Summary]
    per_song: Mapping[str, Mapping[str, Summary]]
    pairwise: tuple[PairwiseTest, ...]
    confidence: float = CONFIDENCE
    mid_anchor: str | None = None

    @property
    def conditions(self) -> tuple[str, ...]:
        """Every condition, in table order."""
        return self.table.conditions

    @property
    def excluded(self) -> tuple[str, ...]:
        """Participants the screening excluded."""
        return tuple(result.participant_id for result in self.screening if result.excluded)

    def console_table(self) -> tuple[str, list[str], list[list[str]]]:
        """``(title, columns, rows)`` of the overall summaries, for the command line."""
        title = (f"all songs, {len(self.table.participants)} participants kept "
                 f"({len(self.excluded)} excluded by post-screening)")
        columns = ["condition", "role", "n", "mean", "median", f"{self.confidence:.0%} CI"]
        rows = [[name, self.roles[name], str(s.n), f"{s.mean:.1f}", f"{s.median:.1f}",
                 f"[{s.ci_low:.1f}, {s.ci_high:.1f}]"] for name, s in self.overall.items()]
        return title, columns, rows


def analyse(table: RatingsTable, roles: Mapping[str, str], songs: tuple[str, ...] | None = None,
            confidence: float = CONFIDENCE, mid_anchor: str | None = None) -> Analysis:
    """Screen participants, then summarise and compare the conditions.

    Confidence intervals are Student-t intervals of the mean clipped to the 0-100 scale
    (`mixdown.listening.statistics.summarize`).

    Args:
        table: Every rating.
        roles: ``{condition: role}``; exactly one condition has role ``"reference"``.
        songs: Songs in report order (default: the table's order).
        confidence: Coverage of the confidence intervals.
        mid_anchor: The mid anchor, screened on as BS.1534-3 says (None: the
            hidden-reference rule only).

    Returns:
        The analysis.
    """
    reference = next(name for name, role in roles.items() if role == "reference")
    screening = tuple(screen_participants(table, reference, mid_anchor=mid_anchor))
    kept = table.select(participants={r.participant_id for r in screening if not r.excluded})
    songs = table.songs if songs is None else songs
    tested = [name for name in table.conditions if roles[name] != "anchor"]
    return Analysis(
        roles=dict(roles),
        screening=screening,
        table=kept,
        overall={name: summarize(kept.column(name), confidence, MUSHRA_SCALE) for name in kept.conditions},
        per_song={song: {name: summarize(kept.select(song=song).column(name), confidence, MUSHRA_SCALE)
                         for name in kept.conditions} for song in songs},
        pairwise=tuple(pairwise_wilcoxon(kept, tested)),
        confidence=confidence,
        mid_anchor=mid_anchor,
    )
