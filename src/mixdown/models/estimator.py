"""Learned parameter estimator: stems in, console settings out, mixed by the real console.

The network (after the parameter-estimation approach of Steinmetz et al., "Automatic
multitrack mixing with a differentiable mixing console of neural audio effects",
ICASSP 2021, with this project's console instead of neural effect emulators):

* `mixdown.models.encoders.MultitrackEncoder` embeds every track (log-mel CNN, level
  statistics, instrument class) and pools a context vector (masked mean, so any
  number of tracks in any order);
* a channel head, an MLP on ``[track embedding, context]`` shared by all tracks, gives
  ``N_CHANNEL_PARAMS`` numbers in [0, 1] (sigmoid) per track;
* a master head, an MLP on the context, gives the reverb decay in [0, 1];
* the numbers are mapped to physical units (`mixdown.params.head_outputs`) into
  `ConsoleTensors` with the fixed EQ layout `STANDARD_EQ` (high-pass, low shelf, bell,
  high shelf), and `mixdown.console.render_tensor` renders the mix, differentiably,
  with the same code that renders files. Loss gradients reach the network through
  every parameter but the reverb pre-delay (fixed) and the limiter's detector.

Training ranges. Outputs span the schema's training sub-ranges (`ParamSpec.train`, and
`STANDARD_BANDS` for the EQ), narrower than the full ranges where the full range is no
mixing setting (a -80 dB fader, a 20:1 ratio) and would waste the sigmoid's resolution.
Parameters without a training range keep their schema defaults (master trim 0 dB,
loudness target -14 LUFS, ceiling -1 dBTP, reverb pre-delay 20 ms and return 0 dB; the
pre-delay is an integer sample delay with no gradient); no mutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from mixdown.console import ConsoleTensors, render_tensor
from mixdown.dsp.eq import BAND_TYPE_IDS
from mixdown.models.encoders import EncoderConfig, MultitrackEncoder, mlp
from mixdown.params import SCHEMA, STANDARD_EQ, head_outputs

N_BANDS = len(STANDARD_EQ)
N_CHANNEL_PARAMS = len(head_outputs(44100, "channel"))
N_MASTER_PARAMS = len(head_outputs(44100, "master"))
_COMPRESSOR_DETAIL = ("threshold_db", "attack_ms", "release_ms", "knee_db")  # unsupervised when off


@dataclass(frozen=True)
class EstimatorConfig:
    """Settings of `Estimator`.

    Attributes:
        encoder: The shared track encoder (its ``sample_rate`` is the model's).
        hidden: Width of the channel and master heads' hidden layers.
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    hidden: int = 256

    def __post_init__(self) -> None:
        if self.hidden < 1:
            raise ValueError(f"hidden must be positive, got {self.hidden}")

    @property
    def sample_rate(self) -> int:
        """Rate of the audio the model takes and renders, in Hz."""
        return self.encoder.sample_rate


@dataclass
class ParamEstimate:
    """Settings predicted for a batch.

    Attributes:
        normalized: ``(batch, tracks, N_CHANNEL_PARAMS)`` in [0, 1], order of `head_outputs(sample_rate, "channel")`.
        master_normalized: ``(batch, N_MASTER_PARAMS)`` in [0, 1].
        params: The same in physical units (masked tracks muted).
    """

    normalized: torch.Tensor
    master_normalized: torch.Tensor
    params: ConsoleTensors


@dataclass
class EstimatorOutput:
    """`Estimator` output: ``mix (batch, 2, samples)`` and the settings that made it."""

    mix: torch.Tensor
    estimate: ParamEstimate


class Estimator(nn.Module):
    """Per-track console settings from the stems, rendered by the console (see the module docstring).

    Shape:
        stems: ``(batch, tracks, channels, samples)``, 1 or 2 channels.
        mask: ``(batch, tracks)`` bool, True for real tracks.
        instruments: ``(batch, tracks)`` long ids into `mixdown.multitrack.INSTRUMENT_CLASSES`.
        stereo: ``(batch, tracks)`` bool, True for genuinely stereo stems.
        Output: `EstimatorOutput` with ``mix (batch, 2, samples)``.
    """

    def __init__(self, config: EstimatorConfig = EstimatorConfig()):
        super().__init__()
        self.config = config
        self.specs = head_outputs(config.sample_rate, "channel")
        self.master_specs = head_outputs(config.sample_rate, "master")
        dim = config.encoder.embed_dim
        self.encoder = MultitrackEncoder(config.encoder)
        self.channel_head = mlp([2 * dim, config.hidden, config.hidden, len(self.specs)])
        self.master_head = mlp([dim, config.hidden, len(self.master_specs)])
        self.register_buffer("eq_types", torch.tensor([BAND_TYPE_IDS[b] for b in STANDARD_EQ]), persistent=False)

    def estimate(self, stems: torch.Tensor, mask: torch.Tensor, instruments: torch.Tensor) -> ParamEstimate:
        """The settings alone, without rendering (see the class docstring for shapes)."""
        encoding = self.encoder(stems, mask, instruments)
        context = encoding.context[:, None].expand(-1, stems.shape[1], -1)
        normalized = torch.sigmoid(self.channel_head(torch.cat([encoding.tracks, context], dim=-1)))
        master = torch.sigmoid(self.master_head(encoding.context))
        return ParamEstimate(normalized, master, self.to_console(normalized, master, mask))

    def forward(self, stems: torch.Tensor, mask: torch.Tensor, instruments: torch.Tensor,
                stereo: torch.Tensor) -> EstimatorOutput:
        estimate = self.estimate(stems, mask, instruments)
        mix = render_tensor(stems, estimate.params, stereo & mask, self.config.sample_rate)
        return EstimatorOutput(mix, estimate)

    def to_console(self, normalized: torch.Tensor, master: torch.Tensor, mask: torch.Tensor) -> ConsoleTensors:
        """Physical `ConsoleTensors` from normalised outputs (masked tracks muted).

        Args:
            normalized: ``(batch, tracks, N_CHANNEL_PARAMS)``.
            master: ``(batch, N_MASTER_PARAMS)``.
            mask: ``(batch, tracks)`` bool.
        """
        batch, tracks, _ = normalized.shape
        values = {spec.tensor: normalized.new_full((batch, tracks) if spec.level == "channel" else (batch,),
                                                   spec.default) for spec in SCHEMA if spec.level != "band"}
        bands = {spec.tensor: [normalized.new_full((batch, tracks), spec.default)] * N_BANDS
                 for spec in SCHEMA if spec.level == "band"}
        for outputs, unit in ((self.specs, normalized), (self.master_specs, master)):
            for i, out in enumerate(outputs):
                value = out.spec.denormalize(unit[..., i])
                if out.band is None:
                    values[out.tensor] = value
                else:
                    bands[out.tensor][out.band] = value
        return ConsoleTensors(mute=~mask, eq_type=self.eq_types.expand(batch, tracks, N_BANDS), **values,
                              **{name: torch.stack(parts, dim=-1) for name, parts in bands.items()})

    def normalize(self, params: ConsoleTensors) -> tuple[torch.Tensor, torch.Tensor]:
        """Settings -> ``(normalized (batch, tracks, N_CHANNEL_PARAMS), master (batch, N_MASTER_PARAMS))``, clamped to [0, 1].

        EQ bands are read by position in the `STANDARD_EQ` layout.
        """
        columns = []
        for out in self.specs:
            value = getattr(params, out.tensor)
            if out.band is not None:
                value = value[..., out.band] if value.shape[-1] > out.band else torch.full_like(value[..., 0], 1.0)
            columns.append(out.spec.normalize(value.float()))
        master = [out.spec.normalize(getattr(params, out.tensor).float()) for out in self.master_specs]
        return torch.stack(columns, dim=-1).clamp(0.0, 1.0), torch.stack(master, dim=-1).clamp(0.0, 1.0)

    def parameter_loss(self, estimate: ParamEstimate, target: ConsoleTensors, mask: torch.Tensor) -> torch.Tensor:
        """Mean absolute distance in the normalised space to true settings, per mix.

        Pans are compared by width ``|pan|`` (their side is a coin flip in the synthetic
        targets); a compressor that is off in the target (ratio 1) only supervises ratio
        and makeup; EQ bands only where the target has the `STANDARD_EQ` band at that
        position; the master's decay counts as one more parameter.

        Args:
            estimate: From `estimate` or `forward`.
            target: True settings for the same ``(batch, tracks)``.
            mask: ``(batch, tracks)`` bool.

        Returns:
            ``(batch,)``.
        """
        truth, master_truth = self.normalize(target)
        pred = estimate.normalized
        bands = target.eq_type.shape[-1]
        supervised = ~(target.ratio <= 1.0)  # compressor on in the target
        diffs, weights = [], []
        for i, out in enumerate(self.specs):
            if out.tensor == "pan":
                diffs.append(((2.0 * pred[..., i] - 1.0).abs() - (2.0 * truth[..., i] - 1.0).abs()).abs())
            else:
                diffs.append((pred[..., i] - truth[..., i]).abs())
            if out.tensor in _COMPRESSOR_DETAIL:
                weights.append(supervised)
            elif out.band is not None:
                weights.append(target.eq_type[..., out.band] == self.eq_types[out.band] if bands > out.band
                               else torch.zeros_like(mask))
            else:
                weights.append(torch.ones_like(mask))
        diff = torch.stack(diffs, dim=-1)
        weight = torch.stack(weights, dim=-1).to(diff.dtype)
        per_track = (diff * weight).sum(-1) / weight.sum(-1).clamp_min(1.0)
        track_mask = mask.to(diff.dtype)
        channel_term = (per_track * track_mask).sum(-1) / track_mask.sum(-1).clamp_min(1.0)
        master_term = (estimate.master_normalized - master_truth).abs().sum(-1)
        return channel_term + master_term / len(self.specs)

