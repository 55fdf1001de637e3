"""The console as the fit sees it: which settings move, in which ranges, and its render.

`free_parameters` selects from the parameter schema `mixdown.params.SCHEMA` the fields
the fit moves, by the processors the config fits, with the reasons for the others
(`fixed_reason`); `ConsoleFit` holds settings with free entries in their ranges through
a sigmoid; `render_unnormalised` is `mixdown.console.render_tensor` without loudness
normalisation; `matched_loss` scores whole renders, loudness-matched to the reference
(`mixdown.losses.FixedTargetLoss`: the reference's spectra computed once per fit).

References:
    J. T. Colonel and J. Reiss, "Reverse engineering of a recording mix with
    differentiable digital signal processing", JASA 150(1), 2021.
"""

from __future__ import annotations

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
from mixdown.losses import FixedTargetLoss
from mixdown.mixers.reverse.config import ReverseConfig
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


def matched_loss(loss: FixedTargetLoss, stems: torch.Tensor, stereo: torch.Tensor, p: ConsoleTensors,
                 sample_rate: int, reference_lufs: torch.Tensor | None = None) -> float:
    """``loss`` of the whole render normalised to the reference's loudness (so level offsets do not count).

    Args:
        loss: the loss against the reference (its target, ``(1, 2, samples)``, spectra computed once).
        stems: ``(tracks, 2, samples)``.
        stereo: ``(tracks,)`` bool.
        p: batch-1 settings (their ``target_lufs`` is replaced).
        sample_rate: in Hz.
        reference_lufs: ``(1,)`` the reference's integrated loudness, when already measured.
    """
    if reference_lufs is None:
        reference_lufs = integrated_loudness(loss.target.double(), sample_rate)
    with torch.no_grad():
        mix = render_tensor(stems[None], replace(p, target_lufs=reference_lufs.float()), stereo[None], sample_rate)
        return float(loss(mix))
