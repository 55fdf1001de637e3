"""End to end in a real browser: Debian's headless chromium driven by Playwright.

Uploads the bundled demo stems through the page, waits for the mix, moves the master
fader, checks that the rendered mix's loudness moved by the fader's amount (measured
with pyloudnorm on the WAV the server returns, and on the page's meter), downloads the
settings and keeps a screenshot under ``$MIXDOWN_ARTIFACTS`` (default: tmp_path).

The live console (headless chromium has no audio device, but its AudioContext runs and
the page's analysers and meter worklets read what it plays): meters move while playing
and read the server's loudness; a mouse drag on a fader is heard (the output level
measured in the page) within 100 ms of its input event, solo at once; EQ handles dragged
and wheeled on the curve and a band bypassed change the settings; an A/B switch is a
crossfade; a bus fader moves its members. The page's math (pan law, EQ curve,
compressor curve, K-weighted loudness, true peak) is checked against mixdown's.
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


# ------------------------------------------------------------- live preview, meters, EQ handles, buses

PREVIEW_SR = 44100


def _preview_stems(folder: Path) -> list[Path]:
    """Three 3 s stems: kick and snare noise bursts (drum classes) and a loud steady bass sine."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 3 * PREVIEW_SR
    rng = np.random.default_rng(0)
    envelope = np.exp(-((np.arange(n) % (PREVIEW_SR // 4)) / (0.05 * PREVIEW_SR)))
    t = np.arange(n) / PREVIEW_SR
    audio = {"kick": 0.05 * rng.standard_normal(n) * envelope,
             "snare": 0.05 * rng.standard_normal(n) * np.roll(envelope, PREVIEW_SR // 8),
             "bass": 0.5 * np.sin(2 * np.pi * 110 * t)}
    for name, signal in audio.items():
        sf.write(folder / f"{name}.wav", signal.astype(np.float32), PREVIEW_SR)
    return sorted(folder.glob("*.wav"))


def _open_preview_session(chromium_browser, studio_url, tmp_path):
    """A page on a fresh session of the preview stems (method mono), its strips loaded for the preview."""
    page = chromium_browser.new_page(viewport={"width": 1500, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
    page.goto(studio_url)
    page.wait_for_selector("#open-view:not([hidden])")
    page.select_option("#method", "mono")
    page.set_input_files("#stem-files", [str(p) for p in _preview_stems(tmp_path / "stems")])
    page.click("#start")
    page.wait_for_selector("body[data-preview='ready'][data-busy='false'][data-hearing='exact']", timeout=120_000)
    return page, problems


def _play(page) -> None:
    page.click("#play")
    page.wait_for_function("window.mixdownStudio.player.playing && window.mixdownStudio.player.meters.master"
                           " && window.mixdownStudio.player.meters.master.rms > 0.01")


METERS = """() => Object.fromEntries(Object.entries(window.mixdownStudio.player.meters).map(
    ([id, m]) => [id, {peak: Math.max(...m.peak), rms: m.rms, momentary: m.momentary, shortTerm: m.shortTerm,
                       truePeak: m.truePeak, frame: m.frame}]))"""


def test_meters_move_while_playing(chromium_browser, studio_url, tmp_path):
    """Channel and master meters (peak, RMS, momentary and short-term loudness, true peak) read what plays."""
    page, problems = _open_preview_session(chromium_browser, studio_url, tmp_path)
    try:
        assert page.evaluate(METERS) == {} or all(m["peak"] == 0 for m in page.evaluate(METERS).values())
        _play(page)
        first = page.evaluate(METERS)
        page.wait_for_timeout(400)
        second = page.evaluate(METERS)
        assert {"master", "ch:kick", "ch:snare", "ch:bass"} <= set(second)
        for meter in ("master", "ch:kick", "ch:snare", "ch:bass"):
            assert second[meter]["frame"] > first[meter]["frame"]  # new readings keep coming
            assert second[meter]["peak"] > 0 and second[meter]["rms"] > 0
        # The bursts come and go: the drum meters move between readings; the steady bass does not.
        assert (first["ch:kick"]["peak"], first["ch:kick"]["rms"]) != (second["ch:kick"]["peak"], second["ch:kick"]["rms"])
        # A sine of amplitude 0.5 after the pan law's -3 dB: peak 0.354, RMS 0.25 (its momentary
        # loudness after K-weighting at 110 Hz is under the RMS).
        assert second["ch:bass"]["peak"] == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
        assert second["ch:bass"]["rms"] == pytest.approx(0.25, rel=0.01)
        state = page.evaluate("window.mixdownStudio.session")
        page.wait_for_timeout(2700)  # short-term loudness fills its 3 s window
        settled = page.evaluate(METERS)["master"]
        # The loops are steady, so the master's momentary and short-term loudness sit at the integrated
        # loudness the server measured on the exact mix.
        assert settled["shortTerm"] == pytest.approx(state["mix"]["loudness_lufs"], abs=0.5)
        assert settled["momentary"] == pytest.approx(state["mix"]["loudness_lufs"], abs=1.5)
        assert 20 * np.log10(settled["truePeak"]) <= state["params"]["master"]["ceiling_dbtp"] + 0.2
        assert page.text_content("#lufs-s") != "−∞" and page.text_content("#true-peak") != "−∞"
        assert "ceiling" in page.text_content("#master .live-readings")
        assert problems == []
    finally:
        page.close()


def test_fader_drag_is_heard_within_100_ms(chromium_browser, studio_url, tmp_path):
    """A mouse drag on the bass fader: the page measures, from the input event, when the level it plays
    (an analyser on the output) falls; then the exact render takes over at the new level."""
    page, problems = _open_preview_session(chromium_browser, studio_url, tmp_path)
    try:
        _play(page)
        page.wait_for_timeout(300)
        page.evaluate("""() => {
            const app = window.mixdownStudio;
            const probe = window.fader = { before: app.player.levelDb(), input: null, heard: null };
            document.querySelector(".strip[data-name='bass'] .fader").addEventListener('input', () => {
                if (probe.input !== null) return;
                probe.input = performance.now();
                const poll = setInterval(() => {
                    if (app.player.levelDb() < probe.before - 6) { probe.heard = performance.now(); clearInterval(poll); }
                }, 1);
            });
        }""")
        box = page.locator(".strip[data-name='bass'] .fader").bounding_box()
        x = box["x"] + box["width"] / 2
        y_zero = box["y"] + box["height"] * (12 / 72)  # 0 dB on a +12..-60 dB throw, top to bottom
        page.mouse.move(x, y_zero)
        page.mouse.down()
        page.mouse.move(x, box["y"] + box["height"] * (52 / 72))  # to -40 dB
        page.wait_for_function("window.fader.heard !== null", timeout=5_000)
        probe = page.evaluate("window.fader")
        gain = page.evaluate("window.mixdownStudio.player.channels.get('bass').fader.gain.value")
        page.mouse.up()
        latency_ms = probe["heard"] - probe["input"]
        assert latency_ms < 100, f"the fader move was heard after {latency_ms:.0f} ms"
        assert gain < 10 ** (-30 / 20)  # the preview's bass fader moved during the drag
        gain_db = float(page.input_value(".strip[data-name='bass'] .db"))
        assert gain_db < -30
        page.wait_for_selector("body[data-edit='1'][data-busy='false'][data-hearing='exact']", timeout=60_000)
        state = page.evaluate("window.mixdownStudio.session")
        assert next(c for c in state["params"]["channels"] if c["name"] == "bass")["gain_db"] == gain_db
        # The exact mix is re-normalised to the loudness target (the drums come up), so the master
        # level recovers; the bass channel's meter stays down.
        page.wait_for_timeout(300)
        assert page.evaluate("window.mixdownStudio.player.meters['ch:bass'].rms") < 0.25 * 10 ** (-30 / 20)
        # Solo is heard at once too: in the click's own task the other channels are off in the preview.
        heard = page.evaluate("""() => {
            document.querySelector(".strip[data-name='kick'] .solo").click();
            const channels = window.mixdownStudio.player.channels;
            return { hearing: document.body.dataset.hearing, kick: channels.get('kick').state.audible,
                     bass: channels.get('bass').state.audible, muteGain: channels.get('bass').mute.gain.value };
        }""")
        assert heard["hearing"] == "preview" and heard["kick"] and not heard["bass"]
        page.wait_for_function("window.mixdownStudio.player.channels.get('bass').mute.gain.value < 0.01", timeout=1_000)
        page.wait_for_selector("body[data-busy='false'][data-hearing='exact']", timeout=60_000)
        assert page.evaluate("window.mixdownStudio.session.solo") == ["kick"]
        assert problems == []
    finally:
        page.close()


def test_eq_handle_drag_wheel_and_bypass_change_the_params(chromium_browser, studio_url, tmp_path):
    page, problems = _open_preview_session(chromium_browser, studio_url, tmp_path)
    try:
        page.click(".strip[data-name='snare'] .eq-thumb")
        page.click("#detail button:has-text('+ band')")
        page.wait_for_selector("body[data-edit='1'][data-busy='false']")
        canvas = page.locator("#detail-curve").bounding_box()
        handle = page.evaluate("window.mixdownStudio.eqHandles[0]")
        start_x, start_y = canvas["x"] + handle["x"], canvas["y"] + handle["y"]
        page.mouse.move(start_x, start_y)
        page.mouse.down()
        page.mouse.move(start_x + 120, start_y - 40, steps=4)
        page.mouse.up()
        page.wait_for_selector("body[data-edit='2'][data-busy='false']")
        band = page.evaluate("window.mixdownStudio.session.params.channels.find(c => c.name === 'snare').eq[0]")
        assert band["type"] == "peak" and band["freq_hz"] > 1500 and band["gain_db"] > 2  # right and up
        assert page.input_value("#detail input[aria-label='band 1 freq_hz']") == str(band["freq_hz"]).removesuffix(".0")
        moved = page.evaluate("window.mixdownStudio.eqHandles[0]")
        page.mouse.move(canvas["x"] + moved["x"], canvas["y"] + moved["y"])
        page.mouse.wheel(0, -100)  # one notch up: Q x 1.1
        page.wait_for_selector("body[data-edit='3'][data-busy='false']")
        q = page.evaluate("window.mixdownStudio.session.params.channels.find(c => c.name === 'snare').eq[0].q")
        assert q == pytest.approx(band["q"] * 1.1, abs=0.002)
        page.uncheck("#detail input[aria-label='band 1 on']")  # bypass: out of the settings, kept by the page
        page.wait_for_selector("body[data-edit='4'][data-busy='false']")
        assert page.evaluate("window.mixdownStudio.session.params.channels.find(c => c.name === 'snare').eq") == []
        assert page.locator("#detail tr.bypassed").count() == 1
        page.check("#detail input[aria-label='band 1 on']")
        page.wait_for_selector("body[data-edit='5'][data-busy='false']")
        back = page.evaluate("window.mixdownStudio.session.params.channels.find(c => c.name === 'snare').eq")
        assert back == [{**band, "q": q}]
        assert problems == []
    finally:
        page.close()


def test_ab_switch_is_a_crossfade(chromium_browser, studio_url, tmp_path):
    """Switching B -> A while playing ramps both gains over tens of milliseconds instead of cutting."""
    page, problems = _open_preview_session(chromium_browser, studio_url, tmp_path)
    try:
        _play(page)
        trace = page.evaluate("""() => new Promise((resolve) => {
            const player = window.mixdownStudio.player;
            const samples = [{ t: 0, a: player.gains.model.gain.value, b: player.gains.edited.gain.value }];
            const t0 = performance.now();
            const poll = setInterval(() => {
                samples.push({ t: performance.now() - t0, a: player.gains.model.gain.value,
                               b: player.gains.edited.gain.value });
                if (performance.now() - t0 > 200) { clearInterval(poll); resolve(samples); }
            }, 1);
            document.querySelector('[data-source=model]').click();
        })""")
        assert trace[0]["b"] == pytest.approx(1.0) and trace[0]["a"] == pytest.approx(0.0)
        assert trace[-1]["a"] == pytest.approx(1.0) and trace[-1]["b"] == pytest.approx(0.0)
        middle = [s for s in trace if 0.05 < s["a"] < 0.95]
        assert middle, "no intermediate gains: a hard cut"
        # A linear crossfade: a + b stays 1. The two AudioParams are read one after the other while the audio
        # thread advances, so a read may straddle a render quantum (128 frames = 2.9 ms of the 40 ms fade at
        # 44.1 kHz, a step of 0.073); under load it can straddle two.
        quantum_step = 2 * 128 / 44100 / 0.04
        assert all(s["a"] + s["b"] == pytest.approx(1.0, abs=quantum_step) for s in middle)
        # The poll (a 1-ms timer, throttled under load) sees the fade's end late, never early: a hard cut ends
        # within a render quantum (3 ms) of the click, the 40-ms crossfade no sooner than 40 ms after it.
        ended_ms = min(s["t"] for s in trace if s["a"] >= 0.999)
        assert ended_ms >= 20
        assert "active" in page.get_attribute("[data-source=model]", "class")
        assert problems == []
    finally:
        page.close()


def test_bus_fader_moves_its_members(chromium_browser, studio_url, tmp_path):
    """A drums bus (kick, snare): its fader scales the members in the preview during the drag and,
    on release, writes the members' gains; the bass is untouched."""
    page, problems = _open_preview_session(chromium_browser, studio_url, tmp_path)
    try:
        page.click("#group-drums")
        page.wait_for_selector(".group-strip[data-group='drums']")
        assert page.text_content(".group-strip[data-group='drums'] .members") == "kick, snare"
        _play(page)
        page.wait_for_function("window.mixdownStudio.player.meters['group:drums']?.rms > 0")
        box = page.locator(".group-strip[data-group='drums'] .fader").bounding_box()
        x = box["x"] + box["width"] / 2
        page.mouse.move(x, box["y"] + box["height"] * (12 / 36))  # 0 dB on a +12..-24 dB throw
        page.mouse.down()
        page.mouse.move(x, box["y"] + box["height"] * (32 / 36))  # -20 dB
        page.wait_for_function("document.body.dataset.hearing === 'preview'")
        gains = page.evaluate("""() => Object.fromEntries([...window.mixdownStudio.player.channels].map(
            ([name, ch]) => [name, ch.state.gainDb]))""")
        bus_db = float(page.input_value(".group-strip[data-group='drums'] .db"))
        assert -25 < bus_db < -15  # about where the mouse went
        assert gains["kick"] == pytest.approx(bus_db, abs=0.01) and gains["snare"] == pytest.approx(bus_db, abs=0.01)
        assert gains["bass"] == 0.0
        page.mouse.up()
        page.wait_for_selector("body[data-edit='1'][data-busy='false'][data-hearing='exact']", timeout=60_000)
        channels = {c["name"]: c["gain_db"] for c in page.evaluate("window.mixdownStudio.session.params.channels")}
        assert channels["kick"] == channels["snare"] == pytest.approx(gains["kick"], abs=0.05)
        assert channels["bass"] == 0.0
        assert float(page.input_value(".strip[data-name='kick'] .db")) == channels["kick"]
        assert float(page.input_value(".group-strip[data-group='drums'] .db")) == pytest.approx(channels["kick"], abs=0.05)
        assert problems == []
    finally:
        page.close()


def test_page_dsp_matches_the_console(chromium_browser, studio_url):
    """Known answers for the page's math against mixdown's: the pan law, the EQ curve, the compressor's
    static curve, and the meter worklet's loudness and true peak (rendered offline) against
    mixdown.dsp.loudness and mixdown.dsp.true_peak."""
    import torch

    from mixdown.dsp.compressor import static_gain_reduction
    from mixdown.dsp.loudness import loudness_lufs
    from mixdown.dsp.pan import pan_gains
    from mixdown.dsp.true_peak import bs1770_bank, true_peak_dbtp
    from mixdown.params import EQBand
    from mixdown.web.studio.engine import eq_curve_db

    rate = 48000
    t = np.arange(4 * rate) / rate
    signal = np.stack([0.4 * np.sin(2 * np.pi * 997 * t + 0.3), 0.2 * np.sin(2 * np.pi * 5003 * t + 1.0)])
    bands = [EQBand("highpass", 80.0, 0.0, 0.707), EQBand("peak", 1200.0, -4.5, 2.0), EQBand("low_shelf", 200.0, 3.0, 0.8),
             EQBand("high_shelf", 6000.0, 2.5, 0.707), EQBand("lowpass", 15000.0, 0.0, 1.2)]
    freqs = [25.0, 90.0, 400.0, 1200.0, 3000.0, 9000.0, 16000.0]
    bank = bs1770_bank(4)
    page = chromium_browser.new_page()
    try:
        page.goto(studio_url)
        got = page.evaluate("""async ({ bands, freqs, signal, rate, bank }) => {
            const dsp = await import('/static/dsp.js');
            const pans = [-1, -0.3, 0, 0.5, 1].flatMap((p) => [dsp.panGains(p, false), dsp.panGains(p, true)]);
            const eq = dsp.eqCurveDb(bands, freqs, 44100);
            const comp = { threshold_db: -20, ratio: 4, knee_db: 6 };
            const reduction = [-40, -23, -20, -17, -5].map((level) => dsp.staticGainReductionDb(level, comp));
            const ctx = new OfflineAudioContext(2, signal[0].length, rate);
            await ctx.audioWorklet.addModule('/static/meter-worklet.js');
            const readings = [];
            const meter = new AudioWorkletNode(ctx, 'mixdown-meter', { numberOfInputs: 1, numberOfOutputs: 1,
                outputChannelCount: [1], channelCount: 2, channelCountMode: 'explicit',
                processorOptions: { truePeak: bank } });
            meter.port.onmessage = (event) => readings.push(event.data);
            const buffer = ctx.createBuffer(2, signal[0].length, rate);
            buffer.copyToChannel(Float32Array.from(signal[0]), 0);
            buffer.copyToChannel(Float32Array.from(signal[1]), 1);
            const source = ctx.createBufferSource();
            source.buffer = buffer;
            source.connect(meter).connect(ctx.destination);
            source.start();
            await ctx.startRendering();
            await new Promise((resolve) => setTimeout(resolve, 200));  // the last messages
            const last = readings[readings.length - 1];
            return { pans, eq, reduction, momentary: last.momentary, shortTerm: last.shortTerm,
                     truePeak: Math.max(...readings.map((r) => r.truePeak)), frames: last.frame };
        }""", {"bands": [b.__dict__ for b in bands], "freqs": freqs, "signal": signal.tolist(), "rate": rate,
               "bank": {"taps": bank.taps.tolist(), "first": bank.first}})
    finally:
        page.close()
    pans = torch.tensor([-1, -0.3, 0, 0.5, 1], dtype=torch.float64)
    expected = torch.stack([pan_gains(pans, torch.zeros(5, dtype=torch.bool)),
                            pan_gains(pans, torch.ones(5, dtype=torch.bool))], dim=1).reshape(10, 2)
    np.testing.assert_allclose(got["pans"], expected.numpy(), atol=1e-12)
    np.testing.assert_allclose(got["eq"], eq_curve_db(bands, np.array(freqs), 44100), atol=1e-9)
    np.testing.assert_allclose(got["reduction"], static_gain_reduction(
        torch.tensor([-40.0, -23.0, -20.0, -17.0, -5.0], dtype=torch.float64), -20.0, 4.0, 6.0).numpy(), atol=1e-9)
    # Steady tones: the last 400 ms and 3 s windows read the whole signal's loudness.
    lufs = loudness_lufs(signal, rate)
    assert got["frames"] > 3.9 * rate
    assert got["shortTerm"] == pytest.approx(lufs, abs=0.02) and got["momentary"] == pytest.approx(lufs, abs=0.02)
    assert 20 * np.log10(got["truePeak"]) == pytest.approx(true_peak_dbtp(signal.astype(np.float32), rate), abs=0.01)
