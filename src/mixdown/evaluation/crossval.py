"""Song-level K-fold cross-validation of mixing methods on a real dataset (e.g. LMMS songs).

`run_crossval` splits the songs of a folder-layout dataset into ``folds`` groups by song
(a seeded permutation of the sorted names, so no song is in two folds). For each fold it
evaluates every method on the songs of that fold:

* methods that learn from real songs (`REAL_TRAINABLE`: ``producer``) are trained on the
  songs of the *other* folds only, with the method's recipe settings, then evaluated;
* every other method (``mono``, ``random``, ``rules``, and the shipped learned methods
  as they are) needs no training and is evaluated on each song once;
* the ``oracle`` row, for songs with ``params.json``, renders the stated settings (for
  LMMS songs: the producer's gains and pans on the dry stems).

Rows go to ``metrics.csv`` (`mixdown.evaluation.results`, resumable), the song -> fold
map to ``folds.json``, and ``summary.md`` has, for the loudness-matched stereo MR-STFT
(`mixdown.metrics.matched_stereo_mrstft`), the median over all songs (pooled), the
median per fold, the gain and pan errors against the stated settings, and each method's
improvement over the best of ``mono``, ``random`` and ``rules``
(``1 - median(method) / min(median(baseline))``, pooled).
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mixdown.audio import atomic_write_text
from mixdown.errors import MixdownError
from mixdown.evaluation.results import ResultsTable, Row
from mixdown.evaluation.summary import ORACLE, format_value, quantile

METRIC = "stereo_mrstft_matched"
BASELINES = ("mono", "random", "rules")
REAL_TRAINABLE: dict[str, str] = {"producer": "mixdown.mixers.producer:fit_songs"}
"""Methods trained per fold on the training folds' songs: ``name -> "module:function(dataset, songs, seed)"``."""

ProgressCallback = Callable[[int, int], None]


def assign_folds(names: Sequence[str], folds: int, seed: int = 0) -> dict[str, int]:
    """Song -> fold (0-based): the sorted names permuted by ``default_rng(seed)``, dealt round-robin.

    Raises:
        MixdownError: With fewer songs than folds or fewer than 2 folds.
    """
    if folds < 2:
        raise MixdownError(f"cross-validation needs at least 2 folds, got {folds}")
    ordered = sorted(names)
    if len(ordered) < folds:
        raise MixdownError(f"{len(ordered)} songs cannot be split into {folds} folds")
    order = np.random.default_rng(seed).permutation(len(ordered))
    return {ordered[int(j)]: k % folds for k, j in enumerate(order)}


@dataclass(frozen=True)
class CVConfig:
    """A cross-validation run.

    Attributes:
        dataset: Folder-layout dataset.
        out: Output folder.
        methods: Methods to evaluate (the oracle is added for songs with settings).
        folds: K.
        seed: Seed of the fold assignment and of the trained methods.
        seconds: Central excerpt length, or None for whole songs.
    """

    dataset: str
    out: str
    methods: tuple[str, ...]
    folds: int = 5
    seed: int = 0
    seconds: float | None = None


def _check_resumable(path: Path, record: dict[str, Any]) -> None:
    """Refuse to resume a run whose rows were made under another fold assignment.

    A trained method's row depends on the songs it was trained on, so rows kept from a run
    with other songs (e.g. a dataset that has grown), folds, seed or excerpt length would
    mix models trained on other splits into the table.

    Raises:
        MixdownError: If ``path`` exists and differs from ``record``.
    """
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MixdownError(f"{path}: unreadable ({exc}); use a new output folder") from None
    changed = sorted(key for key in record if previous.get(key) != record[key])
    if changed:
        raise MixdownError(f"{path.parent} holds a cross-validation with another {', '.join(changed)} "
                           "(rows of trained methods would come from other splits); use a new output folder")


def _train(method: str, dataset: str, songs: Sequence[str], seed: int) -> Any:
    module, function = REAL_TRAINABLE[method].split(":")
    return getattr(importlib.import_module(module), function)(dataset, songs, seed)


def run_crossval(config: CVConfig, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Run the cross-validation and write ``metrics.csv``, ``folds.json`` and ``summary.md``.

    Returns:
        ``{"folds": song -> fold, "rows": the rows, "summary": markdown}``.

    Raises:
        MixdownError: On an unknown method, a bad dataset, or a method that fails.
    """
    from mixdown.api import mix
    from mixdown.evaluate import (
        Mixdown,
        check_methods,
        load_song,
        mix_song,
        score,
        select_songs,
        song_seed,
    )

    check_methods([m for m in config.methods if m not in REAL_TRAINABLE])
    songs = select_songs(config.dataset, None, None)
    folds = assign_folds([s.name for s in songs], config.folds, config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"dataset": str(Path(config.dataset).resolve()), "folds": config.folds, "seed": config.seed,
              "seconds": config.seconds, "song_fold": folds}
    _check_resumable(out / "folds.json", record)
    atomic_write_text(out / "folds.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    table = ResultsTable(out / "metrics.csv")
    done = table.done()
    methods = list(config.methods) + ([ORACLE] if any(s.params is not None for s in songs) else [])
    tasks = [(song, m) for song in songs for m in methods
             if (song.name, m) not in done and not (m == ORACLE and song.params is None)]
    total = len(tasks)
    if progress is not None:
        progress(0, total)
    trained: dict[tuple[str, int], Any] = {}
    ordered = sorted(tasks, key=lambda t: (folds[t[0].name], t[1], t[0].name))
    for finished, (song, method) in enumerate(ordered, start=1):
        fold = folds[song.name]
        multitrack, target = load_song(song, config.seconds)
        if method in REAL_TRAINABLE:
            if (method, fold) not in trained:
                train_songs = [s.name for s in songs if folds[s.name] != fold]
                trained[(method, fold)] = _train(method, config.dataset, train_songs, config.seed)
            result = mix(multitrack, trained[(method, fold)])
            mixdown = Mixdown(result.mix, result.params, result.info["method_s"], result.info["render_s"])
        else:
            mixdown = mix_song(method, multitrack, target, song.params, song_seed(song.name))
        metrics = score(mixdown, target, song.params, multitrack.sample_rate)
        table.append([{"song": song.name, "method": method, "output": "audio" if mixdown.params is None else "params",
                       "stems": multitrack.num_tracks, "seconds": multitrack.duration_s,
                       "predict_s": mixdown.predict_s, "render_s": mixdown.render_s,
                       "finished_at": datetime.now(UTC).isoformat(timespec="seconds"), **metrics}])
        if progress is not None:
            progress(finished, total)
    names = {s.name for s in songs}
    rows = [row for row in table.rows if row["song"] in names and row["method"] in methods]
    summary = summary_markdown(rows, methods, folds, config)
    atomic_write_text(out / "summary.md", summary)
    return {"folds": folds, "rows": rows, "summary": summary}


def _median(rows: Sequence[Row], method: str, metric: str, songs: set[str] | None = None) -> float:
    values = np.array([float(r[metric]) for r in rows if r["method"] == method
                       and (songs is None or r["song"] in songs)], dtype=np.float64)
    values = values[~np.isnan(values)]
    return quantile(values, 0.5)


def cv_table(rows: Sequence[Row], methods: Sequence[str], folds: dict[str, int], k: int
             ) -> list[dict[str, Any]]:
    """Per method: pooled median, per-fold medians of `METRIC`, gain/pan errors, improvement over the best baseline."""
    baseline = min((_median(rows, b, METRIC) for b in BASELINES if b in methods), default=math.nan)
    table = []
    for method in methods:
        pooled = _median(rows, method, METRIC)
        per_fold = [_median(rows, method, METRIC, {s for s, f in folds.items() if f == fold}) for fold in range(k)]
        table.append({
            "method": method, "pooled": pooled, "folds": per_fold,
            "gain_balance_db": _median(rows, method, "median_gain_balance_db"),
            "pan": _median(rows, method, "median_pan"),
            "improvement": 1.0 - pooled / baseline if math.isfinite(baseline) and baseline > 0 else math.nan,
            "better_than_mono": _wins(rows, method, "mono"),
        })
    return table


def _wins(rows: Sequence[Row], method: str, other: str) -> str:
    ours = {r["song"]: float(r[METRIC]) for r in rows if r["method"] == method}
    theirs = {r["song"]: float(r[METRIC]) for r in rows if r["method"] == other}
    common = sorted(ours.keys() & theirs.keys())
    return f"{sum(ours[s] < theirs[s] for s in common)}/{len(common)}" if common else "n/a"


def summary_markdown(rows: Sequence[Row], methods: Sequence[str], folds: dict[str, int], config: CVConfig) -> str:
    """The cross-validation table as markdown."""
    k = config.folds
    table = cv_table(rows, methods, folds, k)
    best = min(r["pooled"] for r in table if r["method"] != ORACLE)
    present = [b for b in BASELINES if b in methods]
    lines = [f"# {k}-fold cross-validation on {Path(config.dataset).name}", "",
             f"{len(folds)} songs, song-level folds (seed {config.seed}); "
             + ("whole songs" if config.seconds is None else f"central {config.seconds:g} s excerpts") + ". "
             f"Metric: loudness-matched stereo MR-STFT (lower is better), median over songs. Methods trained on "
             f"real songs ({', '.join(m for m in methods if m in REAL_TRAINABLE) or 'none'}) are trained per fold on "
             "the other folds' songs only. Improvement: 1 - median / lowest median of "
             f"{', '.join(present) or 'the baselines'}. gain/pan error: median over songs of the median over "
             "channels of |error| against the stated settings (gain after removing the mean offset).", "",
             "| method | pooled median | " + " | ".join(f"fold {i}" for i in range(k))
             + " | improvement over best baseline | better than mono (songs) | gain error dB | pan error |",
             "|---|---|" + "---|" * k + "---|---|---|---|"]
    for r in table:
        name = f"**{r['method']}**" if r["pooled"] == best else r["method"]
        improvement = "n/a" if math.isnan(r["improvement"]) else f"{100 * r['improvement']:+.1f} %"
        lines.append(f"| {name} | {format_value(r['pooled'])} | "
                     + " | ".join(format_value(v) for v in r["folds"])
                     + f" | {improvement} | {r['better_than_mono']} | {format_value(r['gain_balance_db'])}"
                     + f" | {format_value(r['pan'])} |")
    return "\n".join(lines) + "\n"
