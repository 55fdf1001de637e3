"""Differentiable mix-level style features: what "mix like that record" compares.

A style is measured on a stereo mix ``(batch, 2, samples)`` at `ANALYSIS_RATE_HZ`,
loudness-independent (scaling a mix by any gain leaves every feature unchanged), so a
reference at any level and any length describes a style. After the production-style
features of De Man, Leonard, King & Reiss (ISMIR 2014) and the audio-feature loss of
Diff-MST (Vanka, Steinmetz, Rolland, Reiss & Fazekas, ISMIR 2024), each a torch
function with gradients:

Analysis. Hann-windowed STFT, `N_FFT` points, hop `HOP` (centred frames); the power of
the mid ``M = (L + R) / 2`` and side ``S = (L - R) / 2`` signals is summed per band
(rectangular bands over the bins), frame by frame: `band_energies`. Frames of several
excerpts can be pooled before the features are taken (`pool_frames`), so a song
analysed in excerpts is one style, not an average of styles.

Features (`StyleFeatures`; ``E_b(t) = |M|^2 + |S|^2`` in band ``b``, frame ``t``):

* ``spectrum_db`` ``(batch, len(FINE_EDGES_HZ) - 1)``: the long-term spectrum in third-
  octave bands relative to the total, ``10 log10(sum_t E_b / sum_b sum_t E_b)``;
* ``balance_db`` ``(batch, len(BAND_EDGES_HZ) - 1)``: the same in the coarse (octave)
  bands: the per-band loudness balance;
* ``crest_db`` ``(batch, bands)``: dynamics per coarse band, the soft maximum of the
  frame level ``l_b(t) = 10 log10 E_b(t)`` minus its mean; a soft maximum
  ``tau log mean exp(l / tau)`` with ``tau =`` `SOFT_DB` keeps it differentiable. A
  compressed band reads lower;
* ``floor_db`` ``(batch, bands)``: the reverb-amount proxy per coarse band: the mean
  frame level minus its soft minimum. Reverb tails (and sustain) fill the gaps
  between notes and raise the floor, so a wetter mix reads lower;
* ``width`` ``(batch, bands)``: side over mid-plus-side energy per coarse band,
  ``sum_t |S|^2 / sum_t (|M|^2 + |S|^2)``, in [0, 1]: 0 for a mono mix, 0.5 for
  uncorrelated channels, 1 for a pure side signal (L = -R);
* ``side_balance`` ``(batch, bands)``: left minus right over left plus right energy per
  coarse band, in [-1, 1]: +1 for a source hard left. Unlike the rest it tells a mix
  from its mirror image.

Frame levels are floored `FLOOR_DB` under the band's mean power (relative, so still
loudness-independent), which keeps silent frames and silent bands finite; a band that
is silent throughout reads as its neighbours' floor (its balance is ``10 log10`` of
`EPS` relative). Shapes are checked on entry (`band_energies` raises ``ValueError``
naming the expected shape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

ANALYSIS_RATE_HZ = 22050
"""Rate at which styles are measured (references and mixes are resampled to it)."""

N_FFT = 2048
HOP = 1024

BAND_EDGES_HZ: tuple[float, ...] = (20.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 11025.0)
"""Coarse (octave) bands of the balance, dynamics, floor and width features."""

FINE_EDGES_HZ: tuple[float, ...] = tuple(float(f) for f in np.geomspace(50.0, 10000.0, 24))
"""Third-octave-like bands (23) of the spectrum feature."""

SOFT_DB = 3.0
"""Temperature of the soft maximum and minimum of frame levels, in dB."""

FLOOR_DB = 40.0
"""Frame levels are floored this far under the band's mean power."""

EPS = 1e-10
"""Floor on relative energies (-100 dB)."""


@dataclass
class StyleFeatures:
    """The style of a batch of mixes (see the module docstring); every field is ``(batch, n)``."""

    spectrum_db: torch.Tensor
    balance_db: torch.Tensor
    crest_db: torch.Tensor
    floor_db: torch.Tensor
    width: torch.Tensor
    side_balance: torch.Tensor

    def vector(self) -> torch.Tensor:
        """All features concatenated, ``(batch, STYLE_DIM)``, in field order."""
        return torch.cat([getattr(self, f.name) for f in fields(self)], dim=-1)

    def detach(self) -> StyleFeatures:
        return StyleFeatures(*(getattr(self, f.name).detach() for f in fields(self)))

    def to_dict(self, index: int = 0) -> dict[str, list[float]]:
        """Mix ``index``'s features as plain lists (for reports)."""
        return {f.name: [round(float(v), 4) for v in getattr(self, f.name)[index]] for f in fields(self)}


STYLE_DIM = (len(FINE_EDGES_HZ) - 1) + 5 * (len(BAND_EDGES_HZ) - 1)
"""Length of `StyleFeatures.vector`."""


def _band_matrix(edges_hz: tuple[float, ...], sample_rate: int, n_fft: int) -> torch.Tensor:
    """``(bands, bins)`` 0/1 matrix assigning each rFFT bin to the band holding its frequency.

    A band too narrow to hold a bin takes the bin nearest its centre, so no band is empty.
    """
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    matrix = np.zeros((len(edges_hz) - 1, len(freqs)), dtype=np.float64)
    for b, (lo, hi) in enumerate(zip(edges_hz[:-1], edges_hz[1:])):
        inside = (freqs >= lo) & (freqs < hi) if b < len(edges_hz) - 2 else (freqs >= lo) & (freqs <= hi)
        if not inside.any():
            inside = np.arange(len(freqs)) == int(np.argmin(np.abs(freqs - math.sqrt(lo * hi))))
        matrix[b, inside] = 1.0
    return torch.from_numpy(matrix)


_MATRICES: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}


def _matrices(sample_rate: int, n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    key = (sample_rate, n_fft)
    if key not in _MATRICES:
        _MATRICES[key] = (_band_matrix(BAND_EDGES_HZ, sample_rate, n_fft),
                          _band_matrix(FINE_EDGES_HZ, sample_rate, n_fft))
    return _MATRICES[key]


@dataclass
class BandEnergies:
    """Per-frame band powers of mid and side.

    Attributes:
        coarse: ``(batch, 3, len(BAND_EDGES_HZ) - 1, frames)``: mid (0) and side (1) power
            and ``Re(M conj(S))`` (2), whose sum is ``(|L|^2 - |R|^2) / 4``.
        fine: ``(batch, len(FINE_EDGES_HZ) - 1, frames)``: mid plus side power.
    """

    coarse: torch.Tensor
    fine: torch.Tensor


def spectrogram(x: torch.Tensor) -> torch.Tensor:
    """Complex STFT of the analysis (Hann, `N_FFT`, `HOP`, centred frames): ``(..., samples) -> (..., bins, frames)``."""
    shape = x.shape
    window = torch.hann_window(N_FFT, dtype=x.dtype, device=x.device)
    spectrum = torch.stft(x.reshape(-1, shape[-1]), N_FFT, HOP, window=window, return_complex=True)
    return spectrum.reshape(*shape[:-1], *spectrum.shape[-2:])


def bands_from_power(mid: torch.Tensor, side: torch.Tensor, cross: torch.Tensor,
                     sample_rate: int = ANALYSIS_RATE_HZ) -> BandEnergies:
    """`BandEnergies` from per-bin mid and side powers and ``Re(M conj(S))``, each ``(batch, bins, frames)``."""
    coarse_m, fine_m = (m.to(mid.dtype) for m in _matrices(sample_rate, N_FFT))
    coarse = torch.einsum("kf,bcft->bckt", coarse_m, torch.stack([mid, side, cross], dim=1))
    fine = torch.einsum("kf,bft->bkt", fine_m, mid + side)
    return BandEnergies(coarse, fine)


def band_energies(mix: torch.Tensor, sample_rate: int = ANALYSIS_RATE_HZ) -> BandEnergies:
    """Frame-wise band powers of a stereo mix.

    Args:
        mix: ``(batch, 2, samples)``, ``samples >= N_FFT // 2 + 1``.
        sample_rate: in Hz (normally `ANALYSIS_RATE_HZ`).

    Returns:
        `BandEnergies` in ``mix``'s dtype.

    Raises:
        ValueError: on another shape or a too-short signal.
    """
    if mix.dim() != 3 or mix.shape[1] != 2:
        raise ValueError(f"expected a mix of shape (batch, 2, samples), got {tuple(mix.shape)}")
    if mix.shape[-1] <= N_FFT // 2:
        raise ValueError(f"a mix of {mix.shape[-1]} samples is shorter than the {N_FFT // 2 + 1} the analysis needs")
    spectrum = spectrogram(torch.stack([mix[:, 0] + mix[:, 1], mix[:, 0] - mix[:, 1]], dim=1) * 0.5)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    cross = spectrum[:, 0].real * spectrum[:, 1].real + spectrum[:, 0].imag * spectrum[:, 1].imag
    return bands_from_power(power[:, 0], power[:, 1], cross, sample_rate)


def band_fraction_below(freq_hz: float, sample_rate: int = ANALYSIS_RATE_HZ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fraction of each band's bins under ``freq_hz``: ``(coarse (bands,), fine (bands,))`` float64."""
    below = torch.from_numpy((np.fft.rfftfreq(N_FFT, 1.0 / sample_rate) < freq_hz).astype(np.float64))
    return tuple(m @ below / m.sum(dim=1) for m in _matrices(sample_rate, N_FFT))  # type: ignore[return-value]


def pool_frames(energies: BandEnergies, groups: int) -> BandEnergies:
    """Pool the frames of ``groups`` consecutive batch items (excerpts of one song) into one item.

    Args:
        energies: of a batch whose size is a multiple of ``groups``.
        groups: excerpts per song.

    Returns:
        `BandEnergies` of ``batch // groups`` items with ``groups`` times the frames.
    """
    batch = energies.fine.shape[0]
    if batch % groups:
        raise ValueError(f"a batch of {batch} cannot be pooled in groups of {groups}")
    songs = batch // groups

    def pool(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(songs, groups, *x.shape[1:])
        return x.movedim(1, -2).reshape(songs, *x.shape[2:-1], groups * x.shape[-1])

    return BandEnergies(pool(energies.coarse), pool(energies.fine))


def _relative_db(band_power: torch.Tensor) -> torch.Tensor:
    """``(batch, bands)`` powers -> dB relative to their sum."""
    total = band_power.sum(dim=-1, keepdim=True)
    return 10.0 * torch.log10(band_power / (total + 1e-30) + EPS)


def features_from_energies(energies: BandEnergies) -> StyleFeatures:
    """`StyleFeatures` from (possibly pooled) `BandEnergies`."""
    mid, side, cross = energies.coarse[:, 0], energies.coarse[:, 1], energies.coarse[:, 2]
    total = mid + side  # (batch, bands, frames)
    mean_power = total.mean(dim=-1, keepdim=True)
    level = 10.0 * torch.log10(total + mean_power * 10.0 ** (-FLOOR_DB / 10.0) + 1e-30) \
        - 10.0 * torch.log10(mean_power + 1e-30)
    frames = level.shape[-1]
    mean_level = level.mean(dim=-1)
    soft_max = SOFT_DB * (torch.logsumexp(level / SOFT_DB, dim=-1) - math.log(frames))
    soft_min = -SOFT_DB * (torch.logsumexp(-level / SOFT_DB, dim=-1) - math.log(frames))
    summed = total.sum(dim=-1)
    width = side.sum(dim=-1) / (summed + 1e-30)
    return StyleFeatures(spectrum_db=_relative_db(energies.fine.sum(dim=-1)), balance_db=_relative_db(summed),
                         crest_db=soft_max - mean_level, floor_db=mean_level - soft_min, width=width,
                         side_balance=2.0 * cross.sum(dim=-1) / (summed + 1e-30))


def style_features(mix: torch.Tensor, sample_rate: int = ANALYSIS_RATE_HZ) -> StyleFeatures:
    """`StyleFeatures` of each mix of a batch.

    Shape:
        mix: ``(batch, 2, samples)``. Output fields: ``(batch, n)``.
    """
    return features_from_energies(band_energies(mix, sample_rate))


def excerpt_features(excerpts: torch.Tensor, sample_rate: int = ANALYSIS_RATE_HZ) -> StyleFeatures:
    """One style from excerpts of one mix, frames pooled.

    Shape:
        excerpts: ``(excerpts, 2, samples)``. Output fields: ``(1, n)``.
    """
    return features_from_energies(pool_frames(band_energies(excerpts, sample_rate), excerpts.shape[0]))
