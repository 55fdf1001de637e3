"""Stage 2b: each channel's gain over time, and the compressor that explains it.

A compressor is a time-varying gain on its channel, so it shows in the mix as a channel
whose level follows its own loudness. `frame_gains` measures that gain: in every frame
of `FRAME` samples, the least-squares weight of each channel's static (uncompressed)
contribution in the mix, with its variance. `fit_compressor` then fits, per channel,
the compressor whose energy-weighted gain per frame (`compressor_frame_gains`, the
console's own static curve and ballistics, `mixdown.dsp.compressor`) matches that
measured gain track in dB up to a constant (the fader), by Levenberg-Marquardt from a
few starting thresholds (multi-start; the Jacobian, by forward differences, measured
again only where the last step was taken), on the frames that carry information about it
(`informative_segments`: where the channel sounds, each segment after a warm-up for the
detector). The compressor is kept when it explains the gain track clearly better than a
constant gain does (`COMPRESSOR_ON_RATIO`) with a plausible fader correction: on/off is
a discrete choice, made by comparing the two fits rather than by a threshold on the
fitted ratio; the refinement then fits the kept ones further and returns off those whose
ratio falls to 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import torch

from mixdown.dsp.compressor import (
    lane_gains,
    lane_groups,
    lane_scratch,
    lane_state,
    level_db,
    time_constant_coefficient,
)
from mixdown.mixers.reverse.eq_fit import logit
from mixdown.params import SPECS

FRAME = 1024
"""Samples per frame of the measured gain tracks."""

COMPRESSOR_PARAMS = ("threshold_db", "ratio", "attack_ms", "release_ms", "knee_db")
"""The compressor settings `fit_compressor` fits (makeup is the fader again)."""

COMPRESSOR_ON_RATIO = 0.65
"""A compressor is kept when its fit leaves at most this share of the misfit of a constant gain."""

START_BELOW_PEAK_DB = (6.0, 12.0, 20.0)
"""Starting thresholds under the channel's peak (the multi-start); ratio 4, attack 5 ms,
release 150 ms and knee 6 dB at every start."""

MAX_FADER_CORRECTION_DB = 12.0
"""A compressor whose fit needs the fader moved by more than this is not believed (left off)."""

LOWEST_BELOW_PEAK_DB = 30.0
"""The fitted threshold stays within this many dB under the channel's peak."""

_START = {"ratio": 4.0, "attack_ms": 5.0, "release_ms": 150.0, "knee_db": 6.0}
_STEP = 1e-2  # forward-difference step of the Jacobian, in logit units
_SEGMENT_S = 2.0
_WARMUP_S = 0.5
_MAX_SEGMENTS = 3


@numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _frame_gain_kernel(x, energy, threshold, ratio, knee, alpha_attack, alpha_release, out,
                       threads):  # pragma: no cover - compiled
    """Per frame, ``sum G_r(t) energy(t)`` of the compressor gain ``G_r`` of every settings row ``r`` on one signal.

    x: (channels, samples) float32, the compressor's input; energy: (samples,) weights;
    settings (rows,); out: (rows, samples // FRAME). Rows run side by side in groups of up
    to `mixdown.dsp.compressor.LANES` with the passes of its render kernel (`lane_gains`);
    the input's level, the same for every row, is taken once per frame and group.
    """
    channels, samples = x.shape
    rows = threshold.shape[0]
    frames = samples // FRAME
    zeros = np.zeros(rows)
    groups, width = lane_groups(rows, threads)
    for g in numba.prange(groups):
        first = g * width
        lanes = min(width, rows - first)
        w = lane_state(first, lanes, alpha_attack, alpha_release, zeros, zeros)
        peak, mantissa_bits, exponent, level, gains, buf, bits = lane_scratch(FRAME)
        for f in range(frames):
            start = f * FRAME
            for n in range(FRAME):
                peak[n] = abs(x[0, start + n])
            for c in range(1, channels):
                for n in range(FRAME):
                    peak[n] = max(peak[n], abs(x[c, start + n]))
            level_db(peak, mantissa_bits, exponent, level, FRAME)
            lane_gains(level, 0, threshold, ratio, knee, first, lanes, w, gains, buf, bits, FRAME)
            for j in range(lanes):
                total = 0.0
                for n in range(FRAME):
                    total += gains[j * FRAME + n] * energy[start + n]
                out[first + j, f] = total


def compressor_frame_gains(x: np.ndarray, settings: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Energy-weighted mean gain per frame of compressors on one signal.

    Args:
        x: float32 ``(channels, samples)``, the compressor's input (after the EQ).
        settings: ``(rows, 5)`` physical `COMPRESSOR_PARAMS` (makeup 0 dB).
        sample_rate: in Hz.

    Returns:
        float64 ``(rows, samples // FRAME)``: ``sum G(t) e(t) / sum e(t)`` per frame with
        ``e = sum_c x_c^2`` (the frame's least-squares gain of a compressed signal on its
        input); 1 where the frame is silent.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    energy = np.square(x, dtype=np.float64).sum(0)
    settings = settings.double()
    threshold, ratio, attack, release, knee = (np.ascontiguousarray(settings[:, i].numpy()) for i in range(5))
    frames = x.shape[-1] // FRAME
    out = np.zeros((settings.shape[0], frames))
    _frame_gain_kernel(x, energy, threshold, ratio, knee,
                       time_constant_coefficient(torch.from_numpy(attack), sample_rate).numpy(),
                       time_constant_coefficient(torch.from_numpy(release), sample_rate).numpy(), out,
                       numba.get_num_threads())
    den = energy[:frames * FRAME].reshape(frames, FRAME).sum(-1)
    gains = np.where(den > 0, out / np.where(den > 0, den, 1.0), 1.0)
    return torch.from_numpy(gains)


@dataclass(frozen=True)
class GainTracks:
    """Per-frame least-squares gains of the channels' static contributions (`frame_gains`).

    Attributes:
        gain: ``(tracks, frames)`` linear gain relative to the static contribution.
        weight: ``(tracks, frames)`` inverse variance of ``20 log10(gain)`` (0 where the
            channel is silent).
    """

    gain: torch.Tensor
    weight: torch.Tensor


def frame_gains(regressors: torch.Tensor, target: torch.Tensor, ridge: float = 1e-3) -> GainTracks:
    """Each channel's gain in every frame: least squares of the target on the static contributions.

    Per frame ``f``, ``a_f = argmin |y_f - sum_i a_i u_i,f|^2 + sum_i l_i (a_i - 1)^2``
    with ``l_i = ridge * mean_f |u_i,f|^2``, which pulls silent channels to unity; the
    weight of ``20 log10 a_i`` is the inverse of its variance, ``a^2 / (8.69^2 s^2
    [A^-1]_ii)`` with ``s^2`` the frame's residual power.

    Args:
        regressors: ``(tracks, 2, samples)`` static (uncompressed) contributions.
        target: ``(2, samples)`` what they add up to.
        ridge: strength of the pull towards 1, relative to each channel's mean energy.

    Returns:
        `GainTracks` over ``samples // FRAME`` frames.
    """
    tracks, _, samples = regressors.shape
    frames = samples // FRAME
    u = regressors[..., :frames * FRAME].double().reshape(tracks, 2, frames, FRAME).permute(2, 0, 1, 3)
    u = u.reshape(frames, tracks, 2 * FRAME)
    y = target[..., :frames * FRAME].double().reshape(2, frames, FRAME).permute(1, 0, 2).reshape(frames, 2 * FRAME)
    gram = u @ u.mT
    cross = (u @ y[..., None])[..., 0]
    energy = gram.diagonal(dim1=-2, dim2=-1)
    lam = ridge * energy.mean(0, keepdim=True).expand(frames, -1) + 1e-30
    system = gram + torch.diag_embed(lam)
    a = torch.linalg.solve(system, (cross + lam)[..., None])[..., 0]
    residual = y.pow(2).sum(-1) - 2.0 * (a * cross).sum(-1) + (a[:, None, :] @ gram @ a[..., None])[:, 0, 0]
    noise = residual.clamp_min(0.0) / max(2 * FRAME - tracks, 1) + 1e-12 * float(y.pow(2).mean()) + 1e-30
    variance = torch.linalg.inv(system).diagonal(dim1=-2, dim2=-1) * noise[:, None]
    weight = a.pow(2) / ((20.0 / math.log(10.0)) ** 2 * variance)
    silent = energy <= 1e-6 * energy.amax(0, keepdim=True)
    weight = torch.where(silent | (a <= 0), 0.0, weight)
    return GainTracks(gain=a.T, weight=weight.T)


def informative_segments(weight: torch.Tensor, sample_rate: int) -> list[tuple[int, int]]:
    """Frame ranges ``[begin, end)`` to fit a channel's compressor on (warm-up included).

    The whole track when it is short; else up to `_MAX_SEGMENTS` segments of
    `_SEGMENT_S` seconds holding the most measurement weight (where the channel sounds
    clearly), each preceded by `_WARMUP_S` of warm-up for the detector.

    Args:
        weight: ``(frames,)`` weights of the channel's gain track.
        sample_rate: in Hz.

    Returns:
        Non-overlapping, sorted frame ranges.
    """
    frames = weight.shape[0]
    segment = max(1, round(_SEGMENT_S * sample_rate / FRAME))
    warmup = round(_WARMUP_S * sample_rate / FRAME)
    if frames <= _MAX_SEGMENTS * (segment + warmup):
        return [(0, frames)]
    cumulative = torch.nn.functional.pad(weight.cumsum(0), (1, 0))
    held = cumulative[segment:] - cumulative[:-segment]  # weight of the segment starting at each frame
    chosen: list[tuple[int, int]] = []
    for _ in range(_MAX_SEGMENTS):
        free = held.clone()
        free[:warmup] = -math.inf
        for begin, end in chosen:
            free[max(0, begin - segment):end] = -math.inf
        best = int(free.argmax())
        if not float(free[best]) > 0.0:
            break
        chosen.append((best - warmup, best + segment))
    return sorted(chosen)


@dataclass(frozen=True)
class CompressorFit:
    """One channel's fitted compressor (`fit_compressor`).

    Attributes:
        on: the compressor explains the gain track (else the channel is left uncompressed).
        settings: physical `COMPRESSOR_PARAMS` of the best start (the neutral ones when off).
        gain_db: the constant the fit adds to the compressor's gain (the fader's
            correction); when off, the track's weighted mean gain.
        cost, cost_off: weighted squared misfits (dB^2) of the compressor and of a
            constant gain.
    """

    on: bool
    settings: dict[str, float]
    gain_db: float
    cost: float
    cost_off: float


def _physical(theta: torch.Tensor, specs) -> torch.Tensor:
    return torch.stack([spec.denormalize(torch.sigmoid(theta[..., i])) for i, spec in enumerate(specs)], dim=-1)


def fit_compressor(x: np.ndarray, tracks: GainTracks, index: int, sample_rate: int, iterations: int) -> CompressorFit:
    """Fit a compressor to channel ``index``'s gain track (see the module docstring).

    Args:
        x: float32 ``(channels, samples)``: the channel after its EQ, before the fader.
        tracks: the measured gains (`frame_gains`).
        index: the channel.
        sample_rate: in Hz.
        iterations: Levenberg-Marquardt iterations per start.

    Returns:
        The best start's fit and the on/off decision.
    """
    observed = 20.0 * torch.log10(tracks.gain[index].clamp_min(1e-6))
    weight = tracks.weight[index].clone()
    segments = informative_segments(weight, sample_rate)
    specs = [SPECS[name] for name in COMPRESSOR_PARAMS]
    neutral = {name: spec.default for name, spec in zip(COMPRESSOR_PARAMS, specs, strict=True)}
    if not segments:  # no frame where the channel is heard in the mix: nothing to fit
        return CompressorFit(False, neutral, 0.0, 0.0, 0.0)
    warmup = round(_WARMUP_S * sample_rate / FRAME)
    pieces, fit_weight, fit_observed = [], [], []
    for begin, end in segments:
        pieces.append(x[:, begin * FRAME:end * FRAME])
        w = weight[begin:end].clone()
        if len(segments) > 1:
            w[:min(warmup, len(w))] = 0.0
        fit_weight.append(w)
        fit_observed.append(observed[begin:end])
    signal = np.concatenate(pieces, axis=-1)
    weight, observed = torch.cat(fit_weight), torch.cat(fit_observed)
    total = float(weight.sum())
    if not total > 0.0:
        return CompressorFit(False, neutral, 0.0, 0.0, 0.0)
    off_gain = float((weight * observed).sum()) / total
    cost_off = float((weight * (observed - off_gain).pow(2)).sum())
    if not cost_off > 0.0:
        return CompressorFit(False, neutral, off_gain, cost_off, cost_off)
    peak_db = 20.0 * math.log10(max(float(np.abs(signal).max()), 1e-9))
    # thresholds from the peak down to LOWEST_BELOW_PEAK_DB under it: further down, threshold, ratio and
    # fader trade off against each other on a signal that is always compressed
    lowest = min(max(peak_db - LOWEST_BELOW_PEAK_DB, specs[0].minimum), specs[0].maximum - 1.0)
    specs[0] = specs[0].within(lowest, min(max(peak_db, lowest + 1.0), specs[0].maximum))
    starts = torch.tensor([[peak_db - below, *(_START[name] for name in COMPRESSOR_PARAMS[1:])]
                           for below in START_BELOW_PEAK_DB], dtype=torch.float64)
    starts[:, 0] = starts[:, 0].clamp(specs[0].minimum + 0.5, specs[0].maximum - 0.5)
    theta = torch.stack([logit(spec.normalize(starts[:, i])) for i, spec in enumerate(specs)], dim=-1)
    root_weight = weight.sqrt()

    def residuals(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model = 20.0 * torch.log10(compressor_frame_gains(signal, _physical(theta, specs), sample_rate)
                                   .clamp_min(1e-6))
        difference = observed - model
        offset = (weight * difference).sum(-1, keepdim=True) / total
        return (difference - offset) * root_weight, offset[..., 0]

    count, params = theta.shape
    residual, offset = residuals(theta)
    cost = residual.pow(2).sum(-1)
    damping = torch.full((count,), 1e-2, dtype=torch.float64)
    basis = _STEP * torch.eye(params, dtype=torch.float64)
    jacobian = torch.empty(count, residual.shape[-1], params, dtype=torch.float64)
    moved = torch.ones(count, dtype=torch.bool)  # starts whose Jacobian is out of date
    for _ in range(iterations):
        stale = moved.nonzero()[:, 0]
        if len(stale):
            perturbed, _ = residuals((theta[stale, None] + basis).reshape(-1, params))
            jacobian[stale] = ((perturbed.reshape(len(stale), params, -1) - residual[stale, None]) / _STEP).mT
        normal = jacobian.mT @ jacobian
        scale = torch.diag_embed(normal.diagonal(dim1=-2, dim2=-1).clamp_min(1e-9))
        step = torch.linalg.solve(normal + damping[:, None, None] * scale,
                                  -(jacobian.mT @ residual[..., None]))[..., 0].clamp(-3.0, 3.0)
        trial = theta + step
        trial_residual, trial_offset = residuals(trial)
        trial_cost = trial_residual.pow(2).sum(-1)
        better = trial_cost < cost
        theta = torch.where(better[:, None], trial, theta)
        residual = torch.where(better[:, None], trial_residual, residual)
        offset = torch.where(better, trial_offset, offset)
        cost = torch.where(better, trial_cost, cost)
        damping = torch.where(better, damping / 3.0, damping * 4.0).clamp(1e-9, 1e9)
        moved = better
    best = int(cost.argmin())
    settings = dict(zip(COMPRESSOR_PARAMS, _physical(theta[best], specs).tolist(), strict=True))
    on = (float(cost[best]) <= COMPRESSOR_ON_RATIO * cost_off and settings["ratio"] > 1.05
          and abs(float(offset[best])) <= MAX_FADER_CORRECTION_DB)
    if not on:
        return CompressorFit(False, neutral, off_gain, float(cost[best]), cost_off)
    return CompressorFit(True, settings, float(offset[best]), float(cost[best]), cost_off)
