"""``mixdown data``: build synthetic datasets (``synth``), real ones from LMMS projects (``lmms``), check any (``check``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console

from mixdown.errors import MixdownError

_out = Console(highlight=False)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data synth`` and ``data check``."""
    from mixdown.synth.demo import AVAILABLE_STEMS
    from mixdown.synth.synthetic import SynthConfig

    defaults = SynthConfig()
    data = subparsers.add_parser("data", help="datasets: build synthetic ones, check any")
    sub = data.add_subparsers(dest="data_command", required=True)

    synth = sub.add_parser(
        "synth", help="generate synthetic songs (stems, target mix, true console settings); resumable",
        description="Generate songs 0..SONGS-1 into OUT (song_NNNNN/stems/*.wav, mix.wav, params.json). "
                    "Songs already in OUT are kept, so an interrupted build resumes where it stopped.")
    synth.set_defaults(handler=_cmd_synth)
    synth.add_argument("--songs", type=int, required=True, help="number of songs the dataset should hold")
    synth.add_argument("--out", type=Path, required=True, help="dataset folder (created if needed)")
    synth.add_argument("--seed", type=int, default=defaults.seed, help=f"dataset seed (default {defaults.seed})")
    synth.add_argument("--duration", type=float, default=defaults.duration_s,
                       help=f"seconds per song (default {defaults.duration_s:g})")
    synth.add_argument("--sample-rate", type=int, default=defaults.sample_rate,
                       help=f"in Hz (default {defaults.sample_rate})")
    synth.add_argument("--min-stems", type=int, default=defaults.min_stems,
                       help=f"fewest stems per song (default {defaults.min_stems})")
    synth.add_argument("--max-stems", type=int, default=defaults.max_stems,
                       help=f"most stems per song (default and at most {len(AVAILABLE_STEMS)})")
    synth.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8),
                       help="parallel processes (default: the CPU count, at most 8)")
    synth.add_argument("--drumkit", type=Path,
                       help="play the drums with a Hydrogen drumkit (folder, drumkit.xml or .h2drumkit) or a "
                            "folder of kits, e.g. /usr/share/hydrogen/data/drumkits")
    synth.add_argument("--soundfont", type=Path,
                       help="play bass, keys, guitar and lead with a General MIDI SoundFont through fluidsynth, "
                            "e.g. /usr/share/sounds/sf2/FluidR3_GM.sf2")

    from mixdown.data.lmms import DEFAULT_SECONDS

    lmms = sub.add_parser(
        "lmms", help="real producer mixes from LMMS projects: dry stems, the mix, stated gains/pans; resumable",
        description="Render each LMMS project (default: every song Debian's lmms-common ships) into OUT/<song>/: "
                    "stems/NN_<track>.wav (each track solo and dry), mix.wav (the producer's mix), params.json "
                    "(the gains and pans the project states) and lmms.json (what the console does not represent: "
                    "automation, mixer effects, ...). Projects that cannot be used are skipped with the reason, "
                    "printed and in OUT/manifest.json. Songs already in OUT are kept.")
    lmms.set_defaults(handler=_cmd_lmms)
    lmms.add_argument("projects", nargs="*", type=Path, help=".mmp/.mmpz files (default: the shipped demos)")
    lmms.add_argument("--out", type=Path, required=True, help="dataset folder (created if needed)")
    lmms.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                      help=f"excerpt length: whole bars where the mix is loudest (default {DEFAULT_SECONDS:g}; "
                           "0 for whole songs)")
    lmms.add_argument("--sample-rate", type=int, default=44100, help="in Hz (default 44100)")
    lmms.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8),
                      help="LMMS renders at once (default: the CPU count, at most 8)")

    check = sub.add_parser("check", help="check every song of a dataset as the loaders do; lists the bad ones")
    check.set_defaults(handler=_cmd_check)
    check.add_argument("root", type=Path, help="dataset folder")
    check.add_argument("--layout", default="folder", help="folder (default), enst, medleydb or musdb")
    check.add_argument("--skip-bad", action="store_true",
                       help="go on past bad songs and list them all (exit code 2 if any) "
                            "instead of stopping at the first")


def _cmd_synth(args: argparse.Namespace) -> None:
    from mixdown.cli import err, progress
    from mixdown.synth.synthetic import SynthConfig, build_dataset

    config = SynthConfig(seed=args.seed, sample_rate=args.sample_rate, duration_s=args.duration,
                         min_stems=args.min_stems, max_stems=args.max_stems,
                         drumkit=None if args.drumkit is None else str(args.drumkit),
                         soundfont=None if args.soundfont is None else str(args.soundfont))
    with progress(f"synthesizing {args.songs} songs", args.songs) as update:
        made = build_dataset(args.out, args.songs, config, workers=args.workers, progress=update)
    err.print(f"wrote {len(made)} songs to {args.out} ({args.songs - len(made)} were there already)", markup=False)


def _cmd_lmms(args: argparse.Namespace) -> None:
    from mixdown.cli import err
    from mixdown.data.lmms import MANIFEST_FILE, BuildConfig, build_dataset

    config = BuildConfig(seconds=args.seconds or None, sample_rate=args.sample_rate)
    if args.workers < 1:
        raise MixdownError(f"--workers must be at least 1, got {args.workers}")

    def news(line: str) -> None:
        err.print(line, markup=False, highlight=False, soft_wrap=True)

    reports = build_dataset(args.projects or None, args.out, config, workers=args.workers, progress=news)
    built = [r for r in reports if r.status == "built"]
    skipped = [r for r in reports if r.status == "skipped"]
    err.print(f"{len(built)} of {len(reports)} projects are songs in {args.out} ({len(skipped)} skipped; "
              f"see {args.out / MANIFEST_FILE})", markup=False, highlight=False)
    for report in skipped:
        err.print(f"  skipped {report.song}: {report.reason}", markup=False, highlight=False, soft_wrap=True)


def _cmd_check(args: argparse.Namespace) -> None:
    from mixdown.data.folder import check_dataset

    report = check_dataset(args.root, layout=args.layout, skip_bad=args.skip_bad)
    _out.print(report.summary(), markup=False, soft_wrap=True)
    if not report.ok:
        raise MixdownError(f"{len(report.problems)} bad songs in {args.root}")
