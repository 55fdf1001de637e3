"""Held-out evaluation and speed of the Differentiable Mixing Console (DMC).

Usage::

    python benchmarks/dmc_eval.py                  # 50 songs + speed, writes benchmarks/results/dmc.md
    python benchmarks/dmc_eval.py --songs 2 --speed-seconds 10 --out /tmp/dmc.md   # a smoke run

Quality. Held-out songs: `mixdown.synth.synthetic` songs of ``heldout_config(--seed)``
(`_heldout.py`, shared with ``estimator_eval.py``; the DMC trained on seed 2) at the
DMC's own rate, 22.05 kHz, so that its emulated render and the real console's are
scored on the same signals. Every row is the stereo loss (`mixdown.losses.StereoLoss`,
defaults: sum and difference MR-STFT, FFT 512 / 2048 / 8192) against the song's true mix:

* ``mono``, ``random``: the baseline mixers, rendered by `mixdown.console.render`;
* ``oracle``: the true settings through `mixdown.console.render` (0 by construction:
  that is how the targets were made; a check of the pipeline);
* ``oracle (emulated)``: the true settings through the DMC's render (`DMC.render_settings`:
  its neural EQ + compressor, exact fader, pan, reverb and master): the emulator's
  error at the level of a mix;
* ``dmc (real console)``: `mixdown.mixers.dmc.DMCMixer` settings through
  `mixdown.console.render`, what a user gets;
* ``dmc (emulated)``: the same settings through the DMC's render, the mix it was
  trained to make.

Emulator. Its `mixdown.models.emulator.EmulatorLoss` against the real channel strip, and
the identity's (the dry input), on ``--emulator-pairs`` random segments and settings
(`StripPairs`) from songs of `synthesize_song` seeds the pre-training never used.

Speed: ``method_speed.py``'s run (a fresh process: load, warm-up, then
`DMCMixer.predict` + `mixdown.console.render` timed) on ``--speed-stems`` stems x
``--speed-seconds`` s at 44.1 kHz, with torch's and numba's default threads (all cores
of the machine). Uses the shipped weights. The issue's target: >= 10x real time on 2 cores.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path

import method_speed
import numpy as np
import torch
from _heldout import HELDOUT_SEED, heldout_config, improvement_lines, setting_errors

from mixdown.audio import atomic_write_text
from mixdown.console import ConsoleTensors, render
from mixdown.losses import StereoLoss
from mixdown.mixers import get_method
from mixdown.mixers.dmc import DMCMixer
from mixdown.models.emulator import (
    EmulatorLossConfig,
    StripPairs,
    evaluate,
    rendered_batches,
    synthetic_sources,
)
from mixdown.multitrack import Multitrack
from mixdown.params import ConsoleParams
from mixdown.synth.synthetic import generate_song
from mixdown.weights import shipped

RESULTS = Path(__file__).parent / "results" / "dmc.md"
ROWS = ("mono", "random", "oracle", "oracle (emulated)", "dmc (real console)", "dmc (emulated)")
ERROR_ROWS = ("mono", "random", "dmc (real console)")
EMULATOR_SEED = 300_000
"""First `synthesize_song` seed of the emulator's test sources (pre-training uses 100000..)."""
TARGET_RTF = 10.0


def emulated_mix(mixer: DMCMixer, multitrack: Multitrack, params: ConsoleParams) -> torch.Tensor:
    """``params`` rendered by the DMC's own render (emulator + exact fader, pan, reverb, master).

    Shape:
        Output: ``(2, samples)``.
    """
    if multitrack.sample_rate != mixer.sample_rate:
        raise ValueError(f"the emulated render runs at {mixer.sample_rate} Hz, not {multitrack.sample_rate} Hz")
    stereo = torch.from_numpy(multitrack.stereo_mask())[None]
    stems = np.zeros((1, multitrack.num_tracks, 2, multitrack.num_frames), dtype=np.float32)
    for t in range(multitrack.num_tracks):
        stems[0, t] = multitrack.stem_audio(t)  # a mono stem broadcasts to both channels
    settings = ConsoleTensors.from_params([params.ordered_like(multitrack.names)])
    mask = torch.ones(1, multitrack.num_tracks, dtype=torch.bool)
    with torch.no_grad():
        return mixer.dmc.render_settings(torch.from_numpy(stems), settings, mask, stereo)[0]


def score_song(weights: Path, seed: int, index: int) -> dict:
    """One held-out song: its stem count, the stereo loss of every row, setting errors of the mixers."""
    mixer = DMCMixer(weights)
    song = generate_song(index, heldout_config(seed, mixer.sample_rate))
    names = song.multitrack.names
    truth = song.params.ordered_like(names)
    predicted = {"mono": get_method("mono").predict(song.multitrack),
                 "random": get_method("random", seed=index).predict(song.multitrack),
                 "oracle": truth, "dmc (real console)": mixer.predict(song.multitrack)}
    mixes = {row: torch.from_numpy(render(song.multitrack, params)) for row, params in predicted.items()}
    mixes["oracle (emulated)"] = emulated_mix(mixer, song.multitrack, truth)
    mixes["dmc (emulated)"] = emulated_mix(mixer, song.multitrack, predicted["dmc (real console)"])
    target = torch.from_numpy(song.mix)[None]
    loss_fn = StereoLoss()
    with torch.no_grad():
        loss = {row: float(loss_fn(mixes[row][None], target)) for row in ROWS}
    errors = {row: setting_errors(predicted[row].ordered_like(names), truth) for row in ERROR_ROWS}
    return {"stems": len(names), "loss": loss, "errors": errors}


def emulator_scores(mixer: DMCMixer, pairs: int) -> tuple[float, float]:
    """``(emulator, identity)`` mean `EmulatorLoss` against the real strip on unseen sources."""
    rate = mixer.sample_rate
    sources = synthetic_sources(range(EMULATOR_SEED, EMULATOR_SEED + 4), rate, 6.0)
    segments = StripPairs(sources, rate, pairs, seed=EMULATOR_SEED, input_gain_db=(-12.0, 0.0))
    scores = evaluate(mixer.dmc.emulator, rendered_batches(segments, 8, rate), EmulatorLossConfig())
    return scores.emulator, scores.identity


def speed(seconds: float, stems: int, timeout_s: float) -> dict:
    """``method_speed.py``'s timings of ``dmc`` on ``stems`` x ``seconds`` s (shipped weights)."""
    with tempfile.TemporaryDirectory(prefix="dmc_speed_") as tmp:
        folder = Path(tmp) / "stems"
        folder.mkdir()
        method_speed.write_stems(folder, seconds, stems)
        return method_speed.measure("dmc", folder, timeout_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=shipped("dmc.pt"))
    parser.add_argument("--songs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=HELDOUT_SEED, help="SynthConfig seed of the held-out songs (not 2)")
    parser.add_argument("--emulator-pairs", type=int, default=64)
    parser.add_argument("--speed-seconds", type=float, default=180.0)
    parser.add_argument("--speed-stems", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="processes scoring songs in parallel")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    mixer = DMCMixer(args.weights)
    loss = {row: [] for row in ROWS}
    gain_err = {row: [] for row in ERROR_ROWS}
    width_err = {row: [] for row in ERROR_ROWS}
    stems_total = 0
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(1,)) as pool:
        scores = pool.map(score_song, repeat(args.weights), repeat(args.seed), range(args.songs))
        for index, score in enumerate(scores):  # in song order
            stems_total += score["stems"]
            for row in ROWS:
                loss[row].append(score["loss"][row])
            for row, (gains, widths) in score["errors"].items():
                gain_err[row] += gains
                width_err[row] += widths
            print(f"song {index + 1}/{args.songs} ({score['stems']} stems): "
                  + ", ".join(f"{row} {loss[row][-1]:.3f}" for row in ROWS), file=sys.stderr, flush=True)
    quality_min = (time.perf_counter() - started) / 60
    emulator, identity = emulator_scores(mixer, args.emulator_pairs)
    timing = speed(args.speed_seconds, args.speed_stems, timeout_s=600.0)
    command = shlex.join(["python", "benchmarks/dmc_eval.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        "# Differentiable Mixing Console: held-out evaluation and speed",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at the end), "
        f"Python {platform.python_version()}, torch {torch.__version__}; the quality part took {quality_min:.1f} min "
        f"({args.workers} processes of 1 torch thread).",
        "",
        f"Weights: `{args.weights}` ({args.weights.stat().st_size / 1e6:.2f} MB, model rate {mixer.sample_rate} Hz, "
        f"emulator pre-trained: {bool(mixer.dmc.emulator_pretrained)}). Held out: {args.songs} synthetic songs of "
        f"SynthConfig seed {args.seed}, 8 s, 2-11 stems, {mixer.sample_rate} Hz, {stems_total} stems.",
        "",
        "## Stereo loss against the true mix",
        "",
        "| render | stereo loss mean | median | rel. gain error dB (median) | width error (median) |",
        "|---|---|---|---|---|",
    ]
    for row in ROWS:
        errors = (f"{np.median(gain_err[row]):.2f} | {np.median(width_err[row]):.3f}" if row in gain_err
                  else " | ")
        lines.append(f"| {row} | {statistics.fmean(loss[row]):.3f} | {statistics.median(loss[row]):.3f} | {errors} |")
    lines += ["", "Improvement of the stereo loss (1 - loss / baseline loss, means over songs):", ""]
    lines += improvement_lines(loss, "dmc (real console)", ("mono", "random"))
    lines += improvement_lines(loss, "dmc (emulated)", ("mono", "random"))
    lines += [
        "",
        "## Emulator against the real channel strip",
        "",
        f"`EmulatorLoss` (MR-STFT 256 / 1024 / 4096 + 10 x L1) on {args.emulator_pairs} segments of 1 s with random "
        f"settings, from `synthesize_song` seeds {EMULATOR_SEED}..{EMULATOR_SEED + 3} (unseen in pre-training):",
        "",
        "| output | loss vs the real strip |",
        "|---|---|",
        f"| emulator | {emulator:.4f} |",
        f"| identity (dry input) | {identity:.4f} |",
        "",
        "## Speed",
        "",
    ]
    if "error" in timing:
        lines.append(f"The speed run failed: {timing['error']}")
    else:
        total = timing["predict_s"] + timing["render_s"]
        rtf = timing["seconds"] / total
        lines += [
            f"`method_speed.py`'s run of `dmc` ({timing['threads']} torch threads) on {timing['stems']} stems x "
            f"{timing['seconds']:g} s at 44.1 kHz: predict {timing['predict_s']:.2f} s, render "
            f"{timing['render_s']:.2f} s, peak memory {timing['peak_mib']:.0f} MiB.",
            "",
            f"Real-time factor of predict + render: **{rtf:.1f}x** (target >= {TARGET_RTF:g}x: "
            f"{'met' if rtf >= TARGET_RTF else 'missed'}).",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
