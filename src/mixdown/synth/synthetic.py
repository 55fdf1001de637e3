"""Synthetic training data: multitracks with target mixes and their true console settings.

Song ``i`` of a dataset is a function of ``(config.seed, i)`` and the config alone: a
random subset of ``min_stems..max_stems`` of the instruments of `mixdown.synth.demo`
(drum kit with overhead and room microphones that pick up the whole kit, bass, keys,
guitar, lead), a fresh score (groove, tempo, key, progression), engineer-like console
settings (`mixdown.synth.targets`) and the mix the project's console renders from them.
With ``drumkit`` and/or ``soundfont`` set, the drums and/or the pitched parts are played
by sample libraries instead of the synthesized voices (`mixdown.synth.samples`).

Songs are written in the plain folder layout (`mixdown.data.folder`)::

    root/synth.yaml               the SynthConfig (a resumed build must match it)
    root/song_00000/stems/*.wav   one float WAV per stem
    root/song_00000/mix.wav       the target mix (float WAV)
    root/song_00000/params.json   the ConsoleParams that render the stems to the mix

Stems and mix are 32-bit float WAVs, so re-rendering the stored stems with the stored
settings reproduces the stored mix to float rounding.

Building is resumable (a finished song has its folder; a half-written one never does,
since each song is written to a hidden staging folder and renamed into place, and
staging folders left by an interrupted build are removed) and parallel over processes.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import numba
import numpy as np
import torch
import yaml

from mixdown.audio import atomic_write_text, write_audio
from mixdown.console import render
from mixdown.errors import MixdownError
from mixdown.multitrack import Multitrack
from mixdown.params import ConsoleParams
from mixdown.synth import samples
from mixdown.synth.demo import (
    AVAILABLE_STEMS,
    MIN_FULL_DURATION_S,
    PITCHED_STEMS,
    compose_song,
    kit_pieces,
    synthesize_song,
)
from mixdown.synth.audio_styles import sample_audio_style_params
from mixdown.synth.targets import sample_console_params

CONFIG_FILE = "synth.yaml"
SONG_PREFIX = "song_"
MAX_DURATION_S = 600.0
SAMPLE_RATES_HZ = (8000, 192000)
TARGET_GENERATORS = {"class-table": sample_console_params, "audio-styles": sample_audio_style_params}
"""Who draws the true settings (`SynthConfig.targets`): around the rules' class table
(`mixdown.synth.targets`), or from each song's audio and a per-song style, independent of
the rules (`mixdown.synth.audio_styles`)."""
_STAGING_PREFIX = f".{SONG_PREFIX}"
_STEM_CHOICE, _LIBRARY, _TARGETS = 0, 1, 2  # purposes of a song's random streams


@dataclass(frozen=True)
class SynthConfig:
    """What a synthetic dataset is made of; saved beside it as ``synth.yaml``.

    Attributes:
        seed: Dataset seed (>= 0); song ``i`` depends only on ``(seed, i)`` and the rest.
        sample_rate: In Hz.
        duration_s: Length of every song; at least `demo.MIN_FULL_DURATION_S` (one bar at
            the slowest tempo), so that every stem sounds.
        min_stems: Fewest stems per song.
        max_stems: Most stems per song (at most ``len(AVAILABLE_STEMS)``).
        drumkit: A Hydrogen drumkit (folder, ``drumkit.xml`` or ``.h2drumkit``) or a folder
            of kits (one is drawn per song) to play the drums with; ``None`` synthesizes them.
        soundfont: A General MIDI SoundFont (``.sf2``) to play bass, keys, guitar and lead
            with through FluidSynth; ``None`` synthesizes them.
        targets: The generator of the true settings, a key of `TARGET_GENERATORS`.

    Raises:
        MixdownError: If a value is out of range or a sample library is unusable.
    """

    seed: int = 0
    sample_rate: int = 44100
    duration_s: float = 30.0
    min_stems: int = 4
    max_stems: int = len(AVAILABLE_STEMS)
    drumkit: str | None = None
    soundfont: str | None = None
    targets: str = "class-table"

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise MixdownError(f"seed must be a non-negative integer, got {self.seed!r}")
        low, high = SAMPLE_RATES_HZ
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) \
                or not low <= self.sample_rate <= high:
            raise MixdownError(f"sample_rate must be an integer in [{low}, {high}] Hz, got {self.sample_rate!r}")
        if not 1 <= self.min_stems <= self.max_stems <= len(AVAILABLE_STEMS):
            raise MixdownError(f"stem counts must satisfy 1 <= min_stems <= max_stems <= {len(AVAILABLE_STEMS)}, "
                               f"got {self.min_stems}, {self.max_stems}")
        if not MIN_FULL_DURATION_S <= self.duration_s <= MAX_DURATION_S:
            raise MixdownError(f"duration_s must be in [{MIN_FULL_DURATION_S:g}, {MAX_DURATION_S:g}] s "
                               f"(every stem plays within the first {MIN_FULL_DURATION_S:g} s), got {self.duration_s}")
        if self.targets not in TARGET_GENERATORS:
            raise MixdownError(f"targets must be one of {', '.join(TARGET_GENERATORS)}, got {self.targets!r}")
        if self.drumkit is not None:
            samples.usable_drumkits(self.drumkit)
        if self.soundfont is not None:
            samples.check_soundfont(self.soundfont, self.sample_rate)


@dataclass(frozen=True)
class SyntheticSong:
    """One generated song: its stems, true settings and the mix they render to.

    Attributes:
        name: Folder name, ``song_<index>``.
        multitrack: The stems.
        params: The settings.
        mix: ``(2, samples)`` float32, ``render(multitrack, params)``.
    """

    name: str
    multitrack: Multitrack
    params: ConsoleParams
    mix: np.ndarray


def song_name(index: int) -> str:
    """Folder name of song ``index``."""
    return f"{SONG_PREFIX}{index:05d}"


def _song_rng(index: int, config: SynthConfig, purpose: int) -> np.random.Generator:
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    return np.random.default_rng([config.seed, index, purpose])


def choose_stems(index: int, config: SynthConfig) -> tuple[tuple[str, ...], int]:
    """The stems of song ``index`` and the seed of its score.

    Returns:
        ``(stems, song_seed)``: ``min_stems..max_stems`` distinct names of
        `demo.AVAILABLE_STEMS` (count and choice uniform, in that order) and the seed for
        `demo.synthesize_song`.
    """
    rng = _song_rng(index, config, _STEM_CHOICE)
    count = int(rng.integers(config.min_stems, config.max_stems + 1))
    picked = set(rng.choice(len(AVAILABLE_STEMS), size=count, replace=False).tolist())
    return tuple(name for i, name in enumerate(AVAILABLE_STEMS) if i in picked), int(rng.integers(0, 2**31 - 1))


def _library_sources(song_seed: int, stems: tuple[str, ...], config: SynthConfig,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Dry sample-library renders replacing synthesized voices (see `demo.synthesize_song`)."""
    sources: dict[str, np.ndarray] = {}
    if config.drumkit is None and config.soundfont is None:
        return sources
    song = compose_song(song_seed, config.duration_s)
    n_samples = round(config.duration_s * config.sample_rate)
    if config.drumkit is not None and kit_pieces(stems):
        kits = samples.usable_drumkits(config.drumkit)
        kit = kits[int(rng.integers(len(kits)))]
        sources.update(samples.render_kit(kit, song.parts, kit_pieces(stems), n_samples, config.sample_rate, rng))
    if config.soundfont is not None:
        for stem in (s for s in stems if s in PITCHED_STEMS):
            program = int(rng.choice(samples.GM_PROGRAMS[stem]))
            sources[stem] = samples.render_soundfont(song.parts[stem], program, config.soundfont, n_samples,
                                                     config.sample_rate)
    return sources


def generate_song(index: int, config: SynthConfig) -> SyntheticSong:
    """Song ``index`` of the dataset described by ``config`` (deterministic).

    Args:
        index: Song number (>= 0).
        config: The dataset's configuration.

    Returns:
        The song, its settings and its mix.
    """
    stems, song_seed = choose_stems(index, config)
    library, targets = (_song_rng(index, config, purpose) for purpose in (_LIBRARY, _TARGETS))
    sources = _library_sources(song_seed, stems, config, library)
    arrays = synthesize_song(song_seed, sample_rate=config.sample_rate, duration_s=config.duration_s, stems=stems,
                             sources=sources)
    multitrack = Multitrack.from_arrays(arrays, config.sample_rate)
    params = TARGET_GENERATORS[config.targets](multitrack, targets)
    return SyntheticSong(song_name(index), multitrack, params, render(multitrack, params))


def write_song(song: SyntheticSong, root: str | os.PathLike) -> Path:
    """Write ``song`` under ``root`` in the folder layout, all or nothing.

    Returns:
        The song's folder.

    Raises:
        MixdownError: If the folder exists already or cannot be written.
    """
    root = Path(root)
    final = root / song.name
    if final.exists():
        raise MixdownError(f"{final} exists already")
    staging = root / f".{song.name}.{os.getpid()}"  # hidden: loaders and resumed builds ignore it
    shutil.rmtree(staging, ignore_errors=True)  # left by a crashed process that had this id
    try:
        (staging / "stems").mkdir(parents=True)
        rate = song.multitrack.sample_rate
        for i, name in enumerate(song.multitrack.names):
            write_audio(staging / "stems" / f"{name}.wav", song.multitrack.stem_audio(i), rate, subtype="FLOAT")
        write_audio(staging / "mix.wav", song.mix, rate, subtype="FLOAT")
        (staging / "params.json").write_text(song.params.to_json(), encoding="utf-8")
        os.replace(staging, final)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise MixdownError(f"{final}: cannot write the song ({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _build_one(index: int, config: SynthConfig, root: Path) -> str:
    write_song(generate_song(index, config), root)
    return song_name(index)


def _single_threaded_worker() -> None:
    """Worker-process initializer: one thread each, as the processes already fill the cores."""
    torch.set_num_threads(1)
    numba.set_num_threads(1)


def _check_config_file(root: Path, config: SynthConfig) -> None:
    """Write ``synth.yaml``, or refuse a folder built with another configuration."""
    path = root / CONFIG_FILE
    wanted = asdict(config)
    if not path.exists():
        atomic_write_text(path, yaml.safe_dump(wanted, sort_keys=True))
        return
    try:
        existing = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MixdownError(f"{path}: cannot read the dataset's configuration ({exc})") from None
    if isinstance(existing, dict) and "targets" not in existing:
        existing = {**existing, "targets": "class-table"}  # written before the choice existed
    if existing != wanted:
        differ = sorted(k for k in wanted if not isinstance(existing, dict) or existing.get(k) != wanted[k])
        raise MixdownError(f"{root} holds a dataset made with other options ({', '.join(differ)} differ, see "
                           f"{path}); use a new folder or the same options")


def build_dataset(root: str | os.PathLike, songs: int, config: SynthConfig, workers: int = 1,
                  progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Generate songs ``0 .. songs-1`` into ``root``, skipping those already there.

    Args:
        root: Dataset folder (created if needed). A folder built with another config is
            refused rather than mixed with. One build at a time per folder.
        songs: How many songs the dataset should hold.
        config: What to generate.
        workers: Processes to use; 1 generates in this process.
        progress: Called with ``(done, songs)`` at the start and after each song.

    Returns:
        Names of the songs generated by this call, in index order.

    Raises:
        MixdownError: On bad arguments, an unusable folder, or a song that fails.
    """
    if songs < 0:
        raise MixdownError(f"the number of songs must be >= 0, got {songs}")
    if workers < 1:
        raise MixdownError(f"workers must be >= 1, got {workers}")
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MixdownError(f"{root}: cannot create the dataset folder ({exc.strerror})") from None
    _check_config_file(root, config)
    for stale in root.glob(f"{_STAGING_PREFIX}*"):  # staging folders of an interrupted build
        shutil.rmtree(stale, ignore_errors=True)
    todo = [i for i in range(songs) if not (root / song_name(i)).is_dir()]
    done = songs - len(todo)
    if progress is not None:
        progress(done, songs)
    made = []
    if workers == 1 or len(todo) <= 1:
        for index in todo:
            made.append(_build_one(index, config, root))
            done += 1
            if progress is not None:
                progress(done, songs)
        return made
    # Fresh interpreters ("spawn"): forking a process whose torch/numba thread pools are
    # running is unsafe.
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_single_threaded_worker) as pool:
        pending = {pool.submit(_build_one, index, config, root) for index in todo}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    made.append(future.result())
                    done += 1
                    if progress is not None:
                        progress(done, songs)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return sorted(made)
