"""The ``mixdown`` command line.

Every subcommand calls the library; this module only parses arguments, shows progress
and turns `MixdownError` into a one-line message with exit code 2. Outputs follow one
policy (`mixdown.outputs`): they never overwrite an input, their folder must exist,
commands that write into a folder touch only their own files, files are written
atomically, and a command that fails (or is stopped with Ctrl-C or SIGTERM) leaves no
output file behind.

The core commands (mix, render, info, demo) live here. Each feature adds its own
commands from a module of `mixdown.commands` listed in `COMMAND_MODULES`: the module
defines ``register(subparsers)``, which adds its parsers (with `add_command`) and sets
``handler`` on each with ``parser.set_defaults(handler=...)``; handlers take the parsed
namespace and may use the shared helpers below (`add_stem_options`, `load_stems`,
`progress`, `check_output`, `write_outputs`, `err`, the argument types `int_in` and
`float_in`).

Startup is kept light: this module and every ``register`` import nothing heavy (no
torch, numpy or audio libraries), so ``mixdown --help`` and argument errors answer at
once; handlers import what they need.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from mixdown import __version__
from mixdown.errors import MixdownError, ParamsError
from mixdown.limits import (
    DEFAULT_MAX_STEMS,
    MAX_SAMPLE_RATE_HZ,
    MAX_SEED,
    MAX_STEMS,
    MIN_SAMPLE_RATE_HZ,
)

if TYPE_CHECKING:
    import numpy as np

    from mixdown.multitrack import Multitrack
    from mixdown.params import ConsoleParams

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
DEMO_SAMPLE_RATE = 44100
AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff")

COMMAND_MODULES: tuple[str, ...] = ("mixdown.commands.listen", "mixdown.commands.serve", "mixdown.commands.export",
                                     "mixdown.commands.data", "mixdown.commands.train", "mixdown.commands.reverse",
                                     "mixdown.commands.evaluate")
"""Modules of `mixdown.commands` that add subcommands (see the module docstring)."""

PROGRESS_STEP = 0.1
"""Without a terminal, progress is a line per tenth of the work..."""

PROGRESS_INTERVAL_S = 10.0
"""...or, for slow work, at least one line this often (when something advanced)."""

err = Console(stderr=True, highlight=False)
"""Where messages and progress go (stderr)."""
_out = Console(highlight=False)


# --------------------------------------------------------------------------- parsing


class ArgumentError(MixdownError):
    """A command line argparse refuses (unknown option, missing or out-of-range value)."""


class Parser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are one `error:` line (exit code 2), not a usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ArgumentError(f"{self.prog}: {message} (see {self.prog} --help)")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def int_in(minimum: int, maximum: int, unit: str = "") -> Callable[[str], int]:
    """An argparse ``type`` taking integers in ``[minimum, maximum]`` (``1e5`` is read as 100000)."""
    suffix = f" {unit}" if unit else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            number = _number(text)
            if not math.isfinite(number) or not number.is_integer():
                raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
            value = int(number)
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is outside {minimum}..{maximum}{suffix}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(minimum: float, maximum: float, unit: str = "", above: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` taking finite numbers in ``[minimum, maximum]`` (``(minimum, maximum]`` if ``above``)."""
    suffix = f" {unit}" if unit else ""

    def parse(text: str) -> float:
        value = _number(text)
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value < minimum or value > maximum or (above and value == minimum):
            interval = f"({minimum:g}, {maximum:g}]" if above else f"[{minimum:g}, {maximum:g}]"
            raise argparse.ArgumentTypeError(f"{value:g} is outside {interval}{suffix}")
        return value

    parse.__name__ = "number"
    return parse


SAMPLE_RATE = int_in(MIN_SAMPLE_RATE_HZ, MAX_SAMPLE_RATE_HZ, "Hz")
"""Argument type of every ``--sample-rate``."""

SEED = int_in(0, MAX_SEED)
"""Argument type of every seed."""

INTEGER = int_in(-(2**63), 2**63 - 1)
"""Argument type of integers whose range the library checks (naming its own field)."""

NUMBER = float_in(-sys.float_info.max, sys.float_info.max)
"""Argument type of finite numbers whose range the library checks (naming its own field)."""


def add_command(subparsers: argparse._SubParsersAction, name: str, summary: str, description: str | None = None,
                epilog: str | None = None) -> argparse.ArgumentParser:
    """Add a subcommand whose one-line ``summary`` shows in the parent's ``--help`` and heads its own."""
    return subparsers.add_parser(name, help=summary, description=description or _sentence(summary), epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter if epilog else
                                 argparse.HelpFormatter)


def _sentence(summary: str) -> str:
    return summary[:1].upper() + summary[1:] + ("" if summary.endswith(".") else ".")


def add_stem_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stems", type=Path, help="folder of stems (.wav/.flac/.aif/.aiff)")
    parser.add_argument("--class-map", type=Path, help="YAML/JSON file mapping stem names or globs to classes")
    parser.add_argument("--sample-rate", type=SAMPLE_RATE,
                        help=f"resample every stem to this rate, {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz "
                             "(default: most common)")
    parser.add_argument("--max-stems", type=int_in(1, MAX_STEMS), default=DEFAULT_MAX_STEMS,
                        help=f"refuse folders with more stems (default {DEFAULT_MAX_STEMS}, at most {MAX_STEMS})")
    parser.add_argument("--allow-truncated", action="store_true",
                        help="use truncated audio files (fewer frames than their header says) as the frames they "
                             "hold, with a warning, instead of refusing them")


def method_list(names: Sequence[str] | None = None) -> str:
    """``name  summary`` lines of `mixdown.mixers.METHODS` (all, or ``names``), for help texts."""
    from mixdown.mixers import METHODS

    names = list(METHODS) if names is None else names
    width = max(len(name) for name in names)
    return "\n".join(f"  {name:<{width}}  {METHODS[name].summary}" for name in names)


_PARSER: tuple[Any, argparse.ArgumentParser] | None = None


def _parser() -> argparse.ArgumentParser:
    """`_build_parser`, built once per set of registered methods (a parser parses any number of command lines)."""
    global _PARSER
    from mixdown.mixers import METHODS

    key = (tuple(METHODS.items()), COMMAND_MODULES)
    if _PARSER is None or _PARSER[0] != key:
        _PARSER = (key, _build_parser())
    return _PARSER[1]


def _build_parser() -> argparse.ArgumentParser:
    import importlib

    from mixdown.mixers import METHODS

    parser = Parser(prog="mixdown", description="Automatic multitrack mixing with editable settings.")
    parser.add_argument("--version", action="version", version=f"mixdown {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    mix = add_command(sub, "mix", "mix a folder of stems; writes the mix and its console settings",
                      epilog="methods (--method):\n" + method_list())
    mix.set_defaults(handler=_cmd_mix)
    add_stem_options(mix)
    mix.add_argument("-o", "--output", type=Path, required=True, help="mix file to write (.wav/.flac)")
    audio_only = [name for name, info in METHODS.items() if not info.capabilities.gives_params]
    mix.add_argument("--method", choices=list(METHODS),
                     help=f"mixing method (default producer: gains and pans learned from real producers' mixes, the "
                          f"best of the methods on real LMMS mixes so far, docs/results/real; style with "
                          f"--reference); {', '.join(audio_only)} make audio only, no settings file")
    mix.add_argument("--seed", type=SEED, help="seed for stochastic methods (random)")
    mix.add_argument("--target", type=Path, help="the mix to reproduce, for methods that need one (reverse)")
    mix.add_argument("--reference", type=Path,
                     help="a finished stereo song (any rate, at least 3 s) to mix like, for methods that take one "
                          "(style); analysed, never mixed in")
    mix.add_argument("--reference-mode", choices=("learned", "optimised"),
                     help="with --reference: learned (the reference-conditioned estimator) or optimised (then a "
                          "style descent through the console; the default)")
    mix.add_argument("--reference-model", choices=("estimator", "dmc"),
                     help="with --reference: the parameter predictor the reference conditions (estimator, the "
                          "default; or dmc)")
    mix.add_argument("--params", type=Path, help="where to write the settings (default OUTPUT.params.json)")

    render = add_command(sub, "render", "render stems with a (possibly edited) settings file")
    render.set_defaults(handler=_cmd_render)
    add_stem_options(render)
    render.add_argument("params", type=Path, help="console settings JSON")
    render.add_argument("-o", "--output", type=Path, required=True, help="mix file to write (.wav/.flac)")

    info = add_command(sub, "info", "show the stems of a folder: classes, lengths, peaks, loudness")
    info.set_defaults(handler=_cmd_info)
    add_stem_options(info)

    demo = add_command(sub, "demo", "write the bundled demo stems and their mixes to a folder",
                       description="Write the bundled demo stems (stems/*.wav) and their mono and rules mixes with "
                                   "settings into OUTPUT, created if missing. A folder demo did not write is refused "
                                   "unless --force; rerunning replaces only demo's own files.")
    demo.set_defaults(handler=_cmd_demo)
    demo.add_argument("-o", "--output", type=Path, required=True, help="folder to write")
    demo.add_argument("--force", action="store_true",
                      help="write into a non-empty folder demo did not write (its other files are kept)")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


# --------------------------------------------------------------------------- outputs and inputs


def _params_path(output: Path, given: Path | None) -> Path:
    return given if given is not None else output.with_name(output.stem + ".params.json")


def check_output(path: Path, inputs: Sequence[Path | None] = (), suffixes: tuple[str, ...] = AUDIO_SUFFIXES,
                 label: str = "output") -> None:
    """Refuse, before any work, an output with another suffix, in a missing or unwritable folder, or that is an input.

    See `mixdown.outputs` for the policy.
    """
    from mixdown.outputs import check_output_file

    check_output_file(path, inputs, suffixes, label)


def stem_inputs(args: argparse.Namespace) -> list[Path]:
    """The files a command with `add_stem_options` reads: the stem files and the class map."""
    from mixdown.multitrack import stem_files

    try:
        files = stem_files(args.stems)
    except MixdownError:
        files = []  # loading the stems names the problem
    return [*files, *([args.class_map] if args.class_map is not None else [])]


def load_stems(args: argparse.Namespace) -> Multitrack:
    """The multitrack named by the options of `add_stem_options`."""
    from mixdown.multitrack import load_class_map, load_multitrack

    class_map = load_class_map(args.class_map) if args.class_map else None
    return load_multitrack(args.stems, sample_rate=args.sample_rate, class_map=class_map, max_stems=args.max_stems,
                           allow_truncated=getattr(args, "allow_truncated", False))


def write_outputs(mix: np.ndarray, sample_rate: int, output: Path, params: ConsoleParams | None = None,
                  params_path: Path | None = None) -> None:
    """Write the mix and, optionally, its settings; on failure neither is left behind."""
    from mixdown.audio import atomic_write_text, write_audio

    write_audio(output, mix, sample_rate)
    if params is None or params_path is None:
        return
    try:
        atomic_write_text(params_path, params.to_json())
    except (OSError, MixdownError) as exc:
        output.unlink(missing_ok=True)
        if isinstance(exc, MixdownError):
            raise
        raise MixdownError(f"{params_path}: cannot write ({exc})") from None


# --------------------------------------------------------------------------- progress


class _LineProgress:
    """Progress as plain lines on stderr, for logs: one per `PROGRESS_STEP` of the work, or one per
    `PROGRESS_INTERVAL_S` when the work advances more slowly."""

    def __init__(self, label: str):
        self.label = label
        self.shown = 0.0
        self.last = time.monotonic()

    def update(self, done: float, total: float) -> None:
        if not total or total <= 0:
            return
        fraction = min(max(done / total, 0.0), 1.0)
        now = time.monotonic()
        crossed = math.floor(fraction / PROGRESS_STEP + 1e-9) > math.floor(self.shown / PROGRESS_STEP + 1e-9)
        if crossed or (fraction > self.shown and now - self.last >= PROGRESS_INTERVAL_S):
            self.shown, self.last = fraction, now
            _say(f"{self.label}: {fraction:.0%}")


@contextmanager
def progress(label: str, total: float) -> Iterator[Callable[[float, float], None]]:
    """Progress on stderr: a transient bar on a terminal, plain lines otherwise (logs of background runs).

    Yields a callback ``update(done, total)`` matching the library's ``progress`` arguments.
    """
    if not err.is_terminal:
        yield _LineProgress(label).update
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def stage_progress() -> Iterator[Callable[[str, float, float], None]]:
    """Progress on stderr for `mixdown.api`'s ``progress(stage, done, total)``: one bar (or line series) per stage."""
    if not err.is_terminal:
        lines: dict[str, _LineProgress] = {}

        def log(stage: str, done: float, total: float) -> None:
            lines.setdefault(stage, _LineProgress(stage)).update(done, total)

        yield log
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), console=err,
                  transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: float, total: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


# --------------------------------------------------------------------------- core commands


def _cmd_mix(args: argparse.Namespace) -> None:
    from mixdown.mixers import method_info

    if args.method is None:
        args.method = "style" if args.reference is not None else "producer"
    for option, value in (("--reference-mode", args.reference_mode), ("--reference-model", args.reference_model)):
        if value is not None and args.reference is None:
            raise MixdownError(f"{option}: give the song to mix like with --reference")
    if args.reference is not None and not method_info(args.method).capabilities.takes_reference:
        from mixdown.mixers import METHODS

        able = [name for name, info in METHODS.items() if info.capabilities.takes_reference]
        raise MixdownError(f"--reference: method {args.method!r} cannot mix like a reference; "
                           f"methods that can: {', '.join(able)}")
    gives_params = method_info(args.method).capabilities.gives_params
    inputs = [*stem_inputs(args), args.target, args.reference]
    check_output(args.output, inputs)
    params_path = None
    if gives_params:
        params_path = _params_path(args.output, args.params)
        check_output(params_path, [*inputs, args.output], suffixes=(".json",), label="settings file")
    elif args.params is not None:
        raise MixdownError(f"--params: {args.method} makes a mix but no console settings to write")
    from mixdown.api import mix

    multitrack = load_stems(args)
    target = None
    if args.target is not None:
        from mixdown.mixers.reverse import load_reference

        target = load_reference(args.target, multitrack)
    reference = None
    if args.reference is not None:
        from mixdown.style.reference import load_style_reference

        reference = load_style_reference(args.reference, multitrack.sample_rate)
    options = {key: value for key, value in (("mode", args.reference_mode), ("model", args.reference_model))
               if value is not None}
    with stage_progress() as update:
        result = mix(multitrack, args.method, target=target, reference=reference, progress=update, seed=args.seed,
                     **options)
    write_outputs(result.mix, multitrack.sample_rate, args.output, result.params, params_path)
    what = f"{args.method}, {multitrack.num_tracks} stems, {multitrack.duration_s:.1f} s"
    if params_path is not None:
        _say(f"wrote {args.output} and {params_path} ({what})")
    else:
        _say(f"wrote {args.output} ({what}); no settings file: {args.method} makes audio only, "
             "with nothing to edit or re-render")


def _cmd_render(args: argparse.Namespace) -> None:
    check_output(args.output, [*stem_inputs(args), args.params])
    from mixdown.console import render
    from mixdown.params import ConsoleParams

    params = ConsoleParams.load(args.params)
    multitrack = load_stems(args)
    try:
        with progress("rendering", multitrack.num_frames) as update:
            mix = render(multitrack, params, progress=update)
    except ParamsError as exc:  # settings that do not fit these stems
        raise ParamsError(f"{args.params}: {exc}") from None
    write_outputs(mix, multitrack.sample_rate, args.output)
    _say(f"wrote {args.output}")


def _cmd_info(args: argparse.Namespace) -> None:
    from rich.table import Table

    from mixdown.multitrack import info_table

    multitrack = load_stems(args)
    table = Table(title=f"{args.stems}: {multitrack.num_tracks} stems, {multitrack.sample_rate} Hz, "
                        f"{multitrack.duration_s:.2f} s")
    for column in ("stem", "class", "channels", "duration (s)", "peak (dBFS)", "loudness (LUFS)"):
        table.add_column(column, justify="left" if column in ("stem", "class") else "right")
    for row in info_table(multitrack):
        table.add_row(row["name"], row["instrument"], str(row["channels"]), f"{row['duration_s']:.2f}",
                      f"{row['peak_dbfs']:.1f}", f"{row['loudness_lufs']:.1f}")
    _out.print(table)


DEMO_FILES = ("mix_mono.wav", "mix_mono.params.json", "mix_rules.wav", "mix_rules.params.json")


def _cmd_demo(args: argparse.Namespace) -> None:
    from mixdown.outputs import OutputFolder

    folder = OutputFolder(args.output, "demo", force=args.force, expected=DEMO_FILES, replace=True,
                          markers=("mix_mono.wav", "mix_rules.wav"))
    folder.check()
    from mixdown.api import mix
    from mixdown.audio import write_audio
    from mixdown.multitrack import Multitrack
    from mixdown.synth.demo import demo_multitrack_arrays

    with folder:
        stems_dir = args.output / "stems"
        try:
            stems_dir.mkdir(exist_ok=True)
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
    _say(f"wrote {len(arrays)} demo stems to {stems_dir} and mixes mix_mono.wav, mix_rules.wav to {args.output}")


# --------------------------------------------------------------------------- main


def _say(line: str) -> None:
    """Print ``line`` to stderr verbatim: one line, never wrapped to the terminal width."""
    err.print(line, markup=False, emoji=False, highlight=False, soft_wrap=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that every cleanup (atomic writes) runs."""


_MAIN_PID = os.getpid()


def _on_sigterm(signum: int, frame: Any) -> None:
    if os.getpid() != _MAIN_PID:  # a forked worker: die as it would have without this handler
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 on success, 2 on a user error, 130/143 when interrupted/terminated)."""
    global _MAIN_PID
    try:
        args = _parser().parse_args(argv)
    except ArgumentError as exc:
        _say(f"error: {exc}")
        return EXIT_ERROR
    previous = None
    if threading.current_thread() is threading.main_thread():
        _MAIN_PID = os.getpid()
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = lambda message, *_args, **_kw: _say(f"warning: {message}")
            try:
                args.handler(args)
            except MixdownError as exc:
                _say(f"error: {exc}")
                return EXIT_ERROR
            except Terminated:
                _say("terminated")
                return EXIT_TERMINATED
            except KeyboardInterrupt:
                _say("interrupted")
                return EXIT_INTERRUPTED
            except OSError as exc:  # a full disk, a folder made read-only meanwhile, ...
                where = f"{exc.filename}: " if exc.filename else ""
                _say(f"error: {where}{exc.strerror or exc}")
                return EXIT_ERROR
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
