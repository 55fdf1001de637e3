"""A differentiable, streamable biquad (second-order IIR) filter.

The forward pass is an exact transposed direct-form II recursion in float64, compiled
with numba and parallel over rows; the backward pass is the exact adjoint of that
recursion, run by the same kernel on time-reversed signals. So training and rendering share one filter, sample for sample, with no
frequency-sampling approximation.

For ``y = B(z)/A(z) x`` with ``a0 = 1`` and upstream gradient ``g = dL/dy``:

* ``dL/dx = R lfilter(b, a, R g)`` (``R`` reverses time: the adjoint of a causal LTI
  filter is the same filter run backwards),
* ``dL/db_k = sum_n g[n] w[n-k]`` with ``w = x / A`` (the all-pole part),
* ``dL/da_k = -sum_n u[n] y[n-k]`` with ``u = R lfilter(1, a, R g)``.
"""

from __future__ import annotations

import numba
import numpy as np
import torch


@numba.njit(cache=True, nogil=True, inline="always")
def _section(src, dst, r, c, b0, b1, b2, a1, a2, z0, z1):  # pragma: no cover - compiled
    """One transposed direct-form II biquad over a channel; returns the final state."""
    for n in range(src.shape[2]):
        v = np.float64(src[r, c, n])
        out = b0 * v + z0
        z0 = b1 * v - a1 * out + z1
        z1 = b2 * v - a2 * out
        dst[r, c, n] = out
    return z0, z1


@numba.njit(cache=True, nogil=True, inline="always")
def _section_pair(src, dst, r, b0, b1, b2, a1, a2, zl0, zl1, zr0, zr1):  # pragma: no cover - compiled
    """`_section` on channels 0 and 1 together: two independent recursions interleave."""
    for n in range(src.shape[2]):
        vl, vr = np.float64(src[r, 0, n]), np.float64(src[r, 1, n])
        ol, orr = b0 * vl + zl0, b0 * vr + zr0
        zl0, zr0 = b1 * vl - a1 * ol + zl1, b1 * vr - a1 * orr + zr1
        zl1, zr1 = b2 * vl - a2 * ol, b2 * vr - a2 * orr
        dst[r, 0, n], dst[r, 1, n] = ol, orr
    return zl0, zl1, zr0, zr1


@numba.njit(cache=True, nogil=True, parallel=True)
def _cascade_kernel(x, b, a, zi, y, zf):  # pragma: no cover - compiled
    """Cascade of biquads per row, float64 arithmetic, one pass per section.

    x, y: (rows, channels, samples); b, a: (rows, sections, 3);
    zi, zf: (rows, sections, channels, 2).
    """
    for r in numba.prange(x.shape[0]):
        src = x
        for k in range(b.shape[1]):
            b0, b1, b2, a1, a2 = b[r, k, 0], b[r, k, 1], b[r, k, 2], a[r, k, 1], a[r, k, 2]
            if x.shape[1] == 2:
                zf[r, k, 0, 0], zf[r, k, 0, 1], zf[r, k, 1, 0], zf[r, k, 1, 1] = _section_pair(
                    src, y, r, b0, b1, b2, a1, a2, zi[r, k, 0, 0], zi[r, k, 0, 1], zi[r, k, 1, 0], zi[r, k, 1, 1])
            else:
                for c in range(x.shape[1]):
                    zf[r, k, c, 0], zf[r, k, c, 1] = _section(
                        src, y, r, c, b0, b1, b2, a1, a2, zi[r, k, c, 0], zi[r, k, c, 1])
            src = y


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _filter(x: np.ndarray, b: np.ndarray, a: np.ndarray,
            zi: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run a biquad cascade on numpy arrays; ``y`` keeps the dtype of ``x``.

    Shapes: x (rows, channels, samples); b, a (rows, sections, 3) or (rows, 3) for one
    section; zi (rows, sections, channels, 2), or (rows, channels, 2) for one section.
    """
    single = b.ndim == 2
    if single:
        b, a = b[:, None], a[:, None]
        zi = None if zi is None else zi[:, None]
    x = np.ascontiguousarray(x)
    state_shape = (x.shape[0], b.shape[1], x.shape[1], 2)
    zi = np.zeros(state_shape) if zi is None else np.ascontiguousarray(zi, dtype=np.float64)
    y = np.empty_like(x)
    zf = np.empty(state_shape)
    _cascade_kernel(x, np.ascontiguousarray(b, dtype=np.float64), np.ascontiguousarray(a, dtype=np.float64),
                    zi, y, zf)
    return y, (zf[:, 0] if single else zf)


def _lagged_dot(g: np.ndarray, w: np.ndarray, lag: int) -> np.ndarray:
    """Per row: ``sum over channels and n of g[r, c, n] * w[r, c, n - lag]`` -> ``(rows,)``."""
    if lag == 0:
        return np.einsum("rcn,rcn->r", g, w)
    return np.einsum("rcn,rcn->r", g[..., lag:], w[..., :-lag])


class _BiquadFunction(torch.autograd.Function):
    """Whole-signal biquad with exact gradients for x, b and a (zero initial state)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, b: torch.Tensor, a: torch.Tensor):
        y, zf = _filter(_numpy(x), _numpy(b), _numpy(a))
        out, state = torch.from_numpy(y).to(x.device), torch.from_numpy(zf).to(x.device)
        ctx.save_for_backward(x, b, a, out)
        ctx.mark_non_differentiable(state)
        return out, state

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _grad_state: torch.Tensor):
        x, b, a, y = ctx.saved_tensors
        xn, bn, an, yn = _numpy(x).astype(np.float64), _numpy(b), _numpy(a), _numpy(y).astype(np.float64)
        g_rev = np.ascontiguousarray(_numpy(grad).astype(np.float64)[..., ::-1])
        gx = gb = ga = None
        if ctx.needs_input_grad[0]:
            gx = torch.from_numpy(_filter(g_rev, bn, an)[0][..., ::-1].copy()).to(x)
        pole_only = np.zeros_like(bn)
        pole_only[:, 0] = 1.0
        if ctx.needs_input_grad[1]:
            w = _filter(xn, pole_only, an)[0]
            g = g_rev[..., ::-1]
            gb = torch.from_numpy(np.stack([_lagged_dot(g, w, k) for k in range(3)], -1)).to(b)
        if ctx.needs_input_grad[2]:
            u = _filter(g_rev, pole_only, an)[0][..., ::-1]
            lags = [np.zeros(len(an))] + [-_lagged_dot(u, yn, k) for k in (1, 2)]
            ga = torch.from_numpy(np.stack(lags, -1)).to(a)
        return gx, gb, ga


def biquad_cascade(x: torch.Tensor, b: torch.Tensor, a: torch.Tensor,
                   state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fast path (no autograd): each row through its own cascade of biquads in one pass.

    Args:
        x: ``(rows, channels, samples)``.
        b, a: ``(rows, sections, 3)``, ``a[..., 0] == 1``.
        state: ``(rows, sections, channels, 2)`` from the previous block, or None.

    Returns:
        ``(y, state)``; identical to chaining `biquad` over the sections.
    """
    y, zf = _filter(_numpy(x), _numpy(b), _numpy(a), None if state is None else _numpy(state))
    return torch.from_numpy(y).to(x.device), torch.from_numpy(zf)


def biquad(x: torch.Tensor, b: torch.Tensor, a: torch.Tensor,
           state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Filter each row of ``x`` with its own biquad.

    Differentiable in ``x``, ``b`` and ``a`` when called on a whole signal
    (``state=None``); with a carried ``state`` it is the streaming fast path. Both run
    the same compiled recursion.

    Args:
        x: ``(rows, channels, samples)``; channels of a row share the coefficients.
        b: numerators ``(rows, 3)``.
        a: denominators ``(rows, 3)`` normalised so that ``a[:, 0] == 1``.
        state: ``(rows, channels, 2)`` float64 from a previous block, or None for silence.

    Returns:
        ``(y, state)``: filtered ``(rows, channels, samples)`` and the final state.
    """
    rows = x.shape[0]
    if b.shape != (rows, 3) or a.shape != (rows, 3):
        raise ValueError(f"expected b and a of shape ({rows}, 3); got {tuple(b.shape)}, {tuple(a.shape)}")
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or b.requires_grad or a.requires_grad)
    if needs_grad:
        if state is not None:
            raise ValueError("gradients need the whole signal: call biquad without a carried state")
        return _BiquadFunction.apply(x, b, a)
    y, zf = _filter(_numpy(x), _numpy(b), _numpy(a), None if state is None else _numpy(state))
    return torch.from_numpy(y).to(x.device), torch.from_numpy(zf)
