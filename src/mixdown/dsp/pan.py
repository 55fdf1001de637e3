"""Constant-power panning (mono sources) and balance (stereo sources).

A mono source at pan ``p`` in [-1, 1] feeds left/right with ``cos(theta)`` and
``sin(theta)``, ``theta = (p + 1) * pi / 4``: -3 dB per side at centre, total power
constant across the arc. A stereo source keeps its image and is balanced with the same
law scaled by sqrt(2), so at centre both of its sides pass at unity.
"""

from __future__ import annotations

import math

import torch


def pan_gains(pan: torch.Tensor, stereo: torch.Tensor) -> torch.Tensor:
    """Left/right gains ``(..., 2)`` for pan positions ``(...)`` and a stereo mask ``(...)``."""
    theta = (pan.clamp(-1.0, 1.0) + 1.0) * (math.pi / 4.0)
    gains = torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1)
    return torch.where(stereo[..., None], gains * math.sqrt(2.0), gains)


def pan(x: torch.Tensor, pan_position: torch.Tensor, stereo: torch.Tensor,
        gain: torch.Tensor | None = None) -> torch.Tensor:
    """Place each row in the stereo field.

    Args:
        x: ``(rows, channels, samples)`` with 1 or 2 channels; a 2-channel row whose
            ``stereo`` flag is False is a mono source stored twice (left is used).
        pan_position: ``(rows,)`` in [-1, 1] (-1 hard left).
        stereo: ``(rows,)`` bool, True for genuinely stereo sources.
        gain: optional linear gain ``(rows,)`` applied in the same pass (the fader).

    Returns:
        ``(rows, 2, samples)``.
    """
    gains = pan_gains(pan_position, stereo)  # (rows, 2)
    if gain is not None:
        gains = gains * gain[:, None]
    gains = gains[..., None]  # (rows, 2, 1)
    if x.shape[1] == 1 or bool(stereo.all()):
        return x * gains
    source = torch.where(stereo[:, None, None], x, x[:, :1].expand_as(x))
    return source * gains


def pan_matrix(pan_position: torch.Tensor, stereo: torch.Tensor, channels: int,
               gain: torch.Tensor | None = None) -> torch.Tensor:
    """`pan` as one matrix per row: ``pan(x, ...)[r] == pan_matrix(...)[r] @ x[r]``.

    Args:
        pan_position, stereo, gain: as for `pan`, each ``(rows,)``.
        channels: of the rows to place, 1 or 2.

    Returns:
        ``(rows, 2, channels)``: left/right outputs by input channels. A 2-channel row that
        is not ``stereo`` takes its left channel only.
    """
    gains = pan_gains(pan_position, stereo)  # (rows, 2)
    if gain is not None:
        gains = gains * gain[:, None]
    if channels == 1:
        return gains[..., None]
    left_only = torch.stack([gains, torch.zeros_like(gains)], dim=-1)
    return torch.where(stereo[:, None, None], torch.diag_embed(gains), left_only)
