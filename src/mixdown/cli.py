"""The ``mixdown`` command line.

Every subcommand calls the library; this module only parses arguments, shows progress
and turns `MixdownError` into a one-line message with exit code 2. Outputs are written
atomically, and a command that fails leaves no output file behind.

The core commands (mix, render, info, demo) live here. Each feature adds its own
commands from a module of `mixdown.commands` listed in `COMMAND_MODULES`: the module
defines ``register(subparsers)``, which adds its parsers and sets ``handler`` on each
with ``parser.set_defaults(handler=...)``; handlers take the parsed namespace and may
use the shared helpers below (`add_stem_options`, `load_stems`, `progress`,
`check_output`, `write_outputs`, `err`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mixdown import __version__
from mixdown.audio import atomic_write_text, write_audio
from mixdown.errors import MixdownError, ParamsError
from mixdown.multitrack import Multitrack, info_table, load_class_map, load_multitrack
from mixdown.params import ConsoleParams

EXIT_ERROR = 2
DEMO_SAMPLE_RATE = 44100

COMMAND_MODULES: tuple[str, ...] = ("mixdown.commands.listen", "mixdown.commands.serve", "mixdown.commands.export",
                                     "mixdown.commands.data", "mixdown.commands.train", "mixdown.commands.reverse",
                                     "mixdown.commands.evaluate")
"""Modules of `mixdown.commands` that add subcommands (see the module docstring)."""

err = Console(stderr=True, highlight=False)
"""Where messages and progress go (stderr)."""
_out = Console(highlight=False)


def add_stem_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stems", type=Path, help="folder of stems (.wav/.flac/.aif/.aiff)")
    parser.add_argument("--class-map", type=Path, help="YAML/JSON file mapping stem names or globs to classes")
    parser.add_argument("--sample-rate", type=int, help="resample every stem to this rate (default: most common)")
    parser.add_argument("--max-stems", type=int, default=32, help="refuse folders with more stems (default 32)")


def _build_parser() -> argparse.ArgumentParser:
    from mixdown.mixers import METHODS

    parser = argparse.ArgumentParser(prog="mixdown", description="Automatic multitrack mixing with editable settings.")
    parser.add_argument("--version", action="version", version=f"mixdown {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    mix = sub.add_parser("mix", help="mix a folder of stems; writes the mix and its console settings")
    mix.set_defaults(handler=_cmd_mix)
    add_stem_options(mix)
    mix.add_argument("-o", "--output", type=Path, required=True, help="mix file to write (.wav/.flac)")
    audio_only = [name for name, info in METHODS.items() if not info.capabilities.gives_params]
    mix.add_argument("--method", default="rules", choices=list(METHODS),
                     help=f"mixing method (default rules); {', '.join(audio_only)} make audio only, no settings file")
    mix.add_argument("--seed", type=int, help="seed for stochastic methods (random)")
    mix.add_argument("--target", type=Path, help="the mix to reproduce, for methods that need one (reverse)")
    mix.add_argument("--params", type=Path, help="where to write the settings (default OUTPUT.params.json)")

    render = sub.add_parser("render", help="render stems with a (possibly edited) params JSON")
    render.set_defaults(handler=_cmd_render)
    add_stem_options(render)
    render.add_argument("params", type=Path, help="console settings JSON")
    render.add_argument("-o", "--output", type=Path, required=True, help="mix file to write (.wav/.flac)")

    info = sub.add_parser("info", help="show the stems found in a folder")
    info.set_defaults(handler=_cmd_info)
    add_stem_options(info)

    demo = sub.add_parser("demo", help="write the bundled demo stems and their mixes to a folder")
    demo.set_defaults(handler=_cmd_demo)
    demo.add_argument("-o", "--output", type=Path, required=True, help="folder to write")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def _params_path(output: Path, given: Path | None) -> Path:
    return given if given is not None else output.with_name(output.stem + ".params.json")


def check_output(path: Path) -> None:
    """Refuse an output path with a non-audio suffix or a missing folder, before any work."""
    if path.suffix.lower() not in (".wav", ".flac", ".aif", ".aiff"):
        raise MixdownError(f"{path}: the output must end in .wav, .flac, .aif or .aiff")
    if not path.parent.is_dir():
        raise MixdownError(f"{path.parent}: output folder does not exist")


def load_stems(args: argparse.Namespace) -> Multitrack:
    """The multitrack named by the options of `add_stem_options`."""
    class_map = load_class_map(args.class_map) if args.class_map else None
    if args.max_stems < 1:
        raise MixdownError(f"--max-stems must be at least 1, got {args.max_stems}")
    return load_multitrack(args.stems, sample_rate=args.sample_rate, class_map=class_map, max_stems=args.max_stems)


@contextmanager
def progress(label: str, total: float) -> Iterator[Callable[[float, float], None]]:
    """A transient progress bar on stderr (shown on terminals only).

    Yields a callback ``update(done, total)`` matching the library's ``progress`` arguments.
    """
    with Progress(TextColumn(label), BarColumn(), TimeRemainingColumn(), console=err, transient=True,
                  disable=not err.is_terminal) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def stage_progress() -> Iterator[Callable[[str, float, float], None]]:
    """Progress bars on stderr for `mixdown.api`'s ``progress(stage, done, total)``: one bar per stage."""
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), console=err,
                  transient=True, disable=not err.is_terminal) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: float, total: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def write_outputs(mix: np.ndarray, sample_rate: int, output: Path, params: ConsoleParams | None = None,
                  params_path: Path | None = None) -> None:
    """Write the mix and, optionally, its settings; on failure neither is left behind."""
    write_audio(output, mix, sample_rate)
    if params is None or params_path is None:
        return
    try:
        atomic_write_text(params_path, params.to_json())
    except OSError as exc:
        output.unlink(missing_ok=True)
        raise MixdownError(f"{params_path}: cannot write ({exc})") from None


def _cmd_mix(args: argparse.Namespace) -> None:
    from mixdown.api import mix
    from mixdown.mixers import method_info

    gives_params = method_info(args.method).capabilities.gives_params
    check_output(args.output)
    params_path = None
    if gives_params:
        params_path = _params_path(args.output, args.params)
        if not params_path.parent.is_dir():
            raise MixdownError(f"{params_path.parent}: folder for the settings does not exist")
    elif args.params is not None:
        raise MixdownError(f"--params: {args.method} makes a mix but no console settings to write")
    multitrack = load_stems(args)
    target = None
    if args.target is not None:
        from mixdown.mixers.reverse import load_reference

        target = load_reference(args.target, multitrack)
    with stage_progress() as update:
        result = mix(multitrack, args.method, target=target, progress=update, seed=args.seed)
    write_outputs(result.mix, multitrack.sample_rate, args.output, result.params, params_path)
    what = f"{args.method}, {multitrack.num_tracks} stems, {multitrack.duration_s:.1f} s"
    if params_path is not None:
        err.print(f"wrote {args.output} and {params_path} ({what})")
    else:
        err.print(f"wrote {args.output} ({what}); no settings file: {args.method} makes audio only, "
                  "with nothing to edit or re-render")


def _cmd_render(args: argparse.Namespace) -> None:
    from mixdown.console import render

    check_output(args.output)
    params = ConsoleParams.load(args.params)
    multitrack = load_stems(args)
    try:
        with progress("rendering", multitrack.num_frames) as update:
            mix = render(multitrack, params, progress=update)
    except ParamsError as exc:  # settings that do not fit these stems
        raise ParamsError(f"{args.params}: {exc}") from None
    write_outputs(mix, multitrack.sample_rate, args.output)
    err.print(f"wrote {args.output}")


def _cmd_info(args: argparse.Namespace) -> None:
    multitrack = load_stems(args)
    table = Table(title=f"{args.stems}: {multitrack.num_tracks} stems, {multitrack.sample_rate} Hz, "
                        f"{multitrack.duration_s:.2f} s")
    for column in ("stem", "class", "channels", "duration (s)", "peak (dBFS)", "loudness (LUFS)"):
        table.add_column(column, justify="left" if column in ("stem", "class") else "right")
    for row in info_table(multitrack):
        table.add_row(row["name"], row["instrument"], str(row["channels"]), f"{row['duration_s']:.2f}",
                      f"{row['peak_dbfs']:.1f}", f"{row['loudness_lufs']:.1f}")
    _out.print(table)


def _cmd_demo(args: argparse.Namespace) -> None:
    from mixdown.api import mix
    from mixdown.synth.demo import demo_multitrack_arrays

    stems_dir = args.output / "stems"
    try:
        stems_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MixdownError(f"{stems_dir}: cannot create the folder ({exc.strerror})") from None
    arrays = demo_multitrack_arrays(DEMO_SAMPLE_RATE)
    for name, audio in arrays.items():
        write_audio(stems_dir / f"{name}.wav", audio, DEMO_SAMPLE_RATE)
    multitrack = Multitrack.from_arrays(arrays, DEMO_SAMPLE_RATE)
    for method in ("mono", "rules"):
        result = mix(multitrack, method)
        output = args.output / f"mix_{method}.wav"
        write_outputs(result.mix, DEMO_SAMPLE_RATE, output, result.params, _params_path(output, None))
    err.print(f"wrote {len(arrays)} demo stems to {stems_dir} and mixes mix_mono.wav, mix_rules.wav to {args.output}")


def _say(line: str) -> None:
    """Print ``line`` to stderr verbatim: one line, never wrapped to the terminal width."""
    err.print(line, markup=False, emoji=False, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 on success, 2 on a user error)."""
    args = _build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = lambda message, *_args, **_kw: _say(f"warning: {message}")
        try:
            args.handler(args)
        except MixdownError as exc:
            _say(f"error: {exc}")
            return EXIT_ERROR
        except KeyboardInterrupt:
            err.print("interrupted")
            return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
