"""Mix-Wave-U-Net: inference speed on a long song, and stereo loss on held-out songs.

Usage::

    python benchmarks/waveunet_speed.py                                  # speed of the shipped weights
    python benchmarks/waveunet_speed.py --recipe configs/waveunet.yaml   # speed of an untrained model of that size
    python benchmarks/waveunet_speed.py --no-timing --eval data/eval-synth-7919   # held-out comparison only
    python benchmarks/waveunet_speed.py --eval data/synth-waveunet --split test   # the recipe's test split too
    python benchmarks/waveunet_speed.py --quick --results /tmp                    # small sizes, for a smoke run

Writes ``benchmarks/results/waveunet.md`` (speed) and, with ``--eval``,
``benchmarks/results/waveunet_eval.md`` (``--results`` for another folder). Measures, on
this machine:

1. Speed: 8 stems (a synthesized drum kit, bass and keys, one stereo overhead) tiled to
   180 s at 44.1 kHz, mixed by `mixdown.mixers.waveunet.WaveUNetMixer` (streamed in
   windows, master stage included) with ``--threads`` torch threads: median wall time
   of ``--runs`` runs, real-time factor (wall time / audio time), and the peak resident
   memory of the process (the stems themselves included). The weights' values do not
   change the cost, so an untrained model of the recipe's size times the same.
2. With ``--eval``: the stereo loss against the target mix (``stereo_mrstft`` of
   `mixdown.metrics`: the training loss `mixdown.losses.StereoLoss` with a hop of half
   a window) of every song of a folder-layout dataset (whole songs, or their central
   ``--excerpt`` seconds; ``--split`` takes the recipes' split: 10 % validation, 10 %
   test, seed 0), for the shipped Mix-Wave-U-Net, ``mono``, ``random`` and the
   ``oracle`` (the song's true settings). The songs are mixed and scored by
   `mixdown.evaluate.run_evaluation`, the code of ``mixdown evaluate`` (``random``
   seeded with `mixdown.evaluate.song_seed`), into ``--eval-out``; a rerun resumes there.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mixdown.audio import atomic_write_text
from mixdown.mixers.waveunet import WaveUNetMixer
from mixdown.models import build_model, save_model
from mixdown.multitrack import Multitrack
from mixdown.synth.demo import synthesize_song
from mixdown.weights import shipped

SR = 44100
STEMS = ("kick", "snare", "hihat", "tom_1", "overhead", "bass", "keys", "room")
RESULTS = Path(__file__).parent / "results"
EVAL_METHODS = ("waveunet", "mono", "random")
BAR = 0.25  # issue 4: learned methods beat mono and random by >= 25 % on the stereo loss


def long_song(seconds: float) -> Multitrack:
    """The 8 `STEMS` of one synthesized 15 s song, tiled to ``seconds``."""
    arrays = synthesize_song(0, SR, duration_s=15.0, stems=STEMS)
    frames = int(seconds * SR)
    tiled = {name: np.tile(audio, (1, -(-frames // audio.shape[-1])))[:, :frames] for name, audio in arrays.items()}
    return Multitrack.from_arrays(tiled, SR)


def weights_for_timing(args: argparse.Namespace, folder: Path) -> tuple[Path, str]:
    """The weights to time and how to describe them."""
    if args.recipe is None:
        return shipped("waveunet.pt"), "shipped weights"
    from mixdown.train import load_train_config

    recipe = load_train_config(args.recipe)
    model = build_model(recipe.model, recipe.model_config)
    return save_model(model, folder / "untrained.pt"), f"untrained model of `{args.recipe}`"


@dataclass(frozen=True)
class Timing:
    """Measurements of `time_mix`: per-run wall and process CPU times (s), peak RSS (MiB),
    the model's parameters, the stems' channels and the load averages (1, 5, 15 min) at the end."""

    wall_s: list[float]
    cpu_s: list[float]
    peak_mib: float
    parameters: int
    channels: int
    load: tuple[float, float, float]


def time_mix(weights: Path, seconds: float, runs: int) -> Timing:
    """Time `WaveUNetMixer` on the long song (after a 1 s warm-up for the master stage's numba kernels)."""
    multitrack = long_song(seconds)
    mixer = WaveUNetMixer(weights)
    mixer.mix(Multitrack.from_arrays({n: multitrack.stem_audio(i)[:, :SR] for i, n in enumerate(multitrack.names)},
                                     SR))
    wall, cpu = [], []
    for _ in range(runs):
        start, cpu_start = time.perf_counter(), time.process_time()
        mix = mixer.mix(multitrack)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    assert mix.shape == (2, multitrack.num_frames) and np.isfinite(mix).all()
    return Timing(wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  sum(p.numel() for p in mixer.model.parameters()),
                  sum(multitrack.stem_audio(i).shape[0] for i in range(multitrack.num_tracks)), os.getloadavg())


def held_out_losses(args: argparse.Namespace) -> dict[str, list[float]]:
    """``stereo_mrstft`` per held-out song of every method of `EVAL_METHODS` (and the oracle).

    The songs are mixed and scored by `mixdown.evaluate.run_evaluation` (``mixdown
    evaluate``) into ``--eval-out``, which resumes from the rows already there.
    """
    from mixdown.evaluate import METRICS_FILE, ORACLE, EvalConfig, run_evaluation
    from mixdown.evaluation.results import ResultsTable

    out = args.eval_out or Path("runs") / f"waveunet-eval-{args.eval.name}"
    config = EvalConfig(dataset=str(args.eval), out=str(out), methods=EVAL_METHODS, split=args.split,
                        songs=args.songs, seconds=args.excerpt)
    result = run_evaluation(config, progress=lambda done, total: print(f"{done}/{total} song x method tasks",
                                                                         file=sys.stderr, flush=True))
    table = ResultsTable(out / METRICS_FILE)
    return {method: [float(table.get(song, method)["stereo_mrstft"]) for song in result.songs]
            for method in (*EVAL_METHODS, ORACLE) if method in result.methods}


def header(title: str, args: argparse.Namespace) -> list[str]:
    """A results file's title and the command and machine that made it."""
    return [f"# {title}", "",
            f"Command: `python benchmarks/waveunet_speed.py {' '.join(sys.argv[1:])}` on {platform.machine()}, "
            f"{args.threads} torch threads, Python {platform.python_version()}, torch {torch.__version__}.", ""]


def speed_report(args: argparse.Namespace, described: str, timing: Timing) -> str:
    median = statistics.median(timing.wall_s)
    lines = header("Mix-Wave-U-Net: inference speed", args) + [
        f"8 stems x {args.seconds:g} s at 44.1 kHz ({described}, {timing.parameters} parameters), "
        f"{len(timing.wall_s)} timed runs.", "",
        "| median wall time (s) | real-time factor (wall / audio) | all runs: wall (s) | all runs: process CPU (s) "
        "| peak RSS (MiB) |",
        "|---|---|---|---|---|",
        f"| {median:.1f} | {median / args.seconds:.3f} | {', '.join(f'{t:.1f}' for t in timing.wall_s)} | "
        f"{', '.join(f'{t:.1f}' for t in timing.cpu_s)} | {timing.peak_mib:.0f} |", "",
        f"Load average when the timing ended: {', '.join(f'{x:.1f}' for x in timing.load)} (1, 5, 15 min) on "
        f"{os.cpu_count()} cores. On a shared machine the wall time includes waiting for the CPU; the process "
        "CPU time (all threads together) is what the mix itself costs.",
        "",
        f"Peak RSS includes the stems in memory ({timing.channels * args.seconds * SR * 4 / 2 ** 20:.0f} MiB of "
        f"float32, {timing.channels} channels), the mix, and torch and numba.",
    ]
    return "\n".join(lines) + "\n"


def eval_report(args: argparse.Namespace, losses: dict[str, list[float]]) -> str:
    count = len(losses["waveunet"])
    where = f"the {args.split} split of `{args.eval}`" if args.split else f"`{args.eval}`"
    cut = f"central {args.excerpt:g} s of every song" if args.excerpt else "whole songs"
    lines = header("Mix-Wave-U-Net: stereo loss on held-out songs", args) + [
        f"Shipped weights; {where}: {count} songs never trained on, {cut}.", "",
        "| method | stereo loss mean | median |", "|---|---|---|"]
    for name, values in losses.items():
        lines.append(f"| {name} | {statistics.fmean(values):.4f} | {statistics.median(values):.4f} |")
    lines += ["", "Improvement of the Mix-Wave-U-Net (1 - loss / baseline loss, means over songs):", ""]
    ours = statistics.fmean(losses["waveunet"])
    for base in ("mono", "random"):
        gain = 1.0 - ours / statistics.fmean(losses[base])
        wins = sum(a < b for a, b in zip(losses["waveunet"], losses[base], strict=True))
        verdict = "meets" if gain >= BAR else "misses"
        lines.append(f"- vs {base}: {100 * gain:+.1f} % ({wins}/{count} songs better; {verdict} the issue's "
                     f"{100 * BAR:.0f} % bar)")
    lines += ["", "Stereo loss: `stereo_mrstft` of `mixdown.metrics` (sum-and-difference multi-resolution STFT, "
              "FFT 512, 2048, 8192: the training loss `mixdown.losses.StereoLoss` with a hop of half a window), "
              "lower is better. Songs mixed and scored by `mixdown.evaluate.run_evaluation` (`mixdown evaluate`; "
              "per-song rows and the full report in the evaluation folder). The oracle renders the songs' true "
              "settings: the floor (zero on whole songs; not quite zero on excerpts, whose master stage sees only "
              "the excerpt)."]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    print(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, help="time an untrained model of this recipe's size instead")
    parser.add_argument("--no-timing", action="store_true", help="skip the speed measurement")
    parser.add_argument("--eval", type=Path, help="held-out dataset (folder layout) to evaluate on")
    parser.add_argument("--split", choices=("train", "val", "test"), help="evaluate only this split (default: all)")
    parser.add_argument("--songs", type=int, help="evaluate only the first this many songs")
    parser.add_argument("--excerpt", type=float, help="evaluate the central this many seconds of every song")
    parser.add_argument("--eval-out", type=Path, help="evaluation folder (default runs/waveunet-eval-DATASET)")
    parser.add_argument("--seconds", type=float, default=180.0, help="length of the timed song (default 180)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="20 s song, one run, 2 songs")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the markdown files")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.runs, args.songs = 20.0, 1, 2
    torch.set_num_threads(args.threads)
    if not args.no_timing:
        with tempfile.TemporaryDirectory() as folder:
            weights, described = weights_for_timing(args, Path(folder))
            write(args.results / "waveunet.md", speed_report(args, described, time_mix(weights, args.seconds,
                                                                                        args.runs)))
    if args.eval is not None:
        losses = held_out_losses(args)
        write(args.results / "waveunet_eval.md", eval_report(args, losses))


if __name__ == "__main__":
    main()
