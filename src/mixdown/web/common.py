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
* `check_files_within` refuses files whose real path (symlinks resolved) leaves the root.
* `BodySizeLimit` is ASGI middleware refusing request bodies over a limit with 413: at once
  when ``Content-Length`` says so, otherwise as soon as the bytes received pass it; for
  uploads also as soon as the files received so far pass the per-file cap times their count.
* `parse_json` reads a JSON request body with limits (size, nesting depth, number of values)
  and finite numbers only, naming the field at fault.
* `RequestGuard` is ASGI middleware for state-changing requests: same origin (``Origin`` or
  ``Referer`` must name the ``Host``) and the route's content type, so that no other web
  page the user visits can drive a server on their machine.
* `allowed_hosts_for` and `LOOPBACK_HOSTS`: the ``Host`` header values a server accepts
  (Starlette's ``TrustedHostMiddleware`` checks them), against DNS rebinding.
* `bind_socket` binds a listening socket with ``SO_REUSEADDR`` (a restarted server gets its
  port back at once, even with the old process's connections still closing) and `serve`
  runs an app on it with uvicorn.
* `connect_sqlite` opens a database in WAL mode with foreign keys on.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import socket
import sqlite3
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

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


def check_files_within(root: Path, files: Iterable[Path]) -> None:
    """Refuse any of ``files`` whose real path (every symlink resolved) is outside ``root``.

    `resolve_within` checks a folder; a file inside it may still be a symlink pointing
    elsewhere, so whatever reads or serves the files checks them too.

    Raises:
        RequestError: 403 naming the first file that leaves ``root``.
    """
    base = root.resolve()
    for path in files:
        real = Path(path).resolve()
        if real != base and base not in real.parents:
            raise RequestError(f"{Path(path).name}: links outside the server's allowed root", 403)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyTooLarge(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


FILE_COUNT_HEADER = b"x-file-count"
"""Optional request header: how many files an upload holds, so that ``Content-Length`` can be
checked against the per-file cap times that count before any byte of the body is read."""

PART_OVERHEAD_BYTES = 64 * 2**10
"""Allowance per multipart part (its headers, the boundary) and for the form's other fields."""


class BodySizeLimit:
    """ASGI middleware: HTTP request bodies over a limit get 413 with a JSON ``detail``.

    The limit is checked against ``Content-Length`` before the body is read (413 at once)
    and against the bytes received as they arrive (chunked bodies, lying clients). For
    multipart uploads with a per-file cap, the request may hold at most the cap times the
    number of files: at once from the ``X-File-Count`` header when the client sends it, and
    while streaming by counting the file parts begun so far (each with a per-part allowance
    for headers, and one for the form's other fields), so an oversized file is refused once
    it passes the cap rather than after it has arrived.

    Args:
        app: the wrapped ASGI app.
        limit_for: ``(method, path) -> limit in bytes`` (e.g. larger for upload routes).
        file_limit_for: ``(method, path) -> per-file cap in bytes`` for upload routes,
            None elsewhere (and by default).
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int],
                 file_limit_for: Callable[[str, str], int | None] | None = None):
        self.app = app
        self.limit_for = limit_for
        self.file_limit_for = file_limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        limit = self.limit_for(method, path)
        too_large = f"request too large: the limit is {format_bytes(limit)}"
        headers = dict(scope.get("headers") or [])
        file_limit = self.file_limit_for(method, path) if self.file_limit_for is not None else None
        boundary = _multipart_boundary(headers.get(b"content-type", b"")) if file_limit else None
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_413(send, too_large)
            return
        per_file = f"request too large: the limit is {format_bytes(file_limit or 0)} per file"
        count = headers.get(FILE_COUNT_HEADER)
        counted = boundary and count is not None and count.isdigit() and declared is not None and declared.isdigit()
        if counted and int(declared) > max(1, int(count)) * (file_limit + PART_OVERHEAD_BYTES) + PART_OVERHEAD_BYTES:
            await _send_413(send, per_file)
            return
        received = 0
        parts = 0
        tail = b""
        current = "a file"
        started = False

        async def counting_receive() -> Message:
            nonlocal received, parts, tail, current
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > limit:
                    raise _BodyTooLarge(too_large)
                if boundary:
                    # count the file parts begun (their headers name a filename), across chunk edges:
                    # the window starts with the previous chunk's last bytes, whose matches were counted
                    window = tail + body
                    for match in _PART_FILENAME.finditer(window):
                        if match.end() > len(tail):
                            parts += 1
                            current = _display_name(match.group(1))
                    tail = window[-_TAIL_BYTES:]
                    if received > max(1, parts) * (file_limit + PART_OVERHEAD_BYTES) + PART_OVERHEAD_BYTES:
                        raise _BodyTooLarge(f"{current}: larger than the limit per file "
                                            f"({format_bytes(file_limit)})")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge as exc:
            if not started:
                await _send_413(send, exc.message)


_PART_FILENAME = re.compile(rb'filename="([^"\r\n]{1,255})"')
_TAIL_BYTES = 300
"""Bytes of the previous chunk kept to find a part header split across chunks (a name is at most 255)."""


def _display_name(raw: bytes) -> str:
    """A part's file name for a message: its last path component, printable."""
    name = re.split(r"[/\\]", raw.decode("utf-8", "replace"))[-1]
    return "".join(c if c.isprintable() else "?" for c in name)[:MAX_NAME_CHARS] or "a file"


def _multipart_boundary(content_type: bytes) -> bytes | None:
    """``b"--" + boundary`` of a ``multipart/form-data`` content type, else None."""
    media, _, params = content_type.partition(b";")
    if media.strip().lower() != b"multipart/form-data":
        return None
    for param in params.split(b";"):
        key, _, value = param.strip().partition(b"=")
        if key.strip().lower() == b"boundary" and value.strip().strip(b'"'):
            return b"--" + value.strip().strip(b'"')
    return None


def format_bytes(n: int) -> str:
    """``n`` bytes for a message: ``"200 MiB"``, ``"64 KiB"``, ``"12 bytes"``."""
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB" if n >= 2**10 else f"{n} bytes"


async def _send_413(send: Send, message: str) -> None:
    await _send_error(send, 413, message, close=True)


async def _send_error(send: Send, status: int, message: str, close: bool = False) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- JSON request bodies --------------------------------------------------------------------

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects accepted in a request body (settings need 4)."""

MAX_JSON_VALUES = 200_000
"""Most values (numbers, strings, containers...) in one request body."""

MAX_INT_DIGITS = 300
"""Longest integer literal accepted: anything longer is not a float either (1e308 is the largest)."""

_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


class _HugeInt(str):
    """An integer literal too long to be a number the server works with."""


def parse_json(body: bytes | str, *, max_depth: int = MAX_JSON_DEPTH, max_values: int = MAX_JSON_VALUES,
               status: int = 400) -> Any:
    """A JSON request body, checked before anything converts it.

    The nesting depth is measured on the text before parsing (so a 100000-deep array never
    reaches the recursive parser); after parsing, every number must be finite (``NaN``,
    ``Infinity``, ``1e400`` and integers of more than `MAX_INT_DIGITS` digits are refused)
    and the document may hold at most ``max_values`` values.

    Args:
        body: the request body (UTF-8).
        max_depth: deepest nesting of arrays and objects accepted.
        max_values: most values accepted.
        status: the HTTP status of the errors.

    Returns:
        The parsed document.

    Raises:
        RequestError: naming the field at fault (``channels[0].gain_db: ...``), or saying
            why the body is not JSON.
    """
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise RequestError("the request body is not valid JSON (not UTF-8 text)", status) from None
    _check_depth(text, max_depth, status)
    try:
        data = json.loads(text, parse_int=lambda s: _HugeInt(s) if len(s.lstrip("-")) > MAX_INT_DIGITS else int(s))
    except ValueError as exc:
        raise RequestError(f"the request body is not valid JSON ({exc})", status) from None
    _check_values(data, max_values, status)
    return data


def json_path(parts: Iterable[str | int]) -> str:
    """``["channels", 0, "gain_db"]`` -> ``"channels[0].gain_db"`` (``"the request body"`` for none)."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the request body"


def _check_depth(text: str, max_depth: int, status: int) -> None:
    """Refuse nesting deeper than ``max_depth``, naming where it happens."""
    frames: list[list[Any]] = []  # [opening bracket, current index or key]
    key_token: str | None = None
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        char = token[0]
        if char == '"':
            key_token = token if frames and frames[-1][0] == "{" else None
        elif char in "[{":
            if len(frames) >= max_depth:
                where = json_path(frame[1] for frame in frames if frame[1] is not None)
                raise RequestError(f"{where}: nested deeper than {max_depth} levels", status)
            frames.append([char, 0 if char == "[" else None])
        elif char in "]}":
            if frames:
                frames.pop()
        elif char == "," and frames:
            if frames[-1][0] == "[":
                frames[-1][1] += 1
            else:
                frames[-1][1] = None
        elif char == ":" and frames and frames[-1][0] == "{" and key_token is not None:
            try:
                frames[-1][1] = str(json.loads(key_token))
            except ValueError:
                frames[-1][1] = key_token.strip('"')
            key_token = None


def _check_values(data: Any, max_values: int, status: int) -> None:
    """Every number finite, at most ``max_values`` values (the depth is already bounded)."""
    count = 0
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        count += 1
        if count > max_values:
            raise RequestError(f"the request body holds more than {max_values} values", status)
        if isinstance(value, _HugeInt):
            shown = f"{value[:12]}...({len(value)} digits)"
            raise RequestError(f"{json_path(path)}: {shown} is too large a number", status)
        if isinstance(value, float) and not math.isfinite(value):
            raise RequestError(f"{json_path(path)}: not a finite number ({value})", status)
        if isinstance(value, dict):
            stack.extend((item, (*path, key)) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(value))


# -- same origin and content type ---------------------------------------------------------------

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON_TYPE = "application/json"
MULTIPART_TYPE = "multipart/form-data"
FORM_TYPE = "application/x-www-form-urlencoded"


class RequestGuard:
    """ASGI middleware: state-changing requests must come from the server's own pages.

    Browsers let any web page send "simple" cross-origin requests (a form POST, a
    ``text/plain`` fetch) to a server on the user's machine; such a request must not
    change anything. For every method but GET, HEAD and OPTIONS:

    * **same origin**: the ``Origin`` header (every browser sends it on such requests), or
      failing that the ``Referer``, must name the host of the ``Host`` header; ``Origin:
      null`` (sandboxed frames, ``file:`` pages) is refused. A request with neither header
      does not come from a web page (curl, scripts) and passes.
    * **content type**: a request with a body, or any content type, must use one of the
      route's types (``application/json`` for JSON routes, which a cross-origin page cannot
      send without the server's consent; forms for uploads, which the origin rule guards).

    Refusals are 403 (origin) or 415 (content type) with a JSON ``detail``.

    Args:
        app: the wrapped ASGI app.
        body_types: ``(method, path) -> accepted media types`` of the route.
    """

    def __init__(self, app: ASGIApp, body_types: Callable[[str, str], tuple[str, ...]]):
        self.app = app
        self.body_types = body_types

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {key.lower(): value.decode("latin-1") for key, value in scope.get("headers") or []}
        refusal = same_origin_refusal(headers.get(b"host"), headers.get(b"origin"), headers.get(b"referer"))
        if refusal:
            await _send_error(send, 403, refusal)
            return
        media = headers.get(b"content-type", "").partition(";")[0].strip().lower()
        declared = headers.get(b"content-length")
        has_body = (declared is not None and declared.strip() not in ("", "0")) or b"transfer-encoding" in headers
        accepted = self.body_types(scope["method"], scope["path"])
        if (media or has_body) and media not in accepted:
            shown = media or "no content type"
            await _send_error(send, 415, f"send the request body as {' or '.join(accepted)} (got {shown})")
            return
        await self.app(scope, receive, send)


def same_origin_refusal(host: str | None, origin: str | None, referer: str | None) -> str | None:
    """Why a state-changing request is refused as cross-origin, or None when it is not.

    Args:
        host: the ``Host`` header.
        origin: the ``Origin`` header (None when absent).
        referer: the ``Referer`` header (None when absent).
    """
    source, header = (origin, "Origin") if origin is not None else (referer, "Referer")
    if source is None:
        return None
    if source.strip().lower() == "null":
        return f"cross-origin request refused ({header}: null)"
    try:
        netloc = urlsplit(source.strip()).netloc.lower()
    except ValueError:
        netloc = ""
    if not host or netloc != host.strip().lower():
        return f"cross-origin request refused: {header} {source!r} is not this server ({host or 'no Host'})"
    return None


# -- hosts, sockets and serving -----------------------------------------------------------------

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
"""Host header values of a server that listens on the loopback interface."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts_for(bind_host: str, extra: Iterable[str] = ()) -> list[str] | None:
    """The ``Host`` header values a server bound to ``bind_host`` accepts (None: any).

    A loopback server accepts only loopback names, so that a web page whose DNS name
    rebinds to 127.0.0.1 cannot reach it. A server bound to one address accepts that
    address and the names in ``extra``; one bound to every interface (``0.0.0.0``, ``::``)
    accepts any host unless ``extra`` names them.

    Args:
        bind_host: the address the server listens on.
        extra: further host names (``--allowed-host``).
    """
    extra = [name.strip().lower() for name in extra if name.strip()]
    if is_loopback(bind_host):
        return LOOPBACK_HOSTS + [name for name in extra if name not in LOOPBACK_HOSTS]
    if bind_host in ("0.0.0.0", "::", ""):
        return extra or None
    names = [bind_host, f"[{bind_host}]"] if ":" in bind_host else [bind_host]
    return names + extra


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` with ``SO_REUSEADDR``.

    With the option a restarted server binds its port at once, even while connections of a
    killed predecessor are still closing (TIME_WAIT, FIN_WAIT); a port another process is
    listening on is still refused.

    Raises:
        MixdownError: one line naming the address, when it is unknown or cannot be bound.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        raise MixdownError(f"--host {host}: unknown address") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise MixdownError(f"cannot serve on {host}:{port} ({exc.strerror}); choose another --port") from None
    sock.set_inheritable(True)
    return sock


def serve(app: Any, sock: socket.socket) -> None:
    """Run ``app`` with uvicorn on ``sock`` (from `bind_socket`) until interrupted."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


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
