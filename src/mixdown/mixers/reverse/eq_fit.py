"""Fitting a fader gain and the `STANDARD_EQ` strip to measured channel responses.

`fit_standard_eq` fits, per channel, a gain plus high-pass, low shelf, bell and high shelf
to the least-squares response of `mixdown.mixers.reverse.least_squares.band_responses`
(weighted least squares in dB), through the console's exact EQ response
(`mixdown.dsp.eq.eq_response_db`). Adam finds the valley, `levenberg_marquardt` finishes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from mixdown.dsp.eq import BAND_TYPE_IDS, eq_response_db
from mixdown.mixers.reverse.config import EQ_PRIOR_DB
from mixdown.params import SPECS, STANDARD_BAND_BY_TYPE, STANDARD_EQ, ParamSpec

SHELF_Q = SPECS["eq_q"].default
"""Q of the high-pass and the shelves, which the fit keeps (0.707); only the bell's Q is fitted."""

LOWEST_FITTED_HZ = 20.0
"""Bands under this (inaudible, and below the lowest high-pass `fitted_band_spec` allows) are left out
of the curve fit."""

_PEAK_BAND = STANDARD_EQ.index("peak")
_PEAK_STARTS_HZ = (100.0, 300.0, 900.0, 2500.0, 7000.0)
_EQ_START_HZ = {"highpass": 20.0, "low_shelf": 150.0, "peak": 1000.0, "high_shelf": 6000.0}
_JACOBIAN_STEP = 1e-6  # central-difference step of the EQ fit, in logit units


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch threads, then restore the count.

    The fits' own tensors are small (a few thousand numbers) to moderate (a few million):
    handing each op to a second thread costs more than it saves, and on a loaded machine
    far more, the waiting thread spinning (the EQ curve fit took 10.7 s of CPU with 2
    threads against 0.8 s with 1, at a load of 11; the reverb fit of the demo 3.4 to 5.5 s
    against 0.7 to 0.9 s, at a load of 6 to 7). Usable as a decorator.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def logit(unit: torch.Tensor) -> torch.Tensor:
    """Inverse of the sigmoid through which every fitted parameter stays in its range.

    A parameter with spec ``s`` is ``s.denormalize(sigmoid(theta))``; its starting
    ``theta`` is ``logit(s.normalize(value))``, ``unit`` clamped to [1e-4, 1 - 1e-4] so
    values at the ends of the range keep a gradient.

    Args:
        unit: values in [0, 1], any shape.

    Returns:
        ``log(unit / (1 - unit))``, same shape.
    """
    unit = unit.clamp(1e-4, 1.0 - 1e-4)
    return torch.log(unit) - torch.log1p(-unit)


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


def levenberg_marquardt(residuals: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor,
                        iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``sum(residuals(theta)^2, -1)`` for a batch of independent problems.

    Levenberg-Marquardt with Marquardt's diagonal scaling and per-problem damping
    (K. Madsen, H. B. Nielsen and O. Tingleff, "Methods for non-linear least squares
    problems", 2004, sec. 3.2); the Jacobian is taken by central
    differences, every parameter of every problem in one call of ``residuals``.

    Args:
        residuals: ``(..., params) -> (..., residuals)`` for any leading dimensions, each
            problem depending only on its own row.
        theta: ``(..., params)`` starting point.
        iterations: trial steps (a rejected step raises the damping and costs one).

    Returns:
        ``(theta, residuals(theta))`` at the best point found, ``(..., params)`` and
        ``(..., residuals)``.
    """
    residual = residuals(theta)
    cost = residual.pow(2).sum(-1)
    damping = torch.full_like(cost, 1e-3)
    params = theta.shape[-1]
    basis = _JACOBIAN_STEP * torch.eye(params, dtype=theta.dtype)
    # every central difference in one call, on a new leading axis: +step for each parameter, then -step
    steps = torch.cat([basis, -basis]).reshape(2 * params, *(1,) * (theta.dim() - 1), params)
    for _ in range(iterations):
        shifted = residuals(theta + steps)
        jacobian = ((shifted[:params] - shifted[params:]) / (2.0 * _JACOBIAN_STEP)).movedim(0, -1)
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


def fitted_band_spec(band_type: str, tensor: str, sample_rate: int) -> ParamSpec:
    """The range the fits give band field ``tensor`` (e.g. ``"eq_freq_hz"``) of a ``band_type`` band.

    Bands of the standard strip keep to their slot's training range
    (`mixdown.params.StandardBand.spec`: a high-pass at 16 Hz to 1 kHz, a low shelf at 30
    to 600 Hz, a high shelf at 1.5 to 16 kHz, ...): outside it a shelf becomes a second
    fader over a band-limited stem (a high shelf at 90 Hz on an overhead) and the fader no
    longer says how loud the channel is. Other types keep the schema's full range.
    """
    slot = STANDARD_BAND_BY_TYPE.get(band_type)
    if slot is None:
        return SPECS[tensor].at_rate(sample_rate)
    return slot.spec(tensor, sample_rate)


def _normalize_columns(specs: list[ParamSpec], values: torch.Tensor) -> torch.Tensor:
    """``(..., len(specs))`` physical values -> [0, 1], column ``k`` by ``specs[k]``."""
    return torch.stack([spec.normalize(values[..., k]) for k, spec in enumerate(specs)], dim=-1)


def _denormalize_columns(specs: list[ParamSpec], unit: torch.Tensor) -> torch.Tensor:
    """Inverse of `_normalize_columns`."""
    return torch.stack([spec.denormalize(unit[..., k]) for k, spec in enumerate(specs)], dim=-1)


def fit_standard_eq(response_db: torch.Tensor, weight: torch.Tensor, centre_hz: torch.Tensor,
                    sample_rate: int, steps: int, prior_weight: float, polish_steps: int = 20) -> EQFit:
    """Fit gain + `STANDARD_EQ` to measured responses (weighted least squares in dB).

    High-pass and shelves keep Q `SHELF_Q` (the high-pass's gain is unused); the bell
    starts from each of a few frequencies and the best start is kept per channel. Each
    start is a small nonlinear least-squares problem whose high-pass cutoff, shelf
    frequency and shelf gain trade off along a curved valley: Adam (``steps``) finds the
    valley but, preconditioning each parameter on its own, crawls along it, so
    `levenberg_marquardt` (``polish_steps``), which follows the valley through the
    Gauss-Newton curvature, finishes the fit. The fader lives in its schema range, band
    fields in `fitted_band_spec`'s, through a sigmoid.

    Args:
        response_db: ``(tracks, bands)`` from `band_responses`.
        weight: ``(tracks, bands)`` each band's weight (the stem's energy from
            `band_responses`, or `band_information`), normalised per channel here.
        centre_hz: ``(bands,)``.
        sample_rate: in Hz.
        steps: Adam steps.
        prior_weight: weight of ``sum(eq_gain_db^2) / EQ_PRIOR_DB^2`` (prefers small EQ
            where gain and EQ are interchangeable).
        polish_steps: Levenberg-Marquardt iterations after Adam.

    Returns:
        The fit (float64 tensors).
    """
    tracks = response_db.shape[0]
    starts = len(_PEAK_STARTS_HZ)
    bands = len(STANDARD_EQ)
    gain_spec = SPECS["gain_db"]
    freq_specs = [fitted_band_spec(t, "eq_freq_hz", sample_rate) for t in STANDARD_EQ]
    eq_gain_specs = [fitted_band_spec(t, "eq_gain_db", sample_rate) for t in STANDARD_EQ if t != "highpass"]
    q_spec = fitted_band_spec("peak", "eq_q", sample_rate)
    weight = torch.where(centre_hz >= LOWEST_FITTED_HZ, weight, 0.0)
    norm_weight = weight / weight.sum(-1, keepdim=True).clamp_min(1e-30)
    broadband = 10.0 * torch.log10((norm_weight * 10.0 ** (response_db / 10.0)).sum(-1).clamp_min(1e-20))
    start_hz = torch.tensor([_EQ_START_HZ[t] for t in STANDARD_EQ], dtype=torch.float64).repeat(starts, tracks, 1)
    start_hz[..., _PEAK_BAND] = torch.tensor(_PEAK_STARTS_HZ, dtype=torch.float64)[:, None]
    start_hz = torch.stack([start_hz[..., k].clamp(spec.minimum, spec.maximum) for k, spec in enumerate(freq_specs)],
                           dim=-1)
    types = torch.tensor([BAND_TYPE_IDS[t] for t in STANDARD_EQ]).expand(starts, tracks, -1)
    with_gain = torch.tensor([t != "highpass" for t in STANDARD_EQ])
    gains = int(with_gain.sum())
    gain_slot = torch.where(with_gain, torch.cumsum(with_gain, 0), 0)  # band -> its gain (0: none, 0 dB)
    # theta (starts, tracks, 1 + bands + gains + 1): logits of gain, band frequencies, band gains, bell Q.
    theta = torch.cat([
        logit(gain_spec.normalize(broadband.clamp(-79.0, 23.0))).repeat(starts, 1)[..., None],
        logit(_normalize_columns(freq_specs, start_hz)),
        logit(_normalize_columns(eq_gain_specs, torch.zeros(starts, tracks, gains, dtype=torch.float64))),
        logit(q_spec.normalize(torch.full((starts, tracks, 1), 1.0, dtype=torch.float64))),
    ], dim=-1)
    sqrt_weight = norm_weight.sqrt()

    def physical(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        gain, freq, eq_gain, q = torch.split(torch.sigmoid(theta), [1, bands, gains, 1], dim=-1)
        eq_gain = torch.cat([torch.zeros_like(eq_gain[..., :1]), _denormalize_columns(eq_gain_specs, eq_gain)],
                            dim=-1)[..., gain_slot]
        q = torch.cat([torch.full_like(freq[..., :_PEAK_BAND], SHELF_Q), q_spec.denormalize(q),
                       torch.full_like(freq[..., _PEAK_BAND + 1:], SHELF_Q)], dim=-1)
        return gain_spec.denormalize(gain[..., 0]), _denormalize_columns(freq_specs, freq), eq_gain, q

    def residuals(theta: torch.Tensor) -> torch.Tensor:
        """``(starts, tracks, bands_of_response + bands)``: weighted dB misfit, then the prior's terms."""
        gain, freq, eq_gain, q = physical(theta)
        model = gain[..., None] + eq_response_db(types, freq, eq_gain, q, sample_rate, centre_hz)
        return torch.cat([(model - response_db) * sqrt_weight, math.sqrt(prior_weight) * eq_gain / EQ_PRIOR_DB],
                         dim=-1)

    theta.requires_grad_(True)
    optimizer = torch.optim.Adam([theta], lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        residuals(theta).pow(2).sum().backward()
        optimizer.step()
    with torch.no_grad():
        theta, residual = levenberg_marquardt(residuals, theta.detach(), polish_steps)
        best = residual.pow(2).sum(-1).argmin(0)
        pick = lambda t: t[best, torch.arange(tracks)]  # noqa: E731
        gain, freq, eq_gain, q = (pick(t) for t in physical(theta))
        error = pick(residual[..., :response_db.shape[-1]].pow(2).sum(-1))
    return EQFit(gain, freq, eq_gain, q, error)
