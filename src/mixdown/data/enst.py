"""ENST-Drums (Gillet & Richard, ISMIR 2006): multichannel drum recordings.

Layout, as distributed::

    root/
      drummer_1/ drummer_2/ drummer_3/
        audio/
          kick/ snare/ hi-hat/ tom_1/ tom_2/ [tom_3/] overhead_L/ overhead_R/
                              one mono <take>.wav per take in every channel folder
          dry_mix/ wet_mix/   the stereo mixes, <take>.wav
          accompaniment/      backing tracks of the "minus-one" takes (not used here)
        annotation/<take>.txt onsets (not used here)

Takes are named like ``012_phrase_rock_simple_slow_sticks`` or
``001_hits_snare-drum_sticks_x6``; a song here is one take, named
``drummer_<n>/<take>``.

Tracks are the eight channels of the Differentiable Mixing Console setting (Steinmetz et
al., ICASSP 2021, and its public code): kick, snare, hi-hat, tom_1, tom_2, tom_3,
overhead_L, overhead_R. ``tom_3`` exists only for the kits that have a third tom;
a drummer's songs use the channel folders that drummer's ``audio/`` holds, so every
take of a drummer has the same tracks and a missing file is reported. Variable track
counts are batched with a mask (`mixdown.data.collate`).

The target is the **wet** mix by default: the dataset's mix made by a sound engineer
with effects (equalisation, compression, reverberation), which is what a mixing model
should learn; ``mix="dry"`` gives the plain mix without effects. The single-hit takes
(``_hits_`` in the name) are left out by default, as in the DMC code, since they are
isolated strokes rather than playing.
"""

from __future__ import annotations

import os
from pathlib import Path

from mixdown.data.songs import DatasetConfig, SongDataset, SongSource, TrackSource, describe, select_split
from mixdown.errors import MixdownError
from mixdown.multitrack import guess_instrument_class

ENST_CHANNELS: tuple[str, ...] = ("kick", "snare", "hi-hat", "tom_1", "tom_2", "tom_3", "overhead_L", "overhead_R")
"""The close and overhead microphone channels used as tracks (folder names)."""

DRUMMERS: tuple[int, ...] = (1, 2, 3)
MIXES = ("wet", "dry")


def find_songs(root: str | os.PathLike, mix: str = "wet", drummers: tuple[int, ...] = DRUMMERS,
               include_hits: bool = False, channels: tuple[str, ...] = ENST_CHANNELS) -> list[SongSource]:
    """Describe the takes of an ENST-Drums copy (no audio is opened).

    Args:
        root: The folder holding ``drummer_1`` ... ``drummer_3``.
        mix: ``"wet"`` or ``"dry"``: which mix is the target.
        drummers: Which drummers' takes; missing drummer folders are ignored.
        include_hits: Keep the single-hit takes.
        channels: Channel folders to use as tracks, in track order.

    Returns:
        One source per take that has a ``<mix>_mix`` file, ordered by drummer and take.

    Raises:
        MixdownError: If ``root`` is not a folder or ``mix`` is not wet or dry.
    """
    root = Path(root)
    if mix not in MIXES:
        raise MixdownError(f"ENST-Drums mix must be one of {', '.join(MIXES)}, got {mix!r}")
    if not root.is_dir():
        raise MixdownError(f"ENST-Drums folder {root} does not exist")
    sources = []
    for drummer in drummers:
        audio = root / f"drummer_{drummer}" / "audio"
        mix_dir = audio / f"{mix}_mix"
        if not mix_dir.is_dir():
            continue
        present = [channel for channel in channels if (audio / channel).is_dir()]
        takes = sorted(p for p in mix_dir.iterdir()
                       if p.is_file() and p.suffix.lower() == ".wav" and not p.name.startswith("."))
        for take in takes:
            if not include_hits and "_hits_" in take.name:
                continue
            stems = tuple(TrackSource(channel, audio / channel / take.name, guess_instrument_class(channel))
                          for channel in present)
            sources.append(SongSource(f"drummer_{drummer}/{take.stem}", stems, take))
    return sources


class ENSTDrumsDataset(SongDataset):
    """Segments of ENST-Drums takes (see the module docstring).

    Args:
        root: The folder holding ``drummer_1`` ... ``drummer_3``.
        config: Segmenting options.
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` (every take); takes are
            split by name with :func:`mixdown.data.songs.split_songs`.
        val_fraction: Share of takes for validation.
        test_fraction: Share of takes for testing.
        split_seed: Seed of the split.
        mix: ``"wet"`` (default) or ``"dry"`` target mix.
        drummers: Which drummers' takes.
        include_hits: Keep the single-hit takes.

    Raises:
        MixdownError: As :class:`~mixdown.data.songs.SongDataset` and :func:`find_songs`.
    """

    def __init__(self, root: str | os.PathLike, config: DatasetConfig = DatasetConfig(), split: str | None = None,
                 val_fraction: float = 0.1, test_fraction: float = 0.1, split_seed: int = 0, mix: str = "wet",
                 drummers: tuple[int, ...] = DRUMMERS, include_hits: bool = False):
        sources = find_songs(root, mix, drummers, include_hits)
        sources = select_split(sources, split, val_fraction, test_fraction, split_seed)
        super().__init__(sources, config, describe(Path(root), "enst", split))
