"""Differentiable Mixing Console (DMC): a controller trained through a frozen neural channel strip.

After Steinmetz, Pons, Pascual & Serra, "Automatic multitrack mixing with a
differentiable mixing console of neural audio effects" (ICASSP 2021). Three weight-
shared parts, applied to every input channel, so the model is equivariant to the order
of its inputs and takes any number of them:

* **encoder + context**: `mixdown.models.encoders.MultitrackEncoder` embeds every
  track; the context is the mean of the embeddings. The paper used a pre-trained,
  frozen VGGish; its weights cannot be downloaded here, so a small log-mel CNN (plus
  level statistics and the instrument class) is trained jointly instead;
* **post-processor**: an MLP on ``[track embedding, context]`` that gives each channel's
  settings in [0, 1] (and a master head for the shared reverb's decay). Encoder, context
  and post-processor are exactly `mixdown.models.estimator.Estimator`'s ``estimate``,
  used here as the *controller*, so the two methods differ only in how the mix is made
  during training;
* **transformation network**: the pre-trained, frozen `mixdown.models.emulator.Emulator`
  processes each channel with the predicted EQ (`STANDARD_EQ`) and compressor settings.

What the emulator covers and what is exact DSP. The emulator stands in for the channel
strip's EQ and compressor only, the parts that need a learned model in the paper's
design. Everything after them is trivial or shared, and runs through the console's own
code (`mixdown.console.render_tensor` with EQ and compressor set to neutral,
`fader_pan_send`): the fader (`mixdown.dsp.gain`), constant-power pan
(`mixdown.dsp.pan`), the post-fader send into the *shared* reverb bus (one reverb for
all channels, as on the console, so it cannot live inside a per-channel network), and
the master (loudness normalisation to -14 LUFS, true-peak limiter), exactly as when the
synthetic targets were rendered. The training loss is the sum/difference stereo loss
(`mixdown.losses.StereoLoss`, via `mixdown.train`) against the target mix; the DMC
never sees the true settings.

Channels: a mono track is one emulator row; a stereo track two (left and right with the
same settings, so unlike the console's stereo-linked compressor the two sides are
compressed independently).

At inference the predicted settings are rendered by the *real* console
(`mixdown.mixers.dmc.DMCMixer`), so the user gets editable settings and the exact
processing; `DMC.render_settings` renders any settings through the emulator instead,
which measures how far the two renders are apart (``benchmarks/dmc_eval.py``).

Training needs pre-trained emulator weights (``emulator_weights``, from
``mixdown train configs/emulator.yaml``); a DMC checkpoint holds the
emulator's weights too, so inference never reads that file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from mixdown.console import ConsoleTensors, render_tensor
from mixdown.errors import MixdownError
from mixdown.models.emulator import (
    EMULATED_FIELDS,
    Emulator,
    EmulatorConfig,
    emulated_outputs,
)
from mixdown.models.encoders import EncoderConfig
from mixdown.models.estimator import Estimator, EstimatorConfig, ParamEstimate
from mixdown.params import SCHEMA

SAMPLE_RATE = 22050
"""Default rate of the DMC (controller analysis, emulator and training renders), in Hz."""


@dataclass(frozen=True)
class DMCConfig:
    """Settings of `DMC`.

    Attributes:
        controller: Encoder, context and post-processor (the estimator's network); its
            encoder's ``sample_rate`` is the model's.
        emulator: The transformation network (same ``sample_rate``).
        emulator_weights: A checkpoint of a pre-trained ``emulator`` model, loaded when
            the file exists (training reads it; a DMC checkpoint already holds the
            emulator, so a missing file is only an error when training starts).
    """

    controller: EstimatorConfig = field(
        default_factory=lambda: EstimatorConfig(encoder=EncoderConfig(sample_rate=SAMPLE_RATE)))
    emulator: EmulatorConfig = field(default_factory=lambda: EmulatorConfig(sample_rate=SAMPLE_RATE))
    emulator_weights: str | None = None

    def __post_init__(self) -> None:
        if self.emulator.sample_rate != self.controller.sample_rate:
            raise ValueError(f"the emulator runs at {self.emulator.sample_rate} Hz but the controller at "
                             f"{self.controller.sample_rate} Hz; they must match")

    @property
    def sample_rate(self) -> int:
        """Rate of the audio the model takes and renders, in Hz."""
        return self.controller.sample_rate


@dataclass
class DMCOutput:
    """`DMC` output: the emulated ``mix (batch, 2, samples)`` and the settings that made it."""

    mix: torch.Tensor
    estimate: ParamEstimate


def fader_pan_send(params: ConsoleTensors) -> ConsoleTensors:
    """``params`` without EQ bands and with a neutral compressor: the console's part after the emulator.

    Rendering these with `mixdown.console.render_tensor` applies fader, mute, pan,
    reverb send, reverb and master, and nothing else (a compressor at ratio 1 and 0 dB
    makeup is the identity).
    """
    no_bands = {name: getattr(params, name)[..., :0]
                for name in ("eq_type", *(spec.tensor for spec in SCHEMA if spec.level == "band"))}
    compressor = {spec.tensor: torch.full_like(params.threshold_db, spec.default)
                  for spec in SCHEMA if spec.group == "compressor"}
    return replace(params, **no_bands, **compressor)


class DMC(nn.Module):
    """Controller + frozen emulator + exact fader, pan, reverb and master (see the module docstring).

    Shape:
        stems: ``(batch, tracks, channels, samples)``, 1 or 2 channels, at ``config.sample_rate``.
        mask: ``(batch, tracks)`` bool, True for real tracks.
        instruments: ``(batch, tracks)`` long ids into `mixdown.multitrack.INSTRUMENT_CLASSES`.
        stereo: ``(batch, tracks)`` bool, True for genuinely stereo stems.
        Output: `DMCOutput` with ``mix (batch, 2, samples)``.
    """

    def __init__(self, config: DMCConfig = DMCConfig()):
        super().__init__()
        self.config = config
        self.controller = Estimator(config.controller)
        self.emulator = Emulator(config.emulator).requires_grad_(False)
        self.register_buffer("emulator_pretrained", torch.tensor(False))
        columns = [i for i, out in enumerate(self.controller.specs) if out.tensor in EMULATED_FIELDS]
        if tuple(self.controller.specs[i] for i in columns) != emulated_outputs(config.sample_rate):
            raise MixdownError("the controller's EQ and compressor outputs do not match the emulator's settings")
        self.register_buffer("emulated_columns", torch.tensor(columns), persistent=False)
        if config.emulator_weights is not None and Path(config.emulator_weights).is_file():
            self.load_emulator(config.emulator_weights)

    def load_emulator(self, path: str | Path) -> None:
        """Load pre-trained emulator weights (a checkpoint of the ``emulator`` model).

        Raises:
            MixdownError: If the file is not such a checkpoint or its settings differ
                from ``config.emulator``.
        """
        from mixdown.models import load_model

        loaded = load_model(path)
        if loaded.name != "emulator":
            raise MixdownError(f"{path}: holds a {loaded.name!r} model, not an emulator")
        if loaded.model.config != self.config.emulator:
            raise MixdownError(f"{path}: the emulator's settings differ from the DMC's emulator config "
                               f"({loaded.model.config} vs {self.config.emulator})")
        self.emulator.load_state_dict(loaded.model.state_dict())
        self.emulator_pretrained.fill_(True)

    def estimate(self, stems: torch.Tensor, mask: torch.Tensor, instruments: torch.Tensor) -> ParamEstimate:
        """The controller's settings, without rendering."""
        return self.controller.estimate(stems, mask, instruments)

    def parameter_loss(self, estimate: ParamEstimate, target: ConsoleTensors, mask: torch.Tensor) -> torch.Tensor:
        """Distance to true settings per mix (`Estimator.parameter_loss`; for monitoring, the DMC trains without it)."""
        return self.controller.parameter_loss(estimate, target, mask)

    def forward(self, stems: torch.Tensor, mask: torch.Tensor, instruments: torch.Tensor,
                stereo: torch.Tensor) -> DMCOutput:
        if self.training and not bool(self.emulator_pretrained):
            raise MixdownError(f"the DMC trains through a pre-trained emulator, and none was loaded (emulator_weights: "
                               f"{self.config.emulator_weights}); run mixdown train configs/emulator.yaml first")
        estimate = self.estimate(stems, mask, instruments)
        return DMCOutput(self.render(stems, estimate.normalized, estimate.params, mask, stereo), estimate)

    def render(self, stems: torch.Tensor, normalized: torch.Tensor, params: ConsoleTensors, mask: torch.Tensor,
               stereo: torch.Tensor) -> torch.Tensor:
        """The emulated mix: emulator per channel, then the console's fader, pan, reverb and master.

        Args:
            stems: ``(batch, tracks, channels, samples)``.
            normalized: ``(batch, tracks, N_CHANNEL_PARAMS)`` controller outputs in [0, 1].
            params: The same settings in physical units (masked tracks muted).
            mask, stereo: ``(batch, tracks)`` bool.

        Returns:
            ``(batch, 2, samples)``.
        """
        processed = self.emulate(stems, normalized, mask, stereo)
        return render_tensor(processed, fader_pan_send(params), stereo & mask, self.config.sample_rate)

    def render_settings(self, stems: torch.Tensor, params: ConsoleTensors, mask: torch.Tensor,
                        stereo: torch.Tensor) -> torch.Tensor:
        """`render` of any settings in physical units (read in the `STANDARD_EQ` layout, clamped to the controller's ranges)."""
        normalized, _ = self.controller.normalize(params)
        return self.render(stems, normalized, params, mask, stereo)

    def emulate(self, stems: torch.Tensor, normalized: torch.Tensor, mask: torch.Tensor,
                stereo: torch.Tensor) -> torch.Tensor:
        """Every real track through the emulator with its EQ and compressor settings.

        Returns:
            ``(batch, tracks, channels, samples)``; zero for masked tracks, and a mono
            track in a two-channel batch has its processed signal on both channels.
        """
        batch, tracks, channels, samples = stems.shape
        if channels not in (1, 2) or normalized.shape[:2] != (batch, tracks) or mask.shape != (batch, tracks):
            raise ValueError(f"expected stems (batch, tracks, 1 or 2, samples) with settings and mask for "
                             f"(batch, tracks), got {tuple(stems.shape)}, {tuple(normalized.shape)}, "
                             f"{tuple(mask.shape)}")
        settings = normalized.index_select(-1, self.emulated_columns)
        left = mask.nonzero(as_tuple=True)
        right = (mask & stereo).nonzero(as_tuple=True) if channels == 2 else (left[0][:0], left[1][:0])
        audio = torch.cat([stems[left][:, :1], stems[right][:, -1:]])
        out = self.emulator(audio, torch.cat([settings[left], settings[right]]))[:, 0]
        mono = len(left[0])
        processed = stems.new_zeros(stems.shape)
        for channel in range(channels):  # mono tracks: the same signal on every channel
            processed = processed.index_put((*left, torch.full_like(left[0], channel)), out[:mono])
        if channels == 2:  # stereo tracks: their own right side
            processed = processed.index_put((*right, torch.ones_like(right[0])), out[mono:])
        return processed
