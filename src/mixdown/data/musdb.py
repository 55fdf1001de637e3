"""MUSDB18-HQ (Rafii et al., 2019): 150 songs as four stereo stems and the mixture.

Layout, as distributed (uncompressed WAV, 44.1 kHz, stereo)::

    root/
      train/<Artist - Title>/{mixture,drums,bass,other,vocals}.wav    100 songs
      test/<Artist - Title>/{mixture,drums,bass,other,vocals}.wav      50 songs

The official split is honoured: ``"test"`` is the ``test/`` folder, ``"val"`` the 14
songs of the official validation list (:data:`VALIDATION_SONGS`, from the ``musdb``
package's configuration) found under ``train/``, and ``"train"`` the rest of
``train/``. Tracks are drums, bass, other, vocals (the ``musdb`` stem order); drums
are a whole kit and count as ``overhead``, as MedleyDB's "drum set" does.
"""

from __future__ import annotations

import os
from pathlib import Path

from mixdown.data.songs import SPLITS, DatasetConfig, SongDataset, SongSource, TrackSource, describe
from mixdown.errors import MixdownError

STEMS: tuple[str, ...] = ("drums", "bass", "other", "vocals")
MUSDB_CLASSES: dict[str, str] = {"drums": "overhead", "bass": "bass", "other": "other", "vocals": "vocal"}
SUBSETS = ("train", "test")

VALIDATION_SONGS: frozenset[str] = frozenset({
    "Actions - One Minute Smile",
    "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies",
    "Patrick Talbot - A Reason To Leave",
    "Triviul - Angelsaint",
    "Alexander Ross - Goodbye Bolero",
    "Fergessen - Nos Palpitants",
    "Leaf - Summerghost",
    "Skelpolu - Human Mistakes",
    "Young Griffo - Pennies",
    "ANiMAL - Rockshow",
    "James May - On The Line",
    "Meaxic - Take A Step",
    "Traffic Experiment - Sirens",
})
"""The official MUSDB18 validation songs (a part of ``train/``)."""


def find_songs(root: str | os.PathLike, subsets: tuple[str, ...] = SUBSETS) -> list[SongSource]:
    """Describe the songs of a MUSDB18-HQ copy (no audio is opened).

    Args:
        root: The folder holding ``train/`` and ``test/``.
        subsets: Which of them to list; a missing subset folder is ignored.

    Returns:
        One source per song folder, ``train/`` first, by name.

    Raises:
        MixdownError: If ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise MixdownError(f"MUSDB18-HQ folder {root} does not exist")
    sources = []
    for subset in subsets:
        if not (root / subset).is_dir():
            continue
        for folder in sorted(p for p in (root / subset).iterdir() if p.is_dir() and not p.name.startswith(".")):
            stems = tuple(TrackSource(stem, folder / f"{stem}.wav", MUSDB_CLASSES[stem]) for stem in STEMS)
            sources.append(SongSource(folder.name, stems, folder / "mixture.wav"))
    return sources


def official_split(root: str | os.PathLike, split: str | None) -> list[SongSource]:
    """The songs of one official split (every song for ``split=None``).

    Raises:
        MixdownError: If ``split`` is not one of train, val, test or ``None``.
    """
    if split is None:
        return find_songs(root)
    if split not in SPLITS:
        raise MixdownError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "test":
        return find_songs(root, ("test",))
    in_val = split == "val"
    return [s for s in find_songs(root, ("train",)) if (s.name in VALIDATION_SONGS) == in_val]


class MUSDBDataset(SongDataset):
    """Segments of MUSDB18-HQ songs in their official split (see the module docstring).

    Args:
        root: The folder holding ``train/`` and ``test/``.
        config: Segmenting options.
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` (every song).

    Raises:
        MixdownError: As :class:`~mixdown.data.songs.SongDataset` and :func:`official_split`.
    """

    def __init__(self, root: str | os.PathLike, config: DatasetConfig = DatasetConfig(), split: str | None = None):
        super().__init__(official_split(root, split), config, describe(Path(root), "musdb", split))
