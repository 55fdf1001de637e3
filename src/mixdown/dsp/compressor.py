"""Feed-forward compressor with a soft-knee log-domain gain computer.

Topology after D. Giannoulis, M. Massberg, J. D. Reiss, "Digital Dynamic Range
Compressor Design - A Tutorial and Analysis", JAES 60(6), 2012: stereo-linked peak
level in dB -> static gain computer (eq. 4, soft knee) -> gain reduction smoothed by
separate attack and release one-pole coefficients (the "smooth branching" detector,
eq. 17, in the gain-reduction domain) -> makeup gain.

The per-sample recursion (gain computer + ballistics) is exact in training and
rendering alike: one compiled kernel runs it forward, and a second runs its adjoint
backward, giving exact gradients for the level and for threshold, ratio, knee and both
time constants; level detection and makeup are plain torch ops around it (the attack/release branch taken at each sample is held fixed, so the gradient is
exact almost everywhere; `tests/test_dsp.py` checks it against finite
differences). Without gradients (rendering), `_compress_kernel` runs level detection,
the same recursion and the gain in one fused pass.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

_EPS = 1e-10
_DB_PER_NEPER = 20.0 / math.log(10.0)


@numba.njit(cache=True, nogil=True, inline="always")
def _static_curve(level, threshold, slope, knee):  # pragma: no cover - compiled
    """Gain reduction (dB) and its partials wrt level, threshold, slope, knee."""
    over = level - threshold
    if 2.0 * over > knee:
        return slope * over, slope, -slope, over, 0.0
    if 2.0 * over < -knee or knee <= 0.0:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    u = over + 0.5 * knee
    red = slope * u * u / (2.0 * knee)
    return (red, slope * u / knee, -slope * u / knee, u * u / (2.0 * knee),
            slope * (u / (2.0 * knee) - u * u / (2.0 * knee * knee)))


@numba.njit(cache=True, nogil=True, inline="always")
def _smoothed_reduction(level, prev, threshold, slope, knee, knee_start, alpha_attack,
                        alpha_release):  # pragma: no cover - compiled
    """One sample of gain computer + attack/release ballistics: (smoothed reduction, is_attack)."""
    red = 0.0
    if level > knee_start:
        red = _static_curve(level, threshold, slope, knee)[0]
    is_attack = red > prev
    alpha = alpha_attack if is_attack else alpha_release
    return alpha * prev + (1.0 - alpha) * red, is_attack


@numba.njit(cache=True, nogil=True, parallel=True)
def _forward_kernel(level, threshold, ratio, knee, alpha_attack, alpha_release, initial,
                    smoothed, attack, final):  # pragma: no cover - compiled
    """Static curve + ballistics. level, smoothed, attack: (rows, samples); the rest (rows,)."""
    for r in numba.prange(level.shape[0]):
        prev = initial[r]
        slope = 1.0 - 1.0 / ratio[r]
        knee_start = threshold[r] - 0.5 * knee[r]
        for n in range(level.shape[1]):
            prev, is_attack = _smoothed_reduction(level[r, n], prev, threshold[r], slope, knee[r], knee_start,
                                                  alpha_attack[r], alpha_release[r])
            smoothed[r, n] = prev
            attack[r, n] = is_attack
        final[r] = prev


@numba.njit(cache=True, nogil=True, parallel=True)
def _compress_kernel(x, threshold, ratio, knee, alpha_attack, alpha_release, makeup, initial,
                     y, final):  # pragma: no cover - compiled
    """The whole no-gradient compressor in one pass: linked peak level, `_forward_kernel`'s
    recursion and the makeup-and-reduction gain. x, y: (rows, channels, samples); the rest (rows,).

    The level's log and the gain's exp are taken in float32, as the differentiable path's
    torch ops on float32 audio take them; below the knee the level is not needed at all
    (no reduction), so peaks are compared with the knee's start in the linear domain."""
    for r in numba.prange(x.shape[0]):
        prev = initial[r]
        slope = 1.0 - 1.0 / ratio[r]
        knee_start = threshold[r] - 0.5 * knee[r]
        knee_start_peak = np.float32(math.exp(knee_start / _DB_PER_NEPER))
        for n in range(x.shape[2]):
            peak = np.float32(0.0)
            for c in range(x.shape[1]):
                peak = max(peak, abs(x[r, c, n]))
            level = knee_start  # not above the knee's start: no reduction
            if peak > knee_start_peak:
                level = _DB_PER_NEPER * math.log(peak)
            prev, _ = _smoothed_reduction(level, prev, threshold[r], slope, knee[r], knee_start,
                                          alpha_attack[r], alpha_release[r])
            gain = math.exp(np.float32((makeup[r] - prev) / _DB_PER_NEPER))
            for c in range(x.shape[1]):
                y[r, c, n] = x[r, c, n] * gain
        final[r] = prev


@numba.njit(cache=True, nogil=True, parallel=True)
def _backward_kernel(grad_smoothed, level, smoothed, attack, threshold, ratio, knee, alpha_attack,
                     alpha_release, initial, grad_level, grad_params):  # pragma: no cover - compiled
    """Adjoint of `_forward_kernel`; grad_params (rows, 5): threshold, ratio, knee, alpha_attack, alpha_release."""
    for r in numba.prange(level.shape[0]):
        slope = 1.0 - 1.0 / ratio[r]
        adjoint = 0.0  # dL / d smoothed[n], accumulated from the future
        for n in range(level.shape[1] - 1, -1, -1):
            adjoint += grad_smoothed[r, n]
            red, d_level, d_threshold, d_slope, d_knee = _static_curve(level[r, n], threshold[r], slope, knee[r])
            prev = smoothed[r, n - 1] if n > 0 else initial[r]
            if attack[r, n]:
                alpha = alpha_attack[r]
                grad_params[r, 3] += (prev - red) * adjoint
            else:
                alpha = alpha_release[r]
                grad_params[r, 4] += (prev - red) * adjoint
            d_red = (1.0 - alpha) * adjoint
            grad_level[r, n] = d_red * d_level
            grad_params[r, 0] += d_red * d_threshold
            grad_params[r, 1] += d_red * d_slope / (ratio[r] * ratio[r])
            grad_params[r, 2] += d_red * d_knee
            adjoint *= alpha


def _np64(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().double().numpy())


class _GainReductionFunction(torch.autograd.Function):
    """level_db (rows, samples) and settings (rows,) -> smoothed gain reduction (rows, samples)."""

    @staticmethod
    def forward(ctx, level, threshold, ratio, knee, alpha_attack, alpha_release, initial):
        settings = (threshold, ratio, knee, alpha_attack, alpha_release)
        level_np = np.ascontiguousarray(level.detach().cpu().numpy())
        smoothed = np.empty(level_np.shape)
        attack = np.empty(level_np.shape, dtype=np.bool_)
        final = np.empty(level_np.shape[0])
        _forward_kernel(level_np, *(_np64(s) for s in settings), _np64(initial), smoothed, attack, final)
        out, final_t = torch.from_numpy(smoothed).to(level), torch.from_numpy(final)
        ctx.save_for_backward(level, *settings, initial)
        ctx.trace = (smoothed, attack)
        ctx.mark_non_differentiable(final_t)
        return out, final_t

    @staticmethod
    def backward(ctx, grad, _grad_final):
        level, *settings, initial = ctx.saved_tensors
        smoothed, attack = ctx.trace
        grad_level = np.empty(smoothed.shape)
        grad_params = np.zeros((smoothed.shape[0], 5))
        _backward_kernel(_np64(grad), _np64(level), smoothed, attack, *(_np64(s) for s in settings),
                         _np64(initial), grad_level, grad_params)
        grads = [torch.from_numpy(grad_params[:, i]).to(s) for i, s in enumerate(settings)]
        return (torch.from_numpy(grad_level).to(level), *grads, None)


def time_constant_coefficient(time_ms: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """One-pole coefficient ``exp(-1 / (tau * fs))`` for a time constant in ms."""
    return torch.exp(-1000.0 / (time_ms * sample_rate))


def static_gain_reduction(level_db: torch.Tensor, threshold_db: float, ratio: float, knee_db: float) -> torch.Tensor:
    """The static curve alone (no ballistics): gain reduction in dB for input levels.

    For plots and tests; the processor itself evaluates the same curve sample by sample.
    """
    over = level_db - threshold_db
    slope = 1.0 - 1.0 / ratio
    knee = max(knee_db, 0.0)
    in_knee = slope * (over + knee / 2) ** 2 / (2 * knee) if knee > 0 else torch.zeros_like(over)
    return torch.where(2 * over > knee, slope * over, torch.where(2 * over < -knee, torch.zeros_like(over), in_knee))


def compressor(x: torch.Tensor, threshold_db: torch.Tensor, ratio: torch.Tensor, attack_ms: torch.Tensor,
               release_ms: torch.Tensor, knee_db: torch.Tensor, makeup_db: torch.Tensor, sample_rate: int,
               state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Compress each row of ``x`` with its own settings (channels are linked).

    Args:
        x: ``(rows, channels, samples)``.
        threshold_db, ratio, attack_ms, release_ms, knee_db, makeup_db: ``(rows,)``.
        sample_rate: in Hz.
        state: ``(rows,)`` smoothed gain reduction (dB) carried from the previous block.

    Returns:
        ``(y, state)``: ``(rows, channels, samples)`` and the ``(rows,)`` state.
    """
    initial = state if state is not None else torch.zeros(x.shape[0], dtype=torch.float64)
    alpha_attack, alpha_release = (time_constant_coefficient(t, sample_rate) for t in (attack_ms, release_ms))
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (x, threshold_db, ratio, attack_ms, release_ms, knee_db, makeup_db))
    if not needs_grad:
        if bool(((ratio == 1) & (makeup_db == 0)).all()):
            return x, initial
        x_np = np.ascontiguousarray(x.detach().cpu().numpy())
        y, final = np.empty_like(x_np), np.empty(x.shape[0])
        _compress_kernel(x_np, *(_np64(t) for t in (threshold_db, ratio, knee_db, alpha_attack, alpha_release,
                                                    makeup_db, initial)), y, final)
        return torch.from_numpy(y).to(x.device), torch.from_numpy(final)
    level_db = _DB_PER_NEPER * torch.log(x.abs().amax(dim=1).clamp_min(_EPS))
    reduction, final = _GainReductionFunction.apply(
        level_db, threshold_db, ratio, knee_db, alpha_attack, alpha_release, initial)
    gain = torch.exp((makeup_db[:, None] - reduction) / _DB_PER_NEPER)
    return x * gain[:, None, :], final
