"""End to end in a real browser: Debian's headless chromium driven by Playwright.

Uploads the bundled demo stems through the page, waits for the mix, moves the master
fader, checks that the rendered mix's loudness moved by the fader's amount (measured
with pyloudnorm on the WAV the server returns, and on the page's meter), downloads the
settings and keeps a screenshot under ``$MIXDOWN_ARTIFACTS`` (default: tmp_path).
"""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
import uvicorn

from mixdown.cli import main
from mixdown.web.studio.app import create_app
from mixdown.web.studio.service import StudioConfig

FADER_DB = -6.0


@pytest.fixture
def studio_url(tmp_path):
    """The studio served by uvicorn in a thread on a free 127.0.0.1 port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(StudioConfig(data_dir=tmp_path / "data"), allowed_hosts=["127.0.0.1"])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def _loudness(wav: bytes) -> float:
    audio, rate = sf.read(io.BytesIO(wav), dtype="float64")
    return pyloudnorm.Meter(rate, filter_class="DeMan").integrated_loudness(audio)


def test_upload_mix_fader_download(chromium_browser, studio_url, tmp_path):
    assert main(["demo", "-o", str(tmp_path / "demo")]) == 0
    stems = sorted((tmp_path / "demo" / "stems").glob("*.wav"))
    artifacts = Path(os.environ.get("MIXDOWN_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)

    page = chromium_browser.new_page(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
    try:
        page.goto(studio_url)
        page.wait_for_selector("#open-view:not([hidden])")
        page.set_input_files("#stem-files", [str(p) for p in stems])
        assert page.locator("#file-list li").count() == len(stems)
        assert page.input_value("#method") == "rules"
        page.click("#start")
        page.wait_for_selector("#studio-view:not([hidden])", timeout=120_000)
        page.wait_for_selector("body[data-edit='0'][data-busy='false']")
        assert page.locator(".strip[data-name]").count() == len(stems)
        session_id = page.evaluate("location.hash.slice(1)")
        mix_url = f"{studio_url}/api/sessions/{session_id}/mix.wav"
        before = _loudness(httpx.get(mix_url).content)
        shown_before = float(page.text_content("#mix-lufs"))
        assert shown_before == pytest.approx(before, abs=0.05)

        page.fill("#master .fader", str(FADER_DB))  # sets the range and fires input + change, as a drag does
        page.wait_for_selector("body[data-edit='1'][data-busy='false']")
        assert float(page.input_value("#master .db")) == FADER_DB
        after = _loudness(httpx.get(mix_url).content)
        # The trim comes after loudness normalisation, so the mix moves by the fader's gain; the
        # true-peak limiter works less on the quieter mix, hence a small tolerance.
        assert after - before == pytest.approx(FADER_DB, abs=0.3)
        assert float(page.text_content("#mix-lufs")) == pytest.approx(after, abs=0.05)

        page.click("#download-toggle")
        with page.expect_download() as download:
            page.click("#dl-params")
        saved = tmp_path / "downloaded.params.json"
        download.value.save_as(saved)
        params = json.loads(saved.read_text())
        assert params["master"]["gain_db"] == FADER_DB
        assert sorted(ch["name"] for ch in params["channels"]) == sorted(p.stem for p in stems)

        page.click("#download-toggle")  # close the menu
        page.click(".strip[data-name='snare'] .eq-thumb")
        page.wait_for_selector("#detail:not([hidden]) #detail-curve")
        page.screenshot(path=str(artifacts / "studio.png"), full_page=True)
        assert (artifacts / "studio.png").stat().st_size > 10_000
        assert problems == []
    finally:
        page.close()


def test_playback_ab_and_undo_in_the_page(chromium_browser, studio_url, tmp_path):
    """Play and switch A/B while playing (Web Audio); mute a channel, undo with the keyboard."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "stems"
    folder.mkdir()
    for name in ("kick", "bass"):
        sf.write(folder / f"{name}.wav", (0.1 * rng.standard_normal(44100)).astype(np.float32), 44100)
    page = chromium_browser.new_page()
    try:
        page.goto(studio_url)
        page.select_option("#method", "mono")
        page.set_input_files("#stem-files", [str(folder / "kick.wav"), str(folder / "bass.wav")])
        page.click("#start")
        page.wait_for_selector("body[data-edit='0'][data-busy='false']:has(#studio-view:not([hidden]))", timeout=60_000)
        page.click("#play")
        page.wait_for_function("parseFloat(document.querySelector('#clock').textContent.split(':')[1]) > 0.2")  # playing
        page.click("[data-source=model]")
        assert "active" in page.get_attribute("[data-source=model]", "class")
        assert "playing" in page.get_attribute("#play", "class")
        page.keyboard.press("Space")
        assert "playing" not in page.get_attribute("#play", "class")
        lufs = page.text_content("#mix-lufs")
        page.click(".strip[data-name='kick'] .mute")
        page.wait_for_selector("body[data-edit='1'][data-busy='false']")
        assert page.get_attribute(".strip[data-name='kick'] .mute", "aria-pressed") == "true"
        page.keyboard.press("Control+z")
        page.wait_for_selector("body[data-edit='0'][data-busy='false']")
        assert page.get_attribute(".strip[data-name='kick'] .mute", "aria-pressed") == "false"
        assert page.text_content("#mix-lufs") == lufs
    finally:
        page.close()
