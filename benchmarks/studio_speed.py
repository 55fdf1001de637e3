"""Studio speed: upload to playable mix, and one fader edit to a re-rendered mix.

Usage::

    python benchmarks/studio_speed.py            # 8 stems x 30 s, 5 runs, writes benchmarks/results/studio.md
    python benchmarks/studio_speed.py --quick    # 8 stems x 5 s, 2 runs, prints only

Runs the real server (uvicorn, in a thread of this process) on 127.0.0.1 and talks HTTP to
it with httpx, pinned to two CPU cores (``sched_setaffinity``; torch uses 2 threads):

1. **Upload to playable mix**: POST the 8 stems (16-bit WAV, a synthesized song of
   `mixdown.synth.demo` with the demo's stems: kit, bass, keys; the overhead stereo) with
   method ``rules``, poll the session every 50 ms until it is mixed, GET the mix WAV. Each
   run is a new session.
2. **Fader edit**: PUT the settings with one channel fader moved (the response carries
   the new loudness reading, so the render is done), then GET the new mix WAV.

Reported: the median and all runs of the wall time (the targets: < 3 s and < 1 s) and of
the CPU time the process used meanwhile (user + system, all threads: server and client),
with the machine's load average: on a shared machine other jobs slow both down (the wall
time most), so compare runs at similar load.
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


def pin_cores(cores: int) -> int:
    """Restrict this process to ``cores`` CPUs (when it has more) and torch to as many threads."""
    available = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, set(available[:cores]))
    torch.set_num_threads(cores)
    return len(os.sched_getaffinity(0))


def stem_files(seconds: float) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The demo's 8 stems of a synthesized song as 16-bit WAV uploads."""
    files = []
    for name, audio in synthesize_song(7, sample_rate=SR, duration_s=seconds).items():
        buffer = io.BytesIO()
        sf.write(buffer, audio.T, SR, subtype="PCM_16", format="WAV")
        files.append(("stems", (f"{name}.wav", buffer.getvalue(), "audio/wav")))
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


def upload_to_mix(client: httpx.Client, files: list) -> tuple[str, dict]:
    """Upload, wait for the mix, fetch the mix WAV; returns the session id and state."""
    response = client.post("/api/sessions", data={"method": "rules"}, files=files)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 s stems, 2 runs; does not write results")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args(argv)
    seconds, runs = (5.0, 2) if args.quick else (30.0, 5)
    runs = args.runs or runs
    cores = pin_cores(CORES)
    files = stem_files(seconds)
    upload_mib = sum(len(f[1][1]) for f in files) / 2**20
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as data_dir:
        url, server, thread = serve(Path(data_dir))
        with httpx.Client(base_url=url, timeout=300) as client:
            upload_to_mix(client, stem_files(2.0))  # warm-up: imports, compiled-kernel cache
            uploads, sessions = [], []
            for _ in range(runs):
                uploads.append(timed(lambda: sessions.append(upload_to_mix(client, files))))
            session_id, state = sessions[-1]
            params = state["params"]
            fader_edit(client, session_id, params, 1, params["channels"][1]["gain_db"] - 1.0)  # warm-up
            edits = [timed(lambda run=run: fader_edit(client, session_id, params, 1 + run % 6, -3.0 - run))
                     for run in range(2 * runs)]
        server.should_exit = True
        thread.join()
    load_after = os.getloadavg()

    def row(step: str, target: str, runs_: list[tuple[float, float]]) -> str:
        walls, cpus = [w for w, _ in runs_], [c for _, c in runs_]
        return (f"| {step} | {target} | **{statistics.median(walls):.2f}** | {', '.join(f'{t:.2f}' for t in walls)} | "
                f"{statistics.median(cpus):.2f} | {', '.join(f'{t:.2f}' for t in cpus)} |")

    lines = [
        "# Studio speed",
        "",
        f"Command: `python benchmarks/studio_speed.py{' --quick' if args.quick else ''}` on "
        f"{platform.processor() or platform.machine()}, pinned to {cores} cores ({torch.get_num_threads()} torch "
        f"threads), Python {platform.python_version()}, torch {torch.__version__}. The server (uvicorn) and the HTTP "
        "client run in one process on 127.0.0.1. Load average (1 min) of the machine before / after: "
        f"{load_before[0]:.1f} / {load_after[0]:.1f} (other jobs share it).",
        "",
        f"Stems: 8 x {seconds:.0f} s at 44.1 kHz, 16-bit WAV ({upload_mib:.1f} MiB upload), method `rules`.",
        "",
        "| step | target | wall median (s) | wall, all runs (s) | CPU median (s) | CPU, all runs (s) |",
        "|---|---|---|---|---|---|",
        row("upload -> mixed -> mix WAV received", "< 3 s", uploads),
        row("fader edit -> re-rendered mix WAV received", "< 1 s", edits),
        "",
        *([f"**Caveat**: the machine was oversubscribed during this run (load average up to "
            f"{max(load_before[0], load_after[0]):.1f} on {os.cpu_count()} CPUs), so the wall times include waiting "
            "for other jobs and do not show whether the targets are met; re-run on an idle machine.", ""]
          if max(load_before[0], load_after[0]) > os.cpu_count() else []),
        "How: each channel strip (EQ, compressor, pan) is computed once per setting and cached "
        "(`mixdown.web.studio.engine.MixEngine`); a fader, mute or send edit re-sums the cached strips "
        "through `console.render` (buses, reverb, loudness, limiter) without re-running any channel's "
        "EQ or compressor. Strips are computed on 2 threads (the DSP kernels release the GIL).",
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
