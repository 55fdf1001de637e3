"""Crash safety of both servers (#17): each runs as its own process (`python -m mixdown serve` and
`python -m mixdown listen serve`), is killed with SIGKILL while many clients write over keep-alive
connections, and is started again at once on the same port. Every write the killed server
acknowledged must be in its SQLite store, the store must pass `PRAGMA integrity_check`, and the new
server must take the port at once (its old connections are still closing) and carry on."""

from __future__ import annotations

import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import yaml

from mixdown.listening.build import build_test
from mixdown.listening.config import load_config
from mixdown.listening.manifest import RESPONSES_NAME, Manifest
from mixdown.listening.randomise import participant_trials
from mixdown.web.studio.store import SessionStore

SR = 22050
WRITERS = 12
MIN_WRITES = 6
"""Acknowledged writes to wait for before the kill (the writers keep going until it)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(argv: list[str], port: int, log: Path) -> subprocess.Popen:
    """Start ``python -m mixdown ARGV`` and wait until it answers on ``port``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "mixdown", *argv], stdout=log.open("ab"),
                               stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, f"the server exited ({process.returncode}): {log.read_text()[-2000:]}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            assert time.monotonic() < deadline, f"the server did not start: {log.read_text()[-2000:]}"
            time.sleep(0.1)


def _kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def _port_held_by_closing_connections(port: int) -> bool:
    """Whether a plain bind (no SO_REUSEADDR) is refused: the killed server's connections still hold the port."""
    with socket.socket() as plain:
        try:
            plain.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _integrity(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def _hammer(work, count) -> tuple[list[threading.Thread], threading.Event, list[str]]:
    """Start WRITERS threads running ``work(index, stop)`` until ``count()`` writes are acknowledged
    (then they go on writing); returns the threads, their stop event and their failures."""
    stop = threading.Event()
    failures: list[str] = []

    def run(i: int) -> None:
        try:
            work(i, stop)
        except AssertionError as exc:  # reported by the test itself
            failures.append(repr(exc))

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while count() < MIN_WRITES and not failures:
        assert time.monotonic() < deadline, f"only {count()} writes in 120 s"
        time.sleep(0.02)
    time.sleep(0.2)  # writers in full flight
    return threads, stop, failures


# ------------------------------------------------------------------ the studio


def _stem_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    sf.write(buffer, (0.1 * rng.standard_normal(SR)).astype(np.float32), SR, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def test_studio_survives_kill_9_mid_edit(tmp_path):
    port, data = _free_port(), tmp_path / "data"
    argv = ["serve", "--port", str(port), "--data-dir", str(data)]
    base = f"http://127.0.0.1:{port}"
    server = _start(argv, port, tmp_path / "studio.log")
    try:
        with httpx.Client(base_url=base, timeout=300) as client:
            files = [("stems", (f"{name}.wav", _stem_bytes(i), "audio/wav")) for i, name in enumerate(("kick", "bass"))]
            sid = client.post("/api/sessions", data={"method": "mono"}, files=files).json()["id"]
            deadline = time.monotonic() + 300
            while (state := client.get(f"/api/sessions/{sid}").json())["status"] == "mixing":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert state["status"] == "ready"
        acknowledged: dict[int, float] = {}
        lock = threading.Lock()
        clients = [httpx.Client(base_url=base, timeout=120) for _ in range(WRITERS)]  # keep-alive connections

        def edit(i: int, stop: threading.Event) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                gain_db = round(-(5 * i + 0.01 * (n % 400)), 2)
                body = {**state["params"], "channels": [{**state["params"]["channels"][0], "gain_db": gain_db},
                                                         *state["params"]["channels"][1:]]}
                try:
                    reply = clients[i].put(f"/api/sessions/{sid}/params", json=body)
                except httpx.HTTPError:
                    return  # the server is gone
                assert reply.status_code == 200, reply.text
                with lock:
                    acknowledged[reply.json()["edit"]] = gain_db

        threads, stop, failures = _hammer(edit, lambda: len(acknowledged))
        _kill(server)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert not failures and len(acknowledged) >= MIN_WRITES, failures
        assert _port_held_by_closing_connections(port)  # the situation that refused `mixdown serve` (#17)
        server = _start(argv, port, tmp_path / "studio.log")  # at once, on the same port
        for client in clients:
            client.close()
        assert _integrity(data / "studio.sqlite3") == "ok"
        store = SessionStore(data)
        for edit_number, gain_db in acknowledged.items():
            assert store.params_at(sid, edit_number).channels[0].gain_db == gain_db, edit_number
        with httpx.Client(base_url=base, timeout=300) as client:  # a fresh process compiles the render kernels
            after = client.get(f"/api/sessions/{sid}").json()
            assert after["status"] == "ready" and after["edit"] >= max(acknowledged)
            body = {**after["params"], "channels": [{**after["params"]["channels"][0], "gain_db": -20.0},
                                                    *after["params"]["channels"][1:]]}
            again = client.put(f"/api/sessions/{sid}/params", json=body).json()
            assert again["edit"] == after["edit"] + 1
    finally:
        if server.poll() is None:
            _kill(server)


# ------------------------------------------------------------------ the listening test


@pytest.fixture
def mushra_test(tmp_path) -> Path:
    """A MUSHRA test of 2 songs x (reference, one mix, the default anchor)."""
    rng = np.random.default_rng(0)
    reference = (0.2 * rng.standard_normal((2, 3 * SR))).astype(np.float32)
    for name, audio in (("ref", reference), ("mix", 0.5 * reference)):
        sf.write(tmp_path / f"{name}.wav", audio.T, SR, subtype="FLOAT")
    config = {"name": "Crash", "seed": 1, "excerpt_s": 1.0, "fade_ms": 20, "reference": "ref",
              "conditions": {"ref": "ref.wav", "mix": "mix.wav"},
              "songs": [{"name": "one", "start_s": 0.0}, {"name": "two", "start_s": 1.5}]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    build_test(load_config(tmp_path / "test.yaml"), tmp_path / "test")
    return tmp_path / "test"


def test_listening_server_survives_kill_9_mid_rating(mushra_test, tmp_path):
    port = _free_port()
    argv = ["listen", "serve", str(mushra_test), "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    manifest = Manifest.load(mushra_test)
    server = _start(argv, port, tmp_path / "listen.log")
    acknowledged: dict[str, int] = {}  # participant -> trials acknowledged
    finished: set[str] = set()
    lock = threading.Lock()
    clients = [httpx.Client(base_url=base, timeout=30) for _ in range(WRITERS)]

    def participate(i: int, stop: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            pid = f"w{i}-{n}"
            try:
                reply = clients[i].post("/api/participants", json={"participant_id": pid})
                assert reply.status_code == 201, reply.text
                headers = {"X-Participant-Token": reply.json()["token"]}
                for index in range(len(manifest.songs)):
                    reply = clients[i].post(f"/api/trials/{index}", headers=headers,
                                            json={"ratings": [100, 50 + i, 10], "played": [True] * 3})
                    assert reply.status_code == 200, reply.text
                    with lock:
                        acknowledged[pid] = index + 1
                reply = clients[i].post("/api/finish", headers=headers, json={"comment": pid})
                assert reply.status_code == 200
                with lock:
                    finished.add(pid)
            except httpx.HTTPError:
                return  # the server is gone

    try:
        threads, stop, failures = _hammer(participate, lambda: sum(acknowledged.values()))
        _kill(server)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert not failures and sum(acknowledged.values()) >= MIN_WRITES, failures
        assert _port_held_by_closing_connections(port)
        server = _start(argv, port, tmp_path / "listen.log")
        for client in clients:
            client.close()
        database = mushra_test / RESPONSES_NAME
        assert _integrity(database) == "ok"
        with sqlite3.connect(database) as db:
            trials = {}
            for pid, index in db.execute("SELECT participant_id, trial_index FROM trials"):
                trials.setdefault(pid, set()).add(index)
            ratings = dict(db.execute("SELECT participant_id || ':' || trial_index, COUNT(*) FROM ratings "
                                      "GROUP BY participant_id, trial_index"))
            done = {pid for (pid,) in db.execute("SELECT participant_id FROM participants WHERE finished_at IS NOT NULL")}
        for pid, count in acknowledged.items():
            assert trials.get(pid, set()) >= set(range(count)), pid  # nothing acknowledged is lost
        for pid, indices in trials.items():
            assert indices == set(range(len(indices))), pid  # in order, no gaps
            assert all(ratings[f"{pid}:{index}"] == 3 for index in indices)  # whole trials only
        assert finished <= done
        conditions = manifest.conditions
        with httpx.Client(base_url=base, timeout=30) as client:
            reply = client.post("/api/participants", json={"participant_id": "after"})
            headers = {"X-Participant-Token": reply.json()["token"]}
            order = participant_trials(2, 3, manifest.seed, "after")[0].condition_order
            ratings_by_slot = [{"ref": 100, "mix": 40, "anchor": 5}[conditions[c]] for c in order]
            assert client.post("/api/trials/0", headers=headers,
                               json={"ratings": ratings_by_slot, "played": [True] * 3}).status_code == 200
            assert client.get("/api/session", headers=headers).json()["next_trial"] == 1
    finally:
        if server.poll() is None:
            _kill(server)
