"""Held-out evaluation of the learned estimator against mono, random and rules.

Usage::

    python benchmarks/estimator_eval.py                   # 30 songs, writes benchmarks/results/estimator_eval.md
    python benchmarks/estimator_eval.py --songs 2 --out /tmp/eval.md   # a smoke run

Songs: `mixdown.synth.synthetic` songs of ``SynthConfig(seed=--seed)`` at 44.1 kHz (the
estimator is trained at 22.05 kHz on seed 2, so neither the songs nor the rate were
seen in training), 8 s, 2-11 stems. Every method's settings are rendered by
`mixdown.console.render` over the whole song and compared with the song's true mix:

* **stereo loss**: `mixdown.losses.StereoLoss` with its defaults (sum and difference
  MR-STFT, FFT 512 / 2048 / 8192, hop a quarter), the training loss; mean and median
  over songs, and the improvement ``1 - loss / baseline loss`` of the means;
* **relative gain error** ``|(g - mean g) - (g* - mean g*)|`` in dB per stem (faders
  relative to the song's mean, since the master normalises the loudness), median;
* **width error** ``||p| - |p*||`` per stem (the side of a pan is a coin flip in the
  targets), median.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _heldout import HELDOUT_SEED, heldout_config, improvement_lines, setting_errors

from mixdown.audio import atomic_write_text
from mixdown.console import render
from mixdown.losses import StereoLoss
from mixdown.mixers import get_method
from mixdown.mixers.estimator import EstimatorMixer
from mixdown.synth.synthetic import generate_song
from mixdown.weights import shipped

RESULTS = Path(__file__).parent / "results" / "estimator_eval.md"
METHODS = ("mono", "random", "rules", "estimator")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=shipped("estimator.pt"))
    parser.add_argument("--songs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=HELDOUT_SEED, help="SynthConfig seed of the held-out songs (not 2)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    synth = heldout_config(args.seed)
    estimator = EstimatorMixer(args.weights)
    loss_fn = StereoLoss()
    loss = {m: [] for m in METHODS}
    gain_err = {m: [] for m in METHODS}
    width_err = {m: [] for m in METHODS}
    start = time.perf_counter()
    for index in range(args.songs):
        song = generate_song(index, synth)
        names = song.multitrack.names
        truth = song.params.ordered_like(names)
        target = torch.from_numpy(song.mix)[None]
        for method in METHODS:
            mixer = estimator if method == "estimator" else get_method(method, seed=index)
            channels = mixer.predict(song.multitrack).ordered_like(names)
            gains, widths = setting_errors(channels, truth)
            gain_err[method] += gains
            width_err[method] += widths
            mix = torch.from_numpy(render(song.multitrack, channels))[None]
            with torch.no_grad():
                loss[method].append(float(loss_fn(mix, target)))
        print(f"song {index + 1}/{args.songs} ({len(names)} stems): "
              + ", ".join(f"{m} {loss[m][-1]:.3f}" for m in METHODS), file=sys.stderr, flush=True)
    mean = {m: statistics.fmean(loss[m]) for m in METHODS}
    lines = [
        "# Learned estimator: held-out evaluation",
        "",
        f"Command: `{shlex.join(['python', 'benchmarks/estimator_eval.py', *(sys.argv[1:] if argv is None else argv)])}`"
        f"  ",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}; "
        f"took {(time.perf_counter() - start) / 60:.1f} min.",
        "",
        f"Weights: `{args.weights.name}` ({args.weights.stat().st_size / 1e6:.2f} MB, model rate "
        f"{estimator.sample_rate} Hz). Held out: {args.songs} synthetic songs of SynthConfig seed {args.seed}, "
        f"8 s, 2-11 stems, 44.1 kHz, {len(gain_err['mono'])} stems.",
        "",
        "| method | stereo loss mean | median | rel. gain error dB (median) | width error (median) |",
        "|---|---|---|---|---|",
    ]
    for m in METHODS:
        lines.append(f"| {m} | {mean[m]:.3f} | {statistics.median(loss[m]):.3f} | "
                     f"{np.median(gain_err[m]):.2f} | {np.median(width_err[m]):.3f} |")
    lines += ["", "Improvement of the stereo loss (1 - loss / baseline loss, means over songs):", ""]
    lines += improvement_lines(loss, "estimator", ("mono", "random", "rules"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
