"""Batching songs with different numbers of tracks: zero-padding plus a mask.

Rules:

* Tracks are padded with zeros to the batch's largest track count (or a fixed
  ``max_tracks``); ``mask[b, t]`` is True for real tracks.
* Channels: if every stem in the batch is mono, stems stay ``(..., 1, samples)``.
  Otherwise every row has two channels and a mono stem is duplicated to both, the
  console's convention for a mono source in a stereo row (`mixdown.dsp.pan.pan`);
  ``stereo[b, t]`` tells the genuinely stereo stems apart (pass it to
  `mixdown.console.render_tensor`).
* Track order may be shuffled per item (training), from
  ``np.random.default_rng([seed, meta.epoch, meta.index, 1])``, so it is the same in
  any worker and differs between epochs. The item's meta (names, classes, stereo flags,
  gains, and the channels of true ``params``) is permuted with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from mixdown.data.songs import SegmentMeta

Item = tuple[torch.Tensor, torch.Tensor, SegmentMeta]

_SHUFFLE_STREAM = 1  # keeps track-order draws apart from the dataset's offset draws


class MultitrackBatch(NamedTuple):
    """A batch of segments.

    Attributes:
        stems: ``(batch, max_tracks, channels, samples)`` float32, zero where masked.
        mask: ``(batch, max_tracks)`` bool, True for real tracks.
        stereo: ``(batch, max_tracks)`` bool, True for genuinely stereo stems.
        mix: ``(batch, 2, samples)`` float32.
        metas: One :class:`~mixdown.data.songs.SegmentMeta` per item, tracks in the
            order of ``stems``.
    """

    stems: torch.Tensor
    mask: torch.Tensor
    stereo: torch.Tensor
    mix: torch.Tensor
    metas: list[SegmentMeta]


def collate_multitracks(items: Sequence[Item], max_tracks: int | None = None, shuffle_tracks: bool = False,
                        seed: int = 0) -> MultitrackBatch:
    """Stack dataset items into one padded batch (see the module docstring).

    Args:
        items: ``(stems, mix, meta)`` with stems ``(tracks, channels, samples)`` and mix
            ``(2, samples)``; every item the same ``samples``.
        max_tracks: Pad to this many tracks; ``None`` pads to the largest item.
        shuffle_tracks: Shuffle each item's track order.
        seed: Seed of the shuffles.

    Returns:
        The batch.

    Raises:
        ValueError: If the items are empty, of other shapes or lengths, or one has more
            than ``max_tracks`` tracks.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    samples = items[0][1].shape[-1]
    for stems, mix, meta in items:
        if stems.ndim != 3 or stems.shape[1] not in (1, 2) or mix.shape != (2, samples) or stems.shape[-1] != samples:
            raise ValueError(f"{meta.song}: expected stems (tracks, 1 or 2, {samples}) and mix (2, {samples}), "
                             f"got {tuple(stems.shape)} and {tuple(mix.shape)}")
    tracks = max_tracks or max(stems.shape[0] for stems, _, _ in items)
    too_many = [meta.song for stems, _, meta in items if stems.shape[0] > tracks]
    if too_many:
        raise ValueError(f"more than max_tracks={tracks} tracks in {', '.join(too_many)}")
    channels = max(stems.shape[1] for stems, _, _ in items)
    out = torch.zeros(len(items), tracks, channels, samples, dtype=torch.float32)
    mask = torch.zeros(len(items), tracks, dtype=torch.bool)
    stereo = torch.zeros(len(items), tracks, dtype=torch.bool)
    metas = []
    for b, (stems, _, meta) in enumerate(items):
        count = stems.shape[0]
        if shuffle_tracks:
            order = np.random.default_rng([seed, meta.epoch, meta.index, _SHUFFLE_STREAM]).permutation(count)
            stems, meta = stems[torch.from_numpy(order)], meta.permuted(order.tolist())
        out[b, :count] = stems  # a (count, 1, samples) mono block broadcasts to both channels
        mask[b, :count] = True
        stereo[b, :count] = torch.tensor(meta.stereo, dtype=torch.bool)
        metas.append(meta)
    mix = torch.stack([mix for _, mix, _ in items]).to(torch.float32)
    return MultitrackBatch(out, mask, stereo, mix, metas)


@dataclass(frozen=True)
class MultitrackCollate:
    """``collate_fn`` for a ``DataLoader``: :func:`collate_multitracks` with fixed options.

    Attributes:
        max_tracks: Pad to this many tracks (``None``: the largest item of each batch).
        shuffle_tracks: Shuffle track order per item (training).
        seed: Seed of the shuffles.
    """

    max_tracks: int | None = None
    shuffle_tracks: bool = False
    seed: int = 0

    def __call__(self, items: Sequence[Item]) -> MultitrackBatch:
        return collate_multitracks(items, self.max_tracks, self.shuffle_tracks, self.seed)
