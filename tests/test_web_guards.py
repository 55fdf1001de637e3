"""Both servers' request boundary (#17, #18): malformed JSON is a 4xx naming the field, never a 500;
state-changing requests need the page's origin and a JSON (or multipart) content type; uploads over
their cap get 413 before the body arrives; symlinks cannot lead a folder session outside --root; a
concurrent edit's reply reports its own edit; a restarted server gets its port back at once.

The JSON and origin rules are also checked against `mixdown.web.common` directly (known answers);
the body-size rules against the ASGI middleware with a counting ``receive`` and against a real
uvicorn server through a raw socket."""

from __future__ import annotations

import asyncio
import io
import json
import random
import socket
import threading
import time
import zipfile
from collections.abc import Iterator

import numpy as np
import pytest
import soundfile as sf
import uvicorn
from fastapi.testclient import TestClient

from mixdown.web.common import (
    BodySizeLimit,
    RequestError,
    allowed_hosts_for,
    bind_socket,
    parse_json,
    same_origin_refusal,
)
from mixdown.web.studio.app import create_app
from mixdown.web.studio.service import Studio, StudioConfig

SR = 44100


def _stem(seed: int, seconds: float = 1.0, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    envelope = np.exp(-((np.arange(n) % (SR // 4)) / (0.05 * SR)))
    return (0.1 * rng.standard_normal((channels, n)) * envelope).astype(np.float32)


def _wav(audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio.T, SR, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


STEMS = {"kick.wav": _stem(1), "snare.wav": _stem(2)}
FILES = [("stems", (name, _wav(audio), "audio/wav")) for name, audio in STEMS.items()]


def _wait(client: TestClient, session_id: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        state = client.get(f"/api/sessions/{session_id}").json()
        if state["status"] != "mixing":
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.05)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Iterator[tuple[TestClient, dict]]:
    """One mixed studio session (mono), shared by the request tests."""
    config = StudioConfig(data_dir=tmp_path_factory.mktemp("guards") / "data")
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        response = client.post("/api/sessions", data={"method": "mono"}, files=FILES)
        assert response.status_code == 201, response.text
        state = _wait(client, response.json()["id"])
        assert state["status"] == "ready"
        yield client, state


# ------------------------------------------------------------------ JSON at the boundary (known answers)


@pytest.mark.parametrize("body, message", [
    (b"[" * 100_000 + b"]" * 100_000, "[0][0][0]"),
    (b'{"channels": [{"eq": [' + b"[" * 40 + b"]" * 40 + b"]}]}", "channels[0].eq[0]"),
    (b'{"master": {"gain_db": 1e400}}', "master.gain_db: not a finite number (inf)"),
    (b'{"master": {"gain_db": -1e400}}', "master.gain_db: not a finite number (-inf)"),
    (b'{"a": [1, NaN]}', "a[1]: not a finite number (nan)"),
    (b'{"a": Infinity}', "a: not a finite number (inf)"),
    (b'{"n": 1' + b"0" * 400 + b"}", "n: 100000000000...(401 digits) is too large a number"),
    (b'{"a": 1', "not valid JSON"),
    (b"\xff\xfe", "not valid JSON (not UTF-8 text)"),
])
def test_parse_json_refuses_with_the_field_named(body, message):
    with pytest.raises(RequestError) as info:
        parse_json(body)
    assert message in str(info.value) and info.value.status_code == 400


def test_parse_json_limits_and_plain_documents():
    assert parse_json(b'{"a": [1, 2.5, "x", null, true, {"b": -3e-5}]}') == {"a": [1, 2.5, "x", None, True, {"b": -3e-5}]}
    assert parse_json("[" * 32 + "]" * 32) is not None  # 32 levels are fine, 33 are not
    with pytest.raises(RequestError, match="nested deeper than 32"):
        parse_json("[" * 33 + "]" * 33)
    with pytest.raises(RequestError, match="more than 10 values"):
        parse_json(json.dumps(list(range(20))), max_values=10)
    assert parse_json(b'{"s": "[[[[{{{{"}', max_depth=2) == {"s": "[[[[{{{{"}  # brackets in strings do not count


@pytest.mark.parametrize("host, origin, referer, refused", [
    ("127.0.0.1:8765", "http://127.0.0.1:8765", None, False),
    ("127.0.0.1:8765", None, "http://127.0.0.1:8765/", False),
    ("127.0.0.1:8765", None, None, False),                          # not from a web page (curl, scripts)
    ("127.0.0.1:8765", "http://evil.example", None, True),
    ("127.0.0.1:8765", "http://127.0.0.1:9999", None, True),        # another port is another origin
    ("127.0.0.1:8765", "null", None, True),                         # sandboxed frames, file: pages
    ("127.0.0.1:8765", None, "https://evil.example/a?b", True),
    ("127.0.0.1:8765", "http://evil.example", "http://127.0.0.1:8765/", True),  # Origin decides
    (None, "http://127.0.0.1:8765", None, True),
])
def test_same_origin_rule(host, origin, referer, refused):
    assert (same_origin_refusal(host, origin, referer) is not None) == refused


@pytest.mark.parametrize("bind, extra, expected", [
    ("127.0.0.1", [], ["127.0.0.1", "localhost", "::1", "[::1]"]),
    ("localhost", ["studio.local"], ["127.0.0.1", "localhost", "::1", "[::1]", "studio.local"]),
    ("192.168.1.2", [], ["192.168.1.2"]),
    ("0.0.0.0", [], None),
    ("0.0.0.0", ["Test.Example.org"], ["test.example.org"]),
])
def test_allowed_hosts(bind, extra, expected):
    assert allowed_hosts_for(bind, extra) == expected


# ------------------------------------------------------------------ the studio's requests


@pytest.mark.parametrize("body, message", [
    (b'{"channels": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "channels[0][0]"),
    (b'{"master": {"gain_db": 1' + b"0" * 400 + b"}}", "master.gain_db: 100000000000...(401 digits) is too large"),
    (b'{"master": {"gain_db": 1e400}}', "master.gain_db: not a finite number"),
])
def test_studio_malformed_settings_are_400_naming_the_field(session, body, message):
    """#17: these PUTs answered 500 (RecursionError, OverflowError)."""
    client, state = session
    response = client.put(f"/api/sessions/{state['id']}/params", content=body,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400 and message in response.json()["detail"], response.text


VALUES = [None, True, False, 0, -1, 1e308, -1e308, 10**300, "", "x", [], {}, [1], {"a": 1}, 0.5, "nan",
          1e-320, -0.0, 2**63, [[[]]]]


def _mutated(document: dict, rng: random.Random) -> dict:
    """``document`` with one value replaced, removed or added at a random place."""
    document = json.loads(json.dumps(document))
    places: list[list] = []

    def walk(value, path):
        places.append(path)
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in children:
            walk(child, [*path, key])

    walk(document, [])
    path = rng.choice(places[1:])
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    action = rng.random()
    if action < 0.6:
        parent[path[-1]] = rng.choice(VALUES)
    elif action < 0.8:
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[f"extra{rng.randint(0, 9)}"] = rng.choice(VALUES)
    else:
        parent.append(rng.choice(VALUES))
    return document


def test_studio_fuzzed_requests_never_answer_500(session):
    """A seeded mutator over the settings, solo and remix payloads: every answer is 2xx or 4xx."""
    client, state = session
    sid = state["id"]
    rng = random.Random(17)
    statuses = []
    for _ in range(150):
        body = state["params"]
        for _ in range(rng.randint(1, 3)):
            body = _mutated(body, rng)
        response = client.put(f"/api/sessions/{sid}/params", json=body)
        statuses.append(response.status_code)
        assert response.status_code < 500, (json.dumps(body)[:400], response.text)
        if response.status_code == 200:
            client.post(f"/api/sessions/{sid}/undo")
    assert statuses.count(400) > 100  # most mutations are invalid settings, refused by name
    for value in VALUES:
        for path, method, body in ((f"/api/sessions/{sid}/solo", "PUT", {"names": value}),
                                   (f"/api/sessions/{sid}/remix", "POST", {"method": value}),
                                   (f"/api/sessions/{sid}/solo", "PUT", value),
                                   (f"/api/sessions/{sid}/remix", "POST", value)):
            response = client.request(method, path, json=body)
            assert 200 <= response.status_code < 500, (path, body, response.text)


def test_studio_refuses_cross_origin_and_non_json_state_changes(session):
    """#17: a cross-origin text/plain POST (any web page can send one) triggered a remix."""
    client, state = session
    sid = state["id"]
    before = client.get(f"/api/sessions/{sid}").json()["edit"]
    attacks = [
        ("POST", f"/api/sessions/{sid}/remix", {"content": '{"method": "rules"}', "headers": {
            "content-type": "text/plain", "origin": "http://evil.example"}}, 403),
        ("POST", f"/api/sessions/{sid}/remix", {"content": '{"method": "rules"}', "headers": {
            "content-type": "text/plain"}}, 415),
        ("POST", f"/api/sessions/{sid}/remix", {"data": {"method": "rules"}}, 415),  # a form post
        ("POST", f"/api/sessions/{sid}/remix", {"json": {"method": "rules"}, "headers": {
            "origin": "http://evil.example"}}, 403),
        ("POST", f"/api/sessions/{sid}/undo", {"headers": {"origin": "http://evil.example"}}, 403),
        ("POST", f"/api/sessions/{sid}/undo", {"headers": {"origin": "null"}}, 403),
        ("POST", f"/api/sessions/{sid}/undo", {"headers": {"referer": "http://evil.example/x"}}, 403),
        ("DELETE", f"/api/sessions/{sid}", {"headers": {"origin": "http://evil.example"}}, 403),
        ("POST", "/api/sessions", {"files": FILES, "data": {"method": "mono"}, "headers": {
            "origin": "http://evil.example"}}, 403),
        ("POST", "/api/sessions", {"content": b"x" * 10, "headers": {"content-type": "application/json"}}, 415),
    ]
    for method, path, kwargs, status in attacks:
        response = client.request(method, path, **kwargs)
        assert response.status_code == status, (method, path, kwargs.get("headers"), response.text)
    assert client.get(f"/api/sessions/{sid}").json()["edit"] == before
    assert len(client.get("/api/sessions").json()["sessions"]) == 1
    page = client.post(f"/api/sessions/{sid}/remix", json={"method": "rules"},
                       headers={"origin": "http://testserver"})  # the page itself
    assert page.status_code == 200 and page.json()["edit"] == before + 1
    assert client.post(f"/api/sessions/{sid}/undo", headers={"origin": "http://testserver"}).status_code == 200


def test_concurrent_edits_report_their_own_edit(tmp_path, monkeypatch):
    """#18: the reply to an edit is built under the session's lock, so it shows that edit even when
    another one lands in between (widened here: building a reply sleeps)."""
    state_of = Studio.state

    def slow_state(self, session_id):
        time.sleep(0.05)
        return state_of(self, session_id)

    monkeypatch.setattr(Studio, "state", slow_state)
    with TestClient(create_app(StudioConfig(data_dir=tmp_path / "data"))) as client:
        sid = client.post("/api/sessions", data={"method": "mono"}, files=FILES).json()["id"]
        params = _wait(client, sid)["params"]
        replies: dict[float, dict] = {}

        def edit(gain_db: float) -> None:
            body = json.loads(json.dumps(params))
            body["channels"][0]["gain_db"] = gain_db
            replies[gain_db] = client.put(f"/api/sessions/{sid}/params", json=body).json()

        threads = [threading.Thread(target=edit, args=(-1.0 - i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(reply["edit"] for reply in replies.values()) == list(range(1, 9))
        for gain_db, reply in replies.items():
            assert reply["params"]["channels"][0]["gain_db"] == gain_db, (gain_db, reply["edit"])


# ------------------------------------------------------------------ symlinks under --root


def test_symlinked_stems_cannot_leave_the_root(tmp_path):
    """#18: a stem inside --root that links outside it was served in reaper.zip."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "song").mkdir(parents=True)
    outside.mkdir()
    for name, audio in STEMS.items():
        sf.write(root / "song" / name, audio.T, SR)
    sf.write(outside / "secret.wav", _stem(9).T, SR)
    (root / "linked").mkdir()
    sf.write(root / "linked" / "kick.wav", STEMS["kick.wav"].T, SR)
    (root / "linked" / "secret.wav").symlink_to(outside / "secret.wav")
    with TestClient(create_app(StudioConfig(data_dir=tmp_path / "data", root=root))) as client:
        refused = client.post("/api/sessions", data={"method": "mono", "folder": "linked"})
        assert refused.status_code == 403 and "secret.wav: links outside" in refused.json()["detail"]
        sid = client.post("/api/sessions", data={"method": "mono", "folder": "song"}).json()["id"]
        assert _wait(client, sid)["status"] == "ready"
        zipped = zipfile.ZipFile(io.BytesIO(client.get(f"/api/sessions/{sid}/reaper.zip").content))
        assert "stems/kick.wav" in zipped.namelist()
        (root / "song" / "snare.wav").unlink()  # a stem becomes a link after the session opened
        (root / "song" / "snare.wav").symlink_to(outside / "secret.wav")
        response = client.get(f"/api/sessions/{sid}/reaper.zip")
        assert response.status_code == 403 and "snare.wav: links outside" in response.json()["detail"]


# ------------------------------------------------------------------ body size: the middleware


def _run_middleware(headers: dict[str, str], chunks: int, chunk_bytes: int, limit: int,
                    file_limit: int | None, part_per_chunk: bool = False) -> tuple[int, int]:
    """Send a body of ``chunks`` chunks through `BodySizeLimit` around an app that reads it all; with a
    multipart boundary, the first chunk (or, with ``part_per_chunk``, every chunk) opens a part.
    Returns ``(status, chunks the middleware pulled)``."""
    pulled = 0
    sent: list[dict] = []
    boundary = headers.get("content-type", "").partition("boundary=")[2].encode()

    async def receive() -> dict:
        nonlocal pulled
        pulled += 1
        opens = boundary and (pulled == 1 or part_per_chunk)
        head = b"--" + boundary + b'\r\nContent-Disposition: form-data; name="stems"; filename="f%d.wav"\r\n\r\n'
        body = (head % pulled if opens else b"") + b"x" * chunk_bytes
        return {"type": "http.request", "body": body, "more_body": pulled < chunks}

    async def app(scope, receive_, send) -> None:
        while (await receive_()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: dict) -> None:
        sent.append(message)

    middleware = BodySizeLimit(app, limit_for=lambda _m, _p: limit, file_limit_for=lambda _m, _p: file_limit)
    scope = {"type": "http", "method": "POST", "path": "/api/sessions",
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    # A thread of its own: an earlier test's driver (Playwright's sync API) may hold a running loop here.
    runner = threading.Thread(target=asyncio.run, args=(middleware(scope, receive, send),))
    runner.start()
    runner.join()
    return sent[0]["status"], pulled


MIB = 2**20


def test_declared_size_over_the_limit_is_refused_before_reading():
    status, pulled = _run_middleware({"content-length": str(10 * 2**30)}, 100, MIB, 64 * MIB, None)
    assert (status, pulled) == (413, 0)


def test_declared_file_count_sets_the_request_cap():
    """X-File-Count: the cap is the per-file cap times the files, checked before any byte is read."""
    multipart = {"content-type": "multipart/form-data; boundary=b0undary"}
    status, pulled = _run_middleware({**multipart, "content-length": str(3 * MIB), "x-file-count": "1"},
                                     3, MIB, 64 * MIB, MIB)
    assert (status, pulled) == (413, 0)
    status, pulled = _run_middleware({**multipart, "content-length": str(3 * MIB), "x-file-count": "4"}, 3, MIB,
                                     64 * MIB, MIB, part_per_chunk=True)
    assert (status, pulled) == (200, 3)


def test_oversized_file_is_refused_while_streaming():
    """One part of a 100 MiB upload against a 1 MiB per-file cap: refused after about 1 MiB, not 100."""
    multipart = {"content-type": "multipart/form-data; boundary=b0undary"}
    status, pulled = _run_middleware(multipart, 400, 256 * 2**10, 1024 * MIB, MIB)
    assert status == 413 and pulled <= 6
    status, pulled = _run_middleware({}, 400, 256 * 2**10, 1024 * MIB, None)  # no per-file cap: reads it all
    assert (status, pulled) == (200, 400)


# ------------------------------------------------------------------ body size and port reuse: a real server


@pytest.fixture
def studio_server(tmp_path) -> Iterator[int]:
    """The studio (100 KiB per file, 2 stems, so 2 x (100 KiB + overhead) per request) under uvicorn in a thread."""
    config = StudioConfig(data_dir=tmp_path / "data", max_stems=2, max_file_bytes=100 * 2**10,
                          max_request_bytes=2 * (100 * 2**10 + 64 * 2**10) + 64 * 2**10)
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def _raw_request(port: int, head: str, timeout_s: float = 5.0) -> tuple[int, float]:
    """Send only a request's head (no body) and return the status line's code and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as connection:
        connection.sendall(head.encode())
        reply = connection.recv(4096).decode("latin-1")
    return int(reply.split()[1]), time.monotonic() - started


def test_oversized_upload_gets_413_before_the_body_is_sent(studio_server):
    """#18: 413 came only after the whole body arrived; now it comes from the headers alone."""
    head = ("POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            "Content-Length: {length}\r\n{extra}\r\n")
    status, seconds = _raw_request(studio_server, head.format(length=300 * 2**20, extra=""))
    assert status == 413 and seconds < 4
    # within the request cap, but one file declared: over the per-file cap times one
    status, _ = _raw_request(studio_server, head.format(length=300 * 2**10, extra="X-File-Count: 1\r\n"))
    assert status == 413


def test_bind_socket_reuses_a_port_held_by_closing_connections(studio_server):
    """A port whose last server left connections closing (FIN_WAIT) binds again with SO_REUSEADDR, while a
    port another server is listening on is still refused."""
    with pytest.raises(Exception, match=f"cannot serve on 127.0.0.1:{studio_server}"):
        bind_socket("127.0.0.1", studio_server)
    listener = bind_socket("127.0.0.1", 0)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server side closes first: its socket waits in FIN_WAIT2 / TIME_WAIT
    listener.close()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # without SO_REUSEADDR the port is still taken
    again = bind_socket("127.0.0.1", port)
    again.close()
    client.close()


def test_serve_command_uses_the_per_file_cap_times_the_stems(monkeypatch, tmp_path):
    """`mixdown serve`'s request cap: (per-file cap + part overhead) x --max-stems + overhead (no 2 GiB floor)."""
    from mixdown.cli import main
    from mixdown.web import common

    seen = {}
    monkeypatch.setattr(common, "serve", lambda app, sock: seen.update(app=app, sock=sock) or sock.close())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["serve", "--port", str(port), "--data-dir", str(tmp_path / "d"), "--max-upload-mb", "1",
                 "--max-stems", "3"]) == 0
    studio = seen["app"].state.studio
    assert studio.config.max_file_bytes == 2**20
    assert studio.config.max_request_bytes == 3 * (2**20 + 64 * 2**10) + 64 * 2**10


@pytest.mark.parametrize("path", ["/api/sessions", "/api/config"])
def test_pages_still_work_from_their_own_origin(session, path):
    client, _ = session
    assert client.get(path, headers={"origin": "http://evil.example"}).status_code == 200  # reads are not refused


def test_studio_host_check_on_loopback(tmp_path):
    with TestClient(create_app(StudioConfig(data_dir=tmp_path / "d"), allowed_hosts=allowed_hosts_for("127.0.0.1"))) as c:
        assert c.get("/api/config", headers={"host": "evil.example"}).status_code == 400
        assert c.get("/api/config", headers={"host": "localhost:8765"}).status_code == 200
