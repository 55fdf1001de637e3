"""Least-squares mixing filters (Barchiesi & Reiss 2010) and what they say about pan and EQ.

In every STFT bin the mix is modelled as a linear combination of the stems,
``Y_c(f, t) = sum_i a_ic(f) S_ic(f, t)`` for output channels ``c`` = L, R, and the
complex filters ``a_ic(f)`` are solved for by ridge-regularised least squares
(`least_squares_filters`). Their left/right energy ratio gives the constant-power pan
(`pans_from_filters`), their magnitude the channel's gain times its EQ response on a
1/6-octave grid (`band_responses`), to which `mixdown.mixers.reverse.eq_fit` fits the
standard EQ strip.

References:
    D. Barchiesi and J. Reiss, "Reverse engineering of a mix", JAES 58(7/8), 2010.
"""

from __future__ import annotations

import math

import torch

from mixdown.params import max_design_freq_hz

OCTAVE_FRACTION = 6
"""`band_responses` grid: 1/6 octave from 20 Hz."""

_RIDGE = 1e-6  # least-squares ridge, relative to the mean stem power in each bin


def least_squares_filters(stems: torch.Tensor, mix: torch.Tensor, n_fft: int,
                          block_frames: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-bin least-squares mixing filters: ``Y_c(f, t) ~ sum_i a_ic(f) S_ic(f, t)``.

    Frames are accumulated in blocks, so memory does not grow with the length.

    Args:
        stems: ``(tracks, 2, samples)``, mono stems duplicated on both channels.
        mix: ``(2, samples)``.
        n_fft: STFT size (Hann window, hop ``n_fft / 2``).
        block_frames: STFT frames per accumulation block.

    Returns:
        ``(filters, power)``: complex ``(2, bins, tracks)`` and each stem's energy per
        channel and bin, float64 ``(2, bins, tracks)``.
    """
    tracks, channels, samples = stems.shape
    if channels != 2 or mix.shape != (2, samples):
        raise ValueError(f"expected stems (tracks, 2, samples) and mix (2, samples), "
                         f"got {tuple(stems.shape)} and {tuple(mix.shape)}")
    hop = n_fft // 2
    window = torch.hann_window(n_fft, dtype=torch.float64)
    pad = n_fft - hop
    stems = torch.nn.functional.pad(stems.double(), (pad, pad))
    mix = torch.nn.functional.pad(mix.double(), (pad, pad))
    bins = n_fft // 2 + 1
    gram = torch.zeros(2, bins, tracks, tracks, dtype=torch.complex128)
    cross = torch.zeros(2, bins, tracks, dtype=torch.complex128)
    span = (block_frames - 1) * hop + n_fft
    for start in range(0, stems.shape[-1] - n_fft + 1, block_frames * hop):
        s = torch.stft(stems[..., start:start + span].reshape(2 * tracks, -1), n_fft, hop, window=window,
                       center=False, return_complex=True)
        y = torch.stft(mix[..., start:start + span], n_fft, hop, window=window, center=False, return_complex=True)
        s = s.reshape(tracks, 2, bins, -1).permute(1, 2, 3, 0)  # (2, bins, frames, tracks)
        gram += s.mH @ s
        cross += (s.mH @ y[..., None])[..., 0]
    power = gram.diagonal(dim1=-2, dim2=-1).real
    ridge = _RIDGE * power.mean(-1, keepdim=True) + 1e-30
    filters = torch.linalg.solve(gram + torch.diag_embed(ridge.expand(-1, -1, tracks)).to(gram.dtype), cross)
    return filters, power


def pans_from_filters(filters: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    """Constant-power pan positions from the left/right filter energies.

    A mono source at pan ``p`` feeds ``cos(theta)`` left and ``sin(theta)`` right with
    ``theta = (p + 1) pi / 4`` (`mixdown.dsp.pan`); a stereo source is balanced with the
    same law. Bins are weighted by the stem's energy; a silent stem gets 0.

    Args:
        filters, power: ``(2, bins, tracks)`` from `least_squares_filters`.

    Returns:
        ``(tracks,)`` pan positions in [-1, 1].
    """
    weight = power.sum(0)
    left, right = ((weight * filters[c].abs().pow(2)).sum(0) for c in (0, 1))
    theta = torch.atan2(right.sqrt(), left.sqrt())
    return torch.where(left + right > 0, theta * (4.0 / math.pi) - 1.0, torch.zeros_like(theta))


def band_responses(filters: torch.Tensor, power: torch.Tensor, stereo: torch.Tensor,
                   sample_rate: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each channel's gain-times-EQ power response on a 1/6-octave grid.

    The grid runs from 20 Hz to `mixdown.params.max_design_freq_hz`, the highest band
    frequency the fit may choose.

    Args:
        filters, power: ``(2, bins, tracks)`` from `least_squares_filters`.
        stereo: ``(tracks,)`` bool; the balance law gives stereo stems sqrt(2) per side.
        sample_rate: in Hz.

    Returns:
        ``(response_db, weight, centre_hz)``: ``(tracks, bands)`` response in dB,
        ``(tracks, bands)`` stem energy per band (0 where the stem is silent) and
        ``(bands,)`` energy-centre frequencies.
    """
    n_fft = 2 * (filters.shape[1] - 1)
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate, dtype=torch.float64)
    top = math.floor(OCTAVE_FRACTION * math.log2(max_design_freq_hz(sample_rate) / 20.0))
    edges = 20.0 * 2.0 ** (torch.arange(top + 1, dtype=torch.float64) / OCTAVE_FRACTION)
    band = torch.bucketize(freqs, edges)
    used = torch.unique(band[freqs > 0])
    band = torch.searchsorted(used, band).clamp(max=len(used) - 1)
    band[0] = -1  # DC takes no part
    weight_bins = power.sum(0).T  # (tracks, bins)
    response_bins = filters.abs().pow(2).sum(0).T / torch.where(stereo, 2.0, 1.0)[:, None].double()

    def per_band(values: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(*values.shape[:-1], len(used), dtype=torch.float64)
        return out.index_add_(-1, band[1:], values[..., 1:])

    weight = per_band(weight_bins)
    response = per_band(weight_bins * response_bins) / weight.clamp_min(1e-30)
    centre = per_band(weight_bins.sum(0) * freqs) / per_band(weight_bins.sum(0)).clamp_min(1e-30)
    counts = per_band(torch.ones_like(freqs))
    centre = torch.where(centre > 0, centre, per_band(freqs) / counts)
    return 10.0 * torch.log10(response.clamp_min(1e-20)), weight, centre
