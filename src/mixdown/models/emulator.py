"""Neural emulator of the console's channel strip (EQ + compressor), and its pre-training.

The transformation network of Steinmetz, Pons, Pascual & Serra, "Automatic multitrack
mixing with a differentiable mixing console of neural audio effects" (ICASSP 2021): a
FiLM-conditioned TCN trained to behave like a chain of audio effects for any setting
of their parameters, so that a controller can later be trained *through* it.

What it emulates. One channel of `mixdown.console.channel_strips` with the fader at
0 dB and the pan centred: the `STANDARD_EQ` layout (high-pass, low shelf, bell, high
shelf) followed by the compressor, i.e. the `EMULATED_FIELDS` outputs of the learned
mixers (`emulated_outputs`, 16 numbers in [0, 1] on the ranges of
`mixdown.params.head_outputs(sample_rate, "channel")`). Fader, pan and the reverb send are not
emulated: they are exact, cheap DSP (gain, constant-power pan, and a send into the
console's *shared* reverb bus, which no per-channel network can stand in for), so
`mixdown.models.dmc` applies them with the console's own code.

Network (`Emulator`), mono audio ``(batch, 1, samples)`` at ``config.sample_rate``:

1. the settings go through an MLP to a conditioning vector;
2. a short-time Fourier transform (Hann window of ``n_fft`` samples, hop ``hop``) gives
   the input's spectrum ``X`` frame by frame; its log magnitude (dBFS / 20, floored at
   -120 dB) is projected to ``tcn.channels`` features per frame, and a causal TCN
   (`mixdown.models.tcn`) modulated by FiLM runs over the frames;
3. a 1x1 convolution turns its output into a log gain per frequency bin and frame,
   soft-limited to +-`MAX_LOG_GAIN` nepers (+-43 dB), and the output is the inverse
   STFT of ``X * exp(log_gain)``. The gain layer starts at zero, so the untrained
   network is the identity (up to the STFT round trip's float rounding).

A gain per bin and frame is the form both emulated processors take: an EQ is a fixed
gain per frequency (set by the settings alone), a compressor a gain over time (set by
the settings and the input's level history, which the causal TCN sees). The gains are
real, so the emulation is zero-phase where the console's biquads are minimum-phase;
the time-domain term of the loss sees that difference. Frames at 22.05 kHz with hop
256 are 86 per second: the shipped recipe's 6 blocks of kernel 3 (dilations 1..32)
see 127 frames, 1.5 s of level history, enough for the compressor's release (up to
1 s). Output sample ``t`` depends on input samples ``t - n_fft - (RF - 1) hop`` to
``t + n_fft`` (`Emulator.receptive_field_samples` counts them), with ``RF`` the TCN's
receptive field in frames.

Pre-training data (`StripPairs`, `render_strip`): random non-silent mono segments of
synthesized stems (`mixdown.synth.demo.synthesize_song`, every available stem, the
stereo overhead as two sources), a random input gain, and settings drawn uniformly in
[0, 1]^16; the targets are what the real channel strip makes of them. Loss
(`EmulatorLoss`): multi-resolution STFT (spectral convergence + log magnitude,
auraloss) plus a weighted time-domain L1 term, which keeps the phase right (the
emulated channels are summed into a mix).

Pre-train with the one training entry, like every other model (the recipe is an
`EmulatorTrainConfig`; `mixdown.train.EmulatorSystem` is its Lightning wrapper, so this
module stays plain PyTorch)::

    mixdown train configs/emulator.yaml

which writes the best weights (`mixdown.models.save_model` format) to the recipe's
``export`` path and logs the validation error of the emulator and of the identity (the
dry input) against the real strip (``val/emulator_loss``, ``val/identity_loss``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from torch import nn

from mixdown.console import ConsoleTensors, channel_strips
from mixdown.data.songs import STEM_SILENCE_DBFS, rms_dbfs
from mixdown.dsp.pan import pan_gains
from mixdown.errors import MixdownError
from mixdown.models.encoders import mlp
from mixdown.models.tcn import TCN, TCNConfig
from mixdown.params import SCHEMA, STANDARD_EQ, ChannelParams, ConsoleParams, EQBand, HeadOutput, head_outputs

EMULATED_FIELDS = tuple(spec.tensor for spec in SCHEMA if spec.level == "band" or spec.group == "compressor")
"""`ConsoleTensors` fields the emulator covers: the EQ bands and the compressor."""

MAX_DRAWS = 10
"""Offsets drawn per training segment before a silent one is accepted."""


def emulated_outputs(sample_rate: int) -> tuple[HeadOutput, ...]:
    """The emulator's settings, in order: the EQ and compressor outputs of the channel head."""
    return tuple(out for out in head_outputs(sample_rate, "channel") if out.tensor in EMULATED_FIELDS)


N_EMULATED = len(emulated_outputs(44100))


MAX_LOG_GAIN = 5.0
"""Bound of the emulator's log gain per bin, in nepers (5 Np = 43 dB)."""

_FLOOR_DB = -120.0


@dataclass(frozen=True)
class EmulatorConfig:
    """Settings of `Emulator`.

    Attributes:
        sample_rate: Rate of the audio it processes, in Hz (the EQ ranges depend on it).
        n_fft: STFT window (Hann) and FFT size in samples (even).
        hop: STFT hop in samples; at most ``n_fft / 2`` (the Hann overlap-add needs it).
        cond_hidden: Width of the MLP from the settings to the conditioning vector.
        tcn: The TCN over the STFT frames.
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop: int = 256
    cond_hidden: int = 64
    tcn: TCNConfig = field(default_factory=lambda: TCNConfig(channels=64, blocks=6, cond_dim=32))

    def __post_init__(self) -> None:
        if not 8000 <= self.sample_rate <= 192000:
            raise ValueError(f"sample_rate must be in 8000..192000 Hz, got {self.sample_rate}")
        if self.n_fft < 16 or self.n_fft % 2 or not 1 <= self.hop <= self.n_fft // 2 or self.cond_hidden < 1:
            raise ValueError(f"need an even n_fft >= 16, 1 <= hop <= n_fft / 2 and a positive cond_hidden, got "
                             f"n_fft {self.n_fft}, hop {self.hop}, cond_hidden {self.cond_hidden}")

    @property
    def bins(self) -> int:
        """Frequency bins of the STFT."""
        return self.n_fft // 2 + 1


class Emulator(nn.Module):
    """FiLM-TCN emulation of one channel strip's EQ and compressor (see the module docstring).

    Shape:
        audio: ``(batch, 1, samples)`` at ``config.sample_rate``.
        params: ``(batch, N_EMULATED)`` in [0, 1], order of `emulated_outputs`.
        Output: ``(batch, 1, samples)``.
    """

    def __init__(self, config: EmulatorConfig = EmulatorConfig()):
        super().__init__()
        self.config = config
        width = config.tcn.channels
        self.condition = mlp([N_EMULATED, config.cond_hidden, config.cond_hidden, config.tcn.cond_dim])
        self.analysis = nn.Conv1d(config.bins, width, 1)
        self.tcn = TCN(config.tcn)
        self.gain = nn.Conv1d(width, config.bins, 1)
        nn.init.zeros_(self.gain.weight)  # the untrained emulator is the identity
        nn.init.zeros_(self.gain.bias)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    @property
    def receptive_field_samples(self) -> int:
        """Span of input samples that one output sample depends on (see the module docstring)."""
        return 2 * self.config.n_fft + (self.config.tcn.receptive_field - 1) * self.config.hop + 1

    def forward(self, audio: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        batch, channels, samples = audio.shape
        if channels != 1 or params.shape != (batch, N_EMULATED):
            raise ValueError(f"expected audio (batch, 1, samples) and params (batch, {N_EMULATED}), "
                             f"got {tuple(audio.shape)} and {tuple(params.shape)}")
        n_fft, hop, window = self.config.n_fft, self.config.hop, self.window.to(audio.dtype)
        padded = nn.functional.pad(audio[:, 0], (0, max(n_fft // 2 + 1 - samples, 0)))  # stft's reflect padding
        spectrum = torch.stft(padded, n_fft, hop, window=window, return_complex=True)
        level = 10.0 * torch.log10(spectrum.real.square() + spectrum.imag.square() + 10.0 ** (_FLOOR_DB / 10.0))
        frames = self.tcn(self.analysis(level / 20.0), self.condition(params))
        log_gain = MAX_LOG_GAIN * torch.tanh(self.gain(frames) / MAX_LOG_GAIN)
        out = torch.istft(spectrum * torch.exp(log_gain), n_fft, hop, window=window, length=padded.shape[-1])
        return out[:, None, :samples]


# ----------------------------------------------------------------------------- the real strip


def strip_settings(normalized: torch.Tensor, sample_rate: int) -> ConsoleTensors:
    """Console settings of one-track mixes: the emulated settings, fader 0 dB, pan centre.

    Args:
        normalized: ``(rows, N_EMULATED)`` in [0, 1], order of `emulated_outputs`.
        sample_rate: In Hz.

    Returns:
        `ConsoleTensors` of ``rows`` mixes of one track each, with the `STANDARD_EQ`
        layout (the high-pass filter at gain 0 dB and Q 0.707) and the reverb send off.
    """
    rows = normalized.shape[0]
    channel = ChannelParams("strip", eq=[EQBand(band, 1000.0) for band in STANDARD_EQ])
    base = ConsoleTensors.from_params([ConsoleParams([channel], sample_rate=sample_rate)] * rows)
    values = {name: getattr(base, name).clone() for name in EMULATED_FIELDS}
    for i, out in enumerate(emulated_outputs(sample_rate)):
        value = out.spec.denormalize(normalized[:, i].float())
        if out.band is None:
            values[out.tensor] = value[:, None]
        else:
            values[out.tensor][:, 0, out.band] = value
    return replace(base, **values)


def render_strip(audio: torch.Tensor, normalized: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """What the console's channel strip makes of mono ``audio`` with the given settings.

    Runs `mixdown.console.channel_strips` with `strip_settings` and takes the left side
    of the centred output divided by the centre pan gain, i.e. the signal after EQ and
    compressor.

    Shape:
        audio: ``(rows, 1, samples)``; normalized: ``(rows, N_EMULATED)``.
        Output: ``(rows, 1, samples)``.
    """
    rows = audio.shape[0]
    stereo = torch.zeros(rows, 1, dtype=torch.bool)
    with torch.no_grad():
        panned, _ = channel_strips(audio[:, None], strip_settings(normalized, sample_rate), stereo, sample_rate)
        centre = pan_gains(torch.zeros(()), torch.zeros((), dtype=torch.bool))[0]
    return panned[:, 0, :1] / centre


# ----------------------------------------------------------------------------- data


def synthetic_sources(seeds: Sequence[int], sample_rate: int, duration_s: float) -> list[np.ndarray]:
    """Mono sources for pre-training: every stem of ``synthesize_song(seed)`` for each seed.

    Returns:
        float32 arrays ``(samples,)``, one per stem and channel (the stereo overhead
        gives two).
    """
    from mixdown.synth.demo import AVAILABLE_STEMS, synthesize_song

    sources = []
    for seed in seeds:
        song = synthesize_song(seed, sample_rate=sample_rate, duration_s=duration_s, stems=AVAILABLE_STEMS)
        sources += [np.ascontiguousarray(channel, dtype=np.float32) for audio in song.values() for channel in audio]
    return sources


class StripPairs(torch.utils.data.Dataset):
    """Random mono segments with random settings (the inputs; `render_strip` gives targets).

    Item ``i`` is drawn from ``np.random.default_rng([seed, i])``: a source, an offset
    where the segment's RMS is at least `STEM_SILENCE_DBFS` (up to `MAX_DRAWS` draws,
    else the loudest draw), an input gain uniform in ``input_gain_db`` and settings
    uniform in [0, 1]^N_EMULATED.

    Args:
        sources: Mono float32 signals, each at least ``segment_frames`` long.
        segment_frames: Segment length in samples.
        length: Number of items.
        seed: Seed of the draws.
        input_gain_db: ``(low, high)`` range of the gain applied to a segment.

    Items are ``(audio (1, segment_frames), params (N_EMULATED,))`` float32 tensors.
    """

    def __init__(self, sources: Sequence[np.ndarray], segment_frames: int, length: int, seed: int,
                 input_gain_db: tuple[float, float] = (-12.0, 0.0)):
        super().__init__()
        if not sources or min(len(s) for s in sources) < segment_frames:
            raise MixdownError(f"need sources of at least {segment_frames} samples")
        self.sources, self.segment_frames, self.length, self.seed = list(sources), segment_frames, length, seed
        self.input_gain_db = input_gain_db

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        best, best_level = None, -math.inf
        for _ in range(MAX_DRAWS):
            source = self.sources[int(rng.integers(len(self.sources)))]
            start = int(rng.integers(len(source) - self.segment_frames + 1))
            segment = source[start:start + self.segment_frames]
            level = rms_dbfs(segment)
            if level > best_level:
                best, best_level = segment, level
            if level >= STEM_SILENCE_DBFS:
                break
        gain = 10.0 ** (rng.uniform(*self.input_gain_db) / 20.0)
        params = rng.random(N_EMULATED)
        return (torch.from_numpy(best * np.float32(gain))[None],
                torch.from_numpy(params.astype(np.float32)))


# ----------------------------------------------------------------------------- loss


@dataclass(frozen=True)
class EmulatorLossConfig:
    """Settings of `EmulatorLoss`.

    Attributes:
        fft_sizes: STFT sizes (and window lengths) in samples, one resolution each.
        hop_fraction: Hop as a fraction of each FFT size.
        l1_weight: Weight of the mean absolute sample error.
        eps: Floor on STFT magnitudes (auraloss), so silence stays finite.
    """

    fft_sizes: tuple[int, ...] = (256, 1024, 4096)
    hop_fraction: float = 0.25
    l1_weight: float = 10.0
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if not self.fft_sizes or min(self.fft_sizes) < 16 or not 0.0 < self.hop_fraction <= 1.0:
            raise ValueError("need fft_sizes >= 16 and hop_fraction in (0, 1]")
        if self.l1_weight < 0.0 or self.eps <= 0.0:
            raise ValueError("l1_weight must be >= 0 and eps > 0")


class EmulatorLoss(nn.Module):
    """Multi-resolution STFT loss (auraloss) plus ``l1_weight`` times the time-domain L1.

    Args:
        config: Resolutions and weights.
        reduction: ``"mean"`` over the batch, or ``"none"`` for one value per item.

    Shape:
        estimate, target: ``(batch, 1, samples)``, samples > half the largest FFT.
        Output: scalar, or ``(batch,)`` with ``reduction="none"``.

    Each item is scored on its own (spectral convergence divides by the target's norm,
    so pooling a batch would let loud items dominate).
    """

    def __init__(self, config: EmulatorLossConfig = EmulatorLossConfig(), reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        try:
            from auraloss.freq import MultiResolutionSTFTLoss
        except ImportError:
            raise MixdownError("the emulator loss needs auraloss: pip install 'mixdown[train]'") from None
        self.config, self.reduction = config, reduction
        sizes = list(config.fft_sizes)
        self.stft = MultiResolutionSTFTLoss(fft_sizes=sizes, hop_sizes=[max(1, int(n * config.hop_fraction))
                                                                        for n in sizes],
                                            win_lengths=sizes, eps=config.eps)

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if estimate.dim() != 3 or estimate.shape[1] != 1 or estimate.shape != target.shape:
            raise ValueError(f"expected estimate and target of equal shape (batch, 1, samples), "
                             f"got {tuple(estimate.shape)} and {tuple(target.shape)}")
        spectral = torch.stack([self.stft(estimate[i:i + 1], target[i:i + 1]) for i in range(estimate.shape[0])])
        per_item = spectral + self.config.l1_weight * (estimate - target).abs().mean(dim=(1, 2))
        return per_item.mean() if self.reduction == "mean" else per_item


# ----------------------------------------------------------------------------- pre-training


@dataclass(frozen=True)
class EmulatorTrainConfig:
    """The emulator's pre-training recipe (YAML: ``configs/emulator.yaml``; run by ``mixdown train``).

    Attributes:
        model: ``emulator``: the key `mixdown.train.load_recipe` dispatches on.
        model_config: The emulator's settings.
        loss: The loss's settings.
        song_seed: Training songs are ``synthesize_song(song_seed + i)``,
            ``i < train_songs``; validation songs follow them.
        train_songs: Songs whose stems make the training sources.
        val_songs: Songs whose stems make the validation sources.
        song_duration_s: Length of each synthesized song.
        segment_s: Segment length; should exceed the receptive field.
        input_gain_db: Range of the random gain applied to input segments.
        batch_size: Segments per step (and device).
        max_steps: Optimisation steps.
        lr: Peak learning rate (AdamW, one-cycle cosine schedule over ``max_steps``).
        warmup_fraction: Share of the steps spent warming up.
        grad_clip: Gradient-norm clip.
        val_every_steps: Validate (and checkpoint) this often, and at the last step.
        val_segments: Validation segments (fixed).
        seed: Seeds the weights and the draws.
        log_every_steps: Logging interval.
        precision: Lightning precision, e.g. ``32-true``.
        accelerator: ``cpu``, ``gpu`` or ``auto``.
        devices: Devices per node.
        num_nodes: Machines.
        strategy: Lightning strategy: ``auto``, ``ddp``, ...
        threads: torch threads (0 keeps torch's default).
        out: Run folder: logs, checkpoints, ``train.yaml``.
        export: Where to write the best weights (`mixdown.models.save_model` format), or ``None``.
    """

    model: Literal["emulator"] = "emulator"
    model_config: EmulatorConfig = field(default_factory=EmulatorConfig)
    loss: EmulatorLossConfig = field(default_factory=EmulatorLossConfig)
    song_seed: int = 100_000
    train_songs: int = 16
    val_songs: int = 4
    song_duration_s: float = 8.0
    segment_s: float = 1.5
    input_gain_db: tuple[float, float] = (-12.0, 0.0)
    batch_size: int = 8
    max_steps: int = 1000
    lr: float = 3e-3
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    val_every_steps: int = 100
    val_segments: int = 32
    seed: int = 0
    log_every_steps: int = 10
    precision: str = "32-true"
    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    threads: int = 0
    out: str = "runs/emulator"
    export: str | None = None

    def __post_init__(self) -> None:
        positive = {"train_songs": self.train_songs, "val_songs": self.val_songs, "batch_size": self.batch_size,
                    "max_steps": self.max_steps, "val_every_steps": self.val_every_steps,
                    "val_segments": self.val_segments, "log_every_steps": self.log_every_steps,
                    "devices": self.devices, "num_nodes": self.num_nodes}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if not 0.0 < self.segment_s <= self.song_duration_s or self.lr <= 0 or not 0.0 < self.warmup_fraction < 1.0:
            raise ValueError("need 0 < segment_s <= song_duration_s, lr > 0 and warmup_fraction in (0, 1)")
        if self.input_gain_db[0] > self.input_gain_db[1] or self.grad_clip <= 0 or self.threads < 0:
            raise ValueError("input_gain_db must be (low, high), grad_clip > 0 and threads >= 0")


@dataclass(frozen=True)
class EmulatorScores:
    """Mean `EmulatorLoss` against the real strip on a set of pairs.

    Attributes:
        emulator: Of the emulator's output.
        identity: Of the dry input (the trivial emulator).
    """

    emulator: float
    identity: float


def evaluate(model: Emulator, batches: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
             loss: EmulatorLossConfig) -> EmulatorScores:
    """Score ``model`` and the identity on ``(audio, params, target)`` batches (mean over items)."""
    loss = EmulatorLoss(loss, reduction="none")
    was_training = model.training
    model.eval()
    emulated, identity, count = 0.0, 0.0, 0
    with torch.no_grad():
        for audio, params, target in batches:
            emulated += float(loss(model(audio, params), target).sum())
            identity += float(loss(audio, target).sum())
            count += audio.shape[0]
    model.train(was_training)
    return EmulatorScores(emulated / count, identity / count)


class RenderedCollate:
    """Stacks `StripPairs` items and adds their real-strip targets: ``(audio, params, target)``."""

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate

    def __call__(self, items: Sequence[tuple[torch.Tensor, torch.Tensor]]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        audio, params = (torch.stack(parts) for parts in zip(*items, strict=True))
        return audio, params, render_strip(audio, params, self.sample_rate)


def rendered_batches(pairs: StripPairs, batch_size: int, sample_rate: int
                     ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Every item of ``pairs`` as ``(audio, params, target)`` batches, targets from `render_strip`."""
    collate = RenderedCollate(sample_rate)
    return [collate([pairs[i] for i in range(start, min(start + batch_size, len(pairs)))])
            for start in range(0, len(pairs), batch_size)]


def pretraining_pairs(config: EmulatorTrainConfig) -> tuple[StripPairs, StripPairs]:
    """The recipe's training and validation pairs (inputs only; `RenderedCollate` adds the targets).

    Sources are the stems of songs ``song_seed ..`` (`synthetic_sources`): the first
    ``train_songs`` for training, the next ``val_songs`` for validation. Training pairs
    are ``max_steps * batch_size`` draws seeded by ``seed`` (one pass, in order), the
    ``val_segments`` validation pairs are seeded by ``seed + 1``.

    Returns:
        ``(train, val)``.
    """
    rate = config.model_config.sample_rate
    frames = round(config.segment_s * rate)
    seeds = [config.song_seed + i for i in range(config.train_songs + config.val_songs)]
    train_sources = synthetic_sources(seeds[:config.train_songs], rate, config.song_duration_s)
    val_sources = synthetic_sources(seeds[config.train_songs:], rate, config.song_duration_s)
    val = StripPairs(val_sources, frames, config.val_segments, seed=config.seed + 1,
                     input_gain_db=config.input_gain_db)
    train = StripPairs(train_sources, frames, config.max_steps * config.batch_size, seed=config.seed,
                       input_gain_db=config.input_gain_db)
    return train, val
