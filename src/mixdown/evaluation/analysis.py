"""Spectrum and panning of one mix by frequency band, for the comparison figures.

* **Long-term average spectrum** (LTAS): the power spectral density of the mid signal
  ``M = (L + R) / 2`` by Welch's method (Hann windows of `N_FFT` samples, 50 % overlap,
  ``scipy.signal.welch``, one-sided density), integrated over fractional-octave bands:
  ``P_b = sum_{f_k in b} S(f_k) df``, in dB (``10 log10 P_b``; a full-scale sine in its
  band reads -3.01 dB).
* **Panning by band**: Avendano's panning index ``Psi`` of every STFT bin
  (`mixdown.metrics.panning_index`; -1 hard left, +1 hard right), averaged over the bins
  of each band with energy weights ``w = |X_L|^2 + |X_R|^2``: the weighted mean (where
  the band's energy sits, left or right) and the weighted RMS (how far from the centre).

Bands are fractional octaves around 1 kHz (centres ``1000 * 2^(k / n)`` Hz, edges a half
band either side, ANSI S1.11 base-2 style), from `LOW_HZ` up to the Nyquist frequency.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from mixdown.errors import AudioError
from mixdown.metrics import panning_index

N_FFT = 4096
LOW_HZ = 20.0


def octave_bands(sample_rate: int, bands_per_octave: int) -> tuple[np.ndarray, np.ndarray]:
    """Fractional-octave bands from `LOW_HZ` to the Nyquist frequency.

    Args:
        sample_rate: In Hz.
        bands_per_octave: 1 for octaves, 3 for third octaves, ...

    Returns:
        ``(centres_hz (B,), edges_hz (B + 1,))``: every band whose upper edge lies below
        ``sample_rate / 2`` and whose lower edge lies above `LOW_HZ`.
    """
    n = bands_per_octave
    nyquist = sample_rate / 2.0
    k = np.arange(np.ceil(n * np.log2(LOW_HZ / 1000.0) + 0.5), np.floor(n * np.log2(nyquist / 1000.0) - 0.5) + 1)
    centres = 1000.0 * 2.0 ** (k / n)
    edges = 1000.0 * 2.0 ** ((np.append(k, k[-1] + 1) - 0.5) / n)
    return centres, edges


def _check(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != 2:
        raise AudioError(f"expected a stereo mix of shape (2, samples), got shape {x.shape}")
    if x.shape[1] < N_FFT:
        raise AudioError(f"a mix of {x.shape[1]} samples is too short; need at least {N_FFT}")
    return x


def band_spectrum_db(audio: np.ndarray, sample_rate: int, bands_per_octave: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Long-term average spectrum of a mix's mid signal by band (see the module docstring).

    Args:
        audio: ``(2, samples)``, at least `N_FFT` samples.
        sample_rate: In Hz.
        bands_per_octave: Band resolution.

    Returns:
        ``(centres_hz (B,), level_db (B,))``; ``-inf`` for a silent band.
    """
    x = _check(audio)
    freqs_hz, density = scipy.signal.welch(x.mean(axis=0), fs=sample_rate, window="hann", nperseg=N_FFT,
                                           noverlap=N_FFT // 2, detrend=False)
    centres, edges = octave_bands(sample_rate, bands_per_octave)
    band = np.digitize(freqs_hz, edges) - 1  # bin k lies in band b when edges[b] <= f_k < edges[b + 1]
    inside = (band >= 0) & (band < centres.size)
    power = np.bincount(band[inside], weights=density[inside], minlength=centres.size) * (freqs_hz[1] - freqs_hz[0])
    with np.errstate(divide="ignore"):
        return centres, 10.0 * np.log10(power)


def band_panning(audio: np.ndarray, sample_rate: int,
                 bands_per_octave: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy-weighted mean and RMS panning index of a mix by band (see the module docstring).

    Args:
        audio: ``(2, samples)``, at least `N_FFT` samples.
        sample_rate: In Hz.
        bands_per_octave: Band resolution.

    Returns:
        ``(centres_hz (B,), mean (B,), rms (B,))``, in [-1, 1] and [0, 1]; nan for a
        silent band.
    """
    x = _check(audio)
    _, _, spectra = scipy.signal.stft(x, fs=sample_rate, window="hann", nperseg=N_FFT, noverlap=N_FFT // 2,
                                      boundary=None, padded=False)
    magnitudes = np.abs(spectra)  # (2, bins, frames)
    index = panning_index(magnitudes[0], magnitudes[1])
    weight = np.square(magnitudes).sum(axis=0)
    freqs_hz = np.fft.rfftfreq(N_FFT, 1.0 / sample_rate)
    centres, edges = octave_bands(sample_rate, bands_per_octave)
    band = np.digitize(freqs_hz, edges) - 1
    inside = (band >= 0) & (band < centres.size)
    sums = [np.bincount(band[inside], weights=values.sum(axis=1)[inside], minlength=centres.size)
            for values in (weight, weight * index, weight * index * index)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return centres, sums[1] / sums[0], np.sqrt(sums[2] / sums[0])
