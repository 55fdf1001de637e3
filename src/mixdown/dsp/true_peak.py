"""True-peak measurement (ITU-R BS.1770-4 Annex 2) and the limiter's reconstruction check.

Two interpolators, both polyphase FIR banks evaluated without storing the oversampled
signal (a compiled kernel computes, for each input sample ``n``, the largest absolute
interpolated value between samples ``n`` and ``n + 1``, the sample itself included):

* **The BS.1770 meter** (`true_peak`, `true_peak_dbtp`). Annex 2 oversamples 4x with a
  48-tap, 4-phase FIR (12 taps per phase) and reads the largest absolute oversampled
  value in dBTP; it asks for more oversampling at lower sample rates. Here: 4x at
  44.1 kHz and above, 8x from 22.05 kHz, 16x below. The filter has the Annex's size
  (12 taps per phase) but is designed here, not copied from its table: a Nyquist
  (interpolating) design, so phase 0 passes the input samples unchanged and a reading is
  never below the sample peak (the even-length 48-tap design this replaced read a
  -6.02 dBTP 19 kHz tone at 44.1 kHz as -6.35), and each other phase is a 12-tap fractional-delay filter (delay ``p / factor``)
  fitted by least squares to an ideal delay over the Annex's audio band, 0-20 kHz at
  48 kHz (0-0.4167 of the sample rate). Measured (`tests/test_true_peak.py`): phase gains
  within -0.11/+0.17 dB up to 0.4 of the sample rate, -0.5 dB at 0.4167; the EBU Tech 3341
  true-peak cases 15-23 read within -0.16/+0.06 dB at 44.1 and 48 kHz (tolerance
  +0.2/-0.4). A 4x meter reads up to 0.69 dB under the continuous peak of a tone near half
  the sample rate (its points miss the crest): it is a meter, not a bound.

* **The reconstruction check** (`ceiling_peaks`, `reconstruction_peak`), with which the
  master limiter keeps its output under the ceiling: 16x oversampling with a
  24-tap-per-phase Kaiser-windowed sinc (beta 5, cutoff at half the sample rate, each
  phase at unit DC gain), the band-limited reconstruction a DAC or a sample-rate converter
  performs. Between its points a band-limited signal rises by at most 0.04 dB. It reads
  at most 0.065 dB under scipy's ``resample_poly`` at 32x (measured on tones, chirps,
  squares and noise up to half the sample rate).

Ceiling checks skip most of the work: an interval whose filters' largest absolute tap
sum times the largest nearby ``|x|`` stays under the threshold cannot exceed it, and the
full 16x reconstruction runs only where the quarter-sample points come within
`QUARTER_TO_CONTINUOUS` of the threshold (`ceiling_peaks`).

References:
    ITU-R BS.1770-4 (10/2015), Annex 2 "Guidelines for accurate measurement of
    true-peak level". EBU Tech 3341 v4 (2016), Table 1, cases 15-23.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numba
import numpy as np

from mixdown.dsp.tasks import run_tasks

CHUNK = 1 << 17
"""Samples per block: memory stays bounded by the block, never by the song."""

BS1770_TAPS_PER_PHASE = 12
BS1770_PASSBAND = 20000.0 / 48000.0  # cycles per sample: the Annex's 20 kHz audio band at 48 kHz
RECONSTRUCTION_OVERSAMPLING = 16
RECONSTRUCTION_TAPS_PER_PHASE = 24
RECONSTRUCTION_KAISER_BETA = 5.0
QUARTER_TO_CONTINUOUS = 10.0 ** (0.8 / 20.0)
"""How far the reconstruction can rise above its quarter-sample points. Bernstein's
inequality bounds the rise above the largest point of the whole signal by 0.70 dB for
content up to half the sample rate (``1 / (1 - (pi / 8)^2 / 2)``); locally, over intervals
within 12 dB of a signal's peak, the largest measured rise (tones, chirps, noise and mixes
up to half the sample rate, at 44.1 and 48 kHz) is 0.73 dB above the interval's own
quarter points and end samples (noise above 18 kHz), 0.53 dB above those of the interval
and its neighbours, which `ceiling_peaks` takes. 0.8 dB is used."""


@dataclass(frozen=True)
class PhaseBank:
    """A polyphase interpolator: ``taps[p]`` gives the value at ``n + delays[p]``.

    Attributes:
        taps: ``(phases, taps_per_phase)``; tap ``k`` multiplies ``x[n + first + k]``.
        delays: ``(phases,)`` fractional positions in (0, 1) (the sample itself, delay 0,
            is always included and has no row).
        first: offset of tap 0 from ``n`` (negative).
        l1: the largest absolute tap sum of a phase: no interpolated value exceeds ``l1``
            times the largest ``|x|`` under the taps.
    """

    taps: np.ndarray
    delays: np.ndarray
    first: int
    l1: float

    @property
    def factor(self) -> int:
        return len(self.delays) + 1

    @property
    def reach(self) -> int:
        """Samples each side of ``n`` that the taps read (at most)."""
        return max(-self.first, self.first + self.taps.shape[1] - 1)


def _tap_positions(taps_per_phase: int) -> np.ndarray:
    """``-(T/2 - 1) .. T/2``: centred on the interval between ``n`` and ``n + 1``."""
    return np.arange(-(taps_per_phase // 2 - 1), taps_per_phase // 2 + 1, dtype=np.float64)


def _least_squares_fractional_delay(delay: float, positions: np.ndarray, passband: float,
                                    grid: int = 1024) -> np.ndarray:
    """Taps approximating ``exp(-j w delay)`` on ``0 <= w <= 2 pi passband`` in the least-squares sense.

    Uniform weight over the passband, nothing asked of the band above it (the
    fractional-delay form of a least-squares interpolation low-pass).
    """
    w = np.linspace(0.0, 2.0 * np.pi * passband, grid)
    basis = np.exp(-1j * np.outer(w, positions))
    target = np.exp(-1j * w * delay)
    a = np.vstack([basis.real, basis.imag])
    b = np.concatenate([target.real, target.imag])
    return np.linalg.lstsq(a, b, rcond=None)[0]


def _bank(taps: np.ndarray, delays: np.ndarray, positions: np.ndarray) -> PhaseBank:
    taps = np.ascontiguousarray(taps, dtype=np.float64)
    return PhaseBank(taps, delays, int(positions[0]), float(np.abs(taps).sum(axis=1).max()))


def bs1770_oversampling(sample_rate: int | None) -> int:
    """Oversampling factor of the BS.1770 meter: 4 from 44.1 kHz, 8 from 22.05 kHz, else 16.

    ``None`` (rate unknown) is taken as 44.1 kHz or more.
    """
    if sample_rate is None or sample_rate >= 44100:
        return 4
    return 8 if sample_rate >= 22050 else 16


@functools.cache
def bs1770_bank(factor: int = 4) -> PhaseBank:
    """The BS.1770 Annex 2 interpolator at ``factor``x: 12 taps per phase, least squares over 0-20 kHz at 48 kHz."""
    positions = _tap_positions(BS1770_TAPS_PER_PHASE)
    delays = np.arange(1, factor) / factor
    taps = np.stack([_least_squares_fractional_delay(d, positions, BS1770_PASSBAND) for d in delays])
    return _bank(taps, delays, positions)


@functools.cache
def reconstruction_bank() -> PhaseBank:
    """16x Kaiser-windowed sinc (24 taps per phase, beta 5), each phase normalised to unit DC gain."""
    positions = _tap_positions(RECONSTRUCTION_TAPS_PER_PHASE)
    delays = np.arange(1, RECONSTRUCTION_OVERSAMPLING) / RECONSTRUCTION_OVERSAMPLING
    t = positions[None, :] - delays[:, None]
    half = RECONSTRUCTION_TAPS_PER_PHASE / 2.0
    window = np.i0(RECONSTRUCTION_KAISER_BETA * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, None)))
    taps = np.sinc(t) * window
    return _bank(taps / taps.sum(axis=1, keepdims=True), delays, positions)


@functools.cache
def _quarter_bank() -> PhaseBank:
    """The reconstruction's phases at 1/4, 1/2 and 3/4 of a sample."""
    full = reconstruction_bank()
    rows = [int(np.argmin(np.abs(full.delays - d))) for d in (0.25, 0.5, 0.75)]
    return _bank(full.taps[rows], full.delays[rows], _tap_positions(RECONSTRUCTION_TAPS_PER_PHASE))


_RUN = 256
"""Most consecutive intervals `_interval_peaks_kernel` filters side by side (one run)."""
_SHORT_RUN = 8  # shorter runs: one tap sum per interval


@numba.njit(cache=True, nogil=True)
def _run_starts(index, longest):  # pragma: no cover - compiled
    """Where runs of consecutive samples in the sorted ``index`` start, each at most ``longest``
    long: positions into ``index``, then ``len(index)``."""
    starts = np.empty(index.shape[0] + 1, np.int64)
    count = 0
    length = 0
    for i in range(index.shape[0]):
        if i == 0 or index[i] != index[i - 1] + 1 or length == longest:
            starts[count] = i
            count += 1
            length = 0
        length += 1
    starts[count] = index.shape[0]
    return starts[:count + 1]


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def _interval_peaks_kernel(first_run, stop_run, xp, pad, index, starts, taps, first,
                           out):  # pragma: no cover - compiled
    """out[i] = max(out[i], max over channels c and phases p of |sum_k taps[p, k] xp[c, n + pad + first + k]|,
    |xp[c, n + pad]|) for n = index[i].

    The intervals go in runs of consecutive samples (``starts``, from `_run_starts`); this
    does runs ``first_run`` to ``stop_run - 1`` (`mixdown.dsp.tasks.run_tasks`). A run of
    `_SHORT_RUN` or more is filtered as a short FIR per phase: tap by tap, each tap's
    product is accumulated for all the run's intervals at once (SIMD along the samples,
    float64); a shorter run takes one tap sum per interval. Both add the products in tap
    order with the same multiply-adds, so a value does not depend on how the intervals
    are grouped (bit for bit)."""
    phases, width = taps.shape
    acc = np.empty(_RUN)
    window = np.empty(_RUN + width - 1)  # the run's input under the taps, in float64
    for r in range(first_run, stop_run):
        lo = starts[r]
        count = starts[r + 1] - lo
        base = index[lo] + pad
        peak = out[lo:lo + count]
        for c in range(xp.shape[0]):
            row = xp[c]
            for m in range(count):
                peak[m] = max(peak[m], abs(np.float64(row[base + m])))
            for p in range(phases):
                if count < _SHORT_RUN:  # one tap sum per interval
                    for m in range(count):
                        total = 0.0
                        for k in range(width):
                            total += taps[p, k] * row[base + m + first + k]
                        peak[m] = max(peak[m], abs(total))
                    continue
                if p == 0:
                    for m in range(count + width - 1):
                        window[m] = row[base + first + m]
                acc[:count] = 0.0
                for k in range(width):
                    tap = taps[p, k]
                    for m in range(count):
                        acc[m] += tap * window[k + m]
                for m in range(count):
                    peak[m] = max(peak[m], abs(acc[m]))


def _exact_peaks(xp: np.ndarray, pad: int, index: np.ndarray, banks: tuple[PhaseBank, ...],
                 initial: np.ndarray) -> np.ndarray:
    """Interval peaks at the sorted ``index`` of the zero-padded ``xp`` (sample ``n`` at ``xp[:, n + pad]``)."""
    values = np.array(initial, dtype=np.float64)
    starts = _run_starts(index, _RUN)
    for bank in banks:
        run_tasks(_interval_peaks_kernel, len(starts) - 1, xp, pad, index, starts, bank.taps, bank.first, values)
    return values


@numba.njit(cache=True, nogil=True)
def _near_magnitude_kernel(x, block, magnitude, near):  # pragma: no cover - compiled
    """magnitude[n] = max over channels of |x[c, n]|; near[n] = the largest magnitude of the
    ``block``-sample block holding ``n`` and of its two neighbours."""
    samples = x.shape[1]
    blocks = -(-samples // block)
    peak = np.zeros(blocks + 2)
    for b in range(blocks):
        top = 0.0
        for n in range(b * block, min(samples, (b + 1) * block)):
            value = 0.0
            for c in range(x.shape[0]):
                value = max(value, abs(np.float64(x[c, n])))
            magnitude[n] = value
            top = max(top, value)
        peak[b + 1] = top
    for b in range(blocks):
        bound = max(peak[b], peak[b + 1], peak[b + 2])
        for n in range(b * block, min(samples, (b + 1) * block)):
            near[n] = bound


def _near_magnitude(x: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """``(|x| over channels, an upper bound of its maximum over n - reach .. n + reach)``, each ``(samples,)``.

    The bound is the maximum over the ``reach``-sample (or longer) block holding ``n`` and
    its two neighbours: a little looser than a running maximum, and much cheaper.
    """
    magnitude, near = np.empty(x.shape[-1]), np.empty(x.shape[-1])
    _near_magnitude_kernel(x, 1 << max(0, reach - 1).bit_length(), magnitude, near)  # blocks: a power of two >= reach
    return magnitude, near


@numba.njit(cache=True, nogil=True)
def _suspects_kernel(index, coarse, magnitude, peaks, threshold, out):  # pragma: no cover - compiled
    """`_suspects` into ``out``; returns how many."""
    last = peaks.shape[0] - 1
    count = 0
    for i in range(index.shape[0]):
        n = index[i]
        after, before = min(n + 1, last), max(n - 1, 0)
        nearby = max(max(coarse[i], magnitude[after]), max(peaks[before], peaks[after]))
        if QUARTER_TO_CONTINUOUS * nearby > threshold:
            out[count] = n
            count += 1
    return count


def _suspects(index: np.ndarray, coarse: np.ndarray, magnitude: np.ndarray, peaks: np.ndarray,
              threshold: float) -> np.ndarray:
    """The candidates ``index`` whose 16x reconstruction may exceed ``threshold``: where
    `QUARTER_TO_CONTINUOUS` times the largest of the interval's quarter-sample points
    (``coarse``), its end sample and its neighbours' points (``peaks``; outside the
    candidates these are bounds, never lower than the exact values) exceeds it."""
    out = np.empty_like(index)
    return out[:_suspects_kernel(index, coarse, magnitude, peaks, threshold, out)]


def interval_peaks(x: np.ndarray, banks: tuple[PhaseBank, ...], skip_below: float = 0.0) -> np.ndarray:
    """Largest interpolated ``|value|`` between each sample and the next, over channels and banks.

    The signal is taken as zero outside ``x`` (so a signal that starts or stops abruptly
    rings, as it would through a DAC).

    Args:
        x: ``(channels, samples)``.
        banks: the interpolators; the result is the largest of their values.
        skip_below: where every bank's ``l1`` times the largest nearby ``|x|`` is at most
            this, that upper bound is returned instead of the exact value (exact for any
            caller that only asks whether a value exceeds ``skip_below``).

    Returns:
        ``(samples,)`` float64.
    """
    x = _as_signal(x)
    reach = max(bank.reach for bank in banks)
    magnitude, near = _near_magnitude(x, reach)
    peaks = max(bank.l1 for bank in banks) * near
    index = np.flatnonzero(peaks > skip_below)
    if len(index):
        xp = np.pad(x, ((0, 0), (reach, reach)))
        peaks[index] = _exact_peaks(xp, reach, index, banks, magnitude[index])
    return peaks


def ceiling_peaks(x: np.ndarray, threshold: float, sample_rate: int | None = None,
                  where: np.ndarray | None = None) -> np.ndarray:
    """Interval peaks by the BS.1770 meter and the 16x reconstruction, exact where they exceed ``threshold``.

    Computed in tiers, each only where the previous one cannot rule an excess out:

    1. the bound ``l1 * max |x|`` nearby (no filtering);
    2. the BS.1770 meter and the reconstruction at quarter-sample points;
    3. the full 16x reconstruction, where the quarter-sample peak of the interval or
       its neighbours times `QUARTER_TO_CONTINUOUS` exceeds ``threshold``.

    Args:
        x: ``(channels, samples)``.
        threshold: linear.
        sample_rate: in Hz, for the meter's oversampling (``None``: 4x).
        where: optional ``(samples,)`` bool: only these samples are examined; the others
            read 0 (for callers that know they are under ``threshold``).

    Returns:
        ``(samples,)`` float64: the exact peak where it exceeds ``threshold``, a value at
        most ``threshold`` elsewhere.
    """
    x = _as_signal(x)
    reconstruction = reconstruction_bank()
    coarse = (bs1770_bank(bs1770_oversampling(sample_rate)), _quarter_bank())
    reach = reconstruction.reach
    magnitude, near = _near_magnitude(x, reach)
    peaks = max(bank.l1 for bank in (*coarse, reconstruction)) * near
    candidate = peaks > threshold
    if where is not None:
        candidate &= where
        peaks[~where] = 0.0
    index = np.flatnonzero(candidate)
    if not len(index):
        return peaks
    xp = np.pad(x, ((0, 0), (reach, reach)))
    coarse_peaks = _exact_peaks(xp, reach, index, coarse, magnitude[index])
    peaks[index] = coarse_peaks
    suspect = _suspects(index, coarse_peaks, magnitude, peaks, threshold)
    if len(suspect):
        peaks[suspect] = _exact_peaks(xp, reach, suspect, (reconstruction,), peaks[suspect])
    return peaks


def _as_signal(x: np.ndarray) -> np.ndarray:
    """``x`` as a float32 or float64 array (the kernel accumulates in float64 either way)."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected x of shape (channels, samples), got {x.shape}")
    return x


def _chunked_peak(x: np.ndarray, banks: tuple[PhaseBank, ...]) -> float:
    """Largest interpolated ``|value|`` of ``x (channels, samples)``, block by block."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected x of shape (channels, samples), got {x.shape}")
    samples = x.shape[-1]
    if samples == 0 or x.shape[0] == 0:
        return 0.0
    margin = max(bank.reach for bank in banks) + 1
    sample_peak = float(np.abs(x).max())  # a lower bound: intervals that cannot exceed it are skipped
    peak = sample_peak
    for start in range(0, samples, CHUNK):
        stop = min(start + CHUNK, samples)
        lo, hi = max(0, start - margin), min(samples, stop + margin)
        peaks = interval_peaks(x[:, lo:hi], banks, skip_below=sample_peak)[start - lo:stop - lo]
        peak = max(peak, float(peaks.max()))
    return peak


def true_peak(x: np.ndarray, sample_rate: int | None = None) -> float:
    """Linear true peak of ``x (channels, samples)`` by the BS.1770 meter (0 for empty input).

    Args:
        x: ``(channels, samples)``.
        sample_rate: in Hz; picks the oversampling (`bs1770_oversampling`). ``None``: 4x.
    """
    return _chunked_peak(x, (bs1770_bank(bs1770_oversampling(sample_rate)),))


def true_peak_dbtp(x: np.ndarray, sample_rate: int | None = None) -> float:
    """True peak of ``x (channels, samples)`` in dBTP by the BS.1770 meter (``-inf`` for silence)."""
    peak = true_peak(x, sample_rate)
    return 20.0 * np.log10(peak) if peak > 0 else -np.inf


def reconstruction_peak(x: np.ndarray) -> float:
    """Linear peak of the 16x band-limited reconstruction of ``x (channels, samples)``."""
    return _chunked_peak(x, (reconstruction_bank(),))
