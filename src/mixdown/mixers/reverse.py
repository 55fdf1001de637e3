"""Reverse engineering of a mix: console settings that reproduce a given stereo mix.

Given the stems and a stereo mix made from them, find the `ConsoleParams` whose render
matches the mix. Two stages:

1. **Least squares** (after D. Barchiesi and J. Reiss, "Reverse engineering of a mix",
   JAES 58(7/8), 2010, who estimate each track's mixing filters by least squares). In
   every STFT bin the mix is modelled as a linear combination of the stems,
   ``Y_c(f, t) = sum_i a_ic(f) S_ic(f, t)`` for output channels ``c`` = L, R, and the
   complex filters ``a_ic(f)`` are solved for by (ridge-regularised) least squares.
   Their left/right energy ratio gives the constant-power pan, their magnitude the
   channel's gain times its EQ response, to which the `STANDARD_EQ` strip (high-pass,
   low shelf, bell, high shelf) is fitted on a 1/6-octave grid (a few starting
   frequencies for the bell). On gain/pan-only mixes this stage alone recovers the
   settings.
2. **Gradient descent through the console** (in the spirit of J. T. Colonel and J. Reiss'
   DDSP reverse engineering of mixes, JASA 2021): Adam on every channel's gain, pan,
   EQ, compressor and reverb send and on the reverb decay, through the differentiable
   `mixdown.console.render_tensor`, minimising `StereoLoss` (sum/difference MR-STFT plus
   a small time-domain L1 term, which also fixes the left/right orientation the STFT
   terms cannot see) on random excerpts. Each parameter lives in its normalised range
   through a sigmoid (``SPECS[name].denormalize(sigmoid(logit))``), so every iterate is a
   valid setting. The learning rate halves when the smoothed loss stops improving, and
   the fit stops when it has been halved `ReverseConfig.lr_reductions` times, after
   ``steps`` steps or after ``time_budget_s`` seconds.

What a mix does not determine, and how it is fixed:

* Loudness normalisation makes a common gain offset unobservable. The fit runs with
  normalisation off, so the faders absorb the master's gain: rendered without
  normalisation the estimate already sits at the reference's level. The returned
  ``master.target_lufs`` is the reference's measured loudness (None outside the
  accepted range), so the render matches it exactly and edits keep that loudness.
  Compare faders with a reference's *effective* gains (fader + makeup + the
  normaliser's gain), as `benchmarks/reverse_speed.py` does.
* ``master.ceiling_dbtp`` is the reference's true peak (when within range): the
  estimate never peaks above the reference, and a limited reference's limiting is
  reproduced. The limiter is applied in the fit with a constant gain (no gradient).
* Compressor makeup is the same as fader gain, and the reverb return is the same as a
  common offset of all sends: makeup stays 0 dB and the return 0 dB. The pre-delay is
  not differentiable (whole samples) and stays at its default. High-pass and shelf Q
  stay at 0.707; the bell's Q is fitted.
* Where a shelf covers all of a stem's spectrum, its gain and the fader are
  interchangeable; a weak prior towards 0 dB EQ picks the smallest EQ.
* A compressor whose fitted ratio stays under `COMPRESSOR_OFF_RATIO` is returned off.

`ReverseEngineer` needs the reference mix, so it is not a `Mixer` and is not in
`mixdown.mixers.MIXERS` (whose ``predict`` takes stems only); evaluation calls
``fit(multitrack, reference)`` with the target mix.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from mixdown.audio import load_audio, probe_audio
from mixdown.console import (
    ConsoleTensors,
    channel_strips,
    mix_buses,
    render_tensor,
    reverb_impulse_responses,
)
from mixdown.data.targets import STANDARD_EQ
from mixdown.dsp.eq import BAND_TYPE_IDS, biquad_coefficients
from mixdown.dsp.limiter import limit, true_peak_dbtp
from mixdown.dsp.loudness import integrated_loudness
from mixdown.dsp.reverb import impulse_response, reverb
from mixdown.errors import AudioError, MixdownError
from mixdown.losses import StereoLoss, StereoLossConfig
from mixdown.multitrack import SILENCE_DBFS, Multitrack
from mixdown.params import SPECS, CompressorParams, ConsoleParams, MasterParams, ParamSpec, clamp_freq_hz

ProgressCallback = Callable[[int, int], None]
"""Called with ``(step, max_steps)`` after each optimisation step."""

MAX_LENGTH_MISMATCH_S = 2.0
"""`load_reference` pads or trims a reference whose length is off by at most this; more is an error."""

COMPRESSOR_OFF_RATIO = 1.1
"""Compressors start at this ratio (barely compressing); those the descent did not push higher are returned off."""

SHELF_Q = 0.707
_PEAK_BAND = STANDARD_EQ.index("peak")
_PEAK_STARTS_HZ = (100.0, 300.0, 900.0, 2500.0, 7000.0)
_EQ_START_HZ = {"highpass": 20.0, "low_shelf": 150.0, "peak": 1000.0, "high_shelf": 6000.0}
_EQ_PRIOR_DB = 9.0  # scale (dB) of the weak prior on EQ gains
_JACOBIAN_STEP = 1e-6  # central-difference step of the EQ fit, in logit units
_OCTAVE_FRACTION = 6  # EQ fit grid: 1/6 octave from 20 Hz
_RIDGE = 1e-6  # least-squares ridge, relative to the mean stem power in each bin
_COMPRESSOR_START = {"ratio": COMPRESSOR_OFF_RATIO, "attack_ms": 10.0, "release_ms": 100.0, "knee_db": 6.0}
_THRESHOLD_BELOW_PEAK_DB = 12.0
_REVERB_START_DB = (-60.0, 0.0)  # range of the initial (common) reverb send
_DECAY_STARTS_S = (0.4, 0.8, 1.6, 3.2)
_BALANCE = ("gain_db", "pan", "eq_freq_hz", "eq_gain_db", "eq_q")  # fields moved at balance_learning_rate
_EMA = 0.9  # smoothing of the training loss for plateau detection


@dataclass(frozen=True)
class ReverseConfig:
    """How the settings are searched for.

    Attributes:
        steps: most Adam steps through the console (0 keeps the least-squares estimate).
        excerpt_s: length of the random excerpt compared at each step, in seconds.
        preroll_s: audio rendered before each excerpt (not compared) so the reverb
            tail and the filter and compressor states are warmed up.
        learning_rate: Adam step size (logit units) of the compressor and reverb settings.
        balance_learning_rate: Adam step size of gain, pan and EQ, which the least-squares
            stage already places well. Smaller, because Adam's normalised steps turn the
            excerpt-to-excerpt noise along directions the mix does not determine (gain
            versus a shelf) into a random walk.
        plateau_steps: steps without a relative improvement of ``min_improvement``
            in the smoothed loss before the learning rate halves.
        min_improvement: relative improvement that counts.
        lr_reductions: halvings after which the fit has converged and stops.
        time_budget_s: stop the descent after this many seconds (None: no limit).
        seed: seeds the choice of excerpts.
        max_analysis_s: longer songs are analysed on their central excerpt of this length.
        fit_eq: fit the `STANDARD_EQ` strip (else the channels get no EQ).
        fit_compressor: fit a compressor on every channel.
        fit_reverb: fit reverb sends and decay (else the sends are off).
        eq_fit_steps: Adam steps of the least-squares EQ curve fit.
        eq_polish_steps: Levenberg-Marquardt steps that finish the EQ curve fit.
        eq_prior_weight: weight of the prior pulling EQ gains towards 0 dB: the curve
            fit adds ``w * sum((eq_gain_db / 9)^2)`` per channel to its error in dB^2,
            the descent ``w * mean((eq_gain_db / 9)^2)`` to the loss. It only decides
            where the mix cannot (gain versus a shelf covering a stem's whole spectrum).
        ls_window_s: STFT window of the least-squares stage (rounded to a power of 2).
        loss: the loss compared at each step.
    """

    steps: int = 300
    excerpt_s: float = 2.5
    preroll_s: float = 0.5
    learning_rate: float = 0.03
    balance_learning_rate: float = 0.005
    plateau_steps: int = 25
    min_improvement: float = 0.002
    lr_reductions: int = 3
    time_budget_s: float | None = None
    seed: int = 0
    max_analysis_s: float = 60.0
    fit_eq: bool = True
    fit_compressor: bool = True
    fit_reverb: bool = True
    eq_fit_steps: int = 100
    eq_polish_steps: int = 20
    eq_prior_weight: float = 0.03
    ls_window_s: float = 0.093
    loss: StereoLossConfig = field(default_factory=lambda: StereoLossConfig(time_l1_weight=1.0))

    def __post_init__(self) -> None:
        if min(self.steps, self.eq_fit_steps, self.eq_polish_steps) < 0:
            raise MixdownError(f"steps must be >= 0, got {self.steps}, {self.eq_fit_steps} and "
                               f"{self.eq_polish_steps}")
        if self.excerpt_s <= 0.0 or self.preroll_s < 0.0 or self.max_analysis_s <= 0.0:
            raise MixdownError("excerpt_s and max_analysis_s must be > 0 and preroll_s >= 0")
        if self.time_budget_s is not None and self.time_budget_s <= 0.0:
            raise MixdownError(f"time_budget_s must be > 0, got {self.time_budget_s}")
        if min(self.learning_rate, self.balance_learning_rate) <= 0.0 or self.plateau_steps < 1 \
                or self.lr_reductions < 0:
            raise MixdownError("learning rates must be > 0, plateau_steps >= 1 and lr_reductions >= 0")


@dataclass(frozen=True)
class ReverseReport:
    """How a fit went. Losses are `StereoLoss` of whole renders of the analysed audio,
    loudness-matched to the reference.

    Attributes:
        neutral_loss: of unity gains, centred, unprocessed (the ``mono`` baseline).
        initial_loss: after the least-squares stage.
        final_loss: of the returned settings.
        steps: descent steps taken.
        least_squares_s: wall time until the descent starts (checks, least squares, EQ
            fit, starting compressor and reverb settings, the first two losses).
        seconds: wall time of the whole fit.
        converged: the descent stopped on a plateau (not on ``steps`` or the budget).
        losses: smoothed training loss after each step.
    """

    neutral_loss: float
    initial_loss: float
    final_loss: float
    steps: int
    least_squares_s: float
    seconds: float
    converged: bool
    losses: tuple[float, ...]


# --- stage 1: least squares ----------------------------------------------------------------------


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
    """Constant-power pan positions ``(tracks,)`` from the left/right filter energies.

    A mono source at pan ``p`` feeds ``cos(theta)`` left and ``sin(theta)`` right with
    ``theta = (p + 1) pi / 4`` (`mixdown.dsp.pan`); a stereo source is balanced with the
    same law. Bins are weighted by the stem's energy; a silent stem gets 0.
    """
    weight = power.sum(0)
    left, right = ((weight * filters[c].abs().pow(2)).sum(0) for c in (0, 1))
    theta = torch.atan2(right.sqrt(), left.sqrt())
    return torch.where(left + right > 0, theta * (4.0 / math.pi) - 1.0, torch.zeros_like(theta))


def band_responses(filters: torch.Tensor, power: torch.Tensor, stereo: torch.Tensor,
                   sample_rate: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each channel's gain-times-EQ power response on a 1/6-octave grid.

    Args:
        filters, power: from `least_squares_filters`.
        stereo: ``(tracks,)`` bool; the balance law gives stereo stems sqrt(2) per side.
        sample_rate: in Hz.

    Returns:
        ``(response_db, weight, centre_hz)``: ``(tracks, bands)`` response in dB,
        ``(tracks, bands)`` stem energy per band (0 where the stem is silent) and
        ``(bands,)`` energy-centre frequencies.
    """
    n_fft = 2 * (filters.shape[1] - 1)
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate, dtype=torch.float64)
    top = math.floor(_OCTAVE_FRACTION * math.log2(0.45 * sample_rate / 20.0))
    edges = 20.0 * 2.0 ** (torch.arange(top + 1, dtype=torch.float64) / _OCTAVE_FRACTION)
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


def _logit(unit: torch.Tensor) -> torch.Tensor:
    unit = unit.clamp(1e-4, 1.0 - 1e-4)
    return torch.log(unit) - torch.log1p(-unit)


def _freq_spec(sample_rate: int) -> ParamSpec:
    """`SPECS["freq_hz"]` capped under Nyquist."""
    return replace(SPECS["freq_hz"], maximum=clamp_freq_hz(SPECS["freq_hz"].maximum, sample_rate))


def _biquad_power_db(b: torch.Tensor, a: torch.Tensor, freqs_hz: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """``20 log10 |B/A|`` of biquads ``(..., 3)`` at ``freqs_hz (F,)`` -> ``(..., F)``, real arithmetic."""
    w = 2.0 * math.pi * freqs_hz / sample_rate
    cos1, cos2 = torch.cos(w), torch.cos(2.0 * w)

    def power(c: torch.Tensor) -> torch.Tensor:
        c = c[..., None, :]
        return (c.pow(2).sum(-1) + 2.0 * (c[..., 0] * c[..., 1] + c[..., 1] * c[..., 2]) * cos1
                + 2.0 * c[..., 0] * c[..., 2] * cos2)

    return 10.0 * torch.log10(power(b).clamp_min(1e-30) / power(a).clamp_min(1e-30))


@dataclass(frozen=True)
class EQFit:
    """Per-channel gain and `STANDARD_EQ` bands from the least-squares responses.

    Attributes:
        gain_db: ``(tracks,)``.
        freq_hz, eq_gain_db, q: ``(tracks, bands)`` in `STANDARD_EQ` order.
        error_db2: ``(tracks,)`` weighted mean squared error of the fit in dB^2.
    """

    gain_db: torch.Tensor
    freq_hz: torch.Tensor
    eq_gain_db: torch.Tensor
    q: torch.Tensor
    error_db2: torch.Tensor


def _levenberg_marquardt(residuals: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor,
                         iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``sum(residuals(theta)^2, -1)`` for a batch of independent problems.

    Levenberg-Marquardt with Marquardt's diagonal scaling and per-problem damping
    (K. Madsen, H. B. Nielsen and O. Tingleff, "Methods for non-linear least squares
    problems", 2004, sec. 3.2); the Jacobian is taken by central
    differences, one parameter at a time in every problem at once.

    Args:
        residuals: ``(..., params) -> (..., residuals)``, each problem depending only on
            its own row.
        theta: ``(..., params)`` starting point.
        iterations: trial steps (a rejected step raises the damping and costs one).

    Returns:
        ``(theta, residuals(theta))`` at the best point found.
    """
    residual = residuals(theta)
    cost = residual.pow(2).sum(-1)
    damping = torch.full_like(cost, 1e-3)
    basis = _JACOBIAN_STEP * torch.eye(theta.shape[-1], dtype=theta.dtype)
    for _ in range(iterations):
        jacobian = torch.stack([(residuals(theta + step) - residuals(theta - step)) / (2.0 * _JACOBIAN_STEP)
                                for step in basis], dim=-1)
        normal = jacobian.mT @ jacobian
        scale = torch.diag_embed(normal.diagonal(dim1=-2, dim2=-1).clamp_min(1e-12))
        step = torch.linalg.solve(normal + damping[..., None, None] * scale, -(jacobian.mT @ residual[..., None]))
        trial = theta + step[..., 0]
        trial_residual = residuals(trial)
        trial_cost = trial_residual.pow(2).sum(-1)
        better = trial_cost < cost  # False for NaN: a failed step is rejected
        theta = torch.where(better[..., None], trial, theta)
        residual = torch.where(better[..., None], trial_residual, residual)
        cost = torch.where(better, trial_cost, cost)
        damping = torch.where(better, damping / 3.0, damping * 4.0).clamp(1e-12, 1e8)
    return theta, residual


def fit_standard_eq(response_db: torch.Tensor, weight: torch.Tensor, centre_hz: torch.Tensor,
                    sample_rate: int, steps: int, prior_weight: float, polish_steps: int = 20) -> EQFit:
    """Fit gain + `STANDARD_EQ` to measured responses (weighted least squares in dB).

    High-pass and shelves keep Q 0.707 (the high-pass's gain is unused); the bell starts
    from each of a few frequencies and the best start is kept per channel. Each start
    is a small nonlinear least-squares problem whose high-pass cutoff, shelf frequency
    and shelf gain trade off along a curved valley: Adam (``steps``) finds the valley
    but, preconditioning each parameter on its own, crawls along it, so
    `_levenberg_marquardt` (``polish_steps``), which follows the valley through the
    Gauss-Newton curvature, finishes the fit. All parameters live in their ranges
    through a sigmoid.

    Args:
        response_db, weight: ``(tracks, bands)`` from `band_responses`.
        centre_hz: ``(bands,)``.
        sample_rate: in Hz.
        steps: Adam steps.
        prior_weight: weight of ``sum(eq_gain_db^2) / 9^2`` (prefers small EQ where
            gain and EQ are interchangeable).
        polish_steps: Levenberg-Marquardt iterations after Adam.

    Returns:
        The fit (float64 tensors).
    """
    tracks = response_db.shape[0]
    starts = len(_PEAK_STARTS_HZ)
    bands = len(STANDARD_EQ)
    norm_weight = weight / weight.sum(-1, keepdim=True).clamp_min(1e-30)
    broadband = 10.0 * torch.log10((norm_weight * 10.0 ** (response_db / 10.0)).sum(-1).clamp_min(1e-20))
    freq_spec = _freq_spec(sample_rate)
    start_hz = torch.tensor([_EQ_START_HZ[t] for t in STANDARD_EQ], dtype=torch.float64).repeat(starts, tracks, 1)
    start_hz[..., _PEAK_BAND] = torch.tensor(_PEAK_STARTS_HZ, dtype=torch.float64)[:, None]
    start_hz = start_hz.clamp(max=freq_spec.maximum)
    types = torch.tensor([BAND_TYPE_IDS[t] for t in STANDARD_EQ]).expand(starts, tracks, -1)
    with_gain = torch.tensor([t != "highpass" for t in STANDARD_EQ])
    gains = int(with_gain.sum())
    gain_slot = torch.where(with_gain, torch.cumsum(with_gain, 0), 0)  # band -> its gain (0: none, 0 dB)
    # theta (starts, tracks, 1 + bands + gains + 1): logits of gain, band frequencies, band gains, bell Q.
    theta = torch.cat([
        _logit(SPECS["gain_db"].normalize(broadband.clamp(-79.0, 23.0))).repeat(starts, 1)[..., None],
        _logit(freq_spec.normalize(start_hz)),
        torch.zeros(starts, tracks, gains, dtype=torch.float64),
        _logit(SPECS["q"].normalize(torch.full((starts, tracks, 1), 1.0, dtype=torch.float64))),
    ], dim=-1)
    sqrt_weight = norm_weight.sqrt()

    def physical(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        gain, freq, eq_gain, q = torch.split(torch.sigmoid(theta), [1, bands, gains, 1], dim=-1)
        eq_gain = torch.cat([torch.zeros_like(eq_gain[..., :1]), SPECS["eq_gain_db"].denormalize(eq_gain)],
                            dim=-1)[..., gain_slot]
        q = torch.cat([torch.full_like(freq[..., :_PEAK_BAND], SHELF_Q), SPECS["q"].denormalize(q),
                       torch.full_like(freq[..., _PEAK_BAND + 1:], SHELF_Q)], dim=-1)
        return SPECS["gain_db"].denormalize(gain[..., 0]), freq_spec.denormalize(freq), eq_gain, q

    def residuals(theta: torch.Tensor) -> torch.Tensor:
        """``(starts, tracks, bands_of_response + bands)``: weighted dB misfit, then the prior's terms."""
        gain, freq, eq_gain, q = physical(theta)
        b, a = biquad_coefficients(types, freq, eq_gain, q, sample_rate)
        model = gain[..., None] + _biquad_power_db(b, a, centre_hz, sample_rate).sum(-2)
        return torch.cat([(model - response_db) * sqrt_weight, math.sqrt(prior_weight) * eq_gain / _EQ_PRIOR_DB],
                         dim=-1)

    theta.requires_grad_(True)
    optimizer = torch.optim.Adam([theta], lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        residuals(theta).pow(2).sum().backward()
        optimizer.step()
    with torch.no_grad():
        theta, residual = _levenberg_marquardt(residuals, theta.detach(), polish_steps)
        best = residual.pow(2).sum(-1).argmin(0)
        pick = lambda t: t[best, torch.arange(tracks)]  # noqa: E731
        gain, freq, eq_gain, q = (pick(t) for t in physical(theta))
        error = pick(residual[..., :response_db.shape[-1]].pow(2).sum(-1))
    return EQFit(gain, freq, eq_gain, q, error)


# --- stage 2: descent through the console --------------------------------------------------------


class ConsoleFit(torch.nn.Module):
    """Console settings with some entries free: ``value = spec.denormalize(sigmoid(logit))``.

    Args:
        start: the starting settings (batch 1); entries not learned keep these values.
        learned: ``{field of ConsoleTensors: (spec, mask)}``; ``mask`` (shaped like the
            field) marks the entries to learn.
    """

    def __init__(self, start: ConsoleTensors, learned: dict[str, tuple[ParamSpec, torch.Tensor]]):
        super().__init__()
        self.start = start
        self.specs = {name: spec for name, (spec, _) in learned.items()}
        self.masks = {name: mask for name, (_, mask) in learned.items()}
        self.logits = torch.nn.ParameterDict({
            name: torch.nn.Parameter(_logit(spec.normalize(getattr(start, name).double())).float())
            for name, (spec, _) in learned.items()})

    def forward(self) -> ConsoleTensors:
        """The current settings."""
        values = {name: torch.where(self.masks[name], self.specs[name].denormalize(torch.sigmoid(logit)),
                                    getattr(self.start, name))
                  for name, logit in self.logits.items()}
        return replace(self.start, **values)


def _stem_peak_db(stems: torch.Tensor) -> torch.Tensor:
    peak = stems.abs().amax(dim=(-2, -1)).clamp_min(10.0 ** (SILENCE_DBFS / 20.0))
    return 20.0 * torch.log10(peak)


def _initial_tensors(stems: torch.Tensor, reference: torch.Tensor, stereo: torch.Tensor, sample_rate: int,
                     config: ReverseConfig, ceiling_dbtp: float) -> ConsoleTensors:
    """Stage 1: least-squares gains and pans, the fitted EQ, gentle compressors, a common send."""
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
        send_db, decay_s = _reverb_start(stems, reference, stereo, p, sample_rate)
        p = replace(p, reverb_send_db=torch.full((1, tracks), send_db), reverb_decay_s=torch.tensor([decay_s]))
    return p


def _reverb_start(stems: torch.Tensor, reference: torch.Tensor, stereo: torch.Tensor, p: ConsoleTensors,
                  sample_rate: int) -> tuple[float, float]:
    """``(send_db, decay_s)``: the common send level and decay whose wet signal best explains what
    the dry estimate leaves unexplained (least-squares projection, decay from a grid)."""
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


def _learned(p: ConsoleTensors, config: ReverseConfig, sample_rate: int) -> dict[str, tuple[ParamSpec, torch.Tensor]]:
    """Which entries of the starting settings the descent moves, with their ranges."""
    every = lambda t: torch.ones_like(t, dtype=torch.bool)  # noqa: E731
    learned = {"gain_db": (SPECS["gain_db"], every(p.gain_db)), "pan": (SPECS["pan"], every(p.pan))}
    if config.fit_eq:
        learned |= {
            "eq_freq_hz": (_freq_spec(sample_rate), every(p.eq_freq_hz)),
            "eq_gain_db": (SPECS["eq_gain_db"], (p.eq_type != BAND_TYPE_IDS["highpass"])),
            "eq_q": (SPECS["q"], p.eq_type == BAND_TYPE_IDS["peak"]),
        }
    if config.fit_compressor:
        learned |= {name: (SPECS[name], every(getattr(p, name)))
                    for name in ("threshold_db", "ratio", "attack_ms", "release_ms", "knee_db")}
    if config.fit_reverb:
        learned |= {"reverb_send_db": (SPECS["reverb_send_db"], every(p.reverb_send_db)),
                    "reverb_decay_s": (SPECS["decay_s"], every(p.reverb_decay_s))}
    return learned


def _matched_loss(loss: StereoLoss, stems: torch.Tensor, reference: torch.Tensor, stereo: torch.Tensor,
                  p: ConsoleTensors, sample_rate: int) -> float:
    """Loss of the render normalised to the reference's loudness (so level offsets do not count)."""
    loudness = integrated_loudness(reference[None].double(), sample_rate).float()
    with torch.no_grad():
        mix = render_tensor(stems[None], replace(p, target_lufs=loudness), stereo[None], sample_rate)
        return float(loss(mix, reference[None]))


def _neutral(p: ConsoleTensors) -> ConsoleTensors:
    """Unity gains, centred, no EQ, compressor or reverb; master as ``p``."""
    tracks = p.tracks
    zeros = torch.zeros(1, tracks)
    return replace(p, gain_db=zeros, pan=zeros, eq_type=p.eq_type[..., :0], eq_freq_hz=p.eq_freq_hz[..., :0],
                   eq_gain_db=p.eq_gain_db[..., :0], eq_q=p.eq_q[..., :0], threshold_db=zeros,
                   ratio=torch.ones(1, tracks), reverb_send_db=torch.full((1, tracks), -math.inf))


def _render_unnormalised(stems: torch.Tensor, p: ConsoleTensors, stereo: torch.Tensor,
                         sample_rate: int) -> torch.Tensor:
    """`render_tensor` without loudness normalisation, mono stems processed as one channel.

    Args:
        stems: ``(tracks, 2, samples)``, mono stems duplicated (only their left is used).
        p: batch-1 settings with ``target_lufs`` off.
        stereo: ``(tracks,)`` bool.

    Returns:
        ``(1, 2, samples)``, equal to ``render_tensor``'s output (checked in the tests)
        at half the channel-strip cost for mono stems.
    """
    parts, order = [], []
    for index, width in ((torch.nonzero(~stereo).flatten(), 1), (torch.nonzero(stereo).flatten(), 2)):
        if len(index):
            strips, _ = channel_strips(stems[None, index, :width], p.select_tracks(index), stereo[None, index],
                                       sample_rate)
            parts.append(strips)
            order.append(index)
    panned = torch.cat(parts, dim=1)[:, torch.argsort(torch.cat(order))]
    dry, send = mix_buses(panned, p)
    wet, _ = reverb(send, reverb_impulse_responses(p, sample_rate))
    mix = dry + wet
    if torch.isnan(p.ceiling_dbtp[0]):
        return mix
    # As render_tensor: the limiter's gain is applied as a constant (no gradient through its detector).
    raw = mix[0].detach().numpy()
    gain = np.divide(limit(raw, float(p.ceiling_dbtp[0]), sample_rate), raw, out=np.ones_like(raw), where=raw != 0)
    return mix * torch.from_numpy(gain)


def _descend(stems: torch.Tensor, reference: torch.Tensor, stereo: torch.Tensor, start: ConsoleTensors,
             sample_rate: int, config: ReverseConfig, loss: StereoLoss, progress: ProgressCallback | None,
             began: float) -> tuple[ConsoleTensors, list[float], bool]:
    """Stage 2: Adam through the console on random excerpts."""
    model = ConsoleFit(start, _learned(start, config, sample_rate))
    if config.steps == 0 or not model.logits:
        return start, [], False
    balance = [logit for name, logit in model.logits.items() if name in _BALANCE]
    dynamics = [logit for name, logit in model.logits.items() if name not in _BALANCE]
    optimizer = torch.optim.Adam([{"params": balance, "lr": config.balance_learning_rate},
                                  {"params": dynamics, "lr": config.learning_rate}])
    samples = stems.shape[-1]
    excerpt = min(samples, max(round(config.excerpt_s * sample_rate), loss.config.min_samples))
    preroll = round(config.preroll_s * sample_rate)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[float] = []
    best, since_best, reductions, smoothed = math.inf, 0, 0, None
    for step in range(config.steps):
        begin = int(torch.randint(0, samples - excerpt + 1, (1,), generator=generator))
        lead = min(preroll, begin)
        settings = model()
        mix = _render_unnormalised(stems[..., begin - lead:begin + excerpt], settings, stereo, sample_rate)
        value = loss(mix[..., lead:], reference[None, :, begin:begin + excerpt])
        if config.fit_eq:
            value = value + config.eq_prior_weight * (settings.eq_gain_db / _EQ_PRIOR_DB).pow(2).mean()
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        value = float(value.detach())
        smoothed = value if smoothed is None else _EMA * smoothed + (1.0 - _EMA) * value
        history.append(smoothed)
        if progress is not None:
            progress(step + 1, config.steps)
        if smoothed < best * (1.0 - config.min_improvement):
            best, since_best = smoothed, 0
        else:
            since_best += 1
        if since_best >= config.plateau_steps:
            if reductions == config.lr_reductions:
                return _detached(model), history, True
            reductions, since_best, best = reductions + 1, 0, smoothed
            for group in optimizer.param_groups:
                group["lr"] *= 0.5
        if config.time_budget_s is not None and time.perf_counter() - began >= config.time_budget_s:
            break
    return _detached(model), history, False


def _detached(model: ConsoleFit) -> ConsoleTensors:
    with torch.no_grad():
        p = model()
    return replace(p, **{name: getattr(p, name).detach() for name in model.logits})


# --- entry points --------------------------------------------------------------------------------


def load_reference(path: str | os.PathLike, multitrack: Multitrack) -> np.ndarray:
    """Load a reference mix for ``multitrack``: at its rate, as long as its stems.

    A reference at another rate is resampled (soxr, as stems are) with a warning; one
    that is shorter or longer by up to `MAX_LENGTH_MISMATCH_S` is padded with silence
    or trimmed at the end with a warning (exports often add or drop a tail).

    Args:
        path: audio file.
        multitrack: the stems.

    Returns:
        float32 ``(2, multitrack.num_frames)``.

    Raises:
        AudioError: if the file is unreadable, not stereo, silent, or its length differs
            by more than `MAX_LENGTH_MISMATCH_S`.
    """
    info = probe_audio(path)
    if info.channels != 2:
        raise AudioError(f"{path}: the reference mix is mono; it must be stereo (2 channels)")
    audio, _ = load_audio(path, sample_rate=multitrack.sample_rate)
    if info.sample_rate != multitrack.sample_rate:
        warnings.warn(f"{path}: resampled the reference mix from {info.sample_rate} Hz to the stems' "
                      f"{multitrack.sample_rate} Hz", stacklevel=2)
    difference = audio.shape[1] - multitrack.num_frames
    if difference:
        seconds = abs(difference) / multitrack.sample_rate
        if seconds > MAX_LENGTH_MISMATCH_S:
            raise AudioError(f"{path}: the reference mix is {audio.shape[1] / multitrack.sample_rate:.2f} s long "
                             f"but the stems are {multitrack.duration_s:.2f} s; are they the same song?")
        warnings.warn(f"{path}: the reference mix is {seconds:.3f} s {'longer' if difference > 0 else 'shorter'} "
                      f"than the stems; {'trimmed' if difference > 0 else 'padded with silence'} to match",
                      stacklevel=2)
        audio = np.pad(audio[:, :multitrack.num_frames], ((0, 0), (0, max(0, -difference))))
    try:
        return _check_reference(multitrack, audio)
    except AudioError as error:
        raise AudioError(f"{path}: {error}") from None


def _check_reference(multitrack: Multitrack, reference: np.ndarray) -> np.ndarray:
    reference = np.asarray(reference)
    if reference.ndim != 2 or reference.shape[0] not in (1, 2):
        raise AudioError(f"the reference mix must have shape (2, samples), got {reference.shape}")
    if reference.shape[0] != 2:
        raise AudioError("the reference mix is mono; it must be stereo (2 channels)")
    if reference.shape[1] != multitrack.num_frames:
        raise AudioError(f"the reference mix is {reference.shape[1]} samples long but the stems are "
                         f"{multitrack.num_frames}")
    if not np.isfinite(reference).all():
        raise AudioError("the reference mix contains NaN or infinite samples")
    if np.abs(reference).max() <= 10.0 ** (SILENCE_DBFS / 20.0):
        raise AudioError("the reference mix is silent")
    return reference.astype(np.float32, copy=False)


def _analysis_window(samples: int, sample_rate: int, max_s: float) -> slice:
    length = min(samples, round(max_s * sample_rate))
    start = (samples - length) // 2
    return slice(start, start + length)


def _master(reference: np.ndarray, sample_rate: int) -> tuple[float | None, float | None]:
    """``(target_lufs, ceiling_dbtp)`` that reproduce the reference's loudness and peak (None out of range)."""
    loudness = float(integrated_loudness(torch.from_numpy(reference)[None].double(), sample_rate)[0])
    peak = true_peak_dbtp(reference)
    inside = lambda name, value: (SPECS[name].minimum <= value <= SPECS[name].maximum)  # noqa: E731
    target = round(loudness, 2) if math.isfinite(loudness) and inside("target_lufs", loudness) else None
    ceiling = math.ceil(peak * 100.0) / 100.0 if math.isfinite(peak) and inside("ceiling_dbtp", peak) else None
    return target, ceiling


def _to_params(p: ConsoleTensors, multitrack: Multitrack, target_lufs: float | None,
               ceiling_dbtp: float | None) -> ConsoleParams:
    params = p.to_params(0, multitrack.names, multitrack.instruments, multitrack.sample_rate, ReverseEngineer.name)
    for ch, ratio in zip(params.channels, p.ratio[0].tolist(), strict=True):
        if ratio <= COMPRESSOR_OFF_RATIO:
            ch.compressor = None
    params.master.target_lufs = target_lufs
    params.master.ceiling_dbtp = ceiling_dbtp
    params.validate()
    return params


def _run(multitrack: Multitrack, reference: np.ndarray, config: ReverseConfig,
         progress: ProgressCallback | None) -> tuple[ConsoleParams, ReverseReport]:
    began = time.perf_counter()
    reference = _check_reference(multitrack, reference)
    window = _analysis_window(multitrack.num_frames, multitrack.sample_rate, config.max_analysis_s)
    stems = torch.from_numpy(multitrack.to_array()[..., window])
    if float(stems.abs().max()) <= 10.0 ** (SILENCE_DBFS / 20.0):
        raise AudioError("every stem is silent; there is nothing to fit")
    target_lufs, ceiling = _master(reference, multitrack.sample_rate)
    ref = torch.from_numpy(np.ascontiguousarray(reference[:, window]))
    stereo = torch.from_numpy(multitrack.stereo_mask())
    sample_rate = multitrack.sample_rate
    loss = StereoLoss(config.loss)
    if stems.shape[-1] < loss.config.min_samples:
        raise AudioError(f"the stems are {stems.shape[-1]} samples long; reverse engineering needs at least "
                         f"{loss.config.min_samples}")
    start = _initial_tensors(stems, ref, stereo, sample_rate, config, math.nan if ceiling is None else ceiling)
    neutral_loss = _matched_loss(loss, stems, ref, stereo, _neutral(start), sample_rate)
    initial_loss = _matched_loss(loss, stems, ref, stereo, start, sample_rate)
    least_squares_s = time.perf_counter() - began
    fitted, history, converged = _descend(stems, ref, stereo, start, sample_rate, config, loss, progress, began)
    params = _to_params(fitted, multitrack, target_lufs, ceiling)
    final_loss = _matched_loss(loss, stems, ref, stereo, ConsoleTensors.from_params([params]), sample_rate)
    report = ReverseReport(neutral_loss=neutral_loss, initial_loss=initial_loss, final_loss=final_loss,
                           steps=len(history), least_squares_s=least_squares_s,
                           seconds=time.perf_counter() - began, converged=converged,
                           losses=tuple(history))
    return params, report


def reverse_engineer(multitrack: Multitrack, reference: np.ndarray, config: ReverseConfig = ReverseConfig(),
                     progress: ProgressCallback | None = None) -> ConsoleParams:
    """Console settings whose render of ``multitrack`` reproduces ``reference``.

    Args:
        multitrack: the stems the reference was mixed from.
        reference: the stereo mix, float32 ``(2, num_frames)`` at the stems' rate,
            time-aligned with them.
        config: search settings.
        progress: called with ``(step, config.steps)`` after each descent step.

    Returns:
        Valid settings for exactly the multitrack's stems (method ``"reverse"``).

    Raises:
        AudioError: if the reference is not stereo, not as long as the stems, not
            finite or silent, or every stem is silent.
    """
    return _run(multitrack, reference, config, progress)[0]


class ReverseEngineer:
    """Reverse engineering as an object: ``fit(multitrack, reference) -> ConsoleParams``.

    Not a `Mixer` (it needs the reference mix) and not in `MIXERS`. After each fit,
    `report` holds its losses and timing.
    """

    name = "reverse"

    def __init__(self, config: ReverseConfig = ReverseConfig(), progress: ProgressCallback | None = None):
        self.config = config
        self.progress = progress
        self.report: ReverseReport | None = None

    def fit(self, multitrack: Multitrack, reference: np.ndarray) -> ConsoleParams:
        """See `reverse_engineer`."""
        params, self.report = _run(multitrack, reference, self.config, self.progress)
        return params
