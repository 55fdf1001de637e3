"""Stages 1 and 2: the start of the refinement, from least squares, energies and gain tracks.

`initial_settings` chains the least-squares filters (pans, gain-times-EQ responses) and
the `STANDARD_EQ` curve fit (stage 1), then, with the channels' static contributions
in hand, the reverb (`reverb_fit.fit_reverb`: sends, decay and pre-delay from the
energy the dry estimate leaves over) and the compressors (`dynamics`: each channel's
gain over time, and the compressor that explains it, or none). On gain/pan-only mixes
stage 1 alone recovers the settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from typing import NamedTuple

import torch

from mixdown.console import (
    ConsoleTensors,
    channel_strips,
    mix_buses,
    reverb_impulse_responses,
)
from mixdown.dsp.eq import BAND_TYPE_IDS, parametric_eq
from mixdown.dsp.reverb import reverb
from mixdown.mixers.reverse.config import MIN_COHERENT_SHARE, ReverseConfig
from mixdown.mixers.reverse.dynamics import (
    COMPRESSOR_PARAMS,
    CompressorFit,
    fit_compressor,
    frame_gains,
)
from mixdown.mixers.reverse.eq_fit import EQFit, fit_standard_eq, torch_threads
from mixdown.mixers.reverse.least_squares import (
    band_information,
    band_responses,
    incoherent_power,
    least_squares_filters,
    pans_from_filters,
)
from mixdown.mixers.reverse.refine import limiter_gain_mask
from mixdown.mixers.reverse.reverb_fit import ReverbFit, fit_reverb
from mixdown.params import SPECS, STANDARD_EQ, CompressorParams, MasterParams


def contributions(stems: torch.Tensor, p: ConsoleTensors, stereo: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Each channel's dry contribution to the mix bus, ``(tracks, 2, samples)`` (no reverb, no limiter)."""
    with torch.no_grad():
        return channel_strips(stems[None], p, stereo[None], sample_rate)[0][0]


def wet(parts: torch.Tensor, p: ConsoleTensors, sample_rate: int) -> torch.Tensor:
    """The reverb return ``(2, samples)`` of dry contributions ``parts`` under ``p``'s sends."""
    if not bool(torch.isfinite(p.reverb_send_db).any()):
        return torch.zeros_like(parts[0])
    with torch.no_grad():
        _, send = mix_buses(parts[None], p)
        return reverb(send, reverb_impulse_responses(p, sample_rate).to(send.dtype))[0][0]


class Start(NamedTuple):
    """What `initial_settings` returns.

    Attributes:
        settings: batch-1 settings.
        reverb: the reverb fit (None without ``config.fit_reverb``).
        compressors: per channel, the compressor fit (None without ``config.fit_compressor``).
        coherence_db: float64 ``(tracks,)``, <= 0: each channel's level that its own waveform
            explains (the least-squares filters) against its level in the mix (filters and
            `incoherent_power`), the bands weighted by the stem's energy; 0 dB for a stem that
            is in the mix sample for sample, far under for one that renders differently
            every time (its waveform then fits only that share of it).
        held: ``(tracks,)`` bool, channels that the waveform cannot refine: that share is
            under `MIN_COHERENT_SHARE`.
        dry: the stage-1 settings ``settings`` were made from (the dry start ``choose`` kept:
            no compressor, no reverb).

    ``coherence_db`` and ``held`` are 0 dB and False where the start without `incoherent_power` was kept.
    """

    settings: ConsoleTensors
    reverb: ReverbFit | None
    compressors: list[CompressorFit] | None
    coherence_db: torch.Tensor
    held: torch.Tensor
    dry: ConsoleTensors


def initial_settings(stems: torch.Tensor, reference: torch.Tensor, stereo: torch.Tensor, sample_rate: int,
                     config: ReverseConfig, ceiling_dbtp: float,
                     choose: Callable[[list[ConsoleTensors]], int] | None = None) -> Start:
    """Least-squares gains, pans and EQ, then the reverb and the compressors (see the module docstring).

    Each channel gets the pan of `pans_from_filters` and the gain and `STANDARD_EQ`
    bands `fit_standard_eq` fits to its `band_responses` (no bands without
    ``config.fit_eq``), each band weighted by the stem's energy in it or, where neither
    compressors nor reverb are fitted, by how precisely it is measured
    (`band_information`, the inverse variance of its response: bands where a stem is
    quiet but alone then pin its shelves, and so its fader, as well as its loud ones;
    with dynamics in the mix, the residual holds each stem's own compression, which
    that variance does not model, so its energy weights it): two starts, the responses
    of the filters alone (the waveform each stem explains) and with `incoherent_power` added (each stem's level in the
    mix, for stems the mix holds as another rendering); ``choose`` picks one (by the
    reported loss in `mixdown.mixers.reverse.fit`; None: the filters alone). With
    ``config.fit_reverb``, the sends, decay and pre-delay of `fit_reverb`; with
    ``config.fit_compressor``, a compressor where `fit_compressor` keeps one (its
    fader corrected by the fit's constant), the neutral compressor elsewhere (`fit`
    fits the reverb again once the refinement has placed the dry channels). The master
    has loudness normalisation off, gain 0 dB and the limiter at ``ceiling_dbtp``; the
    limiter's gain on the estimated mix is applied to the contributions the reverb and
    the gain tracks are measured from.

    Args:
        stems: ``(tracks, 2, samples)``, mono stems duplicated on both channels.
        reference: ``(2, samples)``.
        stereo: ``(tracks,)`` bool.
        sample_rate: in Hz.
        config: which processors to fit, and the EQ fit's steps and prior.
        ceiling_dbtp: the master limiter's ceiling (NaN: off).
        choose: given the two dry starts (batch-1 settings), the index of the one to keep.

    Returns:
        The settings (batch-1: channel fields ``(1, tracks)``, band fields
        ``(1, tracks, bands)``, master fields ``(1,)``) and the fits that made them.
    """
    n_fft = 1 << max(8, round(math.log2(config.ls_window_s * sample_rate)))
    filters, power, residual = least_squares_filters(stems, reference, n_fft)
    pan = pans_from_filters(filters, power)
    coherent_db, weight, centre = band_responses(filters, power, stereo, sample_rate)
    information = band_information(filters, power, residual, sample_rate)
    tracks = stems.shape[0]
    silent = weight.sum(-1) <= 0
    coherence, held = torch.ones(tracks, dtype=torch.float64), torch.zeros(tracks, dtype=torch.bool)
    responses = [coherent_db]
    if choose is not None:
        responses.append(band_responses(filters, power, stereo, sample_rate,
                                        incoherent_power(stems, reference, filters, sample_rate))[0])
    # A linear console: each band as precisely as it is measured. With dynamics to fit, by the stem's energy
    # (the residual then holds each stem's own compression, which `band_information` does not model).
    linear = not (config.fit_compressor or config.fit_reverb)
    measured = torch.where((information.sum(-1) > 0)[:, None], information, weight) if linear else weight
    weights = torch.where(silent[:, None], 1.0, measured).repeat(len(responses), 1)
    with torch_threads(1):  # both starts in one batch
        fits = fit_standard_eq(torch.cat(responses), weights, centre, sample_rate,
                               config.eq_fit_steps if config.fit_eq else 0, config.eq_prior_weight,
                               config.eq_polish_steps if config.fit_eq else 0)
    part = lambda k: EQFit(*(getattr(fits, f.name)[k * tracks:(k + 1) * tracks]  # noqa: E731
                             for f in dataclass_fields(fits)))
    starts = [_dry_settings(part(k), pan, silent, config.fit_eq, ceiling_dbtp) for k in range(len(responses))]
    p = starts[0]
    if choose is not None and choose(starts) == 1:
        p = starts[1]
        energy = lambda db: (weight * 10.0 ** (db / 10.0)).sum(-1)  # noqa: E731
        coherence = torch.where(silent, 1.0, energy(coherent_db) / energy(responses[1]))
        held = coherence < MIN_COHERENT_SHARE
    coherence_db = 10.0 * torch.log10(coherence)
    reverb_fit, compressor_fits, dry = None, None, p
    if not (config.fit_reverb or config.fit_compressor):
        return Start(p, reverb_fit, compressor_fits, coherence_db, held, dry)
    parts = contributions(stems, p, stereo, sample_rate).double()
    reference = reference.double()
    if config.fit_reverb:
        reverb_fit = reverb_of(parts, reference, p, ceiling_dbtp, sample_rate)
        p = with_reverb(p, reverb_fit)
    if config.fit_compressor:
        mask = limiter_gain_mask(parts.sum(0) + wet(parts, p, sample_rate), ceiling_dbtp, sample_rate)
        p, compressor_fits = compressors(stems, reference, stereo, p, mask * parts, sample_rate)
    return Start(p, reverb_fit, compressor_fits, coherence_db, held, dry)


def _dry_settings(fit: EQFit, pan: torch.Tensor, silent: torch.Tensor, fit_eq: bool,
                  ceiling_dbtp: float) -> ConsoleTensors:
    """Batch-1 settings of a stage-1 fit: its faders and EQ (none without ``fit_eq``), ``pan`` ``(tracks,)``,
    no compressor or reverb, the master without normalisation and with the limiter at ``ceiling_dbtp``."""
    tracks = len(pan)
    gain = fader_in_range(torch.where(silent, 0.0, fit.gain_db))
    batch = lambda t: t[None].float()  # noqa: E731
    band_types = torch.tensor([BAND_TYPE_IDS[t] for t in STANDARD_EQ]).repeat(1, tracks, 1)
    if not fit_eq:
        band_types = band_types[..., :0]
    bands = band_types.shape[-1]
    neutral = CompressorParams()
    return ConsoleTensors(
        gain_db=batch(gain), pan=batch(pan), mute=torch.zeros(1, tracks, dtype=torch.bool), eq_type=band_types,
        eq_freq_hz=batch(fit.freq_hz)[..., :bands], eq_gain_db=batch(fit.eq_gain_db)[..., :bands],
        eq_q=batch(fit.q)[..., :bands],
        **{name: torch.full((1, tracks), float(getattr(neutral, name))) for name in (*COMPRESSOR_PARAMS, "makeup_db")},
        reverb_send_db=torch.full((1, tracks), -math.inf), master_gain_db=torch.zeros(1),
        target_lufs=torch.full((1,), math.nan), ceiling_dbtp=torch.tensor([ceiling_dbtp]),
        reverb_decay_s=torch.tensor([MasterParams().reverb.decay_s]),
        reverb_predelay_ms=torch.tensor([MasterParams().reverb.predelay_ms]), reverb_return_db=torch.zeros(1))


def stage_variants(start: Start) -> list[ConsoleTensors]:
    """The start with and without its reverb, the compressors kept as `fit_compressor` chose them.

    The reverb fit explains the energy the dry estimate leaves over; on a real mix that
    leftover is also energy the console cannot model (instruments that render
    differently every time, the producer's own effects), which a reverb send then soaks
    up. `mixdown.mixers.reverse.fit` keeps the variant whose whole render has the lowest
    reported loss. The compressors are not chosen that way: each one was kept on the
    waveform because it explains a share of its channel that no constant gain does
    (`dynamics.explained_shares`), and its grid-start settings are only where the
    refinement begins, so a start without them can score lower before the refinement
    and still be the wrong model (a compressor dropped here is never refined). Only the
    refinement can tell a poor grid start from a wrong model, so where ``start.dry`` (the
    same start without compressors or reverb) scores lower, `fit` refines it as well and
    keeps the better result by the reported loss.

    Args:
        start: `initial_settings`' result.

    Returns:
        Distinct batch-1 settings: ``start.settings`` without sends first, then with them
        where a reverb was fitted.
    """
    full = start.settings
    dry = replace(full, reverb_send_db=torch.full_like(full.reverb_send_db, -math.inf))
    return [dry] if start.reverb is None else [dry, full]


def reverb_of(parts: torch.Tensor, reference: torch.Tensor, p: ConsoleTensors, ceiling_dbtp: float,
               sample_rate: int) -> ReverbFit:
    """`fit_reverb` on the contributions under the limiter's gain of their estimated mix."""
    mask = limiter_gain_mask(parts.sum(0) + wet(parts, p, sample_rate), ceiling_dbtp, sample_rate)
    return fit_reverb(mask * parts, reference - mask * parts.sum(0), sample_rate)


def with_reverb(p: ConsoleTensors, fit: ReverbFit) -> ConsoleTensors:
    return replace(p, reverb_send_db=fit.send_db[None].float(), reverb_decay_s=torch.tensor([fit.decay_s]),
                   reverb_predelay_ms=torch.tensor([fit.predelay_ms]))


def compressors(stems: torch.Tensor, reference: torch.Tensor, stereo: torch.Tensor, p: ConsoleTensors,
                static: torch.Tensor, sample_rate: int) -> tuple[ConsoleTensors, list[CompressorFit]]:
    """Choose a compressor per channel (`dynamics`) and set the ones kept.

    Args:
        stems: ``(tracks, 2, samples)``.
        reference: ``(2, samples)``.
        stereo: ``(tracks,)`` bool.
        p: batch-1 settings without compressors.
        static: ``(tracks, 2, samples)`` the channels' uncompressed contributions under
            the limiter's gain.
        sample_rate: in Hz.

    Returns:
        ``p`` with the compressors kept (ratio above 1) and their faders corrected, and
        every channel's fit.
    """
    tracks = frame_gains(static, reference)
    with torch.no_grad():
        inputs, _ = parametric_eq(stems.float(), p.eq_type[0], p.eq_freq_hz[0], p.eq_gain_db[0], p.eq_q[0],
                                  sample_rate)
    values = {name: getattr(p, name).clone() for name in (*COMPRESSOR_PARAMS, "gain_db")}
    fits = []
    for i in range(p.tracks):
        with torch_threads(1):
            fit = fit_compressor(inputs[i, :2 if bool(stereo[i]) else 1].numpy(), static, reference, tracks, i,
                                 sample_rate)
        fits.append(fit)
        if not fit.on:
            continue
        for name in COMPRESSOR_PARAMS:
            values[name][0, i] = fit.settings[name]
        values["gain_db"][0, i] = fader_in_range(values["gain_db"][0, i] + fit.gain_db)
    return replace(p, **values), fits


def fader_in_range(gain_db: torch.Tensor) -> torch.Tensor:
    """Faders clamped to the schema's range: a stem far quieter in its file than in the mix (a real
    producer's +28 dB on a quiet sample) is fitted at the highest fader, its level shortfall left to the fit."""
    return gain_db.clamp(SPECS["gain_db"].minimum, SPECS["gain_db"].maximum)


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


def gain_offset_db(model: torch.Tensor, reference: torch.Tensor) -> float:
    """The common gain (dB) that brings ``model`` closest to ``reference`` (least squares), 0 if silent."""
    energy = float(model.double().pow(2).sum())
    cross = float((model.double() * reference.double()).sum())
    return 20.0 * math.log10(cross / energy) if energy > 0 and cross > 0 else 0.0
