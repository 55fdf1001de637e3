"""Participants' answers in SQLite, committed at every trial.

Each call opens its own connection and commits before returning, so a closed browser
tab or a killed server loses nothing that was submitted, and the store can be used
from the server's worker threads. Participant IDs are unique ignoring case. Saving a
trial again replaces its ratings (idempotent: the same submission twice leaves the
same rows).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mixdown.errors import MixdownError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    participant_id TEXT PRIMARY KEY COLLATE NOCASE,
    token TEXT NOT NULL UNIQUE,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    comment TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS trials (
    participant_id TEXT NOT NULL COLLATE NOCASE REFERENCES participants (participant_id),
    trial_index INTEGER NOT NULL,
    song TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    submitted_at TEXT NOT NULL,
    PRIMARY KEY (participant_id, trial_index)
);
CREATE TABLE IF NOT EXISTS ratings (
    participant_id TEXT NOT NULL COLLATE NOCASE REFERENCES participants (participant_id),
    trial_index INTEGER NOT NULL,
    song TEXT NOT NULL,
    condition TEXT NOT NULL,
    slot INTEGER NOT NULL,
    rating REAL NOT NULL CHECK (rating BETWEEN 0 AND 100),
    PRIMARY KEY (participant_id, song, condition)
);
"""


class DuplicateParticipantError(MixdownError):
    """A participant ID is already taken."""


@dataclass(frozen=True)
class ParticipantRecord:
    """One participant.

    Attributes:
        participant_id: The ID they entered.
        token: Secret that their browser uses to resume.
        started_at: UTC time of registration (ISO 8601).
        finished_at: UTC time they finished, or ``None``.
        comment: Their closing comment.
    """

    participant_id: str
    token: str
    started_at: str
    finished_at: str | None
    comment: str


@dataclass(frozen=True)
class TrialRecord:
    """One submitted trial: where it was in the participant's order, and its comment."""

    participant_id: str
    trial_index: int
    song: str
    comment: str
    submitted_at: str


@dataclass(frozen=True)
class RatingRecord:
    """One rating on the 0-100 scale; ``slot`` is the condition's on-screen position."""

    participant_id: str
    trial_index: int
    song: str
    condition: str
    slot: int
    rating: float


class ResponseStore:
    """The SQLite file of a test's answers.

    Args:
        path: Database file.
        create: Create the file and its tables if missing; otherwise a missing file
            raises `MixdownError`.
    """

    def __init__(self, path: str | os.PathLike, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise MixdownError(f"{self.path}: no responses yet (run `mixdown listen serve` and collect some)")
        if create:
            with self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in one transaction: committed on success, rolled back on error, closed."""
        try:
            conn = sqlite3.connect(self.path, timeout=30.0)
        except sqlite3.Error as exc:
            raise MixdownError(f"{self.path}: cannot open the responses database ({exc})") from None
        with closing(conn):
            conn.execute("PRAGMA foreign_keys=ON")
            with conn:
                yield conn

    def add_participant(self, participant_id: str) -> ParticipantRecord:
        """Register a participant.

        Args:
            participant_id: Their ID; unique ignoring case.

        Returns:
            The new record, with a fresh secret token.

        Raises:
            DuplicateParticipantError: If the ID is taken.
        """
        record = ParticipantRecord(participant_id, secrets.token_urlsafe(18), _now(), None, "")
        try:
            with self._connect() as conn:
                conn.execute("INSERT INTO participants (participant_id, token, started_at) VALUES (?, ?, ?)",
                             (record.participant_id, record.token, record.started_at))
        except sqlite3.IntegrityError:
            raise DuplicateParticipantError(
                f"participant ID {participant_id!r} is already taken; if you started the test earlier, "
                "continue in the browser you used, otherwise choose another ID") from None
        return record

    def participant_by_token(self, token: str) -> ParticipantRecord | None:
        """The participant holding ``token``, or ``None``."""
        with self._connect() as conn:
            row = conn.execute("SELECT participant_id, token, started_at, finished_at, comment FROM participants "
                               "WHERE token = ?", (token,)).fetchone()
        return None if row is None else ParticipantRecord(*row)

    def submitted_trials(self, participant_id: str) -> set[int]:
        """Indices of the trials a participant has submitted."""
        with self._connect() as conn:
            rows = conn.execute("SELECT trial_index FROM trials WHERE participant_id = ?", (participant_id,))
            return {index for (index,) in rows}

    def save_trial(self, participant_id: str, trial_index: int, song: str,
                   ratings: Mapping[str, tuple[int, float]], comment: str) -> None:
        """Store one trial's ratings and comment in one transaction, replacing earlier ones.

        Args:
            participant_id: The participant.
            trial_index: Position of the trial in their order.
            song: The song rated.
            ratings: ``{condition: (slot, rating 0-100)}``.
            comment: Free text.
        """
        with self._connect() as conn:
            conn.execute("INSERT OR REPLACE INTO trials VALUES (?, ?, ?, ?, ?)",
                         (participant_id, trial_index, song, comment, _now()))
            conn.executemany("INSERT OR REPLACE INTO ratings VALUES (?, ?, ?, ?, ?, ?)",
                             [(participant_id, trial_index, song, condition, slot, rating)
                              for condition, (slot, rating) in ratings.items()])

    def finish(self, participant_id: str, comment: str) -> None:
        """Mark a participant finished and store their closing comment."""
        with self._connect() as conn:
            conn.execute("UPDATE participants SET finished_at = COALESCE(finished_at, ?), comment = ? "
                         "WHERE participant_id = ?", (_now(), comment, participant_id))

    def participants(self) -> list[ParticipantRecord]:
        """Every participant, in registration order."""
        with self._connect() as conn:
            rows = conn.execute("SELECT participant_id, token, started_at, finished_at, comment FROM participants "
                                "ORDER BY started_at, rowid").fetchall()
        return [ParticipantRecord(*row) for row in rows]

    def trials(self) -> list[TrialRecord]:
        """Every submitted trial."""
        with self._connect() as conn:
            rows = conn.execute("SELECT participant_id, trial_index, song, comment, submitted_at FROM trials "
                                "ORDER BY rowid").fetchall()
        return [TrialRecord(*row) for row in rows]

    def ratings(self) -> list[RatingRecord]:
        """Every rating."""
        with self._connect() as conn:
            rows = conn.execute("SELECT participant_id, trial_index, song, condition, slot, rating FROM ratings "
                                "ORDER BY participant_id, trial_index, slot").fetchall()
        return [RatingRecord(*row) for row in rows]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
