"""Learned mode: a parameter predictor's settings corrected by a reference encoder.

`ReferenceConditioner` turns a reference's style into corrections of the output logits
of a frozen parameter predictor, its *base* (`BASES`): the shipped estimator
(`mixdown.models.estimator.Estimator`) or the shipped DMC's controller
(`mixdown.models.dmc.DMC.controller`, the same network trained from mixes alone); each
base has its own conditioner weights (`CONDITIONER_WEIGHTS`). Its inputs:

* the reference's `StyleFeatures` vector and its difference from the style of the
  base's own mix of the same stems (what the reference has that the base's guess
  lacks), through a small MLP (the reference encoder);
* per track: the base's settings (normalised) and the track's share of the base's mix
  per coarse band (which tracks a band's correction should move);
* for the master: the base's master settings.

It corrects only what a mix-level style can tell (`ConditionerConfig.corrected`, of
`CORRECTABLE`; the shipped ones: faders, pans, EQ gains, which carry a song's tilt,
reverb sends and the reverb decay); the base's track embeddings are left out of its inputs,
since with them it overfits the few hundred training songs at once. Its last layers
start at zero, so an untrained conditioner gives exactly the base's settings. Without a
reference the encoder's output is a learned vector (``null_reference``), trained on the
same examples with their references left out: "the same method without a reference" is
this model, trained on the same songs, not the base alone (whose training targets may
come from another generator). Trained as Diff-MST is (`mixdown.style.train`): two
segments of one synthetic song mixed with the same settings; one segment's mix is the
reference, the other's stems go in; the loss is the parameter loss against the true
settings (cheap: the frozen base's outputs are cached once), then the rendered mix
against that segment's mix.

Checkpoints follow `mixdown.models`' plain-dict format (``model_name`` ``"style_conditioner"``,
loaded with ``weights_only=True``) and hold the conditioner only, with the name of its
base in its config; the base is the shipped ``estimator.pt`` or ``dmc.pt``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import mixdown
from mixdown.config import config_from_dict, config_to_dict
from mixdown.console import channel_strips
from mixdown.errors import MixdownError
from mixdown.models import CHECKPOINT_FORMAT, read_checkpoint, write_checkpoint
from mixdown.models.encoders import mlp
from mixdown.models.estimator import N_CHANNEL_PARAMS, N_MASTER_PARAMS, Estimator, ParamEstimate
from mixdown.style.features import (
    ANALYSIS_RATE_HZ,
    BAND_EDGES_HZ,
    STYLE_DIM,
    N_FFT,
    _matrices,
    spectrogram,
    style_features,
)

MODEL_NAME = "style_conditioner"
N_BANDS = len(BAND_EDGES_HZ) - 1
CORRECTABLE = ("gain_db", "pan", "eq_gain_db", "threshold_db", "reverb_send_db", "reverb_decay_s")
"""Outputs of the base's heads a conditioner may correct (``eq_gain_db``: every band's
gain); `ConditionerConfig.corrected` picks some, the rest stay the base's."""
STRIP_OUTPUTS = ("eq_gain_db", "threshold_db")
"""Those of `CORRECTABLE` that set a channel strip's EQ or compressor (the rest act after them)."""
BASES = ("estimator", "dmc")
"""Parameter predictors a conditioner can correct: the shipped model of that name."""
CONDITIONER_WEIGHTS = {"estimator": "estimator_reference_real.pt", "dmc": "dmc_reference.pt"}
"""Shipped conditioner weights per base."""


@dataclass(frozen=True)
class ConditionerConfig:
    """Settings of `ReferenceConditioner`.

    Attributes:
        base: the parameter predictor it corrects, one of `BASES`.
        hidden: width of the hidden layers.
        corrected: the base's outputs it corrects, of `CORRECTABLE`.
        sample_rate: rate of the base and of the style analysis, Hz.
    """

    base: str = "estimator"
    hidden: int = 64
    corrected: tuple[str, ...] = ("gain_db", "pan", "reverb_send_db", "reverb_decay_s")
    sample_rate: int = ANALYSIS_RATE_HZ

    def __post_init__(self) -> None:
        if self.base not in BASES:
            raise ValueError(f"base must be one of {', '.join(BASES)}, got {self.base!r}")
        if self.hidden < 1:
            raise ValueError("hidden must be positive")
        unknown = sorted(set(self.corrected) - set(CORRECTABLE))
        if unknown or not self.corrected:
            raise ValueError(f"corrected must name some of {', '.join(CORRECTABLE)}, got {list(self.corrected)}")


@dataclass
class ConditionerInputs:
    """What `ReferenceConditioner` reads (all detached from the base).

    Attributes:
        tracks: ``(batch, tracks, embed_dim)`` track embeddings.
        context: ``(batch, embed_dim)``.
        channel_logits: ``(batch, tracks, N_CHANNEL_PARAMS)`` the base's logits.
        master_logits: ``(batch, N_MASTER_PARAMS)``.
        base_style: ``(batch, STYLE_DIM)`` style of the base's mix.
        shares: ``(batch, tracks, N_BANDS)`` each track's share of that mix per band.
        mask: ``(batch, tracks)`` bool.
    """

    tracks: torch.Tensor
    context: torch.Tensor
    channel_logits: torch.Tensor
    master_logits: torch.Tensor
    base_style: torch.Tensor
    shares: torch.Tensor
    mask: torch.Tensor


class ReferenceConditioner(nn.Module):
    """Logit corrections from a reference's style (see the module docstring).

    Shape:
        inputs: `ConditionerInputs`; reference: ``(batch, STYLE_DIM)``, or None for no reference.
        Output: ``(channel (batch, tracks, N_CHANNEL_PARAMS), master (batch, N_MASTER_PARAMS))``.
    """

    def __init__(self, config: ConditionerConfig = ConditionerConfig()):
        super().__init__()
        self.config = config
        hidden = config.hidden
        self.reference_encoder = mlp([2 * STYLE_DIM, hidden, hidden])
        self.null_reference = nn.Parameter(torch.zeros(hidden))
        self.channel = mlp([hidden + N_CHANNEL_PARAMS + N_BANDS, hidden, hidden, N_CHANNEL_PARAMS])
        self.master = mlp([hidden + N_MASTER_PARAMS, hidden, N_MASTER_PARAMS])
        from mixdown.params import head_outputs

        for name, level, count in (("channel_mask", "channel", N_CHANNEL_PARAMS),
                                   ("master_mask", "master", N_MASTER_PARAMS)):
            outputs = head_outputs(config.sample_rate, level)  # type: ignore[arg-type]
            self.register_buffer(name, torch.tensor([o.tensor in config.corrected for o in outputs],
                                                    dtype=torch.float32), persistent=False)
            assert len(outputs) == count
        for last in (self.channel[-1], self.master[-1]):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.register_buffer("style_scale", _style_scale(), persistent=False)

    def forward(self, inputs: ConditionerInputs,
                reference: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, tracks, _ = inputs.tracks.shape
        if reference is None:
            encoded = self.null_reference.expand(batch, -1)
        else:
            if reference.shape != (batch, STYLE_DIM):
                raise ValueError(f"expected a reference style of shape ({batch}, {STYLE_DIM}), "
                                 f"got {tuple(reference.shape)}")
            ref = reference / self.style_scale
            encoded = self.reference_encoder(torch.cat([ref, ref - inputs.base_style / self.style_scale], dim=-1))
        per_track = torch.cat([encoded[:, None].expand(-1, tracks, -1), torch.sigmoid(inputs.channel_logits),
                               inputs.shares], dim=-1)
        channel = self.channel(per_track) * inputs.mask[..., None] * self.channel_mask
        master = self.master(torch.cat([encoded, torch.sigmoid(inputs.master_logits)], dim=-1)) * self.master_mask
        return channel, master


def _style_scale() -> torch.Tensor:
    """Per-dimension scale of the style vector (`mixdown.style.loss.STYLE_SCALES`), so inputs are O(1)."""
    from mixdown.style.features import StyleFeatures
    from mixdown.style.loss import STYLE_SCALES

    sizes = {"spectrum_db": STYLE_DIM - 5 * N_BANDS, "balance_db": N_BANDS, "crest_db": N_BANDS,
             "floor_db": N_BANDS, "width": N_BANDS, "side_balance": N_BANDS}
    return torch.cat([torch.full((sizes[name],), STYLE_SCALES[name]) for name in StyleFeatures.__dataclass_fields__])


def load_base(name: str, weights: str | os.PathLike | None = None) -> Estimator:
    """The frozen parameter predictor ``name`` (one of `BASES`), from ``weights`` or the shipped file.

    Raises:
        MixdownError: an unknown name, or weights that are missing, unreadable or of another model.
    """
    from mixdown.models import load_model_as
    from mixdown.weights import require

    if name not in BASES:
        raise MixdownError(f"unknown base {name!r}; choose one of {', '.join(BASES)}")
    model = load_model_as(name, weights if weights is not None else require(f"{name}.pt")).model
    base = model.controller if name == "dmc" else model
    for p in base.parameters():
        p.requires_grad_(False)
    return base.eval()


def conditioner_inputs(base: Estimator, stems: torch.Tensor, mask: torch.Tensor, instruments: torch.Tensor,
                       stereo: torch.Tensor) -> ConditionerInputs:
    """Run the frozen base and render its mix (no gradients) to get `ConditionerInputs`.

    Args:
        base: the parameter predictor (`load_base`; rate `ANALYSIS_RATE_HZ`).
        stems: ``(batch, tracks, channels, samples)`` at that rate.
        mask, stereo: ``(batch, tracks)`` bool; instruments ``(batch, tracks)`` long.
    """
    if base.config.sample_rate != ANALYSIS_RATE_HZ:
        raise MixdownError(f"the style conditioner needs a base at {ANALYSIS_RATE_HZ} Hz, "
                           f"not {base.config.sample_rate} Hz")
    with torch.no_grad():
        encoding = base.encoder(stems, mask, instruments)
        tracks = stems.shape[1]
        context = encoding.context[:, None].expand(-1, tracks, -1)
        logits = base.channel_head(torch.cat([encoding.tracks, context], dim=-1))
        master_logits = base.master_head(encoding.context)
        params = base.to_console(torch.sigmoid(logits), torch.sigmoid(master_logits), mask)
        panned, _ = channel_strips(stems, params, stereo & mask, ANALYSIS_RATE_HZ)  # (batch, tracks, 2, samples)
        coarse, _ = _matrices(ANALYSIS_RATE_HZ, N_FFT)
        spectra = spectrogram(panned.float())
        power = (spectra.real ** 2 + spectra.imag ** 2).sum(dim=(2, -1))  # (batch, tracks, bins)
        band = torch.einsum("kf,btf->btk", coarse.float(), power)
        shares = band / band.sum(dim=1, keepdim=True).clamp_min(1e-12)
        dry = panned.sum(dim=1)
        base_style = style_features(dry.float()).vector()
    return ConditionerInputs(encoding.tracks.detach(), encoding.context.detach(), logits.detach(),
                             master_logits.detach(), base_style, shares, mask)


def conditioned_estimate(base: Estimator, conditioner: ReferenceConditioner | None, inputs: ConditionerInputs,
                         reference: torch.Tensor | None) -> ParamEstimate:
    """The settings: the base's, corrected by ``conditioner`` (with ``reference``'s style, or
    without a reference when it is None); the base's alone when ``conditioner`` is None."""
    channel, master = inputs.channel_logits, inputs.master_logits
    if conditioner is not None:
        delta_channel, delta_master = conditioner(inputs, reference)
        channel, master = channel + delta_channel, master + delta_master
    normalized, master_normalized = torch.sigmoid(channel), torch.sigmoid(master)
    return ParamEstimate(normalized, master_normalized, base.to_console(normalized, master_normalized, inputs.mask))


def save_conditioner(model: ReferenceConditioner, path: str | os.PathLike, info: dict[str, Any] | None = None) -> Path:
    """Write the conditioner as a plain checkpoint dict (the `mixdown.models` format), atomically."""
    data = {"format": CHECKPOINT_FORMAT, "model_name": MODEL_NAME, "config": config_to_dict(model.config),
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "sample_rate": model.config.sample_rate, "info": info or {},
            "versions": {"mixdown": str(mixdown.__version__), "torch": str(torch.__version__)}}
    return write_checkpoint(data, path)


def load_conditioner(path: str | os.PathLike) -> ReferenceConditioner:
    """Read a checkpoint written by `save_conditioner` (``weights_only=True``).

    Raises:
        MixdownError: missing, unreadable, of another model, or weights that do not fit.
    """
    data = read_checkpoint(path, "style conditioner weights")
    if not isinstance(data, dict) or data.get("model_name") != MODEL_NAME:
        raise MixdownError(f"{path}: not a {MODEL_NAME} checkpoint")
    model = ReferenceConditioner(config_from_dict(ConditionerConfig, data["config"], f"{path}: config"))
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as exc:
        raise MixdownError(f"{path}: weights do not fit ({' '.join(str(exc).split())[:200]})") from None
    return model.eval()
