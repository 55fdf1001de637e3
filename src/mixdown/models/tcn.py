"""Temporal convolutional network (TCN) blocks conditioned by FiLM.

The transformation network of Steinmetz, Pons, Pascual & Serra, "Automatic multitrack
mixing with a differentiable mixing console of neural audio effects" (ICASSP 2021) is
a TCN whose activations are modulated by the effect's parameters. These are its
building blocks:

* `film`: feature-wise linear modulation, ``x * scale + shift`` per channel (Perez,
  Strub, de Vries, Dumoulin & Courville, "FiLM: Visual reasoning with a general
  conditioning layer", AAAI 2018); `FiLM` predicts ``(1 + scale, shift)`` from a
  conditioning vector with one linear layer.
* `TCNBlock`: dilated convolution -> FiLM -> PReLU -> 1x1 convolution, added to the
  block's input (residual), at constant width.
* `TCN`: a stack of blocks whose dilations grow geometrically,
  ``d_i = dilation_growth ** i``.

Receptive field. A convolution of kernel ``k`` and dilation ``d`` widens what one
output frame sees by ``(k - 1) d`` frames (1x1 convolutions, FiLM and PReLU by none),
so the stack sees

    ``receptive_field = 1 + (k - 1) * sum(d_i)``  frames   (`receptive_field`).

A *causal* stack pads on the left only: output frame ``t`` depends on input frames
``t - receptive_field + 1 .. t``. A *non-causal* stack pads both sides equally (odd
``k``): frames ``t - (receptive_field - 1) / 2 .. t + (receptive_field - 1) / 2``.
Gaps: with ``dilation_growth <= k`` every frame inside that span is reached
(`tests/test_tcn.py` checks the support of the impulse response against the formula).

Layout: ``(batch, channels, frames)`` activations, ``(batch, cond_dim)`` conditioning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional


def receptive_field(kernel_size: int, dilations: Sequence[int]) -> int:
    """Frames one output of a stack of dilated convolutions sees: ``1 + (k - 1) * sum(d)``."""
    return 1 + (kernel_size - 1) * sum(dilations)


def film(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Feature-wise linear modulation ``x * scale + shift``.

    Shape:
        x: ``(batch, channels, frames)``.
        scale, shift: ``(batch, channels)``.
        Output: like ``x``.
    """
    return x * scale[..., None] + shift[..., None]


def dilated_padding(kernel_size: int, dilation: int, causal: bool) -> tuple[int, int]:
    """``(left, right)`` zero padding that keeps a dilated convolution's length."""
    total = (kernel_size - 1) * dilation
    return (total, 0) if causal else (total // 2, total - total // 2)


@dataclass(frozen=True)
class TCNConfig:
    """Settings of `TCN`.

    Attributes:
        channels: Width of every block.
        blocks: Number of blocks.
        kernel_size: Kernel of the dilated convolutions (odd unless causal).
        dilation_growth: Block ``i`` has dilation ``dilation_growth ** i``; at most
            ``kernel_size`` so that the receptive field has no gaps.
        causal: Pad on the left only (outputs never see later inputs).
        cond_dim: Size of the conditioning vector that FiLM reads.
    """

    channels: int = 32
    blocks: int = 10
    kernel_size: int = 3
    dilation_growth: int = 2
    causal: bool = True
    cond_dim: int = 64

    def __post_init__(self) -> None:
        if min(self.channels, self.blocks, self.cond_dim) < 1 or self.kernel_size < 2:
            raise ValueError("channels, blocks and cond_dim must be positive and kernel_size >= 2")
        if not self.causal and self.kernel_size % 2 == 0:
            raise ValueError(f"a non-causal TCN needs an odd kernel_size, got {self.kernel_size}")
        if not 1 <= self.dilation_growth <= self.kernel_size:
            raise ValueError(f"dilation_growth must be in 1..kernel_size ({self.kernel_size}) so the receptive "
                             f"field has no gaps, got {self.dilation_growth}")

    @property
    def dilations(self) -> tuple[int, ...]:
        """Dilation of each block."""
        return tuple(self.dilation_growth ** i for i in range(self.blocks))

    @property
    def receptive_field(self) -> int:
        """Input frames that one output frame depends on (see the module docstring)."""
        return receptive_field(self.kernel_size, self.dilations)


class FiLM(nn.Module):
    """``x * (1 + scale) + shift`` with ``(scale, shift)`` a linear function of the conditioning.

    Shape:
        x: ``(batch, channels, frames)``; cond: ``(batch, cond_dim)``. Output: like ``x``.
    """

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.project = nn.Linear(cond_dim, 2 * channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.project(cond).chunk(2, dim=-1)
        return film(x, 1.0 + scale, shift)


class TCNBlock(nn.Module):
    """Dilated convolution -> FiLM -> PReLU -> 1x1 convolution, plus the input.

    Shape:
        x: ``(batch, channels, frames)``; cond: ``(batch, cond_dim)``. Output: like ``x``.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int, causal: bool, cond_dim: int):
        super().__init__()
        self.padding = dilated_padding(kernel_size, dilation, causal)
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.film = FiLM(cond_dim, channels)
        self.activation = nn.PReLU(channels)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        y = self.conv(functional.pad(x, self.padding))
        return x + self.mix(self.activation(self.film(y, cond)))


class TCN(nn.Module):
    """A stack of `TCNBlock` with geometrically growing dilations (see the module docstring).

    Shape:
        x: ``(batch, config.channels, frames)``; cond: ``(batch, config.cond_dim)``.
        Output: ``(batch, config.channels, frames)``.
    """

    def __init__(self, config: TCNConfig):
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleList(
            TCNBlock(config.channels, config.kernel_size, d, config.causal, config.cond_dim) for d in config.dilations)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        batch, channels, _ = x.shape
        if channels != self.config.channels or cond.shape != (batch, self.config.cond_dim):
            raise ValueError(f"expected x (batch, {self.config.channels}, frames) and cond "
                             f"(batch, {self.config.cond_dim}), got {tuple(x.shape)} and {tuple(cond.shape)}")
        for block in self.blocks:
            x = block(x, cond)
        return x
