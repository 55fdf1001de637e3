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
as in `ConsoleFit`). The Jacobian is taken by forward differences (a change of channel
``i`` changes ``d_i`` only); a perturbation re-runs only the stages of the strip it
changes (an EQ entry the EQ and the compressor, a compressor entry the compressor on the
held EQ output, a fader or pan entry neither), and the perturbations of all channels of
one width and stage run as one batch, as do the trial steps of all channels (the
compiled filters run many signals side by side). The normal equations couple every
channel, so channels whose stems overlap (an overhead and the drums it hears) are solved
together. Levenberg-
Marquardt (Marquardt's diagonal scaling; K. Madsen, H. B. Nielsen and O. Tingleff,
"Methods for non-linear least squares problems", 2004) accepts only steps that lower the
residual, so the returned settings are the best iterate.

`identifiability` reads the same normal equations: the range of a parameter is the values
that, with every other parameter free to compensate, move its channel's compared
waveform by less than `FLAT_SHARE` of that channel's own level, and a parameter the mix
cannot determine is one whose change by a step an engineer would notice (`NOTICEABLE`)
stays inside that range: a shelf over a stem's whole spectrum against
its fader, a band where the stem has no energy, a compressor's attack on a sustained
sound, a tom the overhead microphones also hear.
"""

from __future__ import annotations

import itertools
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
from mixdown.mixers.reverse.eq_fit import fitted_band_spec, logit
from mixdown.mixers.reverse.excerpts import Excerpt, compared, gather
from mixdown.params import EQ_BAND_TYPES, ParamSpec

PREEMPHASIS = 0.95
MAX_ROWS = 60_000
"""Compared samples (both channels) kept per iteration, a random subset of the excerpts'."""

_STEP = 1e-2  # forward-difference step, logit units
_MAX_STEP = 1.0  # largest move of one logit in one iteration
_BAND_LOGIT = 4.0  # EQ band settings start at most this far out (98 % of their range): the sigmoid still has slope
_TRIES = 8  # damping increases per iteration before giving up on it
_MIN_GAIN = 0.01  # converged when an iteration lowered the residual by less than this share
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


def entries(p: ConsoleTensors, free: dict, compressed: torch.Tensor, sample_rate: int) -> list[Entry]:
    """The fitted numbers of batch-1 settings ``p``, channel by channel.

    Band fields keep to `fitted_band_spec`'s ranges, as in `fit_standard_eq`.

    Args:
        p: the settings.
        free: `free_parameters` of ``p`` (field -> spec and mask).
        compressed: ``(tracks,)`` bool; compressor fields are fitted only on these.
        sample_rate: in Hz.
    """
    out = []
    for track in range(p.tracks):
        for name, (spec, mask) in free.items():
            if spec.level == "master" or name == "reverb_send_db":
                continue
            if spec.group == "compressor" and not bool(compressed[track]):
                continue
            if spec.level == "band":
                out.extend(Entry(name, track, band, fitted_band_spec(EQ_BAND_TYPES[int(p.eq_type[0, track, band])],
                                                                     name, sample_rate))
                           for band in range(mask.shape[-1]) if bool(mask[0, track, band]))
            elif bool(mask[0, track]):
                out.append(Entry(name, track, None, spec))
    return out


def _get(p: ConsoleTensors, e: Entry) -> float:
    value = getattr(p, e.field)[0, e.track]
    return float(value if e.band is None else value[e.band])


def _values(spec: ParamSpec, theta: torch.Tensor) -> torch.Tensor:
    return spec.denormalize(torch.sigmoid(theta))


def _stage(e: Entry) -> str:
    """The first stage of a channel strip an entry changes: ``"eq"``, ``"compressor"`` or ``"gain"`` (fader, pan)."""
    if e.spec.level == "band":
        return "eq"
    return "compressor" if e.spec.group == "compressor" else "gain"


class Strip(NamedTuple):
    """One channel strip at the refinement's current settings.

    Attributes:
        eq: its EQ's output on the gathered excerpts, float32 ``(1, width, length)`` (``width`` 1
            for a mono stem).
        samples: float32 ``(rows,)`` its compressor's output on the compared rows, pre-emphasised,
            under the limiter's gain (before the fader and pan).
        rows: float64 ``(rows,)`` its contribution to the compared rows (relative to the target's norm).
    """

    eq: torch.Tensor
    samples: torch.Tensor
    rows: torch.Tensor


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
        converged: stopped because no step lowered the residual, or an iteration lowered it
            by less than 1 %.
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
           deadline: float | None = None, progress: Callable[[int, int], None] | None = None,
           held: torch.Tensor | None = None) -> Refinement:
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
        held: ``(tracks,)`` bool, channels whose settings stay at the start (rendered, not
            fitted: a stem its mix holds as another rendering, whose waveform says nothing
            about its settings); None: none.

    Returns:
        The best settings found and the last normal equations.
    """
    fitted = entries(start, free, compressed, sample_rate)
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
    boundary = int((output_channel == 0).sum())
    output_spans = (slice(0, boundary), slice(boundary, len(rows)))  # the rows are sorted: left first
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
    band = torch.tensor([e.band is not None for e in fitted])
    theta = torch.where(band, theta.clamp(-_BAND_LOGIT, _BAND_LOGIT), theta)
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

    def strip_settings(requests: list[tuple[int, torch.Tensor]]) -> ConsoleTensors:
        """Channels alone under settings of their entries, ``(track, logits (M_i, n_i))`` per request,
        stacked along the batch (batch ``sum M_i``, one track)."""
        batches = []
        for track, thetas in requests:
            count = thetas.shape[0]
            base = start.select_tracks(torch.tensor([track]))
            values = {name: getattr(base, name).expand(count, *getattr(base, name).shape[1:]).clone()
                      for name in {fitted[k].field for k in by_track[track]}}
            for column, k in enumerate(by_track[track]):
                e = fitted[k]
                value = _values(e.spec, thetas[:, column]).to(values[e.field].dtype)
                if e.band is None:
                    values[e.field][:, 0] = value
                else:
                    values[e.field][:, 0, e.band] = value
            batches.append({f.name: values.get(f.name, getattr(base, f.name).expand(
                count, *getattr(base, f.name).shape[1:])) for f in dataclass_fields(base)})
        return ConsoleTensors(**{name: torch.cat([b[name] for b in batches]) for name in batches[0]})

    def equalised(owners: list[int], c: ConsoleTensors) -> torch.Tensor:
        """The stems of channels ``owners`` (one per row, all of one width) through the EQ of ``c``'s rows:
        ``(M, width, length)``."""
        source = segment_stems[torch.tensor(owners), :width[owners[0]]]
        with torch.no_grad():
            return parametric_eq(source, c.eq_type[:, 0], c.eq_freq_hz[:, 0], c.eq_gain_db[:, 0], c.eq_q[:, 0],
                                 sample_rate)[0]

    def compared_samples(y: torch.Tensor) -> torch.Tensor:
        """The pre-emphasised compared rows ``(M, rows)`` of strip outputs ``y`` ``(M, width, length)``, under
        the limiter's gain, before the fader and pan."""
        now, before = reads[y.shape[1]]
        flat = y.reshape(y.shape[0], -1)
        return flat.index_select(1, now).mul_(mask_now).sub_(flat.index_select(1, before).mul_(mask_before))

    def compressed_samples(c: ConsoleTensors, y: torch.Tensor) -> torch.Tensor:
        """`compared_samples` of ``y`` ``(M, width, length)`` through the compressor of each of ``c``'s rows
        (only rows with one on run it)."""
        samples = compared_samples(y)
        active = torch.nonzero((c.ratio[:, 0] != 1.0) | (c.makeup_db[:, 0] != 0.0)).flatten()
        if len(active):
            with torch.no_grad():
                samples[active] = compared_samples(compressor(
                    y[active], c.threshold_db[active, 0], c.ratio[active, 0], c.attack_ms[active, 0],
                    c.release_ms[active, 0], c.knee_db[active, 0], c.makeup_db[active, 0], sample_rate)[0])
        return samples

    def strip_rows(owners: list[int], c: ConsoleTensors, samples: torch.Tensor) -> torch.Tensor:
        """Contributions ``(M, rows)`` of channels ``owners`` from their `compared_samples` under ``c``'s fader
        and pan gains: `mixdown.console.channel_strips` composed the same way, on the compared rows only
        (tested equal)."""
        gains = (pan_gains(c.pan[:, 0], stereo[torch.tensor(owners)]) * db_to_amplitude(c.gain_db[:, 0])[:, None]
                 * (~c.mute[:, 0])[:, None]).double() / scale  # (M, 2)
        out = samples.to(torch.float64, copy=True)
        for channel, span in enumerate(output_spans):
            out[:, span].mul_(gains[:, channel, None])
        return out

    def render(theta: torch.Tensor, which: list[int]) -> dict[int, Strip]:
        """The strips of channels ``which`` at logits ``theta``, the channels of each width in one batch."""
        out = {}
        for w in (1, 2):
            owners = [t for t in which if width[t] == w]
            if not owners:
                continue
            c = strip_settings([(t, theta[by_track[t]][None]) for t in owners])
            eq = equalised(owners, c)
            samples = compressed_samples(c, eq)
            contribution = strip_rows(owners, c, samples)
            out.update({t: Strip(eq[i:i + 1], samples[i], contribution[i]) for i, t in enumerate(owners)})
        return out

    def jacobian(theta: torch.Tensor, columns: torch.Tensor) -> None:
        """Forward-difference Jacobian of the heard channels' contributions, transposed, into ``columns``
        ``(entries, rows)`` (the rows of the others are left as they are).

        A perturbation re-runs only the stages it changes: an EQ entry the EQ and the compressor, a
        compressor entry the compressor on the current EQ output, a fader or pan entry neither (the
        compared rows are linear in the fader and pan gains); the perturbations of all channels of one
        width and stage run as one batch.
        """
        for w, stage in itertools.product((1, 2), ("eq", "compressor", "gain")):
            requests, owners, keys = [], [], []
            for t in range(tracks):
                members = [m for m, k in enumerate(by_track[t]) if _stage(fitted[k]) == stage]
                if width[t] != w or not bool(heard[t]) or not members:
                    continue
                index = by_track[t]
                requests.append((t, theta[index][None] + _STEP * torch.eye(len(index), dtype=torch.float64)[members]))
                owners += [t] * len(members)
                keys += [index[m] for m in members]
            if not requests:
                continue
            c = strip_settings(requests)
            if stage == "eq":
                samples = compressed_samples(c, equalised(owners, c))
            elif stage == "compressor":
                samples = compressed_samples(c, torch.cat([strips[t].eq for t in owners]))
            else:
                samples = torch.stack([strips[t].samples for t in owners])
            columns[keys] = (strip_rows(owners, c, samples) - parts[owners]) / _STEP

    def prior(theta: torch.Tensor) -> torch.Tensor:
        return torch.stack([prior_scale * _values(fitted[k].spec, theta[k]) for k in prior_index]) \
            if prior_index else torch.zeros(0, dtype=torch.float64)

    strips = render(theta, list(range(tracks)))
    parts = torch.stack([strips[t].rows for t in range(tracks)])
    # A channel (nearly) silent in the excerpts tells nothing: its settings stay where they are
    # (its columns would be noise, and the steps they drive unbounded).
    heard = parts.norm(dim=-1) > _SILENT * float(parts.norm(dim=-1).max())
    if held is not None:
        heard = heard & ~held
    moving = torch.tensor([bool(heard[e.track]) for e in fitted], dtype=torch.bool)
    residual = target - parts.sum(0)
    cost = float(residual.pow(2).sum() + prior(theta).pow(2).sum())
    losses = [cost]
    damping = 1e-2
    normal = None
    converged = False
    columns = torch.zeros(len(fitted), len(rows), dtype=torch.float64)  # the Jacobian, transposed
    for iteration in range(iterations):
        if (deadline is not None and time.perf_counter() >= deadline) or not bool(moving.any()):
            break
        jacobian(theta, columns)
        prior_jacobian = torch.zeros(len(prior_index), len(fitted), dtype=torch.float64)
        for row, k in enumerate(prior_index):
            e = fitted[k]
            prior_jacobian[row, k] = prior_scale * float(
                (_values(e.spec, theta[k] + 1e-6) - _values(e.spec, theta[k] - 1e-6)) / 2e-6)
        normal = columns @ columns.T + prior_jacobian.T @ prior_jacobian
        gradient = columns @ residual - prior_jacobian.T @ prior(theta)
        diagonal = torch.diag(normal.diagonal().clamp_min(1e-12))
        improved = False
        for _ in range(_TRIES):
            step = torch.zeros_like(theta)
            free = torch.nonzero(moving).flatten()
            system = (normal + damping * diagonal)[free][:, free]
            step[free] = torch.linalg.solve(system, gradient[free]).clamp(-_MAX_STEP, _MAX_STEP)
            trial = theta + step
            trial_strips = {**strips, **render(trial, [t for t in range(tracks)
                                                      if by_track[t] and bool((step[by_track[t]] != 0).any())])}
            trial_parts = torch.stack([trial_strips[t].rows for t in range(tracks)])
            trial_residual = target - trial_parts.sum(0)
            trial_cost = float(trial_residual.pow(2).sum() + prior(trial).pow(2).sum())
            if trial_cost < cost:
                theta, strips, parts, residual, cost = trial, trial_strips, trial_parts, trial_residual, trial_cost
                damping = max(damping / 3.0, 1e-9)
                improved = True
                break
            damping = min(damping * 4.0, 1e9)
        losses.append(cost)
        if progress is not None:
            progress(iteration + 1, iterations)
        stalled = len(losses) > 1 and losses[-1] > (1.0 - _MIN_GAIN) * losses[-2]
        if not improved or stalled:
            converged = True
            break
    slopes = torch.tensor([float((_values(e.spec, theta[k] + 1e-6) - _values(e.spec, theta[k] - 1e-6)) / 2e-6)
                           for k, e in enumerate(fitted)], dtype=torch.float64)
    return Refinement(settings=settings_of(theta), entries=fitted, losses=losses, jacobian_normal=normal,
                      levels=parts.norm(dim=-1), slopes=slopes, rows=len(rows), converged=converged)


class SettingRange(NamedTuple):
    """What the mix says about one fitted setting (`identifiability`).

    Attributes:
        path: the setting's path in its channel's settings (`setting_path`).
        low, high: the values it could take, in its unit, without moving its channel's
            compared waveform by more than `FLAT_SHARE` of the channel's level while the
            other settings compensate (linearised at the fit, kept to its range).
        determined: a change by the `NOTICEABLE` step leaves that range (the mix tells it).
    """

    path: str
    low: float
    high: float
    determined: bool


def identifiability(result: Refinement, names: list[str],
                    at: ConsoleTensors | None = None) -> dict[str, tuple[SettingRange, ...]]:
    """Per channel, the range of values the mix leaves each fitted setting (see the module docstring).

    With ``J`` the last Jacobian (logit units), the part of a setting's column that no
    other setting can reproduce has norm ``u = 1 / sqrt([(J^T J)^-1]_kk)``: a move of
    ``d`` logits, the others compensating, changes the compared waveform by ``u d``. The
    setting's range is where that stays under `FLAT_SHARE` of the channel's own level
    ``L``: ``value +- FLAT_SHARE L / u`` logits, times the setting's slope in its unit. The
    setting is determined when its `NOTICEABLE` step leaves the range. A channel not heard
    in the compared excerpts determines nothing: its ranges are the settings' whole ranges.

    Args:
        result: the refinement (its last normal equations).
        names: channel names in track order.
        at: batch-1 settings the ranges are centred on, with the refinement's layout (the
            settings returned; None: the refinement's).

    Returns:
        ``{channel name: ranges}``, every fitted setting of the channel in entry order;
        channels without fitted settings are left out.
    """
    if result.jacobian_normal is None or not result.entries:
        return {}
    normal = result.jacobian_normal
    ridge = 1e-12 * float(normal.diagonal().mean()) + 1e-300
    covariance = torch.linalg.pinv(normal + ridge * torch.eye(normal.shape[0], dtype=normal.dtype), hermitian=True)
    unique = covariance.diagonal().clamp_min(1e-300).rsqrt()  # norm of each column's own part
    ranges: dict[str, list[SettingRange]] = {}
    loudest = float(result.levels.max())
    for k, e in enumerate(result.entries):
        level = float(result.levels[e.track])
        value = _get(result.settings if at is None else at, e)
        kind, step = NOTICEABLE.get(e.field, ("add", 1.0))
        if kind == "mul":
            step = abs(value) * (step - 1.0)
        half = math.inf
        if level > _SILENT * loudest:
            half = FLAT_SHARE * level / float(unique[k]) * max(abs(float(result.slopes[k])), 1e-12)
        ranges.setdefault(names[e.track], []).append(SettingRange(
            setting_path(e), max(e.spec.minimum, value - half), min(e.spec.maximum, value + half), step >= half))
    return {name: tuple(found) for name, found in ranges.items()}


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
