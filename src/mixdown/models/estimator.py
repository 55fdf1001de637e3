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
* the numbers are mapped to physical units (`channel_specs`, `MASTER_SPECS`) into
  `ConsoleTensors` with the fixed EQ layout `STANDARD_EQ` (high-pass, low shelf, bell,
  high shelf), and `mixdown.console.render_tensor` renders the mix, differentiably,
  with the same code that renders files. Loss gradients reach the network through
  every parameter but the reverb pre-delay (fixed) and the limiter's detector.

Training ranges. Outputs span narrower ranges than `mixdown.params.SPECS` where the
full range is no mixing setting (a -80 dB fader, a 20:1 ratio) and would waste the
sigmoid's resolution. They cover the synthetic targets of `mixdown.data.targets`:

==================  ====================  =====  ==============================
output              range                 scale  note
==================  ====================  =====  ==============================
gain_db             -40 .. +24 dB         lin    quiet stems need large boosts
pan                 -1 .. 1               lin
high-pass freq_hz   16 .. 1000 Hz         log    gain and Q fixed (0 dB, 0.707)
low shelf freq_hz   30 .. 600 Hz          log
bell freq_hz        80 .. 10000 Hz        log
high shelf freq_hz  1500 .. 16000 Hz      log    capped at 0.45 x sample rate
band gain_db        -12 .. +12 dB         lin    shelves and bell
shelf q             0.4 .. 1.5            log
bell q              0.3 .. 8              log
threshold_db        -60 .. 0 dB           lin
ratio               1 .. 10               log    1 = compressor off
attack_ms           0.5 .. 100 ms         log
release_ms          20 .. 1000 ms         log
knee_db             0 .. 12 dB            lin
makeup_db           0 .. 12 dB            lin
reverb_send_db      -60 .. 0 dB           lin    -60 dB is practically off
decay_s (master)    0.3 .. 4 s            log
==================  ====================  =====  ==============================

Fixed: master trim 0 dB, loudness target -14 LUFS, ceiling -1 dBTP, reverb pre-delay
20 ms and return 0 dB (the synthetic targets' conventions; the pre-delay is an integer
sample delay with no gradient), no mutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from mixdown.console import ConsoleTensors, render_tensor
from mixdown.data.targets import STANDARD_EQ
from mixdown.dsp.eq import BAND_TYPE_IDS
from mixdown.models.encoders import EncoderConfig, MultitrackEncoder, mlp
from mixdown.params import ParamSpec, clamp_freq_hz

N_BANDS = len(STANDARD_EQ)
_BAND_RANGES = {  # (freq_hz range, q range or None for a fixed-Q pass filter)
    "highpass": ((16.0, 1000.0), None),
    "low_shelf": ((30.0, 600.0), (0.4, 1.5)),
    "peak": ((80.0, 10000.0), (0.3, 8.0)),
    "high_shelf": ((1500.0, 16000.0), (0.4, 1.5)),
}
_PASS_Q = 0.707

MASTER_SPECS: tuple[ParamSpec, ...] = (ParamSpec("decay_s", 0.3, 4.0, 1.6, "log"),)
"""Master-head outputs."""

FIXED_MASTER = {"master_gain_db": 0.0, "target_lufs": -14.0, "ceiling_dbtp": -1.0, "reverb_predelay_ms": 20.0,
                "reverb_return_db": 0.0}
"""Master settings the estimator does not predict."""


@dataclass(frozen=True)
class ChannelOutput:
    """One per-track output: the `ConsoleTensors` field it sets, its EQ band (or None) and range."""

    field: str
    band: int | None
    spec: ParamSpec


def channel_specs(sample_rate: int) -> tuple[ChannelOutput, ...]:
    """The per-track outputs in order, with their training ranges at ``sample_rate``."""
    outputs = [ChannelOutput("gain_db", None, ParamSpec("gain_db", -40.0, 24.0, 0.0)),
               ChannelOutput("pan", None, ParamSpec("pan", -1.0, 1.0, 0.0))]
    for k, band in enumerate(STANDARD_EQ):
        (f_lo, f_hi), q_range = _BAND_RANGES[band]
        f_hi = min(f_hi, clamp_freq_hz(f_hi, sample_rate))
        outputs.append(ChannelOutput("eq_freq_hz", k, ParamSpec(f"{band}_freq_hz", f_lo, f_hi, f_lo, "log")))
        if q_range is not None:
            outputs.append(ChannelOutput("eq_gain_db", k, ParamSpec(f"{band}_gain_db", -12.0, 12.0, 0.0)))
            outputs.append(ChannelOutput("eq_q", k, ParamSpec(f"{band}_q", *q_range, _PASS_Q, "log")))
    outputs += [
        ChannelOutput("threshold_db", None, ParamSpec("threshold_db", -60.0, 0.0, 0.0)),
        ChannelOutput("ratio", None, ParamSpec("ratio", 1.0, 10.0, 1.0, "log")),
        ChannelOutput("attack_ms", None, ParamSpec("attack_ms", 0.5, 100.0, 10.0, "log")),
        ChannelOutput("release_ms", None, ParamSpec("release_ms", 20.0, 1000.0, 100.0, "log")),
        ChannelOutput("knee_db", None, ParamSpec("knee_db", 0.0, 12.0, 6.0)),
        ChannelOutput("makeup_db", None, ParamSpec("makeup_db", 0.0, 12.0, 0.0)),
        ChannelOutput("reverb_send_db", None, ParamSpec("reverb_send_db", -60.0, 0.0, -60.0)),
    ]
    return tuple(outputs)


N_CHANNEL_PARAMS = len(channel_specs(44100))
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
        normalized: ``(batch, tracks, N_CHANNEL_PARAMS)`` in [0, 1], order of `channel_specs`.
        master_normalized: ``(batch, len(MASTER_SPECS))`` in [0, 1].
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
        self.specs = channel_specs(config.sample_rate)
        dim = config.encoder.embed_dim
        self.encoder = MultitrackEncoder(config.encoder)
        self.channel_head = mlp([2 * dim, config.hidden, config.hidden, len(self.specs)])
        self.master_head = mlp([dim, config.hidden, len(MASTER_SPECS)])
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
            master: ``(batch, len(MASTER_SPECS))``.
            mask: ``(batch, tracks)`` bool.
        """
        batch, tracks, _ = normalized.shape
        values: dict[str, torch.Tensor] = {}
        bands: dict[str, list[torch.Tensor]] = {
            "eq_freq_hz": [normalized.new_full((batch, tracks), 1000.0)] * N_BANDS,
            "eq_gain_db": [normalized.new_zeros(batch, tracks)] * N_BANDS,
            "eq_q": [normalized.new_full((batch, tracks), _PASS_Q)] * N_BANDS,
        }
        for i, out in enumerate(self.specs):
            value = out.spec.denormalize(normalized[..., i])
            if out.band is None:
                values[out.field] = value
            else:
                bands[out.field][out.band] = value
        fixed = {name: master.new_full((batch,), value) for name, value in FIXED_MASTER.items()}
        return ConsoleTensors(
            **values, mute=~mask, eq_type=self.eq_types.expand(batch, tracks, N_BANDS),
            **{name: torch.stack(parts, dim=-1) for name, parts in bands.items()},
            reverb_decay_s=MASTER_SPECS[0].denormalize(master[:, 0]), **fixed)

    def normalize(self, params: ConsoleTensors) -> tuple[torch.Tensor, torch.Tensor]:
        """Settings -> ``(normalized (batch, tracks, N_CHANNEL_PARAMS), master (batch, 1))``, clamped to [0, 1].

        EQ bands are read by position in the `STANDARD_EQ` layout.
        """
        columns = []
        for out in self.specs:
            value = getattr(params, out.field)
            if out.band is not None:
                value = value[..., out.band] if value.shape[-1] > out.band else torch.full_like(value[..., 0], 1.0)
            columns.append(out.spec.normalize(value.float()))
        master = MASTER_SPECS[0].normalize(params.reverb_decay_s.float())[:, None]
        return torch.stack(columns, dim=-1).clamp(0.0, 1.0), master.clamp(0.0, 1.0)

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
            if out.field == "pan":
                diffs.append(((2.0 * pred[..., i] - 1.0).abs() - (2.0 * truth[..., i] - 1.0).abs()).abs())
            else:
                diffs.append((pred[..., i] - truth[..., i]).abs())
            if out.field in _COMPRESSOR_DETAIL:
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

