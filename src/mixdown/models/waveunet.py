"""Mix-Wave-U-Net: stems in fixed instrument slots, a stereo mix out (audio only, no settings).

The model of Martinez Ramirez, Stoller & Moffat, "A deep learning approach to
intelligent drum mixing with the Wave-U-Net" (JAES 69(3), 2021): the Wave-U-Net of
Stoller, Ewert & Dixon ("Wave-U-Net: a multi-scale neural network for end-to-end audio
source separation", ISMIR 2018) turned around, with the stems stacked as its input
channels and a stereo mix as its output. It makes audio only: there are no console
settings to show, edit or re-render (the project's other methods all make some).

Network (`WaveUNet`), sizes from `WaveUNetConfig`, ``F = channels``, ``L = levels``:

* down block ``i = 0 .. L-1``: convolution of kernel ``down_kernel`` to ``F (i + 1)``
  channels, LeakyReLU, kept as the skip of level ``i``, then decimation by 2 (every
  other sample, as in Stoller et al.);
* bottleneck: convolution of kernel ``down_kernel`` to ``F (L + 1)`` channels, LeakyReLU;
* up block ``i = L-1 .. 0``: linear interpolation by 2, concatenation with the skip of
  level ``i``, convolution of kernel ``up_kernel`` to ``F (i + 1)`` channels, LeakyReLU;
* output: the last features concatenated with the input, a 1x1 convolution to 2
  channels, linear (no tanh: a mix is no bounded source estimate). Its input half is
  initialised to the plain sum of the slots (left to left, right to right), so the
  untrained model starts as the unprocessed sum of the stems.

Every convolution is *valid* (no padding) and the interpolation only fills between
existing samples, as in the Wave-U-Net's context scheme: `network` maps
``input_frames(m)`` input samples to the ``output_frames(m)`` output samples in their
middle (``m`` the bottleneck length), ``context`` samples in from either end. One
output sample depends on the input within ``context`` to ``context + 2 ** levels - 1``
samples on either side, by its phase on the ``2 ** levels`` grid (the interpolated
samples see their two coarse neighbours), and on nothing else. The decimations make
the map equivariant to shifts by multiples of ``2 ** levels`` samples only, so windows
cut on that grid, each with its context, reproduce the whole-signal output to float
rounding: that is how long songs are mixed in bounded memory
(`mixdown.mixers.waveunet.run_network`). `WaveUNet.forward` treats its input as silent
outside the given samples (zeros as context).

Slots. The paper's network has a fixed number of input channels, one per drum
microphone in a fixed order. mixdown's stems vary in number and kind, so each stem
goes to the slot of its instrument class (`WaveUNetConfig.slots`, default: every class
of `mixdown.multitrack.INSTRUMENT_CLASSES`; a class without its own slot goes to
``other``), stems of one class are summed into their slot, and empty slots are zeros.
Every slot is stereo: a stereo stem fills both channels, a mono stem is copied to both.
This is a limitation of the method: two toms share one slot and so one treatment
(their sum can only be balanced and panned as one), two guitars likewise, and a mono
stem cannot be told from a stereo one that is the same on both sides.

Master stage (`master`, not in the paper): with ``target_lufs`` set, the network's
mix is loudness-normalised (ITU-R BS.1770, gated; `mixdown.dsp.loudness`) and, with
``ceiling_dbtp`` set, true-peak limited (`mixdown.dsp.limiter.limit`, its gain applied
as a constant), as the console's master bus does for every other method. A network
whose output scales with its input cannot know the absolute level a target mix was
normalised to; this stage gives it the same level the console gives the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from mixdown.dsp.gain import db_to_amplitude
from mixdown.dsp.limiter import limit
from mixdown.dsp.loudness import integrated_loudness
from mixdown.multitrack import INSTRUMENT_CLASSES

CATCH_ALL_SLOT = "other"
"""The slot that takes every class without a slot of its own."""


@dataclass(frozen=True)
class WaveUNetConfig:
    """Settings of `WaveUNet` (see the module docstring).

    Attributes:
        sample_rate: Rate of the audio it mixes, in Hz.
        slots: Instrument classes with an input slot, in input order; must include
            ``"other"``, which takes the classes not listed.
        levels: Down (and up) blocks; every one halves (doubles) the time resolution.
        channels: Feature growth ``F``: level ``i`` has ``F (i + 1)`` channels.
        down_kernel: Kernel of the down-block and bottleneck convolutions (odd).
        up_kernel: Kernel of the up-block convolutions (odd).
        leaky_slope: Negative slope of the LeakyReLU activations.
        target_lufs: Loudness the mix is normalised to, or None (raw network output).
        ceiling_dbtp: True-peak ceiling of the limiter, or None (no limiter).
    """

    sample_rate: int = 22050
    slots: tuple[str, ...] = INSTRUMENT_CLASSES
    levels: int = 7
    channels: int = 12
    down_kernel: int = 15
    up_kernel: int = 5
    leaky_slope: float = 0.2
    target_lufs: float | None = -14.0
    ceiling_dbtp: float | None = -1.0

    def __post_init__(self) -> None:
        if not 8000 <= self.sample_rate <= 192000:
            raise ValueError(f"sample_rate must be in 8000..192000 Hz, got {self.sample_rate}")
        unknown = [name for name in self.slots if name not in INSTRUMENT_CLASSES]
        if unknown or len(set(self.slots)) != len(self.slots) or CATCH_ALL_SLOT not in self.slots:
            raise ValueError(f"slots must be distinct classes of {list(INSTRUMENT_CLASSES)} including "
                             f"{CATCH_ALL_SLOT!r}, got {list(self.slots)}")
        if self.levels < 1 or self.channels < 1:
            raise ValueError(f"levels and channels must be positive, got {self.levels}, {self.channels}")
        if self.down_kernel < 1 or self.up_kernel < 1 or self.down_kernel % 2 == 0 or self.up_kernel % 2 == 0:
            raise ValueError(f"kernels must be odd and positive, got {self.down_kernel}, {self.up_kernel}")
        if self.target_lufs is not None and not -70.0 < self.target_lufs <= 0.0:
            raise ValueError(f"target_lufs must be in (-70, 0] LUFS or null, got {self.target_lufs}")
        if self.ceiling_dbtp is not None and not -20.0 <= self.ceiling_dbtp <= 0.0:
            raise ValueError(f"ceiling_dbtp must be in [-20, 0] dBTP or null, got {self.ceiling_dbtp}")

    @property
    def input_channels(self) -> int:
        """Network input channels: two per slot."""
        return 2 * len(self.slots)

    @property
    def grid(self) -> int:
        """``2 ** levels``: the shift the network is equivariant to, in samples."""
        return 2 ** self.levels

    @property
    def context(self) -> int:
        """Input samples `WaveUNet.network` needs on either side of the span of its outputs.

        The down and bottleneck convolutions at level ``i`` add ``(down_kernel - 1) / 2 * 2 ** i``
        each, the up convolutions ``(up_kernel - 1) / 2 * 2 ** i`` each.
        """
        half_down, half_up = (self.down_kernel - 1) // 2, (self.up_kernel - 1) // 2
        return half_down * (2 * self.grid - 1) + half_up * (self.grid - 1)

    def output_frames(self, bottleneck_frames: int) -> int:
        """Output length of `WaveUNet.network` for a bottleneck of ``bottleneck_frames``."""
        frames = bottleneck_frames
        for _ in range(self.levels):
            frames = 2 * frames - 1 - (self.up_kernel - 1)
        return frames

    def input_frames(self, bottleneck_frames: int) -> int:
        """Input length `WaveUNet.network` needs for a bottleneck of ``bottleneck_frames``.

        Every skip is of odd length, so decimation keeps its first and last sample and
        the input, skips and output are all centred on one another.
        """
        frames = bottleneck_frames + self.down_kernel - 1
        for _ in range(self.levels):
            frames = 2 * frames - 1 + self.down_kernel - 1
        return frames

    def bottleneck_for(self, output_frames: int) -> int:
        """Smallest bottleneck length whose output is at least ``output_frames`` long."""
        # output_frames(m) = grid * m - up_kernel * (grid - 1), from the loop above
        needed = output_frames + self.up_kernel * (self.grid - 1)
        return max(1, -(-needed // self.grid), self.up_kernel)


def slot_table(slots: Sequence[str]) -> torch.Tensor:
    """Slot index of every class of `INSTRUMENT_CLASSES` ``(classes,)``: its own, else ``other``'s."""
    catch_all = slots.index(CATCH_ALL_SLOT)
    return torch.tensor([slots.index(name) if name in slots else catch_all for name in INSTRUMENT_CLASSES])


def slot_stems(stems: torch.Tensor, mask: torch.Tensor, instruments: torch.Tensor, table: torch.Tensor,
               num_slots: int) -> torch.Tensor:
    """Sum the stems into stereo instrument slots (see the module docstring).

    Args:
        stems: ``(batch, tracks, channels, samples)``, 1 or 2 channels (one is copied to both).
        mask: ``(batch, tracks)`` bool, True for real tracks.
        instruments: ``(batch, tracks)`` long ids into `INSTRUMENT_CLASSES`.
        table: `slot_table` of the slots.
        num_slots: Number of slots.

    Returns:
        ``(batch, 2 * num_slots, samples)``: slot ``s`` in channels ``2s`` (left) and ``2s + 1`` (right).
    """
    batch, tracks, channels, samples = stems.shape
    if channels not in (1, 2) or mask.shape != (batch, tracks) or instruments.shape != (batch, tracks):
        raise ValueError(f"expected stems (batch, tracks, 1 or 2, samples) with mask and instruments (batch, tracks), "
                         f"got {tuple(stems.shape)}, {tuple(mask.shape)} and {tuple(instruments.shape)}")
    routing = functional.one_hot(table.to(instruments.device)[instruments], num_slots).to(stems.dtype)
    routing = routing * mask[..., None].to(stems.dtype)  # (batch, tracks, slots)
    slots = torch.einsum("bts,btcn->bscn", routing, stems.expand(-1, -1, 2, -1))
    return slots.reshape(batch, 2 * num_slots, samples)


def upsample_linear(x: torch.Tensor) -> torch.Tensor:
    """Double the time resolution by linear interpolation between neighbours, without padding.

    Shape:
        x: ``(batch, channels, frames)``. Output: ``(batch, channels, 2 * frames - 1)``,
        the input at even positions and neighbour means at odd ones.
    """
    batch, channels, frames = x.shape
    middle = 0.5 * (x[..., :-1] + x[..., 1:])
    woven = torch.stack([x[..., :-1], middle], dim=-1).reshape(batch, channels, 2 * (frames - 1))
    return torch.cat([woven, x[..., -1:]], dim=-1)


def center_crop(x: torch.Tensor, frames: int) -> torch.Tensor:
    """The central ``frames`` samples of ``x (..., samples)``; the surplus must be even."""
    surplus = x.shape[-1] - frames
    if surplus < 0 or surplus % 2:
        raise ValueError(f"cannot crop {x.shape[-1]} samples centrally to {frames}")
    return x[..., surplus // 2:x.shape[-1] - surplus // 2]


def master(mix: torch.Tensor, sample_rate: int, target_lufs: float | None, ceiling_dbtp: float | None) -> torch.Tensor:
    """Loudness normalisation then a true-peak limiter, as on the console's master bus.

    Silent mixes (loudness ``-inf``) keep their level. The limiter's gain is applied as
    a constant (no gradient through its detector), as in `mixdown.console.render_tensor`.

    Shape:
        mix: ``(batch, 2, samples)``. Output: like ``mix``.
    """
    if target_lufs is not None:
        loudness = integrated_loudness(mix, sample_rate).to(mix.dtype)
        gain_db = torch.where(torch.isinf(loudness), torch.zeros_like(loudness), target_lufs - loudness)
        mix = mix * db_to_amplitude(gain_db)[:, None, None]
    if ceiling_dbtp is None:
        return mix
    raw = mix.detach().cpu().numpy()
    gains = []
    for item in raw:
        limited = limit(item, ceiling_dbtp, sample_rate)
        gains.append(np.divide(limited, item, out=np.ones_like(item), where=item != 0))
    return mix * torch.from_numpy(np.stack(gains)).to(mix)


@dataclass
class WaveUNetOutput:
    """`WaveUNet` output: the stereo ``mix (batch, 2, samples)``."""

    mix: torch.Tensor


class WaveUNet(nn.Module):
    """Mix-Wave-U-Net (see the module docstring).

    Shape:
        stems: ``(batch, tracks, channels, samples)``, 1 or 2 channels, at ``config.sample_rate``.
        mask: ``(batch, tracks)`` bool, True for real tracks.
        instruments: ``(batch, tracks)`` long ids into `INSTRUMENT_CLASSES`.
        stereo: ``(batch, tracks)`` bool; not needed (a mono stem, duplicated or not,
            fills both channels of its slot), accepted for the `MixingModel` protocol.
        Output: `WaveUNetOutput` with ``mix (batch, 2, samples)``.
    """

    def __init__(self, config: WaveUNetConfig = WaveUNetConfig()):
        super().__init__()
        self.config = config
        width = [config.channels * (i + 1) for i in range(config.levels + 1)]
        inputs = [config.input_channels, *width[:-2]]
        self.down = nn.ModuleList(nn.Conv1d(n_in, n_out, config.down_kernel) for n_in, n_out in zip(inputs, width))
        self.bottleneck = nn.Conv1d(width[-2], width[-1], config.down_kernel)
        self.up = nn.ModuleList(nn.Conv1d(width[i + 1] + width[i], width[i], config.up_kernel)
                                for i in reversed(range(config.levels)))
        self.output = nn.Conv1d(width[0] + config.input_channels, 2, 1)
        with torch.no_grad():  # the input's part of the output layer starts as the plain sum of the slots
            direct = self.output.weight[:, width[0]:, 0]
            direct.zero_()
            direct[0, 0::2] = 1.0
            direct[1, 1::2] = 1.0
            self.output.bias.zero_()
        self.register_buffer("slot_table", slot_table(config.slots), persistent=False)

    def network(self, x: torch.Tensor) -> torch.Tensor:
        """The U-Net alone, valid convolutions throughout.

        Shape:
            x: ``(batch, config.input_channels, config.input_frames(m))`` for some ``m >= 1``.
            Output: ``(batch, 2, config.output_frames(m))``, centred on the input.
        """
        config = self.config
        if x.dim() != 3 or x.shape[1] != config.input_channels:
            raise ValueError(f"expected (batch, {config.input_channels}, samples), got {tuple(x.shape)}")
        h, skips = x, []
        for conv in self.down:
            h = functional.leaky_relu(conv(h), config.leaky_slope)
            skips.append(h)
            h = h[..., ::2]
        h = functional.leaky_relu(self.bottleneck(h), config.leaky_slope)
        for conv, skip in zip(self.up, reversed(skips), strict=True):
            h = upsample_linear(h)
            h = functional.leaky_relu(conv(torch.cat([h, center_crop(skip, h.shape[-1])], dim=1)), config.leaky_slope)
        return self.output(torch.cat([h, center_crop(x, h.shape[-1])], dim=1))

    def mix_slots(self, x: torch.Tensor) -> torch.Tensor:
        """The network's mix of slot signals taken as silent outside their ``samples`` (no master stage).

        Shape:
            x: ``(batch, config.input_channels, samples)``. Output: ``(batch, 2, samples)``.
        """
        config, samples = self.config, x.shape[-1]
        bottleneck = config.bottleneck_for(samples)
        front = config.context
        padded = functional.pad(x, (front, config.input_frames(bottleneck) - samples - front))
        return self.network(padded)[..., :samples]

    def forward(self, stems: torch.Tensor, mask: torch.Tensor, instruments: torch.Tensor,
                stereo: torch.Tensor) -> WaveUNetOutput:
        config = self.config
        x = slot_stems(stems, mask, instruments, self.slot_table, len(config.slots))
        return WaveUNetOutput(master(self.mix_slots(x), config.sample_rate, config.target_lufs, config.ceiling_dbtp))
