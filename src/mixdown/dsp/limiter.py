"""The master bus's look-ahead true-peak limiter.

Its promise: the output never exceeds the ceiling, read either by the BS.1770 meter
(`mixdown.dsp.true_peak.true_peak`) or by a 16x band-limited reconstruction (what a DAC
or a sample-rate converter produces), and it holds against an independent meter
(scipy's ``resample_poly`` at 16x and 32x; `tests/test_true_peak.py` drives noise,
full-scale squares, 19-20 kHz sines and chirps to the Nyquist frequency into it, directly,
through the console, and through every settings method on them and on the demo). It aims
`SAFETY_MARGIN_DB` under the ceiling: the measured disagreement between its
reconstruction and that meter, plus headroom.

The gain is computed at the ceiling check's resolution and applied per sample, linked
across channels. For each sample the gain ``target / peak`` that would keep its
interval's peak at the target is min-filtered over ``2L + 1`` samples (``L``: the
look-ahead), then smoothed by a centred ``L + 1``-sample moving average: every sample's
smoothed gain averages values that are all at most its own required gain, so the gain
ramps down over the look-ahead before a peak instead of clipping it. Because a changing
gain spreads the spectrum a little, the output is measured again and the passes repeat
where anything is still over (at most `MAX_PASSES`); a last constant gain settles any
remainder, so the promise does not rest on the smoothing. A signal whose peak is under
the target passes through untouched (bit-exact).

Everything runs on fixed-size blocks with margins (``mixdown.dsp.true_peak.CHUNK``), and
the oversampled signal is never stored: memory is the gain curve plus one block.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from mixdown.dsp.true_peak import (
    CHUNK,
    ceiling_peaks,
    reconstruction_bank,
    true_peak,
    true_peak_dbtp,
)

__all__ = ["MAX_PASSES", "SAFETY_MARGIN_DB", "apply_limiter", "limit", "limiter_gain", "true_peak",
           "true_peak_dbtp"]

SAFETY_MARGIN_DB = 0.12
"""The limiter aims this far under the ceiling. Measured with the margin at 0: over tones
(15-21.9 kHz), chirps, full-scale squares, noise bursts and demo mixes at 44.1 and
48 kHz, scipy's ``resample_poly`` (16x and 32x, Kaiser beta 5) read the output at most
0.078 dB over the target (a 21.5 kHz tone at 48 kHz; gaussian noise bursts 0.062 dB):
the two reconstructions differ near half the sample rate. 0.12 dB leaves 0.04 dB."""

MAX_PASSES = 4
"""Gain passes before the last constant correction. Measured over 81 hard signals (tones,
squares, noise, mixes; 44.1 and 48 kHz): the check after the first pass finds an overshoot
in 10, at most 0.0002 dB (the gain's own modulation); the check after the second finds none."""

_AIM = 1.0 - 1e-6  # gains aim 1e-5 dB under the target: float rounding never asks for another pass


def limiter_gain(x: np.ndarray, ceiling_dbtp: float, sample_rate: int, lookahead_ms: float = 5.0) -> np.ndarray:
    """The limiter's gain curve for ``x``.

    Args:
        x: ``(channels, samples)``, not modified.
        ceiling_dbtp: the ceiling.
        sample_rate: in Hz.
        lookahead_ms: the gain's attack (and release) ramp.

    Returns:
        ``(samples,)`` float64 gain in (0, 1], shared by all channels; all ones (exactly)
        when ``x`` is already under the ceiling by `SAFETY_MARGIN_DB`.
    """
    gain = _gain_or_none(x, ceiling_dbtp, sample_rate, lookahead_ms)
    return np.ones(np.shape(x)[-1]) if gain is None else gain


def apply_limiter(x: np.ndarray, ceiling_dbtp: float, sample_rate: int, lookahead_ms: float = 5.0) -> None:
    """`limit` in place: ``x (channels, samples)`` is multiplied by the gain (left alone when under the ceiling)."""
    gain = _gain_or_none(x, ceiling_dbtp, sample_rate, lookahead_ms)
    if gain is not None:
        np.multiply(x, gain, out=x, casting="unsafe")


def _gain_or_none(x: np.ndarray, ceiling_dbtp: float, sample_rate: int, lookahead_ms: float) -> np.ndarray | None:
    """`limiter_gain`, or None where it would be all ones."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected x of shape (channels, samples), got {x.shape}")
    samples = x.shape[-1]
    target = 10.0 ** ((ceiling_dbtp - SAFETY_MARGIN_DB) / 20.0)
    lookahead = max(2, round(lookahead_ms * sample_rate / 1000.0))
    smoothing = lookahead // 2  # centred moving average over 2 * smoothing + 1 <= 2 * lookahead + 1 samples
    reach = reconstruction_bank().reach + 1
    margin = lookahead + smoothing + reach
    gain: np.ndarray | None = None
    changed: np.ndarray | None = None  # where the last pass changed the output (None: everywhere)
    for attempt in range(MAX_PASSES + 1):
        updates = []
        worst = 0.0
        for start in range(0, samples, CHUNK):
            stop = min(start + CHUNK, samples)
            lo, hi = max(0, start - margin), min(samples, stop + margin)
            where = None if changed is None else changed[lo:hi]
            if where is not None and not where.any():
                continue
            block = x[:, lo:hi] if gain is None else x[:, lo:hi] * gain[lo:hi]
            peaks = ceiling_peaks(block, target, sample_rate, where)
            over = float(peaks.max(initial=0.0))
            if over <= target:
                continue
            worst = max(worst, over)
            # Aim a hair under the target, so that rounding alone never calls for another pass.
            required = np.minimum(1.0, _AIM * target / np.maximum(peaks, 1e-300))
            smooth = scipy.ndimage.minimum_filter1d(required, 2 * lookahead + 1, mode="nearest")
            smooth = scipy.ndimage.uniform_filter1d(smooth, 2 * smoothing + 1, mode="nearest")
            smooth[smooth > 1.0 - 1e-9] = 1.0  # the running sum's rounding after a dip, not a gain change
            updates.append((start, stop, np.minimum(smooth, required)[start - lo:stop - lo]))  # min: rounding
        if not updates:
            return gain
        if gain is None:
            gain = np.ones(samples)
        if attempt == MAX_PASSES:  # a constant gain scales every interpolated value alike
            gain *= _AIM * target / worst
            return gain
        changed = np.zeros(samples, dtype=bool)
        for start, stop, update in updates:
            gain[start:stop] *= update
            lowered = np.flatnonzero(update < 1.0)
            if len(lowered):
                changed[max(0, start + lowered[0] - reach):min(samples, start + lowered[-1] + reach + 1)] = True
    return gain


def limit(x: np.ndarray, ceiling_dbtp: float, sample_rate: int, lookahead_ms: float = 5.0) -> np.ndarray:
    """Keep the true peak of ``x (channels, samples)`` at or under ``ceiling_dbtp``.

    Returns a new array of ``x``'s dtype; ``x`` is not modified. A signal already under
    the ceiling (by `SAFETY_MARGIN_DB`) is returned unchanged (as a copy).
    """
    out = np.array(x, copy=True)
    apply_limiter(out, ceiling_dbtp, sample_rate, lookahead_ms)
    return out
