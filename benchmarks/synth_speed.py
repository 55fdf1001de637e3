"""Synthetic dataset generation speed: songs per second, and seconds per song on one core.

Usage::

    python benchmarks/synth_speed.py            # full targets, writes benchmarks/results/synth.md
    python benchmarks/synth_speed.py --quick    # small sizes, for a smoke run

Measures, on this machine:

1. Throughput: `build_dataset` of 100 songs x 30 s x 8 stems at 44.1 kHz with their
   console targets and mixes, written as float WAVs (what ``mixdown data synth`` does),
   on 2 worker processes; songs per second, median of ``--runs`` builds (each into a
   fresh temporary folder, deleted afterwards: a build is ~6 GB). Worker start-up is
   included.
2. One core: song after song in this process with one torch/numba thread, the median
   time of each stage (synthesis, console targets, render, writing) and of the whole.

The load average is recorded: on a shared machine the throughput is a lower bound.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
import torch

from mixdown.console import render
from mixdown.multitrack import Multitrack
from mixdown.synth.demo import synthesize_song
from mixdown.synth.synthetic import (
    SynthConfig,
    SyntheticSong,
    build_dataset,
    choose_stems,
    song_name,
    write_song,
)
from mixdown.synth.targets import sample_console_params

RESULTS = Path(__file__).parent / "results" / "synth.md"
TARGET_SONGS_PER_S = 2.0


def throughput(songs: int, config: SynthConfig, workers: int) -> float:
    """Songs per second of one dataset build into a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="mixdown-synth-bench-") as root:
        start = time.perf_counter()
        build_dataset(root, songs, config, workers=workers)
        return songs / (time.perf_counter() - start)


STAGES = ("synthesis", "targets", "render", "write", "total")


def stage_times(songs: int, config: SynthConfig) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds per stage for songs ``1..songs`` (song 0 warms the kernels up), one thread.

    Returns:
        ``{"wall": {stage: [s, ...]}, "cpu": {stage: [s, ...]}}``.
    """
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    clocks = {"wall": time.perf_counter, "cpu": time.process_time}
    times = {clock: {stage: [] for stage in STAGES} for clock in clocks}
    with tempfile.TemporaryDirectory(prefix="mixdown-synth-bench-") as root:
        for index in range(songs + 1):
            marks = [{name: clock() for name, clock in clocks.items()}]
            stems, song_seed = choose_stems(index, config)
            arrays = synthesize_song(song_seed, config.sample_rate, config.duration_s, stems)
            multitrack = Multitrack.from_arrays(arrays, config.sample_rate)
            marks.append({name: clock() for name, clock in clocks.items()})
            params = sample_console_params(multitrack, np.random.default_rng([config.seed, index]))
            marks.append({name: clock() for name, clock in clocks.items()})
            mix = render(multitrack, params)
            marks.append({name: clock() for name, clock in clocks.items()})
            write_song(SyntheticSong(song_name(index), multitrack, params, mix), root)
            marks.append({name: clock() for name, clock in clocks.items()})
            if index == 0:
                continue
            for clock in clocks:
                for stage, begin, end in zip(STAGES, marks, marks[1:], strict=False):
                    times[clock][stage].append(end[clock] - begin[clock])
                times[clock]["total"].append(marks[-1][clock] - marks[0][clock])
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 songs x 5 s, one run, no results file")
    parser.add_argument("--runs", type=int, default=3, help="dataset builds to take the median of (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--single-core-songs", type=int, default=10, help="songs of the one-core run (default 10)")
    args = parser.parse_args()
    songs, duration_s, runs = (6, 5.0, 1) if args.quick else (100, 30.0, args.runs)
    config = SynthConfig(seed=0, sample_rate=44100, duration_s=duration_s, min_stems=8, max_stems=8)

    load_before = os.getloadavg()
    rates = []
    for run in range(runs):
        rates.append(throughput(songs, config, args.workers))
        print(f"build {run + 1}/{runs}: {rates[-1]:.2f} songs/s", file=sys.stderr)
    load_between = os.getloadavg()
    stages = stage_times(3 if args.quick else args.single_core_songs, config)
    load_after = os.getloadavg()

    median_rate = statistics.median(rates)
    verdict = "meets" if median_rate >= TARGET_SONGS_PER_S else "misses"
    command = "python benchmarks/synth_speed.py" + (" --quick" if args.quick else "")
    lines = [
        "# Synthetic data generation benchmark",
        "",
        f"Command: `{command}` on {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}.",
        f"Load average (1 min) before / between / after: {load_before[0]:.1f} / {load_between[0]:.1f} / "
        f"{load_after[0]:.1f}. The machine is shared; a load above the CPU count slows every figure here.",
        "",
        f"## Throughput: {songs} songs x {duration_s:g} s x 8 stems at 44.1 kHz, {args.workers} workers",
        "",
        "Stems, mix (float WAV) and params.json written per song, as `mixdown data synth` does; worker start-up "
        "included.",
        "",
        f"Median of {runs} builds: **{median_rate:.2f} songs/s** ({verdict} the target of "
        f"{TARGET_SONGS_PER_S:g} songs/s); all builds: {', '.join(f'{r:.2f}' for r in rates)} songs/s.",
        "",
        f"## One core: seconds per song (median of {len(stages['wall']['total'])} songs, one torch/numba thread)",
        "",
        "CPU time (process time) is what a song costs a core; wall time also counts waiting for a busy CPU.",
        "",
        "| stage | CPU median (s) | wall median (s) | wall min (s) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {stage} | {statistics.median(stages['cpu'][stage]):.3f} | "
              f"{statistics.median(stages['wall'][stage]):.3f} | {min(stages['wall'][stage]):.3f} |"
              for stage in STAGES]
    cpu_per_song = statistics.median(stages["cpu"]["total"])
    lines += ["", f"At the median CPU time, {args.workers} idle cores would make at most "
                  f"{args.workers / cpu_per_song:.2f} songs/s (worker start-up aside)."]
    report = "\n".join(lines) + "\n"
    print(report)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report, encoding="utf-8")
        print(f"wrote {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
