"""Data-loading speed: segments per second from a DataLoader alone (no model).

Usage::

    python benchmarks/loader_speed.py                # 20 songs x 30 s x 8 stems, writes benchmarks/results/loader.md
    python benchmarks/loader_speed.py --quick        # 4 songs x 10 s, for a smoke run (writes nothing)
    python benchmarks/loader_speed.py --root DIR     # build (or reuse) the dataset in DIR and keep it

Builds a synthetic folder-layout dataset with `mixdown.synth.synthetic.build_dataset`
(8 stems per song at 44.1 kHz, 24-bit WAV), then iterates a ``DataLoader`` over
`FolderDataset` in random mode (segments of 2^16 frames, silence filter on, track order
shuffled by the collate, batch 8) with 0 and 2 worker processes, plus one run with
per-stem loudness normalisation. Each configuration runs ``--passes`` epochs of
``--batches`` batches; a pass is timed from its first batch to its last (worker start-up
excluded), and the table gives the median over passes. The files were just written, so
they are read from the page cache: this measures decoding and processing, not the disk.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from mixdown.data.collate import MultitrackCollate
from mixdown.data.folder import FolderDataset
from mixdown.data.songs import DatasetConfig
from mixdown.synth.synthetic import SynthConfig, build_dataset

SR = 44100
SEGMENT_FRAMES = 2**16
BATCH = 8
STEMS = 8
RESULTS = Path(__file__).parent / "results" / "loader.md"


@dataclass(frozen=True)
class Case:
    """One loader configuration to time."""

    label: str
    workers: int
    stem_lufs: float | None = None


CASES = (Case("0 workers", 0), Case("2 workers", 2), Case("0 workers, stems normalised to -23 LUFS", 0, -23.0))


def time_case(root: Path, case: Case, batches: int, passes: int) -> list[float]:
    """Segments per second of each pass (first batch excluded)."""
    config = DatasetConfig(segment_frames=SEGMENT_FRAMES, sample_rate=SR, segments_per_epoch=BATCH * (batches + 1),
                           stem_lufs=case.stem_lufs)
    dataset = FolderDataset(root, config)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, num_workers=case.workers,
                                         collate_fn=MultitrackCollate(shuffle_tracks=True))
    rates = []
    for epoch in range(passes):
        dataset.set_epoch(epoch)
        iterator = iter(loader)
        first = next(iterator)
        assert first.stems.shape[1] == STEMS and first.stems.shape[-1] == SEGMENT_FRAMES
        start = time.perf_counter()
        count = sum(batch.stems.shape[0] for batch in iterator)
        rates.append(count / (time.perf_counter() - start))
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run); does not write results")
    parser.add_argument("--root", type=Path, help="dataset folder to build or reuse (default: a temporary one)")
    parser.add_argument("--batches", type=int, default=30, help="timed batches per pass")
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args(argv)
    songs, seconds = (4, 10.0) if args.quick else (20, 30.0)
    batches, passes = (4, 2) if args.quick else (args.batches, args.passes)

    with tempfile.TemporaryDirectory() as scratch:
        root = args.root or Path(scratch) / "synthetic"
        start = time.perf_counter()
        build_dataset(root, songs, SynthConfig(seed=0, sample_rate=SR, duration_s=seconds, min_stems=STEMS,
                                                max_stems=STEMS), workers=2)
        build_s = time.perf_counter() - start
        load = os.getloadavg()
        # Loudness normalisation is several times slower: time a third as many batches there.
        results = {case: time_case(root, case, batches if case.stem_lufs is None else max(batches // 3, 2), passes)
                   for case in CASES}

    command = "python benchmarks/loader_speed.py" + (" --quick" if args.quick else "")
    lines = [
        "# Data loader benchmark",
        "",
        f"Command: `{command}` on {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, Python {platform.python_version()}, torch {torch.__version__}; "
        f"{os.cpu_count()} CPUs, load average {load[0]:.1f} before and {os.getloadavg()[0]:.1f} after the timing "
        "(the machine is shared: other jobs slow every figure below).",
        "",
        f"Dataset: {songs} synthetic songs x {seconds:.0f} s x {STEMS} stems (drawn from the 11 synthesized "
        f"instruments; mono but the stereo overhead stem when drawn) at {SR / 1000:.1f} kHz, 24-bit WAV, built with "
        f"`build_dataset` (2 processes) in {build_s:.0f} s. "
        f"Loader: `FolderDataset` random mode, segments of {SEGMENT_FRAMES} frames ({SEGMENT_FRAMES / SR:.2f} s), "
        f"silence filter on, batch {BATCH}, `MultitrackCollate(shuffle_tracks=True)`; {batches} timed batches "
        f"per pass ({max(batches // 3, 2)} with loudness normalisation), median of {passes} passes. Files are in the page cache (decoding and processing, not disk).",
        "",
        "| loader | segments/s (median) | frames/s | audio seconds/s | all passes (segments/s) |",
        "|---|---|---|---|---|",
    ]
    for case, rates in results.items():
        median = statistics.median(rates)
        lines.append(f"| {case.label} | {median:.1f} | {median * SEGMENT_FRAMES / 1e6:.2f} M | "
                     f"{median * SEGMENT_FRAMES / SR:.0f} | {', '.join(f'{r:.1f}' for r in rates)} |")
    lines += ["", "A segment is 8 stems plus the stereo mix; frames/s counts segment frames (per track, not summed "
              "over tracks).", ""]
    report = "\n".join(lines)
    print(report)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
