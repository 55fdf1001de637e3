"""``mixdown evaluate``: run mixing methods over a dataset and write tables, plots and audio (`mixdown.evaluate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from mixdown.errors import MixdownError
from mixdown.limits import MAX_WORKERS

_out = Console(highlight=False)

SPLIT_CHOICES = ("all", "train", "val", "test")
MAX_SONGS = 10_000_000


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate DATASET --methods A,B --out DIR [options]``."""
    from mixdown.cli import SEED, add_command, float_in, int_in, method_list

    evaluate = add_command(
        subparsers, "evaluate", "evaluate mixing methods on a dataset: metrics.csv, summary.md, report.html, plots",
        description="Mix every song of DATASET (folder layout: song/stems/*.wav, song/mix.wav, optional "
                    "song/params.json) with every method and compare with the song's mix. Rows already in "
                    "OUT/metrics.csv are kept, so an interrupted run resumes. 'reverse' fits the console to the "
                    "target mix (oracle-informed); songs with params.json also get the 'oracle' row (their true "
                    "settings rendered). OUT is created if missing; a non-empty folder evaluate did not write is "
                    "refused unless --force.",
        epilog="methods (--methods, comma-separated):\n" + method_list()
               + "\n  (oracle, the true settings rendered, is added by itself to songs with params.json)")
    evaluate.set_defaults(handler=_cmd_evaluate)
    evaluate.add_argument("dataset", type=Path, help="dataset folder (folder layout)")
    evaluate.add_argument("--methods", required=True,
                          help="comma-separated methods, e.g. mono,random,rules (listed below)")
    evaluate.add_argument("--out", type=Path, required=True, help="output folder (created; reruns resume)")
    evaluate.add_argument("--split", choices=SPLIT_CHOICES, default="all",
                          help="songs to use: all (default) or a split of the training recipes (10%% val, "
                               "10%% test, seed 0)")
    evaluate.add_argument("--songs", type=int_in(1, MAX_SONGS), help="only the first N songs (by name)")
    evaluate.add_argument("--seconds", type=float_in(0.0, 36000.0, "s", above=True),
                          help="evaluate the central excerpt of this many seconds")
    evaluate.add_argument("--workers", type=int_in(1, MAX_WORKERS), default=1, help="parallel processes (default 1)")
    evaluate.add_argument("--folds", type=int_in(2, 1000),
                          help="song-level K-fold cross-validation (e.g. 5 on real LMMS songs): methods that learn "
                               "from real songs (producer) are trained on the other folds; writes metrics.csv, "
                               "folds.json and summary.md with pooled and per-fold medians of the loudness-matched "
                               "stereo MR-STFT")
    evaluate.add_argument("--fold-seed", type=SEED, default=0, help="seed of the fold assignment (default 0)")
    evaluate.add_argument("--song", help="song of the spectrum/panning figures and listening files (default: first)")
    evaluate.add_argument("--reverse-steps", type=int_in(0, 1_000_000), help="most descent steps of 'reverse' (default 300)")
    evaluate.add_argument("--reverse-budget", type=float_in(0.0, 7 * 24 * 3600.0, "s", above=True), metavar="SECONDS",
                          help="time limit of 'reverse' per song (default: none)")
    evaluate.add_argument("--reference-segment", action="store_true",
                          help="pair every song with the first half of its own mix as the reference (methods that "
                               "take one, e.g. style, mix like it) and score every method on the second half")
    evaluate.add_argument("--force", action="store_true",
                          help="write into a non-empty folder evaluate did not write (its other files are kept); "
                               "in a folder it wrote, first remove what it wrote there before (no resuming)")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    import dataclasses

    from mixdown.outputs import OutputFolder

    folder = OutputFolder(args.out, "evaluate", force=args.force, inputs=[args.dataset],
                          markers=("metrics.csv",) if args.folds is not None else ("evaluation.json",))
    folder.check()
    from mixdown.cli import err, progress
    from mixdown.evaluate import EvalConfig, run_evaluation
    from mixdown.evaluation.summary import summary_tables, tables_markdown
    from mixdown.mixers.reverse import ReverseConfig

    methods = tuple(name.strip() for name in args.methods.split(",") if name.strip())
    if args.folds is not None:
        from mixdown.evaluation.crossval import CVConfig, run_crossval

        if args.reference_segment:
            raise MixdownError("--reference-segment is not available with --folds; evaluate the songs without folds")
        if args.split != "all" or args.songs is not None:
            raise MixdownError("--folds uses every song of the dataset; leave out --split and --songs")
        cv = CVConfig(dataset=str(args.dataset), out=str(args.out), methods=methods, folds=args.folds,
                      seed=args.fold_seed, seconds=args.seconds)
        with folder, progress("cross-validating (song x method tasks)", 1) as update:
            result = run_crossval(cv, update)
        _out.print(result["summary"], markup=False, soft_wrap=True)
        err.print(f"wrote {args.out}/metrics.csv, folds.json and summary.md", markup=False, highlight=False)
        return
    overrides = {"steps": args.reverse_steps, "time_budget_s": args.reverse_budget}
    reverse = dataclasses.replace(ReverseConfig(), **{k: v for k, v in overrides.items() if v is not None})
    config = EvalConfig(dataset=str(args.dataset), out=str(args.out), methods=methods,
                        split=None if args.split == "all" else args.split, songs=args.songs, seconds=args.seconds,
                        workers=args.workers, figure_song=args.song, reverse=reverse,
                        reference_segment=args.reference_segment)

    with folder, progress("evaluating (song x method tasks)", 1) as update:
        result = run_evaluation(config, update)
    tables = summary_tables(result.summaries, result.methods)
    _out.print(tables_markdown(tables[:1]), markup=False, soft_wrap=True)
    err.print(f"{len(result.songs)} songs x {len(result.methods)} methods ({result.computed} rows computed, "
              f"{result.reused} reused); wrote {result.out}/metrics.csv, summary.md, report.html, plots/ and "
              f"listen/{result.figure_song}/", markup=False, highlight=False, soft_wrap=True)
