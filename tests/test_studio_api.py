"""The studio's HTTP API (FastAPI TestClient), its render engine and the shared upload checks.

References: every mix the server returns is compared with `mixdown.console.render` of the
same stems and settings; loudness changes with analytic expectations; uploads and paths
against the rules in `mixdown.web.common`.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from mixdown.console import render
from mixdown.multitrack import Multitrack
from mixdown.params import ChannelParams, CompressorParams, ConsoleParams, EQBand
from mixdown.web.common import RequestError, resolve_within, safe_stem_name
from mixdown.web.studio.app import create_app
from mixdown.web.studio.engine import MixEngine, eq_curve_db
from mixdown.web.studio.service import STUDIO_METHODS, StudioConfig
from mixdown.web.studio.store import SessionStore

SR = 44100


def _stem(seed: int, seconds: float = 1.0, channels: int = 1, rate: int = SR) -> np.ndarray:
    """Noise bursts under a decaying envelope, ``(channels, samples)``: a stand-in for a drum hit train."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    envelope = np.exp(-((np.arange(n) % (rate // 4)) / (0.05 * rate)))
    return (0.1 * rng.standard_normal((channels, n)) * envelope).astype(np.float32)


def _wav_bytes(audio: np.ndarray, rate: int = SR, fmt: str = "WAV", subtype: str | None = "FLOAT") -> bytes:
    """File bytes; WAV stores float32 exactly, so the server decodes the very samples sent."""
    buffer = io.BytesIO()
    sf.write(buffer, audio.T, rate, format=fmt, subtype=subtype if fmt == "WAV" else None)
    return buffer.getvalue()


STEMS = {"kick.wav": _stem(1), "snare.wav": _stem(2), "overhead.wav": _stem(3, channels=2)}


def _files(stems: dict[str, np.ndarray] | None = None, rate: int = SR) -> list[tuple]:
    return [("stems", (name, _wav_bytes(audio, rate), "audio/wav")) for name, audio in (stems or STEMS).items()]


@pytest.fixture
def make_client(tmp_path):
    """``make(**config) -> TestClient`` on a data dir under tmp_path (closed at teardown)."""
    clients = []

    def make(data_dir: Path | None = None, allowed_hosts=None, **config) -> TestClient:
        cfg = StudioConfig(data_dir=data_dir or tmp_path / "data", **config)
        client = TestClient(create_app(cfg, allowed_hosts=allowed_hosts))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _wait(client: TestClient, session_id: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        state = client.get(f"/api/sessions/{session_id}").json()
        if state["status"] != "mixing":
            return state
        assert time.monotonic() < deadline, f"session still mixing after {timeout_s} s: {state}"
        time.sleep(0.05)


def _open(client: TestClient, files=None, method: str = "mono") -> dict:
    response = client.post("/api/sessions", data={"method": method}, files=files or _files())
    assert response.status_code == 201, response.text
    state = _wait(client, response.json()["id"])
    assert state["status"] == "ready", state
    return state


def _mix(client: TestClient, session_id: str, **query) -> np.ndarray:
    response = client.get(f"/api/sessions/{session_id}/mix.wav", params=query)
    assert response.status_code == 200, response.text
    audio, rate = sf.read(io.BytesIO(response.content), dtype="float32", always_2d=True)
    assert rate == SR
    return audio.T


def _reference(stems: dict[str, np.ndarray], params: ConsoleParams) -> np.ndarray:
    """What the console renders for these stems (the studio must return exactly this)."""
    multitrack = Multitrack.from_arrays({Path(k).stem: v for k, v in stems.items()}, SR)
    return render(multitrack, params)


def _loudness(audio: np.ndarray) -> float:
    return pyloudnorm.Meter(SR, filter_class="DeMan").integrated_loudness(audio.T.astype(np.float64))


def _edited(params: dict, **changes) -> dict:
    """A copy of a params dict with channel fields set: ``kick={"gain_db": -3}``, ``master={...}``."""
    out = json.loads(json.dumps(params))
    for key, fields in changes.items():
        target = out["master"] if key == "master" else next(c for c in out["channels"] if c["name"] == key)
        target.update(fields)
    return out


# ---------------------------------------------------------------------------------- pages


def test_page_static_files_and_config(make_client):
    client = make_client()
    page = client.get("/")
    assert page.status_code == 200 and '<script type="module" src="/static/studio.js">' in page.text
    for name in ("studio.js", "player.js", "widgets.js", "schema.js", "studio.css"):
        assert client.get(f"/static/{name}").status_code == 200
    config = client.get("/api/config").json()
    assert config["methods"] == STUDIO_METHODS
    assert {"mono", "rules", "dmc"} <= set(STUDIO_METHODS) and not {"waveunet", "reverse"} & set(STUDIO_METHODS)
    assert config["max_stems"] == 32 and config["folders"] is False
    gain = next(entry for entry in config["schema"] if entry["path"] == "channels[].gain_db")
    assert gain == {"path": "channels[].gain_db", "tensor": "gain_db", "key": "gain_db", "level": "channel",
                    "group": "", "min": -80.0, "max": 24.0, "default": 0.0, "unit": "dB", "scale": "linear",
                    "digits": 2, "nullable": False}  # every entry: tests/test_schema.py


# ------------------------------------------------------------------------- mixing and edits


def test_upload_mixes_and_serves_the_console_render(make_client):
    client = make_client()
    state = _open(client, method="rules")
    assert [s["name"] for s in state["stems"]] == ["kick", "overhead", "snare"]
    assert [s["channels"] for s in state["stems"]] == [1, 2, 1]
    assert state["edit"] == 0 and not state["can_undo"] and not state["can_redo"]
    params = ConsoleParams.from_dict(state["params"])
    assert params.method == "rules"
    mix = _mix(client, state["id"])
    np.testing.assert_allclose(mix, _reference(STEMS, params), atol=2e-6)
    assert _loudness(mix) == pytest.approx(state["mix"]["loudness_lufs"], abs=0.05)
    assert client.get(f"/api/sessions/{state['id']}/params.json").json() == state["params"]
    listed = client.get("/api/sessions").json()["sessions"]
    assert [(s["id"], s["status"], s["stems"]) for s in listed] == [(state["id"], "ready", ["kick", "overhead", "snare"])]
    model = _mix(client, state["id"], which="model")
    np.testing.assert_array_equal(model, mix)


EDITS = {
    "fader": {"kick": {"gain_db": -7.5}},
    "pan": {"snare": {"pan": -0.6}, "overhead": {"pan": 0.4}},
    "eq": {"kick": {"eq": [{"type": "peak", "freq_hz": 120.0, "gain_db": 6.0, "q": 1.2},
                           {"type": "highpass", "freq_hz": 40.0, "gain_db": 0.0, "q": 0.707}]}},
    "compressor": {"snare": {"compressor": {"threshold_db": -30.0, "ratio": 6.0, "attack_ms": 2.0,
                                            "release_ms": 80.0, "knee_db": 3.0, "makeup_db": 4.0}}},
    "mute": {"overhead": {"mute": True}},
    "reverb send": {"kick": {"reverb_send_db": -6.0}, "snare": {"reverb_send_db": -12.0}},
    "master": {"master": {"gain_db": -3.0, "target_lufs": -20.0, "ceiling_dbtp": -3.0,
                          "reverb": {"decay_s": 0.8, "predelay_ms": 5.0, "return_db": 3.0}}},
    "normalisation off": {"master": {"target_lufs": None, "ceiling_dbtp": None}},
}


@pytest.fixture(scope="module")
def shared_session(tmp_path_factory):
    """One mixed session shared by the edit cases (each sets its edit from the model's settings)."""
    cfg = StudioConfig(data_dir=tmp_path_factory.mktemp("shared") / "data")
    with TestClient(create_app(cfg)) as client:
        yield client, _open(client)


@pytest.mark.parametrize("edit", list(EDITS))
def test_every_edit_renders_what_the_console_renders(shared_session, edit):
    client, state = shared_session
    new = _edited(state["params"], **EDITS[edit])
    response = client.put(f"/api/sessions/{state['id']}/params", json=new)
    assert response.status_code == 200, response.text
    assert response.json()["params"] == ConsoleParams.from_dict(new).to_dict()
    np.testing.assert_allclose(_mix(client, state["id"]), _reference(STEMS, ConsoleParams.from_dict(new)), atol=2e-6)


def test_fader_moves_the_loudness_by_its_gain(shared_session):
    """One channel alone, normalisation and limiter off: the mix follows its fader exactly."""
    client, state = shared_session
    base = _edited(state["params"], overhead={"mute": True}, snare={"mute": True},
                   master={"target_lufs": None, "ceiling_dbtp": None})
    before = client.put(f"/api/sessions/{state['id']}/params", json=base).json()["mix"]["loudness_lufs"]
    after = client.put(f"/api/sessions/{state['id']}/params",
                       json=_edited(base, kick={"gain_db": base["channels"][0]["gain_db"] - 6.0})).json()
    assert after["mix"]["loudness_lufs"] - before == pytest.approx(-6.0, abs=0.02)


def test_master_trim_after_normalisation_moves_the_loudness(shared_session):
    client, state = shared_session
    base = _edited(state["params"], master={"gain_db": 0.0, "target_lufs": -20.0, "ceiling_dbtp": None})
    before = client.put(f"/api/sessions/{state['id']}/params", json=base).json()["mix"]["loudness_lufs"]
    after = client.put(f"/api/sessions/{state['id']}/params", json=_edited(base, master={"gain_db": -4.5})).json()
    assert before == pytest.approx(-20.0, abs=0.05)
    assert after["mix"]["loudness_lufs"] == pytest.approx(-24.5, abs=0.05)


def test_undo_redo_and_a_new_edit_dropping_redo(make_client):
    client = make_client()
    state = _open(client)
    sid, p0 = state["id"], state["params"]
    p1, p2, p3 = (_edited(p0, kick={"gain_db": g}) for g in (-1.0, -2.0, -3.0))
    for p in (p1, p2):
        client.put(f"/api/sessions/{sid}/params", json=p)
    assert client.put(f"/api/sessions/{sid}/params", json=p2).json()["edit"] == 2  # no-op edits are not stored
    undone = client.post(f"/api/sessions/{sid}/undo").json()
    assert (undone["edit"], undone["params"], undone["can_redo"]) == (1, p1, True)
    assert client.post(f"/api/sessions/{sid}/redo").json()["params"] == p2
    client.post(f"/api/sessions/{sid}/undo")
    third = client.put(f"/api/sessions/{sid}/params", json=p3).json()
    assert (third["edit"], third["can_redo"]) == (2, False)
    for _ in range(4):
        state = client.post(f"/api/sessions/{sid}/undo").json()
    assert (state["edit"], state["params"], state["can_undo"]) == (0, p0, False)
    np.testing.assert_allclose(_mix(client, sid), _reference(STEMS, ConsoleParams.from_dict(p0)), atol=2e-6)


def test_solo_changes_what_is_heard_not_the_settings_or_the_download(make_client):
    client = make_client()
    state = _open(client)
    sid = state["id"]
    soloed = client.put(f"/api/sessions/{sid}/solo", json={"names": ["snare"]}).json()
    assert soloed["solo"] == ["snare"] and soloed["params"] == state["params"] and soloed["edit"] == 0
    only_snare = ConsoleParams.from_dict(_edited(state["params"], kick={"mute": True}, overhead={"mute": True},
                                                 master={"target_lufs": None,
                                                         "gain_db": state["mix"]["master_gain_db"]}))
    np.testing.assert_allclose(_mix(client, sid, monitor=True), _reference(STEMS, only_snare), atol=2e-5)
    np.testing.assert_allclose(_mix(client, sid), _reference(STEMS, ConsoleParams.from_dict(state["params"])), atol=2e-6)
    assert client.put(f"/api/sessions/{sid}/solo", json={"names": ["bass"]}).status_code == 400


@pytest.mark.parametrize("change, message", [
    (lambda p: {**p, "volume": 1}, "volume"),
    (lambda p: _edited(p, kick={"gain_db": 99.0}), "gain_db: 99 is outside the range [-80, 24]"),
    (lambda p: _edited(p, kick={"pan": "left"}), "pan: expected a number"),
    (lambda p: {**p, "channels": p["channels"][:2]}, "no settings for stems ['snare']"),
    (lambda p: {**p, "sample_rate": 48000}, "the settings are for 48000 Hz but the stems are 44100 Hz"),
])
def test_bad_params_are_refused_with_the_field_named(shared_session, change, message):
    client, state = shared_session
    current = client.get(f"/api/sessions/{state['id']}").json()
    response = client.put(f"/api/sessions/{state['id']}/params", json=change(state["params"]))
    assert response.status_code == 400 and message in response.json()["detail"]
    assert client.get(f"/api/sessions/{state['id']}").json()["edit"] == current["edit"]


def test_params_body_that_is_not_json(shared_session):
    client, state = shared_session
    response = client.put(f"/api/sessions/{state['id']}/params", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["detail"]


def test_downloaded_params_load_back(make_client):
    client = make_client()
    state = _open(client)
    sid = state["id"]
    client.put(f"/api/sessions/{sid}/params", json=_edited(state["params"], snare={"gain_db": -9.0}))
    saved = client.get(f"/api/sessions/{sid}/params.json")
    assert saved.headers["content-disposition"].startswith("attachment")
    client.post(f"/api/sessions/{sid}/undo")
    loaded = client.put(f"/api/sessions/{sid}/params", json=json.loads(saved.content)).json()
    assert loaded["params"] == saved.json() and loaded["edit"] == 1
    download = client.get(f"/api/sessions/{sid}/mix.wav", params={"download": 1})
    assert download.headers["content-disposition"].startswith("attachment")
    assert float(download.headers["x-loudness-lufs"]) == pytest.approx(loaded["mix"]["loudness_lufs"], abs=0.01)


def test_remix_with_new_classes_is_an_undoable_edit(make_client):
    client = make_client()
    state = _open(client, method="mono")
    sid = state["id"]
    client.put(f"/api/sessions/{sid}/params", json=_edited(state["params"], overhead={"instrument": "room"}))
    remixed = client.post(f"/api/sessions/{sid}/remix", json={"method": "rules"}).json()
    assert (remixed["method"], remixed["edit"]) == ("rules", 2)
    params = ConsoleParams.from_dict(remixed["params"])
    assert params.method == "rules" and params.channel("overhead").instrument == "room"
    np.testing.assert_allclose(_mix(client, sid, which="model"), _reference(STEMS, params), atol=2e-6)
    assert client.post(f"/api/sessions/{sid}/remix", json={"method": "magic"}).status_code == 400
    assert client.post(f"/api/sessions/{sid}/undo").json()["params"]["channels"][1]["instrument"] == "room"


def test_reference_mix_for_ab(make_client):
    client = make_client()
    sid = _open(client)["id"]
    reference = 0.25 * _stem(9, seconds=2.0, channels=2, rate=48000)
    files = {"reference": ("ref.flac", _wav_bytes(reference, 48000, "FLAC"), "audio/flac")}
    state = client.put(f"/api/sessions/{sid}/reference", files=files).json()
    served, rate = sf.read(io.BytesIO(client.get(f"/api/sessions/{sid}/reference.wav").content), always_2d=True)
    assert rate == 48000 and served.shape == (96000, 2)
    expected = pyloudnorm.Meter(48000, filter_class="DeMan").integrated_loudness(served)
    assert state["reference"]["loudness_lufs"] == pytest.approx(expected, abs=0.05)
    bad = client.put(f"/api/sessions/{sid}/reference", files={"reference": ("ref.wav", b"RIFF....WAVEjunk", "audio/wav")})
    assert bad.status_code == 415 and "ref.wav: not an audio file" in bad.json()["detail"]


def test_style_mixes_like_the_reference_sent_with_the_stems(make_client):
    client = make_client()
    wide = np.stack([_stem(21, seconds=4.0)[0], 0.3 * _stem(22, seconds=4.0)[0]])  # loud left, quiet right
    reference = {"reference": ("ref.wav", _wav_bytes(wide), "audio/wav")}
    response = client.post("/api/sessions", data={"method": "style"}, files=_files() + list(reference.items()))
    state = _wait(client, response.json()["id"])
    assert state["status"] == "ready" and state["reference"] is not None, state
    styled = ConsoleParams.from_dict(state["params"])
    plain = ConsoleParams.from_dict(_open(client, method="estimator")["params"])  # style without a reference
    assert styled.method == "style"
    assert [c.pan for c in styled.channels] != [c.pan for c in plain.channels]  # the reference moved the settings

    bare = _open(client, method="mono")["id"]
    refused = client.post(f"/api/sessions/{bare}/remix", json={"method": "style"})
    assert refused.status_code == 400 and "style mixes like a reference mix: add one" in refused.json()["detail"]
    mono = np.repeat(_stem(23, seconds=4.0), 2, axis=0)
    client.put(f"/api/sessions/{bare}/reference", files={"reference": ("mono.wav", _wav_bytes(mono), "audio/wav")})
    refused = client.post(f"/api/sessions/{bare}/remix", json={"method": "style"})
    assert refused.status_code == 400 and "a mono mix" in refused.json()["detail"]


def test_exports_from_the_studio(make_client):
    client = make_client()
    state = _open(client)
    sid = state["id"]
    sheet = client.get(f"/api/sessions/{sid}/sheet.csv")
    assert sheet.headers["content-type"].startswith("text/csv")
    assert sheet.text.splitlines()[0] == "section,channel,setting,label,value,unit"
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/sessions/{sid}/reaper.zip?platform=macos").content))
    assert sorted(archive.namelist()) == ["README.txt", "project.RPP", "stems/kick.wav", "stems/overhead.wav",
                                          "stems/snare.wav"]  # no reverb sends: no impulse response
    np.testing.assert_array_equal(sf.read(io.BytesIO(archive.read("stems/kick.wav")), dtype="float32")[0],
                                  STEMS["kick.wav"][0])
    project = archive.read("project.RPP").decode()
    assert project.count("<TRACK") == 3 and 'FILE "stems/kick.wav"' in project
    assert client.get(f"/api/sessions/{sid}/reaper.zip?platform=amiga").status_code == 400


# ------------------------------------------------------------------------------- bad uploads


def _wav_with_channels(channels: int) -> bytes:
    return _wav_bytes(_stem(5, seconds=0.5, channels=channels), subtype="PCM_16")


BAD_UPLOADS = {
    "not audio": ([("stems", ("kick.wav", b"this is a text file, not a WAV", "audio/wav"))], 415,
                  "kick.wav: not an audio file"),
    "ogg": ([("stems", ("kick.ogg", _wav_bytes(_stem(1), fmt="OGG"), "audio/ogg"))], 415,
            "kick.ogg: OGG audio is not accepted"),
    "zero stems": ([], 400, "no stems"),
    # refused while it streams in, before its size is known (#18; the message gave its size, 517 KiB, before)
    "oversized file": (_files({"kick.wav": _stem(1, seconds=3.0)}), 413, "kick.wav: larger than the limit per file (200 KiB)"),
    "too many stems": (_files({f"s{i}.wav": _stem(i, seconds=0.2) for i in range(5)}), 400,
                       "5 stems uploaded; the limit is 4"),
    "three channels": ([("stems", ("surround.wav", _wav_with_channels(3), "audio/wav"))], 400,
                       "surround.wav: 3 channels; stems must be mono or stereo"),
    "too short": (_files({"blip.wav": _stem(1, seconds=0.05)}), 400, "blip.wav: 2205 samples long"),
    "duplicate names": (_files({"kick.wav": _stem(1), "Kick.flac": _stem(2)}), 400, "two stems named 'Kick'"),
    "unusable name": (_files({"../...wav": _stem(1)}), 400, "not a usable file name"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_uploads_are_refused_and_leave_nothing(make_client, tmp_path, case):
    files, status, message = BAD_UPLOADS[case]
    client = make_client(max_file_bytes=200 * 1024, max_stems=4)
    response = client.post("/api/sessions", data={"method": "mono"}, files=files or None)
    assert response.status_code == status and message in response.json()["detail"], response.text
    assert client.get("/api/sessions").json()["sessions"] == []
    assert list((tmp_path / "data" / "sessions").iterdir()) == []


def test_request_over_the_total_limit_is_refused_before_parsing(make_client, tmp_path):
    client = make_client(max_request_bytes=100 * 1024)
    response = client.post("/api/sessions", data={"method": "mono"}, files=_files({"kick.wav": _stem(1, seconds=2.0)}))
    assert response.status_code == 413 and response.json()["detail"] == "request too large: the limit is 100 KiB"
    assert client.get("/api/sessions").json()["sessions"] == []


def test_unknown_method_is_refused(make_client):
    response = make_client().post("/api/sessions", data={"method": "magic"}, files=_files())
    assert response.status_code == 400 and "unknown method 'magic'" in response.json()["detail"]


def test_mismatched_rates_are_resampled_with_a_warning(make_client):
    client = make_client()
    files = _files({"kick.wav": _stem(1), "snare.wav": _stem(2)}) + _files({"hat.wav": _stem(3, rate=48000)}, 48000)
    state = _open(client, files=files)
    assert state["sample_rate"] == 44100
    assert "hat.wav: resampling 48000 Hz -> 44100 Hz" in state["warnings"]


def test_file_names_cannot_escape_the_session_folder(make_client, tmp_path):
    client = make_client()
    files = [("stems", ("../../../evil.wav", _wav_bytes(_stem(1)), "audio/wav")),
             ("stems", ("..\\..\\snare.WAV", _wav_bytes(_stem(2)), "audio/wav"))]
    state = _open(client, files=files)
    assert [s["name"] for s in state["stems"]] == ["evil", "snare"]
    stored = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.wav"))
    assert stored == [Path("data/sessions") / state["id"] / "stems" / n for n in ("evil.wav", "snare.wav")]


@pytest.mark.parametrize("filename, name", [
    ("kick.wav", "kick"), ("../../a/Kick In.wav", "Kick In"), ("..\\..\\snare.flac", "snare"),
    (".hidden.wav", "hidden"), ("k<i>ck?.wav", "k_i_ck_"), ("bass", "bass"), ("tom 1.final.aiff", "tom 1.final"),
])
def test_safe_stem_names(filename, name):
    assert safe_stem_name(filename) == name


@pytest.mark.parametrize("filename", ["", None, "../..", "/", "....wav"])
def test_unusable_stem_names(filename):
    with pytest.raises(RequestError):
        safe_stem_name(filename)


# ---------------------------------------------------------------------------------- folders


@pytest.fixture
def root(tmp_path):
    """An allowed root with a song folder, a folder without audio, and a symlink pointing outside."""
    root = tmp_path / "root"
    song = root / "songs" / "one"
    song.mkdir(parents=True)
    for name, audio in STEMS.items():
        sf.write(song / name, audio.T, SR)
    (root / "empty").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    sf.write(outside / "secret.wav", _stem(7).T, SR)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    return root


@pytest.mark.parametrize("folder, status", [
    ("../outside", 403), ("songs/../../outside", 403), ("escape", 403), ("/etc", 403), ("nope", 404),
    ("empty", 400),
])
def test_folder_option_stays_under_the_root(make_client, root, folder, status):
    client = make_client(root=root)
    response = client.post("/api/sessions", data={"method": "mono", "folder": folder})
    assert response.status_code == status, response.text
    assert client.get("/api/sessions").json()["sessions"] == []


def test_folder_session_and_listing(make_client, root):
    client = make_client(root=root)
    assert client.get("/api/folders").json()["folders"] == ["songs/one"]
    response = client.post("/api/sessions", data={"method": "mono", "folder": "songs/one"})
    state = _wait(client, response.json()["id"])
    assert state["source"] == "folder" and [s["name"] for s in state["stems"]] == ["kick", "overhead", "snare"]
    client.delete(f"/api/sessions/{state['id']}")
    assert sorted(p.name for p in (root / "songs" / "one").iterdir()) == sorted(STEMS)  # a folder's stems stay


def test_folder_option_is_off_without_a_root(make_client):
    client = make_client()
    response = client.post("/api/sessions", data={"method": "mono", "folder": "songs"})
    assert response.status_code == 403 and "--root" in response.json()["detail"]
    assert client.get("/api/folders").json()["folders"] == []


def test_resolve_within(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert resolve_within(tmp_path, "a/b") == (tmp_path / "a" / "b").resolve()
    assert resolve_within(tmp_path, ".") == tmp_path.resolve()
    for bad in ("a/../../x", "../", str(tmp_path / "a"), "~/x", "C:/x"):
        with pytest.raises(RequestError) as info:
            resolve_within(tmp_path, bad)
        assert info.value.status_code == 403


# -------------------------------------------------------------------------- sessions at large


@pytest.mark.parametrize("path", ["/api/sessions/../../etc", "/api/sessions/short", "/api/sessions/AAAAAAAAAAAAAAAA"])
def test_unknown_or_malformed_session_ids(make_client, path):
    assert make_client().get(path).status_code == 404


def test_delete_session_removes_its_files(make_client, tmp_path):
    client = make_client()
    sid = _open(client)["id"]
    assert client.delete(f"/api/sessions/{sid}").status_code == 204
    assert client.get(f"/api/sessions/{sid}").status_code == 404
    assert list((tmp_path / "data" / "sessions").iterdir()) == []


def test_concurrent_sessions_stay_apart(make_client):
    client = make_client()
    other = {"bass.wav": _stem(11), "keys.wav": _stem(12, channels=2)}
    states: dict[str, dict] = {}

    def work(key: str, stems: dict, gain_db: float) -> None:
        state = _open(client, files=_files(stems))
        name = state["stems"][0]["name"]
        states[key] = client.put(f"/api/sessions/{state['id']}/params",
                                 json=_edited(state["params"], **{name: {"gain_db": gain_db}})).json()

    threads = [threading.Thread(target=work, args=args) for args in (("a", STEMS, -4.0), ("b", other, -8.0))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert states["a"]["id"] != states["b"]["id"]
    for key, stems in (("a", STEMS), ("b", other)):
        state = client.get(f"/api/sessions/{states[key]['id']}").json()
        assert state["params"] == states[key]["params"] and state["edit"] == 1
        np.testing.assert_allclose(_mix(client, state["id"]), _reference(stems, ConsoleParams.from_dict(state["params"])),
                                   atol=2e-6)


def test_restart_keeps_sessions(make_client, tmp_path):
    with TestClient(create_app(StudioConfig(data_dir=tmp_path / "data"))) as first:
        state = _open(first)
        sid = state["id"]
        first.put(f"/api/sessions/{sid}/params", json=_edited(state["params"], kick={"gain_db": -5.0}))
        first.put(f"/api/sessions/{sid}/solo", json={"names": ["kick"]})
        reference = {"reference": ("r.wav", _wav_bytes(_stem(4, channels=2)), "audio/wav")}
        first.put(f"/api/sessions/{sid}/reference", files=reference)
        before = first.get(f"/api/sessions/{sid}").json()
        wav_before = first.get(f"/api/sessions/{sid}/mix.wav").content

    second = make_client()  # a new app on the same data directory
    after = second.get(f"/api/sessions/{sid}").json()
    assert after == before
    assert second.get(f"/api/sessions/{sid}/mix.wav").content == wav_before
    assert second.post(f"/api/sessions/{sid}/undo").json()["params"] == state["params"]


def test_restart_resumes_an_interrupted_mix(make_client, tmp_path):
    """A session stored as 'mixing' (the server stopped mid-mix) is mixed when next opened."""
    data = tmp_path / "data"
    store = SessionStore(data)
    sid = store.new_id()
    stems = store.session_dir(sid) / "stems"
    stems.mkdir(parents=True)
    for name, audio in STEMS.items():
        sf.write(stems / name, audio.T, SR)
    store.create(sid, "mono", "upload", stems)
    state = _wait(make_client(data), sid)
    assert state["status"] == "ready" and state["edit"] == 0


def test_only_allowed_hosts(make_client):
    client = make_client(allowed_hosts=["127.0.0.1", "localhost"])
    assert client.get("/api/config").status_code == 400  # TestClient's host is "testserver"
    assert client.get("/api/config", headers={"host": "127.0.0.1:8765"}).status_code == 200


def test_serve_binds_to_loopback_by_default():
    import argparse

    from mixdown.commands.serve import register
    from mixdown.web.common import is_loopback

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.root is None
    assert [is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "192.168.1.2")] == [
        True, True, True, False, False]


@pytest.mark.parametrize("argv, message", [
    (["serve", "--port", "70000"], "--port must be between 1 and 65535"),
    (["serve", "--root", "/no/such/folder"], "--root /no/such/folder: no such folder"),
    (["serve", "--max-stems", "0"], "--max-stems must be at least 1"),
])
def test_serve_rejects_bad_options(argv, message, capsys):
    from mixdown.cli import main

    assert main(argv) == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------------------ the engine


def _small_multitrack() -> Multitrack:
    return Multitrack.from_arrays({"kick": _stem(1), "snare": _stem(2), "overhead": _stem(3, channels=2)}, SR)


def _settings(names: list[str]) -> ConsoleParams:
    return ConsoleParams(channels=[
        ChannelParams(name=n, gain_db=-2.0 * i, pan=0.3 * (i - 1), eq=[EQBand("peak", 500.0 * (i + 1), 3.0, 1.0)],
                      compressor=CompressorParams(-20.0, 3.0, 5.0, 100.0, 6.0, 2.0), reverb_send_db=-15.0)
        for i, n in enumerate(names)], sample_rate=SR)


@pytest.mark.parametrize("change, recomputed", [
    (lambda ch: replace(ch, gain_db=ch.gain_db - 6.0), 0),
    (lambda ch: replace(ch, mute=True), 0),
    (lambda ch: replace(ch, reverb_send_db=-3.0), 0),
    (lambda ch: replace(ch, pan=-0.9), 0),
    (lambda ch: replace(ch, eq=[]), 1),
    (lambda ch: replace(ch, compressor=None), 1),
])
def test_engine_reprocesses_only_changed_strips_and_matches_the_console(change, recomputed, monkeypatch):
    multitrack = _small_multitrack()
    engine = MixEngine(multitrack, chunk_frames=8192)
    params = _settings(multitrack.names)
    engine.render(params)
    calls = []
    strip = engine._strip
    monkeypatch.setattr(engine, "_strip", lambda i, ch: calls.append(i) or strip(i, ch))
    edited = replace(params, channels=[change(params.channels[1]) if i == 1 else ch for i, ch in enumerate(params.channels)])
    result = engine.render(edited)
    assert calls == [1] * recomputed
    np.testing.assert_allclose(result.mix, render(multitrack, edited), atol=2e-6)
    assert result.loudness_lufs == pytest.approx(_loudness(result.mix), abs=0.05)


@pytest.mark.parametrize("band, freq_hz, expected_db", [
    (EQBand("peak", 1000.0, 6.0, 1.0), 1000.0, 6.0),            # a bell reaches its gain at its centre
    (EQBand("highpass", 1000.0, 0.0, 2 ** -0.5), 1000.0, -3.0103),  # Butterworth: -3 dB at the corner
    (EQBand("low_shelf", 100.0, -9.0, 0.707), 10.0, -9.0),       # a shelf reaches its gain far below the corner
])
def test_eq_curve_known_answers(band, freq_hz, expected_db):
    gains = eq_curve_db([band], np.array([freq_hz]), SR)
    assert gains[0] == pytest.approx(expected_db, abs=0.05)


def test_eq_curve_of_several_bands_adds_in_db():
    bands = [EQBand("peak", 1000.0, 6.0, 1.0), EQBand("peak", 1000.0, -2.0, 1.0)]
    freqs = np.array([250.0, 1000.0, 4000.0])
    np.testing.assert_allclose(eq_curve_db(bands, freqs, SR),
                               eq_curve_db(bands[:1], freqs, SR) + eq_curve_db(bands[1:], freqs, SR), atol=1e-9)


def test_stems_changed_on_disk_are_reported(make_client, root):
    client = make_client(root=root)
    state = _wait(client, client.post("/api/sessions", data={"method": "mono", "folder": "songs/one"}).json()["id"])
    (root / "songs" / "one" / "snare.wav").unlink()
    fresh = make_client(root=root)  # nothing in memory: the stems are read again
    response = fresh.get(f"/api/sessions/{state['id']}")
    assert response.status_code == 409 and "the stems on disk changed" in response.json()["detail"]


# ------------------------------------------------------------------- live preview, meters, projects


def test_strips_are_the_console_before_fader_and_pan(make_client):
    """What the page's preview plays: channel strips (EQ -> compressor, unity fader, no pan) that,
    summed with the console's fader, pan law and master gain, give the mix."""
    client = make_client()
    state = _open(client)
    sid = state["id"]
    new = _edited(state["params"], snare={"compressor": {"threshold_db": -30.0, "ratio": 4.0, "attack_ms": 1.0,
                                                          "release_ms": 50.0, "knee_db": 0.0, "makeup_db": 3.0},
                                          "pan": -0.5},
                  kick={"eq": [{"type": "peak", "freq_hz": 100.0, "gain_db": 6.0, "q": 1.0}], "gain_db": -3.0},
                  master={"ceiling_dbtp": None, "target_lufs": -24.0})  # far under full scale: the WAV does not clip
    state = client.put(f"/api/sessions/{sid}/params", json=new).json()
    names = [s["name"] for s in state["stems"]]
    assert [s["name"] for s in state["strips"]] == names
    strips = {}
    for i, name in enumerate(names):
        response = client.get(f"/api/sessions/{sid}/strips/{i}.wav")
        assert response.headers["x-strip-key"] == state["strips"][i]["key"]
        audio, _ = sf.read(io.BytesIO(response.content), dtype="float32", always_2d=True)
        strips[name] = audio.T
    np.testing.assert_array_equal(strips["overhead"], STEMS["overhead.wav"])  # no EQ, no compressor: the stem
    assert strips["kick"].shape == (1, STEMS["kick.wav"].shape[1])
    # Fader and the console's pan law on the strips, times the master's gain: the mix (no limiter).
    params = ConsoleParams.from_dict(state["params"])
    mix = np.zeros((2, STEMS["kick.wav"].shape[1]))
    for name, strip in strips.items():
        ch = params.channel(name)
        theta = (ch.pan + 1) * np.pi / 4
        gains = np.array([np.cos(theta), np.sin(theta)]) * (np.sqrt(2) if strip.shape[0] == 2 else 1.0)
        mix += 10 ** (ch.gain_db / 20) * gains[:, None] * strip
    mix *= 10 ** (state["mix"]["master_gain_db"] / 20)
    np.testing.assert_allclose(_mix(client, sid), mix, atol=2e-5)
    assert state["strips"][names.index("snare")]["compressor"]
    # the key follows the EQ and compressor only
    moved = client.put(f"/api/sessions/{sid}/params", json=_edited(state["params"], kick={"gain_db": -9.0})).json()
    assert [s["key"] for s in moved["strips"]] == [s["key"] for s in state["strips"]]
    assert client.get(f"/api/sessions/{sid}/strips/7.wav").status_code == 404


def test_gain_reduction_envelope_known_answer(make_client):
    """A steady square wave 20 dB over a hard-knee 4:1 threshold: the compressor settles at 15 dB of reduction."""
    t = np.arange(SR) / SR
    tone = (0.5 * np.where(np.sin(2 * np.pi * 100 * t) >= 0, 1.0, -1.0)).astype(np.float32)[None]  # |x| = -6.02 dBFS
    client = make_client()
    state = _open(client, files=_files({"tone.wav": tone, "other.wav": 0.1 * tone}))
    sid = state["id"]
    comp = {"threshold_db": -26.02, "ratio": 4.0, "attack_ms": 1.0, "release_ms": 50.0, "knee_db": 0.0, "makeup_db": 2.0}
    client.put(f"/api/sessions/{sid}/params", json=_edited(state["params"], tone={"compressor": comp}))
    names = [s["name"] for s in state["stems"]]
    reduction = client.get(f"/api/sessions/{sid}/strips/{names.index('tone')}/gain_reduction").json()
    assert reduction["hop_frames"] == 512 and reduction["sample_rate"] == SR
    values = np.array(reduction["gain_reduction_db"])
    assert len(values) == -(-SR // 512)
    np.testing.assert_allclose(values[len(values) // 2:], 15.0, atol=0.06)
    assert client.get(f"/api/sessions/{sid}/strips/{names.index('other')}/gain_reduction").json()[
        "gain_reduction_db"] == []


def test_state_reports_the_true_peak_and_the_master_gain(make_client):
    from mixdown.dsp.true_peak import true_peak_dbtp

    client = make_client()
    state = _open(client)
    mix = _mix(client, state["id"])
    assert state["mix"]["true_peak_dbtp"] == pytest.approx(true_peak_dbtp(mix, SR), abs=0.01)
    assert state["mix"]["true_peak_dbtp"] <= state["params"]["master"]["ceiling_dbtp"] + 1e-6
    params = ConsoleParams.from_dict(state["params"])
    raw = _reference(STEMS, replace(params, master=replace(params.master, target_lufs=None, ceiling_dbtp=None,
                                                           gain_db=0.0)))
    expected = params.master.target_lufs - _loudness(raw) + params.master.gain_db
    assert state["mix"]["master_gain_db"] == pytest.approx(expected, abs=0.02)
    from mixdown.dsp.true_peak import bs1770_bank

    meter = state["true_peak_meter"]
    np.testing.assert_array_equal(meter["taps"], bs1770_bank(4).taps)  # 44.1 kHz: 4x, the sample itself implied
    assert (meter["first"], meter["delays"]) == (bs1770_bank(4).first, [0.25, 0.5, 0.75])
    assert client.get("/api/config").json()["gain_reduction_hop"] == 512


def test_solo_is_in_place_at_the_full_mixs_master_gain(make_client):
    client = make_client()
    state = _open(client)
    sid = state["id"]
    soloed = client.put(f"/api/sessions/{sid}/solo", json={"names": ["snare"]}).json()
    params = ConsoleParams.from_dict(_edited(state["params"], kick={"mute": True}, overhead={"mute": True}))
    in_place = replace(params, master=replace(params.master, target_lufs=None,
                                              gain_db=state["mix"]["master_gain_db"]))
    np.testing.assert_allclose(_mix(client, sid, monitor=True), _reference(STEMS, in_place), atol=2e-5)
    assert soloed["mix"]["master_gain_db"] == pytest.approx(state["mix"]["master_gain_db"], abs=1e-4)


def test_reverb_impulse_response_is_served(make_client):
    from mixdown.export.reaper import reverb_impulse_response

    client = make_client()
    state = _open(client)
    sid = state["id"]
    client.put(f"/api/sessions/{sid}/params", json=_edited(state["params"], master={
        "reverb": {"decay_s": 0.5, "predelay_ms": 10.0, "return_db": -3.0}}))
    ir, rate = sf.read(io.BytesIO(client.get(f"/api/sessions/{sid}/reverb.wav").content), dtype="float32",
                       always_2d=True)
    assert rate == SR
    np.testing.assert_array_equal(ir.T, reverb_impulse_response(0.5, 10.0, SR))


def test_a_reaper_project_opens_as_a_session_with_its_settings(make_client, tmp_path):
    """The studio's REAPER zip, uploaded back (project + stems), opens with the settings it holds."""
    client = make_client()
    state = _open(client, method="rules")
    sid = state["id"]
    edited = _edited(state["params"], kick={"gain_db": -4.5, "pan": 0.25, "reverb_send_db": -10.0},
                     master={"ceiling_dbtp": -2.0, "reverb": {"decay_s": 0.9, "predelay_ms": 12.0, "return_db": -1.0}})
    state = client.put(f"/api/sessions/{sid}/params", json=edited).json()
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/sessions/{sid}/reaper.zip?platform=linux").content))
    names = archive.namelist()
    assert "README.txt" in names and "mixdown-reverb-0.9s-12ms-44100Hz.wav" in names
    assert "no exact REAPER equivalent" in archive.read("README.txt").decode()
    files = [("stems", (Path(n).name, archive.read(n), "audio/wav")) for n in names if n.startswith("stems/")]
    files.append(("stems", ("song.RPP", archive.read("project.RPP"), "application/octet-stream")))
    opened = _open(client, files=files)
    assert opened["method"] == "reaper"
    back = ConsoleParams.from_dict(opened["params"])
    kick = back.channel("kick")
    assert (kick.gain_db, kick.pan, kick.reverb_send_db) == pytest.approx((-4.5, 0.25, -10.0), abs=1e-6)
    assert back.master.ceiling_dbtp == -2.0 and back.master.reverb.decay_s == 0.9
    assert back.master.target_lufs is None
    assert back.master.gain_db == pytest.approx(state["mix"]["master_gain_db"], abs=1e-3)
    # the same mix: REAPER's master volume is the gain normalisation applied
    np.testing.assert_allclose(_mix(client, opened["id"]), _mix(client, sid), atol=1e-4)


# Two LMMS tracks: Bass at 50 % hard left, Lead at 100 % pan 50 on a mixer channel at 0.5.
TINY_LMMS = """<?xml version="1.0"?>
<lmms-project version="1.0" creator="LMMS" creatorversion="1.2.2" type="song">
  <head bpm="240" mastervol="100"/>
  <song>
    <trackcontainer type="song">
      <track type="0" name="Bass" muted="0"><instrumenttrack vol="50" pan="-100" fxch="0"/></track>
      <track type="0" name="Lead" muted="0"><instrumenttrack vol="100" pan="50" fxch="1"/></track>
    </trackcontainer>
    <fxmixer>
      <fxchannel num="0" volume="1" muted="0" name="Master"/>
      <fxchannel num="1" volume="0.5" muted="0" name="Lead bus"><send channel="0" amount="1"/></fxchannel>
    </fxmixer>
  </song>
</lmms-project>
"""


def test_an_lmms_project_opens_with_its_stated_gains_and_pans(make_client):
    TINY = TINY_LMMS
    client = make_client()
    files = _files({"00_Bass.wav": _stem(1), "01_Lead.wav": _stem(2), "extra.wav": _stem(3)})
    files.append(("stems", ("tiny.mmp", TINY.encode(), "application/xml")))
    state = _open(client, files=files)
    assert state["method"] == "lmms"
    params = ConsoleParams.from_dict(state["params"])
    bass, lead, extra = (params.channel(n) for n in ("00_Bass", "01_Lead", "extra"))
    assert bass.gain_db == pytest.approx(20 * np.log10(0.5) - 10 * np.log10(2), abs=1e-3) and bass.pan == -1.0
    assert lead.gain_db == pytest.approx(20 * np.log10(0.5 * np.hypot(0.5, 1.0) / np.sqrt(2)), abs=1e-3)
    assert (extra.gain_db, extra.pan) == (0.0, 0.0)
    assert params.master.target_lufs is None and params.master.ceiling_dbtp is None


def test_a_dataset_song_folder_opens_with_its_settings_and_its_mix_as_reference(make_client, root):
    song = root / "songs" / "one"
    stems = {p.stem: sf.read(p, dtype="float32", always_2d=True)[0].T for p in sorted(song.glob("*.wav"))}
    (song / "stems").mkdir()
    for name in stems:
        (song / f"{name}.wav").rename(song / "stems" / f"{name}.wav")
    params = ConsoleParams(channels=[ChannelParams(name=n, gain_db=-2.0 * i) for i, n in enumerate(sorted(stems))],
                           sample_rate=SR, method="lmms")
    (song / "params.json").write_text(params.to_json())
    sf.write(song / "mix.wav", 0.1 * np.ones((SR, 2), dtype=np.float32), SR)
    client = make_client(root=root)
    response = client.post("/api/sessions", files={"method": (None, "mono"), "folder": (None, "songs/one/stems")})
    assert response.status_code == 201, response.text
    state = _wait(client, response.json()["id"])
    assert state["status"] == "ready" and state["params"]["channels"] == params.to_dict()["channels"]
    assert state["reference"] is not None


def test_an_unpacked_reaper_zip_opens_as_a_folder_session(make_client, root):
    """The studio's REAPER zip unpacked under the root: opening its folder takes the project's
    settings and its tracks' media files (in stems/) as the stems."""
    client = make_client(root=root)
    state = _open(client)
    edited = _edited(state["params"], snare={"gain_db": -7.25, "pan": -0.4})
    client.put(f"/api/sessions/{state['id']}/params", json=edited)
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/sessions/{state['id']}/reaper.zip").content))
    archive.extractall(root / "from_reaper")
    response = client.post("/api/sessions", files={"method": (None, "mono"), "folder": (None, "from_reaper")})
    assert response.status_code == 201, response.text
    opened = _wait(client, response.json()["id"])
    assert opened["status"] == "ready" and opened["method"] == "reaper"
    assert [s["name"] for s in opened["stems"]] == ["kick", "overhead", "snare"]
    snare = ConsoleParams.from_dict(opened["params"]).channel("snare")
    assert (snare.gain_db, snare.pan) == pytest.approx((-7.25, -0.4), abs=1e-6)
