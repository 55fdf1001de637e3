"""Training throughput of every shipped model's recipe, in segments per second.

Usage::

    python benchmarks/train_speed.py            # all recipes, writes benchmarks/results/train_speed.md
    python benchmarks/train_speed.py --quick    # fewer steps, prints only

For each recipe of ``configs/`` (``estimator``, ``dmc``, ``waveunet``; and the DMC's
emulator pre-training, ``configs/emulator.yaml``) this runs the real training loop - the
recipe's model, batch size, segment length, loss and optimiser, Lightning's ``Trainer``
through `mixdown.train.train` (the emulator's recipe too),
data loading included - for a few steps on a small synthetic dataset built here with the
recipe's own synthesis settings, and stamps the clock at the end of every step. Reported:
the median step time after ``--warmup`` steps, the segments per second it gives
(``batch_size / step``) and the audio seconds per second (``segments/s x segment_s``).

Deviations from the recipes, so only throughput is measured: no validation, no
checkpoint export, and the data is a few songs (not the recipe's hundreds); the
estimator is measured in both of its phases (settings loss alone, then the mix rendered
through the console); the DMC's emulator weights are a fresh emulator's (its speed does
not depend on the values). Threads: the recipe's ``threads``, or ``--threads``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mixdown.audio import atomic_write_text
from mixdown.models import build_model, save_model
from mixdown.synth.synthetic import build_dataset
from mixdown.train import (
    DataSource,
    MixingSystem,
    TrainConfig,
    load_recipe,
    load_train_config,
    train,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "train_speed.md"
SONGS = 6


class _StepClock(MixingSystem):
    """`MixingSystem` that records the time at the end of every training step."""

    stamps: list[float] = []

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        _StepClock.stamps.append(time.perf_counter())


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    batch: int
    segment_s: float
    threads: int
    steps: list[float]

    @property
    def step_s(self) -> float:
        return statistics.median(self.steps)


def step_times(stamps: list[float], warmup: int) -> list[float]:
    """Durations of the steps after the first ``warmup`` (>= 1), from end-of-step stamps."""
    return [b - a for a, b in zip(stamps[warmup - 1:], stamps[warmup:], strict=False)]


def songs_for(config: TrainConfig, root: Path) -> Path:
    """A few songs drawn with the recipe's synthesis settings, built once per setting."""
    synth = config.data.synth
    folder = root / f"synth-{synth.sample_rate}-{synth.seed}"
    if not folder.is_dir():
        build_dataset(folder, SONGS, synth, workers=1)
    return folder


def lightning_rate(config: TrainConfig, name: str, root: Path, steps: int, warmup: int, threads: int | None) -> Row:
    data = dataclasses.replace(config.data, sources=(DataSource(str(songs_for(config, root))),), synth=None,
                               val_fraction=0.2, test_fraction=0.0, segments_per_epoch=steps * config.batch_size)
    model_config = dict(config.model_config)
    if config.model == "dmc":  # a fresh emulator checkpoint for the DMC to load
        emulator_config = build_model("dmc", model_config).config.emulator
        weights = save_model(build_model("emulator", dataclasses.asdict(emulator_config)), root / "emulator.pt")
        model_config["emulator_weights"] = str(weights)
    run = dataclasses.replace(config, data=data, model_config=model_config, max_steps=warmup + steps,
                              val_every_steps=10 * (warmup + steps), baselines=(), out=str(root / f"run-{name}"),
                              export=None, threads=threads if threads is not None else config.threads)
    _StepClock.stamps = []
    train(run, system_class=_StepClock)
    return Row(name, config.batch_size, config.data.segment_s, run.threads or torch.get_num_threads(),
               step_times(_StepClock.stamps, warmup))


def emulator_rate(path: Path, root: Path, steps: int, warmup: int, threads: int | None) -> Row:
    config = load_recipe(path)
    run = dataclasses.replace(config, max_steps=warmup + steps + 1, val_every_steps=warmup + steps + 1, train_songs=2,
                              val_songs=1, val_segments=config.batch_size, out=str(root / "run-emulator"),
                              export=None, threads=threads if threads is not None else config.threads)
    stamps: list[float] = []
    train(run, progress=lambda done, total: stamps.append(time.perf_counter()))
    return Row("emulator (DMC pre-training)", run.batch_size, run.segment_s, run.threads or torch.get_num_threads(),
               step_times(stamps[:-1], warmup))  # the last step also validates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 timed steps per recipe; prints only")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per recipe")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps (at least 1)")
    parser.add_argument("--threads", type=int, help="torch threads (default: each recipe's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    steps = 3 if args.quick else args.steps
    began = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows.append(emulator_rate(REPO / "configs" / "emulator.yaml", root, steps, args.warmup, args.threads))
        estimator = load_train_config(REPO / "configs" / "estimator.yaml")
        rows.append(lightning_rate(dataclasses.replace(estimator, audio_from_step=10 ** 6), "estimator (settings loss)",
                                   root, steps, args.warmup, args.threads))
        rows.append(lightning_rate(dataclasses.replace(estimator, audio_from_step=0), "estimator (through the console)",
                                   root, steps, args.warmup, args.threads))
        for name in ("dmc", "waveunet"):
            rows.append(lightning_rate(load_train_config(REPO / "configs" / f"{name}.yaml"), name, root, steps,
                                       args.warmup, args.threads))
    command = "python benchmarks/train_speed.py" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
    lines = [
        "# Training throughput",
        "",
        f"Command: `{command}` on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}; took {(time.perf_counter() - began) / 60:.1f} min.",
        "",
        f"Each recipe's real training loop (data loading included, no validation) on {SONGS} songs drawn with its own "
        f"synthesis settings; median of {steps} steps after {args.warmup} warm-up steps.",
        "",
        "| recipe | batch | segment s | threads | step s (median) | segments/s | audio s/s | all steps (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row.name} | {row.batch} | {row.segment_s:g} | {row.threads} | {row.step_s:.3f} | "
                     f"{row.batch / row.step_s:.1f} | {row.batch * row.segment_s / row.step_s:.1f} | "
                     f"{', '.join(f'{t:.2f}' for t in row.steps)} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if not args.quick:
        atomic_write_text(args.out, report)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
