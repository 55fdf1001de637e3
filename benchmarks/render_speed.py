"""Console render speed (vs Spotify's pedalboard) and peak memory of a long session.

Usage::

    python benchmarks/render_speed.py                 # full targets, writes benchmarks/results/render.md
    python benchmarks/render_speed.py --quick         # small sizes, for a smoke run

Measures, on this machine:

1. 8 stereo stems x 180 s at 44.1 kHz through the full channel chain (high-pass, bell,
   high shelf, compressor, fader, pan, reverb send) and master (reverb, loudness
   normalisation, true-peak limiter): median wall time of 5 runs, real-time factor.
2. The same chain with pedalboard (JUCE, C++) as an anchor: HighpassFilter, PeakFilter,
   HighShelfFilter, Compressor, Gain per stem; Reverb on the send bus; Limiter on the
   master. pedalboard is used here only.
3. The same mixdown render in a separate process with libgomp's default spin count, as in
   a process that loaded torch before mixdown (see ``mixdown/__init__.py``).
4. Peak resident memory of a separate process that renders a 10-minute, 32-stem
   session streamed from files (``load_multitrack(..., in_memory=False)``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

import mixdown  # noqa: F401  (before torch: it sets libgomp's spin count, see mixdown/__init__.py)
import torch  # noqa: E402
from mixdown.console import render
from mixdown.multitrack import Multitrack
from mixdown.params import ChannelParams, CompressorParams, ConsoleParams, EQBand

SR = 44100
RESULTS = Path(__file__).parent / "results" / "render.md"


def full_chain(names: list[str]) -> ConsoleParams:
    channels = [ChannelParams(name=n, gain_db=-3.0, pan=round(-0.7 + 1.4 * i / max(len(names) - 1, 1), 3),
                              eq=[EQBand("highpass", 80.0, 0.0, 0.707), EQBand("peak", 1000.0, 4.0, 1.0),
                                  EQBand("high_shelf", 8000.0, -3.0, 0.707)],
                              compressor=CompressorParams(-20.0, 4.0, 5.0, 100.0, 6.0, 3.0), reverb_send_db=-12.0)
                for i, n in enumerate(names)]
    return ConsoleParams(channels=channels, sample_rate=SR, method="benchmark")


def stems(tracks: int, seconds: float, channels: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Band-limited noise bursts: stand-ins with music-like crest factor."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    envelope = np.repeat(rng.uniform(0.05, 1.0, n // 4410 + 1), 4410)[:n].astype(np.float32)
    return {f"stem{i:02d}": (rng.standard_normal((channels, n)).astype(np.float32) * 0.1 * envelope)
            for i in range(tracks)}


def time_mixdown(arrays: dict[str, np.ndarray], runs: int) -> list[float]:
    return [wall for wall, _ in time_mixdown_cpu(arrays, runs)]


def time_mixdown_cpu(arrays: dict[str, np.ndarray], runs: int) -> list[tuple[float, float]]:
    """``(wall, CPU)`` seconds of each render (CPU: all threads, `time.process_time`)."""
    multitrack = Multitrack.from_arrays(arrays, SR)
    params = full_chain(multitrack.names)
    render(Multitrack.from_arrays({k: v[:, :SR] for k, v in arrays.items()}, SR), params)  # warm-up (JIT cache)
    times = []
    for _ in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        render(multitrack, params)
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    return times


def time_pedalboard(arrays: dict[str, np.ndarray], runs: int) -> list[float]:
    import pedalboard as pb

    strip = pb.Pedalboard([pb.HighpassFilter(80.0), pb.PeakFilter(1000.0, 4.0, 1.0), pb.HighShelfFilter(8000.0, -3.0, 0.707),
                           pb.Compressor(-20.0, 4.0, 5.0, 100.0), pb.Gain(-3.0)])
    reverb = pb.Pedalboard([pb.Reverb(room_size=0.6, wet_level=1.0, dry_level=0.0)])
    limiter = pb.Pedalboard([pb.Limiter(-1.0, 100.0)])
    send_gain = 10 ** (-12.0 / 20)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        mix = np.zeros_like(next(iter(arrays.values())))
        send = np.zeros_like(mix)
        for audio in arrays.values():
            out = strip(audio, SR)
            mix += out
            send += out * send_gain
        limiter(mix + reverb(send, SR), SR)
        times.append(time.perf_counter() - start)
    return times


def time_mixdown_default_spin(seconds: float, runs: int) -> list[float]:
    """`time_mixdown` in a fresh process with libgomp's default spin count (300,000), as in a
    process that loaded torch before mixdown (see mixdown/__init__.py)."""
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from render_speed import stems, time_mixdown\n"
        f"print(json.dumps(time_mixdown(stems(8, {seconds!r}, channels=2), {runs})))\n"
    )
    env = {**os.environ, "GOMP_SPINCOUNT": "300000"}
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.split("\n")[-2])


def peak_memory_mib(tracks: int, seconds: float) -> float:
    """Peak RSS of a fresh process rendering ``tracks`` mono file-backed stems of ``seconds``.

    Read from the process's own high-water mark (``VmHWM`` in ``/proc/self/status``, Linux):
    ``ru_maxrss`` also counts the parent's RSS at the fork (Linux carries it across exec), so
    from this benchmark, which holds the speed test's stems, it read 1654 MiB where the
    render itself peaked at 838 MiB. Elsewhere ``ru_maxrss`` is used.
    """
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(1)
        block = SR * 30
        for i in range(tracks):
            with sf.SoundFile(Path(folder) / f"stem{i:02d}.wav", "w", SR, 1, subtype="PCM_16") as f:
                for _ in range(int(seconds * SR) // block):
                    f.write(rng.standard_normal(block).astype(np.float32) * 0.05)
        script = (
            "import resource, sys\n"
            "from mixdown.console import render\n"
            "from mixdown.multitrack import load_multitrack\n"
            f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            "from render_speed import full_chain\n"
            f"mt = load_multitrack({folder!r}, in_memory=False)\n"
            "mix = render(mt, full_chain(mt.names))\n"
            "try:\n"
            "    with open('/proc/self/status') as status:\n"
            "        print(next(line.split()[1] for line in status if line.startswith('VmHWM:')))\n"
            "except OSError:\n"
            "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        )
        out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
        return int(out.stdout.split()[-1]) / 1024.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run); does not write results")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    seconds, mem_tracks, mem_seconds = (20.0, 4, 30.0) if args.quick else (180.0, 32, 600.0)

    arrays = stems(8, seconds, channels=2)
    load_before = os.getloadavg()[0]
    ours_cpu, theirs = [], []
    for _ in range(args.runs):  # interleaved, so that changes in the machine's load hit both alike
        ours_cpu += time_mixdown_cpu(arrays, 1)
        theirs += time_pedalboard(arrays, 1)
    ours = [wall for wall, _ in ours_cpu]
    default_spin = time_mixdown_default_spin(seconds, args.runs)
    load_after = os.getloadavg()[0]
    memory = peak_memory_mib(mem_tracks, mem_seconds)
    ours_med, theirs_med = statistics.median(ours), statistics.median(theirs)
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]

    lines = [
        "# Console render benchmark",
        "",
        f"Command: `python benchmarks/render_speed.py{' --quick' if args.quick else ''}` on "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"Python {platform.python_version()}, torch {torch.__version__}; load average {load_before:.1f} before, "
        f"{load_after:.1f} after (the machine may be shared: compare the ratio, measured run by run).",
        "",
        f"## Full chain, 8 stereo stems x {seconds:.0f} s at 44.1 kHz (median of {args.runs})",
        "",
        "| renderer | median (s) | real-time factor | all runs (s) |",
        "|---|---|---|---|",
        f"| mixdown `console.render` | {ours_med:.2f} | {seconds / ours_med:.0f}x | "
        f"{', '.join(f'{t:.2f}' for t in ours)} |",
        f"| pedalboard (anchor) | {theirs_med:.2f} | {seconds / theirs_med:.0f}x | "
        f"{', '.join(f'{t:.2f}' for t in theirs)} |",
        f"| mixdown, libgomp's default spin (torch loaded before mixdown; separate process, after the others) | "
        f"{statistics.median(default_spin):.2f} | {seconds / statistics.median(default_spin):.0f}x | "
        f"{', '.join(f'{t:.2f}' for t in default_spin)} |",
        "",
        f"mixdown CPU time (all threads), median: {statistics.median(cpu for _, cpu in ours_cpu):.2f} s.",
        "",
        f"mixdown / pedalboard time ratio: **{ours_med / theirs_med:.2f}** (below 1 = mixdown faster; run by run: "
        f"{', '.join(f'{r:.2f}' for r in ratios)}). "
        "The chains are comparable, not identical: pedalboard's reverb is Freeverb and its limiter is not "
        "true-peak; mixdown also measures loudness (BS.1770) and normalises the mix.",
        "",
        f"## Peak memory, {mem_tracks} mono stems x {mem_seconds / 60:.0f} min streamed from files",
        "",
        f"Peak RSS of the rendering process: **{memory:.0f} MiB** (torch and numba loaded included; its own "
        "high-water mark, `VmHWM`, not `ru_maxrss`, which also counts this benchmark's memory at the fork).",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
