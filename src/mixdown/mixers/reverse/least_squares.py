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

from mixdown.mixers.reverse.reverb_fit import nonnegative_least_squares
from mixdown.params import max_design_freq_hz

OCTAVE_FRACTION = 6
"""`band_responses` grid: 1/6 octave from 20 Hz."""

_RIDGE = 1e-6  # least-squares ridge, relative to the mean stem power in each bin

MODEL_PRECISION = 1e-4
"""Floor of `least_squares_filters`' residual energy relative to the mix's in a bin (-40 dB): how exactly a
product per STFT bin models a channel's filters (the console's IIR filters and a Hann window of
``ls_window_s``); it bounds the weight `band_information` gives a bin the stems explain perfectly."""


def least_squares_filters(stems: torch.Tensor, mix: torch.Tensor, n_fft: int,
                          block_frames: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-bin least-squares mixing filters: ``Y_c(f, t) ~ sum_i a_ic(f) S_ic(f, t)``.

    Frames are accumulated in blocks, so memory does not grow with the length. The
    residual energy ``sum_t |Y_c - sum_i a_ic S_ic|^2`` comes from the same sums
    (``Y^H Y - 2 Re(a^H S^H Y) + a^H S^H S a``), floored at `MODEL_PRECISION` of the mix's
    energy in the bin: a product per bin over STFT frames models a channel's filter no more
    exactly than that, however well the stems explain the mix.

    Args:
        stems: ``(tracks, 2, samples)``, mono stems duplicated on both channels.
        mix: ``(2, samples)``.
        n_fft: STFT size (Hann window, hop ``n_fft / 2``).
        block_frames: STFT frames per accumulation block.

    Returns:
        ``(filters, power, residual)``: complex ``(2, bins, tracks)``, each stem's energy
        per channel and bin, float64 ``(2, bins, tracks)``, and the residual energy per
        channel and bin, float64 ``(2, bins)`` (> 0).
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
    mix_energy = torch.zeros(2, bins, dtype=torch.float64)
    span = (block_frames - 1) * hop + n_fft
    for start in range(0, stems.shape[-1] - n_fft + 1, block_frames * hop):
        s = torch.stft(stems[..., start:start + span].reshape(2 * tracks, -1), n_fft, hop, window=window,
                       center=False, return_complex=True)
        y = torch.stft(mix[..., start:start + span], n_fft, hop, window=window, center=False, return_complex=True)
        s = s.reshape(tracks, 2, bins, -1).permute(1, 2, 3, 0)  # (2, bins, frames, tracks)
        gram += s.mH @ s
        cross += (s.mH @ y[..., None])[..., 0]
        mix_energy += y.abs().pow(2).sum(-1)
    power = gram.diagonal(dim1=-2, dim2=-1).real
    ridge = _RIDGE * power.mean(-1, keepdim=True) + 1e-30
    filters = torch.linalg.solve(gram + torch.diag_embed(ridge.expand(-1, -1, tracks)).to(gram.dtype), cross)
    fitted = (gram @ filters[..., None])[..., 0]  # S^H S a
    explained = (filters.conj() * (2.0 * cross - fitted)).sum(-1).real
    residual = (mix_energy - explained).clamp_min(MODEL_PRECISION * mix_energy + 1e-30)
    return filters, power, residual


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


def band_of_bins(n_fft: int, sample_rate: int) -> tuple[torch.Tensor, int]:
    """The `band_responses` grid: each rfft bin's band (-1 for DC) and the number of bands.

    The grid is 1/`OCTAVE_FRACTION` octave from 20 Hz to `mixdown.params.max_design_freq_hz`
    (the highest band frequency the fit may choose), bands without a bin left out.
    """
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate, dtype=torch.float64)
    top = math.floor(OCTAVE_FRACTION * math.log2(max_design_freq_hz(sample_rate) / 20.0))
    edges = 20.0 * 2.0 ** (torch.arange(top + 1, dtype=torch.float64) / OCTAVE_FRACTION)
    band = torch.bucketize(freqs, edges)
    used = torch.unique(band[freqs > 0])
    band = torch.searchsorted(used, band).clamp(max=len(used) - 1)
    band[0] = -1  # DC takes no part
    return band, len(used)


def incoherent_power(stems: torch.Tensor, mix: torch.Tensor, filters: torch.Tensor, sample_rate: int,
                     block_frames: int = 64) -> torch.Tensor:
    """Each channel's power in the mix that its own waveform does not explain, per `band_of_bins` band.

    The filters explain only the part of a stem that is *coherent* with the mix. An
    instrument that renders differently every time (free-running noise, random phases:
    a drum synthesiser's hi-hat, a pad) is in the mix as another realisation of the same
    sound, so least squares keeps only the share of it the two realisations have in
    common and the rest is left in the residual ``R_c = Y_c - sum_i a_ic S_ic``. Its
    power is modelled, frame by frame and band by band, as the stems' powers with
    non-negative weights, ``|R(b, t)|^2 ~ sum_i x_i(b) |S_i(b, t)|^2`` (both output
    channels summed; independent sounds add in power), solved by non-negative least
    squares per band. For a stem in the mix at gain ``g`` whose realisation there has
    correlation ``rho`` with its file, ``|a|^2 = rho^2 g^2`` and ``x`` restores the rest,
    ``(1 - rho^2) g^2`` (in `band_responses`' units).

    Args:
        stems: ``(tracks, 2, samples)``, mono stems duplicated on both channels.
        mix: ``(2, samples)``.
        filters: ``(2, bins, tracks)`` from `least_squares_filters` (same ``n_fft``).
        sample_rate: in Hz.
        block_frames: STFT frames per block, as `least_squares_filters`.

    Returns:
        float64 ``(tracks, bands)`` the weights ``x``, 0 where nothing is left over
        (`band_responses` takes them in its units).
    """
    tracks = stems.shape[0]
    n_fft = 2 * (filters.shape[1] - 1)
    hop = n_fft // 2
    band, bands = band_of_bins(n_fft, sample_rate)
    keep = band >= 0
    window = torch.hann_window(n_fft, dtype=torch.float64)
    pad = n_fft - hop
    stems = torch.nn.functional.pad(stems.double(), (pad, pad))
    mix = torch.nn.functional.pad(mix.double(), (pad, pad))
    gram = torch.zeros(bands, tracks, tracks, dtype=torch.float64)
    cross = torch.zeros(bands, tracks, dtype=torch.float64)
    span = (block_frames - 1) * hop + n_fft
    for start in range(0, stems.shape[-1] - n_fft + 1, block_frames * hop):
        s = torch.stft(stems[..., start:start + span].reshape(2 * tracks, -1), n_fft, hop, window=window,
                       center=False, return_complex=True).reshape(tracks, 2, n_fft // 2 + 1, -1)
        y = torch.stft(mix[..., start:start + span], n_fft, hop, window=window, center=False, return_complex=True)
        residual = y - (filters.permute(2, 0, 1)[..., None] * s).sum(0)  # (2, bins, frames)
        frames = y.shape[-1]
        stem_power = torch.zeros(tracks, bands, frames, dtype=torch.float64).index_add_(
            1, band[keep], (s.real.square() + s.imag.square()).sum(1)[:, keep])
        left = torch.zeros(bands, frames, dtype=torch.float64).index_add_(
            0, band[keep], (residual.real.square() + residual.imag.square()).sum(0)[keep])
        gram += torch.einsum("ibt,jbt->bij", stem_power, stem_power)
        cross += torch.einsum("ibt,bt->bi", stem_power, left)
    ridge = _RIDGE * gram.diagonal(dim1=-2, dim2=-1).mean(-1)  # (bands,): collinear stems stay solvable
    gram = gram + torch.diag_embed(ridge[:, None].expand(-1, tracks))
    out = torch.zeros(tracks, bands, dtype=torch.float64)
    for b in range(bands):
        out[:, b] = torch.from_numpy(nonnegative_least_squares(gram[b].numpy(), cross[b].numpy()))
    return out


def band_responses(filters: torch.Tensor, power: torch.Tensor, stereo: torch.Tensor, sample_rate: int,
                   incoherent: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each channel's gain-times-EQ power response on a 1/6-octave grid (`band_of_bins`).

    Args:
        filters, power: ``(2, bins, tracks)`` from `least_squares_filters`.
        stereo: ``(tracks,)`` bool; the balance law gives stereo stems sqrt(2) per side.
        sample_rate: in Hz.
        incoherent: ``(tracks, bands)`` `incoherent_power`, added to the filters' power
            (a mono stem's fed to both output channels, whose summed power it is, counts
            twice: its file's power is on both of ``stems``' channels). None: nothing added.

    Returns:
        ``(response_db, weight, centre_hz)``: ``(tracks, bands)`` response in dB,
        ``(tracks, bands)`` stem energy per band (0 where the stem is silent) and
        ``(bands,)`` energy-centre frequencies.
    """
    n_fft = 2 * (filters.shape[1] - 1)
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate, dtype=torch.float64)
    band, bands = band_of_bins(n_fft, sample_rate)
    weight_bins = power.sum(0).T  # (tracks, bins)
    response_bins = filters.abs().pow(2).sum(0).T / torch.where(stereo, 2.0, 1.0)[:, None].double()

    def per_band(values: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(*values.shape[:-1], bands, dtype=torch.float64)
        return out.index_add_(-1, band[1:], values[..., 1:])

    weight = per_band(weight_bins)
    response = per_band(weight_bins * response_bins) / weight.clamp_min(1e-30)
    centre = per_band(weight_bins.sum(0) * freqs) / per_band(weight_bins.sum(0)).clamp_min(1e-30)
    counts = per_band(torch.ones_like(freqs))
    centre = torch.where(centre > 0, centre, per_band(freqs) / counts)
    if incoherent is not None:
        response = response + incoherent * torch.where(stereo, 1.0, 2.0)[:, None].double()
    return 10.0 * torch.log10(response.clamp_min(1e-20)), weight, centre


def band_information(filters: torch.Tensor, power: torch.Tensor, residual: torch.Tensor,
                     sample_rate: int) -> torch.Tensor:
    """How precisely each band of `band_responses` is measured: the inverse variance of its response in dB, up to
    a common factor.

    In bin ``k`` and output channel ``c`` the least-squares filter of a stem with energy
    ``P_ic`` has variance ``R_c / P_ic`` (``R_c`` the residual energy; stems that overlap
    in a bin raise it, which this leaves out), so its power response ``|a_ic|^2`` in dB
    has a variance proportional to ``R_c / (|a_ic|^2 P_ic)``: the inverse of the
    channel's signal-to-residual ratio there. Independent bins and channels add their
    information, so a band's weight is ``sum_{k in band, c} |a_ic|^2 P_ic / R_c``. A
    band where the stem is quiet but alone is measured as well as a loud one; one where
    it is masked by what the stems do not explain counts little.

    Args:
        filters, power, residual: from `least_squares_filters`.
        sample_rate: in Hz.

    Returns:
        float64 ``(tracks, bands)`` on `band_responses`' grid, >= 0.
    """
    n_fft = 2 * (filters.shape[1] - 1)
    band, bands = band_of_bins(n_fft, sample_rate)
    ratio = (filters.abs().pow(2) * power / residual[..., None]).sum(0).T  # (tracks, bins)
    out = torch.zeros(ratio.shape[0], bands, dtype=torch.float64)
    return out.index_add_(-1, band[1:], ratio[..., 1:])
