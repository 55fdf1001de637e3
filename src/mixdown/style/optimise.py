"""Optimised mode: gradient descent through the console on the style distance to a reference.

Start from settings (normally the learned prediction, `mixdown.style.conditioned`) and
move each channel's fader, pan and reverb send and the reverb's decay so that the
mix's `StyleFeatures` approach the reference's (`style_distance`), with Adam, within a
time budget, keeping the best iterate by the objective descended (distance plus the
prior below; the start, where the prior is 0, included: the result is never further
from the reference, by the measured distance, than the start).

Cost. The song is analysed in excerpts at `ANALYSIS_RATE_HZ` (stems ``(excerpts, tracks,
channels, samples)``, from `mixdown.mixers.estimator.EstimatorMixer.analysis_batch`),
so the cost does not grow with the song's length. EQ and compressors are held at the
start's settings: their outputs are computed once, without gradients
(`processed_channels`), and each step only applies faders, pans, the send bus and the
reverb (`mixdown.dsp.pan.pan`, `mixdown.dsp.reverb.reverb`: the console's own
functions) and measures the style of the excerpts, frames pooled. The master (loudness
target, ceiling) is left as it is: the style is loudness-independent.

A weak prior (``prior_weight``) towards the start keeps parameters the style does not
determine (which of two tracks in the same band is louder) near the learned guess.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from mixdown.console import ConsoleTensors
from mixdown.dsp.compressor import compressor
from mixdown.dsp.eq import parametric_eq
from mixdown.dsp.gain import db_to_amplitude
from mixdown.dsp.pan import pan, pan_gains
from mixdown.dsp.reverb import HIGH_BAND_HZ, impulse_response, reverb
from mixdown.params import SPECS, max_design_freq_hz
from mixdown.style.features import (
    ANALYSIS_RATE_HZ,
    HOP,
    BandEnergies,
    StyleFeatures,
    band_fraction_below,
    bands_from_power,
    features_from_energies,
    pool_frames,
    spectrogram,
)
from mixdown.style.loss import StyleLossConfig, style_distance


@dataclass(frozen=True)
class OptimiseConfig:
    """Settings of `optimise_style`.

    Attributes:
        budget_s: wall-clock budget of the descent, in seconds.
        max_steps: most Adam steps.
        gain_step_db, pan_step, send_step_db, decay_step: Adam learning rates of the
            faders (dB), pans, reverb sends (dB) and log reverb decay.
        prior_weight: weight of the mean squared distance to the start (faders and
            sends per 6 dB, pans per 0.5, log decay per 1). 0.2 was chosen among 0.02,
            0.05, 0.1 and 0.2 on 16 songs of a tuning seed (2024, ``audio-styles``
            targets), neither a training nor the held-out seed: weaker priors let the
            descent match the other segment's notes, not its mix (stereo loss to the
            target +14 % better than without a reference at 0.02, +26 % at 0.2).
        loss: weights of the style distance's groups.
    """

    budget_s: float = 15.0
    max_steps: int = 120
    gain_step_db: float = 0.3
    pan_step: float = 0.02
    send_step_db: float = 0.6
    decay_step: float = 0.03
    prior_weight: float = 0.2
    loss: StyleLossConfig = field(default_factory=StyleLossConfig)

    def __post_init__(self) -> None:
        if self.budget_s <= 0 or self.max_steps < 0 or self.prior_weight < 0:
            raise ValueError("budget_s must be > 0, max_steps and prior_weight >= 0")


@dataclass
class OptimiseReport:
    """What the descent did: style distances at the start and of the returned settings, steps, time."""

    start_distance: float
    distance: float
    steps: int
    seconds: float
    history: list[float] = field(default_factory=list)


def processed_channels(stems: torch.Tensor, start: ConsoleTensors, sample_rate: int = ANALYSIS_RATE_HZ) -> torch.Tensor:
    """Every track through its EQ and compressor of ``start`` (no fader, no pan), without gradients.

    Args:
        stems: ``(excerpts, tracks, channels, samples)``.
        start: settings of batch 1 for ``tracks`` tracks (band frequencies over
            `mixdown.params.max_design_freq_hz` of ``sample_rate`` are analysed at that limit).

    Returns:
        ``(excerpts, tracks, channels, samples)`` float64.
    """
    excerpts, tracks, channels, samples = stems.shape
    if start.batch != 1 or start.tracks != tracks:
        raise ValueError(f"settings for ({start.batch}, {start.tracks}) tracks do not fit stems {tuple(stems.shape)}")
    rows = stems.double().reshape(excerpts * tracks, channels, samples)
    each = lambda t: t[0].repeat(excerpts, *([1] * (t.dim() - 2))) if t.dim() > 2 else t[0].repeat(excerpts)  # noqa: E731
    with torch.no_grad():
        freq_hz = start.eq_freq_hz.clamp(max=max_design_freq_hz(sample_rate))  # bands over the analysis Nyquist
        rows, _ = parametric_eq(rows, each(start.eq_type), each(freq_hz), each(start.eq_gain_db),
                                each(start.eq_q), sample_rate)
        rows, _ = compressor(rows, *(each(getattr(start, name)) for name in
                                     ("threshold_db", "ratio", "attack_ms", "release_ms", "knee_db", "makeup_db")),
                             sample_rate)
    return rows.reshape(excerpts, tracks, channels, samples)


def mix_excerpts(processed: torch.Tensor, stereo: torch.Tensor, mute: torch.Tensor, gain_db: torch.Tensor,
                 pan_position: torch.Tensor, send_db: torch.Tensor, decay_s: torch.Tensor, predelay_ms: float,
                 return_db: float, sample_rate: int = ANALYSIS_RATE_HZ) -> torch.Tensor:
    """Faders, pans, sends and reverb on processed channels (the console's post-compressor path).

    Args:
        processed: ``(excerpts, tracks, channels, samples)`` from `processed_channels`.
        stereo, mute: ``(tracks,)`` bool.
        gain_db, pan_position, send_db: ``(tracks,)``.
        decay_s: scalar tensor.

    Returns:
        ``(excerpts, 2, samples)`` mixes, before the master.
    """
    excerpts, tracks, channels, samples = processed.shape
    fader = db_to_amplitude(gain_db) * ~mute
    panned = pan(processed.reshape(excerpts * tracks, channels, samples), pan_position.repeat(excerpts),
                 stereo.repeat(excerpts), gain=fader.repeat(excerpts)).reshape(excerpts, tracks, 2, samples)
    dry = panned.sum(dim=1)
    send = torch.einsum("t,etcn->ecn", db_to_amplitude(send_db).to(panned.dtype), panned)
    ir = impulse_response(decay_s, predelay_ms, sample_rate) * db_to_amplitude(torch.tensor(float(return_db)))
    wet, _ = reverb(send, ir.to(panned.dtype).expand(excerpts, -1, -1))
    return dry + wet


@dataclass
class SpectralChannels:
    """The processed channels of `processed_channels` as STFTs, for the fast style model.

    Attributes:
        left, right: ``(excerpts, tracks, bins, frames)`` complex spectra of what each
            track feeds the left and the right side (a mono track's one channel twice).
        stereo: ``(tracks,)`` bool.
    """

    left: torch.Tensor
    right: torch.Tensor
    stereo: torch.Tensor

    @classmethod
    def from_processed(cls, processed: torch.Tensor, stereo: torch.Tensor) -> SpectralChannels:
        spectra = spectrogram(processed.float())  # (excerpts, tracks, channels, bins, frames)
        left = spectra[:, :, 0]
        right = torch.where(stereo[None, :, None, None], spectra[:, :, -1], left)
        return cls(left, right, stereo)


def _reverb_lag_gains(decay_s: torch.Tensor, predelay_ms: float, frames: int,
                      sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy the reverb passes per frame of lag, ``(low, high)`` each ``(frames,)``.

    The console's response (`mixdown.dsp.reverb.impulse_response`) is unit-energy noise
    whose band under `HIGH_BAND_HZ` decays as ``exp(-r t)`` and the band over it as
    ``exp(-2 r t)``, ``r = 3 ln 10 / decay_s``. Its power gain at lag frame ``k`` (lags
    ``[(k - 1/2) HOP, (k + 1/2) HOP)`` after the pre-delay) is the envelope's energy there
    over the response's energy per unit bandwidth; geometric sums keep it exact and
    differentiable in ``decay_s``.
    """
    rate = 3.0 * math.log(10.0) / decay_s.double()
    low_fraction = HIGH_BAND_HZ / (sample_rate / 2.0)
    predelay = round(predelay_ms * sample_rate / 1000.0)
    edges = (torch.arange(frames + 1, dtype=torch.float64) - 0.5) * HOP - predelay
    edges = edges.clamp(min=0.0)

    def gains(decay_per_sample: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = torch.exp(-2.0 * decay_per_sample)  # energy ratio per sample
        chunk = (q ** edges[:-1] - q ** edges[1:]) / (1.0 - q)
        return chunk, 1.0 / (1.0 - q)

    low, low_total = gains(rate / sample_rate)
    high, high_total = gains(2.0 * rate / sample_rate)
    total = low_fraction * low_total + (1.0 - low_fraction) * high_total
    return low / total, high / total


def _causal_conv(power: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``power (..., frames)`` convolved with ``kernel (frames,)`` along frames, causally, same length."""
    frames = power.shape[-1]
    flat = power.reshape(-1, 1, frames)
    out = torch.nn.functional.conv1d(torch.nn.functional.pad(flat, (frames - 1, 0)),
                                     kernel.flip(0).to(power.dtype)[None, None])
    return out.reshape(power.shape)


def spectral_style_energies(channels: SpectralChannels, mute: torch.Tensor, gain_db: torch.Tensor,
                            pan_position: torch.Tensor, send_db: torch.Tensor, decay_s: torch.Tensor,
                            predelay_ms: float, return_db: float,
                            sample_rate: int = ANALYSIS_RATE_HZ) -> BandEnergies:
    """Band energies of the excerpts' mixes from the channels' spectra (the fast style model).

    Faders and pans are linear, so the dry mix's spectrum is exact (the STFT of the sum
    is the sum of the STFTs). The reverb's output is modelled by its energy: the send
    bus's band power convolved over frames with the response's energy per lag
    (`_reverb_lag_gains`), split equally between mid and side (the response's left and
    right are independent noises) and added to the dry powers (dry and wet are
    uncorrelated). `tests/test_style.py` checks the model against rendering.

    Returns:
        `BandEnergies` of batch ``excerpts``.
    """
    dtype = channels.left.real.dtype
    gains = pan_gains(pan_position, channels.stereo) * (db_to_amplitude(gain_db) * ~mute)[:, None]  # (tracks, 2)
    gains = gains.to(dtype)
    left = torch.einsum("t,etfn->efn", gains[:, 0].to(channels.left.dtype), channels.left)
    right = torch.einsum("t,etfn->efn", gains[:, 1].to(channels.left.dtype), channels.right)
    mid_spectrum, side_spectrum = (left + right) * 0.5, (left - right) * 0.5
    mid, side = mid_spectrum.abs() ** 2, side_spectrum.abs() ** 2
    cross = mid_spectrum.real * side_spectrum.real + mid_spectrum.imag * side_spectrum.imag
    send = db_to_amplitude(send_db).to(dtype)
    send_left = torch.einsum("t,etfn->efn", (gains[:, 0] * send).to(channels.left.dtype), channels.left)
    send_right = torch.einsum("t,etfn->efn", (gains[:, 1] * send).to(channels.left.dtype), channels.right)
    send_power = send_left.abs() ** 2 + send_right.abs() ** 2  # both sides: each reaches its own response
    dry = bands_from_power(mid, side, cross, sample_rate)
    nothing = torch.zeros_like(send_power)
    sent = bands_from_power(send_power, nothing, nothing, sample_rate)
    low, high = _reverb_lag_gains(decay_s, predelay_ms, mid.shape[-1], sample_rate)
    coarse_below, fine_below = band_fraction_below(HIGH_BAND_HZ, sample_rate)
    level = float(10.0 ** (return_db / 10.0))

    def wet(power: torch.Tensor, below: torch.Tensor) -> torch.Tensor:  # power (excerpts, bands, frames)
        shaped = below.to(dtype)[:, None] * _causal_conv(power, low) + \
            (1.0 - below.to(dtype))[:, None] * _causal_conv(power, high)
        return 0.25 * level * shaped  # half of each side's power to mid, half to side, of two sides' halves

    coarse_wet = wet(sent.coarse[:, 0], coarse_below)
    fine_wet = wet(sent.fine, fine_below)
    no_cross = torch.zeros_like(coarse_wet)  # the two sides' responses are independent
    return BandEnergies(dry.coarse + torch.stack([coarse_wet, coarse_wet, no_cross], dim=1), dry.fine + 2.0 * fine_wet)


def optimise_style(stems: torch.Tensor, stereo: torch.Tensor, start: ConsoleTensors, reference: StyleFeatures,
                   config: OptimiseConfig = OptimiseConfig(),
                   progress: Callable[[float, float], None] | None = None) -> tuple[ConsoleTensors, OptimiseReport]:
    """Settings near ``start`` whose mix's style is closest to ``reference`` (see the module docstring).

    Args:
        stems: ``(excerpts, tracks, channels, samples)`` at `ANALYSIS_RATE_HZ`.
        stereo: ``(tracks,)`` bool, True for genuinely stereo stems.
        start: settings of batch 1.
        reference: the reference's style (batch 1).
        config: budget, steps and weights.
        progress: called with ``(seconds spent, budget)``.

    Returns:
        ``(settings, report)``: ``start`` with the best faders, pans, sends and decay found.
    """
    began = time.perf_counter()
    channels = SpectralChannels.from_processed(processed_channels(stems, start), stereo)
    reference = StyleFeatures(*(getattr(reference, name).float() for name in
                                ("spectrum_db", "balance_db", "crest_db", "floor_db", "width",
                                                              "side_balance")))
    gain0, pan0, send0 = (getattr(start, name)[0].double() for name in ("gain_db", "pan", "reverb_send_db"))
    decay0 = start.reverb_decay_s[0].double()
    sends_on = torch.isfinite(send0)
    mute = start.mute[0]
    d_gain, d_pan, d_send, d_decay = (torch.zeros_like(gain0, requires_grad=True), torch.zeros_like(pan0,
                                      requires_grad=True), torch.zeros_like(send0, requires_grad=True),
                                      torch.zeros((), dtype=torch.float64, requires_grad=True))
    optimiser = torch.optim.Adam([{"params": [d_gain], "lr": config.gain_step_db},
                                  {"params": [d_pan], "lr": config.pan_step},
                                  {"params": [d_send], "lr": config.send_step_db},
                                  {"params": [d_decay], "lr": config.decay_step}])
    gain_spec, send_spec, decay_spec = SPECS["gain_db"], SPECS["reverb_send_db"], SPECS["reverb_decay_s"]

    def settings() -> tuple[torch.Tensor, ...]:
        gain = (gain0 + d_gain).clamp(gain_spec.minimum, gain_spec.maximum)
        pan_position = (pan0 + d_pan).clamp(-1.0, 1.0)
        send = torch.where(sends_on, (torch.where(sends_on, send0, 0.0) + d_send).clamp(send_spec.minimum,
                                                                                          send_spec.maximum), send0)
        decay = (decay0 * torch.exp(d_decay)).clamp(decay_spec.minimum, decay_spec.maximum)
        return gain, pan_position, send, decay

    def distance() -> torch.Tensor:
        gain, pan_position, send, decay = settings()
        energies = spectral_style_energies(channels, mute, gain, pan_position, send, decay,
                                           float(start.reverb_predelay_ms[0]), float(start.reverb_return_db[0]))
        features = features_from_energies(pool_frames(energies, energies.fine.shape[0]))
        return style_distance(features, reference, config.loss)

    best = None
    history: list[float] = []
    steps = 0
    for step in range(config.max_steps + 1):
        optimiser.zero_grad()
        style = distance()
        prior = ((d_gain / 6.0) ** 2).mean() + ((d_pan / 0.5) ** 2).mean() + d_decay ** 2 \
            + ((torch.where(sends_on, d_send, 0.0) / 6.0) ** 2).mean()
        objective = style + config.prior_weight * prior
        value = float(style.detach())
        history.append(value)
        if best is None or float(objective.detach()) < best[0]:
            best = (float(objective.detach()), value, *(t.detach().clone() for t in settings()))
        elapsed = time.perf_counter() - began
        if progress is not None:
            progress(min(elapsed, config.budget_s), config.budget_s)
        if step == config.max_steps or elapsed >= config.budget_s:
            break
        objective.backward()
        for t in (d_gain, d_pan, d_send, d_decay):
            if t.grad is not None:
                t.grad = torch.nan_to_num(t.grad, nan=0.0, posinf=0.0, neginf=0.0)
        optimiser.step()
        steps += 1
    assert best is not None
    _, best_distance, gain, pan_position, send, decay = best
    dtype = start.gain_db.dtype
    result = replace(start, gain_db=gain[None].to(dtype), pan=pan_position[None].to(dtype),
                     reverb_send_db=send[None].to(dtype), reverb_decay_s=decay[None].to(dtype))
    report = OptimiseReport(history[0], best_distance, steps, time.perf_counter() - began, history)
    if not math.isfinite(report.distance):
        return start, replace(report, distance=report.start_distance)
    return result, report
