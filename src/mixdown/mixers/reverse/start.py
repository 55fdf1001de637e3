"""Stage 1: the starting settings of the descent, from least squares and projections.

`initial_settings` chains the least-squares filters (pans, gain-times-EQ responses), the
`STANDARD_EQ` curve fit, gentle compressors and `reverb_start`'s common send and decay.
On gain/pan-only mixes this stage alone recovers the settings.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from mixdown.console import ConsoleTensors, channel_strips, mix_buses
from mixdown.dsp.eq import BAND_TYPE_IDS
from mixdown.dsp.reverb import impulse_response, reverb
from mixdown.mixers.reverse.config import COMPRESSOR_OFF_RATIO, ReverseConfig
from mixdown.mixers.reverse.eq_fit import fit_standard_eq
from mixdown.mixers.reverse.least_squares import (
    band_responses,
    least_squares_filters,
    pans_from_filters,
)
from mixdown.multitrack import SILENCE_DBFS
from mixdown.params import SPECS, STANDARD_EQ, CompressorParams, MasterParams

_COMPRESSOR_START = {"ratio": COMPRESSOR_OFF_RATIO, "attack_ms": 10.0, "release_ms": 100.0, "knee_db": 6.0}
_THRESHOLD_BELOW_PEAK_DB = 12.0
_REVERB_START_DB = (-60.0, 0.0)  # range of the initial (common) reverb send
_DECAY_STARTS_S = (0.4, 0.8, 1.6, 3.2)


def _stem_peak_db(stems: torch.Tensor) -> torch.Tensor:
    peak = stems.abs().amax(dim=(-2, -1)).clamp_min(10.0 ** (SILENCE_DBFS / 20.0))
    return 20.0 * torch.log10(peak)


def initial_settings(stems: torch.Tensor, reference: torch.Tensor, stereo: torch.Tensor, sample_rate: int,
                     config: ReverseConfig, ceiling_dbtp: float) -> ConsoleTensors:
    """Least-squares gains and pans, the fitted EQ, gentle compressors, a common send.

    Each channel gets the pan of `pans_from_filters` and the gain and `STANDARD_EQ`
    bands `fit_standard_eq` fits to its `band_responses` (no bands without
    ``config.fit_eq``); with ``config.fit_compressor`` a compressor at
    `COMPRESSOR_OFF_RATIO` whose threshold sits 12 dB under the stem's peak; with
    ``config.fit_reverb`` the common send and decay of `reverb_start`. The master has
    loudness normalisation off, gain 0 dB and the limiter at ``ceiling_dbtp``.

    Args:
        stems: ``(tracks, 2, samples)``, mono stems duplicated on both channels.
        reference: ``(2, samples)``.
        stereo: ``(tracks,)`` bool.
        sample_rate: in Hz.
        config: which processors to fit, and the EQ fit's steps and prior.
        ceiling_dbtp: the master limiter's ceiling (NaN: off).

    Returns:
        Batch-1 settings: channel fields ``(1, tracks)``, band fields
        ``(1, tracks, bands)``, master fields ``(1,)``.
    """
    n_fft = 1 << max(8, round(math.log2(config.ls_window_s * sample_rate)))
    filters, power = least_squares_filters(stems, reference, n_fft)
    pan = pans_from_filters(filters, power)
    response_db, weight, centre = band_responses(filters, power, stereo, sample_rate)
    tracks = stems.shape[0]
    silent = weight.sum(-1) <= 0
    fit = fit_standard_eq(response_db, torch.where(silent[:, None], 1.0, weight), centre, sample_rate,
                          config.eq_fit_steps if config.fit_eq else 0, config.eq_prior_weight,
                          config.eq_polish_steps if config.fit_eq else 0)
    if not config.fit_eq:
        fit = replace(fit, eq_gain_db=torch.zeros_like(fit.eq_gain_db))
    gain = torch.where(silent, 0.0, fit.gain_db)
    batch = lambda t: t[None].float()  # noqa: E731
    band_types = torch.tensor([BAND_TYPE_IDS[t] for t in STANDARD_EQ]).repeat(1, tracks, 1)
    if not config.fit_eq:
        band_types = band_types[..., :0]
    bands = band_types.shape[-1]
    threshold = (_stem_peak_db(stems) - _THRESHOLD_BELOW_PEAK_DB).clamp(SPECS["threshold_db"].minimum, -1.0)
    compressed = config.fit_compressor
    comp = {name: torch.full((1, tracks), value if compressed else getattr(CompressorParams(), name))
            for name, value in _COMPRESSOR_START.items()}
    p = ConsoleTensors(
        gain_db=batch(gain), pan=batch(pan), mute=torch.zeros(1, tracks, dtype=torch.bool), eq_type=band_types,
        eq_freq_hz=batch(fit.freq_hz)[..., :bands], eq_gain_db=batch(fit.eq_gain_db)[..., :bands],
        eq_q=batch(fit.q)[..., :bands],
        threshold_db=batch(threshold) if compressed else torch.zeros(1, tracks), **comp,
        makeup_db=torch.zeros(1, tracks),
        reverb_send_db=torch.full((1, tracks), -math.inf), master_gain_db=torch.zeros(1),
        target_lufs=torch.full((1,), math.nan), ceiling_dbtp=torch.tensor([ceiling_dbtp]),
        reverb_decay_s=torch.tensor([MasterParams().reverb.decay_s]),
        reverb_predelay_ms=torch.tensor([MasterParams().reverb.predelay_ms]), reverb_return_db=torch.zeros(1))
    if config.fit_reverb:
        send_db, decay_s = reverb_start(stems, reference, stereo, p, sample_rate)
        p = replace(p, reverb_send_db=torch.full((1, tracks), send_db), reverb_decay_s=torch.tensor([decay_s]))
    return p


def reverb_start(stems: torch.Tensor, reference: torch.Tensor, stereo: torch.Tensor, p: ConsoleTensors,
                 sample_rate: int) -> tuple[float, float]:
    """The common send level and decay whose wet signal best explains what the dry estimate leaves unexplained.

    The residual ``reference - dry(p)`` is projected (least squares) onto the wet signal
    of every channel sent at 0 dB, for each decay of a small grid; the decay explaining
    the most energy wins.

    Args:
        stems: ``(tracks, 2, samples)``.
        reference: ``(2, samples)``.
        stereo: ``(tracks,)`` bool.
        p: batch-1 dry settings (sends are ignored).
        sample_rate: in Hz.

    Returns:
        ``(send_db, decay_s)``: the send for every channel, within -60..0 dB, and the
        decay; -60 dB at the default decay when no wet signal correlates with the residual.
    """
    with torch.no_grad():
        dry, send = mix_buses(channel_strips(stems[None], p, stereo[None], sample_rate)[0],
                              replace(p, reverb_send_db=torch.zeros_like(p.reverb_send_db)))
        residual = reference - dry[0]
        best = (-math.inf, _REVERB_START_DB[0], MasterParams().reverb.decay_s)
        for decay_s in _DECAY_STARTS_S:
            ir = impulse_response(torch.tensor(decay_s), float(p.reverb_predelay_ms[0]), sample_rate)
            wet = reverb(send, ir.to(send.dtype))[0][0]
            correlation, energy = float((residual * wet).sum()), float(wet.pow(2).sum())
            if correlation > 0.0 and energy > 0.0 and correlation**2 / energy > best[0]:
                send_db = float(np.clip(20.0 * math.log10(correlation / energy), *_REVERB_START_DB))
                best = (correlation**2 / energy, send_db, decay_s)
    return best[1], best[2]


def neutral_settings(p: ConsoleTensors) -> ConsoleTensors:
    """Unity gains, centred, no EQ, compressor or reverb (the ``mono`` baseline); master as ``p``.

    Args:
        p: batch-1 settings.

    Returns:
        Batch-1 settings for the same tracks, with no EQ bands.
    """
    tracks = p.tracks
    zeros = torch.zeros(1, tracks)
    return replace(p, gain_db=zeros, pan=zeros, eq_type=p.eq_type[..., :0], eq_freq_hz=p.eq_freq_hz[..., :0],
                   eq_gain_db=p.eq_gain_db[..., :0], eq_q=p.eq_q[..., :0], threshold_db=zeros,
                   ratio=torch.ones(1, tracks), reverb_send_db=torch.full((1, tracks), -math.inf))
