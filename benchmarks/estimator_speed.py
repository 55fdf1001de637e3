"""Speed of the learned estimator: settings prediction plus console render of a long session.

Usage::

    python benchmarks/estimator_speed.py               # 8 stems x 180 s, writes benchmarks/results/estimator_speed.md
    python benchmarks/estimator_speed.py --seconds 20 --out /tmp/speed.md   # a smoke run

The session is the synthetic demo band (`mixdown.synth.demo.synthesize_song`: kick, snare,
hi-hat, two toms, stereo overheads, bass, keys) at 44.1 kHz. Timed, median of
``--runs`` runs each, with 2 torch threads: `EstimatorMixer.predict` (excerpt analysis
and the network) and `mixdown.console.render` of its settings. The issue's target is
prediction plus render at least 10x faster than real time.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from mixdown.audio import atomic_write_text
from mixdown.console import render
from mixdown.mixers.estimator import EXCERPT_S, EXCERPTS, EstimatorMixer
from mixdown.multitrack import Multitrack
from mixdown.synth.demo import DEMO_STEMS, synthesize_song
from mixdown.weights import shipped

SR = 44100
RESULTS = Path(__file__).parent / "results" / "estimator_speed.md"
TARGET_RTF = 10.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=shipped("estimator.pt"))
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    arrays = synthesize_song(7, sample_rate=SR, duration_s=args.seconds, stems=DEMO_STEMS)
    multitrack = Multitrack.from_arrays(arrays, SR)
    mixer = EstimatorMixer(args.weights)
    short = Multitrack.from_arrays({k: v[:, :SR * 3] for k, v in arrays.items()}, SR)
    render(short, mixer.predict(short))  # warm-up: compiled kernels, allocator
    predict_s, render_s = [], []
    for run in range(args.runs):
        start = time.perf_counter()
        params = mixer.predict(multitrack)
        middle = time.perf_counter()
        render(multitrack, params)
        predict_s.append(middle - start)
        render_s.append(time.perf_counter() - middle)
        print(f"run {run + 1}: predict {predict_s[-1]:.2f} s, render {render_s[-1]:.2f} s", file=sys.stderr)
    predict, rendered = statistics.median(predict_s), statistics.median(render_s)
    total = statistics.median(p + r for p, r in zip(predict_s, render_s, strict=True))
    rtf = args.seconds / total
    lines = [
        "# Estimator speed",
        "",
        f"Command: `{shlex.join(['python', 'benchmarks/estimator_speed.py', *(sys.argv[1:] if argv is None else argv)])}`"
        f" on {platform.machine()}, 2 torch threads, Python {platform.python_version()}, torch {torch.__version__}.",
        "",
        f"Session: {len(arrays)} stems ({', '.join(arrays)}) x {args.seconds:g} s at {SR} Hz; the estimator "
        f"analyses {EXCERPTS} excerpts of {EXCERPT_S:g} s (model rate {mixer.sample_rate} Hz). "
        f"Weights: `{args.weights.name}` ({args.weights.stat().st_size / 1e6:.2f} MB). Median of {args.runs} runs.",
        "",
        "| step | median (s) | all runs (s) |",
        "|---|---|---|",
        f"| predict (`EstimatorMixer.predict`) | {predict:.2f} | {', '.join(f'{t:.2f}' for t in predict_s)} |",
        f"| render (`console.render`) | {rendered:.2f} | {', '.join(f'{t:.2f}' for t in render_s)} |",
        f"| total | {total:.2f} | |",
        "",
        f"Real-time factor of predict + render: **{rtf:.0f}x** (target >= {TARGET_RTF:g}x: "
        f"{'met' if rtf >= TARGET_RTF else 'missed'}).",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
