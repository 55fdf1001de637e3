"""Decibel conversions and gain."""

from __future__ import annotations

import torch


def db_to_amplitude(db: torch.Tensor) -> torch.Tensor:
    """``10 ** (dB / 20)``; ``-inf`` dB gives exactly 0."""
    return torch.pow(10.0, db / 20.0)


def amplitude_to_db(amplitude: torch.Tensor, floor_db: float = -200.0) -> torch.Tensor:
    """``20 log10 |a|``, floored at ``floor_db`` so silence stays finite."""
    return 20.0 * torch.log10(amplitude.abs().clamp_min(10.0 ** (floor_db / 20.0)))


def apply_gain(x: torch.Tensor, gain_db: torch.Tensor) -> torch.Tensor:
    """Scale each row of ``x (rows, channels, samples)`` by ``gain_db (rows,)``."""
    return x * db_to_amplitude(gain_db)[:, None, None]
