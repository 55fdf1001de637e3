"""The plain folder layout, and dataset checks for every layout.

Layout (what `mixdown.synth.synthetic` writes)::

    root/
      <song>/
        stems/<name>.wav ...   one file per stem (.wav, .flac, .aif, .aiff; mono or stereo)
        mix.wav                the reference mix (any supported extension)
        params.json            optional: the true ConsoleParams the mix was made with

Songs are the non-hidden sub-folders of ``root`` (files beside them, such as
``synth.yaml``, are ignored); stems are taken in case-insensitive name order, named
by their file stem, with instrument classes guessed from the names
(`mixdown.multitrack.guess_instrument_class`).

:func:`check_dataset` checks a dataset of any layout (:data:`LAYOUTS`) the way the
loaders do when they open one, and reports on it (`mixdown data check`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mixdown.audio import PARTIAL_PATTERN, SUPPORTED_EXTENSIONS
from mixdown.data import enst, medleydb, musdb
from mixdown.data.songs import (
    DatasetConfig,
    SongDataset,
    SongSource,
    TrackSource,
    describe,
    open_songs,
    select_split,
)
from mixdown.errors import MixdownError
from mixdown.multitrack import guess_instrument_class

logger = logging.getLogger("mixdown.data")

STEMS_DIR = "stems"
MIX_NAME = "mix"
PARAMS_FILE = "params.json"


def _sorted_files(folder: Path) -> list[Path]:
    """Non-hidden audio files of ``folder`` in case-insensitive name order (partial writes left out)."""
    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and not PARTIAL_PATTERN.match(p.name) and p.suffix.lower() in SUPPORTED_EXTENSIONS),
                  key=lambda p: (p.name.lower(), p.name))


def song_folders(root: str | os.PathLike) -> list[Path]:
    """The non-hidden sub-folders of a dataset root, by name.

    Raises:
        MixdownError: If ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise MixdownError(f"dataset folder {root} does not exist" if not root.exists() else f"{root} is not a folder")
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_songs(root: str | os.PathLike) -> list[SongSource]:
    """Describe every song of a folder-layout dataset (no audio is opened).

    Args:
        root: The dataset folder.

    Returns:
        One source per song folder; a folder without ``stems/`` or with several mix
        files carries that as its error.

    Raises:
        MixdownError: If ``root`` is not a folder.
    """
    sources = []
    for folder in song_folders(root):
        mixes = [p for p in folder.iterdir() if p.is_file() and p.stem == MIX_NAME
                 and p.suffix.lower() in SUPPORTED_EXTENSIONS]
        mix = mixes[0] if len(mixes) == 1 else folder / f"{MIX_NAME}.wav"
        params = folder / PARAMS_FILE
        error = None
        if len(mixes) > 1:
            error = f"several mix files: {', '.join(sorted(p.name for p in mixes))}"
        stems_dir = folder / STEMS_DIR
        if not stems_dir.is_dir():
            error = error or f"no {STEMS_DIR}/ folder"
            stems = ()
        else:
            stems = tuple(TrackSource(p.stem, p, guess_instrument_class(p.stem)) for p in _sorted_files(stems_dir))
        sources.append(SongSource(folder.name, stems, mix, params if params.exists() else None, error))
    return sources


class FolderDataset(SongDataset):
    """Segments of a folder-layout dataset (see the module docstring).

    ``meta.params`` holds each song's ``params.json`` (channels in stem order) when it
    has one.

    Args:
        root: The dataset folder.
        config: Segmenting options.
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` (every song); songs are
            split by name with :func:`mixdown.data.songs.split_songs`.
        val_fraction: Share of songs for validation.
        test_fraction: Share of songs for testing.
        split_seed: Seed of the split.

    Raises:
        MixdownError: As :class:`~mixdown.data.songs.SongDataset`, or if ``root`` is
            not a folder.
    """

    def __init__(self, root: str | os.PathLike, config: DatasetConfig = DatasetConfig(), split: str | None = None,
                 val_fraction: float = 0.1, test_fraction: float = 0.1, split_seed: int = 0):
        self.root = Path(root)
        sources = select_split(find_songs(root), split, val_fraction, test_fraction, split_seed)
        super().__init__(sources, config, describe(self.root, "folder", split))


LAYOUTS: dict[str, Callable[[Path], list[SongSource]]] = {
    "folder": find_songs,
    "enst": enst.find_songs,
    "medleydb": medleydb.find_songs,
    "musdb": musdb.find_songs,
}
"""Song finders by layout name, each with its default options."""


@dataclass
class DatasetReport:
    """What :func:`check_dataset` found.

    Attributes:
        root: The dataset folder.
        layout: Its layout (a key of :data:`LAYOUTS`).
        songs_ok: Names of the songs that passed every check.
        problems: ``(song, problem)`` for every song that did not.
        duration_s: Total length of the good songs in seconds.
    """

    root: Path
    layout: str
    songs_ok: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every song passed."""
        return not self.problems

    def summary(self) -> str:
        """A few lines for people: counts, total length, then one line per bad song."""
        total = len(self.songs_ok) + len(self.problems)
        hours, rest = divmod(round(self.duration_s), 3600)
        head = (f"{self.root} ({self.layout} layout): {len(self.songs_ok)} of {total} songs OK, "
                f"{hours}:{rest // 60:02d}:{rest % 60:02d} of audio")
        if not self.problems:
            return head
        return "\n".join([f"{head}; {len(self.problems)} bad:"]
                         + [f"  {song}: {problem}" for song, problem in self.problems])


def check_dataset(root: str | os.PathLike, layout: str = "folder", skip_bad: bool = False,
                  decode: bool = False) -> DatasetReport:
    """Check every song of a dataset as the loaders do (headers and params; every sample with ``decode``).

    Problems found per song: a missing stem or mix, an unreadable or corrupt file (or one
    with more than two channels), stems and mix of differing lengths or sample rates, a
    ``params.json`` that does not parse, does not name exactly the stems or is for another
    rate, and layout-specific ones (no ``stems/`` folder, malformed MedleyDB metadata).
    In the folder layout the only list of a song's stems is its ``params.json``, so a
    missing stem shows there as settings for an unknown stem; the other layouts list
    their files (ENST channel folders, MedleyDB metadata, MUSDB's fixed names).

    Args:
        root: The dataset folder.
        layout: One of :data:`LAYOUTS`: ``"folder"``, ``"enst"``, ``"medleydb"``,
            ``"musdb"``.
        skip_bad: Go on past bad songs (each logged as a warning on ``mixdown.data``
            and listed in the report) instead of raising at the first.
        decode: Read every sample too, as loading a song whole does (`mixdown evaluate`):
            NaN or infinite samples, files that end before their header says and rates
            mixdown does not mix at are problems (`mixdown.data.songs.inspect_song`).
            `mixdown data check` does.

    Returns:
        The report.

    Raises:
        MixdownError: If ``layout`` is unknown, ``root`` is not a folder or holds no
            songs, or (without ``skip_bad``) naming the first bad song and its problem.
    """
    if layout not in LAYOUTS:
        raise MixdownError(f"unknown dataset layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    sources = LAYOUTS[layout](Path(root))
    if not sources:
        raise MixdownError(f"no songs found in {root} ({layout} layout)")
    songs, problems = open_songs(sources, skip_bad=skip_bad, decode=decode)
    report = DatasetReport(Path(root), layout, [song.name for song in songs], problems,
                           sum(song.duration_s for song in songs))
    logger.info("%s", report.summary())
    return report
