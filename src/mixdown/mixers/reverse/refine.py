"""Stage 4: Levenberg-Marquardt through the console, and what the mix cannot determine.

The channel strips (EQ -> compressor -> fader -> pan) are the console's own
(`mixdown.console.channel_strips`); the mix is their sum under the limiter's gain, plus
the reverb. The refinement fits every free channel setting (`free_parameters`: fader,
pan, EQ bands, and the compressor where one is on) by least squares on the waveform,
which the console model reproduces exactly, on informative excerpts
(`mixdown.mixers.reverse.excerpts`): residual ``P(reference - g * sum_i d_i)`` with
``d_i`` channel ``i``'s contribution, ``g`` the limiter's gain (held for the
iteration, as the descent held it) and ``P`` a pre-emphasis (``1 - 0.95 z^-1``) that
flattens music's spectral tilt so that high bands count. The reverb is left out of the
waveform: its wet signal is noise that cannot be matched sample by sample
(`mixdown.mixers.reverse.reverb_fit` fits it on energies), and subtracting an estimate of
it would double that noise.

Each parameter lives in its range through a sigmoid (``spec.denormalize(sigmoid(t))``,
as in `ConsoleFit`). The Jacobian is taken by forward differences, all of a channel's
perturbations in one batched render of that channel's strip (a change of channel ``i``
changes ``d_i`` only); the normal equations couple every channel, so channels whose
stems overlap (an overhead and the drums it hears) are solved together. Levenberg-
Marquardt (Marquardt's diagonal scaling; K. Madsen, H. B. Nielsen and O. Tingleff,
"Methods for non-linear least squares problems", 2004) accepts only steps that lower the
residual, so the returned settings are the best iterate.

`identifiability` reads the same normal equations: a parameter the mix cannot determine
is one whose change by a step an engineer would notice (`NOTICEABLE`), with every other
parameter free to compensate, moves its channel's compared waveform by less than
`FLAT_SHARE` of that channel's own level: a shelf over a stem's whole spectrum against
its fader, a band where the stem has no energy, a compressor's attack on a sustained
sound, a tom the overhead microphones also hear.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from typing import NamedTuple

import numpy as np
import torch

from mixdown.console import ConsoleTensors
from mixdown.dsp.compressor import compressor
from mixdown.dsp.eq import parametric_eq
from mixdown.dsp.gain import db_to_amplitude
from mixdown.dsp.pan import pan_gains
from mixdown.mixers.reverse.config import EQ_PRIOR_DB
from mixdown.mixers.reverse.eq_fit import logit
from mixdown.mixers.reverse.excerpts import Excerpt, compared, gather
from mixdown.params import ParamSpec

PREEMPHASIS = 0.95
MAX_ROWS = 60_000
"""Compared samples (both channels) kept per iteration, a random subset of the excerpts'."""

_STEP = 1e-2  # forward-difference step, logit units
_MAX_STEP = 1.0  # largest move of one logit in one iteration
_TRIES = 8  # damping increases per iteration before giving up on it
_MIN_GAIN = 0.005  # converged when two iterations lowered the residual by less than this share
# Channels whose compared contribution is under this share (-60 dB) of the loudest are left alone;
# it is pre-emphasised, which puts a bass some 25 dB under a hi-hat of the same loudness.
_SILENT = 1e-3

NOTICEABLE: dict[str, tuple[str, float]] = {
    "gain_db": ("add", 1.0), "pan": ("add", 0.1), "eq_freq_hz": ("mul", 2.0 ** (1.0 / 3.0)),
    "eq_gain_db": ("add", 1.0), "eq_q": ("mul", 2.0 ** (1.0 / 3.0)), "threshold_db": ("add", 2.0),
    "ratio": ("mul", 1.5), "attack_ms": ("mul", 2.0), "release_ms": ("mul", 2.0), "knee_db": ("add", 3.0),
}
"""A change of each setting an engineer would notice: added (dB, pan units) or multiplied
(a third of an octave for frequencies and Q, 1.5x a ratio, 2x a time constant)."""

FLAT_SHARE = 0.01
"""A noticeable change that moves its channel's waveform by less than this share (-40 dB) of the
channel's level, the others compensating, is one the mix does not determine."""


class Entry(NamedTuple):
    """One fitted number: a `ConsoleTensors` field at ``(track, band)`` (band None for channel fields)."""

    field: str
    track: int
    band: int | None
    spec: ParamSpec


def entries(p: ConsoleTensors, free: dict, compressed: torch.Tensor) -> list[Entry]:
    """The fitted numbers of batch-1 settings ``p``, channel by channel.

    Args:
        p: the settings.
        free: `free_parameters` of ``p`` (field -> spec and mask).
        compressed: ``(tracks,)`` bool; compressor fields are fitted only on these.
    """
    out = []
    for track in range(p.tracks):
        for name, (spec, mask) in free.items():
            if spec.level == "master" or name == "reverb_send_db":
                continue
            if spec.group == "compressor" and not bool(compressed[track]):
                continue
            if spec.level == "band":
                out.extend(Entry(name, track, band, spec) for band in range(mask.shape[-1])
                           if bool(mask[0, track, band]))
            elif bool(mask[0, track]):
                out.append(Entry(name, track, None, spec))
    return out


def _get(p: ConsoleTensors, e: Entry) -> float:
    value = getattr(p, e.field)[0, e.track]
    return float(value if e.band is None else value[e.band])


def _values(spec: ParamSpec, theta: torch.Tensor) -> torch.Tensor:
    return spec.denormalize(torch.sigmoid(theta))


@dataclass
class Refinement:
    """What `refine` returns.

    Attributes:
        settings: the best batch-1 settings.
        entries: the fitted numbers.
        losses: relative residual energy after each iteration (the first: at the start).
        jacobian_normal: ``J^T J`` at the last Jacobian (in logit units), for `identifiability`.
        levels: ``(tracks,)`` norm of each channel's compared contribution at the end.
        slopes: ``d value / d logit`` of each entry at the end.
        converged: stopped because no step lowered the residual, or two iterations lowered
            it by less than 0.5 %.
    """

    settings: ConsoleTensors
    entries: list[Entry]
    losses: list[float]
    jacobian_normal: torch.Tensor | None
    levels: torch.Tensor
    slopes: torch.Tensor
    rows: int
    converged: bool


def refine(stems: torch.Tensor, reference: torch.Tensor, stereo: torch.Tensor, start: ConsoleTensors,
           free: dict, compressed: torch.Tensor, excerpts: list[Excerpt], gain_mask: torch.Tensor,
           sample_rate: int, iterations: int, eq_prior_weight: float, seed: int = 0,
           deadline: float | None = None, progress: Callable[[int, int], None] | None = None) -> Refinement:
    """Levenberg-Marquardt on the channel settings (see the module docstring).

    Args:
        stems: ``(tracks, 2, samples)`` the analysis window, mono stems duplicated.
        reference: ``(2, samples)``.
        stereo: ``(tracks,)`` bool.
        start: batch-1 settings to start from (loudness normalisation off).
        free: `free_parameters` of ``start``.
        compressed: ``(tracks,)`` bool, channels whose compressor is fitted.
        excerpts: the segments compared.
        gain_mask: ``(2, samples)`` the limiter's gain over the window.
        sample_rate: in Hz.
        iterations: most Jacobians taken.
        eq_prior_weight: weight of ``sum (eq_gain_db / EQ_PRIOR_DB)^2`` against the
            relative residual energy.
        seed: seeds the subset of compared samples.
        deadline: `time.perf_counter` time to stop at (None: none).
        progress: called with ``(iteration, iterations)``.

    Returns:
        The best settings found and the last normal equations.
    """
    fitted = entries(start, free, compressed)
    tracks = start.tracks
    width = [2 if bool(s) else 1 for s in stereo]
    segment_stems = gather(stems, excerpts).float()
    segment_mask = gather(gain_mask, excerpts).float()
    keep = compared(excerpts)
    channels, length = 2, segment_stems.shape[-1]
    candidates_rows = torch.nonzero(keep.expand(channels, -1).reshape(-1)).flatten()
    generator = torch.Generator().manual_seed(seed)
    if len(candidates_rows) > MAX_ROWS:
        pick = torch.randperm(len(candidates_rows), generator=generator)[:MAX_ROWS]
        candidates_rows = candidates_rows[pick.sort().values]
    rows = candidates_rows
    previous = (rows - 1).clamp_min(0)
    # a channel's first sample has no previous one (warm-ups are rendered, so others have)
    emphasis = torch.where(rows % length == 0, 0.0, PREEMPHASIS).double()
    flat_mask = segment_mask.reshape(-1).double()
    mask_now, mask_before = flat_mask[rows].float(), (emphasis * flat_mask[previous]).float()
    output_channel = (rows // length).long()
    sample = rows % length
    # where each compared row reads its stem after EQ and compressor ((width, length) flattened), now and before
    reads = {w: ((output_channel if w == 2 else torch.zeros_like(output_channel)) * length + sample,
                 (output_channel if w == 2 else torch.zeros_like(output_channel)) * length + (sample - 1).clamp_min(0))
             for w in (1, 2)}

    def emphasised(x: torch.Tensor) -> torch.Tensor:
        """Pre-emphasised compared samples ``(..., rows)`` of ``(..., 2, length)``: ``x[n] - 0.95 x[n-1]``."""
        flat = x.reshape(*x.shape[:-2], -1)
        return flat[..., rows].double() - emphasis * flat[..., previous].double()

    target = emphasised(gather(reference, excerpts))
    scale = math.sqrt(float(target.pow(2).sum())) or 1.0
    target = target / scale
    by_track = [[k for k, e in enumerate(fitted) if e.track == t] for t in range(tracks)]
    theta = torch.tensor([float(logit(e.spec.normalize(torch.tensor(_get(start, e), dtype=torch.float64))))
                          for e in fitted], dtype=torch.float64)
    prior_index = [k for k, e in enumerate(fitted) if e.field == "eq_gain_db"]
    prior_scale = math.sqrt(eq_prior_weight) / EQ_PRIOR_DB

    def settings_of(theta: torch.Tensor) -> ConsoleTensors:
        values = {name: getattr(start, name).clone() for name in {e.field for e in fitted}}
        for k, e in enumerate(fitted):
            value = _values(e.spec, theta[k])
            if e.band is None:
                values[e.field][0, e.track] = value
            else:
                values[e.field][0, e.track, e.band] = value
        return replace(start, **values)

    def contributions(track: int, thetas: torch.Tensor) -> torch.Tensor:
        """Rows of channel ``track``'s contribution ``(M, rows)`` for ``M`` settings of its entries ``(M, n)``."""
        count = thetas.shape[0]
        base = start.select_tracks(torch.tensor([track]))
        fields = {name: getattr(base, name).expand(count, *getattr(base, name).shape[1:]).clone()
                  for name in {fitted[k].field for k in by_track[track]} | {"gain_db"}}
        for column, k in enumerate(by_track[track]):
            e = fitted[k]
            value = _values(e.spec, thetas[:, column]).to(fields[e.field].dtype)
            if e.band is None:
                fields[e.field][:, 0] = value
            else:
                fields[e.field][:, 0, e.band] = value
        batched = {f.name: getattr(base, f.name).expand(count, *getattr(base, f.name).shape[1:])
                   for f in dataclass_fields(base)}
        return strip_rows(track, replace(base, **{**batched, **fields}))

    def strip_rows(track: int, c: ConsoleTensors) -> torch.Tensor:
        """`mixdown.console.channel_strips` of one channel under ``M`` settings, on the compared rows only:
        EQ and compressor on the stem, then the fader and pan gains and the limiter's gain on the rows
        (the same functions, composed the same way; tested equal)."""
        count = c.batch
        first = lambda t: t[:, 0]  # noqa: E731
        source = segment_stems[track, :width[track]].expand(count, width[track], length)
        with torch.no_grad():
            y, _ = parametric_eq(source, first(c.eq_type), first(c.eq_freq_hz), first(c.eq_gain_db), first(c.eq_q),
                                 sample_rate)
            y, _ = compressor(y, first(c.threshold_db), first(c.ratio), first(c.attack_ms), first(c.release_ms),
                              first(c.knee_db), first(c.makeup_db), sample_rate)
        gains = (pan_gains(first(c.pan), stereo[track].expand(count)) * db_to_amplitude(first(c.gain_db))[:, None]
                 * (~first(c.mute))[:, None]).double()  # (count, 2)
        now, before = reads[width[track]]
        flat = y.reshape(count, -1)
        return (gains[:, output_channel] * (mask_now * flat[:, now] - mask_before * flat[:, before]).double()) / scale

    def prior(theta: torch.Tensor) -> torch.Tensor:
        return torch.stack([prior_scale * _values(fitted[k].spec, theta[k]) for k in prior_index]) \
            if prior_index else torch.zeros(0, dtype=torch.float64)

    parts = torch.stack([contributions(t, theta[by_track[t]][None])[0] if by_track[t] else
                         contributions(t, torch.zeros(1, 0, dtype=torch.float64))[0] for t in range(tracks)])
    # A channel (nearly) silent in the excerpts tells nothing: its settings stay where they are
    # (its columns would be noise, and the steps they drive unbounded).
    heard = parts.norm(dim=-1) > _SILENT * float(parts.norm(dim=-1).max())
    moving = torch.tensor([bool(heard[e.track]) for e in fitted], dtype=torch.bool)
    residual = target - parts.sum(0)
    cost = float(residual.pow(2).sum() + prior(theta).pow(2).sum())
    losses = [cost]
    damping = 1e-2
    normal = None
    converged = False
    for iteration in range(iterations):
        if (deadline is not None and time.perf_counter() >= deadline) or not bool(moving.any()):
            break
        columns = torch.zeros(len(rows), len(fitted), dtype=torch.float64)
        for t in range(tracks):
            if not by_track[t] or not bool(heard[t]):
                continue
            index = by_track[t]
            perturbed = theta[index][None] + _STEP * torch.eye(len(index), dtype=torch.float64)
            columns[:, index] = ((contributions(t, perturbed) - parts[t][None]) / _STEP).T
        prior_jacobian = torch.zeros(len(prior_index), len(fitted), dtype=torch.float64)
        for row, k in enumerate(prior_index):
            e = fitted[k]
            prior_jacobian[row, k] = prior_scale * float(
                (_values(e.spec, theta[k] + 1e-6) - _values(e.spec, theta[k] - 1e-6)) / 2e-6)
        normal = columns.T @ columns + prior_jacobian.T @ prior_jacobian
        gradient = columns.T @ residual - prior_jacobian.T @ prior(theta)
        diagonal = torch.diag(normal.diagonal().clamp_min(1e-12))
        improved = False
        for _ in range(_TRIES):
            step = torch.zeros_like(theta)
            free = torch.nonzero(moving).flatten()
            system = (normal + damping * diagonal)[free][:, free]
            step[free] = torch.linalg.solve(system, gradient[free]).clamp(-_MAX_STEP, _MAX_STEP)
            trial = theta + step
            trial_parts = parts.clone()
            for t in range(tracks):
                if by_track[t] and bool((step[by_track[t]] != 0).any()):
                    trial_parts[t] = contributions(t, trial[by_track[t]][None])[0]
            trial_residual = target - trial_parts.sum(0)
            trial_cost = float(trial_residual.pow(2).sum() + prior(trial).pow(2).sum())
            if trial_cost < cost:
                theta, parts, residual, cost = trial, trial_parts, trial_residual, trial_cost
                damping = max(damping / 3.0, 1e-9)
                improved = True
                break
            damping = min(damping * 4.0, 1e9)
        losses.append(cost)
        if progress is not None:
            progress(iteration + 1, iterations)
        stalled = len(losses) > 2 and losses[-1] > (1.0 - _MIN_GAIN) * losses[-3]
        if not improved or stalled:
            converged = True
            break
    slopes = torch.tensor([float((_values(e.spec, theta[k] + 1e-6) - _values(e.spec, theta[k] - 1e-6)) / 2e-6)
                           for k, e in enumerate(fitted)], dtype=torch.float64)
    return Refinement(settings=settings_of(theta), entries=fitted, losses=losses, jacobian_normal=normal,
                      levels=parts.norm(dim=-1), slopes=slopes, rows=len(rows), converged=converged)


def identifiability(result: Refinement, names: list[str]) -> dict[str, tuple[str, ...]]:
    """Per channel, the fitted settings the mix does not determine (see the module docstring).

    With ``J`` the last Jacobian (logit units), the part of a setting's column that no
    other setting can reproduce has norm ``1 / sqrt([(J^T J)^-1]_kk)``; times the
    setting's `NOTICEABLE` step (in logits) it is how far that step moves the compared
    waveform when the others compensate. Under `FLAT_SHARE` of the channel's own level,
    the setting is undetermined.

    Args:
        result: the refinement (its last normal equations).
        names: channel names in track order.

    Returns:
        ``{channel name: setting paths}``, e.g. ``("eq[1].gain_db", "compressor.attack_ms")``;
        channels with none are left out.
    """
    if result.jacobian_normal is None or not result.entries:
        return {}
    normal = result.jacobian_normal
    ridge = 1e-12 * float(normal.diagonal().mean()) + 1e-300
    covariance = torch.linalg.pinv(normal + ridge * torch.eye(normal.shape[0], dtype=normal.dtype), hermitian=True)
    unique = covariance.diagonal().clamp_min(1e-300).rsqrt()  # norm of each column's own part
    flat: dict[str, list[str]] = {}
    loudest = float(result.levels.max())
    for k, e in enumerate(result.entries):
        if not float(result.levels[e.track]) > _SILENT * loudest:  # not heard: nothing determined
            flat.setdefault(names[e.track], []).append(setting_path(e))
            continue
        kind, step = NOTICEABLE.get(e.field, ("add", 1.0))
        value = _get(result.settings, e)
        if kind == "mul":
            step = abs(value) * (step - 1.0)
        step_logit = step / max(abs(float(result.slopes[k])), 1e-12)
        if float(unique[k]) * step_logit < FLAT_SHARE * float(result.levels[e.track]):
            flat.setdefault(names[e.track], []).append(setting_path(e))
    return {name: tuple(paths) for name, paths in flat.items()}


def setting_path(e: Entry) -> str:
    """The entry's path in a channel's settings, e.g. ``"gain_db"``, ``"eq[2].q"``, ``"compressor.ratio"``."""
    key = e.spec.key
    if e.band is not None:
        return f"eq[{e.band}].{key}"
    return f"{e.spec.group}.{key}" if e.spec.group else key


def limiter_gain_mask(mix: torch.Tensor, ceiling_dbtp: float, sample_rate: int) -> torch.Tensor:
    """The limiter's gain ``limit(mix) / mix`` for ``(2, samples)`` (ones with the limiter off)."""
    from mixdown.dsp.limiter import limit

    if math.isnan(ceiling_dbtp):
        return torch.ones_like(mix)
    raw = mix.float().numpy()
    limited = limit(raw, ceiling_dbtp, sample_rate)
    return torch.from_numpy(np.divide(limited, raw, out=np.ones_like(raw), where=raw != 0)).to(mix.dtype)
