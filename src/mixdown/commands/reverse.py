"""``mixdown reverse``: console settings that reproduce a given mix of the stems.

    mixdown reverse STEMS/ reference_mix.wav -o params.json [--render mix.wav]

Beside the settings it writes ``params.report.json`` (`ReverseReport.to_dict`: losses,
time, the start kept, and per channel the settings the mix cannot determine), and prints
those settings.

The reference is resampled to the stems' rate when it differs, and padded or trimmed
(with a warning) when its length is off by at most
`mixdown.mixers.reverse.MAX_LENGTH_MISMATCH_S`; a mono, silent or much longer or
shorter reference is refused. See `mixdown.mixers.reverse` for the method.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MAX_STEPS = 1_000_000
MAX_SECONDS = 7 * 24 * 3600.0


def register(subparsers: argparse._SubParsersAction) -> None:
    from mixdown.cli import SEED, add_command, add_stem_options, float_in, int_in

    parser = add_command(subparsers, "reverse",
                         "estimate the console settings of a mix from its stems (reverse engineering)")
    parser.set_defaults(handler=_cmd_reverse)
    add_stem_options(parser)
    parser.add_argument("reference", type=Path, help="the stereo mix made from the stems (.wav/.flac/.aif/.aiff)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="settings file to write (.json)")
    parser.add_argument("--render", type=Path, help="also write the estimate's re-rendered mix here")
    # defaults None: ReverseConfig's (not imported here, so that --help loads no torch)
    parser.add_argument("--steps", type=int_in(0, MAX_STEPS),
                        help="most refinement iterations (default 12; 0: keep the start: least squares, reverb "
                             "and compressor fits)")
    parser.add_argument("--seconds", type=float_in(0.0, MAX_SECONDS, "s", above=True),
                        help="time budget of the fit in seconds; the refinement stops there (default: none)")
    parser.add_argument("--excerpt-seconds", type=float_in(0.0, 3600.0, "s", above=True),
                        help="compared length of each excerpt of the refinement (default 1)")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the compared samples (default 0)")


def _cmd_reverse(args: argparse.Namespace) -> None:
    from mixdown.cli import (
        check_output,
        err,
        load_stems,
        stage_progress,
        stem_inputs,
        write_outputs,
    )

    inputs = [*stem_inputs(args), args.reference]
    check_output(args.output, inputs, suffixes=(".json",), label="settings file")
    if args.render is not None:
        check_output(args.render, [*inputs, args.output])
    from mixdown.api import mix, propose
    from mixdown.audio import atomic_write_text
    from mixdown.mixers.reverse import ReverseConfig, ReverseMethod, load_reference
    chosen = {"steps": args.steps, "time_budget_s": args.seconds, "excerpt_s": args.excerpt_seconds, "seed": args.seed}
    method = ReverseMethod(ReverseConfig(**{key: value for key, value in chosen.items() if value is not None}))
    multitrack = load_stems(args)
    target = load_reference(args.reference, multitrack)
    with stage_progress() as update:
        if args.render is None:
            output = propose(multitrack, method, target=target, progress=update)
            params, info = output.params, output.info
            atomic_write_text(args.output, params.to_json())
        else:
            result = mix(multitrack, method, target=target, progress=update)
            params, info = result.params, result.info
            write_outputs(result.mix, multitrack.sample_rate, args.render, params, args.output)
    report = info["report"]
    sidecar = args.output.with_suffix(".report.json")
    atomic_write_text(sidecar, json.dumps(report.to_dict(), indent=2) + "\n")
    wrote = ", ".join(str(path) for path in (args.output, sidecar, args.render) if path is not None)
    err.print(f"wrote {wrote} ({multitrack.num_tracks} stems; loss {report.initial_loss:.3f} at the start "
              f"({report.start}), {report.final_loss:.3f} after {report.steps} refinement steps, "
              f"{report.seconds:.0f} s)", markup=False, soft_wrap=True)
    if report.unidentifiable:
        err.print("settings the mix does not determine (trust their sum with the others, not their value; "
                  "in brackets, the values it does not tell apart):", markup=False, soft_wrap=True)
        for name, paths in report.unidentifiable.items():
            ranges = report.ranges.get(name, {})
            shown = (f"{path} [{ranges[path][0]:.3g}, {ranges[path][1]:.3g}]" if path in ranges else path
                     for path in paths)
            err.print(f"  {name}: {', '.join(shown)}", markup=False, soft_wrap=True)
