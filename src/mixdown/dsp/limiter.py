"""True-peak measurement and a look-ahead ceiling limiter for the master bus.

True peak follows ITU-R BS.1770-4 Annex 2: the signal is oversampled 4x with a 48-tap
interpolation filter (12 taps per phase; here a Kaiser-windowed sinc) and the largest
absolute oversampled value is taken. A compiled polyphase kernel does this without
storing the oversampled signal.

The limiter is offline and look-ahead: per sample, the gain that would keep the
4x-oversampled peak under the ceiling is min-filtered over ``2L + 1`` samples, then
smoothed by an ``L + 1``-sample moving average. Every sample's smoothed gain averages
values that are all at most its own required gain, so no peak escapes, and the gain
ramps down over ``L`` samples (the look-ahead) before a peak instead of clipping it.
A final exact true-peak check removes the last rounding overshoot. All of it runs on
fixed-size chunks with margins, so memory does not grow with song length.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.ndimage
import scipy.signal

OVERSAMPLING = 4
TAPS_PER_PHASE = 12
CHUNK = 1 << 17
_FIR_MARGIN = 64  # samples of context either side for the oversampling filter
_PHASES = np.ascontiguousarray(
    (OVERSAMPLING * scipy.signal.firwin(OVERSAMPLING * TAPS_PER_PHASE, 1.0 / OVERSAMPLING, window=("kaiser", 6.0)))
    .reshape(TAPS_PER_PHASE, OVERSAMPLING).T
)  # (phase, tap): phase p holds taps p, p + 4, p + 8, ...


_L1_BOUND = float(np.abs(_PHASES).sum(axis=1).max())
"""No oversampled value exceeds this times the largest nearby |sample|."""


@numba.njit(cache=True, nogil=True, parallel=True)
def _polyphase_peak_kernel(x, phases, bound, skip_below, out):  # pragma: no cover - compiled
    """out[j] = max over channels and phases of |sum_k phases[p, k] x[c, j + K - 1 - k]|.

    Where ``bound`` times the largest |x| under the filter is at most ``skip_below``,
    that upper bound is written instead, skipping the filter (exact for every use
    that only asks whether a value exceeds ``skip_below``).
    """
    taps = phases.shape[1]
    for j in numba.prange(out.shape[0]):
        near = 0.0
        for c in range(x.shape[0]):
            for k in range(taps):
                near = max(near, abs(x[c, j + k]))
        if near * bound <= skip_below:
            out[j] = near * bound
            continue
        peak = 0.0
        for c in range(x.shape[0]):
            for p in range(phases.shape[0]):
                acc = 0.0
                for k in range(taps):
                    acc += phases[p, k] * x[c, j + taps - 1 - k]
                peak = max(peak, abs(acc))
        out[j] = peak


def _oversampled_peak(x: np.ndarray, skip_below: float = 0.0) -> np.ndarray:
    """Per-sample true-peak estimate ``(samples,)`` of ``x (channels, samples)``.

    Entry ``n`` is the largest oversampled value between input samples ``n`` and
    ``n + 1`` (the filter's 5.875-sample delay is compensated). Entries that provably
    stay at or under ``skip_below`` hold an upper bound instead of the exact value.
    """
    padded = np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (TAPS_PER_PHASE - 1, TAPS_PER_PHASE)))
    raw = np.empty(padded.shape[1] - TAPS_PER_PHASE + 1)
    _polyphase_peak_kernel(padded, _PHASES, _L1_BOUND, skip_below, raw)
    delay = TAPS_PER_PHASE // 2
    return raw[delay:delay + x.shape[-1]]


def _chunks(samples: int, margin: int):
    """Yield ``(start, stop, lo, hi)``: a chunk and its extent with ``margin`` context."""
    for start in range(0, samples, CHUNK):
        stop = min(start + CHUNK, samples)
        yield start, stop, max(0, start - margin), min(samples, stop + margin)


def true_peak(x: np.ndarray, skip_below: float = 0.0) -> float:
    """Linear true peak of ``x (channels, samples)`` (0 for empty input).

    With ``skip_below > 0`` the result is exact only when it exceeds ``skip_below``;
    otherwise it is an upper bound at most ``skip_below`` (a faster ceiling check).
    """
    peak = 0.0
    for start, stop, lo, hi in _chunks(x.shape[-1], _FIR_MARGIN):
        peaks = _oversampled_peak(x[:, lo:hi], skip_below)[start - lo:stop - lo]
        peak = max(peak, float(peaks.max(initial=0.0)))
    return peak


def true_peak_dbtp(x: np.ndarray) -> float:
    """True peak in dBTP (``-inf`` for silence)."""
    peak = true_peak(x)
    return 20.0 * np.log10(peak) if peak > 0 else -np.inf


def limit(x: np.ndarray, ceiling_dbtp: float, sample_rate: int, lookahead_ms: float = 5.0) -> np.ndarray:
    """Keep the true peak of ``x (channels, samples)`` at or under ``ceiling_dbtp``.

    Returns a new array; ``x`` is not modified. A signal already under the ceiling is
    returned unchanged (as a copy).
    """
    ceiling = 10.0 ** (ceiling_dbtp / 20.0)
    lookahead = max(1, int(round(lookahead_ms * sample_rate / 1000.0)))
    margin = 2 * lookahead + _FIR_MARGIN
    out = x.copy()
    for start, stop, lo, hi in _chunks(x.shape[-1], margin):
        peaks = _oversampled_peak(x[:, lo:hi], skip_below=ceiling)
        required = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
        if required.min() >= 1.0:
            continue
        gain = scipy.ndimage.minimum_filter1d(required, 2 * lookahead + 1, mode="nearest")
        gain = scipy.ndimage.uniform_filter1d(gain, lookahead + 1, mode="nearest")
        gain = np.minimum(gain, required)  # guards the uniform filter's even-length offset
        out[:, start:stop] = x[:, start:stop] * gain[start - lo:stop - lo].astype(x.dtype)
    overshoot = true_peak(out, skip_below=ceiling) / ceiling
    if overshoot > 1.0:
        out /= overshoot * (1.0 + 1e-6)
    return out
