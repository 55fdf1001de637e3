"""MedleyDB 1.0 / 2.0 (Bittner et al., ISMIR 2014): multitracks with instrument labels.

Layout, as distributed (``root`` is the folder holding the song folders, ``Audio/``
in the downloads)::

    root/<Song>/
      <Song>_METADATA.yaml
      <Song>_MIX.wav
      <Song>_STEMS/<Song>_STEM_01.wav ...
      <Song>_RAW/<Song>_RAW_01_01.wav ...

The metadata YAML gives ``mix_filename``, ``stem_dir``, ``raw_dir`` and ``stems``: a
mapping ``S01, S02, ...`` to ``{filename, instrument, component, raw}``, where ``raw``
maps ``R01, R02, ...`` to ``{filename, instrument}``. Instrument labels come from the
MedleyDB taxonomy (``"drum set"``, ``"electric bass"``, ``"male singer"``, ...); a
list of labels uses the first.

Tracks are the stems (``tracks="stems"``, named ``S01_electric_bass``) or the raw
recordings (``tracks="raw"``, named ``S01_R02_snare_drum``). Labels map to mixdown's
classes with :data:`MEDLEYDB_CLASSES`; a ``"drum set"`` stem (a whole kit, and the
label MedleyDB gives overhead and room microphones) counts as ``overhead``. Labels not
in the table are guessed from their words (`mixdown.multitrack.guess_instrument_class`).

Splits are by artist (the part of the song name before the first ``_``), so an
artist's songs never straddle train and test.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from mixdown.data.songs import DatasetConfig, SongDataset, SongSource, TrackSource, describe, select_split
from mixdown.errors import MixdownError
from mixdown.multitrack import guess_instrument_class

TRACK_KINDS = ("stems", "raw")

MEDLEYDB_CLASSES: dict[str, str] = {
    **dict.fromkeys(("kick drum", "bass drum"), "kick"),
    "snare drum": "snare",
    **dict.fromkeys(("high hat", "cymbal"), "hihat"),
    "toms": "tom",
    "drum set": "overhead",
    "Main System": "room",
    **dict.fromkeys(("electric bass", "double bass"), "bass"),
    **dict.fromkeys(("acoustic guitar", "clean electric guitar", "distorted electric guitar", "lap steel guitar",
                     "slide guitar", "banjo", "mandolin", "ukulele"), "guitar"),
    **dict.fromkeys(("piano", "tack piano", "electric piano", "electronic organ", "pipe organ", "harpsichord",
                     "harmonium", "synthesizer"), "keys"),
    **dict.fromkeys(("male singer", "female singer", "male speaker", "female speaker", "male rapper",
                     "female rapper", "vocalists", "beatboxing"), "vocal"),
}
"""MedleyDB taxonomy labels -> instrument classes; labels not listed are guessed."""


def instrument_class(label: str) -> str:
    """Map a MedleyDB instrument label to a mixdown class (:data:`MEDLEYDB_CLASSES`, else guessed)."""
    return MEDLEYDB_CLASSES.get(label) or guess_instrument_class(label)


def artist(song: str) -> str:
    """The artist part of a MedleyDB song name (``"AimeeNorwich_Child"`` -> ``"AimeeNorwich"``)."""
    return song.split("_", 1)[0]


def _label(entry: dict) -> str:
    label = entry.get("instrument")
    if isinstance(label, list) and label:
        label = label[0]
    if not isinstance(label, str):
        raise ValueError(f"instrument {label!r} is not a label")
    return label


def _slug(label: str) -> str:
    return "_".join(label.split())


def _song_source(folder: Path, tracks: str) -> SongSource:
    name = folder.name
    mix = folder / f"{name}_MIX.wav"
    metadata = folder / f"{name}_METADATA.yaml"
    if not metadata.is_file():
        return SongSource(name, (), mix, error=f"missing metadata file {metadata.name}")
    try:
        data = yaml.safe_load(metadata.read_text(encoding="utf-8"))
        mix = folder / data.get("mix_filename", mix.name)
        stem_dir = folder / data.get("stem_dir", f"{name}_STEMS")
        raw_dir = folder / data.get("raw_dir", f"{name}_RAW")
        sources = []
        for key in sorted(data["stems"]):
            stem = data["stems"][key]
            label = _label(stem)
            if tracks == "stems":
                sources.append(TrackSource(f"{key}_{_slug(label)}", stem_dir / stem["filename"],
                                           instrument_class(label)))
                continue
            for raw_key in sorted(stem.get("raw") or {}):
                raw = stem["raw"][raw_key]
                raw_label = _label(raw)
                sources.append(TrackSource(f"{key}_{raw_key}_{_slug(raw_label)}", raw_dir / raw["filename"],
                                           instrument_class(raw_label)))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as err:
        problem = " ".join(str(err).split()) or type(err).__name__
        return SongSource(name, (), mix, error=f"malformed metadata {metadata.name}: {problem}")
    return SongSource(name, tuple(sources), mix)


def find_songs(root: str | os.PathLike, tracks: str = "stems") -> list[SongSource]:
    """Describe the songs of a MedleyDB copy from their metadata (no audio is opened).

    Args:
        root: The folder holding the song folders.
        tracks: ``"stems"`` or ``"raw"``.

    Returns:
        One source per non-hidden sub-folder, by name; unreadable metadata is that
        song's error.

    Raises:
        MixdownError: If ``root`` is not a folder or ``tracks`` is unknown.
    """
    root = Path(root)
    if tracks not in TRACK_KINDS:
        raise MixdownError(f"MedleyDB tracks must be one of {', '.join(TRACK_KINDS)}, got {tracks!r}")
    if not root.is_dir():
        raise MixdownError(f"MedleyDB folder {root} does not exist")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [_song_source(folder, tracks) for folder in folders]


class MedleyDBDataset(SongDataset):
    """Segments of MedleyDB songs (see the module docstring).

    Args:
        root: The folder holding the song folders.
        config: Segmenting options (``max_tracks`` leaves out songs with many raw tracks).
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` (every song); split by
            artist with :func:`mixdown.data.songs.split_songs`.
        val_fraction: Share of artists for validation.
        test_fraction: Share of artists for testing.
        split_seed: Seed of the split.
        tracks: ``"stems"`` (default) or ``"raw"``.

    Raises:
        MixdownError: As :class:`~mixdown.data.songs.SongDataset` and :func:`find_songs`.
    """

    def __init__(self, root: str | os.PathLike, config: DatasetConfig = DatasetConfig(), split: str | None = None,
                 val_fraction: float = 0.1, test_fraction: float = 0.1, split_seed: int = 0, tracks: str = "stems"):
        sources = select_split(find_songs(root, tracks), split, val_fraction, test_fraction, split_seed, group=artist)
        super().__init__(sources, config, describe(Path(root), "medleydb", split))
