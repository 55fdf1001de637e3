"""Reverse engineering against the targets of issue #15: time on the demo and on a 3-minute song, errors.

Usage::

    python benchmarks/reverse_targets.py                      # everything, writes benchmarks/results/reverse_targets.md
    python benchmarks/reverse_targets.py --songs 2 --skip-long --out /tmp/targets.md   # quicker
    python benchmarks/reverse_targets.py --old-src /path/to/old/src   # also time an older tree on the demo

Measured, with ``--threads`` torch/numba threads (default 2), load average printed beside:

1. **15-s demo**: the bundled demo (`mixdown.synth.demo`, 8 stems, 15 s, 44.1 kHz) mixed by
   ``random`` (`mixdown.mixers.baselines.RandomMixer`, seed 0: full chain), fitted with the
   default `ReverseConfig`: wall and CPU time, the loss at the start and at the end, and
   the errors below. With ``--old-src`` the same fit by another source tree (a subprocess
   with that tree first on ``PYTHONPATH``), timed in the same run.
2. **3-minute song**: `generate_song(0, SynthConfig(seed=--seed, duration_s=180, 8 stems))`
   rendered with its true settings (full chain), fitted with the default config: time.
3. **Errors** on ``--songs`` held-out synthetic songs (``--seed``, default 1001, ``--duration`` s, 8
   stems, as `benchmarks/reverse_speed.py`), in both of its settings: *gain/pan/EQ* (true
   settings without compressors and sends; ``fit_compressor=False, fit_reverb=False``)
   and *full chain*. Medians over all channels of:

   * effective gain error: fader + makeup + the master normaliser's gain, estimate against
     truth (`reverse_speed.effective_params`, computed here without range checks so
     that extreme random settings count too);
   * channel level error: the same plus the loudness change of the channel's EQ and
     compressor on its stem (`mixdown.console.channel_loudness`), i.e. how loud the
     channel is in the mix, which the mix determines even where a shelf over all of a
     band-limited stem and the fader trade off;
   * pan error;
   * compressor threshold error where the true compressor *acts*: its energy-weighted mean
     gain reduction on its stem after the EQ, rendered by the console's own compressor
     (`gain_reductions`), is at least `ACTS_DB`; an estimate without compressor there
     counts as threshold 0 dB. The target uses this one. Beside it, labelled, the old
     definition (*engages*: the threshold, less half the knee, under the stem's sample
     peak after its EQ), which also counts compressors whose smoothed detector hardly
     ever crosses the threshold, so that the mix cannot show them;
   * gain reduction error where the true compressor acts: the estimate's energy-weighted
     mean gain reduction on the same stem (through its own EQ and compressor) against the
     truth's, the part of a compressor the mix determines when threshold and ratio trade
     off over the levels the stem visits;
   * reverb send error where the truth has a send, and the share of true dry channels
     returned dry;
   * how often the compressor's on/off matches.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numba
import numpy as np
import torch

from mixdown.audio import atomic_write_text
from mixdown.console import channel_loudness, render
from mixdown.dsp.compressor import compressor
from mixdown.dsp.eq import BAND_TYPE_IDS, parametric_eq
from mixdown.dsp.loudness import integrated_loudness
from mixdown.mixers import get_method
from mixdown.mixers.reverse import ReverseConfig, ReverseReport, fit
from mixdown.multitrack import Multitrack
from mixdown.params import ConsoleParams
from mixdown.synth.demo import demo_multitrack_arrays
from mixdown.synth.synthetic import SynthConfig, generate_song

RESULTS = Path(__file__).parent / "results" / "reverse_targets.md"
TARGETS = {"linear gain (dB)": 0.3, "linear channel level (dB)": 0.3, "linear pan": 0.02, "demo time (s)": 10.0,
           "3-min time (s)": 30.0, "full gain (dB)": 0.75, "full channel level (dB)": 0.75, "full threshold where it acts (dB)": 2.0,
           "full send (dB)": 3.0}
"""Issue #15's targets: error medians and times (at most); a channel's level is held to its gain target; the
threshold's where the true compressor acts (`ACTS_DB`)."""

ACTS_DB = 0.5
"""A true compressor *acts* when its energy-weighted mean gain reduction on its stem (`gain_reductions`) is at least
this: about the smallest level change a listener notices (a just-noticeable difference of 0.5-1 dB)."""


def strip_dynamics(params: ConsoleParams) -> ConsoleParams:
    """The same settings without compressors and reverb sends."""
    return replace(params, channels=[replace(ch, compressor=None, reverb_send_db=None) for ch in params.channels])


def effective_gains(multitrack: Multitrack, params: ConsoleParams) -> np.ndarray:
    """Fader + makeup + the gain of the master's loudness normalisation (dB), in the multitrack's order."""
    params = params.ordered_like(multitrack.names)
    normaliser = 0.0
    if params.master.target_lufs is not None:
        raw = replace(params, master=replace(params.master, target_lufs=None, ceiling_dbtp=None))
        mix = torch.from_numpy(render(multitrack, raw))[None].double()
        normaliser = params.master.target_lufs - float(integrated_loudness(mix, multitrack.sample_rate)[0])
    return np.array([(-80.0 if ch.mute else ch.gain_db) + normaliser + (ch.compressor.makeup_db if ch.compressor else 0.0)
                     for ch in params.channels])


def channel_levels(multitrack: Multitrack, params: ConsoleParams) -> np.ndarray:
    """Each channel's level in the mix (dB): `effective_gains` with the EQ's and compressor's loudness change."""
    ordered = params.ordered_like(multitrack.names)
    makeup = np.array([ch.compressor.makeup_db if ch.compressor else 0.0 for ch in ordered.channels])
    stem_lufs = channel_loudness(multitrack, replace(ordered, channels=[replace(ch, eq=[], compressor=None)
                                                                        for ch in ordered.channels]))
    return effective_gains(multitrack, params) - makeup + channel_loudness(multitrack, ordered) - stem_lufs


def equalised_stem(multitrack: Multitrack, index: int, channel) -> torch.Tensor:
    """Stem ``index`` through ``channel``'s EQ: the compressor's input, float64 ``(1, channels, samples)``."""
    audio = torch.from_numpy(multitrack.stem_audio(index))[None].double()
    if not channel.eq:
        return audio
    freq, gain, q = (torch.tensor([[getattr(b, key) for b in channel.eq]], dtype=torch.float64)
                     for key in ("freq_hz", "gain_db", "q"))
    with torch.no_grad():
        audio, _ = parametric_eq(audio, torch.tensor([[BAND_TYPE_IDS[b.type] for b in channel.eq]]), freq, gain, q,
                                 multitrack.sample_rate)
    return audio


def peak_engages(multitrack: Multitrack, params: ConsoleParams) -> np.ndarray:
    """Per channel: a compressor whose threshold less half its knee lies under the channel's peak after its EQ
    (the old definition of "engages": blind to the detector's smoothing, so it counts compressors that barely act)."""
    out = []
    for i, ch in enumerate(params.ordered_like(multitrack.names).channels):
        if ch.compressor is None:
            out.append(False)
            continue
        peak_db = 20.0 * math.log10(max(float(equalised_stem(multitrack, i, ch).abs().max()), 1e-12))
        out.append(peak_db > ch.compressor.threshold_db - 0.5 * ch.compressor.knee_db)
    return np.array(out)


def gain_reductions(multitrack: Multitrack, params: ConsoleParams) -> np.ndarray:
    """Per channel: the compressor's energy-weighted mean gain reduction (dB) on its stem after the EQ.

    The stem is rendered through the channel's compressor (`mixdown.dsp.compressor`, makeup
    0 dB: detector, static curve and ballistics as the console has them), and the gain
    reduction ``10 log10(sum_c x^2 / sum_c y^2)`` of every sample is averaged with the
    input's energy as weight: how much the compressor turns down what is heard. 0 dB
    without compressor.
    """
    out = []
    for i, ch in enumerate(params.ordered_like(multitrack.names).channels):
        if ch.compressor is None:
            out.append(0.0)
            continue
        x = equalised_stem(multitrack, i, ch)
        c = ch.compressor
        settings = (torch.tensor([float(v)], dtype=torch.float64) for v in (
            c.threshold_db, c.ratio, c.attack_ms, c.release_ms, c.knee_db, 0.0))
        with torch.no_grad():
            y, _ = compressor(x, *settings, multitrack.sample_rate)
        energy_in, energy_out = x[0].pow(2).sum(0), y[0].pow(2).sum(0)
        heard = energy_in > 0
        reduction = 10.0 * torch.log10(energy_in[heard] / energy_out[heard].clamp_min(1e-300))
        out.append(float((energy_in[heard] * reduction).sum() / energy_in[heard].sum()) if bool(heard.any()) else 0.0)
    return np.array(out)


def errors(multitrack: Multitrack, estimate: ConsoleParams, truth: ConsoleParams,
           report: ReverseReport | None = None) -> dict[str, list[float]]:
    """Per-channel errors (see the module docstring); with the fit's report, the threshold errors where it
    acts are also split by whether the fit reported that threshold as determined (``unidentifiable``), and
    its range (``ranges``) is scored: its width, and whether it holds the true threshold."""
    est, tru = estimate.ordered_like(multitrack.names), truth.ordered_like(multitrack.names)
    gain = np.abs(effective_gains(multitrack, est) - effective_gains(multitrack, tru))
    level = np.abs(channel_levels(multitrack, est) - channel_levels(multitrack, tru))
    engaged = peak_engages(multitrack, tru)
    true_reduction, estimated_reduction = gain_reductions(multitrack, tru), gain_reductions(multitrack, est)
    acts = true_reduction >= ACTS_DB
    out: dict[str, list[float]] = {"gain": gain.tolist(), "level": level[np.isfinite(level)].tolist(), "pan": [abs(e.pan - t.pan) for e, t in
                                                                   zip(est.channels, tru.channels, strict=True)],
                                   "threshold": [], "threshold (peak)": [], "reduction": [], "send": [],
                                   "threshold (reported determined)": [], "threshold (reported undetermined)": [],
                                   "dry kept dry": [], "compressor on/off": [], "threshold range width": [],
                                   "threshold in range": []}
    for i, (e, t) in enumerate(zip(est.channels, tru.channels, strict=True)):
        out["compressor on/off"].append(float((e.compressor is None) == (t.compressor is None)))
        threshold_error = abs((e.compressor.threshold_db if e.compressor else 0.0)
                              - (t.compressor.threshold_db if t.compressor else 0.0))
        if engaged[i]:
            out["threshold (peak)"].append(threshold_error)
        if acts[i]:
            out["threshold"].append(threshold_error)
            if report is not None and e.compressor is not None:
                flagged = "compressor.threshold_db" in report.unidentifiable.get(e.name, ())
                out[f"threshold (reported {'un' if flagged else ''}determined)"].append(threshold_error)
                if "compressor.threshold_db" in report.ranges.get(e.name, {}):  # none where no fit was returned
                    low, high = report.ranges[e.name]["compressor.threshold_db"]
                    out["threshold range width"].append(high - low)
                    out["threshold in range"].append(float(low <= t.compressor.threshold_db <= high))
            out["reduction"].append(abs(estimated_reduction[i] - true_reduction[i]))
        if t.reverb_send_db is not None:
            out["send"].append(abs((e.reverb_send_db if e.reverb_send_db is not None else -80.0) - t.reverb_send_db))
        else:
            out["dry kept dry"].append(float(e.reverb_send_db is None))
    return out


def timed_fit(multitrack: Multitrack, reference: np.ndarray, config: ReverseConfig):
    cpu, wall = time.process_time(), time.perf_counter()
    estimate, report = fit(multitrack, reference, config)
    return estimate, report, time.perf_counter() - wall, time.process_time() - cpu


_OLD_DEMO = r'''
import json, sys, time
import numba, torch
torch.set_num_threads(int(sys.argv[1])); numba.set_num_threads(int(sys.argv[1]))
from mixdown.mixers import get_method
from mixdown.mixers.reverse import ReverseConfig, fit
from mixdown.multitrack import Multitrack
from mixdown.console import channel_loudness, render
from mixdown.synth.demo import demo_multitrack_arrays
import mixdown
mt = Multitrack.from_arrays(demo_multitrack_arrays(), 44100)
reference = render(mt, get_method("random", seed=0).predict(mt))
fit(mt, reference, ReverseConfig(steps=1))  # compile and load once, as the timed fit below has
cpu, wall = time.process_time(), time.perf_counter()
estimate, report = fit(mt, reference, ReverseConfig())
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "initial": report.initial_loss,
                  "final": report.final_loss, "source": mixdown.__file__}))
'''


def old_demo(source: str, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": source}
    done = subprocess.run([sys.executable, "-c", _OLD_DEMO, str(threads)], env=env, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else math.nan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=6, help="held-out songs per setting (default 6)")
    parser.add_argument("--seed", type=int, default=1001,
                        help="SynthConfig seed of the songs (default 1001, the held-out set; explore on another)")
    parser.add_argument("--duration", type=float, default=15.0, help="their length in seconds (default 15)")
    parser.add_argument("--threads", type=int, default=2, help="torch and numba threads (default 2)")
    parser.add_argument("--skip-long", action="store_true", help="skip the 3-minute song")
    parser.add_argument("--old-src", help="also time this source tree's reverse on the demo (its src folder)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results markdown")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rows: list[str] = []

    demo = Multitrack.from_arrays(demo_multitrack_arrays(), 44100)
    truth = get_method("random", seed=0).predict(demo)
    reference = render(demo, truth)
    fit(demo, reference, ReverseConfig(steps=1))  # numba's compiled kernels loaded once, as in any later fit
    estimate, report, demo_wall, cpu = timed_fit(demo, reference, ReverseConfig())
    demo_errors = errors(demo, estimate, truth)
    rows.append(f"| 15-s demo, `random` mix | {demo_wall:.1f} | {cpu:.1f} | {report.initial_loss:.3f} -> "
                f"{report.final_loss:.3f} | {_median(demo_errors['gain']):.2f} | "
                f"{_median(demo_errors['threshold']):.2f} | {_median(demo_errors['threshold (peak)']):.2f} | "
                f"{_median(demo_errors['send']):.2f} |")
    print(rows[-1], file=sys.stderr, flush=True)
    old = old_demo(args.old_src, args.threads) if args.old_src else None
    if old is not None:
        rows.append(f"| 15-s demo, `random` mix, old tree (`{args.old_src}`) | {old['wall']:.1f} | {old['cpu']:.1f} | "
                    f"{old['initial']:.3f} -> {old['final']:.3f} | | | | |")
        print(rows[-1], file=sys.stderr, flush=True)
    long_wall = math.nan
    if not args.skip_long:
        song = generate_song(0, SynthConfig(seed=args.seed, sample_rate=44100, duration_s=180.0, min_stems=8, max_stems=8))
        reference = render(song.multitrack, song.params)
        estimate, report, long_wall, cpu = timed_fit(song.multitrack, reference, ReverseConfig())
        long_errors = errors(song.multitrack, estimate, song.params)
        rows.append(f"| 3-min synthetic song (seed {args.seed}, song 0), full chain | {long_wall:.1f} | {cpu:.1f} | "
                    f"{report.initial_loss:.3f} -> {report.final_loss:.3f} | {_median(long_errors['gain']):.2f} | "
                    f"{_median(long_errors['threshold']):.2f} | {_median(long_errors['threshold (peak)']):.2f} | "
                    f"{_median(long_errors['send']):.2f} |")
        print(rows[-1], file=sys.stderr, flush=True)

    synth = SynthConfig(seed=args.seed, sample_rate=44100, duration_s=args.duration, min_stems=8, max_stems=8)
    pooled: dict[str, dict[str, list[float]]] = {"gain/pan/EQ": {}, "full chain": {}}
    times: dict[str, list[float]] = {"gain/pan/EQ": [], "full chain": []}
    configs = {"gain/pan/EQ": ReverseConfig(fit_compressor=False, fit_reverb=False), "full chain": ReverseConfig()}
    for index in range(args.songs):
        song = generate_song(index, synth)
        for setting, config in configs.items():
            truth = strip_dynamics(song.params) if setting == "gain/pan/EQ" else song.params
            reference = render(song.multitrack, truth)
            estimate, report, wall, _ = timed_fit(song.multitrack, reference, config)
            times[setting].append(wall)
            for key, values in errors(song.multitrack, estimate, truth, report).items():
                pooled[setting].setdefault(key, []).extend(values)
            print(f"{setting} song {index}: {wall:.1f} s, gain {_median(pooled[setting]['gain']):.2f} dB so far",
                  file=sys.stderr, flush=True)

    load_after = os.getloadavg()[0]
    linear, full = pooled["gain/pan/EQ"], pooled["full chain"]
    measured = {"linear gain (dB)": _median(linear["gain"]), "linear channel level (dB)": _median(linear["level"]),
                "linear pan": _median(linear["pan"]),
                "demo time (s)": demo_wall, "3-min time (s)": long_wall,
                "full gain (dB)": _median(full["gain"]), "full channel level (dB)": _median(full["level"]),
                "full threshold where it acts (dB)": _median(full["threshold"]),
                "full send (dB)": _median(full["send"])}
    command = shlex.join(["python", "benchmarks/reverse_targets.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        "# Reverse engineering: issue #15's targets",
        "",
        f"Command: `{command}`.  ",
        (f"Machine: {platform.machine()} with {os.cpu_count()} cores shared with other users (load average "
         f"{load_before:.1f} at the start, {load_after:.1f} at the end), {args.threads} torch/numba threads, "
         f"Python {platform.python_version()}, torch {torch.__version__}. Wall times on a shared machine vary with "
         "its load; CPU times (all threads) much less."),
        "",
        ("| fit | wall (s) | CPU (s) | loss start -> end | effective gain error (dB) | threshold error where it "
         f"acts (dB, >= {ACTS_DB:g} dB reduction) | threshold error where the peak engages (dB, old) | send error (dB) |"),
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        (f"{'Held-out songs' if args.seed == 1001 else 'Songs'}: `generate_song(i, SynthConfig(seed={args.seed}, duration_s={args.duration:g}, 8 stems))`, "
         f"i < {args.songs}; medians over all channels (see the script's docstring)."),
        "",
        "| metric | gain/pan/EQ | full chain |",
        "|---|---|---|",
        *(f"| {label} | {_median(linear.get(key, [])):.3g} | {_median(full.get(key, [])):.3g} |"
          for key, label in (("gain", "gain"), ("level", "level"), ("pan", "pan"),
                             ("threshold", f"threshold where it acts (>= {ACTS_DB:g} dB reduction)"),
                             ("threshold (reported determined)",
                              "threshold where it acts, fitted and reported determined by the fit"),
                             ("threshold (reported undetermined)",
                              "threshold where it acts, fitted and reported undetermined (`unidentifiable`)"),
                             ("threshold (peak)", "threshold where the peak engages (old definition)"),
                             ("reduction", "gain reduction where it acts"), ("send", "send"))),
        (f"| compressors that act (>= {ACTS_DB:g} dB) / whose peak engages (true ones, count) | | "
         f"{len(full['threshold'])} / {len(full['threshold (peak)'])} |"),
        (f"| of those that act, fitted with a threshold reported determined / undetermined (count) | | "
         f"{len(full['threshold (reported determined)'])} / {len(full['threshold (reported undetermined)'])} |"),
        (f"| of those fitted, the fit's threshold range (`ReverseReport.ranges`): median width (dB) / share "
         f"holding the true threshold | | {_median(full['threshold range width']):.3g} / "
         f"{np.mean(full['threshold in range']) if full['threshold in range'] else math.nan:.2f} |"),
        f"| dry channels returned dry (share) | | {np.mean(full['dry kept dry']) if full['dry kept dry'] else math.nan:.2f} |",
        f"| compressor on/off agreement (share) | | {np.mean(full['compressor on/off']):.2f} |",
        (f"| fit wall time, median (s) | {statistics.median(times['gain/pan/EQ']):.1f} | "
         f"{statistics.median(times['full chain']):.1f} |"),
        "",
        "Targets:",
        "",
        *(f"- {key}: {value:.3g} (target <= {TARGETS[key]:g}: {'met' if value <= TARGETS[key] else 'missed'})"
          for key, value in measured.items() if not math.isnan(value)),
    ]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
