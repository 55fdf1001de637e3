"""Statistics of listening-test ratings: summaries with confidence intervals, pairwise
Wilcoxon signed-rank tests and Holm's multiple-comparison correction."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from mixdown.listening.table import RatingsTable


@dataclass(frozen=True)
class Summary:
    """Location and spread of one condition's ratings.

    Attributes:
        n: Number of ratings.
        mean: Mean rating.
        median: Median rating.
        ci_low: Lower end of the confidence interval of the mean (NaN when n < 2).
        ci_high: Upper end.
    """

    n: int
    mean: float
    median: float
    ci_low: float
    ci_high: float


MUSHRA_SCALE = (0.0, 100.0)
"""The MUSHRA rating scale, which confidence intervals of ratings are clipped to."""


def summarize(ratings: np.ndarray, confidence: float = 0.95,
              scale: tuple[float, float] | None = None) -> Summary:
    """Mean, median and Student-t confidence interval of the mean, optionally clipped to the scale.

    The interval is ``mean +- t(1 - (1 - confidence) / 2, n - 1) * s / sqrt(n)`` with
    ``s`` the sample standard deviation (``ddof=1``), the interval ITU-R BS.1534-3 asks
    results to report. Near the ends of a bounded scale that interval runs past it (mean 95,
    s 10, n 5: [82.6, 107.4]); with ``scale`` its ends are clipped to the scale ([82.6, 100]),
    since the mean of ratings on the scale cannot leave it. Clipping changes no interval
    that lies inside the scale.

    Args:
        ratings: Ratings; NaN entries are ignored.
        confidence: Coverage of the interval.
        scale: ``(lowest, highest)`` rating, e.g. `MUSHRA_SCALE`; None leaves the interval as is.

    Returns:
        The summary (all NaN when there are no ratings).

    Shape:
        ratings: ``(n,)``.
    """
    values = ratings[~np.isnan(ratings)]
    n = len(values)
    if n == 0:
        return Summary(0, np.nan, np.nan, np.nan, np.nan)
    mean = float(np.mean(values))
    if n < 2:
        return Summary(1, mean, float(np.median(values)), np.nan, np.nan)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * np.std(values, ddof=1) / np.sqrt(n))
    low, high = mean - half, mean + half
    if scale is not None:
        low, high = max(low, scale[0]), min(high, scale[1])
    return Summary(n, mean, float(np.median(values)), low, high)


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (Holm 1979, "A simple sequentially rejective
    multiple test procedure", Scand. J. Statist. 6).

    With the ``m`` p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted
    value of the ``i``-th is ``max_{j <= i} min(1, (m - j + 1) p_(j))``; rejecting where
    it is at most ``alpha`` controls the family-wise error rate at ``alpha``.

    Args:
        p_values: Unadjusted p-values.

    Returns:
        Adjusted p-values in the input order.

    Shape:
        p_values: ``(m,)``; returns ``(m,)``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


@dataclass(frozen=True)
class PairwiseTest:
    """A Wilcoxon signed-rank test of two conditions rated in the same trials.

    Attributes:
        condition_a: First condition.
        condition_b: Second condition.
        n: Trials where both were rated.
        median_difference: Median of ``a - b`` over those trials.
        statistic: Smaller of the positive- and negative-rank sums (NaN if every
            difference is zero).
        p_value: Two-sided p-value (1 if every difference is zero).
        p_holm: Holm-adjusted p-value over the family of all pairs tested together.
    """

    condition_a: str
    condition_b: str
    n: int
    median_difference: float
    statistic: float
    p_value: float
    p_holm: float


def pairwise_wilcoxon(table: RatingsTable, conditions: Sequence[str] | None = None) -> list[PairwiseTest]:
    """Two-sided Wilcoxon signed-rank tests of every pair of conditions, Holm-corrected.

    Each pair is paired by trial (participant, song); trials missing either rating are
    dropped, and zero differences are discarded (``scipy.stats.wilcoxon``'s default
    ``zero_method="wilcox"``; exact null distribution up to 50 differences).

    Args:
        table: The ratings.
        conditions: Conditions to compare (default: all of the table's).

    Returns:
        One test per pair, in the order of ``itertools.combinations(conditions, 2)``.
    """
    conditions = table.conditions if conditions is None else tuple(conditions)
    raw = []
    for a, b in itertools.combinations(conditions, 2):
        x, y = table.column(a), table.column(b)
        both = ~np.isnan(x) & ~np.isnan(y)
        difference = x[both] - y[both]
        if not np.any(difference):
            raw.append((a, b, int(both.sum()), 0.0 if both.any() else np.nan, np.nan, 1.0))
            continue
        result = stats.wilcoxon(difference)
        raw.append((a, b, int(both.sum()), float(np.median(difference)), float(result.statistic),
                    float(result.pvalue)))
    adjusted = holm([row[-1] for row in raw])
    return [PairwiseTest(*row, p_holm=float(p)) for row, p in zip(raw, adjusted)]


def binomial_p_value(successes: int, trials: int, alternative: str = "greater") -> float:
    """Exact binomial test against chance (p = 0.5).

    ``"greater"`` (ABX: more right answers than guessing gives) is ``P(K >= k)`` for
    ``K ~ Binomial(n, 1/2)``, i.e. ``sum_{i >= k} C(n, i) / 2^n``; ``"two-sided"`` (AB
    preferences) doubles the smaller tail, capped at 1 (``scipy.stats.binomtest``).

    Args:
        successes: ``k``.
        trials: ``n`` (1 for none: the p-value of no data is 1).
        alternative: ``"greater"`` or ``"two-sided"``.
    """
    if trials == 0:
        return 1.0
    return float(stats.binomtest(successes, trials, 0.5, alternative=alternative).pvalue)
