"""``mixdown reverse``: console settings that reproduce a given mix of the stems.

    mixdown reverse STEMS/ reference_mix.wav -o params.json [--render mix.wav]

The reference is resampled to the stems' rate when it differs, and padded or trimmed
(with a warning) when its length is off by at most
`mixdown.mixers.reverse.MAX_LENGTH_MISMATCH_S`; a mono, silent or much longer or
shorter reference is refused. See `mixdown.mixers.reverse` for the method.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mixdown.errors import MixdownError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reverse", help="estimate the console settings of a mix from its stems (reverse engineering)")
    parser.set_defaults(handler=_cmd_reverse)
    from mixdown.cli import add_stem_options

    add_stem_options(parser)
    parser.add_argument("reference", type=Path, help="the stereo mix made from the stems (.wav/.flac/.aif/.aiff)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="settings file to write (.json)")
    parser.add_argument("--render", type=Path, help="also write the estimate's re-rendered mix here")
    parser.add_argument("--steps", type=int, default=300, help="most descent steps (default 300; 0: least squares only)")
    parser.add_argument("--seconds", type=float, help="time budget of the descent in seconds (default: none)")
    parser.add_argument("--excerpt-seconds", type=float, default=3.0,
                        help="length of the excerpt compared at each step (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the excerpt choice (default 0)")


def _cmd_reverse(args: argparse.Namespace) -> None:
    from mixdown.api import mix, propose
    from mixdown.audio import atomic_write_text
    from mixdown.cli import check_output, err, load_stems, stage_progress, write_outputs
    from mixdown.mixers.reverse import ReverseConfig, ReverseMethod, load_reference

    if args.output.suffix.lower() != ".json":
        raise MixdownError(f"{args.output}: the settings file must end in .json")
    if not args.output.parent.is_dir():
        raise MixdownError(f"{args.output.parent}: output folder does not exist")
    if args.render is not None:
        check_output(args.render)
    method = ReverseMethod(ReverseConfig(steps=args.steps, time_budget_s=args.seconds,
                                         excerpt_s=args.excerpt_seconds, seed=args.seed))
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
    wrote = f"{args.output}" + (f" and {args.render}" if args.render is not None else "")
    err.print(f"wrote {wrote} ({multitrack.num_tracks} stems; loss {report.initial_loss:.3f} after least squares, "
              f"{report.final_loss:.3f} after {report.steps} steps, {report.seconds:.0f} s)",
              markup=False, soft_wrap=True)
