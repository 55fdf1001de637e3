"""Pieces both web apps need: upload checks, safe names and paths, a body-size limit, SQLite.

Nothing here imports FastAPI: the checks raise `RequestError` (a `MixdownError` carrying an
HTTP status) and each app turns it into a response, so the rules are testable without a
server.

* `probe_upload` accepts a file by its **content**: libsndfile must parse the bytes
  (``soundfile.info``) as WAV, FLAC or AIFF, mono or stereo, at least `MIN_UPLOAD_S` long.
  The file name's extension is ignored; the stored file gets the extension of the format
  found.
* `safe_stem_name` turns a client's file name into a stem name that cannot leave its
  folder (no separators, no leading dots, printable characters only).
* `resolve_within` resolves a user-given relative folder under an allowed root and refuses
  anything that lands outside it (``..``, absolute paths, symlinks pointing out).
* `BodySizeLimit` is ASGI middleware refusing request bodies over a limit with 413, before
  they are parsed, whether or not the client sent ``Content-Length``.
* `connect_sqlite` opens a database in WAL mode with foreign keys on.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import unicodedata
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import soundfile as sf

from mixdown.errors import MixdownError

MIN_UPLOAD_S = 0.1
"""Shortest audio file accepted, in seconds (as `mixdown.multitrack.MIN_STEM_DURATION_S`)."""

UPLOAD_FORMATS = {"WAV": ".wav", "WAVEX": ".wav", "FLAC": ".flac", "AIFF": ".aiff"}
"""Containers accepted (libsndfile's names) and the extension a stored file gets."""

_UNSAFE_CHARS = re.compile(r"[^\w .()+,=@-]+")
_SPACES = re.compile(r"\s+")
MAX_NAME_CHARS = 100


class RequestError(MixdownError):
    """A request the server refuses, with the HTTP status that says why.

    Raised by the checks here and by the apps' services; each app turns it into a JSON
    ``{"detail": message}`` response with ``status_code``.

    Attributes:
        status_code: 400 (bad request), 403 (forbidden), 404 (not found), 413 (too large)
            or 415 (not an accepted audio format).
    """

    def __init__(self, message: str, status_code: int = 400):
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class UploadedAudio:
    """What `probe_upload` found in an uploaded file.

    Attributes:
        format: libsndfile's container name, e.g. ``"WAV"``.
        extension: the extension to store it under, e.g. ``".wav"``.
        sample_rate: in Hz.
        channels: 1 or 2.
        frames: samples per channel.
    """

    format: str
    extension: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def probe_upload(file: BinaryIO, label: str) -> UploadedAudio:
    """Check an uploaded file by its content; the stream is left at position 0.

    Args:
        file: seekable binary stream holding the whole upload.
        label: the name to use in messages (the client's file name).

    Returns:
        The audio format found.

    Raises:
        RequestError: 415 if the bytes are not audio libsndfile reads or not WAV/FLAC/AIFF;
            400 if it has no frames, more than two channels or lasts under `MIN_UPLOAD_S`.
    """
    file.seek(0)
    try:
        info = sf.info(file)
    except (RuntimeError, TypeError, ValueError) as exc:  # LibsndfileError subclasses RuntimeError
        # libsndfile says "Error opening <stream repr>: <reason>"; keep the reason.
        reason = " ".join(str(exc).split()).rpartition(">: ")[2].rstrip(".") or type(exc).__name__
        raise RequestError(f"{label}: not an audio file ({reason})", 415) from None
    finally:
        file.seek(0)
    extension = UPLOAD_FORMATS.get(info.format)
    if extension is None:
        raise RequestError(f"{label}: {info.format} audio is not accepted; upload WAV, FLAC or AIFF", 415)
    if info.channels not in (1, 2):
        raise RequestError(f"{label}: {info.channels} channels; stems must be mono or stereo")
    if info.frames < MIN_UPLOAD_S * info.samplerate:
        raise RequestError(f"{label}: {info.frames} samples long; audio files must last at least {MIN_UPLOAD_S} s")
    return UploadedAudio(info.format, extension, int(info.samplerate), int(info.channels), int(info.frames))


def safe_stem_name(filename: str | None) -> str:
    """A stem name from a client's file name that is safe as a file name in any folder.

    The directory part (``/`` or ``\\``) and the extension are dropped, characters outside
    letters, digits and ``_ .()+,=@-`` become ``_``, leading dots and spaces are removed.

    Args:
        filename: as the client sent it, possibly ``None`` or a path.

    Returns:
        A non-empty name of at most `MAX_NAME_CHARS` characters.

    Raises:
        RequestError: 400 if nothing usable is left (e.g. ``"../.."``).
    """
    base = re.split(r"[/\\]", unicodedata.normalize("NFC", filename or ""))[-1]
    stem, dot, _ext = base.rpartition(".")
    name = stem if dot and stem else base
    name = _SPACES.sub(" ", _UNSAFE_CHARS.sub("_", name)).strip().lstrip(".").strip()[:MAX_NAME_CHARS].strip()
    if not name or set(name) <= {"_", "."}:
        raise RequestError(f"{filename!r}: not a usable file name")
    return name


def resolve_within(root: Path, relative: str) -> Path:
    """The folder ``relative`` names under ``root``, refusing anything outside it.

    Args:
        root: the allowed root folder (must exist).
        relative: a path relative to ``root`` as the user typed it (``""`` or ``"."`` is
            the root itself).

    Returns:
        The resolved (absolute, symlink-free) folder.

    Raises:
        RequestError: 403 if the path is absolute or resolves outside ``root`` (``..``,
            symlinks); 404 if it is not an existing folder.
    """
    if os.path.isabs(relative) or relative.startswith(("~", "\\")) or re.match(r"^[A-Za-z]:", relative):
        raise RequestError(f"{relative!r}: give a folder relative to the server's allowed root", 403)
    base = root.resolve()
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        raise RequestError(f"{relative!r} is outside the server's allowed root", 403)
    if not target.is_dir():
        raise RequestError(f"{relative!r}: no such folder under the server's allowed root", 404)
    return target


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware: HTTP request bodies over a limit get 413 with a JSON ``detail``.

    Args:
        app: the wrapped ASGI app.
        limit_for: ``(method, path) -> limit in bytes`` (e.g. larger for upload routes).
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int]):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_413(send, limit)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _send_413(send, limit)


def format_bytes(n: int) -> str:
    """``n`` bytes for a message: ``"200 MiB"``, ``"64 KiB"``, ``"12 bytes"``."""
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB" if n >= 2**10 else f"{n} bytes"


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request too large: the limit is {format_bytes(limit)}"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def connect_sqlite(path: Path) -> sqlite3.Connection:
    """Open ``path`` (created if missing) for one unit of work.

    WAL journaling lets readers and one writer work at once; ``busy_timeout`` makes a
    writer wait for another instead of failing; rows come back as `sqlite3.Row`. Use the
    connection as a context manager for a transaction and close it afterwards.
    """
    connection = sqlite3.connect(path, timeout=10.0, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection
