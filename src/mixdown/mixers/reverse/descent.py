"""Stage 2: gradient descent through the differentiable console.

Adam moves the free parameters (`free_parameters`: selected from the parameter schema
`mixdown.params.SCHEMA` by the processors the config fits) through
`render_unnormalised`, minimising `StereoLoss` on random excerpts (`descend`). Each
parameter lives in its full range through a sigmoid (`ConsoleFit`), so every iterate is
a valid setting.

References:
    J. T. Colonel and J. Reiss, "Reverse engineering of a recording mix with
    differentiable digital signal processing", JASA 150(1), 2021.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import torch

from mixdown.console import (
    ConsoleTensors,
    channel_strips,
    mix_buses,
    render_tensor,
    reverb_impulse_responses,
)
from mixdown.dsp.eq import BAND_TYPE_IDS, BYPASS
from mixdown.dsp.limiter import limit
from mixdown.dsp.loudness import integrated_loudness
from mixdown.dsp.reverb import reverb
from mixdown.losses import StereoLoss
from mixdown.mixers.reverse.config import EQ_PRIOR_DB, ProgressCallback, ReverseConfig
from mixdown.mixers.reverse.eq_fit import logit
from mixdown.params import SCHEMA, SPECS, ParamSpec

SERIES_GAINS: dict[str, str] = {"makeup_db": "gain_db", "reverb_return_db": "reverb_send_db"}
"""Gains in series with another gain on every path of their signal: ``{gain: the gain before it}``.

The mix only sees the sum of two gains in series, so a gain whose partner is free is
redundant and stays at its default (`fixed_reason`): the compressor's makeup is the
fader again, the reverb's return a common offset of all sends. (The master gain is a
common offset of the faders too; as a master bus field it is fixed by another rule.)
"""

STEPPED: tuple[str, ...] = ("reverb_predelay_ms",)
"""Parameters the console applies in whole steps (the pre-delay in whole samples): no
gradient reaches them, so they stay at their starting value."""

BAND_FIELD_TYPES: dict[str, tuple[str, ...]] = {"eq_gain_db": ("low_shelf", "peak", "high_shelf"),
                                                "eq_q": ("peak",)}
"""Band fields fitted only on some band types (others: on every band). The pass filters
have no gain; only the bell's Q is fitted, the shelves and the high-pass keep 0.707 as in
`mixdown.mixers.reverse.eq_fit.fit_standard_eq`."""

BALANCE_PROCESSORS = ("", "eq")
"""Processors (`processor`) moved at `ReverseConfig.balance_learning_rate`: fader, pan and
EQ, which the least-squares stage already places well."""

_EMA = 0.9  # smoothing of the training loss for plateau detection
_GROUPS = tuple(dict.fromkeys(spec.group for spec in SCHEMA if spec.group))


def processor(spec: ParamSpec) -> str:
    """The processor a parameter belongs to: ``"eq"`` for band fields, its group (``"compressor"``,
    ``"reverb"``) for grouped fields, the group a channel field is named after (the send
    ``reverb_send_db`` feeds the ``"reverb"``), else ``""`` (fader, pan, master bus)."""
    if spec.level == "band":
        return "eq"
    if spec.group:
        return spec.group
    return next((group for group in _GROUPS if spec.tensor.startswith(f"{group}_")), "")


class FreeParameter(NamedTuple):
    """One field of `ConsoleTensors` that the descent moves.

    Attributes:
        spec: its range (the schema's full range at the sample rate).
        mask: bool, shaped like the field: the entries moved (others keep their start).
    """

    spec: ParamSpec
    mask: torch.Tensor


def fixed_reason(spec: ParamSpec, config: ReverseConfig) -> str | None:
    """Why the descent leaves ``spec`` at its starting value under ``config``; None when it moves it.

    The rules, in order: the processor (`processor`) is not fitted (fader and pan always
    are; ``config.fit_eq``, ``fit_compressor`` and ``fit_reverb`` switch the EQ, the
    compressor and the reverb with its sends); a master bus field outside a processor is
    set from the reference (loudness target and ceiling, `master_from_reference`) or is a
    common offset of the faders (gain); a `STEPPED` parameter has no gradient; a gain in
    series with a free gain (`SERIES_GAINS`) is redundant.

    Args:
        spec: a `SCHEMA` entry.
        config: which processors are fitted.

    Returns:
        A short reason, or None for a free parameter.
    """
    fitted = {"": True, "eq": config.fit_eq, "compressor": config.fit_compressor, "reverb": config.fit_reverb}
    owner = processor(spec)
    if not fitted[owner]:
        return f"fit_{owner} is off"
    if spec.level == "master" and not spec.group:
        return "master bus: set from the reference or a common offset of the faders"
    if spec.tensor in STEPPED:
        return "applied in whole steps: no gradient"
    partner = SERIES_GAINS.get(spec.tensor)
    if partner is not None and fixed_reason(SPECS[partner], config) is None:
        return f"in series with the free {partner}: redundant"
    return None


def free_parameters(p: ConsoleTensors, config: ReverseConfig, sample_rate: int) -> dict[str, FreeParameter]:
    """The fields of the starting settings ``p`` that the descent moves, with their ranges.

    Every `SCHEMA` entry without a `fixed_reason`, in schema order: with the default
    config fader, pan, the EQ band fields, the compressor but its makeup, the reverb
    sends and the reverb decay. Band fields are masked to the real bands of the types
    that use them (`BAND_FIELD_TYPES`). Each field keeps the spec's full range at
    ``sample_rate`` (`mixdown.params.ParamSpec.at_rate`: band frequencies under Nyquist).

    Args:
        p: batch-1 starting settings.
        config: which processors to fit.
        sample_rate: in Hz.

    Returns:
        ``{tensor field: FreeParameter}`` in schema order.
    """
    free = {}
    for spec in SCHEMA:
        if fixed_reason(spec, config) is not None:
            continue
        if spec.level == "band":
            types = BAND_FIELD_TYPES.get(spec.tensor)
            mask = p.eq_type != BYPASS if types is None else torch.isin(
                p.eq_type, torch.tensor([BAND_TYPE_IDS[t] for t in types]))
        else:
            mask = torch.ones_like(getattr(p, spec.tensor), dtype=torch.bool)
        free[spec.tensor] = FreeParameter(spec.at_rate(sample_rate), mask)
    return free


class ConsoleFit(torch.nn.Module):
    """Console settings with some entries free: ``value = spec.denormalize(sigmoid(logit))``.

    Args:
        start: the starting settings (batch 1); entries not free keep these values.
        free: ``{field of ConsoleTensors: FreeParameter}`` (`free_parameters`).
    """

    def __init__(self, start: ConsoleTensors, free: dict[str, FreeParameter]):
        super().__init__()
        self.start = start
        self.specs = {name: spec for name, (spec, _) in free.items()}
        self.masks = {name: mask for name, (_, mask) in free.items()}
        self.logits = torch.nn.ParameterDict({
            name: torch.nn.Parameter(logit(spec.normalize(getattr(start, name).double())).float())
            for name, (spec, _) in free.items()})

    def forward(self) -> ConsoleTensors:
        """The current settings."""
        values = {name: torch.where(self.masks[name], self.specs[name].denormalize(torch.sigmoid(logit)),
                                    getattr(self.start, name))
                  for name, logit in self.logits.items()}
        return replace(self.start, **values)

    def settings(self) -> ConsoleTensors:
        """The current settings, detached from the graph."""
        with torch.no_grad():
            p = self()
        return replace(p, **{name: getattr(p, name).detach() for name in self.logits})


def render_unnormalised(stems: torch.Tensor, p: ConsoleTensors, stereo: torch.Tensor,
                        sample_rate: int) -> torch.Tensor:
    """`render_tensor` without loudness normalisation, mono stems processed as one channel.

    Args:
        stems: ``(tracks, 2, samples)``, mono stems duplicated (only their left is used).
        p: batch-1 settings with ``target_lufs`` off.
        stereo: ``(tracks,)`` bool.
        sample_rate: in Hz.

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


def matched_loss(loss: StereoLoss, stems: torch.Tensor, reference: torch.Tensor, stereo: torch.Tensor,
                 p: ConsoleTensors, sample_rate: int) -> float:
    """``loss`` of the whole render normalised to the reference's loudness (so level offsets do not count).

    Args:
        loss: the loss.
        stems: ``(tracks, 2, samples)``.
        reference: ``(2, samples)``.
        stereo: ``(tracks,)`` bool.
        p: batch-1 settings (their ``target_lufs`` is replaced).
        sample_rate: in Hz.
    """
    loudness = integrated_loudness(reference[None].double(), sample_rate).float()
    with torch.no_grad():
        mix = render_tensor(stems[None], replace(p, target_lufs=loudness), stereo[None], sample_rate)
        return float(loss(mix, reference[None]))


class Descent(NamedTuple):
    """What `descend` returns.

    Attributes:
        settings: the fitted batch-1 settings (detached).
        losses: smoothed training loss after each step.
        converged: it stopped on a plateau (not on ``config.steps`` or the time budget).
    """

    settings: ConsoleTensors
    losses: list[float]
    converged: bool


def descend(stems: torch.Tensor, reference: torch.Tensor, stereo: torch.Tensor, start: ConsoleTensors,
            sample_rate: int, config: ReverseConfig, loss: StereoLoss, progress: ProgressCallback | None = None,
            began: float | None = None) -> Descent:
    """Adam through the console on random excerpts, from ``start``.

    Each step renders a random excerpt of ``config.excerpt_s`` (after ``preroll_s`` of
    warm-up, not compared) with `render_unnormalised` and compares it with the
    reference, plus the EQ prior with ``config.fit_eq``. Fader, pan and EQ
    (`BALANCE_PROCESSORS`) move at ``balance_learning_rate``, the rest at
    ``learning_rate``. The learning rates halve when the smoothed loss has not improved
    by ``min_improvement`` for ``plateau_steps`` steps; the descent stops after
    ``lr_reductions`` halvings, ``steps`` steps or ``time_budget_s``.

    Args:
        stems: ``(tracks, 2, samples)``, mono stems duplicated.
        reference: ``(2, samples)``.
        stereo: ``(tracks,)`` bool.
        start: batch-1 starting settings with ``target_lufs`` off (`initial_settings`).
        sample_rate: in Hz.
        config: the search settings.
        loss: compares each excerpt.
        progress: called with ``(step, config.steps)`` after each step.
        began: `time.perf_counter` time the time budget counts from (None: now).

    Returns:
        The fitted settings, the loss history and whether it converged; ``start``
        itself when ``config.steps`` is 0 or nothing is free.
    """
    began = time.perf_counter() if began is None else began
    model = ConsoleFit(start, free_parameters(start, config, sample_rate))
    if config.steps == 0 or not model.logits:
        return Descent(start, [], False)
    balance = [logit for name, logit in model.logits.items() if processor(model.specs[name]) in BALANCE_PROCESSORS]
    dynamics = [logit for name, logit in model.logits.items()
                if processor(model.specs[name]) not in BALANCE_PROCESSORS]
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
        mix = render_unnormalised(stems[..., begin - lead:begin + excerpt], settings, stereo, sample_rate)
        value = loss(mix[..., lead:], reference[None, :, begin:begin + excerpt])
        if config.fit_eq:
            value = value + config.eq_prior_weight * (settings.eq_gain_db / EQ_PRIOR_DB).pow(2).mean()
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
                return Descent(model.settings(), history, True)
            reductions, since_best, best = reductions + 1, 0, smoothed
            for group in optimizer.param_groups:
                group["lr"] *= 0.5
        if config.time_budget_s is not None and time.perf_counter() - began >= config.time_budget_s:
            break
    return Descent(model.settings(), history, False)
