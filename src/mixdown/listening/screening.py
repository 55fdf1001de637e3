"""Post-screening of assessors as in ITU-R BS.1534-3 ("post-screening of assessors").

An assessor is excluded if they rate the hidden reference below 90 for more than 15 %
of the test items (trials) they rated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixdown.listening.table import RatingsTable

REFERENCE_THRESHOLD = 90.0
"""A hidden-reference rating below this counts against the assessor."""

MAX_FRACTION_BELOW = 0.15
"""Largest fraction of trials with the reference under the threshold that is tolerated."""


@dataclass(frozen=True)
class ScreeningResult:
    """The screening of one participant.

    Attributes:
        participant_id: The participant.
        trials: Trials in which they rated the hidden reference.
        reference_below: Of those, trials with the reference rated below the threshold.
        excluded: Whether the rule excludes them.
    """

    participant_id: str
    trials: int
    reference_below: int
    excluded: bool

    @property
    def fraction_below(self) -> float:
        """``reference_below / trials`` (0 when they rated nothing)."""
        return self.reference_below / self.trials if self.trials else 0.0


def screen_participants(table: RatingsTable, reference: str, threshold: float = REFERENCE_THRESHOLD,
                        max_fraction: float = MAX_FRACTION_BELOW) -> list[ScreeningResult]:
    """Apply the hidden-reference rule to every participant of a table.

    Args:
        table: The ratings.
        reference: The hidden-reference condition.
        threshold: Reference ratings strictly below this count against the assessor.
        max_fraction: Excluded when more than this fraction of their trials count.

    Returns:
        One result per participant, in the table's order.
    """
    ratings = table.column(reference)
    results = []
    for participant in table.participants:
        mine = ratings[[p == participant for p, _ in table.trials]]
        mine = mine[~np.isnan(mine)]
        below = int(np.sum(mine < threshold))
        # below / n > max_fraction, tolerant of max_fraction's binary rounding (3 of 20 is 15 %, kept)
        excluded = below > max_fraction * len(mine) + 1e-9
        results.append(ScreeningResult(participant, len(mine), below, excluded))
    return results
