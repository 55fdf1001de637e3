"""A style reference: any finished stereo song, loaded, checked and analysed (never mixed in).

Unlike `mixdown.mixers.reverse.reference` (the mix *of these stems* to reproduce,
which must match their length), a style reference is another song at any rate and
length. It must be usable as a style: readable, finite, stereo with two different
channels, at least `MIN_REFERENCE_S` long and not silent. Each problem is one
`mixdown.errors.AudioError` line naming the file.

A long reference is analysed in `MAX_EXCERPTS` excerpts of `EXCERPT_S` seconds spread
over it (`reference_excerpts`), so the cost does not grow with its length.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from mixdown.audio import load_audio, probe_audio, resample
from mixdown.errors import AudioError
from mixdown.multitrack import SILENCE_DBFS
from mixdown.style.features import ANALYSIS_RATE_HZ, StyleFeatures, excerpt_features

MIN_REFERENCE_S = 3.0
"""Shortest usable reference: a few bars' worth of frames for the dynamics features."""

MAX_REFERENCE_S = 1800.0
"""Longest reference read (30 min); longer files are refused before decoding."""

MONO_SIDE_DB = -60.0
"""A reference whose side signal is this far under its mid throughout is a mono mix."""

EXCERPT_S = 5.0
"""Length of each analysed excerpt of a reference."""

MAX_EXCERPTS = 12
"""Most excerpts analysed (60 s in all)."""


def check_style_reference(audio: np.ndarray, sample_rate: int, where: str = "the reference") -> np.ndarray:
    """``audio`` as float32 ``(2, samples)`` after checking it is usable as a style.

    Args:
        audio: the reference song, ``(2, samples)``.
        sample_rate: its rate in Hz.
        where: the name used in messages (the file).

    Raises:
        AudioError: one line, for a wrong shape, mono (one channel or two identical ones),
            non-finite samples, shorter than `MIN_REFERENCE_S`, or silent.
    """
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise AudioError(f"{where}: a reference must have shape (2, samples), got {audio.shape}")
    if audio.shape[0] != 2:
        raise AudioError(f"{where}: the reference is mono; a stereo mix (2 channels) is needed to read its style")
    seconds = audio.shape[1] / sample_rate
    if seconds < MIN_REFERENCE_S:
        raise AudioError(f"{where}: the reference is {seconds:.2f} s long; at least {MIN_REFERENCE_S:g} s is needed")
    if not np.isfinite(audio).all():
        raise AudioError(f"{where}: the reference contains NaN or infinite samples")
    peak = float(np.abs(audio).max())
    if peak <= 10.0 ** (SILENCE_DBFS / 20.0):
        raise AudioError(f"{where}: the reference is silent")
    audio = audio.astype(np.float32, copy=False)
    mid = np.sum((audio[0].astype(np.float64) + audio[1]) ** 2)
    side = np.sum((audio[0].astype(np.float64) - audio[1]) ** 2)
    if side <= mid * 10.0 ** (MONO_SIDE_DB / 10.0):
        raise AudioError(f"{where}: the reference's two channels are identical (a mono mix); "
                         "a stereo mix is needed to read its width")
    return audio


def load_style_reference(path: str | os.PathLike, sample_rate: int = ANALYSIS_RATE_HZ) -> np.ndarray:
    """Read and check a reference song, resampled to ``sample_rate``.

    Returns:
        float32 ``(2, samples)``.

    Raises:
        AudioError: unreadable or corrupt file, or one `check_style_reference` refuses.
    """
    info = probe_audio(path)
    if info.channels != 2:
        raise AudioError(f"{path}: the reference is mono; a stereo mix (2 channels) is needed to read its style")
    if info.duration_s > MAX_REFERENCE_S:
        raise AudioError(f"{path}: the reference is {info.duration_s:.0f} s long; at most {MAX_REFERENCE_S:g} s")
    if info.duration_s < MIN_REFERENCE_S:
        raise AudioError(f"{path}: the reference is {info.duration_s:.2f} s long; "
                         f"at least {MIN_REFERENCE_S:g} s is needed")
    audio, rate = load_audio(path)
    audio = check_style_reference(audio, rate, str(path))
    return resample(audio, rate, sample_rate)


def reference_excerpts(audio: np.ndarray, sample_rate: int = ANALYSIS_RATE_HZ) -> np.ndarray:
    """Up to `MAX_EXCERPTS` excerpts of `EXCERPT_S` seconds spread evenly over ``audio`` (all of it if short).

    Returns:
        float32 ``(excerpts, 2, samples)``.
    """
    length = round(EXCERPT_S * sample_rate)
    frames = audio.shape[-1]
    if frames <= length * MAX_EXCERPTS:
        count = max(1, frames // length)
        length = frames // count
    else:
        count = MAX_EXCERPTS
    starts = np.linspace(0, frames - length, count).round().astype(int)
    return np.stack([audio[:, s:s + length] for s in starts]).astype(np.float32, copy=False)


def reference_style(audio: np.ndarray, sample_rate: int, where: str = "the reference") -> StyleFeatures:
    """The style of a reference song at any rate: checked, resampled to `ANALYSIS_RATE_HZ`, excerpts pooled.

    Returns:
        `StyleFeatures` with batch 1 (float64, no gradient).
    """
    audio = check_style_reference(audio, sample_rate, where)
    audio = resample(audio, sample_rate, ANALYSIS_RATE_HZ)
    with torch.no_grad():
        return excerpt_features(torch.from_numpy(reference_excerpts(audio)).double())
