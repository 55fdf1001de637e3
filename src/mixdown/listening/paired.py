"""Analysis and result files of the two-version test types: BS.1116, AB and ABX.

* **ABX** is scored: per condition (against the reference), per participant and per song,
  the number of right answers ``k`` of ``n`` and the exact one-sided binomial p-value
  ``P(K >= k)``, ``K ~ Binomial(n, 1/2)``: the chance of doing at least that well by
  guessing. A small p-value says the condition is audibly different from the reference.
* **AB** preferences: per pair of conditions, how often each was preferred, with the
  two-sided binomial (sign) test against no preference, Holm-corrected over the pairs,
  and per condition the fraction of its comparisons it won.
* **BS.1116** grades: per condition, the mean grade (1.0-5.0) and the mean difference
  grade (condition minus hidden reference, ITU-R BS.1116-3: 0 = no difference heard,
  -4 = very annoying) with its Student-t confidence interval clipped to the -4 to +4
  scale, and how often the hidden reference was graded below the condition (a positive
  difference grade: the assessor mistook the condition for the reference).

BS.1534-3's post-screening applies to MUSHRA only; these types keep every participant.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixdown.audio import atomic_write_text
from mixdown.errors import MixdownError
from mixdown.listening.manifest import Manifest
from mixdown.listening.statistics import Summary, binomial_p_value, holm, summarize
from mixdown.listening.store import (
    ChoiceRecord,
    GradeRecord,
    ParticipantRecord,
    ResponseStore,
    TrialRecord,
)

CONFIDENCE = 0.95
DIFFERENCE_SCALE = (-4.0, 4.0)
"""The BS.1116 difference-grade scale (grades 1.0-5.0), which its intervals are clipped to."""
ALPHA = 0.05


@dataclass(frozen=True)
class AbxScore:
    """ABX answers of one condition, overall or for one participant or song.

    Attributes:
        condition: The condition compared with the reference.
        scope: ``"all"``, ``"participant"`` or ``"song"``.
        key: The participant or song (``""`` for all).
        n: Trials.
        correct: Right answers.
        p_value: One-sided exact binomial ``P(K >= correct)`` under guessing.
    """

    condition: str
    scope: str
    key: str
    n: int
    correct: int
    p_value: float

    @property
    def proportion(self) -> float:
        return self.correct / self.n if self.n else math.nan


@dataclass(frozen=True)
class Preference:
    """AB preferences between two conditions (in manifest order).

    Attributes:
        condition_a: First condition.
        condition_b: Second condition.
        n: Trials comparing them.
        prefer_a: Trials where ``condition_a`` was preferred.
        p_value: Two-sided exact binomial test of ``prefer_a`` of ``n`` against 1/2.
        p_holm: Holm-adjusted over every pair.
    """

    condition_a: str
    condition_b: str
    n: int
    prefer_a: int
    p_value: float
    p_holm: float

    @property
    def prefer_b(self) -> int:
        return self.n - self.prefer_a


@dataclass(frozen=True)
class GradeSummary:
    """BS.1116 grades of one condition.

    Attributes:
        condition: The condition.
        grade: Summary of its grades (1.0-5.0).
        reference_grade: Summary of the hidden reference's grades in the same trials.
        difference: Summary of the difference grades, CI clipped to `DIFFERENCE_SCALE`.
        reference_below: Trials where the hidden reference was graded below the condition.
    """

    condition: str
    grade: Summary
    reference_grade: Summary
    difference: Summary
    reference_below: int


@dataclass(frozen=True)
class PairedAnalysis:
    """The results of a BS.1116, AB or ABX test.

    Attributes:
        test_type: ``"bs1116"``, ``"ab"`` or ``"abx"``.
        participants: Participants who answered something.
        abx: ABX scores (all, then per participant, then per song), else empty.
        preferences: AB pairs, else empty.
        wins: AB: ``{condition: (won, compared)}``, else empty.
        grades: BS.1116 summaries, else empty.
        confidence: Coverage of the BS.1116 intervals.
    """

    test_type: str
    participants: tuple[str, ...]
    abx: tuple[AbxScore, ...] = ()
    preferences: tuple[Preference, ...] = ()
    wins: dict[str, tuple[int, int]] | None = None
    grades: tuple[GradeSummary, ...] = ()
    confidence: float = CONFIDENCE

    def console_table(self) -> tuple[str, list[str], list[list[str]]]:
        """``(title, columns, rows)`` of the overall results, for the command line."""
        title = f"all songs, {len(self.participants)} participants"
        if self.test_type == "abx":
            return (f"ABX, {title}", ["condition", "n", "correct", "proportion", "p (binomial)"],
                    [[s.condition, str(s.n), str(s.correct), f"{s.proportion:.2f}", f"{s.p_value:.3g}"]
                     for s in self.abx if s.scope == "all"])
        if self.test_type == "ab":
            return (f"AB preferences, {title}", ["pair", "n", "prefer A", "prefer B", "p", "p (Holm)"],
                    [[f"{p.condition_a} vs {p.condition_b}", str(p.n), str(p.prefer_a), str(p.prefer_b),
                      f"{p.p_value:.3g}", f"{p.p_holm:.3g}"] for p in self.preferences])
        return (f"BS.1116, {title}", ["condition", "n", "mean grade", "mean difference",
                                      f"{self.confidence:.0%} CI"],
                [[g.condition, str(g.difference.n), _num(g.grade.mean, 2), _num(g.difference.mean, 2),
                  f"[{_num(g.difference.ci_low, 2)}, {_num(g.difference.ci_high, 2)}]"] for g in self.grades])


def abx_scores(records: Sequence[ChoiceRecord], reference: str, conditions: Sequence[str]) -> list[AbxScore]:
    """Score ABX answers per condition: overall, per participant and per song.

    Args:
        records: ABX trials.
        reference: The reference condition (one of A and B in every trial).
        conditions: Conditions in report order (the reference is skipped).
    """
    def tested(record: ChoiceRecord) -> str:
        return record.condition_b if record.condition_a == reference else record.condition_a

    scores = []
    for scope, key_of in (("all", lambda r: ""), ("participant", lambda r: r.participant_id),
                          ("song", lambda r: r.song)):
        for condition in conditions:
            mine = [r for r in records if tested(r) == condition]
            for key in dict.fromkeys(key_of(r) for r in mine):
                group = [r for r in mine if key_of(r) == key]
                correct = sum(bool(r.correct) for r in group)
                scores.append(AbxScore(condition, scope, key, len(group), correct,
                                       binomial_p_value(correct, len(group), "greater")))
    return scores


def preferences(records: Sequence[ChoiceRecord], conditions: Sequence[str]) -> list[Preference]:
    """AB preference counts per pair (in ``conditions`` order) with Holm-corrected sign tests."""
    raw = []
    for a, b in itertools.combinations(conditions, 2):
        pair = [r for r in records if {r.condition_a, r.condition_b} == {a, b}]
        if not pair:
            continue
        prefer_a = sum(r.chosen == a for r in pair)
        raw.append((a, b, len(pair), prefer_a, binomial_p_value(prefer_a, len(pair), "two-sided")))
    adjusted = holm([row[-1] for row in raw]) if raw else []
    return [Preference(*row, p_holm=float(p)) for row, p in zip(raw, adjusted)]


def grade_summaries(records: Sequence[GradeRecord], conditions: Sequence[str],
                    confidence: float = CONFIDENCE) -> list[GradeSummary]:
    """BS.1116 summaries per condition (those with grades, in ``conditions`` order)."""
    out = []
    for condition in conditions:
        mine = [r for r in records if r.condition == condition]
        if not mine:
            continue
        out.append(GradeSummary(
            condition,
            summarize(np.array([r.condition_grade for r in mine]), confidence, (1.0, 5.0)),
            summarize(np.array([r.reference_grade for r in mine]), confidence, (1.0, 5.0)),
            summarize(np.array([r.difference for r in mine]), confidence, DIFFERENCE_SCALE),
            sum(r.difference > 0 for r in mine)))
    return out


def analyse_paired(manifest: Manifest, store: ResponseStore) -> PairedAnalysis:
    """Analyse a BS.1116, AB or ABX test's answers.

    Raises:
        MixdownError: If nobody has answered yet.
    """
    if manifest.test_type == "bs1116":
        grades = store.grades()
        if not grades:
            raise MixdownError("no answers yet (participants submit them in `mixdown listen serve`)")
        return PairedAnalysis("bs1116", tuple(dict.fromkeys(r.participant_id for r in grades)),
                              grades=tuple(grade_summaries(grades, manifest.conditions)))
    choices = store.choices()
    if not choices:
        raise MixdownError("no answers yet (participants submit them in `mixdown listen serve`)")
    participants = tuple(dict.fromkeys(r.participant_id for r in choices))
    if manifest.test_type == "abx":
        others = [c for c in manifest.conditions if c != manifest.reference]
        return PairedAnalysis("abx", participants, abx=tuple(abx_scores(choices, manifest.reference, others)))
    wins = {c: (sum(r.chosen == c for r in choices), sum(c in (r.condition_a, r.condition_b) for r in choices))
            for c in manifest.conditions}
    return PairedAnalysis("ab", participants, preferences=tuple(preferences(choices, manifest.conditions)),
                          wins=wins)


def write_paired_files(folder: Path, analysis: PairedAnalysis, manifest: Manifest, store: ResponseStore) -> None:
    """Write a BS.1116, AB or ABX test's result files into ``folder``.

    Files: ``answers.csv`` (one row per trial), ``summary.csv``, ``participants.csv``,
    ``comments.csv`` and ``report.md``.
    """
    participants, trials = store.participants(), store.trials()
    if analysis.test_type == "bs1116":
        atomic_write_text(folder / "answers.csv", _csv(
            ["participant_id", "trial_index", "song", "condition", "condition_slot", "reference_grade",
             "condition_grade", "difference_grade"],
            [[r.participant_id, r.trial_index, r.song, r.condition, "AB"[r.condition_slot], f"{r.reference_grade:g}",
              f"{r.condition_grade:g}", f"{r.difference:g}"] for r in store.grades()]))
        atomic_write_text(folder / "summary.csv", _csv(
            ["condition", "n", "mean_grade", "mean_reference_grade", "mean_difference", "ci_low", "ci_high",
             "reference_below_condition"],
            [[g.condition, g.difference.n, f"{g.grade.mean:.6g}", f"{g.reference_grade.mean:.6g}",
              f"{g.difference.mean:.6g}", f"{g.difference.ci_low:.6g}", f"{g.difference.ci_high:.6g}",
              g.reference_below] for g in analysis.grades]))
    else:
        atomic_write_text(folder / "answers.csv", _csv(
            ["participant_id", "trial_index", "song", "a", "b", "answer", "x", "correct"],
            [[r.participant_id, r.trial_index, r.song, r.condition_a, r.condition_b, "AB"[r.choice],
              "" if r.x_slot is None else "AB"[r.x_slot], "" if r.correct is None else int(r.correct)]
             for r in store.choices()]))
        if analysis.test_type == "abx":
            atomic_write_text(folder / "summary.csv", _csv(
                ["scope", "key", "condition", "n", "correct", "proportion", "p_value"],
                [[s.scope, s.key, s.condition, s.n, s.correct, f"{s.proportion:.6g}", f"{s.p_value:.6g}"]
                 for s in analysis.abx]))
        else:
            atomic_write_text(folder / "summary.csv", _csv(
                ["condition_a", "condition_b", "n", "prefer_a", "prefer_b", "p_value", "p_holm"],
                [[p.condition_a, p.condition_b, p.n, p.prefer_a, p.prefer_b, f"{p.p_value:.6g}", f"{p.p_holm:.6g}"]
                 for p in analysis.preferences]))
    counts = {}
    for t in trials:
        counts[t.participant_id] = counts.get(t.participant_id, 0) + 1
    atomic_write_text(folder / "participants.csv", _csv(
        ["participant_id", "started_at", "finished_at", "trials", "comment"],
        [[p.participant_id, p.started_at, p.finished_at or "", counts.get(p.participant_id, 0), p.comment]
         for p in participants]))
    atomic_write_text(folder / "comments.csv", _csv(
        ["participant_id", "trial_index", "song", "comment"],
        [[t.participant_id, t.trial_index, t.song, t.comment] for t in trials if t.comment.strip()]))
    atomic_write_text(folder / "report.md", render_paired_report(analysis, manifest, participants, trials))


def render_paired_report(analysis: PairedAnalysis, manifest: Manifest, participants: Sequence[ParticipantRecord],
                         trials: Sequence[TrialRecord]) -> str:
    """The markdown report of a BS.1116, AB or ABX test."""
    kind = {"bs1116": "ITU-R BS.1116-3 double-blind triple stimulus with hidden reference",
            "ab": "AB paired comparison (preference)", "abx": "ABX"}[analysis.test_type]
    conditions = ", ".join(f"`{c}`" for c in manifest.conditions)
    finished = sum(p.finished_at is not None for p in participants)
    lines = [f"# Listening test results: {manifest.name}", "",
             (f"{kind} test: {len(manifest.songs)} songs, conditions {conditions} (reference "
              f"`{manifest.reference}`), each item presented {manifest.repeats} time(s) per participant; excerpts "
              f"of {manifest.songs[0].duration_s:g} s loudness-matched to {manifest.target_lufs:g} LUFS "
              f"(BS.1770-4), randomisation seed {manifest.seed}."), "",
             "## Participants", "",
             (f"{len(participants)} registered, {len(analysis.participants)} answered at least one trial, "
              f"{finished} finished. BS.1534-3's post-screening applies to MUSHRA tests only; every participant "
              "is kept."), ""]
    if analysis.test_type == "abx":
        lines += ["## ABX scores", "",
                  ("Right answers out of trials, with the exact one-sided binomial p-value P(K >= correct) for "
                   f"K ~ Binomial(n, 1/2): the chance of scoring that well by guessing. * marks p < {ALPHA:g} "
                   "(an audible difference from the reference)."), ""]
        for scope, heading in (("all", "All participants and songs"), ("participant", "Per participant"),
                               ("song", "Per song")):
            rows = [s for s in analysis.abx if s.scope == scope]
            lines += [f"### {heading}", ""]
            lines += _table(([] if scope == "all" else [scope]) + ["condition", "n", "correct", "proportion", "p", ""],
                            [([] if scope == "all" else [_cell(s.key)])
                             + [f"`{s.condition}`", str(s.n), str(s.correct), f"{s.proportion:.2f}",
                                f"{s.p_value:.3g}", "*" if s.p_value < ALPHA else ""] for s in rows])
    elif analysis.test_type == "ab":
        lines += ["## Preferences", "",
                  ("Per pair, how often each version was preferred; two-sided exact binomial (sign) test against "
                   f"no preference, Holm-corrected over {len(analysis.preferences)} pairs; * marks "
                   f"p_Holm < {ALPHA:g}."), ""]
        lines += _table(["A", "B", "n", "prefer A", "prefer B", "p", "p (Holm)", ""],
                        [[f"`{p.condition_a}`", f"`{p.condition_b}`", str(p.n), str(p.prefer_a), str(p.prefer_b),
                          f"{p.p_value:.3g}", f"{p.p_holm:.3g}", "*" if p.p_holm < ALPHA else ""]
                         for p in analysis.preferences])
        lines += ["Comparisons won per condition:", ""]
        lines += _table(["condition", "won", "compared", "fraction"],
                        [[f"`{c}`", str(won), str(total), f"{won / total:.2f}" if total else "-"]
                         for c, (won, total) in (analysis.wins or {}).items()])
    else:
        level = f"{analysis.confidence:.0%}"
        lines += ["## Grades", "",
                  ("Grades on the five-grade impairment scale (5 imperceptible ... 1 very annoying); the difference "
                   "grade is the condition's grade minus the hidden reference's in the same trial (0: no difference "
                   f"heard). Mean difference with its {level} confidence interval (Student t, clipped to the -4 to "
                   "+4 scale); 'reference below' counts trials where the hidden reference was graded below the "
                   "condition."), ""]
        lines += _table(["condition", "n", "mean grade", "mean reference grade", "mean difference", f"{level} CI",
                         "reference below"],
                        [[f"`{g.condition}`", str(g.difference.n), _num(g.grade.mean, 2),
                          _num(g.reference_grade.mean, 2), _num(g.difference.mean, 2),
                          f"[{_num(g.difference.ci_low, 2)}, {_num(g.difference.ci_high, 2)}]", str(g.reference_below)]
                         for g in analysis.grades])
    comments = [(t.participant_id, f"song `{t.song}`", t.comment) for t in trials if t.comment.strip()]
    comments += [(p.participant_id, "closing", p.comment) for p in participants if p.comment.strip()]
    if comments:
        lines += ["## Comments", ""]
        lines += _table(["participant", "where", "comment"], [[_cell(a), b, _cell(c)] for a, b, c in comments])
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _num(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _cell(text: str) -> str:
    """Free text made safe for one markdown table cell."""
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def _csv(header: list[str], rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
