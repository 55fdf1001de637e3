"""Post-screening of assessors as in ITU-R BS.1534-3 (section 4.1.2, "post-screening of assessors").

The Recommendation excludes an assessor from the aggregated responses

1. if they rate the **hidden reference** lower than a score of 90 for more than 15 % of
   the test items, or
2. if they rate the **mid-range anchor** higher than a score of 90 for more than 15 % of
   the test items.

Both comparisons are strict, as written: a reference rated exactly 90, or a mid anchor
rated exactly 90, does not count against the assessor, and exactly 15 % of the items is
tolerated (3 of 20 is kept, 4 of 20 excluded). "Test items" are the trials in which the
assessor rated the condition concerned. Rule 2 applies only to tests with a mid anchor
(an anchor configured with ``level: mid``, BS.1534-3's 7 kHz low-pass).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixdown.listening.table import RatingsTable

REFERENCE_THRESHOLD = 90.0
"""A hidden-reference rating below this counts against the assessor."""

MID_ANCHOR_THRESHOLD = 90.0
"""A mid-anchor rating above this counts against the assessor."""

MAX_FRACTION_BELOW = 0.15
"""Largest fraction of trials breaking a rule that is tolerated (for either rule)."""


@dataclass(frozen=True)
class ScreeningResult:
    """The screening of one participant.

    Attributes:
        participant_id: The participant.
        trials: Trials in which they rated the hidden reference.
        reference_below: Of those, trials with the reference rated below `REFERENCE_THRESHOLD`.
        excluded: Whether either rule excludes them.
        mid_anchor_trials: Trials in which they rated the mid anchor (0 without one).
        mid_anchor_above: Of those, trials with the mid anchor rated above `MID_ANCHOR_THRESHOLD`.
    """

    participant_id: str
    trials: int
    reference_below: int
    excluded: bool
    mid_anchor_trials: int = 0
    mid_anchor_above: int = 0

    @property
    def fraction_below(self) -> float:
        """``reference_below / trials`` (0 when they rated nothing)."""
        return self.reference_below / self.trials if self.trials else 0.0

    @property
    def fraction_mid_above(self) -> float:
        """``mid_anchor_above / mid_anchor_trials`` (0 without mid-anchor ratings)."""
        return self.mid_anchor_above / self.mid_anchor_trials if self.mid_anchor_trials else 0.0


def _more_than(count: int, total: int, max_fraction: float) -> bool:
    """``count / total > max_fraction``, tolerant of its binary rounding (3 of 20 is 15 %, not more)."""
    return count > max_fraction * total + 1e-9


def screen_participants(table: RatingsTable, reference: str, threshold: float = REFERENCE_THRESHOLD,
                        max_fraction: float = MAX_FRACTION_BELOW, mid_anchor: str | None = None,
                        mid_threshold: float = MID_ANCHOR_THRESHOLD) -> list[ScreeningResult]:
    """Apply BS.1534-3's post-screening rules to every participant of a table.

    Args:
        table: The ratings.
        reference: The hidden-reference condition.
        threshold: Reference ratings strictly below this count against the assessor.
        max_fraction: Excluded when more than this fraction of their trials count (either rule).
        mid_anchor: The mid-anchor condition, or None to apply the reference rule only.
        mid_threshold: Mid-anchor ratings strictly above this count against the assessor.

    Returns:
        One result per participant, in the table's order.
    """
    mask_of = {participant: np.array([p == participant for p, _ in table.trials], dtype=bool)
               for participant in table.participants}
    results = []
    for participant, mask in mask_of.items():
        mine = table.column(reference)[mask]
        mine = mine[~np.isnan(mine)]
        below = int(np.sum(mine < threshold))
        excluded = _more_than(below, len(mine), max_fraction)
        anchor_trials = anchor_above = 0
        if mid_anchor is not None:
            anchor = table.column(mid_anchor)[mask]
            anchor = anchor[~np.isnan(anchor)]
            anchor_trials, anchor_above = len(anchor), int(np.sum(anchor > mid_threshold))
            excluded = excluded or _more_than(anchor_above, anchor_trials, max_fraction)
        results.append(ScreeningResult(participant, len(mine), below, excluded, anchor_trials, anchor_above))
    return results
