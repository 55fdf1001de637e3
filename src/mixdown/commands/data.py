"""``mixdown data``: build synthetic datasets (``synth``), real ones from LMMS projects (``lmms``), check any (``check``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console

from mixdown.errors import MixdownError
from mixdown.limits import MAX_WORKERS

_out = Console(highlight=False)

SYNTH_DEFAULTS = {"seed": 0, "sample_rate": 44100, "duration_s": 30.0, "min_stems": 4}
"""`mixdown.synth.synthetic.SynthConfig`'s defaults, for ``--help`` without importing it (a test checks they agree)."""

LMMS_DEFAULTS = {"seconds": 30.0, "sample_rate": 44100}
"""`mixdown.data.lmms.BuildConfig`'s defaults, for ``--help`` (a test checks they agree)."""

MAX_SONGS = 10_000_000
LAYOUT_NAMES = ("folder", "enst", "medleydb", "musdb")
"""The keys of `mixdown.data.folder.LAYOUTS` (a test checks)."""


def _default_workers() -> int:
    return min(os.cpu_count() or 1, 8)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data synth``, ``data lmms`` and ``data check``."""
    from mixdown.cli import (
        INTEGER,
        NUMBER,
        SAMPLE_RATE,
        SEED,
        add_command,
        float_in,
        int_in,
    )

    data = add_command(subparsers, "data", "datasets: build synthetic ones or real ones from LMMS projects, check any")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    workers = int_in(1, MAX_WORKERS)

    synth = add_command(
        sub, "synth", "generate synthetic songs (stems, target mix, true console settings); resumable",
        description="Generate songs 0..SONGS-1 into OUT (song_NNNNN/stems/*.wav, mix.wav, params.json). "
                    "Songs already in OUT are kept, so an interrupted build resumes where it stopped. OUT is "
                    "created if missing; a non-empty folder that data synth did not write is refused unless --force.")
    synth.set_defaults(handler=_cmd_synth)
    synth.add_argument("--songs", type=int_in(0, MAX_SONGS), required=True,
                       help="number of songs the dataset should hold")
    synth.add_argument("--out", type=Path, required=True, help="dataset folder (created if needed; reruns resume)")
    synth.add_argument("--seed", type=SEED, help=f"dataset seed (default {SYNTH_DEFAULTS['seed']})")
    synth.add_argument("--duration", type=NUMBER,
                       help=f"seconds per song (default {SYNTH_DEFAULTS['duration_s']:g})")
    synth.add_argument("--sample-rate", type=SAMPLE_RATE, help=f"in Hz (default {SYNTH_DEFAULTS['sample_rate']})")
    synth.add_argument("--min-stems", type=INTEGER,
                       help=f"fewest stems per song (default {SYNTH_DEFAULTS['min_stems']})")
    synth.add_argument("--max-stems", type=INTEGER,
                       help="most stems per song (default and at most: every stem the synthesizer has)")
    synth.add_argument("--workers", type=workers, default=_default_workers(),
                       help="parallel processes (default: the CPU count, at most 8)")
    synth.add_argument("--drumkit", type=Path,
                       help="play the drums with a Hydrogen drumkit (folder, drumkit.xml or .h2drumkit) or a "
                            "folder of kits, e.g. /usr/share/hydrogen/data/drumkits")
    synth.add_argument("--soundfont", type=Path,
                       help="play bass, keys, guitar and lead with a General MIDI SoundFont through fluidsynth, "
                            "e.g. /usr/share/sounds/sf2/FluidR3_GM.sf2")
    synth.add_argument("--force", action="store_true",
                       help="write into a non-empty folder data synth did not write (its other files are kept); "
                            "in a folder it wrote, first remove the songs it wrote there before")

    lmms = add_command(
        sub, "lmms", "real producer mixes from LMMS projects: dry stems, the mix, stated gains/pans; resumable",
        description="Render each LMMS project (default: every song Debian's lmms-common ships) into OUT/<song>/: "
                    "stems/NN_<track>.wav (each track solo and dry), mix.wav (the producer's mix), params.json "
                    "(the gains and pans the project states) and lmms.json (what the console does not represent: "
                    "automation, mixer effects, ...). Projects that cannot be used are skipped with the reason, "
                    "printed and in OUT/manifest.json. Songs already in OUT are kept.")
    lmms.set_defaults(handler=_cmd_lmms)
    lmms.add_argument("projects", nargs="*", type=Path, help=".mmp/.mmpz files (default: the shipped demos)")
    lmms.add_argument("--out", type=Path, required=True, help="dataset folder (created if needed; reruns resume)")
    lmms.add_argument("--seconds", type=float_in(0.0, 36000.0, "s"), default=LMMS_DEFAULTS["seconds"],
                      help=f"excerpt length: whole bars where the mix is loudest (default "
                           f"{LMMS_DEFAULTS['seconds']:g}; 0 for whole songs)")
    lmms.add_argument("--sample-rate", type=SAMPLE_RATE, default=LMMS_DEFAULTS["sample_rate"],
                      help=f"in Hz (default {LMMS_DEFAULTS['sample_rate']})")
    lmms.add_argument("--workers", type=workers, default=_default_workers(),
                      help="LMMS renders at once (default: the CPU count, at most 8)")
    lmms.add_argument("--force", action="store_true",
                      help="write into a non-empty folder data lmms did not write (its other files are kept); "
                           "in a folder it wrote, first remove the songs it wrote there before")

    check = add_command(sub, "check", "check every song of a dataset as the loaders do; lists the bad ones",
                        description="Check every song of a dataset the way loading it does: every file opens and "
                                    "is not truncated, samples are finite, stem names are unique ignoring case, "
                                    "one rate (within what mixdown mixes at) and one length per song, "
                                    "params.json parses and names the stems. A dataset check passes is one "
                                    "evaluate and training take.")
    check.set_defaults(handler=_cmd_check)
    check.add_argument("root", type=Path, help="dataset folder")
    check.add_argument("--layout", default="folder", help="folder (default), enst, medleydb or musdb")
    check.add_argument("--skip-bad", action="store_true",
                       help="go on past bad songs and list them all (exit code 2 if any) "
                            "instead of stopping at the first")


def _cmd_synth(args: argparse.Namespace) -> None:
    from mixdown.outputs import OutputFolder

    inputs = [p for p in (args.drumkit, args.soundfont) if p is not None]
    folder = OutputFolder(args.out, "data synth", force=args.force, inputs=inputs, markers=("synth.yaml",))
    folder.check()
    from mixdown.cli import err, progress
    from mixdown.synth.synthetic import SynthConfig, build_dataset

    given = {"seed": args.seed, "sample_rate": args.sample_rate, "duration_s": args.duration,
             "min_stems": args.min_stems, "max_stems": args.max_stems}
    config = SynthConfig(**{key: value for key, value in given.items() if value is not None},
                         drumkit=None if args.drumkit is None else str(args.drumkit),
                         soundfont=None if args.soundfont is None else str(args.soundfont))
    with folder, progress(f"synthesizing {args.songs} songs", args.songs) as update:
        made = build_dataset(args.out, args.songs, config, workers=args.workers, progress=update)
    err.print(f"wrote {len(made)} songs to {args.out} ({args.songs - len(made)} were there already)", markup=False)


def _cmd_lmms(args: argparse.Namespace) -> None:
    from mixdown.outputs import OutputFolder

    folder = OutputFolder(args.out, "data lmms", force=args.force, inputs=args.projects, markers=("manifest.json",))
    folder.check()
    from mixdown.cli import err
    from mixdown.data.lmms import MANIFEST_FILE, BuildConfig, build_dataset

    config = BuildConfig(seconds=args.seconds or None, sample_rate=args.sample_rate)

    def news(line: str) -> None:
        err.print(line, markup=False, highlight=False, soft_wrap=True)

    with folder:
        reports = build_dataset(args.projects or None, args.out, config, workers=args.workers, progress=news)
    built = [r for r in reports if r.status == "built"]
    skipped = [r for r in reports if r.status == "skipped"]
    err.print(f"{len(built)} of {len(reports)} projects are songs in {args.out} ({len(skipped)} skipped; "
              f"see {args.out / MANIFEST_FILE})", markup=False, highlight=False)
    for report in skipped:
        err.print(f"  skipped {report.song}: {report.reason}", markup=False, highlight=False, soft_wrap=True)


def _cmd_check(args: argparse.Namespace) -> None:
    from mixdown.data.folder import check_dataset

    report = check_dataset(args.root, layout=args.layout, skip_bad=args.skip_bad, decode=True)
    _out.print(report.summary(), markup=False, soft_wrap=True)
    if not report.ok:
        raise MixdownError(f"{len(report.problems)} bad songs in {args.root}")
