"""Evaluate mixing methods on a dataset: metrics per song, summaries, plots and audio.

`run_evaluation` takes a dataset in the folder layout (`mixdown.data.folder`:
``root/song/stems/*.wav``, ``root/song/mix.wav``, optional ``root/song/params.json``),
mixes every song with every method, compares each mix with the song's mix (the target)
and writes into the output folder:

* ``metrics.csv``: one row per song and method (`mixdown.evaluation.results`): audio
  distances and feature differences (`mixdown.metrics.evaluate_mix`) and, where the song
  has its true settings, parameter errors (`mixdown.metrics.summarize_param_errors`).
  Rows are appended atomically as they finish; a rerun into the same folder skips the
  rows already there (it must use the same dataset and excerpt length, and, when it
  evaluates ``reverse``, the same reverse-engineering settings, all recorded in
  ``evaluation.json``), so an interrupted run resumes.
* ``summary.csv``, ``summary.md`` and ``report.html``: median and interquartile range per
  method and metric over the songs asked for (`mixdown.evaluation.summary`).
* ``plots/box_<group>.png``: box plots of every metric of a group of the summary (audio,
  features, params, time), a box per method (the oracle, ~0 by construction, is left to
  the tables); ``plots/spectrum.png`` and
  ``plots/panning.png``: long-term average spectrum and panning by band of every method's
  mix of one song against the target (`mixdown.evaluation.analysis`).
* ``listen/<song>/``: that song's target and every method's mix (float WAV) with its
  settings (``<method>.params.json``), for listening.

Methods (`available_methods`): every method of `mixdown.mixers.METHODS`, run through
`mixdown.api.mix`:

* methods that give settings have them rendered by the console; ``random`` draws its
  settings with seed ``crc32(song name)``: different for every song, the same on every run;
* audio-only methods (e.g. ``waveunet``) get the audio metrics only (no settings to compare);
* methods that need the target mix (``reverse``) get the song's mix. They are
  *oracle-informed*: they see the answer and search for the settings that reproduce it,
  so they are an upper reference for what the console can do, not methods that mix new
  songs.
* ``oracle`` (added by itself to every song with true settings): those settings rendered.
  Its distance to the target is the floor: zero on whole songs; with ``seconds`` it is not
  quite zero, since loudness normalisation and the limiter then see only the excerpt and
  the reverb starts from silence.

With ``seconds`` every song is cut to its central excerpt of that length before it is
mixed: methods analyse, and metrics compare, only the excerpt.

With ``reference_segment`` (issue 14's evaluation of "mix like a reference") each song is
split in two halves: the mix of the first half is the reference that methods taking one
(``style``) mix like, and every method is evaluated on the second half (its central
``seconds``), so the reference never overlaps what is scored; methods without a
reference are scored on the same second half, so rows compare.

Work is parallel over processes (``workers``), one task per song and method; each worker
uses one torch / numba thread.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mixdown.api import mix
from mixdown.audio import as_stereo, atomic_write_text, load_audio, write_audio
from mixdown.data.folder import find_songs
from mixdown.data.songs import SPLITS, Song, open_songs, select_split
from mixdown.errors import MixdownError
from mixdown.evaluation import analysis, plots
from mixdown.evaluation.html import report_html
from mixdown.evaluation.results import PARAM_METRICS, ResultsTable, Row
from mixdown.evaluation.summary import (
    GROUP_TITLES,
    METRICS,
    ORACLE,
    Summary,
    improvement_table,
    metric_values,
    summarize,
    summary_csv,
    summary_tables,
    tables_markdown,
)
from mixdown.mixers import METHODS, get_method
from mixdown.mixers.reverse import ReverseConfig
from mixdown.multitrack import Multitrack
from mixdown.params import ConsoleParams

RUN_FILE = "evaluation.json"
METRICS_FILE = "metrics.csv"
TARGET_NAME = plots.TARGET

ProgressCallback = Callable[[int, int], None]
"""Called with ``(tasks done, tasks)`` at the start and after every finished task."""


def available_methods() -> list[str]:
    """Names ``--methods`` accepts: every method of `mixdown.mixers.METHODS`."""
    return list(METHODS)


def _oracle_informed(methods: Sequence[str]) -> list[str]:
    """The methods among ``methods`` that see the target mix."""
    return [name for name in methods if name in METHODS and METHODS[name].capabilities.needs_target]


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and where the results go.

    Attributes:
        dataset: Dataset folder (folder layout).
        out: Output folder (created if needed; a rerun resumes there).
        methods: Method names (`available_methods`), in table order.
        split: ``"train"``, ``"val"`` or ``"test"`` of `mixdown.data.songs.split_songs`
            with the training recipes' defaults (10 % validation, 10 % test, seed 0), or
            None for every song.
        songs: Evaluate only the first this many songs (by name), or None for all.
        seconds: Cut every song to its central excerpt of this length, or None.
        workers: Processes; 1 works in this process.
        figure_song: The song of the spectrum and panning figures and of the listening
            files; None takes the first one.
        reverse: Settings of the ``reverse`` method.
        reference_segment: Pair every song with the first half of its own mix as the
            reference and evaluate the second half (see the module docstring).

    Raises:
        MixdownError: On an empty or repeated method list, ``oracle`` among the methods
            or a value out of range.
    """

    dataset: str
    out: str
    methods: tuple[str, ...]
    split: str | None = None
    songs: int | None = None
    seconds: float | None = None
    workers: int = 1
    figure_song: str | None = None
    reverse: ReverseConfig = field(default_factory=ReverseConfig)
    reference_segment: bool = False

    def __post_init__(self) -> None:
        if not self.methods:
            raise MixdownError("give at least one method")
        if len(set(self.methods)) != len(self.methods):
            raise MixdownError(f"a method is listed twice: {', '.join(self.methods)}")
        if ORACLE in self.methods:
            raise MixdownError("the oracle (true settings rendered) is added by itself to songs that have "
                               "params.json; leave it out of the methods")
        if self.split is not None and self.split not in SPLITS:
            raise MixdownError(f"split must be one of {', '.join(SPLITS)} or None, got {self.split!r}")
        if self.songs is not None and self.songs < 1:
            raise MixdownError(f"songs must be at least 1, got {self.songs}")
        if self.seconds is not None and not self.seconds > 0.0:
            raise MixdownError(f"seconds must be positive, got {self.seconds}")
        if self.workers < 1:
            raise MixdownError(f"workers must be at least 1, got {self.workers}")


@dataclass(frozen=True)
class EvalResult:
    """What `run_evaluation` did.

    Attributes:
        out: The output folder.
        songs: The songs evaluated, by name.
        methods: The methods summarised, the oracle last when there is one.
        figure_song: The song of the figures and listening files.
        computed: Rows computed by this call.
        reused: Rows found in ``metrics.csv`` from an earlier run.
        summaries: Median and quartiles per method and metric.
    """

    out: Path
    songs: list[str]
    methods: list[str]
    figure_song: str
    computed: int
    reused: int
    summaries: list[Summary]


def check_methods(names: Sequence[str]) -> None:
    """Refuse unknown methods, and mixers that cannot be built (e.g. weights not installed).

    Raises:
        MixdownError: Naming the method and listing the available ones.
    """
    available = available_methods()
    for name in names:
        if name not in available:
            raise MixdownError(f"unknown method {name!r}; available: {', '.join(available)}")
        try:
            get_method(name)
        except MixdownError as exc:
            raise MixdownError(f"method {name!r} cannot be used: {exc}") from None


def select_songs(dataset: str | os.PathLike, split: str | None, limit: int | None) -> list[Song]:
    """The checked songs of a folder-layout dataset to evaluate, by name.

    Raises:
        MixdownError: If the folder is missing or holds no songs (in the split), or a song
            fails the checks of `mixdown.data.songs.inspect_song`.
    """
    sources = select_split(find_songs(dataset), split)
    if not sources:
        where = f"the {split} split of {dataset}" if split else str(dataset)
        raise MixdownError(f"no songs in {where}")
    songs, _ = open_songs(sorted(sources, key=lambda source: source.name)[:limit])
    return songs


def excerpt(num_frames: int, sample_rate: int, seconds: float | None) -> slice:
    """The central ``seconds`` of ``num_frames`` frames (all of them for None or a longer excerpt)."""
    if seconds is None:
        return slice(0, num_frames)
    length = min(num_frames, round(seconds * sample_rate))
    start = (num_frames - length) // 2
    return slice(start, start + length)


def song_window(song: Song, seconds: float | None, reference_segment: bool = False) -> slice:
    """The frames of a song that are mixed and scored: its central ``seconds``, or with
    ``reference_segment`` the central ``seconds`` of its second half (`reference_window`)."""
    if not reference_segment:
        return excerpt(song.num_frames, song.file_rate, seconds)
    half = song.num_frames // 2
    inner = excerpt(song.num_frames - half, song.file_rate, seconds)
    return slice(half + inner.start, half + inner.stop)


def reference_window(song: Song) -> slice:
    """The frames of a song's mix used as its reference with ``reference_segment``: the first half."""
    return slice(0, song.num_frames // 2)


def load_song(song: Song, seconds: float | None = None,
              reference_segment: bool = False) -> tuple[Multitrack, np.ndarray]:
    """A song's stems and target mix, cut to `song_window`.

    Returns:
        ``(multitrack, target)``: the stems with the dataset's names and classes, and the
        float32 ``(2, samples)`` mix (a mono mix duplicated).
    """
    window = song_window(song, seconds, reference_segment)
    arrays = {track.name: load_audio(track.path)[0][:, window] for track in song.stems}
    multitrack = Multitrack.from_arrays(arrays, song.file_rate, {t.name: t.instrument for t in song.stems})
    return multitrack, load_target(song, seconds, reference_segment)


def load_target(song: Song, seconds: float | None = None, reference_segment: bool = False) -> np.ndarray:
    """A song's target mix, float32 ``(2, samples)`` (a mono mix duplicated), cut as `load_song` cuts it."""
    return as_stereo(load_audio(song.mix)[0][:, song_window(song, seconds, reference_segment)])


def load_reference_segment(song: Song) -> np.ndarray:
    """The reference of a song with ``reference_segment``: float32 ``(2, samples)``, the first half of its mix.

    Raises:
        MixdownError: If that half cannot serve as a style reference (too short, silent,
            mono), naming the song (`mixdown.style.reference.check_style_reference`).
    """
    from mixdown.style.reference import check_style_reference

    audio = load_audio(song.mix)[0][:, reference_window(song)]
    return check_style_reference(audio, song.file_rate, f"{song.name}: the first half of its mix")


def song_seed(name: str) -> int:
    """Seed of stochastic methods on a song: ``crc32`` of its name."""
    return zlib.crc32(name.encode("utf-8"))


@dataclass(frozen=True)
class Mixdown:
    """One method's mix of one song.

    Attributes:
        mix: float32 ``(2, samples)``.
        params: The settings it was rendered from, None for audio methods.
        predict_s: Wall time of the method.
        render_s: Wall time of the render (nan for audio methods).
    """

    mix: np.ndarray
    params: ConsoleParams | None
    predict_s: float
    render_s: float


def mix_song(method: str, multitrack: Multitrack, target: np.ndarray, truth: ConsoleParams | None, seed: int,
             reverse: ReverseConfig = ReverseConfig(), reference: np.ndarray | None = None) -> Mixdown:
    """Mix a multitrack with one method (see the module docstring for the methods).

    Args:
        method: A name of `available_methods` or ``oracle``.
        multitrack: The stems.
        target: The target mix ``(2, samples)`` (``reverse`` fits it).
        truth: The true settings (the ``oracle`` renders them), or None.
        seed: Seed of stochastic mixers.
        reverse: Settings of ``reverse``.
        reference: A song to mix like ``(2, samples)``, given to methods that take one.

    Raises:
        MixdownError: If the method fails, the oracle has no settings, or a method's audio
            is not ``(2, samples)``.
    """
    if method == ORACLE:
        from mixdown.console import render

        if truth is None:
            raise MixdownError("the oracle needs the song's true settings (params.json)")
        began = time.perf_counter()
        return Mixdown(render(multitrack, truth), truth, 0.0, time.perf_counter() - began)
    capabilities = METHODS[method].capabilities
    options = {"config": reverse} if "config" in METHODS[method].options else {}
    result = mix(multitrack, method, target=target if capabilities.needs_target else None,
                 reference=reference if capabilities.takes_reference else None, seed=seed, **options)
    return Mixdown(result.mix, result.params, result.info["method_s"], result.info["render_s"])


def score(mixdown: Mixdown, target: np.ndarray, truth: ConsoleParams | None, sample_rate: int) -> dict[str, float]:
    """Audio metrics of a mix against the target, and parameter errors where both settings exist."""
    from mixdown.metrics import evaluate_mix, param_errors, summarize_param_errors

    metrics = evaluate_mix(mixdown.mix, target, sample_rate)
    if mixdown.params is not None and truth is not None:
        metrics.update(summarize_param_errors(param_errors(mixdown.params, truth)))
    else:
        metrics.update({name: float("nan") for name in PARAM_METRICS})
    return metrics


@dataclass(frozen=True)
class _Task:
    """One song and method: compute its row, write its listening files, or both."""

    song: Song
    method: str
    seconds: float | None
    reverse: ReverseConfig
    row: bool
    listen_dir: Path | None
    reference_segment: bool = False


def _run_task(task: _Task) -> Row | None:
    song, method = task.song, task.method
    try:
        multitrack, target = load_song(song, task.seconds, task.reference_segment)
        reference = None
        if task.reference_segment and method in METHODS and METHODS[method].capabilities.takes_reference:
            reference = load_reference_segment(song)
        mixdown = mix_song(method, multitrack, target, song.params, song_seed(song.name), task.reverse, reference)
        if task.listen_dir is not None:
            write_audio(task.listen_dir / f"{method}.wav", mixdown.mix, multitrack.sample_rate, subtype="FLOAT")
            if mixdown.params is not None:
                atomic_write_text(task.listen_dir / f"{method}.params.json", mixdown.params.to_json())
        if not task.row:
            return None
        metrics = score(mixdown, target, song.params, multitrack.sample_rate)
    except MixdownError as exc:  # plain MixdownError: it crosses process boundaries
        raise MixdownError(f"{song.name}, {method}: {exc}") from None
    return {"song": song.name, "method": method, "output": "audio" if mixdown.params is None else "params",
            "stems": multitrack.num_tracks, "seconds": multitrack.duration_s, "predict_s": mixdown.predict_s,
            "render_s": mixdown.render_s, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **metrics}


def _single_threaded_worker() -> None:
    """Worker-process initializer: one thread each, as the processes already fill the cores."""
    import numba
    import torch

    torch.set_num_threads(1)
    numba.set_num_threads(1)


def _execute(tasks: list[_Task], workers: int, table: ResultsTable, progress: ProgressCallback | None) -> int:
    """Run the tasks, appending each row to ``table`` as it arrives; returns the rows computed."""
    done = computed = 0
    if progress is not None:
        progress(done, len(tasks))

    def finished(row: Row | None) -> None:
        nonlocal done, computed
        if row is not None:
            table.append([row])
            computed += 1
        done += 1
        if progress is not None:
            progress(done, len(tasks))

    if workers == 1 or len(tasks) <= 1:
        for task in tasks:
            finished(_run_task(task))
        return computed
    # Fresh interpreters ("spawn"): forking a process whose torch/numba thread pools run is unsafe.
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_single_threaded_worker) as pool:
        pending = {pool.submit(_run_task, task) for task in tasks}
        try:
            while pending:
                ready, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in ready:
                    finished(future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return computed


def _check_run_file(out: Path, config: EvalConfig) -> None:
    """Write ``evaluation.json``, or refuse a folder holding rows computed with other settings.

    The file records the dataset and excerpt length, and the settings of ``reverse`` once a
    run evaluates it; a run without ``reverse`` is not bound by them (its rows do not
    depend on them).
    """
    wanted = json.loads(json.dumps({"dataset": str(Path(config.dataset).resolve()), "seconds": config.seconds,
                                    "reference_segment": config.reference_segment}))
    uses_reverse = "reverse" in config.methods
    reverse = json.loads(json.dumps(asdict(config.reverse)))
    path = out / RUN_FILE
    existing = {}
    if path.exists():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MixdownError(f"{path}: cannot read the evaluation's settings ({exc})") from None
        if not isinstance(existing, dict):
            raise MixdownError(f"{path}: cannot read the evaluation's settings (not a JSON object)")
        existing.setdefault("reference_segment", False)  # written before references existed
        differ = [k for k in wanted if existing.get(k) != wanted[k]]
        if uses_reverse and "reverse" in existing and existing["reverse"] != reverse:
            differ.append("reverse")
        if differ:
            raise MixdownError(f"{out} holds results of another evaluation ({', '.join(differ)} differ, see "
                               f"{path}); use a new output folder or the same settings")
    record = {**existing, **wanted, **({"reverse": reverse} if uses_reverse else {})}
    if record != existing:
        atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def _song_figures(listen_dir: Path, names: Sequence[str], song: str, plots_dir: Path) -> list[tuple[str, str]]:
    """Spectrum and panning figures of one song from its listening files; returns (caption, file name)."""
    spectra, panning = {}, {}
    for name in (TARGET_NAME, *names):
        audio, rate = load_audio(listen_dir / f"{name}.wav")
        spectra[name] = analysis.band_spectrum_db(audio, rate)
        panning[name] = analysis.band_panning(audio, rate)
    plots.spectrum_plot(spectra, song, plots_dir / "spectrum.png")
    plots.panning_plot(panning, song, plots_dir / "panning.png")
    return [(f"{song}: long-term average spectrum", "spectrum.png"), (f"{song}: panning by band", "panning.png")]


def _notes(config: EvalConfig, songs: Sequence[Song], methods: Sequence[str]) -> list[str]:
    split = f"{config.split} split" if config.split else "all songs"
    excerpt_text = f"central {config.seconds:g} s excerpts" if config.seconds else "whole songs"
    if config.reference_segment:
        excerpt_text = (f"the second half of each song ({excerpt_text} of it); methods that take a reference mix "
                        "like the first half of the song's own mix")
    notes = [f"Dataset {config.dataset} ({split}): {len(songs)} songs, {excerpt_text}; methods "
             f"{', '.join(methods)}. Cells are the median [first quartile, third quartile] over songs; lower is "
             "better unless marked; the best median of a row (the oracle excepted) is in bold."]
    if ORACLE in methods:
        notes.append("oracle: the true console settings rendered by the same console, the floor of every metric "
                     "(not quite zero with excerpts: loudness normalisation and limiter see only the excerpt).")
    informed = _oracle_informed(methods)
    if informed:
        notes.append(f"{', '.join(informed)}: oracle-informed, fitted to the target mix itself, so they show what "
                     "the console can reproduce, not how well new songs are mixed.")
    return notes


def _write_reports(out: Path, config: EvalConfig, songs: Sequence[Song], methods: list[str], rows: list[Row],
                   figure_song: str, listen_dir: Path) -> list[Summary]:
    plots_dir = out / "plots"
    plots_dir.mkdir(exist_ok=True)
    summaries = summarize(rows, methods)
    tables = summary_tables(summaries, methods)
    improvement = improvement_table(rows, methods)
    if improvement is not None:
        tables.insert(1, improvement)
    figures = _song_figures(listen_dir, methods, figure_song, plots_dir)
    for group, title in GROUP_TITLES.items():  # the oracle, ~0 (or inf dB) by construction, is left to the tables
        panels = {spec.label: {m: metric_values(rows, m, spec) for m in methods if m != ORACLE}
                  for spec in METRICS if spec.group == group}
        panels = {label: values for label, values in panels.items() if any(v.size for v in values.values())}
        if panels:
            plots.box_grid(panels, f"{title}: over songs", plots_dir / f"box_{group}.png")
            figures.append((title, f"box_{group}.png"))
    notes = _notes(config, songs, methods)
    title = f"Evaluation of {', '.join(config.methods)} on {Path(config.dataset).name}"
    atomic_write_text(out / "summary.csv", summary_csv(summaries))
    markdown = [f"# {title}", "", *[line for note in notes for line in (note, "")], tables_markdown(tables),
                "## Plots", ""]
    markdown += [f"![{caption}](plots/{name})" for caption, name in figures]
    atomic_write_text(out / "summary.md", "\n".join(markdown) + "\n")
    listen = [(f"{figure_song}: {name}", f"listen/{figure_song}/{name}.wav") for name in (TARGET_NAME, *methods)]
    atomic_write_text(out / "report.html", report_html(title, notes, tables,
                                                      [(c, f"plots/{n}") for c, n in figures], listen))
    return summaries


def run_evaluation(config: EvalConfig, progress: ProgressCallback | None = None) -> EvalResult:
    """Evaluate the methods on the dataset and write the reports (see the module docstring).

    Args:
        config: What to evaluate.
        progress: Called with ``(tasks done, tasks)``.

    Returns:
        What was done.

    Raises:
        MixdownError: On an unknown or unusable method, a missing or bad dataset, an
            unknown ``figure_song``, an output folder of another evaluation, or a method
            failing on a song (naming both; the rows finished so far are kept).
    """
    check_methods(config.methods)
    songs = select_songs(config.dataset, config.split, config.songs)
    names = [song.name for song in songs]
    figure_song = config.figure_song or names[0]
    if figure_song not in names:
        raise MixdownError(f"song {figure_song!r} is not among the {len(names)} songs evaluated "
                           f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")
    out = Path(config.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MixdownError(f"{out}: cannot create the output folder ({exc.strerror})") from None
    _check_run_file(out, config)
    table = ResultsTable(out / METRICS_FILE)
    done = table.done()
    listen_dir = out / "listen" / figure_song
    listen_dir.mkdir(parents=True, exist_ok=True)
    methods = list(config.methods) + ([ORACLE] if any(song.params is not None for song in songs) else [])
    tasks, reused = [], 0
    for song in songs:
        for method in methods:
            if method == ORACLE and song.params is None:
                continue
            need_row = (song.name, method) not in done
            reused += not need_row
            listen = listen_dir if song.name == figure_song and not (listen_dir / f"{method}.wav").exists() else None
            if need_row or listen is not None:
                tasks.append(_Task(song, method, config.seconds, config.reverse, need_row, listen,
                                   config.reference_segment))
    target_path = listen_dir / f"{TARGET_NAME}.wav"
    if not target_path.exists():
        song = songs[names.index(figure_song)]
        write_audio(target_path, load_target(song, config.seconds, config.reference_segment), song.file_rate,
                    subtype="FLOAT")
    computed = _execute(tasks, config.workers, table, progress)
    wanted = set(names)
    rows = [row for row in table.rows if row["song"] in wanted and row["method"] in methods]
    summaries = _write_reports(out, config, songs, methods, rows, figure_song, listen_dir)
    return EvalResult(out, names, methods, figure_song, computed, reused, summaries)
