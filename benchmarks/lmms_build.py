"""Real-mix dataset build and real-mix training times: build time per LMMS song, training time per recipe.

Usage::

    python benchmarks/lmms_build.py                        # reads data/lmms, times the recipes, writes benchmarks/results/lmms.md
    python benchmarks/lmms_build.py --dataset data/lmms --no-train

What it reports, on this machine:

1. **Build** (``mixdown data lmms --out DATASET``): per song, from the build's own
   ``manifest.json``: status (built / skipped and why), stems, excerpt length, LMMS renders
   made and the song's wall time (``build_s``). The build is not rerun here (the shipped
   demos take hours on 2 cores); the times are those of the build that made DATASET, with
   as many songs in parallel as its ``--workers`` (each song's renders also run in parallel),
   so a song's wall time is shared with the other songs being built at the same time.
2. **Training** of the real-mix recipes, run here one after the other: the ``producer``
   forests on every real song of DATASET (``configs/producer.yaml``: song analysis and fit),
   with and without synthetic pre-training rows (``--synth-songs``).

The load average before and after each part is recorded: on a machine shared with other
jobs every time is an upper bound.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from mixdown.config import load_config
from mixdown.mixers.producer import ProducerRecipe, train_producer

RESULTS = Path(__file__).parent / "results" / "lmms.md"
ROOT = Path(__file__).resolve().parents[1]


def _load() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def _lmms_version() -> str:
    try:
        out = subprocess.run(["lmms", "--allowroot", "--version"], capture_output=True, text=True, timeout=60, check=False,
                             env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "unknown"


def build_table(manifest: dict) -> list[str]:
    """Markdown rows of the build, one per project."""
    rows = ["| song | status | stems | seconds | LMMS renders | build wall time (s) |", "|---|---|---|---|---|---|"]
    for song in manifest["songs"]:
        status = song["status"] if song["reason"] is None else f"{song['status']}: {song['reason']}"
        seconds = "" if song.get("seconds") is None else f"{song['seconds']:.1f}"
        rows.append(f"| {song['song']} | {status} | {song.get('stems') or ''} | {seconds} | {song.get('renders', '')} "
                    f"| {song.get('build_s', 0.0):.1f} |")
    built = [s for s in manifest["songs"] if s["status"] == "built"]
    if built:
        times = sorted(s["build_s"] for s in built)
        rows.append(f"| **{len(built)} built** | | {sum(s['stems'] for s in built)} | "
                    f"{sum(s['seconds'] for s in built):.0f} | {sum(s['renders'] for s in built)} | "
                    f"total {sum(times):.0f}, median {times[len(times) // 2]:.0f} |")
    return rows


def train_rows(dataset: str, synth_songs: int) -> list[str]:
    """Markdown rows of the producer recipe's training time, real songs alone and with synthetic rows."""
    recipe = load_config(ProducerRecipe, ROOT / "configs" / "producer.yaml").producer_config
    rows = ["| recipe | data | rows | song analysis (s) | fit (s) | wall (s) | load before / after |",
            "|---|---|---|---|---|---|---|"]
    variants = [("real songs", 0)] + ([(f"real + {synth_songs} synthetic", synth_songs)] if synth_songs else [])
    for label, synth in variants:
        config = dataclasses.replace(recipe, dataset=dataset, synth_songs=synth)
        before = _load()
        wall = time.perf_counter()
        model = train_producer(config)
        wall = time.perf_counter() - wall
        info = model.info
        rows.append(f"| producer (`configs/producer.yaml`) | {label} | {info['rows']} | {info['data_s']} | "
                    f"{info['fit_s']} | {wall:.1f} | {before} -> {_load()} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="data/lmms")
    parser.add_argument("--synth-songs", type=int, default=100, help="synthetic rows of the second producer run")
    parser.add_argument("--no-train", action="store_true", help="report the build only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    manifest_path = Path(args.dataset) / "manifest.json"
    if not manifest_path.is_file():
        print(f"error: {manifest_path} not found; build it with mixdown data lmms --out {args.dataset}", file=sys.stderr)
        return 2
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    load_build = _load()
    machine = (f"Command: `python benchmarks/lmms_build.py --dataset {args.dataset}`. Machine: {os.cpu_count()} CPU "
               f"cores, {platform.platform()}, Python {platform.python_version()}, {_lmms_version()}.")
    source = (f"From `{manifest_path}` (the build's own timings; build settings {json.dumps(manifest.get('config', {}))}). "
              "The build ran songs in parallel (`--workers`) on a machine shared with other jobs, so each song's wall "
              f"time is an upper bound. Load average (1 / 5 / 15 min) when this report was written: {load_build}.")
    lines = ["# LMMS real-mix dataset: build and training times", "", machine, "", "## Build (`mixdown data lmms`)", "",
             source, ""]
    lines += build_table(manifest)
    if not args.no_train:
        lines += ["", "## Training (real-mix recipes, one after the other)", ""]
        lines += train_rows(args.dataset, args.synth_songs)
    report = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
