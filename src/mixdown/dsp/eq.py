"""Parametric EQ: a cascade of RBJ biquads (high/low-pass, shelves, peaking bands).

Coefficients follow R. Bristow-Johnson, "Cookbook formulae for audio EQ biquad filter
coefficients" (the Audio EQ Cookbook, W3C note 2021), with the bandwidth given as Q.
They are torch functions of frequency, gain and Q, so gradients reach every band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from mixdown.dsp.iir import biquad, biquad_cascade
from mixdown.params import EQ_BAND_TYPES, EQBand

BYPASS = -1
"""Band type id of an empty slot: passes the signal unchanged."""

BAND_TYPE_IDS = {name: i for i, name in enumerate(EQ_BAND_TYPES)}


def biquad_coefficients(band_type: torch.Tensor, freq_hz: torch.Tensor, gain_db: torch.Tensor,
                        q: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """RBJ biquad coefficients, normalised so that ``a0 = 1``.

    Args:
        band_type: integer ids ``(...)`` from `BAND_TYPE_IDS`, or `BYPASS`.
        freq_hz: centre / corner frequency ``(...)``.
        gain_db: band gain ``(...)`` (ignored by the pass filters).
        q: quality factor ``(...)``.
        sample_rate: in Hz.

    Returns:
        ``(b, a)``, each ``(..., 3)``.
    """
    w0 = 2.0 * math.pi * freq_hz / sample_rate
    cos, alpha = torch.cos(w0), torch.sin(w0) / (2.0 * q)
    amp = torch.pow(10.0, gain_db / 40.0)
    sqrt_amp_alpha = 2.0 * torch.sqrt(amp) * alpha
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)

    shapes = {
        "peak": ((1 + alpha * amp, -2 * cos, 1 - alpha * amp), (1 + alpha / amp, -2 * cos, 1 - alpha / amp)),
        "low_shelf": (
            (amp * ((amp + 1) - (amp - 1) * cos + sqrt_amp_alpha), 2 * amp * ((amp - 1) - (amp + 1) * cos),
             amp * ((amp + 1) - (amp - 1) * cos - sqrt_amp_alpha)),
            ((amp + 1) + (amp - 1) * cos + sqrt_amp_alpha, -2 * ((amp - 1) + (amp + 1) * cos),
             (amp + 1) + (amp - 1) * cos - sqrt_amp_alpha),
        ),
        "high_shelf": (
            (amp * ((amp + 1) + (amp - 1) * cos + sqrt_amp_alpha), -2 * amp * ((amp - 1) + (amp + 1) * cos),
             amp * ((amp + 1) + (amp - 1) * cos - sqrt_amp_alpha)),
            ((amp + 1) - (amp - 1) * cos + sqrt_amp_alpha, 2 * ((amp - 1) - (amp + 1) * cos),
             (amp + 1) - (amp - 1) * cos - sqrt_amp_alpha),
        ),
        "highpass": (((1 + cos) / 2, -(1 + cos), (1 + cos) / 2), (1 + alpha, -2 * cos, 1 - alpha)),
        "lowpass": (((1 - cos) / 2, 1 - cos, (1 - cos) / 2), (1 + alpha, -2 * cos, 1 - alpha)),
    }
    b = torch.stack([one, zero, zero], dim=-1)
    a = torch.stack([one, zero, zero], dim=-1)
    for name, (b_terms, a_terms) in shapes.items():
        a0 = a_terms[0]
        b_norm = torch.stack([t / a0 for t in b_terms], dim=-1)
        a_norm = torch.stack([one, a_terms[1] / a0, a_terms[2] / a0], dim=-1)
        chosen = (band_type == BAND_TYPE_IDS[name])[..., None]
        b = torch.where(chosen, b_norm, b)
        a = torch.where(chosen, a_norm, a)
    return b, a


def frequency_response(b: torch.Tensor, a: torch.Tensor, freqs_hz: torch.Tensor,
                       sample_rate: int) -> torch.Tensor:
    """Complex response ``B(e^jw) / A(e^jw)`` of biquads ``(..., 3)`` at ``freqs_hz (F,)`` -> ``(..., F)``."""
    w = 2.0 * math.pi * freqs_hz.to(torch.float64) / sample_rate
    z_inv = torch.exp(-1j * w)[:, None] ** torch.arange(3, dtype=torch.float64)  # (F, 3)
    num = (b.to(torch.complex128)[..., None, :] * z_inv).sum(-1)
    den = (a.to(torch.complex128)[..., None, :] * z_inv).sum(-1)
    return num / den


RESPONSE_FLOOR_DB = -300.0
"""`eq_response_db` floors the power of each band's numerator and denominator here, so a
zero of the band (a high-pass at DC) gives a finite, very negative gain."""


def eq_response_db(band_type: torch.Tensor, freq_hz: torch.Tensor, gain_db: torch.Tensor, q: torch.Tensor,
                   sample_rate: int, at_hz: torch.Tensor) -> torch.Tensor:
    """Magnitude response in dB of a cascade of biquad bands, at the frequencies ``at_hz``.

    The bands' coefficients are those `parametric_eq` filters with (`biquad_coefficients`),
    so this is the console's response, not an analog approximation of it:
    ``sum_k 10 log10(|B_k(e^jw)|^2 / |A_k(e^jw)|^2)`` with ``w = 2 pi at_hz / sample_rate``,
    where each ``|C(e^jw)|^2 = Re^2 + Im^2`` is evaluated from its real and imaginary
    parts, ``Re = c0 + c1 cos w + c2 cos 2w`` and ``Im = c1 sin w + c2 sin 2w``, as
    ``scipy.signal.freqz`` evaluates it (complex arithmetic written out in reals). Real
    arithmetic throughout, so it is differentiable in every band parameter and works in
    float32 as in float64. Empty slots (`BYPASS`) and an empty band list give 0 dB;
    ``|B|^2`` and ``|A|^2`` are floored at `RESPONSE_FLOOR_DB`.

    Accuracy (float64): equal to ``scipy.signal.freqz`` of the same coefficients to 1e-8
    dB over the schema's ranges (`tests/test_dsp.py`). (The expanded form
    ``c0^2 + c1^2 + c2^2 + 2 (c0 c1 + c1 c2) cos w + 2 c0 c2 cos 2w`` used before lost
    up to 0.013 dB at 20-30 Hz next to high-Q bands near 10 Hz.)

    Args:
        band_type: integer ids ``(..., bands)`` from `BAND_TYPE_IDS`, or `BYPASS`.
        freq_hz: centre / corner frequencies ``(..., bands)``.
        gain_db: band gains ``(..., bands)`` (ignored by the pass filters).
        q: quality factors ``(..., bands)``.
        sample_rate: in Hz.
        at_hz: ``(F,)`` frequencies to evaluate, in Hz (under Nyquist).

    Returns:
        ``(..., F)``: the cascade's gain in dB at each frequency, in the dtype of the
        band parameters.

    Shape:
        The leading dimensions ``...`` of the four band tensors must broadcast together.
    """
    if at_hz.dim() != 1:
        raise ValueError(f"expected frequencies at_hz of shape (F,), got {tuple(at_hz.shape)}")
    b, a = biquad_coefficients(band_type, freq_hz, gain_db, q, sample_rate)
    return _biquad_power_db(b, a, at_hz, sample_rate).sum(-2)


def band_list_response_db(bands: Sequence[EQBand], at_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    """`eq_response_db` of one channel's EQ as written in its settings.

    Args:
        bands: the channel's EQ bands (empty: flat).
        at_hz: ``(F,)`` frequencies in Hz, each under Nyquist.
        sample_rate: in Hz.

    Returns:
        float64 ``(F,)`` gains in dB.
    """
    response = eq_response_db(torch.tensor([BAND_TYPE_IDS[band.type] for band in bands], dtype=torch.long),
                              torch.tensor([band.freq_hz for band in bands], dtype=torch.float64),
                              torch.tensor([band.gain_db for band in bands], dtype=torch.float64),
                              torch.tensor([band.q for band in bands], dtype=torch.float64), sample_rate,
                              torch.from_numpy(np.asarray(at_hz, dtype=np.float64)))
    return response.numpy()


def _biquad_power_db(b: torch.Tensor, a: torch.Tensor, at_hz: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """``20 log10 |B/A|`` of biquads ``(..., 3)`` at ``at_hz (F,)`` -> ``(..., F)``, from real and imaginary parts."""
    w = 2.0 * math.pi * at_hz.to(b.dtype) / sample_rate
    cos1, cos2, sin1, sin2 = torch.cos(w), torch.cos(2.0 * w), torch.sin(w), torch.sin(2.0 * w)

    def power(c: torch.Tensor) -> torch.Tensor:
        c0, c1, c2 = (c[..., i, None] for i in range(3))
        return (c0 + c1 * cos1 + c2 * cos2).square() + (c1 * sin1 + c2 * sin2).square()

    floor = 10.0 ** (RESPONSE_FLOOR_DB / 10.0)
    return 10.0 * torch.log10(power(b).clamp_min(floor) / power(a).clamp_min(floor))


def is_identity(b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """True where a biquad ``(..., 3)`` passes the signal unchanged (bypass, or 0 dB bell/shelf)."""
    return (b == a).all(dim=-1)


def parametric_eq(x: torch.Tensor, band_type: torch.Tensor, freq_hz: torch.Tensor, gain_db: torch.Tensor,
                  q: torch.Tensor, sample_rate: int,
                  state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run each row of ``x`` through its own cascade of biquad bands.

    With autograd on, bands are chained one `biquad` at a time (whole signals only);
    without, all bands run in one fused pass that skips bands set to unity (bypass, or
    0 dB bells and shelves), carrying ``state`` between blocks.

    Args:
        x: ``(rows, channels, samples)``.
        band_type, freq_hz, gain_db, q: ``(rows, bands)``.
        sample_rate: in Hz.
        state: ``(rows, active_bands, channels, 2)`` from the previous block, or None.

    Returns:
        ``(y, state)``: ``(rows, channels, samples)`` and the state to carry (None in
        autograd mode).
    """
    b, a = biquad_coefficients(band_type.long(), freq_hz.double(), gain_db.double(), q.double(), sample_rate)
    if torch.is_grad_enabled():
        for k in range(band_type.shape[1]):
            x, _ = biquad(x, b[:, k], a[:, k])
        return x, None
    active = ~is_identity(b, a).all(dim=0)  # bands that do something on some row
    if not bool(active.any()):
        return x, state
    return biquad_cascade(x, b[:, active], a[:, active], state)
