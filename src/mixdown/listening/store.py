"""Participants' answers in SQLite, committed at every trial.

Each call opens its own connection and commits before returning, so a closed browser
tab or a killed server loses nothing that was submitted, and the store can be used
from the server's worker threads. Participant IDs are unique ignoring case.

The server stores answers through the ``submit_*`` methods, which enforce the rules of a
test in the same transaction as the write: a participant answers their trials in the order
served, a submitted trial cannot change (sending the very same answer again is a no-op,
so a retried request is harmless), and nothing changes once they have finished.
`ResponseStore.save_trial` writes MUSHRA ratings without those rules (replacing earlier
ones), for tools and tests.

Tables: ``participants``, ``trials`` (one row per submitted trial, any test type, with its
comment), ``ratings`` (MUSHRA, 0-100), ``grades`` (BS.1116, 1.0-5.0), ``choices`` (AB and
ABX) and ``meta`` (the secret the server derives audio URLs from).
"""

from __future__ import annotations

import itertools
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Mapping
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
CREATE TABLE IF NOT EXISTS grades (
    participant_id TEXT NOT NULL COLLATE NOCASE REFERENCES participants (participant_id),
    trial_index INTEGER NOT NULL,
    song TEXT NOT NULL,
    condition TEXT NOT NULL,
    condition_slot INTEGER NOT NULL CHECK (condition_slot IN (0, 1)),
    reference_grade REAL NOT NULL CHECK (reference_grade BETWEEN 1 AND 5),
    condition_grade REAL NOT NULL CHECK (condition_grade BETWEEN 1 AND 5),
    PRIMARY KEY (participant_id, trial_index)
);
CREATE TABLE IF NOT EXISTS choices (
    participant_id TEXT NOT NULL COLLATE NOCASE REFERENCES participants (participant_id),
    trial_index INTEGER NOT NULL,
    song TEXT NOT NULL,
    condition_a TEXT NOT NULL,
    condition_b TEXT NOT NULL,
    choice INTEGER NOT NULL CHECK (choice IN (0, 1)),
    x_slot INTEGER CHECK (x_slot IN (0, 1)),
    PRIMARY KEY (participant_id, trial_index)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class DuplicateParticipantError(MixdownError):
    """A participant ID is already taken."""


class SubmissionRefused(MixdownError):
    """A trial submitted out of order, a change to a submitted trial, or any after finishing."""


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


@dataclass(frozen=True)
class GradeRecord:
    """One BS.1116 trial: grades (1.0-5.0) of a condition and of the hidden reference.

    Attributes:
        condition_slot: Where the condition was (0: A, 1: B); the hidden reference had the other.
    """

    participant_id: str
    trial_index: int
    song: str
    condition: str
    condition_slot: int
    reference_grade: float
    condition_grade: float

    @property
    def difference(self) -> float:
        """The difference grade, condition minus hidden reference (BS.1116-3: negative when heard as worse)."""
        return self.condition_grade - self.reference_grade


@dataclass(frozen=True)
class ChoiceRecord:
    """One AB or ABX trial.

    Attributes:
        condition_a: Played as A.
        condition_b: Played as B.
        choice: AB: the version preferred (0: A, 1: B). ABX: the answer to "X is A or B?".
        x_slot: ABX: what X was (0: A, 1: B); ``None`` for AB.
    """

    participant_id: str
    trial_index: int
    song: str
    condition_a: str
    condition_b: str
    choice: int
    x_slot: int | None

    @property
    def correct(self) -> bool | None:
        """ABX: whether the answer was right; ``None`` for AB."""
        return None if self.x_slot is None else self.choice == self.x_slot

    @property
    def chosen(self) -> str:
        """The condition chosen."""
        return self.condition_b if self.choice else self.condition_a


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
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('secret', ?)", (secrets.token_hex(32),))

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

    def finish(self, participant_id: str, comment: str) -> bool:
        """Mark a participant finished and store their closing comment.

        Returns:
            False (and nothing changes) if they had already finished: their answers and
            comment are final.
        """
        with self._connect() as conn:
            changed = conn.execute("UPDATE participants SET finished_at = ?, comment = ? "
                                   "WHERE participant_id = ? AND finished_at IS NULL",
                                   (_now(), comment, participant_id)).rowcount
        return changed > 0

    def secret(self) -> bytes:
        """The test's random secret (created with the store), from which the server derives
        participants' audio URLs and dither, so both survive a restart."""
        with self._connect() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
            if row is None:  # a store created before the secret existed
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('secret', ?)", (secrets.token_hex(32),))
                row = conn.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
        return bytes.fromhex(row[0])

    # -- submissions under the test's rules -------------------------------------------------

    def submit_ratings(self, participant_id: str, trial_index: int, song: str,
                       ratings: Mapping[str, tuple[int, float]], comment: str) -> bool:
        """Store a MUSHRA trial under the rules (see the module docstring).

        Args:
            ratings: ``{condition: (slot, rating 0-100)}``.

        Returns:
            True if stored, False if it repeats the stored answer exactly.

        Raises:
            SubmissionRefused: out of order, a change to a submitted trial, or after finishing.
        """
        wanted = {condition: (slot, float(rating)) for condition, (slot, rating) in ratings.items()}

        def stored(conn: sqlite3.Connection) -> dict:
            rows = conn.execute("SELECT condition, slot, rating FROM ratings WHERE participant_id = ? AND "
                                "trial_index = ?", (participant_id, trial_index))
            return {condition: (slot, rating) for condition, slot, rating in rows}

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT OR REPLACE INTO ratings VALUES (?, ?, ?, ?, ?, ?)",
                             [(participant_id, trial_index, song, condition, slot, rating)
                              for condition, (slot, rating) in wanted.items()])

        return self._submit(participant_id, trial_index, song, comment, wanted, stored, write)

    def submit_grades(self, participant_id: str, trial_index: int, song: str, condition: str, condition_slot: int,
                      reference_grade: float, condition_grade: float, comment: str) -> bool:
        """Store a BS.1116 trial under the rules; arguments as `GradeRecord`. Returns and raises as `submit_ratings`."""
        wanted = (condition, condition_slot, float(reference_grade), float(condition_grade))

        def stored(conn: sqlite3.Connection) -> tuple | None:
            row = conn.execute("SELECT condition, condition_slot, reference_grade, condition_grade FROM grades "
                               "WHERE participant_id = ? AND trial_index = ?", (participant_id, trial_index)).fetchone()
            return None if row is None else tuple(row)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO grades VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (participant_id, trial_index, song, *wanted))

        return self._submit(participant_id, trial_index, song, comment, wanted, stored, write)

    def submit_choice(self, participant_id: str, trial_index: int, song: str, condition_a: str, condition_b: str,
                      choice: int, x_slot: int | None, comment: str) -> bool:
        """Store an AB or ABX trial under the rules; arguments as `ChoiceRecord`. Returns and raises as `submit_ratings`."""
        wanted = (condition_a, condition_b, choice, x_slot)

        def stored(conn: sqlite3.Connection) -> tuple | None:
            row = conn.execute("SELECT condition_a, condition_b, choice, x_slot FROM choices "
                               "WHERE participant_id = ? AND trial_index = ?", (participant_id, trial_index)).fetchone()
            return None if row is None else tuple(row)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO choices VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (participant_id, trial_index, song, *wanted))

        return self._submit(participant_id, trial_index, song, comment, wanted, stored, write)

    def _submit(self, participant_id: str, trial_index: int, song: str, comment: str, wanted: object,
                stored: Callable[[sqlite3.Connection], object], write: Callable[[sqlite3.Connection], None]) -> bool:
        """Check the rules and write, in one transaction that holds the write lock from the start."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT finished_at FROM participants WHERE participant_id = ?",
                               (participant_id,)).fetchone()
            if row is None:
                raise SubmissionRefused(f"unknown participant {participant_id!r}")
            if row[0] is not None:
                raise SubmissionRefused("you have finished the test: your answers are final")
            done = {index for (index,) in conn.execute("SELECT trial_index FROM trials WHERE participant_id = ?",
                                                       (participant_id,))}
            if trial_index in done:
                previous = conn.execute("SELECT comment FROM trials WHERE participant_id = ? AND trial_index = ?",
                                        (participant_id, trial_index)).fetchone()[0]
                if stored(conn) == wanted and previous == comment:
                    return False
                raise SubmissionRefused(f"trial {trial_index + 1} is already submitted; answers cannot change")
            expected = next(index for index in itertools.count() if index not in done)
            if trial_index != expected:
                raise SubmissionRefused(f"submit trial {expected + 1} first")
            conn.execute("INSERT INTO trials VALUES (?, ?, ?, ?, ?)", (participant_id, trial_index, song, comment,
                                                                       _now()))
            write(conn)
        return True

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

    def grades(self) -> list[GradeRecord]:
        """Every BS.1116 trial."""
        with self._connect() as conn:
            rows = conn.execute("SELECT participant_id, trial_index, song, condition, condition_slot, "
                                "reference_grade, condition_grade FROM grades "
                                "ORDER BY participant_id, trial_index").fetchall()
        return [GradeRecord(*row) for row in rows]

    def choices(self) -> list[ChoiceRecord]:
        """Every AB or ABX trial."""
        with self._connect() as conn:
            rows = conn.execute("SELECT participant_id, trial_index, song, condition_a, condition_b, choice, x_slot "
                                "FROM choices ORDER BY participant_id, trial_index").fetchall()
        return [ChoiceRecord(*row) for row in rows]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
