"""Per-participant randomisation of trial order and of the conditions within each trial.

Each participant's order is drawn from a generator seeded by the test's seed and a hash
of the participant ID (SHA-256, not Python's per-process salted ``hash``), so it is
reproducible from the seed and the ID alone: a server restart, or a re-analysis, gives
the same order.

`participant_trials` is a MUSHRA test's order (one trial per song, every condition in it);
`participant_plan` gives any test type's (`mixdown.listening.config.TEST_TYPES`).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Trial:
    """One trial as a participant sees it.

    Attributes:
        song_index: Index of the song in the manifest.
        condition_order: Manifest condition indices in on-screen order (slot ``k`` plays
            condition ``condition_order[k]``). MUSHRA: every condition once, the hidden
            reference and the anchors included; BS.1116 and ABX: the reference and one
            condition (A and B); AB: two conditions.
        x_slot: ABX only: the slot (0 for A, 1 for B) that X plays.
    """

    song_index: int
    condition_order: tuple[int, ...]
    x_slot: int | None = None


def participant_key(participant_id: str) -> int:
    """A stable 64-bit integer from a participant ID (case-insensitive, whitespace-trimmed)."""
    digest = hashlib.sha256(participant_id.strip().lower().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def participant_trials(num_songs: int, num_conditions: int, seed: int, participant_id: str) -> tuple[Trial, ...]:
    """A participant's trials: songs in random order, conditions shuffled within each.

    Args:
        num_songs: Songs in the test.
        num_conditions: Conditions per song.
        seed: The test's seed.
        participant_id: The participant.

    Returns:
        One `Trial` per song, in presentation order.
    """
    rng = np.random.default_rng([seed, participant_key(participant_id)])
    songs = rng.permutation(num_songs)
    return tuple(Trial(int(song), tuple(int(c) for c in rng.permutation(num_conditions))) for song in songs)


_TYPE_STREAMS = {"bs1116": 1, "ab": 2, "abx": 3}
"""A separate random stream per test type (a MUSHRA order keeps the seed it always had)."""


def participant_plan(test_type: str, num_songs: int, num_conditions: int, reference: int, seed: int,
                     participant_id: str, repeats: int = 1) -> tuple[Trial, ...]:
    """A participant's trials for any test type, in presentation order.

    * ``mushra``: `participant_trials` (one trial per song; ``repeats`` must be 1).
    * ``bs1116`` and ``abx``: one trial per song, condition other than the reference and
      repetition; A and B are the reference and the condition in random order, and for
      ABX X is A or B with equal probability.
    * ``ab``: one trial per song, pair of conditions and repetition, the pair in random order.

    Trials are shuffled across songs and conditions.

    Args:
        test_type: ``"mushra"``, ``"bs1116"``, ``"ab"`` or ``"abx"``.
        num_songs: Songs in the test.
        num_conditions: Conditions per song, the reference included.
        reference: Index of the reference condition.
        seed: The test's seed.
        participant_id: The participant.
        repeats: Presentations of each item.

    Returns:
        The trials.
    """
    if test_type == "mushra":
        if repeats != 1:
            raise ValueError("a MUSHRA test presents each song once (repeats must be 1)")
        return participant_trials(num_songs, num_conditions, seed, participant_id)
    if test_type not in _TYPE_STREAMS:
        raise ValueError(f"unknown test type {test_type!r}")
    rng = np.random.default_rng([seed, participant_key(participant_id), _TYPE_STREAMS[test_type]])
    if test_type == "ab":
        pairs = list(itertools.combinations(range(num_conditions), 2))
    else:
        pairs = [(reference, c) for c in range(num_conditions) if c != reference]
    items = [(song, pair) for song in range(num_songs) for pair in pairs] * repeats
    trials = []
    for index in rng.permutation(len(items)):
        song, pair = items[int(index)]
        order = tuple(pair[int(k)] for k in rng.permutation(2))
        x_slot = int(rng.integers(2)) if test_type == "abx" else None
        trials.append(Trial(song, order, x_slot))
    return tuple(trials)
