"""``mixdown evaluate``: run mixing methods over a dataset and write tables, plots and audio (`mixdown.evaluate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from mixdown.errors import MixdownError

_out = Console(highlight=False)

SPLIT_CHOICES = ("all", "train", "val", "test")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate DATASET --methods A,B --out DIR [options]``."""
    evaluate = subparsers.add_parser(
        "evaluate", help="evaluate mixing methods on a dataset: metrics.csv, summary.md, report.html, plots",
        description="Mix every song of DATASET (folder layout: song/stems/*.wav, song/mix.wav, optional "
                    "song/params.json) with every method and compare with the song's mix. Rows already in "
                    "OUT/metrics.csv are kept, so an interrupted run resumes. 'reverse' fits the console to the "
                    "target mix (oracle-informed); songs with params.json also get the 'oracle' row (their true "
                    "settings rendered).")
    evaluate.set_defaults(handler=_cmd_evaluate)
    evaluate.add_argument("dataset", type=Path, help="dataset folder (folder layout)")
    evaluate.add_argument("--methods", required=True,
                          help="comma-separated methods, e.g. mono,random,rules (see the error for the list)")
    evaluate.add_argument("--out", type=Path, required=True, help="output folder (created; reruns resume)")
    evaluate.add_argument("--split", choices=SPLIT_CHOICES, default="all",
                          help="songs to use: all (default) or a split of the training recipes (10%% val, "
                               "10%% test, seed 0)")
    evaluate.add_argument("--songs", type=int, help="only the first N songs (by name)")
    evaluate.add_argument("--seconds", type=float, help="evaluate the central excerpt of this many seconds")
    evaluate.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    evaluate.add_argument("--folds", type=int,
                          help="song-level K-fold cross-validation (e.g. 5 on real LMMS songs): methods that learn "
                               "from real songs (producer) are trained on the other folds; writes metrics.csv, "
                               "folds.json and summary.md with pooled and per-fold medians of the loudness-matched "
                               "stereo MR-STFT")
    evaluate.add_argument("--fold-seed", type=int, default=0, help="seed of the fold assignment (default 0)")
    evaluate.add_argument("--song", help="song of the spectrum/panning figures and listening files (default: first)")
    evaluate.add_argument("--reverse-steps", type=int, help="most descent steps of 'reverse' (default 300)")
    evaluate.add_argument("--reverse-budget", type=float, metavar="SECONDS",
                          help="time limit of 'reverse' per song (default: none)")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    import dataclasses

    from mixdown.cli import err, progress
    from mixdown.evaluate import EvalConfig, run_evaluation
    from mixdown.evaluation.summary import summary_tables, tables_markdown
    from mixdown.mixers.reverse import ReverseConfig

    methods = tuple(name.strip() for name in args.methods.split(",") if name.strip())
    if args.folds is not None:
        from mixdown.evaluation.crossval import CVConfig, run_crossval

        if args.split != "all" or args.songs is not None:
            raise MixdownError("--folds uses every song of the dataset; leave out --split and --songs")
        cv = CVConfig(dataset=str(args.dataset), out=str(args.out), methods=methods, folds=args.folds,
                      seed=args.fold_seed, seconds=args.seconds)
        with progress("cross-validating", 1) as update:
            def tick(done: int, total: int) -> None:
                update(done, total)
                if not err.is_terminal and total and (done % 10 == 0 or done == total):
                    err.print(f"{done}/{total} song x method tasks", markup=False, highlight=False)

            result = run_crossval(cv, tick)
        _out.print(result["summary"], markup=False, soft_wrap=True)
        err.print(f"wrote {args.out}/metrics.csv, folds.json and summary.md", markup=False, highlight=False)
        return
    overrides = {"steps": args.reverse_steps, "time_budget_s": args.reverse_budget}
    reverse = dataclasses.replace(ReverseConfig(), **{k: v for k, v in overrides.items() if v is not None})
    config = EvalConfig(dataset=str(args.dataset), out=str(args.out), methods=methods,
                        split=None if args.split == "all" else args.split, songs=args.songs, seconds=args.seconds,
                        workers=args.workers, figure_song=args.song, reverse=reverse)

    with progress("evaluating", 1) as update:
        def report(done: int, total: int) -> None:
            update(done, total)
            if not err.is_terminal and total and (done % 10 == 0 or done == total):  # logs of background runs
                err.print(f"{done}/{total} song x method tasks", markup=False, highlight=False)

        result = run_evaluation(config, report)
    tables = summary_tables(result.summaries, result.methods)
    _out.print(tables_markdown(tables[:1]), markup=False, soft_wrap=True)
    err.print(f"{len(result.songs)} songs x {len(result.methods)} methods ({result.computed} rows computed, "
              f"{result.reused} reused); wrote {result.out}/metrics.csv, summary.md, report.html, plots/ and "
              f"listen/{result.figure_song}/", markup=False, highlight=False, soft_wrap=True)
