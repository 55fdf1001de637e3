"""Building blocks shared by the learned mixers: per-channel audio encoder, context pooling.

`MultitrackEncoder` turns each track of a multitrack into an embedding and pools them
into a context vector:

1. **Log-mel spectrogram** of the track's mid ``(L + R) / 2`` and side ``(L - R) / 2``
   signals (a mono track's side is silent, which tells mono from stereo sources).
   Magnitude STFT (Hann window, scaled by ``2 / sum(window)`` so that a sine of
   amplitude ``A`` on a bin reads ``A`` there) -> power -> triangular mel filterbank
   (`mel_filterbank`, HTK mel scale ``m = 2595 log10(1 + f / 700)``, O'Shaughnessy
   1987) -> dB. Levels stay absolute (no per-track normalisation), since a fader
   depends on how loud its stem is.
2. A small CNN over the (mid, side) log-mel images, pooled over time (mean and max)
   -> ``embed_dim``.
3. Joined with the long-term average spectrum (dB of the mean mel power: the energy,
   not the mean of its log), level statistics (RMS and peak dBFS of the mid, side to
   mid ratio) and a learned embedding of the instrument class, through an MLP.
4. Context: the masked mean of the track embeddings (`masked_mean`): any number of
   tracks, invariant to their order.

Layouts: multitracks ``(batch, tracks, channels, samples)`` with 1 or 2 channels,
masks ``(batch, tracks)`` (True for real tracks), instrument class ids ``(batch,
tracks)`` indexing `mixdown.multitrack.INSTRUMENT_CLASSES`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mixdown.multitrack import INSTRUMENT_CLASSES

DB_FLOOR = -100.0
"""Levels are clamped at this many dB (full scale = 0 dB)."""

_POWER_FLOOR = 10.0 ** (DB_FLOOR / 10.0)
_DB_SCALE = 20.0  # dB -> network input units: x / 20 (so 0..-100 dB spans 0..-5)


def hz_to_mel(freq_hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * torch.log10(1.0 + freq_hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of `hz_to_mel`: ``700 (10^(m / 2595) - 1)``."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min_hz: float, f_max_hz: float) -> torch.Tensor:
    """Triangular mel filters on the bins of an ``n_fft``-point real FFT.

    ``n_mels + 2`` points equally spaced on the mel scale between ``f_min_hz`` and
    ``f_max_hz`` give the edges and centres: filter ``k`` rises linearly (in Hz) from
    point ``k`` to 1 at point ``k + 1`` and falls back to 0 at point ``k + 2``
    (unnormalised, so between the first and last centre the filters sum to 1).

    Returns:
        ``(n_fft // 2 + 1, n_mels)`` float32 weights.

    Raises:
        ValueError: If the band does not fit below Nyquist.
    """
    if not 0.0 <= f_min_hz < f_max_hz <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min_hz < f_max_hz <= {sample_rate / 2} Hz, got {f_min_hz}, {f_max_hz}")
    freqs = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    mels = torch.linspace(float(hz_to_mel(torch.tensor(f_min_hz))), float(hz_to_mel(torch.tensor(f_max_hz))),
                          n_mels + 2, dtype=torch.float64)
    points = mel_to_hz(mels)
    lower, centre, upper = points[:-2], points[1:-1], points[2:]
    rising = (freqs[:, None] - lower) / (centre - lower)
    falling = (upper - freqs[:, None]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def power_to_db(power: torch.Tensor) -> torch.Tensor:
    """``10 log10(power)``, floored at `DB_FLOOR`."""
    return 10.0 * torch.log10(power.clamp_min(_POWER_FLOOR))


@dataclass(frozen=True)
class EncoderConfig:
    """Settings of `MultitrackEncoder`.

    Attributes:
        sample_rate: Rate of the input audio in Hz.
        n_fft: STFT size (and Hann window length) in samples.
        hop: STFT hop in samples.
        n_mels: Mel bands.
        f_min_hz: Lowest mel edge.
        f_max_hz: Highest mel edge (clamped to Nyquist).
        widths: Channels of the CNN's stride-2 conv blocks.
        embed_dim: Size of a track embedding (and the context).
        class_dim: Size of the instrument-class embedding.
    """

    sample_rate: int = 44100
    n_fft: int = 2048
    hop: int = 1024
    n_mels: int = 64
    f_min_hz: float = 20.0
    f_max_hz: float = 16000.0
    widths: tuple[int, ...] = (16, 32, 64, 64)
    embed_dim: int = 128
    class_dim: int = 16

    def __post_init__(self) -> None:
        if not 8000 <= self.sample_rate <= 192000:
            raise ValueError(f"sample_rate must be in 8000..192000 Hz, got {self.sample_rate}")
        if self.n_fft < 64 or self.hop < 1 or self.n_mels < 8 or not self.widths:
            raise ValueError("need n_fft >= 64, hop >= 1, n_mels >= 8 and at least one CNN width")
        if min(self.widths) < 1 or self.embed_dim < 1 or self.class_dim < 1:
            raise ValueError("widths, embed_dim and class_dim must be positive")


class LogMel(nn.Module):
    """Log-mel spectrogram in dB (see the module docstring).

    Shape:
        Input: ``(..., samples)``, samples >= ``n_fft // 2 + 1``.
        Output: ``(..., n_mels, frames)`` dB and, from `band_power`, ``(..., n_mels, frames)`` power.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.n_fft, self.hop = config.n_fft, config.hop
        f_max = min(config.f_max_hz, config.sample_rate / 2)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        self.register_buffer("filters", mel_filterbank(config.n_fft, config.n_mels, config.sample_rate,
                                                       config.f_min_hz, f_max), persistent=False)

    def band_power(self, x: torch.Tensor) -> torch.Tensor:
        """Mel band power ``(..., n_mels, frames)`` of ``x (..., samples)``."""
        lead, samples = x.shape[:-1], x.shape[-1]
        spec = torch.stft(x.reshape(-1, samples).float(), self.n_fft, self.hop, window=self.window,
                          center=True, return_complex=True)
        # Amplitude spectrum scaled by 2 / sum(window): a sine of amplitude A on a bin reads A there.
        power = (spec.real.square() + spec.imag.square()) * (2.0 / self.window.sum()) ** 2
        mel = torch.einsum("rft,fm->rmt", power, self.filters)
        return mel.reshape(*lead, mel.shape[-2], mel.shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return power_to_db(self.band_power(x))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over tracks of ``x (batch, tracks, dim)`` where ``mask (batch, tracks)`` is True.

    Returns:
        ``(batch, dim)``; zeros for an item without tracks.
    """
    weights = mask.to(x.dtype)[..., None]
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given sizes with GELU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


def level_features(mid: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    """``(RMS dBFS of mid, peak dBFS of mid, side minus mid RMS dB)`` per row -> ``(..., 3)``.

    ``mid``, ``side``: ``(..., samples)``. 0 dBFS is a full-scale square wave.
    """
    mid_power, side_power = mid.square().mean(-1), side.square().mean(-1)
    mid_db, side_db = power_to_db(mid_power), power_to_db(side_power)
    peak_db = power_to_db(mid.abs().amax(-1).square())
    return torch.stack([mid_db, peak_db, side_db - mid_db], dim=-1)


@dataclass
class Encoding:
    """What `MultitrackEncoder` returns.

    Attributes:
        tracks: ``(batch, tracks, embed_dim)`` per-track embeddings (garbage where masked).
        context: ``(batch, embed_dim)`` masked mean of the track embeddings.
    """

    tracks: torch.Tensor
    context: torch.Tensor


class MultitrackEncoder(nn.Module):
    """Shared per-track encoder plus context pooling (see the module docstring).

    Shape:
        stems: ``(batch, tracks, channels, samples)``, 1 or 2 channels.
        mask: ``(batch, tracks)`` bool.
        instruments: ``(batch, tracks)`` long class ids.
        Output: `Encoding`.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.log_mel = LogMel(config)
        blocks: list[nn.Module] = []
        width_in = 2
        for width in config.widths:
            blocks += [nn.Conv2d(width_in, width, 3, stride=2, padding=1), nn.GELU()]
            width_in = width
        self.cnn = nn.Sequential(*blocks)
        freq_out = config.n_mels
        for _ in config.widths:
            freq_out = (freq_out - 1) // 2 + 1
        self.project = nn.Linear(2 * width_in * freq_out, config.embed_dim)
        self.classes = nn.Embedding(len(INSTRUMENT_CLASSES), config.class_dim)
        self.combine = mlp([config.embed_dim + config.n_mels + 3 + config.class_dim, 2 * config.embed_dim,
                            config.embed_dim])

    def forward(self, stems: torch.Tensor, mask: torch.Tensor, instruments: torch.Tensor) -> Encoding:
        batch, tracks, channels, samples = stems.shape
        if channels not in (1, 2) or mask.shape != (batch, tracks) or instruments.shape != (batch, tracks):
            raise ValueError(f"expected stems (batch, tracks, 1 or 2, samples) with mask and instruments "
                             f"(batch, tracks), got {tuple(stems.shape)}, {tuple(mask.shape)}, "
                             f"{tuple(instruments.shape)}")
        mid = stems.mean(dim=2)
        side = (stems[:, :, 0] - stems[:, :, -1]) / 2.0
        power = self.log_mel.band_power(torch.stack([mid, side], dim=2))  # (b, t, 2, mels, frames)
        images = power_to_db(power).reshape(batch * tracks, 2, *power.shape[-2:]) / _DB_SCALE
        features = self.cnn(images).flatten(1, 2)  # (b*t, width*freq, frames)
        pooled = self.project(torch.cat([features.mean(-1), features.amax(-1)], dim=-1))
        spectrum = power_to_db(power[:, :, 0].mean(-1)).reshape(batch * tracks, -1) / _DB_SCALE
        levels = level_features(mid, side).reshape(batch * tracks, 3) / _DB_SCALE
        joined = torch.cat([pooled, spectrum, levels, self.classes(instruments.reshape(-1))], dim=-1)
        embedded = self.combine(joined).reshape(batch, tracks, -1)
        return Encoding(embedded, masked_mean(embedded, mask))

