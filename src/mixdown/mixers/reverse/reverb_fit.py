"""Stage 2a: reverb sends, decay and pre-delay from the energy the dry estimate leaves over.

The console's reverb is noise under a decaying envelope (`mixdown.dsp.reverb`): two
decays of the response are two different noises, so its wet signal cannot be matched
sample by sample unless the decay is right to the sample of its length. Its *energy* is
predictable, though: for a response whose variance envelope is ``v(t)``,
``E|STFT(h * u)(t, f)|^2 = sum_tau v_f(tau) |STFT(u)(t - tau, f)|^2`` (the wet energy is
the dry energy smeared by the envelope). So the fit works on band energies (Hann STFT,
`N_FFT` / `HOP`, `BANDS` log-spaced bands): the energy of the residual ``reference -
dry`` is modelled as ``sum_i s_i^2 M_i`` where ``M_i`` is channel ``i``'s dry energy
smeared by the response's envelope (measured per band from the response itself, so the
faster-decaying high band is included), and the squared send amplitudes ``s_i^2 >= 0``
are solved for by non-negative least squares. Bins are weighted by
``1 / (residual + dry)^2``: relative errors, and the reverb tails (little dry energy,
the wet alone) count most, down to 30 dB under each band's mean level. The decay and pre-delay are searched on a grid (`DECAYS_S`,
`PREDELAYS_MS`, a pre-delay being a shift of the smeared energies), and the decay then
refined by golden-section search. A channel whose solved send is 0 has no send (off).

The reverb is judged by these energies, not by the reported loss: that loss compares log
magnitudes, under which two renderings of one reverb with different noise (a decay off
by a fifth) differ almost as much as that reverb and none, so it would turn off any
reverb not right to the sample, as a real mix's never is.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from mixdown.dsp.reverb import impulse_response
from mixdown.params import SPECS

N_FFT = 2048
HOP = 1024
BANDS = 24
"""Log-spaced bands from 60 Hz to 16 kHz (or under Nyquist)."""

DECAYS_S = tuple(float(d) for d in np.geomspace(0.3, 4.0, 8))
PREDELAYS_MS = (0.0, 10.0, 20.0, 30.0, 40.0, 60.0, 80.0, 110.0, 150.0, 200.0)
OFF_BELOW_DB = -45.0
"""Sends solved under this (dB) are returned off: the wet signal then sits 45 dB or more under
its channel, inaudible under the dry signal."""

_GOLDEN_STEPS = 5


@dataclass(frozen=True)
class ReverbFit:
    """Fitted reverb (`fit_reverb`).

    Attributes:
        send_db: ``(tracks,)`` float64, ``-inf`` where the channel has no send.
        decay_s: RT60 of the response.
        predelay_ms: its pre-delay.
        explained: share of the residual's weighted energy the wet model explains (0..1).
        gram: ``(tracks, tracks)`` normal matrix of the squared sends at the fit (for
            `send_sensitivity`).
        cost: weighted misfit at the fit.
    """

    send_db: torch.Tensor
    decay_s: float
    predelay_ms: float
    explained: float
    gram: np.ndarray
    cost: float


def _band_power(x: torch.Tensor, band: torch.Tensor, bands: int) -> torch.Tensor:
    """``(..., samples)`` -> band energies ``(..., bands, frames)``."""
    spectrum = torch.stft(x.reshape(-1, x.shape[-1]).float(), N_FFT, HOP,
                          window=torch.hann_window(N_FFT), center=True, return_complex=True)
    keep = band >= 0
    power = torch.view_as_real(spectrum[:, keep]).square().sum(-1).double()  # the bins in a band only
    out = torch.zeros(power.shape[0], bands, power.shape[-1], dtype=torch.float64)
    out.index_add_(1, band[keep], power)
    return out.reshape(*x.shape[:-1], bands, power.shape[-1])


def nonnegative_least_squares(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``argmin x^T G x - 2 x^T b`` over ``x >= 0`` for a small positive semi-definite ``G`` (active set;
    a variable whose diagonal is 0, a silent regressor, stays 0)."""
    free = np.diag(gram) > 0.0
    x = np.zeros(len(rhs))
    for _ in range(2 * len(rhs) + 2):
        x = np.zeros(len(rhs))
        index = np.flatnonzero(free)
        if len(index):
            x[index] = np.linalg.solve(gram[np.ix_(index, index)], rhs[index])
        if (x[index] >= 0.0).all():
            gradient = rhs - gram @ x
            wake = ~free & (np.diag(gram) > 0.0) & (gradient > 1e-12 * (abs(rhs).max() + 1e-300))
            if not wake.any():
                return x
            free[int(np.argmax(np.where(wake, gradient, -np.inf)))] = True
        else:
            free &= x > 0.0
    return np.clip(x, 0.0, None)


def _bands(sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Band index of every STFT bin (-1: outside the bands) and the bins per band."""
    freqs = torch.fft.rfftfreq(N_FFT, 1.0 / sample_rate, dtype=torch.float64)
    edges = torch.from_numpy(np.geomspace(60.0, min(16000.0, 0.45 * sample_rate), BANDS + 1))
    band = torch.bucketize(freqs, edges) - 1
    band[(band < 0) | (band >= BANDS)] = -1
    counts = torch.zeros(BANDS, dtype=torch.float64).index_add_(
        0, band[band >= 0], torch.ones(int((band >= 0).sum()), dtype=torch.float64))
    return band, counts


@functools.lru_cache(maxsize=64)
def _envelope(decay_s: float, sample_rate: int) -> torch.Tensor:
    """``(2, bands, frames)``: the response's variance envelope per hop and band (no pre-delay),
    ``HOP * E|STFT(h)|^2 / sum(window^2)`` averaged over each band's bins."""
    band, counts = _bands(sample_rate)
    response = impulse_response(torch.tensor(decay_s, dtype=torch.float64), 0.0, sample_rate)
    window_energy = float(torch.hann_window(N_FFT, dtype=torch.float64).square().sum())
    return HOP * _band_power(response, band, BANDS) / counts[:, None] / window_energy


def fit_reverb(dry: torch.Tensor, residual: torch.Tensor, sample_rate: int) -> ReverbFit:
    """Sends, decay and pre-delay whose wet energy best explains ``residual`` (see the module docstring).

    Args:
        dry: ``(tracks, 2, samples)`` each channel's contribution to the mix bus (its send
            at 0 dB feeds the reverb with exactly this).
        residual: ``(2, samples)`` the mix less the dry contributions.
        sample_rate: in Hz.

    Returns:
        The fit; all sends off at the default decay when nothing is explained.
    """
    tracks, _, samples = dry.shape
    band, _ = _bands(sample_rate)
    fallback = ReverbFit(torch.full((tracks,), -math.inf, dtype=torch.float64), SPECS["reverb_decay_s"].default,
                         SPECS["reverb_predelay_ms"].default, 0.0, np.zeros((tracks, tracks)), 0.0)
    if samples < N_FFT:
        return fallback
    dry_power = _band_power(dry, band, BANDS)  # (tracks, 2, bands, frames)
    target = _band_power(residual, band, BANDS)  # (2, bands, frames)
    everything = _band_power(dry.sum(0), band, BANDS)
    frames = target.shape[-1]
    level = target + everything
    # relative errors, but not below 30 dB under each band's mean level (the far tails' energy is
    # too small for the statistical model to be trusted there)
    weight = 1.0 / (level + 1e-3 * level.mean(-1, keepdim=True) + 1e-30).square()
    target_cost = float((weight * target.square()).sum())
    if target_cost <= 0.0:
        return fallback
    # Frame-major rows of the (channel, band) energies: a pre-delay shifts whole rows, so the model
    # of every pre-delay is a view (tracks, frames - shift, 2 * bands) of one buffer.
    rows = lambda x: x.movedim(-1, -3).flatten(-2)  # noqa: E731  (..., 2, bands, frames) -> (..., frames, 2 * bands)
    weight_rows, weighted_target = rows(weight), rows(weight * target)
    dry_spectrum = torch.fft.rfft(rows(dry_power), n=2 * frames, dim=-2)
    model, weighted = torch.empty(2, tracks, frames, 2 * BANDS, dtype=torch.float64)
    memo: dict[float, tuple[float, float, np.ndarray, np.ndarray]] = {}

    def evaluate(decay_s: float) -> tuple[float, float, np.ndarray, np.ndarray]:
        """(cost, predelay_ms, squared sends, normal matrix) of the best pre-delay at this decay."""
        decay_s = round(decay_s, 3)  # the settings' precision: the response rendered is this one
        if decay_s in memo:
            return memo[decay_s]
        envelope = rows(_envelope(decay_s, sample_rate)[..., :frames])
        smeared = torch.fft.irfft(dry_spectrum * torch.fft.rfft(envelope, n=2 * frames, dim=-2), n=2 * frames,
                                  dim=-2)[:, :frames]
        best = (math.inf, 0.0, np.zeros(tracks), np.zeros((tracks, tracks)))
        for predelay_ms in PREDELAYS_MS:
            shift = predelay_ms * sample_rate / 1000.0 / HOP
            whole = math.floor(shift)
            if whole >= frames:
                break
            fraction, kept = shift - whole, frames - whole
            # the model is 0 before the shift: only its rows from `whole` on enter the normal equations
            tail = model[:, :kept]
            torch.mul(smeared[:, :kept], 1.0 - fraction, out=tail)
            tail[:, 1:].add_(smeared[:, :kept - 1], alpha=fraction)
            torch.mul(tail, weight_rows[whole:], out=weighted[:, :kept])
            design = tail.reshape(tracks, -1)
            gram = (weighted[:, :kept].reshape(tracks, -1) @ design.T).numpy()
            rhs = (design @ weighted_target[whole:].reshape(-1)).numpy()
            gram += np.eye(tracks) * (1e-12 * np.trace(gram) / tracks + 1e-300)
            squared = nonnegative_least_squares(gram, rhs)
            cost = target_cost - 2.0 * float(squared @ rhs) + float(squared @ gram @ squared)
            if cost < best[0]:
                best = (cost, predelay_ms, squared, gram)
        memo[decay_s] = best
        return best

    grid = [evaluate(d)[0] for d in DECAYS_S]
    k = int(np.argmin(grid))
    lo, hi = math.log(DECAYS_S[max(k - 1, 0)]), math.log(DECAYS_S[min(k + 1, len(DECAYS_S) - 1)])
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = evaluate(math.exp(a))[0], evaluate(math.exp(b))[0]
    for _ in range(_GOLDEN_STEPS):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = evaluate(math.exp(a))[0]
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = evaluate(math.exp(b))[0]
    decay_s = min(memo, key=lambda d: memo[d][0])
    cost, predelay_ms, squared, gram = memo[decay_s]
    if not squared.any():
        return fallback
    send_db = torch.from_numpy(10.0 * np.log10(np.where(squared > 0, squared, 1e-300)))
    send_db = torch.where(send_db < OFF_BELOW_DB, -math.inf, send_db.clamp(max=SPECS["reverb_send_db"].maximum))
    return ReverbFit(send_db=send_db, decay_s=decay_s, predelay_ms=predelay_ms,
                     explained=max(0.0, 1.0 - cost / target_cost), gram=gram, cost=cost)


def undetermined_sends(fit: ReverbFit, noticeable_db: float = 1.0, share: float = 0.01) -> np.ndarray:
    """``(tracks,)`` bool: sends the energies do not determine.

    A send is undetermined when moving it by ``noticeable_db`` (others re-solved) changes
    the weighted misfit by less than ``share`` of it: the Schur complement of the normal
    matrix gives that change, ``(delta s^2)^2 / [G^-1]_ii``. Channels without a send are
    judged at the change that would switch them on at -40 dB.
    """
    tracks = fit.gram.shape[0]
    if fit.cost <= 0.0 or not np.isfinite(fit.gram).all() or tracks == 0:
        return np.zeros(tracks, dtype=bool)
    inverse = np.linalg.pinv(fit.gram, hermitian=True)
    squared = np.where(np.isfinite(fit.send_db.numpy()), 10.0 ** (fit.send_db.numpy() / 10.0), 1e-4)
    change = squared * (10.0 ** (noticeable_db / 10.0) - 1.0)
    increase = change ** 2 / np.maximum(np.diag(inverse), 1e-300)
    return increase < share * fit.cost
