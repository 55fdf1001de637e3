"""``mixdown export``: a mix's settings as a REAPER project or a mix sheet."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mixdown.errors import MixdownError

SHEET_SUFFIXES = (".csv", ".txt")

PLATFORMS = ("linux", "macos", "windows")
"""The keys of `mixdown.export.reaper.PLUGIN_SUFFIXES`, here so that ``--help`` loads nothing heavy (a test checks)."""


def default_platform() -> str:
    """As `mixdown.export.reaper.default_platform`, without importing it."""
    return "windows" if sys.platform.startswith(("win", "cygwin")) else "macos" if sys.platform == "darwin" else "linux"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export reaper`` and ``export sheet``."""
    from mixdown.cli import add_command, add_stem_options

    export = add_command(subparsers, "export", "export settings: a REAPER project or a mix sheet")
    sub = export.add_subparsers(dest="export_command", required=True, metavar="FORMAT")

    reaper = add_command(
        sub, "reaper", "write a REAPER project (.RPP): a track per stem with fader, pan, ReaEQ, ReaComp",
        description="Write a REAPER project with one track per stem (a media item pointing at the stem file), "
                    "faders, pans and mutes set, EQ on ReaEQ and compressor on ReaComp, reverb sends to a "
                    "'Reverb' bus whose ReaVerb loads the console's impulse response (a WAV written next to the "
                    "project), ReaLimit in true-peak mode on the master at the ceiling, and the master at the "
                    "loudness gain of the mix. What REAPER does not reproduce exactly is printed and listed in the "
                    "project notes; see mixdown.export.reaper.")
    reaper.set_defaults(handler=_cmd_reaper)
    add_stem_options(reaper)
    reaper.add_argument("params", type=Path, help="console settings JSON")
    reaper.add_argument("-o", "--output", type=Path, required=True, help="project file to write (.RPP)")
    reaper.add_argument("--platform", choices=PLATFORMS, default=default_platform(),
                        help="whose plug-in file names to write (default: this system's)")

    sheet = add_command(sub, "sheet", "write every setting as a CSV table (.csv) or a text sheet (.txt)")
    sheet.set_defaults(handler=_cmd_sheet)
    sheet.add_argument("params", type=Path, help="console settings JSON")
    sheet.add_argument("-o", "--output", type=Path, required=True, help="sheet to write (.csv or .txt)")




def _cmd_reaper(args: argparse.Namespace) -> None:
    from mixdown.cli import check_output, err, load_stems, progress, stem_inputs
    from mixdown.export.reaper import master_gain_db, media_paths_for, reaper_project
    from mixdown.params import ConsoleParams

    check_output(args.output, [*stem_inputs(args), args.params], suffixes=(".rpp",))
    params = ConsoleParams.load(args.params)
    multitrack = load_stems(args)
    try:
        params.check_matches(multitrack.names)
        if params.sample_rate != multitrack.sample_rate:
            raise MixdownError(f"sample_rate: the settings are for {params.sample_rate} Hz but the stems are "
                               f"{multitrack.sample_rate} Hz")
    except MixdownError as exc:
        raise MixdownError(f"{args.params}: {exc}") from None
    with progress("measuring the mix's loudness", multitrack.num_frames) as update:
        gain_db = master_gain_db(multitrack, params, progress=update)
    project = reaper_project(multitrack, params, media_paths_for(multitrack, args.output.parent), gain_db,
                             platform=args.platform)
    written = project.write(args.output)  # the project, and the reverb's impulse response next to it
    err.print(f"wrote {', '.join(map(str, written))}: {multitrack.num_tracks} tracks, master {gain_db:+.2f} dB",
              markup=False)
    for note in project.notes:
        err.print(f"note: {note}", markup=False)
    for line in project.inexact:
        err.print(f"no exact REAPER equivalent: {line}", markup=False)


def _cmd_sheet(args: argparse.Namespace) -> None:
    from mixdown.audio import atomic_write_text
    from mixdown.cli import check_output, err
    from mixdown.export.mixsheet import mixsheet_csv, mixsheet_text
    from mixdown.params import ConsoleParams

    check_output(args.output, [args.params], suffixes=SHEET_SUFFIXES)
    params = ConsoleParams.load(args.params)
    text = mixsheet_csv(params) if args.output.suffix.lower() == ".csv" else mixsheet_text(params)
    atomic_write_text(args.output, text)
    err.print(f"wrote {args.output} ({len(params.channels)} channels)", markup=False)
