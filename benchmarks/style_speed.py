"""Mix like a reference (issue 14): time to mix a 3-minute 8-stem song with the ``style`` method.

Usage::

    python benchmarks/style_speed.py                     # writes benchmarks/results/style_speed.md
    python benchmarks/style_speed.py --duration 30 --runs 1 --out /tmp/s.md   # a smoke run

The song: `generate_song(0, SynthConfig(seed=1001, sample_rate=44100, duration_s=180,
min_stems=8, max_stems=8))`, stems written to float WAVs and loaded back as a file-backed
`Multitrack` (as ``mixdown mix`` sees them). The reference: another song (song 1 of a 30 s,
48 kHz config: another rate and length), its file read by
`mixdown.style.reference.load_style_reference`. Timed, per mode, with 2 torch threads:
``method_s`` (analysis, learned prediction and, optimised, the descent: what
`mixdown.api.propose` reports) and ``render_s`` (the console rendering the whole song);
medians over ``--runs`` runs, after one untimed warm-up run (numba compilation, weights).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mixdown.api import mix
from mixdown.audio import atomic_write_text, write_audio
from mixdown.multitrack import load_multitrack
from mixdown.style.reference import load_style_reference
from mixdown.synth.synthetic import SynthConfig, generate_song

RESULTS = Path(__file__).parent / "results" / "style_speed.md"
BAR_S = 30.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--weights", type=Path, help="conditioner weights (default: the shipped ones; speed "
                                                     "does not depend on their values)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    song = generate_song(0, SynthConfig(seed=1001, sample_rate=44100, duration_s=args.duration, min_stems=8,
                                        max_stems=8))
    other = generate_song(1, SynthConfig(seed=1001, sample_rate=48000, duration_s=30.0, min_stems=4, max_stems=8))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        stems = Path(tmp) / "stems"
        stems.mkdir()
        for t, name in enumerate(song.multitrack.names):
            write_audio(stems / f"{name}.wav", song.multitrack.stem_audio(t), 44100)
        write_audio(Path(tmp) / "ref.wav", other.mix, 48000)
        multitrack = load_multitrack(stems, in_memory=False)
        began = time.perf_counter()
        reference = load_style_reference(Path(tmp) / "ref.wav", multitrack.sample_rate)
        load_s = time.perf_counter() - began
        for mode in ("learned", "optimised"):
            method_s, render_s, steps = [], [], []
            for run in range(args.runs + 1):
                result = mix(multitrack, "style", reference=reference, mode=mode, weights=args.weights)
                if run == 0:
                    continue  # warm-up
                method_s.append(result.info["method_s"])
                render_s.append(result.info["render_s"])
                steps.append(result.info.get("steps", 0))
                print(f"{mode} run {run}: method {method_s[-1]:.1f} s, render {render_s[-1]:.1f} s",
                      file=sys.stderr, flush=True)
            rows.append((mode, statistics.median(method_s), statistics.median(render_s), statistics.median(steps)))
    load = os.getloadavg()[0]
    command = shlex.join(["python", "benchmarks/style_speed.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        "# Mix like a reference: speed",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, 2 cores shared with other jobs (load average {load:.1f} at the end), "
        f"2 torch threads, Python {platform.python_version()}, torch {torch.__version__}.",
        "",
        f"Song: {args.duration:g} s, 8 stems, 44.1 kHz, file-backed. Reference: a 30 s song at 48 kHz, read and "
        f"checked in {load_s:.2f} s. Medians of {args.runs} runs after a warm-up.",
        "",
        "| mode | method (s) | render (s) | total (s) | descent steps |",
        "|---|---|---|---|---|",
    ]
    for mode, method, render_time, step in rows:
        lines.append(f"| {mode} | {method:.1f} | {render_time:.1f} | {method + render_time:.1f} | {step:g} |")
    optimised = rows[-1]
    lines += ["", f"Optimised mode, settings in {optimised[1]:.1f} s ({'meets' if optimised[1] <= BAR_S else 'misses'} "
              f"the issue's {BAR_S:g} s bar); with the render of the whole song {optimised[1] + optimised[2]:.1f} s "
              f"({'within' if optimised[1] + optimised[2] <= BAR_S else 'over'} {BAR_S:g} s)."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
