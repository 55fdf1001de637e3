"""Studio sessions on disk: an SQLite database plus one folder per session.

Layout under the data directory::

    studio.sqlite3              sessions and their edit history
    sessions/<id>/stems/        uploaded stems (folder sessions point elsewhere)
    sessions/<id>/reference.wav the optional reference mix

Every edit of a session's settings is a row of ``edits`` numbered from 0 (the method's
settings); ``sessions.cursor`` is the edit in effect. Undo and redo move the cursor; a new
edit drops the edits after the cursor first, as editors do. Because everything is written
before a request returns, a page reload or a server restart loses nothing.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mixdown.params import ConsoleParams
from mixdown.web.common import connect_sqlite

SCHEMA_VERSION = 1
SESSION_ID_CHARS = 16
"""Length of a session id (URL-safe base64 of 12 random bytes)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created_s REAL NOT NULL,
    method TEXT NOT NULL,
    source TEXT NOT NULL,
    stems_dir TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    warnings TEXT NOT NULL DEFAULT '[]',
    solo TEXT NOT NULL DEFAULT '[]',
    cursor INTEGER NOT NULL DEFAULT -1,
    model_params TEXT,
    sample_rate INTEGER,
    num_frames INTEGER,
    stems TEXT NOT NULL DEFAULT '[]',
    reference_lufs REAL
);
CREATE TABLE IF NOT EXISTS edits (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    params TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
"""


@dataclass
class SessionRecord:
    """One session as stored.

    Attributes:
        id: random URL-safe id.
        created_s: creation time (Unix seconds).
        method: the mixing method that proposed the settings.
        source: ``"upload"`` (stems copied into the data directory) or ``"folder"``.
        stems_dir: the folder of stems.
        status: ``"mixing"``, ``"ready"`` or ``"error"``.
        message: why the session failed, for ``"error"``.
        warnings: notes from loading the stems (resampling, padding, silence).
        solo: names of soloed channels (monitoring only: not part of the settings).
        cursor: index of the edit in effect, -1 before the first mix.
        edits: number of stored edits.
        model_params: the method's settings (the "model mix"), once mixed.
        sample_rate: of the mix, once mixed.
        num_frames: length of the mix, once mixed.
        stems: ``[{"name", "instrument", "channels"}]`` in track order, once mixed.
        reference_lufs: loudness of the reference mix, if one was given.
    """

    id: str
    created_s: float
    method: str
    source: str
    stems_dir: Path
    status: str
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    solo: list[str] = field(default_factory=list)
    cursor: int = -1
    edits: int = 0
    model_params: ConsoleParams | None = None
    sample_rate: int | None = None
    num_frames: int | None = None
    stems: list[dict] = field(default_factory=list)
    reference_lufs: float | None = None


class SessionStore:
    """Sessions in ``data_dir`` (created if missing).

    Each method opens its own short-lived SQLite connection, so a store may be shared by
    threads; SQLite serialises the writers.
    """

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        (self.data_dir / "sessions").mkdir(parents=True, exist_ok=True)
        self.db_path = self.data_dir / "studio.sqlite3"
        with self._connect() as db:
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One transaction on a fresh connection: committed on success, rolled back on error."""
        connection = connect_sqlite(self.db_path)
        try:
            with connection:
                yield connection
        finally:
            connection.close()

    def session_dir(self, session_id: str) -> Path:
        return self.data_dir / "sessions" / session_id

    def reference_path(self, session_id: str) -> Path:
        return self.session_dir(session_id) / "reference.wav"

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(12)

    def create(self, session_id: str, method: str, source: str, stems_dir: Path) -> SessionRecord:
        """Store a new session in state ``"mixing"``."""
        created = time.time()
        with self._connect() as db:
            db.execute("INSERT INTO sessions (id, created_s, method, source, stems_dir, status) VALUES (?, ?, ?, ?, ?, ?)",
                       (session_id, created, method, source, str(stems_dir), "mixing"))
        return SessionRecord(session_id, created, method, source, Path(stems_dir), "mixing")

    def get(self, session_id: str) -> SessionRecord | None:
        with self._connect() as db:
            row = db.execute("SELECT s.*, (SELECT COUNT(*) FROM edits e WHERE e.session_id = s.id) AS n_edits "
                             "FROM sessions s WHERE id = ?", (session_id,)).fetchone()
        return None if row is None else _record(row)

    def list(self) -> list[SessionRecord]:
        """Every session, newest first."""
        with self._connect() as db:
            rows = db.execute("SELECT s.*, (SELECT COUNT(*) FROM edits e WHERE e.session_id = s.id) AS n_edits "
                              "FROM sessions s ORDER BY created_s DESC").fetchall()
        return [_record(row) for row in rows]

    def set_status(self, session_id: str, status: str, message: str = "") -> None:
        with self._connect() as db:
            db.execute("UPDATE sessions SET status = ?, message = ? WHERE id = ?", (status, message, session_id))

    def finish_mix(self, session_id: str, params: ConsoleParams, stems: list[dict], num_frames: int,
                   warnings: list[str]) -> None:
        """Record a finished mix: the method's settings become edit 0 and the session is ready."""
        text = params.to_json()
        with self._connect() as db:
            db.execute("DELETE FROM edits WHERE session_id = ?", (session_id,))
            db.execute("INSERT INTO edits (session_id, seq, params) VALUES (?, 0, ?)", (session_id, text))
            db.execute("UPDATE sessions SET status = 'ready', message = '', model_params = ?, sample_rate = ?, "
                       "num_frames = ?, stems = ?, warnings = ?, cursor = 0 WHERE id = ?",
                       (text, params.sample_rate, num_frames, json.dumps(stems), json.dumps(warnings), session_id))

    def params_at(self, session_id: str, seq: int) -> ConsoleParams:
        """The settings of edit ``seq``."""
        with self._connect() as db:
            row = db.execute("SELECT params FROM edits WHERE session_id = ? AND seq = ?", (session_id, seq)).fetchone()
        if row is None:
            raise KeyError(f"session {session_id} has no edit {seq}")
        return ConsoleParams.from_json(row["params"])

    def push_edit(self, session_id: str, params: ConsoleParams, model: bool = False) -> int:
        """Add an edit after the cursor (dropping any redo history); returns the new cursor.

        With ``model`` the settings also become the session's model settings (a re-mix).
        """
        text = params.to_json()
        with self._connect() as db:
            cursor = db.execute("SELECT cursor FROM sessions WHERE id = ?", (session_id,)).fetchone()["cursor"] + 1
            db.execute("DELETE FROM edits WHERE session_id = ? AND seq >= ?", (session_id, cursor))
            db.execute("INSERT INTO edits (session_id, seq, params) VALUES (?, ?, ?)", (session_id, cursor, text))
            db.execute("UPDATE sessions SET cursor = ? WHERE id = ?", (cursor, session_id))
            if model:
                db.execute("UPDATE sessions SET model_params = ?, method = ? WHERE id = ?",
                           (text, params.method, session_id))
        return cursor

    def move_cursor(self, session_id: str, delta: int) -> bool:
        """Undo (``-1``) or redo (``+1``); returns False when there is nothing to move to."""
        with self._connect() as db:
            cursor = db.execute("SELECT cursor FROM sessions WHERE id = ?", (session_id,)).fetchone()["cursor"] + delta
            exists = db.execute("SELECT 1 FROM edits WHERE session_id = ? AND seq = ?", (session_id, cursor)).fetchone()
            if cursor < 0 or exists is None:
                return False
            db.execute("UPDATE sessions SET cursor = ? WHERE id = ?", (cursor, session_id))
        return True

    def set_solo(self, session_id: str, names: list[str]) -> None:
        with self._connect() as db:
            db.execute("UPDATE sessions SET solo = ? WHERE id = ?", (json.dumps(names), session_id))

    def set_reference_lufs(self, session_id: str, loudness_lufs: float | None) -> None:
        with self._connect() as db:
            db.execute("UPDATE sessions SET reference_lufs = ? WHERE id = ?", (loudness_lufs, session_id))

    def delete(self, session_id: str) -> None:
        """Forget a session and remove its folder (uploaded stems, reference); folder stems stay."""
        with self._connect() as db:
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        shutil.rmtree(self.session_dir(session_id), ignore_errors=True)


def _record(row: sqlite3.Row) -> SessionRecord:
    loads = json.loads
    return SessionRecord(
        id=row["id"], created_s=row["created_s"], method=row["method"], source=row["source"],
        stems_dir=Path(row["stems_dir"]), status=row["status"], message=row["message"],
        warnings=loads(row["warnings"]), solo=loads(row["solo"]), cursor=row["cursor"], edits=row["n_edits"],
        model_params=None if row["model_params"] is None else ConsoleParams.from_json(row["model_params"]),
        sample_rate=row["sample_rate"], num_frames=row["num_frames"], stems=loads(row["stems"]),
        reference_lufs=row["reference_lufs"])
