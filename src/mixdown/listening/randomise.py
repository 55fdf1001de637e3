"""Per-participant randomisation of trial order and of the conditions within each trial.

Each participant's order is drawn from a generator seeded by the test's seed and a hash
of the participant ID (SHA-256, not Python's per-process salted ``hash``), so it is
reproducible from the seed and the ID alone: a server restart, or a re-analysis, gives
the same order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Trial:
    """One trial as a participant sees it.

    Attributes:
        song_index: Index of the song in the manifest.
        condition_order: Manifest condition indices in on-screen order (slot ``k`` plays
            condition ``condition_order[k]``); holds every condition once, the hidden
            reference and the anchors included.
    """

    song_index: int
    condition_order: tuple[int, ...]


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
