"""Studio speed: opening a session, a fader edit heard in the page, and the exact re-render.

Usage::

    python benchmarks/studio_speed.py            # 8 stems x 30 s, 5 runs, writes benchmarks/results/studio.md
    python benchmarks/studio_speed.py --quick    # 8 stems x 5 s, 2 runs, prints only

Runs the real server (uvicorn, in a thread of this process) on 127.0.0.1, pinned to two
CPU cores (``sched_setaffinity``; torch uses 2 threads), and measures on 8 stems (16-bit
WAV, a synthesized song of `mixdown.synth.demo` with the demo's stems: kit, bass, keys;
the overhead stereo), method ``rules``:

Over HTTP (httpx):

1. **Session open**: POST the 8 stems, poll the session every 50 ms until it is mixed,
   GET the mix WAV. Each run is a new session.
2. **Exact re-render**: PUT the settings with one channel fader moved (the response
   carries the new loudness reading, so the render is done), then GET the new mix WAV.

In the page (Debian's chromium driven by Playwright, skipped where it is missing), one
session of the same stems opened through the page:

3. **Session open in the page**: from the click on "Mix" to the exact mix decoded and
   playable, and to the live preview ready (every channel strip and the reverb fetched and
   decoded).
4. **Fader edit audible**: with the session playing and one channel soloed (so the
   master is that channel), a mouse drag of its fader by 20 dB; measured in the page with
   ``performance.now()`` from the fader's ``input`` event to the first moment the level
   of the page's output (an AnalyserNode over the last 1024 samples, 23 ms) has moved by
   6 dB. The preview plays the edit; no server round trip is involved.
5. **Exact render heard in the page**: from the fader's release to the page playing the
   server's exact render of the new settings (the edited mix re-rendered, sent and
   decoded, the preview crossfaded out).

Reported: the median and all runs of the wall times (and, over HTTP, of the CPU time the
process used meanwhile: user + system, all threads, server and client), with the
machine's load average: on a shared machine other jobs slow everything down (the wall
time most), so compare runs at similar load. The browser's processes inherit the pinning.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import resource
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import soundfile as sf
import torch
import uvicorn

from mixdown.synth.demo import synthesize_song
from mixdown.web.studio.app import create_app
from mixdown.web.studio.service import StudioConfig

SR = 44100
CORES = 2
POLL_S = 0.05
RESULTS = Path(__file__).parent / "results" / "studio.md"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FADER_MOVE_DB = 20.0
HEARD_DB = 6.0


def pin_cores(cores: int) -> int:
    """Restrict this process to ``cores`` CPUs (when it has more) and torch to as many threads."""
    available = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, set(available[:cores]))
    torch.set_num_threads(cores)
    return len(os.sched_getaffinity(0))


def stem_audio(seconds: float) -> dict[str, bytes]:
    """The demo's 8 stems of a synthesized song as 16-bit WAV file bytes."""
    files = {}
    for name, audio in synthesize_song(7, sample_rate=SR, duration_s=seconds).items():
        buffer = io.BytesIO()
        sf.write(buffer, audio.T, SR, subtype="PCM_16", format="WAV")
        files[f"{name}.wav"] = buffer.getvalue()
    return files


def serve(data_dir: Path) -> tuple[str, uvicorn.Server, threading.Thread]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(StudioConfig(data_dir=data_dir)), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(POLL_S)
    return f"http://127.0.0.1:{port}", server, thread


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(run) -> tuple[float, float]:
    """``(wall seconds, CPU seconds)`` of ``run()``."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    run()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def upload_to_mix(client: httpx.Client, files: dict[str, bytes]) -> tuple[str, dict]:
    """Upload, wait for the mix, fetch the mix WAV; returns the session id and state."""
    response = client.post("/api/sessions", data={"method": "rules"},
                           files=[("stems", (name, data, "audio/wav")) for name, data in files.items()])
    response.raise_for_status()
    session_id = response.json()["id"]
    while (state := client.get(f"/api/sessions/{session_id}").json())["status"] == "mixing":
        time.sleep(POLL_S)
    if state["status"] != "ready":
        raise RuntimeError(state["message"])
    client.get(f"/api/sessions/{session_id}/mix.wav", params={"monitor": 1}).raise_for_status()
    return session_id, state


def fader_edit(client: httpx.Client, session_id: str, params: dict, channel: int, gain_db: float) -> None:
    """Move one fader and fetch the re-rendered mix WAV."""
    params["channels"][channel]["gain_db"] = gain_db
    client.put(f"/api/sessions/{session_id}/params", json=params).raise_for_status()
    client.get(f"/api/sessions/{session_id}/mix.wav", params={"monitor": 1}).raise_for_status()


# In the page: note when the fader's first input event comes and when the output level has moved.
_PROBE = """(name) => {
    const app = window.mixdownStudio;
    const probe = window.benchProbe = { before: app.player.levelDb(), input: null, heard: null };
    const fader = document.querySelector(`.strip[data-name="${name}"] .fader`);
    const onInput = () => {
        fader.removeEventListener('input', onInput);
        probe.input = performance.now();
        const poll = setInterval(() => {
            if (Math.abs(app.player.levelDb() - probe.before) > HEARD_DB) {
                probe.heard = performance.now();
                clearInterval(poll);
            }
        }, 1);
    };
    fader.addEventListener('input', onInput);
}""".replace("HEARD_DB", str(HEARD_DB))


def _fader_y(box: dict, db: float) -> float:
    """Where a channel fader (+12..-60 dB, top to bottom) sits at ``db``, in page pixels."""
    return box["y"] + box["height"] * (12.0 - db) / 72.0


def browser_runs(url: str, folder: Path, runs: int) -> dict[str, list[float]] | str:
    """Session open, fader edit audible and exact render heard, measured in chromium (seconds)."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "playwright is not installed"
    out: dict[str, list[float]] = {"open_playable": [], "open_preview": [], "audible": [], "exact": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            for run in range(runs):
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(url)
                page.wait_for_selector("#open-view:not([hidden])")
                page.set_input_files("#stem-files", [str(p) for p in sorted(folder.glob("*.wav"))])
                start = time.perf_counter()
                page.click("#start")
                page.wait_for_function("window.mixdownStudio.player.buffers.edited && document.body.dataset.busy === 'false'",
                                       timeout=300_000, polling=20)
                out["open_playable"].append(time.perf_counter() - start)
                page.wait_for_selector("body[data-preview='ready']", timeout=300_000)
                out["open_preview"].append(time.perf_counter() - start)
                if run < runs - 1:
                    page.close()
            name = "bass"
            page.click(f".strip[data-name='{name}'] .solo")
            page.wait_for_selector("body[data-busy='false'][data-hearing='exact']", timeout=300_000)
            page.click("#play")
            page.wait_for_function("window.mixdownStudio.player.playing", timeout=10_000)
            for run in range(runs):
                edit = int(page.evaluate("document.body.dataset.edit"))
                page.wait_for_timeout(400)
                page.evaluate(_PROBE, name)
                box = page.locator(f".strip[data-name='{name}'] .fader").bounding_box()
                value = float(page.input_value(f".strip[data-name='{name}'] .fader"))
                target = value - FADER_MOVE_DB if run % 2 == 0 else value + FADER_MOVE_DB
                x = box["x"] + box["width"] / 2
                page.mouse.move(x, _fader_y(box, value))
                page.mouse.down()
                page.mouse.move(x, _fader_y(box, target))
                page.wait_for_function("window.benchProbe.heard !== null", timeout=10_000, polling=5)
                probe = page.evaluate("window.benchProbe")
                out["audible"].append((probe["heard"] - probe["input"]) / 1000.0)
                release = time.perf_counter()
                page.mouse.up()
                page.wait_for_selector(f"body[data-edit='{edit + 1}'][data-busy='false'][data-hearing='exact']",
                                       timeout=300_000)
                out["exact"].append(time.perf_counter() - release)
            page.close()
        finally:
            browser.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 s stems, 2 runs; does not write results")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args(argv)
    seconds, runs = (5.0, 2) if args.quick else (30.0, 5)
    runs = args.runs or runs
    cores = pin_cores(CORES)
    files = stem_audio(seconds)
    upload_mib = sum(len(data) for data in files.values()) / 2**20
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp:
        url, server, thread = serve(Path(tmp) / "data")
        with httpx.Client(base_url=url, timeout=300, headers={"Origin": url}) as client:
            upload_to_mix(client, stem_audio(2.0))  # warm-up: imports, compiled-kernel cache
            uploads, sessions = [], []
            for _ in range(runs):
                uploads.append(timed(lambda: sessions.append(upload_to_mix(client, files))))
            session_id, state = sessions[-1]
            params = state["params"]
            fader_edit(client, session_id, params, 1, params["channels"][1]["gain_db"] - 1.0)  # warm-up
            edits = [timed(lambda run=run: fader_edit(client, session_id, params, 1 + run % 6, -3.0 - run))
                     for run in range(2 * runs)]
        folder = Path(tmp) / "stems"
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        page = browser_runs(url, folder, runs)
        server.should_exit = True
        thread.join()
    load_after = os.getloadavg()

    def row(step: str, target: str, runs_: list[tuple[float, float]]) -> str:
        walls, cpus = [w for w, _ in runs_], [c for _, c in runs_]
        return (f"| {step} | {target} | **{statistics.median(walls):.2f}** | {', '.join(f'{t:.2f}' for t in walls)} | "
                f"{statistics.median(cpus):.2f} | {', '.join(f'{t:.2f}' for t in cpus)} |")

    def page_row(step: str, target: str, values: list[float], unit: str = "s") -> str:
        scale, digits = (1000.0, 0) if unit == "ms" else (1.0, 2)
        shown = [v * scale for v in values]
        return (f"| {step} | {target} | **{statistics.median(shown):.{digits}f} {unit}** | "
                f"{', '.join(f'{v:.{digits}f}' for v in shown)} |")

    lines = [
        "# Studio speed",
        "",
        (f"Command: `python benchmarks/studio_speed.py{' --quick' if args.quick else ''}` on "
         f"{platform.processor() or platform.machine()}, server pinned to {cores} cores ({torch.get_num_threads()} "
         f"torch threads), Python {platform.python_version()}, torch {torch.__version__}. The server (uvicorn) and "
         "the HTTP client run in one process on 127.0.0.1; the browser is Debian's chromium (headless, Playwright). "
         f"Load average (1 min) of the machine before / after: {load_before[0]:.1f} / {load_after[0]:.1f} on "
         f"{os.cpu_count()} CPUs (other jobs share it)."),
        "",
        f"Stems: 8 x {seconds:.0f} s at 44.1 kHz, 16-bit WAV ({upload_mib:.1f} MiB upload), method `rules`.",
        "",
        "## Over HTTP",
        "",
        "| step | target | wall median (s) | wall, all runs (s) | CPU median (s) | CPU, all runs (s) |",
        "|---|---|---|---|---|---|",
        row("session open: upload -> mixed -> mix WAV received", "< 3 s", uploads),
        row("exact re-render: fader edit -> re-rendered mix WAV received", "< 1 s", edits),
        "",
        "## In the page (chromium)",
        "",
    ]
    if isinstance(page, str):
        lines += [f"Not measured: {page}.", ""]
    else:
        lines += [
            "| step | target | median | all runs |",
            "|---|---|---|---|",
            page_row("session open: click 'Mix' -> exact mix playable", "< 3 s", page["open_playable"]),
            page_row("session open: click 'Mix' -> live preview ready (strips decoded)", "", page["open_preview"]),
            page_row(f"fader edit audible: fader input -> output level moved {HEARD_DB:g} dB (in-page clock)",
                     "< 100 ms", page["audible"], unit="ms"),
            page_row("exact re-render heard: fader release -> exact mix playing", "< 1 s", page["exact"]),
            "",
        ]
    lines += [
        *([(f"**Caveat**: the machine was oversubscribed during this run (load average up to "
             f"{max(load_before[0], load_after[0]):.1f} on {os.cpu_count()} CPUs), so the wall times include "
             "waiting for other jobs and do not show whether the targets are met; re-run on an idle machine."), ""]
          if max(load_before[0], load_after[0]) > os.cpu_count() else []),
        ("How: each channel strip (EQ, compressor) is computed once per setting and cached "
         "(`mixdown.web.studio.engine.MixEngine`); a fader, pan, mute or send edit re-sums the cached strips "
         "through `console.render` (pan, buses, reverb, loudness, limiter) without re-running any channel's "
         "EQ or compressor. Strips are computed on 2 threads (the DSP kernels release the GIL). The page plays "
         "the same strips through Web Audio gains with the console's pan law while the exact render is made, "
         "so a fader move is heard without waiting for the server."),
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report)
        print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
