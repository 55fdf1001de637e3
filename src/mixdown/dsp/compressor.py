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
the same recursion and the gain block by block, SIMD along the samples, the recursions of
four rows overlapping.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from mixdown.dsp.tasks import run_tasks

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


LANES = 8
"""Rows one task runs side by side (their ballistics four at a time), in `_compress_kernel` and in
the kernels built from `lane_groups`, `lane_state`, `lane_scratch` and `lane_gains`
(`mixdown.mixers.reverse.dynamics`)."""

_BLOCK = 1024  # samples per block of `_compress_kernel`
_LN2 = math.log(2.0)
_NEPER_PER_DB = 1.0 / _DB_PER_NEPER  # products, not quotients, in the kernels: a division costs many cycles
_LOG2_E = 1.0 / _LN2
_SQRT2 = math.sqrt(2.0)


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def level_db(peak, mantissa_bits, exponent, out, count):  # pragma: no cover - compiled
    """``out = 20 log10(peak)`` of ``count`` positive float32 peaks, without branches or library calls.

    From the float's exponent and the series ``log m = 2 atanh((m - 1) / (m + 1))`` on
    its mantissa ``m`` in [sqrt(1/2), sqrt(2)) (float64, 1e-9 relative: below float32
    rounding); a zero peak gives about -765 dB. mantissa_bits, exponent: int32 scratch.
    """
    bits = peak.view(np.int32)
    for n in range(count):
        mantissa_bits[n] = (bits[n] & 0x7FFFFF) | 0x3F800000
        exponent[n] = ((bits[n] >> 23) & 0xFF) - 127
    mantissa = mantissa_bits.view(np.float32)
    for n in range(count):
        m = np.float64(mantissa[n])
        big = np.float64(m > _SQRT2)
        m = m * (1.0 - 0.5 * big)
        s = (m - 1.0) / (m + 1.0)
        s2 = s * s
        log = (np.float64(exponent[n]) + big) * _LN2 + 2.0 * s * (
            1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0)))))
        out[n] = _DB_PER_NEPER * log


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _static_reduction_db(level, threshold, slope, knee, out, count):  # pragma: no cover - compiled
    """`_static_curve`'s gain reduction (dB) of ``count`` levels (dB), without branches.

    At or below the knee's start the reduction is 0, so the level is floored there
    (silence included). The curve is written as ``slope (u^2 / (2 knee) + max(over -
    knee / 2, 0))`` with ``u = clamp(over + knee / 2, 0, knee)``, equal to the
    three-piece form.
    """
    half = 0.5 * knee
    inv_twice_knee = 0.5 / knee if knee > 0.0 else 0.0
    for n in range(count):
        over = max(level[n], threshold - half) - threshold
        u = min(over + half, knee)
        out[n] = slope * (u * u * inv_twice_knee + max(over - half, 0.0))


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy", inline="always")
def _ballistics_four(gains, block, count, lanes, first, w):  # pragma: no cover - compiled
    """`_ballistics` of rows ``first`` to ``first + 3`` (the last row stands in for rows past ``lanes``:
    it is then run twice alike, reading before either writes)."""
    a, b = min(first, lanes - 1), min(first + 1, lanes - 1)
    c, d = min(first + 2, lanes - 1), min(first + 3, lanes - 1)
    ga, gb = gains[a * block:a * block + count], gains[b * block:b * block + count]
    gc, gd = gains[c * block:c * block + count], gains[d * block:d * block + count]
    aa, ab, ac, ad = w[a], w[b], w[c], w[d]
    ra, rb, rc, rd = w[LANES + a], w[LANES + b], w[LANES + c], w[LANES + d]
    ma, mb, mc, md = w[2 * LANES + a], w[2 * LANES + b], w[2 * LANES + c], w[2 * LANES + d]
    pa, pb, pc, pd = w[3 * LANES + a], w[3 * LANES + b], w[3 * LANES + c], w[3 * LANES + d]
    for n in range(count):
        xa, xb, xc, xd = ga[n], gb[n], gc[n], gd[n]
        ta, ua = aa * pa + (1.0 - aa) * xa, ra * pa + (1.0 - ra) * xa
        tb, ub = ab * pb + (1.0 - ab) * xb, rb * pb + (1.0 - rb) * xb
        tc, uc = ac * pc + (1.0 - ac) * xc, rc * pc + (1.0 - rc) * xc
        td, ud = ad * pd + (1.0 - ad) * xd, rd * pd + (1.0 - rd) * xd
        pa = ta if xa > pa else ua
        pb = tb if xb > pb else ub
        pc = tc if xc > pc else uc
        pd = td if xd > pd else ud
        ga[n], gb[n] = np.float32((ma - pa) * _NEPER_PER_DB), np.float32((mb - pb) * _NEPER_PER_DB)
        gc[n], gd[n] = np.float32((mc - pc) * _NEPER_PER_DB), np.float32((md - pd) * _NEPER_PER_DB)
    w[3 * LANES + a], w[3 * LANES + b], w[3 * LANES + c], w[3 * LANES + d] = pa, pb, pc, pd


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _ballistics(gains, block, count, lanes, w):  # pragma: no cover - compiled
    """`_smoothed_reduction`'s attack/release smoothing of ``lanes`` rows, in place.

    gains: row ``j``'s ``count`` samples from ``j * block`` on; in: static reduction (dB),
    out: ``makeup - smoothed reduction`` in nepers, rounded to float32 as the
    differentiable path's exponent is. w: attack and release coefficients, makeup (dB) and
    the smoothed reduction, each `LANES` wide. Four rows run in one loop with their state
    in registers, so their recursions overlap. Both branches' updates
    (`_smoothed_reduction`'s ``alpha * prev + (1 - alpha) * red``) are computed and one
    is selected, so the recursion waits on one multiply-add and the comparison side by
    side, not on the comparison, then a subtraction and a multiply-add (twice as fast).
    """
    for first in range(0, lanes, 4):
        _ballistics_four(gains, block, count, lanes, first, w)


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _exp(z, bits, count):  # pragma: no cover - compiled
    """``z = exp(z)`` in place for ``|z| < 690``: ``2^k`` built in the float's bits times a
    degree-7 Taylor polynomial on ``|f| <= ln(2) / 2`` (float64, 1e-8 relative: below
    float32 rounding). bits: int64 scratch."""
    for n in range(count):
        t = min(max(z[n] * _LOG2_E, -1000.0), 1000.0)
        k = math.floor(t + 0.5)
        f = (t - k) * _LN2
        z[n] = 1.0 + f * (1.0 + f * (0.5 + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (
            1.0 / 720.0 + f * (1.0 / 5040.0)))))))
        bits[n] = (np.int64(k) + 1023) << 52
    scale = bits.view(np.float64)
    for n in range(count):
        z[n] *= scale[n]


@numba.njit(cache=True, nogil=True)
def lane_groups(rows, threads):  # pragma: no cover - compiled
    """How rows are cut into tasks of up to `LANES`: ``(groups, width)``, at least one group per thread
    while each keeps 4 rows or more; group ``g`` holds rows ``g * width`` up to ``(g + 1) * width``."""
    groups = max(-(-rows // LANES), min(threads, -(-rows // 4)))
    return groups, -(-rows // groups)


@numba.njit(cache=True, nogil=True)
def lane_state(first, lanes, alpha_attack, alpha_release, makeup, initial):  # pragma: no cover - compiled
    """`_ballistics`' state ``w`` for rows ``first`` to ``first + lanes`` (settings ``(rows,)``)."""
    w = np.zeros(4 * LANES)
    for j in range(lanes):
        w[j], w[LANES + j] = alpha_attack[first + j], alpha_release[first + j]
        w[2 * LANES + j], w[3 * LANES + j] = makeup[first + j], initial[first + j]
    return w


@numba.njit(cache=True, nogil=True)
def lane_scratch(block):  # pragma: no cover - compiled
    """Scratch of one task for blocks of ``block`` samples: peak, mantissa bits, exponent, levels
    (``LANES`` rows), gains (``LANES`` rows) and the exponential's bits."""
    return (np.empty(block, np.float32), np.empty(block, np.int32), np.empty(block, np.int32),
            np.empty(LANES * block), np.empty(LANES * block), np.empty(block, np.int64))


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def lane_gains(level, stride, threshold, ratio, knee, first, lanes, w, gains, bits,
               count):  # pragma: no cover - compiled
    """One block of the compressor gain of rows ``first`` to ``first + lanes``, in place.

    level: the rows' levels (dB), row ``j``'s from ``j * stride`` on (stride 0: one level
    for all); threshold, ratio, knee: ``(rows,)``; w: `lane_state`; gains: ``(LANES *
    block,)``, row ``j``'s ``count`` linear gains from ``j * block`` on (``exp(makeup -
    smoothed reduction)``, as the render applies them); bits: ``(block,)`` scratch. The
    static curve (`_static_reduction_db`) and the gain (`_exp`) run along the samples,
    the ballistics (`_ballistics`) four rows at a time.
    """
    block = bits.shape[0]
    for j in range(lanes):
        r = first + j
        _static_reduction_db(level[j * stride:], threshold[r], 1.0 - 1.0 / ratio[r], knee[r], gains[j * block:],
                             count)
    _ballistics(gains, block, count, lanes, w)
    for j in range(lanes):
        _exp(gains[j * block:(j + 1) * block], bits, count)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _compress_kernel(first_group, stop_group, width, x, threshold, ratio, knee, alpha_attack, alpha_release,
                     makeup, initial, y, final):  # pragma: no cover - compiled
    """The whole no-gradient compressor: linked peak level, `_forward_kernel`'s recursion
    and the makeup-and-reduction gain. x, y: (rows, channels, samples); the rest (rows,).

    Rows are cut into groups of ``width`` (`lane_groups`), one task each; this runs tasks
    ``first_group`` to ``stop_group - 1`` (`mixdown.dsp.tasks.run_tasks`). Per block
    of `_BLOCK` samples, each row's linked peaks go to levels (`level_db`), the group's
    rows through the static curve, the ballistics four rows at a time (the one sequential part)
    and the gain (`lane_gains`), and each row's gain onto its channels. Every pass but
    the ballistics runs along the samples and compiles to SIMD, with log and exp as
    polynomials (no library calls). The exponent and the gain are
    rounded to float32 where the differentiable path's torch ops on float32 audio round
    them, and the level is exact to 1e-9 (that path's float32 log to 6e-8), so the two
    agree to float rounding.
    """
    rows, channels, samples = x.shape
    for g in range(first_group, stop_group):
        first = g * width
        lanes = min(width, rows - first)
        w = lane_state(first, lanes, alpha_attack, alpha_release, makeup, initial)
        peak, mantissa_bits, exponent, level, gains, bits = lane_scratch(_BLOCK)
        for start in range(0, samples, _BLOCK):
            count = min(_BLOCK, samples - start)
            for j in range(lanes):
                r = first + j
                src = x[r, 0, start:start + count]
                for n in range(count):
                    peak[n] = abs(src[n])
                for c in range(1, channels):
                    src = x[r, c, start:start + count]
                    for n in range(count):
                        peak[n] = max(peak[n], abs(src[n]))
                level_db(peak, mantissa_bits, exponent, level[j * _BLOCK:], count)
            lane_gains(level, _BLOCK, threshold, ratio, knee, first, lanes, w, gains, bits, count)
            for j in range(lanes):
                r = first + j
                gain = gains[j * _BLOCK:]
                for c in range(channels):
                    src = x[r, c, start:start + count]
                    dst = y[r, c, start:start + count]
                    for n in range(count):
                        dst[n] = src[n] * np.float32(gain[n])
        for j in range(lanes):
            final[first + j] = w[3 * LANES + j]


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
        groups, width = lane_groups(x.shape[0], numba.get_num_threads()) if x.shape[0] else (0, 0)
        run_tasks(_compress_kernel, groups, width, x_np, *(_np64(t) for t in (
            threshold_db, ratio, knee_db, alpha_attack, alpha_release, makeup_db, initial)), y, final)
        return torch.from_numpy(y).to(x.device), torch.from_numpy(final)
    level_db = _DB_PER_NEPER * torch.log(x.abs().amax(dim=1).clamp_min(_EPS))
    reduction, final = _GainReductionFunction.apply(
        level_db, threshold_db, ratio, knee_db, alpha_attack, alpha_release, initial)
    gain = torch.exp((makeup_db[:, None] - reduction) / _DB_PER_NEPER)
    return x * gain[:, None, :], final
