"""The analysis of a listening test: post-screening, then summaries and pairwise tests.

Anchors are summarised but left out of the pairwise tests: they calibrate the scale and
are not among the mixes compared, and every extra pair makes Holm's correction stricter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mixdown.listening.screening import ScreeningResult, screen_participants
from mixdown.listening.statistics import PairwiseTest, Summary, pairwise_wilcoxon, summarize
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
    """

    roles: Mapping[str, str]
    screening: tuple[ScreeningResult, ...]
    table: RatingsTable
    overall: Mapping[str, Summary]
    per_song: Mapping[str, Mapping[str, Summary]]
    pairwise: tuple[PairwiseTest, ...]
    confidence: float = CONFIDENCE

    @property
    def conditions(self) -> tuple[str, ...]:
        """Every condition, in table order."""
        return self.table.conditions

    @property
    def excluded(self) -> tuple[str, ...]:
        """Participants the screening excluded."""
        return tuple(result.participant_id for result in self.screening if result.excluded)


def analyse(table: RatingsTable, roles: Mapping[str, str], songs: tuple[str, ...] | None = None,
            confidence: float = CONFIDENCE) -> Analysis:
    """Screen participants, then summarise and compare the conditions.

    Args:
        table: Every rating.
        roles: ``{condition: role}``; exactly one condition has role ``"reference"``.
        songs: Songs in report order (default: the table's order).
        confidence: Coverage of the confidence intervals.

    Returns:
        The analysis.
    """
    reference = next(name for name, role in roles.items() if role == "reference")
    screening = tuple(screen_participants(table, reference))
    kept = table.select(participants={r.participant_id for r in screening if not r.excluded})
    songs = table.songs if songs is None else songs
    tested = [name for name in table.conditions if roles[name] != "anchor"]
    return Analysis(
        roles=dict(roles),
        screening=screening,
        table=kept,
        overall={name: summarize(kept.column(name), confidence) for name in kept.conditions},
        per_song={song: {name: summarize(kept.select(song=song).column(name), confidence)
                         for name in kept.conditions} for song in songs},
        pairwise=tuple(pairwise_wilcoxon(kept, tested)),
        confidence=confidence,
    )
