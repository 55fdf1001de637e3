"""Reverse engineering: parameter errors, mix loss and time to converge on held-out synthetic songs.

Usage::

    python benchmarks/reverse_speed.py                  # 10 songs x 2 settings, 30 s, 8 stems, 44.1 kHz
    python benchmarks/reverse_speed.py --songs 1 --duration 8 --steps 20 --out /tmp/reverse.md   # smoke run

Songs: `mixdown.synth.synthetic.generate_song(i, SynthConfig(seed=1001, ...))` for
``i < --songs``, 8 stems, at 44.1 kHz, the held-out seed of `benchmarks/estimator_eval.py`
(the estimator trains on seed 2; reverse engineering trains on nothing, but the songs are
the same kind). Each song's true settings (`mixdown.synth.targets`) are rendered by
`mixdown.console.render` to the reference mix, in two settings:

* **gain/pan/EQ**: the true settings with compressors and reverb sends removed (the
  master still normalises to -14 LUFS under a -1 dBTP ceiling), fitted with
  ``ReverseConfig(fit_compressor=False, fit_reverb=False)`` (the linear chain of
  Barchiesi & Reiss 2010). Issue targets: median gain error < 0.5 dB and median pan
  error < 0.05.
* **full chain**: the settings as drawn (EQ, compressors, reverb, master), fitted with
  the default `ReverseConfig` (every processor).

Reported, pooled over all channels of all songs for parameter errors (medians) and over
songs for the rest:

* `mixdown.metrics.param_errors`: ``gain_balance_db`` (fader error after removing the
  common offset, which the master's loudness normalisation makes unobservable) is the
  gain error; pan, EQ band gain / frequency / response, compressor threshold / ratio
  (an off compressor counts as 1:1 at 0 dB), reverb send; and the reverb decay.
* **effective gain**: fader + compressor makeup + the master normaliser's gain, i.e.
  the gain each stem really gets (makeup and fader are the same thing to the mix).
* **stem level**: the loudness (BS.1770) each stem reaches in the mix, its loudness
  after EQ and compressor plus its effective gain. Where a shelf spans most of a stem's
  spectrum (a low shelf on a kick, a high shelf on a hi-hat), shelf gain and fader are
  the same thing to the mix too, and only their sum, this level, is determined by it;
  the fader error alone then measures which of the two took the gain.
* **mix loss**: `mixdown.losses.StereoLoss` with its defaults (as in
  `benchmarks/estimator_eval.py`) between each method's render and the reference, for
  the oracle (true settings rendered: 0 up to float rounding), the estimate, ``mono``
  and ``random`` (`mixdown.mixers`); "gap closed" is
  ``1 - (loss - oracle) / (mono - oracle)``.
* **time**: wall and CPU time (`time.process_time`, all threads; much less sensitive to
  the machine's load) of the whole fit (`ReverseReport.seconds`: checks, least squares,
  EQ fit, descent until the smoothed loss plateaus `lr_reductions` times, or
  ``--steps``), with ``--threads`` torch/numba threads; load average printed beside it,
  since the machine is shared; and the time to converge: until the smoothed descent loss
  has made 90 % of its drop from the first step to the last.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np
import torch

from mixdown.audio import atomic_write_text
from mixdown.console import channel_loudness, render
from mixdown.dsp.loudness import integrated_loudness
from mixdown.losses import StereoLoss
from mixdown.metrics.param_errors import PARAM_ERROR_NAMES, param_errors
from mixdown.mixers import get_method
from mixdown.mixers.reverse import ReverseConfig, ReverseReport, fit
from mixdown.multitrack import Multitrack
from mixdown.params import ConsoleParams
from mixdown.synth.synthetic import SynthConfig, SyntheticSong, generate_song

RESULTS = Path(__file__).parent / "results" / "reverse.md"
SETTINGS = ("gain/pan/EQ", "full chain")
BASELINES = ("mono", "random")
GAIN_TARGET_DB, PAN_TARGET = 0.5, 0.05  # issue 4, gain/pan/EQ-only mixes


def strip_dynamics(params: ConsoleParams) -> ConsoleParams:
    """The same settings without compressors and reverb sends."""
    channels = [dataclasses.replace(ch, compressor=None, reverb_send_db=None) for ch in params.channels]
    return dataclasses.replace(params, channels=channels)


def effective_params(multitrack: Multitrack, params: ConsoleParams) -> ConsoleParams:
    """The same mix with each fader holding the gain its stem really gets: fader + compressor makeup
    + the gain of the master's loudness normalisation (then off), makeup 0 dB."""
    normaliser = 0.0
    if params.master.target_lufs is not None:
        raw = dataclasses.replace(params, master=dataclasses.replace(params.master, target_lufs=None,
                                                                     ceiling_dbtp=None))
        mix = torch.from_numpy(render(multitrack, raw))[None].double()
        normaliser = params.master.target_lufs - float(integrated_loudness(mix, multitrack.sample_rate)[0])
    channels = [dataclasses.replace(
        ch, gain_db=ch.gain_db + normaliser + (ch.compressor.makeup_db if ch.compressor else 0.0),
        compressor=dataclasses.replace(ch.compressor, makeup_db=0.0) if ch.compressor else None)
        for ch in params.channels]
    return dataclasses.replace(params, channels=channels,
                               master=dataclasses.replace(params.master, target_lufs=None))


def time_to_converge(report: ReverseReport, share: float = 0.9) -> float:
    """Seconds until the descent's smoothed loss first covers ``share`` of its whole drop (first to last
    step), steps timed at their mean duration; the least-squares stage alone when there was no descent."""
    losses = report.losses
    if not losses:
        return report.least_squares_s
    goal = losses[-1] + (1.0 - share) * (losses[0] - losses[-1])
    reached = next(i for i, value in enumerate(losses, start=1) if value <= goal)
    return report.least_squares_s + reached * (report.seconds - report.least_squares_s) / len(losses)


def stem_levels(multitrack: Multitrack, effective: ConsoleParams) -> np.ndarray:
    """LUFS each stem reaches in the mix (``effective_params`` settings): after EQ and compressor, at its fader."""
    faders = np.array([ch.gain_db for ch in effective.ordered_like(multitrack.names).channels])
    return channel_loudness(multitrack, effective) + faders


def mix_loss(loss_fn: StereoLoss, multitrack: Multitrack, params: ConsoleParams, reference: np.ndarray) -> float:
    with torch.no_grad():
        return float(loss_fn(torch.from_numpy(render(multitrack, params))[None], torch.from_numpy(reference)[None]))


def run_song(index: int, song: SyntheticSong, setting: str, config: ReverseConfig,
             loss_fn: StereoLoss) -> tuple[dict[str, float], dict[str, list[float]]]:
    """One fit: ``(per-song values, per-channel errors)``."""
    multitrack = song.multitrack
    truth = strip_dynamics(song.params) if setting == SETTINGS[0] else song.params
    reference = render(multitrack, truth)
    cpu_began = time.process_time()
    estimate, report = fit(multitrack, reference, config)
    cpu_s = time.process_time() - cpu_began
    row = {"fit time (s)": report.seconds, "fit CPU time (s)": cpu_s, "least squares (s)": report.least_squares_s,
           "time to 90 % (s)": time_to_converge(report),
           "descent steps": report.steps, "converged (plateau)": float(report.converged),
           "loss oracle": mix_loss(loss_fn, multitrack, truth, reference),
           "loss reverse": mix_loss(loss_fn, multitrack, estimate, reference)}
    for name in BASELINES:
        row[f"loss {name}"] = mix_loss(loss_fn, multitrack, get_method(name, seed=index).predict(multitrack), reference)
    row["reverb decay error (s)"] = abs(estimate.master.reverb.decay_s - truth.master.reverb.decay_s)
    effective_estimate, effective_truth = effective_params(multitrack, estimate), effective_params(multitrack, truth)
    channels = param_errors(effective_estimate, effective_truth)
    per_channel = {name: [c[name] for c in channels.values()] for name in PARAM_ERROR_NAMES}
    level_error = np.abs(stem_levels(multitrack, effective_estimate) - stem_levels(multitrack, effective_truth))
    per_channel["stem_level_db"] = [float(e) if np.isfinite(e) else float("nan") for e in level_error]
    est, tru = estimate.ordered_like(multitrack.names), truth.ordered_like(multitrack.names)
    per_channel["comp_on_off_agree"] = [float((e.compressor is None) == (t.compressor is None))
                                        for e, t in zip(est.channels, tru.channels, strict=True)]
    print(f"{setting} song {index}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items())
          + "; per channel (name: gain error dB, pan error): "
          + ", ".join(f"{name} {c['gain_db']:.2f} {c['pan']:.3f}" for name, c in channels.items()),
          file=sys.stderr, flush=True)
    return row, per_channel


def _median(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.median(finite)) if finite else float("nan")


def report(args: argparse.Namespace, argv: list[str] | None, settings: tuple[str, ...],
           rows: dict[str, list[dict[str, float]]], errors: dict[str, dict[str, list[float]]],
           minutes: float, load: tuple[float, float]) -> str:
    """The results markdown of the songs done so far."""
    def song_median(setting: str, key: str) -> float:
        return statistics.median(row[key] for row in rows[setting])

    def gap_closed(setting: str) -> float:
        return statistics.median(
            1.0 - (r["loss reverse"] - r["loss oracle"]) / (r["loss mono"] - r["loss oracle"]) for r in rows[setting])

    table = [
        ("gain error: `gain_db` of effective gains (dB)", lambda s: _median(errors[s]["gain_db"])),
        ("gain balance error: `gain_balance_db` (dB)", lambda s: _median(errors[s]["gain_balance_db"])),
        ("stem level error: loudness in the mix (dB)", lambda s: _median(errors[s]["stem_level_db"])),
        ("pan error", lambda s: _median(errors[s]["pan"])),
        ("EQ band gain error (dB)", lambda s: _median(errors[s]["eq_gain_db"])),
        ("EQ band frequency error (octaves)", lambda s: _median(errors[s]["eq_freq_oct"])),
        ("EQ response error (dB)", lambda s: _median(errors[s]["eq_response_db"])),
        ("compressor on/off agreement (mean)", lambda s: float(np.mean(errors[s]["comp_on_off_agree"]))),
        ("compressor threshold error (dB)", lambda s: _median(errors[s]["comp_threshold_db"])),
        ("compressor ratio error (log2)", lambda s: _median(errors[s]["comp_ratio_log2"])),
        ("reverb send error (dB)", lambda s: _median(errors[s]["reverb_send_db"])),
        ("reverb decay error (s, per song)", lambda s: song_median(s, "reverb decay error (s)")),
        ("mix loss: oracle (true settings)", lambda s: song_median(s, "loss oracle")),
        ("mix loss: reverse", lambda s: song_median(s, "loss reverse")),
        ("mix loss: mono", lambda s: song_median(s, "loss mono")),
        ("mix loss: random", lambda s: song_median(s, "loss random")),
        ("mono-to-oracle loss gap closed", gap_closed),
        ("songs where reverse beats mono and random",
         lambda s: sum(r["loss reverse"] < min(r["loss mono"], r["loss random"]) for r in rows[s])),
        ("fit wall time (s)", lambda s: song_median(s, "fit time (s)")),
        ("time to 90 % of the descent's loss drop (s)", lambda s: song_median(s, "time to 90 % (s)")),
        ("fit CPU time (s)", lambda s: song_median(s, "fit CPU time (s)")),
        ("least-squares stage (s)", lambda s: song_median(s, "least squares (s)")),
        ("descent steps", lambda s: song_median(s, "descent steps")),
        ("fits stopped on a plateau (of songs)", lambda s: sum(r["converged (plateau)"] for r in rows[s])),
    ]
    songs = min(len(rows[s]) for s in settings)
    command = shlex.join(["python", "benchmarks/reverse_speed.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        "# Reverse engineering: held-out synthetic songs",
        "",
        f"Command: `{command}` ({minutes:.1f} min in all{'' if songs == args.songs else ', stopped early'}).  ",
        f"Machine: {platform.machine()} with {os.cpu_count()} cores shared with other users (load average "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end), {args.threads} torch/numba threads, "
        f"Python {platform.python_version()}, torch {torch.__version__}.",
        "",
        f"Songs: `generate_song(i, SynthConfig(seed={args.seed}, sample_rate=44100, duration_s={args.duration:g}, "
        f"min_stems=8, max_stems=8))` for i < {songs} of {args.songs} ({8 * songs} channels per setting). "
        + ("gain/pan/EQ: compressors and sends removed, fitted with "
           f"`ReverseConfig(steps={args.steps}, fit_compressor=False, fit_reverb=False)`. "
           if SETTINGS[0] in settings else "")
        + (f"full chain: as drawn, fitted with `ReverseConfig(steps={args.steps})`. " if SETTINGS[1] in settings
           else "")
        + "Parameter errors: medians over all channels, faders compared as effective gains (fader + makeup + "
        "the master normaliser's gain); the rest: medians over songs (see the script's docstring).",
        "",
        "| metric | " + " | ".join(settings) + " |",
        "|---|" + "---|" * len(settings),
    ]
    for label, value in table:
        lines.append(f"| {label} | " + " | ".join(f"{value(s):.3g}" for s in settings) + " |")
    lines += ["", "Issue targets:", ""]
    if SETTINGS[0] in settings:
        gain, pan = _median(errors[SETTINGS[0]]["gain_db"]), _median(errors[SETTINGS[0]]["pan"])
        level = _median(errors[SETTINGS[0]]["stem_level_db"])
        met = lambda value, target: "met" if value < target else "missed"  # noqa: E731
        lines.append(f"- (a) gain/pan/EQ-only mixes: median fader (effective gain) error {gain:.3f} dB (target < "
                     f"{GAIN_TARGET_DB}: {met(gain, GAIN_TARGET_DB)}); median stem level error {level:.3f} dB, the "
                     f"gain the mix determines (target < {GAIN_TARGET_DB}: {met(level, GAIN_TARGET_DB)}); median pan "
                     f"error {pan:.4f} (target < {PAN_TARGET}: {met(pan, PAN_TARGET)}).")
    if SETTINGS[1] in settings:
        full = SETTINGS[1]
        times = [r["fit time (s)"] for r in rows[full]]
        cpu = [r["fit CPU time (s)"] for r in rows[full]]
        converge = [r["time to 90 % (s)"] for r in rows[full]]
        lines += [
            f"- (b) full chain: median mix loss {song_median(full, 'loss reverse'):.3f} against "
            f"{song_median(full, 'loss mono'):.3f} (mono) and {song_median(full, 'loss random'):.3f} (random), "
            f"oracle {song_median(full, 'loss oracle'):.2g}; {100 * gap_closed(full):.0f} % of the mono-to-oracle "
            "gap closed (median over songs).",
            f"- (c) time to fit, full chain, {args.duration:g} s, 8 stems, 44.1 kHz, {args.threads} threads, "
            f"at most {args.steps} steps: median {statistics.median(times):.0f} s (min {min(times):.0f}, "
            f"max {max(times):.0f}) on the shared machine at the load above; CPU time of the fit (all threads, "
            f"insensitive to the load) median {statistics.median(cpu):.0f} s; the loss had made 90 % of its drop "
            f"after a median {statistics.median(converge):.0f} s (least squares included).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=10, help="songs per setting (default 10)")
    parser.add_argument("--duration", type=float, default=30.0, help="song length in seconds (default 30)")
    parser.add_argument("--steps", type=int, default=ReverseConfig().steps, help="most descent steps")
    parser.add_argument("--settings", default="both", choices=("both", "linear", "full"),
                        help="gain/pan/EQ (linear), full chain (full) or both (default)")
    parser.add_argument("--threads", type=int, default=2, help="torch and numba threads (default 2)")
    parser.add_argument("--seed", type=int, default=1001, help="SynthConfig seed of the held-out songs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results markdown, rewritten after every song")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    synth = SynthConfig(seed=args.seed, sample_rate=44100, duration_s=args.duration, min_stems=8, max_stems=8)
    settings = {"both": SETTINGS, "linear": SETTINGS[:1], "full": SETTINGS[1:]}[args.settings]
    configs = {SETTINGS[0]: ReverseConfig(steps=args.steps, fit_compressor=False, fit_reverb=False),
               SETTINGS[1]: ReverseConfig(steps=args.steps)}
    loss_fn = StereoLoss()
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    rows: dict[str, list[dict[str, float]]] = {s: [] for s in settings}
    errors: dict[str, dict[str, list[float]]] = {s: {} for s in settings}
    text = ""
    for index in range(args.songs):
        song = generate_song(index, synth)
        for setting in settings:  # interleaved, so that changes in the machine's load hit both alike
            row, per_channel = run_song(index, song, setting, configs[setting], loss_fn)
            rows[setting].append(row)
            for name, values in per_channel.items():
                errors[setting].setdefault(name, []).extend(values)
        text = report(args, argv, settings, rows, errors, (time.perf_counter() - began) / 60.0,
                      (load_before, os.getloadavg()[0]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
