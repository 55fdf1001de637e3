"""Losses between stereo mixes.

`StereoLoss` compares two mixes through the multi-resolution STFT magnitudes of their
sum (L + R) and difference (L - R) signals (Steinmetz, Pons, Pascual & Serra,
"Automatic multitrack mixing with a differentiable mixing console of neural audio
effects", ICASSP 2021), as auraloss' `SumAndDifferenceSTFTLoss` computes it: each
resolution is an auraloss `STFTLoss` (spectral convergence plus L1 distance of log
magnitudes; Yamamoto et al. 2020), averaged over resolutions, and the sum and
difference terms are averaged with their weights. The per-resolution losses skip the
phase spectrum auraloss computes but (with no phase term) never uses, which saves
about a third of the time. Because ``|STFT(-x)| = |STFT(x)|``, mirroring a mix (swapping
its left and right channels) leaves the loss unchanged: the loss judges the balance,
tone and width of a mix, not which side a source is on. An optional time-domain L1
term (``time_l1_weight``) is sensitive to orientation and to phase. `FixedTargetLoss`
scores many estimates against one target, its spectra computed once.

auraloss belongs to the ``train`` extra and is imported when a loss is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from mixdown.errors import MixdownError

Reduction = Literal["mean", "sum", "none"]


@dataclass(frozen=True)
class StereoLossConfig:
    """Settings of `StereoLoss`.

    Attributes:
        fft_sizes: STFT sizes in samples, one resolution each; windows are as long as
            the FFT. 512 / 2048 / 8192 are the resolutions of Steinmetz et al.'s
            automix-toolkit MR-STFT metric.
        hop_fraction: hop size as a fraction of each FFT size.
        sum_weight: weight of the (L + R) term.
        difference_weight: weight of the (L - R) term.
        time_l1_weight: weight of the mean absolute sample difference (0 turns it off).
        eps: floor on STFT power (``|X|^2``) before magnitudes and logs are taken, so
            silence stays finite.
    """

    fft_sizes: tuple[int, ...] = (512, 2048, 8192)
    hop_fraction: float = 0.25
    sum_weight: float = 1.0
    difference_weight: float = 1.0
    time_l1_weight: float = 0.0
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if not self.fft_sizes or any(n < 16 for n in self.fft_sizes):
            raise ValueError(f"fft_sizes must be a non-empty list of sizes >= 16, got {self.fft_sizes}")
        if not 0.0 < self.hop_fraction <= 1.0:
            raise ValueError(f"hop_fraction must be in (0, 1], got {self.hop_fraction}")
        if min(self.sum_weight, self.difference_weight, self.time_l1_weight) < 0.0 or self.eps <= 0.0:
            raise ValueError("loss weights must be >= 0 and eps > 0")

    @property
    def min_samples(self) -> int:
        """Shortest signal the STFTs accept (their centre padding needs more than half a window)."""
        return max(self.fft_sizes) // 2 + 1


def _magnitude_stft_loss(fft_size: int, hop_size: int, eps: float) -> torch.nn.Module:
    """auraloss `STFTLoss` (spectral convergence + log-magnitude L1, mean reduction) without the phase.

    Its two halves are apart: ``magnitudes`` of one signal, ``compare`` of two magnitude
    spectra; ``compare(magnitudes(x), magnitudes(y))`` is what auraloss' forward returns
    with these weights (1 for both terms, 0 for the linear-magnitude and phase terms).
    """
    try:
        from auraloss.freq import STFTLoss
    except ImportError:
        raise MixdownError("the stereo loss needs auraloss: pip install 'mixdown[train]'") from None

    class MagnitudeSTFTLoss(STFTLoss):
        def stft(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
            spectrum = torch.stft(x, self.fft_size, self.hop_size, self.win_length, self.window,
                                  return_complex=True)
            return torch.sqrt(torch.clamp(spectrum.real**2 + spectrum.imag**2, min=self.eps)), None

        def magnitudes(self, x: torch.Tensor) -> torch.Tensor:
            """``(1, samples)`` -> ``(1, bins, frames)``."""
            self.window = self.window.to(x.device)
            return self.stft(x)[0]

        def compare(self, x_mag: torch.Tensor, y_mag: torch.Tensor) -> torch.Tensor:
            return self.spectralconv(x_mag, y_mag) + self.logstft(x_mag, y_mag)

    return MagnitudeSTFTLoss(fft_size, hop_size, fft_size, eps=eps)


Spectra = list[list[list[torch.Tensor]]]
"""Magnitude spectra of a batch of mixes: ``[mix][sum, difference][resolution]``, each ``(1, bins, frames)``."""


class StereoLoss(torch.nn.Module):
    """Sum-and-difference multi-resolution STFT loss, plus an optional time-domain L1 term.

    Args:
        config: resolutions, weights and eps.
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for one value
            per mix.

    Shape:
        estimate, target: ``(batch, 2, samples)`` with ``samples >= config.min_samples``.
        Output: scalar, or ``(batch,)`` with ``reduction="none"``.

    Each mix's loss is computed on its own (spectral convergence normalises by the
    target's norm, so pooling a batch would let loud mixes dominate quiet ones). To score
    many estimates against one target, `FixedTargetLoss` computes the target's spectra once.
    """

    def __init__(self, config: StereoLossConfig = StereoLossConfig(), reduction: Reduction = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.config = config
        self.reduction = reduction
        self.resolutions = torch.nn.ModuleList(
            _magnitude_stft_loss(n, max(1, int(n * config.hop_fraction)), config.eps) for n in config.fft_sizes)

    def check(self, mixes: torch.Tensor, name: str = "mixes") -> None:
        """Raise ValueError unless ``mixes`` is ``(batch, 2, samples)`` with enough samples for the largest FFT."""
        if mixes.dim() != 3 or mixes.shape[1] != 2:
            raise ValueError(f"expected {name} of shape (batch, 2, samples), got {tuple(mixes.shape)}")
        if mixes.shape[-1] < self.config.min_samples:
            raise ValueError(f"signals of {mixes.shape[-1]} samples are shorter than the "
                             f"{self.config.min_samples} the largest FFT needs")

    def spectra(self, mixes: torch.Tensor) -> Spectra:
        """The magnitude spectra of every mix's sum and difference at every resolution (`Spectra`).

        Shape:
            mixes: ``(batch, 2, samples)``.
        """
        sd = torch.stack([mixes.sum(1), mixes[:, 0] - mixes[:, 1]], dim=1)
        return [[[resolution.magnitudes(sd[i, k:k + 1]) for resolution in self.resolutions] for k in range(2)]
                for i in range(mixes.shape[0])]

    def compare(self, estimate: torch.Tensor, estimate_spectra: Spectra, target: torch.Tensor,
                target_spectra: Spectra) -> torch.Tensor:
        """The loss from both mixes and their `spectra`, reduced as ``self.reduction``."""
        per_mix = torch.stack([
            (self.config.sum_weight * self._spectral(e[0], t[0])
             + self.config.difference_weight * self._spectral(e[1], t[1])) / 2
            for e, t in zip(estimate_spectra, target_spectra, strict=True)])
        if self.config.time_l1_weight > 0.0:
            per_mix = per_mix + self.config.time_l1_weight * (estimate - target).abs().mean(dim=(1, 2))
        if self.reduction == "mean":
            return per_mix.mean()
        if self.reduction == "sum":
            return per_mix.sum()
        return per_mix

    def _spectral(self, estimate: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
        """Mean over resolutions of one signal's magnitude spectra against another's."""
        return torch.stack([resolution.compare(e, t)
                            for resolution, e, t in zip(self.resolutions, estimate, target, strict=True)]).mean()

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if estimate.dim() != 3 or estimate.shape[1] != 2 or estimate.shape != target.shape:
            raise ValueError(f"expected estimate and target of equal shape (batch, 2, samples), "
                             f"got {tuple(estimate.shape)} and {tuple(target.shape)}")
        self.check(estimate)
        return self.compare(estimate, self.spectra(estimate), target, self.spectra(target))


class FixedTargetLoss(torch.nn.Module):
    """`StereoLoss` against one fixed target whose spectra are computed once.

    ``FixedTargetLoss(loss, target)(estimate)`` equals ``loss(estimate, target)`` (the same
    operations, only the target's STFTs are not repeated): for scoring many estimates
    against one mix, as reverse engineering does. The target is a constant (detached).

    Args:
        loss: the loss (its config and reduction).
        target: ``(batch, 2, samples)``.

    Shape:
        estimate: as ``target``.
        Output: as `StereoLoss`'s.
    """

    def __init__(self, loss: StereoLoss, target: torch.Tensor):
        super().__init__()
        loss.check(target, "target")
        self.loss = loss
        self.target = target.detach()
        with torch.no_grad():
            self.target_spectra = loss.spectra(self.target)

    def forward(self, estimate: torch.Tensor) -> torch.Tensor:
        if estimate.shape != self.target.shape:
            raise ValueError(f"expected an estimate of the target's shape {tuple(self.target.shape)} "
                             f"(batch, 2, samples), got {tuple(estimate.shape)}")
        return self.loss.compare(estimate, self.loss.spectra(estimate), self.target, self.target_spectra)
