"""``mixdown listen results``: a test folder's answers -> CSV files, box plots, report.

The results folder holds::

    ratings.csv        one row per rating (participant, trial, song, condition, role, slot, rating, kept)
    participants.csv   one row per participant (screening, start/finish, closing comment)
    summary.csv        mean, median and confidence interval per condition, overall and per song
    pairwise.csv       Wilcoxon signed-rank tests with Holm-adjusted p-values
    comments.csv       free-text comments per trial
    boxplot_overall.png, boxplot_song_SONG.png
    report.md

BS.1116, AB and ABX tests get their own files instead (`mixdown.listening.paired`:
``answers.csv``, ``summary.csv``, ``participants.csv``, ``comments.csv``, ``report.md``).

Each file is written atomically. The folder follows `mixdown.outputs`: it is created if
missing (its parent must exist); a rerun replaces the files it wrote before (and removes
those it no longer writes, e.g. the box plot of a song without ratings); other files
in it are never touched, and a non-empty folder it did not write is refused unless
``force``.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from mixdown.audio import atomic_write_text
from mixdown.errors import MixdownError
from mixdown.listening.analysis import Analysis, analyse
from mixdown.listening.manifest import RESPONSES_NAME, Manifest
from mixdown.listening.paired import PairedAnalysis, analyse_paired, write_paired_files
from mixdown.listening.plots import plot_ratings
from mixdown.listening.report import render_report
from mixdown.listening.statistics import Summary
from mixdown.listening.store import ResponseStore
from mixdown.listening.table import RatingsTable
from mixdown.outputs import OutputFolder

REPORT_NAME = "report.md"


def write_results(test_dir: str | os.PathLike, output_dir: str | os.PathLike,
                  force: bool = False) -> Analysis | PairedAnalysis:
    """Analyse a test's answers and write the results folder.

    Args:
        test_dir: The test folder (with its ``responses.sqlite``).
        output_dir: Results folder to write (see the module docstring).
        force: Write into a non-empty folder that holds no earlier results.

    Returns:
        The analysis (`mixdown.listening.paired.PairedAnalysis` for BS.1116, AB and ABX tests).

    Raises:
        MixdownError: If the test folder is not a test, there are no ratings yet, or the
            output folder is refused (`mixdown.outputs.OutputFolder`).
    """
    test_dir, output_dir = Path(test_dir), Path(output_dir)
    folder = OutputFolder(output_dir, "listen results", force=force, replace=True,
                          inputs=[test_dir / "test.json", test_dir / RESPONSES_NAME],
                          expected=("ratings.csv", "summary.csv", REPORT_NAME), markers=("ratings.csv", REPORT_NAME))
    folder.check()
    manifest = Manifest.load(test_dir)
    store = ResponseStore(test_dir / RESPONSES_NAME, create=False)
    if manifest.test_type != "mushra":
        try:
            paired = analyse_paired(manifest, store)
        except MixdownError as exc:
            raise MixdownError(f"{test_dir}: {exc}") from None
        with folder:
            write_paired_files(output_dir, paired, manifest, store)
        return paired
    ratings = store.ratings()
    if not ratings:
        raise MixdownError(f"{test_dir}: no ratings yet (participants submit them in `mixdown listen serve`)")
    unknown = sorted({r.condition for r in ratings} - set(manifest.conditions))
    if unknown:
        raise MixdownError(f"{test_dir / RESPONSES_NAME}: ratings of condition {unknown[0]!r}, "
                           f"which {test_dir / 'test.json'} does not have")
    table = RatingsTable.from_records(((r.participant_id, r.song, r.condition, r.rating) for r in ratings),
                                      manifest.conditions)
    songs = tuple(song.name for song in manifest.songs if song.name in table.songs)
    analysis = analyse(table, manifest.roles, songs, mid_anchor=manifest.mid_anchor)
    participants, trials = store.participants(), store.trials()
    excluded = set(analysis.excluded)
    screening = {r.participant_id: r for r in analysis.screening}
    with folder:
        atomic_write_text(output_dir / "ratings.csv", _csv(
            ["participant_id", "trial_index", "song", "condition", "role", "slot", "rating", "kept"],
            [[r.participant_id, r.trial_index, r.song, r.condition, manifest.roles[r.condition], r.slot,
              f"{r.rating:g}", int(r.participant_id not in excluded)] for r in ratings]))
        atomic_write_text(output_dir / "participants.csv", _csv(
            ["participant_id", "started_at", "finished_at", "trials", "reference_below_90", "mid_anchor_above_90",
             "kept", "comment"],
            [[p.participant_id, p.started_at, p.finished_at or "",
              screening[p.participant_id].trials if p.participant_id in screening else 0,
              screening[p.participant_id].reference_below if p.participant_id in screening else 0,
              screening[p.participant_id].mid_anchor_above if p.participant_id in screening else 0,
              int(p.participant_id in screening and p.participant_id not in excluded), p.comment]
             for p in participants]))
        rows = [["all", "", name, manifest.roles[name], *_summary_cells(s)] for name, s in analysis.overall.items()]
        rows += [["song", song, name, manifest.roles[name], *_summary_cells(s)]
                 for song, summaries in analysis.per_song.items() for name, s in summaries.items()]
        atomic_write_text(output_dir / "summary.csv", _csv(
            ["scope", "song", "condition", "role", "n", "mean", "median", "ci_low", "ci_high"], rows))
        atomic_write_text(output_dir / "pairwise.csv", _csv(
            ["condition_a", "condition_b", "n", "median_difference", "statistic", "p_value", "p_holm"],
            [[t.condition_a, t.condition_b, t.n, f"{t.median_difference:g}", f"{t.statistic:g}",
              f"{t.p_value:.6g}", f"{t.p_holm:.6g}"] for t in analysis.pairwise]))
        atomic_write_text(output_dir / "comments.csv", _csv(
            ["participant_id", "trial_index", "song", "comment"],
            [[t.participant_id, t.trial_index, t.song, t.comment] for t in trials if t.comment.strip()]))
        plots = {}
        if analysis.table.trials:
            plots["overall"] = "boxplot_overall.png"
            plot_ratings(analysis.table, analysis.overall, manifest.roles, f"{manifest.name}: all songs",
                         output_dir / plots["overall"])
            for song, summaries in analysis.per_song.items():
                if not analysis.table.select(song=song).trials:
                    continue
                plots[song] = f"boxplot_song_{song}.png"
                plot_ratings(analysis.table.select(song=song), summaries, manifest.roles,
                             f"{manifest.name}: {song}", output_dir / plots[song])
        atomic_write_text(output_dir / REPORT_NAME, render_report(analysis, manifest, participants, trials, plots))
    return analysis


def _summary_cells(summary: Summary) -> list[str]:
    return [str(summary.n)] + [f"{value:.6g}" for value in
                               (summary.mean, summary.median, summary.ci_low, summary.ci_high)]


def _csv(header: list[str], rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
