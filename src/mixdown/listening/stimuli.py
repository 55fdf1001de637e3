"""Stimulus preparation: excerpts, anchors and loudness matching.

Pure functions on float32 signals of shape ``(channels, samples)``.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from mixdown.dsp.loudness import loudness_lufs
from mixdown.errors import AudioError

LOWPASS_ORDER = 8
"""Butterworth order of the anchor low-pass; applied forward and backward (zero phase),
so the magnitude response is that of order 16 and the anchor stays time-aligned with the
reference, which seamless switching needs."""


def cut_excerpt(audio: np.ndarray, sample_rate: int, start_s: float, duration_s: float,
                fade_ms: float) -> np.ndarray:
    """Cut an excerpt and fade it in and out with raised-cosine ramps.

    Args:
        audio: The whole signal.
        sample_rate: Its rate in Hz.
        start_s: Excerpt start in seconds.
        duration_s: Excerpt length in seconds.
        fade_ms: Length of each ramp in ms (0 for none).

    Returns:
        A new float32 array, ``round(duration_s * sample_rate)`` samples long.

    Shape:
        audio: ``(channels, samples)``; returns ``(channels, excerpt_samples)``.

    Raises:
        ValueError: If the excerpt does not lie inside the signal or the fades overlap.
    """
    start = int(round(start_s * sample_rate))
    length = int(round(duration_s * sample_rate))
    fade = int(round(fade_ms * sample_rate / 1000.0))
    if start < 0 or length <= 0 or start + length > audio.shape[-1]:
        raise ValueError(f"excerpt [{start}, {start + length}) is outside a signal of {audio.shape[-1]} samples")
    if 2 * fade > length:
        raise ValueError(f"fades of {fade} samples overlap in an excerpt of {length}")
    excerpt = audio[:, start:start + length].astype(np.float32, copy=True)
    if fade:
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)).astype(np.float32)
        excerpt[:, :fade] *= ramp
        excerpt[:, length - fade:] *= ramp[::-1]
    return excerpt


def make_anchor(reference: np.ndarray, sample_rate: int, lowpass_hz: float | None, mono: bool) -> np.ndarray:
    """An anchor: the reference, optionally downmixed to mono, optionally low-passed.

    ITU-R BS.1534-3 specifies the low anchor as the reference low-passed at
    3.5 kHz and the mid anchor at 7 kHz. The low-pass is a Butterworth filter of order
    `LOWPASS_ORDER` run forward and backward (zero phase).

    Args:
        reference: The reference signal.
        sample_rate: Its rate in Hz.
        lowpass_hz: Cutoff in Hz, or ``None`` for no filter.
        mono: Replace both channels with ``(left + right) / 2``.

    Returns:
        A new float32 array of the reference's shape.

    Shape:
        reference: ``(channels, samples)``; returns the same.
    """
    anchor = reference.astype(np.float64, copy=True)
    if mono:
        anchor[:] = anchor.mean(axis=0, keepdims=True)
    if lowpass_hz is not None:
        if lowpass_hz >= sample_rate / 2:
            raise ValueError(f"cutoff {lowpass_hz} Hz is not below Nyquist at {sample_rate} Hz")
        sos = signal.butter(LOWPASS_ORDER, lowpass_hz, btype="lowpass", fs=sample_rate, output="sos")
        anchor = signal.sosfiltfilt(sos, anchor, axis=-1)
    return anchor.astype(np.float32)


def match_loudness(audio: np.ndarray, sample_rate: int, target_lufs: float) -> tuple[np.ndarray, float]:
    """Scale a signal to an integrated loudness.

    Loudness is the console's BS.1770-4 meter (`mixdown.dsp.loudness.loudness_lufs`), so
    excerpts match what the console's normalisation and the metrics read. BS.1770
    loudness scales with the signal (``+g`` dB of gain adds ``g`` LU) except for
    blocks crossing the -70 LUFS absolute gate, so one gain of ``target - measured`` dB
    lands on the target.

    Args:
        audio: The signal, at least 0.4 s long.
        sample_rate: Its rate in Hz.
        target_lufs: Wanted integrated loudness in LUFS.

    Returns:
        ``(scaled, measured_lufs)``: the scaled float32 copy and the loudness before scaling.

    Shape:
        audio: ``(channels, samples)``; ``scaled`` the same.

    Raises:
        AudioError: If the signal is silent (no gated block above -70 LUFS) or shorter than one
            400 ms block.
    """
    measured = loudness_lufs(audio, sample_rate)
    if not np.isfinite(measured):
        raise AudioError("the excerpt is silent (or under 0.4 s long); cannot match its loudness")
    gain = 10.0 ** ((target_lufs - measured) / 20.0)
    return (audio * gain).astype(np.float32), measured
