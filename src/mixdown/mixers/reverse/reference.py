"""The reference mix: loading it for a multitrack, checking it, the part analysed and the master it implies."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import torch

from mixdown.audio import load_audio, probe_audio
from mixdown.dsp.limiter import true_peak_dbtp
from mixdown.dsp.loudness import integrated_loudness
from mixdown.errors import AudioError
from mixdown.multitrack import SILENCE_DBFS, Multitrack
from mixdown.params import SPECS

MAX_LENGTH_MISMATCH_S = 2.0
"""`load_reference` pads or trims a reference whose length is off by at most this; more is an error."""


def load_reference(path: str | os.PathLike, multitrack: Multitrack) -> np.ndarray:
    """Load a reference mix for ``multitrack``: at its rate, as long as its stems.

    A reference at another rate is resampled (soxr, as stems are) with a warning; one
    that is shorter or longer by up to `MAX_LENGTH_MISMATCH_S` is padded with silence
    or trimmed at the end with a warning (exports often add or drop a tail).

    Args:
        path: audio file.
        multitrack: the stems.

    Returns:
        float32 ``(2, multitrack.num_frames)``.

    Raises:
        AudioError: if the file is unreadable, not stereo, silent, or its length differs
            by more than `MAX_LENGTH_MISMATCH_S`.
    """
    info = probe_audio(path)
    if info.channels != 2:
        raise AudioError(f"{path}: the reference mix is mono; it must be stereo (2 channels)")
    audio, _ = load_audio(path, sample_rate=multitrack.sample_rate)
    if info.sample_rate != multitrack.sample_rate:
        warnings.warn(f"{path}: resampled the reference mix from {info.sample_rate} Hz to the stems' "
                      f"{multitrack.sample_rate} Hz", stacklevel=2)
    difference = audio.shape[1] - multitrack.num_frames
    if difference:
        seconds = abs(difference) / multitrack.sample_rate
        if seconds > MAX_LENGTH_MISMATCH_S:
            raise AudioError(f"{path}: the reference mix is {audio.shape[1] / multitrack.sample_rate:.2f} s long "
                             f"but the stems are {multitrack.duration_s:.2f} s; are they the same song?")
        warnings.warn(f"{path}: the reference mix is {seconds:.3f} s {'longer' if difference > 0 else 'shorter'} "
                      f"than the stems; {'trimmed' if difference > 0 else 'padded with silence'} to match",
                      stacklevel=2)
        audio = np.pad(audio[:, :multitrack.num_frames], ((0, 0), (0, max(0, -difference))))
    try:
        return check_reference(multitrack, audio)
    except AudioError as error:
        raise AudioError(f"{path}: {error}") from None


def check_reference(multitrack: Multitrack, reference: np.ndarray) -> np.ndarray:
    """``reference`` as float32 after checking that it is a usable mix of ``multitrack``.

    Args:
        multitrack: the stems.
        reference: the stereo mix, ``(2, multitrack.num_frames)``.

    Returns:
        float32 ``(2, num_frames)`` (no copy when it already is).

    Raises:
        AudioError: if it is not ``(2, num_frames)``, not finite, or silent.
    """
    reference = np.asarray(reference)
    if reference.ndim != 2 or reference.shape[0] not in (1, 2):
        raise AudioError(f"the reference mix must have shape (2, samples), got {reference.shape}")
    if reference.shape[0] != 2:
        raise AudioError("the reference mix is mono; it must be stereo (2 channels)")
    if reference.shape[1] != multitrack.num_frames:
        raise AudioError(f"the reference mix is {reference.shape[1]} samples long but the stems are "
                         f"{multitrack.num_frames}")
    if not np.isfinite(reference).all():
        raise AudioError("the reference mix contains NaN or infinite samples")
    if np.abs(reference).max() <= 10.0 ** (SILENCE_DBFS / 20.0):
        raise AudioError("the reference mix is silent")
    return reference.astype(np.float32, copy=False)


def analysis_window(samples: int, sample_rate: int, max_s: float) -> slice:
    """The central ``max_s`` seconds of ``samples`` (all of them when shorter): the part that is fitted."""
    length = min(samples, round(max_s * sample_rate))
    start = (samples - length) // 2
    return slice(start, start + length)


def master_from_reference(reference: np.ndarray, sample_rate: int) -> tuple[float | None, float | None]:
    """The master settings that reproduce the reference's loudness and peak.

    Args:
        reference: float32 ``(2, samples)``.
        sample_rate: in Hz.

    Returns:
        ``(target_lufs, ceiling_dbtp)``: its integrated loudness (BS.1770) and its true
        peak rounded up to 0.01 dB, each None where outside its `SPECS` range.
    """
    loudness = float(integrated_loudness(torch.from_numpy(reference)[None].double(), sample_rate)[0])
    peak = true_peak_dbtp(reference)
    inside = lambda name, value: (SPECS[name].minimum <= value <= SPECS[name].maximum)  # noqa: E731
    target = round(loudness, 2) if math.isfinite(loudness) and inside("target_lufs", loudness) else None
    ceiling = math.ceil(peak * 100.0) / 100.0 if math.isfinite(peak) and inside("ceiling_dbtp", peak) else None
    return target, ceiling
