"""Inference speed and peak memory of every mixing method, by stem count and song length.

Usage::

    python benchmarks/method_speed.py               # 2/8/16/32 stems x 30 s and 180 s; writes results/method_speed.md
    python benchmarks/method_speed.py --quick       # 10 s x 2/8 stems, prints only
    python benchmarks/method_speed.py --methods mono,rules,reverse --grid 30=2,8 --grid 180=8

Methods: every method of `mixdown.mixers.METHODS` but ``reverse`` by default (``reverse``
only when named). A method that cannot be built here (e.g. its weights are not
installed) gets a ``missing`` row with the reason, never a silent gap. No run starts after
``--budget`` minutes; those left are listed as not run.

Stems: one synthesized song (`mixdown.synth.demo.synthesize_song`, 44.1 kHz) of the 11
available instruments (``overhead`` stereo, the rest mono), written once per length as
16-bit WAVs; songs of more than 11 stems reuse the instruments with a circular time shift
and a numbered name (``kick_2``), so no two stems are identical.

Each run is one method on one stem folder, in a fresh process that:

1. loads the stems as ``mixdown mix`` does (`load_multitrack`, in memory) - timed as
   *load*, not counted in the real-time factor;
2. runs the method - *predict*: ``predict`` of a mixer, ``mix`` of an audio-only mixer,
   ``mixdown.api.mix`` for ``reverse`` (given the unity-gain mix of the stems as its
   reference, rendered before the clock starts);
3. renders the settings with `mixdown.console.render` - *render* (none for audio-only
   mixers).

Steps 2 and 3 run once on the first 2 s of the stems before they are timed: numba loads
(or, after a code change, compiles) its kernels on first use, which is a one-off cost of
a process, not of a song.

Real-time factor = song length / (predict + render): how many times faster than the
song plays. Peak memory: every run is started by a launcher process (this script with
``--launch``) whose only child is the run; after waiting for it, the launcher reads
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``, the peak resident set of that run. The
``(load only)`` row is a run that loads the stems and stops: the floor every method
shares (Python, torch, numba and the stems in memory). Torch and numba keep their default
thread counts (all cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "method_speed.md"
SR = 44100
SEED = 3
ORDER = ("kick", "bass", "snare", "keys", "hihat", "guitar", "lead", "overhead", "tom_1", "tom_2", "room")
"""Instruments in the order songs take them: 2 stems are kick and bass, 8 a small band."""
LOAD_ONLY = "(load only)"
DEFAULT_GRID = ("30=2,8,16,32", "180=2,8,16,32")
"""Song seconds and stem counts measured by default: 180 s only for 8 and 32 stems, to keep the run short."""


def write_stems(folder: Path, seconds: float, count: int) -> list[Path]:
    """Write ``count`` stems of ``seconds`` into ``folder`` (see the module docstring); their paths in order."""
    import soundfile as sf

    from mixdown.synth.demo import synthesize_song

    arrays = synthesize_song(SEED, SR, seconds, stems=ORDER)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        name = ORDER[index % len(ORDER)]
        copy = index // len(ORDER)
        audio = arrays[name]
        if copy:
            audio = np.roll(audio, copy * round(0.37 * SR), axis=-1)
            name = f"{name}_{copy + 1}"
        paths.append(folder / f"{name}.wav")
        sf.write(paths[-1], audio.T, SR, subtype="PCM_16")
    return paths


def run_method(method: str, multitrack, reverse_steps: int | None = None) -> dict:
    """Run a method and render its settings once (`mixdown.api.mix`); the wall times of both
    (render 0 for audio-only methods). ``reverse`` reproduces the ``mono`` mix of the stems."""
    from mixdown.api import mix
    from mixdown.mixers.reverse import ReverseConfig

    target, options = None, {}
    if method == "reverse":
        target = mix(multitrack, "mono").mix
        options["config"] = (ReverseConfig() if reverse_steps is None
                             else ReverseConfig(steps=reverse_steps, eq_fit_steps=1))
    result = mix(multitrack, method, target=target, **options)
    render_s = result.info["render_s"]
    return {"predict_s": result.info["method_s"], "render_s": 0.0 if render_s != render_s else render_s}


def child(method: str, folder: Path) -> dict:
    """One run (in its own process): load, warm up, predict, render; returns the timings."""
    import torch

    from mixdown.multitrack import Multitrack, load_multitrack

    began = time.perf_counter()
    multitrack = load_multitrack(folder)
    timings = {"load_s": time.perf_counter() - began, "seconds": multitrack.duration_s,
               "stems": multitrack.num_tracks, "threads": torch.get_num_threads()}
    if method == LOAD_ONLY:
        return timings
    # Warm-up on the first 2 s: numba loads (or compiles) its kernels on first use.
    excerpt = {stem.name: stem.audio[:, :2 * SR] for stem in multitrack.stems}
    run_method(method, Multitrack.from_arrays(excerpt, SR, dict(zip(multitrack.names, multitrack.instruments))),
               reverse_steps=2)
    return timings | run_method(method, multitrack)


def launch(method: str, folder: Path, timeout_s: float) -> dict:
    """Start one run as this process's only child; its timings plus its peak RSS (MiB)."""
    try:
        done = subprocess.run([sys.executable, __file__, "--child", method, str(folder)], capture_output=True,
                              text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0  # Linux: KiB
    return result


def measure(method: str, folder: Path, timeout_s: float) -> dict:
    """Run ``launch`` in a launcher process, so that RUSAGE_CHILDREN covers this run alone."""
    done = subprocess.run([sys.executable, __file__, "--launch", method, str(folder), str(timeout_s)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["launcher failed"])[-1][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def usable_methods(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """The methods that can run here, and why the others cannot (e.g. weights not installed)."""
    from mixdown.errors import MixdownError
    from mixdown.mixers import get_method

    usable, skipped = [], {}
    for name in names:
        try:
            get_method(name)
            usable.append(name)
        except MixdownError as exc:
            skipped[name] = str(exc)
    return usable, skipped


def _row(method: str, stems: int, seconds: float, result: dict) -> str:
    if "error" in result:
        return f"| {method} | {stems} | {seconds:g} | {result['error']} | | | | |"
    if method == LOAD_ONLY:
        return (f"| {method} | {stems} | {seconds:g} | {result['load_s']:.2f} | | | | "
                f"{result['peak_mib']:.0f} |")
    busy = result["predict_s"] + result["render_s"]
    return (f"| {method} | {stems} | {seconds:g} | {result['load_s']:.2f} | {result['predict_s']:.2f} | "
            f"{result['render_s']:.2f} | {seconds / busy:.1f}x | {result['peak_mib']:.0f} |")


def parse_grid(items: list[str]) -> list[tuple[float, list[int]]]:
    """``["30=2,8", "180=8"]`` -> ``[(30.0, [2, 8]), (180.0, [8])]`` (song seconds, stem counts)."""
    grid = []
    for item in items:
        seconds, _, counts = item.partition("=")
        try:
            grid.append((float(seconds), [int(n) for n in counts.split(",")]))
        except ValueError:
            raise SystemExit(f"error: --grid takes SECONDS=STEMS,STEMS,... (e.g. 30=2,8), got {item!r}") from None
    return grid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--launch", nargs=3, metavar=("METHOD", "FOLDER", "TIMEOUT"), help=argparse.SUPPRESS)
    parser.add_argument("--methods", help="comma-separated (default: every registered mixer and audio-only mixer; "
                                          "reverse only when named)")
    parser.add_argument("--grid", action="append", metavar="SECONDS=STEMS,...",
                        help=f"song length and its stem counts, repeatable (default: {' '.join(DEFAULT_GRID)})")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per run (default 300)")
    parser.add_argument("--budget", type=float, default=14.0,
                        help="minutes after which no new run starts; the rest are listed as not run (default 14)")
    parser.add_argument("--quick", action="store_true", help="10 s x 2 and 8 stems; prints only")
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown to write")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return 0
    if args.launch:
        print(json.dumps(launch(args.launch[0], Path(args.launch[1]), float(args.launch[2]))))
        return 0

    import torch

    from mixdown.mixers import METHODS

    grid = parse_grid(["10=2,8"] if args.quick else args.grid or list(DEFAULT_GRID))
    names = args.methods.split(",") if args.methods else [m for m in METHODS if m != "reverse"]
    methods, missing = usable_methods(names)
    command = shlex.join(["python", "benchmarks/method_speed.py", *(sys.argv[1:] if argv is None else argv)])
    load_start = os.getloadavg()[0]
    table = ["| method | stems | song s | load s | predict s | render s | RTF | peak MiB |",
             "|---|---|---|---|---|---|---|---|"]
    table += [f"| {name} | all | all | missing: {reason} | | | | |" for name, reason in missing.items()]
    not_run = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="method_speed_") as tmp:
        for seconds, stem_counts in grid:
            files = write_stems(Path(tmp) / f"all_{seconds:g}", seconds, max(stem_counts))
            for count in stem_counts:
                folder = Path(tmp) / f"{count}_{seconds:g}"
                folder.mkdir()
                for path in files[:count]:
                    os.link(path, folder / path.name)
                for method in [LOAD_ONLY, *methods]:
                    if time.perf_counter() - started > 60.0 * args.budget:
                        not_run.append(f"{method} ({count} stems, {seconds:g} s)")
                        continue
                    table.append(_row(method, count, seconds, measure(method, folder, args.timeout)))
                    print(table[-1], file=sys.stderr, flush=True)
    total_min = (time.perf_counter() - started) / 60
    lines = [
        "# Method speed and memory",
        "",
        f"Command: `{command}` on {platform.machine()}, {os.cpu_count()} cores shared with other jobs (load "
        f"average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), Python "
        f"{platform.python_version()}, torch {torch.__version__}; the whole benchmark took {total_min:.1f} min.",
        "",
        "Grid: " + "; ".join(f"{seconds:g} s songs with {', '.join(map(str, counts))} stems"
                             for seconds, counts in grid)
        + ". One synthesized song at 44.1 kHz (mono stems, the overhead stereo) loaded from 16-bit WAVs; each run "
        "in a fresh process after a 2 s warm-up. RTF = song length / (predict + render), how many times faster "
        "than real time; peak = the run's peak resident memory (`getrusage(RUSAGE_CHILDREN).ru_maxrss` in its "
        "launcher), Python, torch, numba and the stems included: compare with the `(load only)` row of the same "
        "size. Timings on this shared machine vary with the load of the other jobs.",
        "",
        *table,
    ]
    if not_run:
        lines += ["", f"Not run (the {args.budget:g} min budget was spent): {', '.join(not_run)}."]
    if "reverse" not in names:
        lines += ["", "`reverse` (an optimisation per song against a reference mix, not a feed-forward method) is "
                      "left out by default; its convergence time is in `reverse.md` "
                      "(`benchmarks/reverse_speed.py`); add it with `--methods ...,reverse`."]
    report = "\n".join(lines) + "\n"
    print(report)
    if not args.quick:
        from mixdown.audio import atomic_write_text

        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, report)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
