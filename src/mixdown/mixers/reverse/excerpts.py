"""The parts of a song the refinement compares: chosen by what they say about the settings.

A random or central excerpt can miss a channel altogether (a tom that plays twice) or
show a compressor only holding a steady level. `informative_excerpts` picks segments
greedily by information instead: every channel's share of its own energy that a segment
holds counts (with diminishing returns, so that segments covering channels not yet
covered win), and for a compressed channel half of that is its share of *onset* energy
(rises of its frame energy): the transients that show attack, release and threshold.
The reverb is fitted on the whole window's energies, tails first (`reverb_fit`), so it
needs no excerpt. Each segment is preceded by a warm-up that is rendered but not
compared, so the filters' and the detector's state are those of the song.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_FRAME = 1024


@dataclass(frozen=True)
class Excerpt:
    """One segment of the analysis window, in samples.

    Attributes:
        begin: first sample rendered (the warm-up starts here).
        fit_begin: first sample compared.
        end: one past the last sample.
    """

    begin: int
    fit_begin: int
    end: int


def informative_excerpts(contributions: torch.Tensor, compressed: torch.Tensor, sample_rate: int, segments: int,
                         segment_s: float, warmup_s: float) -> list[Excerpt]:
    """Segments of the window that show the most about every channel (see the module docstring).

    Args:
        contributions: ``(tracks, channels, samples)`` each channel's part of the mix.
        compressed: ``(tracks,)`` bool, channels whose compressor is fitted.
        sample_rate: in Hz.
        segments: most segments.
        segment_s: compared length of each.
        warmup_s: rendered, not compared, before each.

    Returns:
        Sorted, non-overlapping excerpts; the whole window as one when it is no longer
        than they would be together.
    """
    samples = contributions.shape[-1]
    length, warmup = round(segment_s * sample_rate), round(warmup_s * sample_rate)
    if samples <= segments * (length + warmup):
        return [Excerpt(0, 0, samples)]
    frames = samples // _FRAME
    energy = contributions[..., :frames * _FRAME].double().pow(2).sum(1).reshape(-1, frames, _FRAME).sum(-1)
    share = energy / energy.sum(-1, keepdim=True).clamp_min(1e-30)
    onset = torch.nn.functional.pad((energy[:, 1:] - energy[:, :-1]).clamp_min(0.0), (1, 0))
    onset_share = onset / onset.sum(-1, keepdim=True).clamp_min(1e-30)
    value = torch.where(compressed[:, None], 0.5 * share + 0.5 * onset_share, share)
    span = max(1, length // _FRAME)
    lead = -(-warmup // _FRAME)
    cumulative = torch.nn.functional.pad(value.cumsum(-1), (1, 0))
    held = cumulative[:, span:] - cumulative[:, :-span]  # (tracks, starts): share held by the segment at each start
    need = torch.ones(value.shape[0], dtype=torch.float64)
    blocked = torch.zeros(held.shape[1], dtype=torch.bool)
    blocked[:lead] = True
    chosen: list[int] = []
    for _ in range(segments):
        score = (need[:, None] * held.clamp_min(0.0).sqrt()).sum(0)
        score = torch.where(blocked, -math.inf, score)
        start = int(score.argmax())
        if not math.isfinite(float(score[start])):
            break
        chosen.append(start)
        need = need * (1.0 - held[:, start].clamp(0.0, 1.0))
        blocked[max(0, start - span - lead):start + span + lead] = True
    excerpts = []
    for start in sorted(chosen):
        fit_begin = start * _FRAME
        excerpts.append(Excerpt(max(0, fit_begin - warmup), fit_begin, min(samples, fit_begin + span * _FRAME)))
    return excerpts


def gather(signal: torch.Tensor, excerpts: list[Excerpt]) -> torch.Tensor:
    """The excerpts of ``signal`` ``(..., samples)``, warm-ups included, end to end along the last axis."""
    return torch.cat([signal[..., e.begin:e.end] for e in excerpts], dim=-1)


def compared(excerpts: list[Excerpt]) -> torch.Tensor:
    """Bool mask over `gather`'s samples: True where a sample is compared (not warm-up)."""
    return torch.cat([torch.arange(e.end - e.begin) >= e.fit_begin - e.begin for e in excerpts])
