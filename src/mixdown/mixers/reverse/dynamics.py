"""Stage 2b: each channel's gain over time, and the compressor that explains it.

A compressor is a time-varying gain on its channel, so it shows in the mix as a channel
whose level follows its own loudness. `frame_gains` measures that gain: in every frame
of `FRAME` samples, the least-squares weight of each channel's static (uncompressed)
contribution in the mix, with its variance; its weights say where a channel is heard
(`informative_segments`: where the channel sounds, each segment after a warm-up for the
detector). Frame gains of correlated stems (kick and bass, overheads and drums) are too
noisy to fit a compressor's curve to, so `fit_compressor` judges candidate compressors
on the waveform instead (`explained_shares`, a profile least squares: the candidate's
compressed contribution with one gain, every other channel with a free gain per frame,
through the console's own static curve and ballistics, `mixdown.dsp.compressor`). The
candidates are a grid of thresholds under the channel's peak times ratios (multi-start);
the best is kept when it explains a share of the channel's waveform that no constant
gain does (`MIN_EXPLAINED_SHARE`) with a plausible fader correction: on/off is a
discrete choice, made by comparing the fits rather than by a threshold on a fitted
ratio. The refinement then fits the kept ones further (threshold, ratio, attack,
release, knee) and returns off those whose ratio falls to 1.
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
from mixdown.params import SPECS

FRAME = 1024
"""Samples per frame of the measured gain tracks."""

COMPRESSOR_PARAMS = ("threshold_db", "ratio", "attack_ms", "release_ms", "knee_db")
"""The compressor settings `fit_compressor` fits (makeup is the fader again)."""

MIN_EXPLAINED_SHARE = 5e-4
"""A compressor is kept when it explains at least this share (-33 dB) of its channel's waveform that the
other channels cannot (`explained_shares`)."""

CANDIDATE_BELOW_PEAK_DB = (3.0, 6.0, 9.0, 12.0, 15.0, 18.0, 24.0)
CANDIDATE_RATIOS = (2.0, 4.0, 8.0)
"""The candidates judged on the waveform (the multi-start): thresholds under the channel's peak
times ratios; attack 5 ms, release 150 ms and knee 6 dB at every one."""

MAX_FADER_CORRECTION_DB = 12.0
"""A compressor whose fit needs the fader moved by more than this is not believed (left off)."""

_START = {"attack_ms": 5.0, "release_ms": 150.0, "knee_db": 6.0}
_SEGMENT_S = 2.0
_WARMUP_S = 0.5
_MAX_SEGMENTS = 3


@numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _frame_gain_kernel(x, weights, powers, threshold, ratio, knee, alpha_attack, alpha_release, out,
                       threads):  # pragma: no cover - compiled
    """Per frame, ``sum G_r(t)^p_k w_k(t)`` of the compressor gain ``G_r`` of every settings row ``r`` on one
    signal, for every weight ``w_k`` with its power ``p_k`` (1 or 2).

    x: (channels, samples) float32, the compressor's input; weights: (K, samples); powers: (K,)
    int64; settings (rows,); out: (rows, K, samples // FRAME). Rows run side by side in groups
    of up to `mixdown.dsp.compressor.LANES` with the passes of its render kernel (`lane_gains`);
    the input's level, the same for every row, is taken once per frame and group.
    """
    channels, samples = x.shape
    rows = threshold.shape[0]
    count = weights.shape[0]
    frames = samples // FRAME
    zeros = np.zeros(rows)
    groups, width = lane_groups(rows, threads)
    for g in numba.prange(groups):
        first = g * width
        lanes = min(width, rows - first)
        w = lane_state(first, lanes, alpha_attack, alpha_release, zeros, zeros)
        peak, mantissa_bits, exponent, level, gains, bits = lane_scratch(FRAME)
        for f in range(frames):
            start = f * FRAME
            for n in range(FRAME):
                peak[n] = abs(x[0, start + n])
            for c in range(1, channels):
                for n in range(FRAME):
                    peak[n] = max(peak[n], abs(x[c, start + n]))
            level_db(peak, mantissa_bits, exponent, level, FRAME)
            lane_gains(level, 0, threshold, ratio, knee, first, lanes, w, gains, bits, FRAME)
            for j in range(lanes):
                for k in range(count):
                    total = 0.0
                    if powers[k] == 2:
                        for n in range(FRAME):
                            total += gains[j * FRAME + n] * gains[j * FRAME + n] * weights[k, start + n]
                    else:
                        for n in range(FRAME):
                            total += gains[j * FRAME + n] * weights[k, start + n]
                    out[first + j, k, f] = total


def _weighted_frame_gains(x: np.ndarray, weights: np.ndarray, powers: np.ndarray, settings: torch.Tensor,
                          sample_rate: int) -> np.ndarray:
    """`_frame_gain_kernel`: float64 ``(rows, K, samples // FRAME)`` sums ``sum G^p_k w_k`` per frame."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    settings = settings.double()
    threshold, ratio, attack, release, knee = (np.ascontiguousarray(settings[:, i].numpy()) for i in range(5))
    out = np.zeros((settings.shape[0], weights.shape[0], x.shape[-1] // FRAME))
    _frame_gain_kernel(x, np.ascontiguousarray(weights, dtype=np.float64),
                       np.ascontiguousarray(powers, dtype=np.int64), threshold, ratio, knee,
                       time_constant_coefficient(torch.from_numpy(attack), sample_rate).numpy(),
                       time_constant_coefficient(torch.from_numpy(release), sample_rate).numpy(), out,
                       numba.get_num_threads())
    return out


@dataclass(frozen=True)
class GainTracks:
    """Per-frame least-squares gains of the channels' static contributions (`frame_gains`).

    Attributes:
        gain: ``(tracks, frames)`` linear gain relative to the static contribution.
        weight: ``(tracks, frames)`` inverse variance of ``20 log10(gain)`` (0 where the
            channel is silent).
        gram: float64 ``(frames, tracks, tracks)``, per frame the inner products of the
            static contributions (both output channels), and
        cross: float64 ``(frames, tracks)`` their inner products with the mix: the normal
            equations the gains solve, which `explained_shares` reuses.
    """

    gain: torch.Tensor
    weight: torch.Tensor
    gram: torch.Tensor
    cross: torch.Tensor

    def frames(self, ranges: list[tuple[int, int]]) -> GainTracks:
        """The tracks on the frame ranges ``[begin, end)``, concatenated."""
        pick = lambda t, dim: torch.cat([t.narrow(dim, begin, end - begin) for begin, end in ranges], dim)  # noqa: E731
        return GainTracks(pick(self.gain, 1), pick(self.weight, 1), pick(self.gram, 0), pick(self.cross, 0))


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
        `GainTracks` over ``samples // FRAME`` frames, with their per-frame normal equations.
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
    return GainTracks(gain=a.T, weight=weight.T, gram=gram, cross=cross)


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


def explained_shares(signal: np.ndarray, static: torch.Tensor, target: torch.Tensor, tracks: GainTracks,
                     index: int, compared: torch.Tensor, candidates: torch.Tensor, sample_rate: int,
                     ridge: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """How much of channel ``index``'s waveform each candidate compressor explains (profile least squares).

    The mix is modelled frame by frame as ``y_f = g v_f + sum_j a_jf u_jf + e_f``: the other
    channels' static contributions ``u_j`` with free gains per frame (they absorb the others'
    own compressors and their leakage into this channel), and this channel's compressed
    contribution ``v = G u_i`` (``G`` the candidate's gain over time, the channels linked)
    with one gain ``g`` over all compared frames. With ``P_f`` the projection out of the
    others' span (ridge ``l_j = ridge * mean_f |u_jf|^2``), the misfit after the best ``g``
    is ``sum_f |P y_f|^2 - (sum_f <P y_f, P v_f>)^2 / sum_f |P v_f|^2``. A candidate's share
    is how much lower that is than with ``v = u_i`` (no compressor), relative to
    ``sum_f |P u_if|^2``, the channel's waveform the others cannot reproduce. The inner
    products are frame sums of ``G`` times per-sample products (`_frame_gain_kernel`); the
    projection takes the others' inner products from ``tracks`` (`frame_gains` has them).

    Args:
        signal: float32 ``(channels, samples)``: the channel after its EQ, before the fader.
        static: ``(tracks, 2, samples)`` the channels' static contributions on the same samples.
        target: ``(2, samples)`` the mix there.
        tracks: `frame_gains` of ``static`` and ``target`` (their frames, as `GainTracks.frames` picks them).
        index: the channel.
        compared: ``(samples // FRAME,)`` bool, the frames compared (warm-ups excluded).
        candidates: ``(rows, 5)`` physical `COMPRESSOR_PARAMS`.
        sample_rate: in Hz.
        ridge: strength of the others' regularisation, relative to their mean energy.

    Returns:
        ``(shares, gains)``, float64 ``(rows,)`` each: the share explained (negative where the
        candidate fits worse than none) and ``g``, the linear fader correction.
    """
    count = static.shape[0]
    frames = signal.shape[-1] // FRAME
    static = static[..., :frames * FRAME].double()
    target = target[..., :frames * FRAME].double()
    own = static[index]
    others = [j for j in range(count) if j != index]
    # per-sample products with this channel's contribution, summed over the two output channels: the others',
    # the mix's, its own energy
    rows = torch.cat([static[others], target[None], own[None]])
    weights = rows[:, 0] * own[0] + rows[:, 1] * own[1]
    powers = np.array([1] * count + [2], dtype=np.int64)
    summed = torch.from_numpy(_weighted_frame_gains(signal, weights.numpy(), powers, candidates, sample_rate))
    plain = weights.reshape(count + 1, frames, FRAME).sum(-1)  # the same sums without compressor (G = 1)
    summed = torch.cat([summed, plain[None]])[:, :, compared]  # (rows + 1, count + 1, compared frames)
    cross, energy = summed[:, count - 1], summed[:, count]
    if others:
        gram = tracks.gram[compared][:, others][:, :, others]  # (frames, others, others)
        lam = ridge * gram.diagonal(dim1=-2, dim2=-1).mean(0) + 1e-30
        inverse = torch.linalg.inv(gram + torch.diag(lam))
        solved_target = (inverse @ tracks.cross[compared][:, others, None])[..., 0]  # (frames, others)
        along = summed[:, :count - 1].transpose(1, 2)  # (rows + 1, frames, others): <u_j, v>
        cross = cross - (along * solved_target).sum(-1)
        energy = energy - (along * (inverse @ along[..., None])[..., 0]).sum(-1)
    cross, energy = cross.sum(-1), energy.sum(-1).clamp_min(1e-300)
    explained = cross.pow(2) / energy
    return (explained[:-1] - explained[-1]) / energy[-1], cross[:-1] / energy[:-1]


@dataclass(frozen=True)
class CompressorFit:
    """One channel's fitted compressor (`fit_compressor`).

    Attributes:
        on: the compressor explains the channel's waveform (else the channel is left uncompressed).
        settings: physical `COMPRESSOR_PARAMS` of the best candidate (the neutral ones when off).
        gain_db: the constant the fit adds to the compressor's gain (the fader's
            correction); when off, the gain track's weighted mean.
        explained: the best candidate's share of the channel's waveform (`explained_shares`).
    """

    on: bool
    settings: dict[str, float]
    gain_db: float
    explained: float


def fit_compressor(x: np.ndarray, static: torch.Tensor, target: torch.Tensor, tracks: GainTracks, index: int,
                   sample_rate: int) -> CompressorFit:
    """Choose channel ``index``'s compressor, or none (see the module docstring).

    The candidates (`CANDIDATE_BELOW_PEAK_DB` times `CANDIDATE_RATIOS`) are judged by
    `explained_shares` on the channel's `informative_segments`; the best one with a
    plausible fader correction is kept when it explains at least `MIN_EXPLAINED_SHARE`.

    Args:
        x: float32 ``(channels, samples)``: the channel after its EQ, before the fader.
        static: ``(tracks, 2, samples)`` the channels' static contributions (`frame_gains`'
            regressors).
        target: ``(2, samples)`` the mix.
        tracks: the measured gains (`frame_gains`), which say where the channel is heard.
        index: the channel.
        sample_rate: in Hz.

    Returns:
        The best candidate and the on/off decision.
    """
    observed = 20.0 * torch.log10(tracks.gain[index].clamp_min(1e-6))
    weight = tracks.weight[index]
    segments = informative_segments(weight, sample_rate)
    neutral = {name: SPECS[name].default for name in COMPRESSOR_PARAMS}
    total = float(sum(weight[begin:end].sum() for begin, end in segments))
    if not total > 0.0:  # no frame where the channel is heard in the mix: nothing to fit
        return CompressorFit(False, neutral, 0.0, 0.0)
    off_gain = float(sum((weight[begin:end] * observed[begin:end]).sum() for begin, end in segments)) / total
    signal = np.concatenate([x[:, begin * FRAME:end * FRAME] for begin, end in segments], axis=-1)
    peak_db = 20.0 * math.log10(max(float(np.abs(signal).max()), 1e-9))
    threshold = SPECS["threshold_db"]
    if peak_db <= threshold.minimum:
        return CompressorFit(False, neutral, off_gain, 0.0)
    candidates = torch.tensor([[min(max(peak_db - below, threshold.minimum), threshold.maximum), ratio,
                                *(_START[name] for name in COMPRESSOR_PARAMS[2:])]
                               for below in CANDIDATE_BELOW_PEAK_DB for ratio in CANDIDATE_RATIOS],
                              dtype=torch.float64)
    warmup = round(_WARMUP_S * sample_rate / FRAME) if len(segments) > 1 else 0
    compared = torch.cat([torch.arange(end - begin) >= warmup for begin, end in segments])
    rows = torch.cat([static[..., begin * FRAME:end * FRAME] for begin, end in segments], dim=-1)
    mix = torch.cat([target[..., begin * FRAME:end * FRAME] for begin, end in segments], dim=-1)
    shares, gains = explained_shares(signal, rows, mix, tracks.frames(segments), index, compared, candidates,
                                     sample_rate)
    correction = 20.0 * torch.log10(gains.clamp_min(1e-12))
    shares = torch.where((gains > 0) & (correction.abs() <= MAX_FADER_CORRECTION_DB), shares, -math.inf)
    best = int(shares.argmax())
    if not float(shares[best]) >= MIN_EXPLAINED_SHARE:
        return CompressorFit(False, neutral, off_gain, max(float(shares[best]), 0.0))
    settings = dict(zip(COMPRESSOR_PARAMS, candidates[best].tolist(), strict=True))
    return CompressorFit(True, settings, float(correction[best]), float(shares[best]))
