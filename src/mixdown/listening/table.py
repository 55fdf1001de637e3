"""Ratings as a matrix: one row per trial (participant, song), one column per condition."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RatingsTable:
    """Ratings on the 0-100 scale, missing ones NaN.

    Attributes:
        conditions: Column names.
        trials: ``(participant_id, song)`` of each row.
        values: The ratings.

    Shape:
        values: ``(trials, conditions)``.
    """

    conditions: tuple[str, ...]
    trials: tuple[tuple[str, str], ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.values.shape != (len(self.trials), len(self.conditions)):
            raise ValueError(f"values must have shape (trials, conditions) = "
                             f"({len(self.trials)}, {len(self.conditions)}), got {self.values.shape}")

    @classmethod
    def from_records(cls, records: Iterable[tuple[str, str, str, float]],
                     conditions: Iterable[str]) -> RatingsTable:
        """Build a table from ``(participant_id, song, condition, rating)`` tuples.

        Rows are in order of first appearance; ratings of unknown conditions raise
        ``ValueError``.
        """
        conditions = tuple(conditions)
        column = {name: i for i, name in enumerate(conditions)}
        rows: dict[tuple[str, str], np.ndarray] = {}
        for participant, song, condition, rating in records:
            if condition not in column:
                raise ValueError(f"rating of unknown condition {condition!r}")
            row = rows.setdefault((participant, song), np.full(len(conditions), np.nan))
            row[column[condition]] = rating
        values = np.array(list(rows.values()), dtype=np.float64).reshape(len(rows), len(conditions))
        return cls(conditions, tuple(rows), values)

    @property
    def participants(self) -> tuple[str, ...]:
        """Participant IDs in order of first appearance."""
        return tuple(dict.fromkeys(participant for participant, _ in self.trials))

    @property
    def songs(self) -> tuple[str, ...]:
        """Songs in order of first appearance."""
        return tuple(dict.fromkeys(song for _, song in self.trials))

    def column(self, condition: str) -> np.ndarray:
        """One condition's ratings, NaN where missing; shape ``(trials,)``."""
        return self.values[:, self.conditions.index(condition)]

    def select(self, participants: Collection[str] | None = None, song: str | None = None) -> RatingsTable:
        """The rows of some participants and/or one song."""
        keep = [(participants is None or p in participants) and (song is None or s == song)
                for p, s in self.trials]
        return RatingsTable(self.conditions, tuple(t for t, k in zip(self.trials, keep) if k),
                            self.values[np.array(keep, dtype=bool)].reshape(-1, len(self.conditions)))
