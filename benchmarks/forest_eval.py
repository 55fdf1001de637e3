"""Held-out evaluation of the random-forest mixer against mono, random, rules and the oracle.

Usage::

    python benchmarks/forest_eval.py                    # 50 held-out songs, writes benchmarks/results/forest.md
    python benchmarks/forest_eval.py --songs 3 --out /tmp/forest.md   # a smoke run

The held-out songs are `mixdown.synth.synthetic` songs of another ``SynthConfig.seed``
(``--seed``, refused if it is the training seed) with the training songs' length, rate
and stem counts, so none was trained on. The ``oracle`` is the song's true settings
rendered by the same console: the floor of every figure (the target mix is that render,
so its loss is 0 up to rounding). For each song and method it measures:

* **relative gain error**: ``|(g - mean g) - (g* - mean g*)|`` per sounding stem, in dB,
  where ``g`` are the method's faders and ``g*`` the true ones (means over the song's
  sounding stems; the master normalisation makes the absolute level irrelevant);
* **pan errors**: ``|p - p*|`` (signed) and ``||p| - |p*||`` (width) per stem;
* **stereo MR-STFT loss** of the rendered mix against the true mix:
  ``auraloss.freq.SumAndDifferenceSTFTLoss`` at FFT sizes 4096, 1024 and 256 (Hann
  windows as long, hops a quarter), the resolutions of `mixdown.metrics`.

Errors are reported as medians over all stems of all songs, losses as the mean (and
median) over songs; the improvement of method A over B is ``1 - loss_A / loss_B`` of
the means.
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
from auraloss.freq import SumAndDifferenceSTFTLoss

from mixdown.audio import atomic_write_text
from mixdown.console import render
from mixdown.mixers import get_method
from mixdown.mixers.forest import ForestMixer, ForestModel, song_targets
from mixdown.synth.synthetic import SynthConfig, generate_song
from mixdown.weights import shipped

RESULTS = Path(__file__).parent / "results" / "forest.md"
FFT_SIZES = (4096, 1024, 256)
METHODS = ("mono", "random", "rules", "forest", "oracle")
BAR = 0.25  # issue 4: learned methods beat mono and random by >= 25 % on the stereo MR-STFT loss


def relative(values: np.ndarray, sounding: np.ndarray) -> np.ndarray:
    return values - values[sounding].mean()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=shipped("forest.npz"))
    parser.add_argument("--songs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1000, help="SynthConfig seed of the held-out songs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    model = ForestModel.load(args.weights)
    cfg = model.config
    if args.seed == cfg.synth_seed:
        parser.error(f"--seed {args.seed} is the training songs' seed; pick another")
    synth = SynthConfig(seed=args.seed, sample_rate=cfg.sample_rate, duration_s=cfg.duration_s,
                        min_stems=cfg.min_stems, max_stems=cfg.max_stems)
    loss_fn = SumAndDifferenceSTFTLoss(fft_sizes=list(FFT_SIZES), hop_sizes=[n // 4 for n in FFT_SIZES],
                                       win_lengths=list(FFT_SIZES))
    gain_err = {m: [] for m in METHODS}
    pan_err = {m: [] for m in METHODS}
    width_err = {m: [] for m in METHODS}
    loss = {m: [] for m in METHODS}
    predict_s = {m: [] for m in METHODS}
    stems = 0
    start = time.perf_counter()
    for index in range(args.songs):
        song = generate_song(index, synth)
        _, _, _, sounding = song_targets(song.multitrack, song.params)
        truth = song.params.ordered_like(song.multitrack.names).channels
        true_gain = relative(np.array([ch.gain_db for ch in truth]), sounding)[sounding]
        true_pan = np.array([ch.pan for ch in truth])
        target = torch.from_numpy(song.mix)[None]
        stems += int(sounding.sum())
        for method in METHODS:
            mixer = (None if method == "oracle" else ForestMixer(model) if method == "forest"
                     else get_method(method, seed=index))
            t0 = time.perf_counter()
            params = song.params if mixer is None else mixer.predict(song.multitrack)
            predict_s[method].append(time.perf_counter() - t0)
            channels = params.ordered_like(song.multitrack.names).channels
            gain = relative(np.array([ch.gain_db for ch in channels]), sounding)[sounding]
            pan = np.array([ch.pan for ch in channels])
            gain_err[method].extend(np.abs(gain - true_gain).tolist())
            pan_err[method].extend(np.abs(pan - true_pan).tolist())
            width_err[method].extend(np.abs(np.abs(pan) - np.abs(true_pan)).tolist())
            mix = torch.from_numpy(render(song.multitrack, params))[None]
            with torch.no_grad():
                loss[method].append(float(loss_fn(mix, target)))
        print(f"song {index + 1}/{args.songs}: " + ", ".join(f"{m} {loss[m][-1]:.3f}" for m in METHODS),
              file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - start
    mean_loss = {m: statistics.fmean(loss[m]) for m in METHODS}
    info = model.info
    lines = [
        "# Random-forest mixer: held-out evaluation",
        "",
        f"Command: `{shlex.join(['python', 'benchmarks/forest_eval.py', *(sys.argv[1:] if argv is None else argv)])}`  ",
        f"Machine: {platform.machine()}, {platform.python_version()}, torch {torch.__version__}; "
        f"evaluation took {elapsed / 60:.1f} min.",
        "",
        f"Weights: `{args.weights.name}` ({args.weights.stat().st_size / 1e6:.2f} MB), trained on "
        f"{info['songs']} synthetic songs (SynthConfig seed {cfg.synth_seed}, {cfg.duration_s:g} s, "
        f"{cfg.min_stems}-{cfg.max_stems} stems at {cfg.sample_rate} Hz) = {info['rows']} stems; "
        f"{cfg.trees} trees per forest, depth <= {cfg.max_depth}. Training on {info['cpu_count']} shared cores: "
        f"songs and features {info['data_s']} s wall / {info['data_cpu_s']} s CPU, fit {info['fit_s']} s wall / "
        f"{info['fit_cpu_s']} s CPU ({', '.join(f'{k} {v}' for k, v in info['versions'].items())}).",
        "",
        f"Held out: {args.songs} songs of SynthConfig seed {args.seed} (same length, rate and stem counts), "
        f"{stems} sounding stems. Gain errors are of the relative gain (fader minus the song's mean fader); "
        "medians over stems. Loss: stereo (sum and difference) MR-STFT, auraloss, FFT 4096/1024/256; "
        "mean and median over songs. oracle: the true settings rendered (the floor; the target is that render).",
        "",
        "| method | rel. gain error dB | pan error | width error | stereo MR-STFT mean | median | predict s/song |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in METHODS:
        lines.append(f"| {m} | {np.median(gain_err[m]):.2f} | {np.median(pan_err[m]):.3f} | "
                     f"{np.median(width_err[m]):.3f} | {mean_loss[m]:.3f} | {np.median(loss[m]):.3f} | "
                     f"{statistics.fmean(predict_s[m]):.2f} |")
    lines += ["", "Improvement of the stereo MR-STFT loss (1 - loss / baseline loss, means over songs):", ""]
    for m in ("rules", "forest"):
        for base in ("mono", "random"):
            gain = 1.0 - mean_loss[m] / mean_loss[base]
            wins = sum(a < b for a, b in zip(loss[m], loss[base], strict=True))
            verdict = "meets" if gain >= BAR else "misses"
            lines.append(f"- {m} vs {base}: {100 * gain:+.1f} % ({wins}/{args.songs} songs better); "
                         f"{verdict} the issue's 25 % bar")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
