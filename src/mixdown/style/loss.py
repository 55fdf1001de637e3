"""Style distance: how far a mix's style is from a reference's.

A weighted sum of mean absolute differences of the `StyleFeatures` groups, each divided
by a scale at which a difference is clearly audible (`STYLE_SCALES`: 3 dB of spectrum
or balance, 2 dB of crest, 3 dB of floor, 0.1 of width or side balance), so every group counts about
equally and the distance reads as "audible steps". 0 for identical styles.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import torch

from mixdown.style.features import StyleFeatures

STYLE_SCALES: dict[str, float] = {"spectrum_db": 3.0, "balance_db": 3.0, "crest_db": 2.0, "floor_db": 3.0,
                                  "width": 0.1, "side_balance": 0.1}
"""Difference per feature group that counts as 1 (see the module docstring)."""


@dataclass(frozen=True)
class StyleLossConfig:
    """Weights of the feature groups in `style_distance` (0 leaves a group out)."""

    spectrum_db: float = 1.0
    balance_db: float = 1.0
    crest_db: float = 1.0
    floor_db: float = 1.0
    width: float = 1.0
    side_balance: float = 1.0

    def __post_init__(self) -> None:
        if min(getattr(self, f.name) for f in fields(self)) < 0.0:
            raise ValueError("style loss weights must be >= 0")


def style_terms(estimate: StyleFeatures, reference: StyleFeatures) -> dict[str, torch.Tensor]:
    """Per-group scaled mean absolute differences, each ``(batch,)`` (a reference of batch 1 broadcasts)."""
    return {f.name: (getattr(estimate, f.name) - getattr(reference, f.name)).abs().mean(dim=-1) / STYLE_SCALES[f.name]
            for f in fields(StyleFeatures)}


def style_distance(estimate: StyleFeatures, reference: StyleFeatures, config: StyleLossConfig = StyleLossConfig(),
                   reduction: Literal["mean", "none"] = "mean") -> torch.Tensor:
    """Weighted style distance.

    Args:
        estimate: features of ``batch`` mixes.
        reference: features of ``batch`` mixes or of one (broadcast).
        config: group weights.
        reduction: ``"mean"`` over the batch (scalar) or ``"none"`` (``(batch,)``).

    Returns:
        The weighted sum of `style_terms` divided by the sum of the weights.
    """
    terms = style_terms(estimate, reference)
    weights = {name: getattr(config, name) for name in terms}
    total = sum(weights.values())
    if total <= 0.0:
        raise ValueError("at least one style loss weight must be positive")
    per_mix = sum(weights[name] * value for name, value in terms.items()) / total
    return per_mix.mean() if reduction == "mean" else per_mix
