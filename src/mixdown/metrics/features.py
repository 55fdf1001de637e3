"""Mix features: spectral shape, dynamics, stereo width and panning of a stereo mix.

In the spirit of the audio production style features of De Man, Leonard, King & Reiss
(2014, "An analysis and evaluation of audio features for multitrack music mixtures",
ISMIR) and Steinmetz & Reiss's style metrics: a few numbers an engineer reads, compared
between an estimated and a reference mix with `feature_differences`.

Analysis: Hann-windowed frames of `N_FFT` samples, hop `HOP` (50 % overlap), frames
entirely inside the signal (a tail shorter than one hop is left out). Spectral shape
is measured on the mid signal ``M = (L + R) / 2``: frame power spectra are averaged
over blocks of about `BLOCK_S` seconds (a Welch estimate, so that noise reads as
flat), a feature is computed per block and averaged over the *active* blocks (total
power within `ACTIVITY_GATE_DB` of the loudest block). With ``P_k`` a block's power
and ``A_k = sqrt(P_k)`` its magnitude at bin frequency ``f_k``:

* ``spectral_centroid_hz = sum f_k A_k / sum A_k`` (magnitude-weighted, as librosa);
* ``spectral_bandwidth_hz = sqrt(sum A_k (f_k - centroid)^2 / sum A_k)``;
* ``spectral_flatness = exp(mean ln P_k) / mean P_k`` (Wiener entropy, Dubnov 2004;
  ``P_k`` floored 100 dB under its mean): ~1 for white noise, ~0 for a sine;
* ``spectral_rolloff_hz``: the lowest ``f_k`` under which `ROLLOFF_FRACTION` of the
  power lies.

Dynamics over the whole signal, both channels pooled: ``rms_db = 10 log10 mean x^2``
(dBFS, a full-scale sine is -3.01 dB) and ``crest_factor_db = 20 log10 max|x| - rms_db``
(a sine: 3.01 dB).

Stereo, per band of `BANDS_HZ` and over all bins (``_all``), with ``S = (L - R) / 2``:

* ``stereo_width = sum |S|^2 / (sum |M|^2 + sum |S|^2)``, the side/mid energy ratio
  ``r`` mapped to [0, 1] as ``r / (1 + r)`` so it stays finite: 0 for a mono mix, 0.5
  for a hard-panned source or uncorrelated channels, 1 for channels in anti-phase;
* the stereo panning spectrum (Avendano 2003, "Frequency-domain source identification
  and manipulation in stereo mixes"; as features: Tzanetakis, Jones & McNally 2007,
  whose bands `BANDS_HZ` are): per time-frequency bin the similarity
  ``psi = 2 |X_L X_R*| / (|X_L|^2 + |X_R|^2)`` and the panning index
  ``Psi = (1 - psi) * sign(|X_R|^2 - |X_L|^2)`` (the sign of Avendano's
  ``psi_L - psi_R``), in [-1, 1]: -1 hard left, 0 centre, +1 hard right, as
  mixdown's pan. A constant-power pan ``p`` gives ``sign(p) (1 - cos(p pi / 2))``.
  Summarised with energy weights ``w = |X_L|^2 + |X_R|^2``: ``pan_mean`` (weighted
  mean: the balance) and ``pan_rms`` (weighted RMS: how far from centre the energy
  sits).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
import scipy.signal

from mixdown.errors import AudioError

N_FFT = 2048
HOP = 1024
BLOCK_S = 0.5
"""Frame power spectra are averaged over blocks of about this length (seconds)."""
ACTIVITY_GATE_DB = -60.0
"""Blocks this far under the loudest block are left out of the spectral means."""
ROLLOFF_FRACTION = 0.85
FLATNESS_FLOOR_DB = -100.0
BANDS_HZ = {"all": (0.0, math.inf), "low": (0.0, 250.0), "mid": (250.0, 2800.0), "high": (2800.0, math.inf)}
"""Stereo feature bands, lower edge inclusive (Tzanetakis, Jones & McNally 2007)."""

FEATURE_NAMES = (
    "spectral_centroid_hz", "spectral_bandwidth_hz", "spectral_flatness", "spectral_rolloff_hz",
    "rms_db", "crest_factor_db",
    *(f"{kind}_{band}" for kind in ("stereo_width", "pan_mean", "pan_rms") for band in BANDS_HZ),
)
"""Keys of `mix_features`, in order."""


def _stft(audio: np.ndarray) -> np.ndarray:
    """Complex64 spectra ``(channels, frames, N_FFT // 2 + 1)`` of ``(channels, samples)``."""
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float32), N_FFT, axis=-1)[:, ::HOP]
    window = scipy.signal.get_window("hann", N_FFT).astype(np.float32)
    return scipy.fft.rfft(frames * window, axis=-1)


def _block_means(power: np.ndarray, sample_rate: int) -> np.ndarray:
    """Average frame powers ``(frames, bins)`` over consecutive blocks -> ``(blocks, bins)``."""
    frames = power.shape[0]
    blocks = max(1, frames // max(1, round(BLOCK_S * sample_rate / HOP)))
    starts = np.linspace(0, frames, blocks + 1).astype(int)
    return np.add.reduceat(power, starts[:-1], axis=0, dtype=np.float64) / np.diff(starts)[:, None]


def _spectral_shape(mid_power: np.ndarray, freqs_hz: np.ndarray) -> dict[str, float]:
    """Centroid, bandwidth, flatness and rolloff of block spectra ``(blocks, bins)``, averaged."""
    mag = np.sqrt(mid_power)
    weight = np.maximum(mag.sum(axis=1), np.finfo(float).tiny)
    centroid = (mag @ freqs_hz) / weight
    bandwidth = np.sqrt((mag * (freqs_hz - centroid[:, None]) ** 2).sum(axis=1) / weight)
    floor = 10.0 ** (FLATNESS_FLOOR_DB / 10.0) * mid_power.mean(axis=1, keepdims=True)
    floored = np.maximum(mid_power, np.maximum(floor, np.finfo(float).tiny))
    flatness = np.exp(np.log(floored).mean(axis=1)) / floored.mean(axis=1)
    cumulative = np.cumsum(mid_power, axis=1)
    rolloff_bin = (cumulative < ROLLOFF_FRACTION * cumulative[:, -1:]).sum(axis=1)
    return {
        "spectral_centroid_hz": float(centroid.mean()),
        "spectral_bandwidth_hz": float(bandwidth.mean()),
        "spectral_flatness": float(flatness.mean()),
        "spectral_rolloff_hz": float(freqs_hz[np.minimum(rolloff_bin, freqs_hz.size - 1)].mean()),
    }


def panning_index(mag_left: np.ndarray, mag_right: np.ndarray) -> np.ndarray:
    """Avendano's panning index of each time-frequency bin, from the STFT magnitudes.

    Per bin ``|X_L X_R*| = a_L a_R`` (``a = |X|``), so the index
    ``(1 - 2 a_L a_R / (a_L^2 + a_R^2)) sign(a_R - a_L)`` depends on magnitudes only
    and equals ``(a_R - a_L) |a_R - a_L| / (a_L^2 + a_R^2)``.

    Args:
        mag_left: magnitudes of the left channel's STFT, any shape.
        mag_right: the right channel's, same shape.

    Returns:
        Array of that shape in [-1, 1] (-1 hard left, +1 hard right); 0 where both
        channels are silent.
    """
    spread = mag_right - mag_left
    total = np.square(mag_left) + np.square(mag_right)
    return np.divide(spread * np.abs(spread), total, out=np.zeros_like(total), where=total > 0)


def mix_features(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """The style features of one stereo mix (definitions in the module docstring).

    Args:
        audio: ``(2, samples)``, at least `N_FFT` samples.
        sample_rate: in Hz.

    Returns:
        ``{name: value}`` with the keys of `FEATURE_NAMES`; for a silent mix
        ``rms_db`` is ``-inf`` and the others nan (undefined).

    Raises:
        AudioError: not ``(2, samples)``, too short or non-finite.
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != 2:
        raise AudioError(f"expected a stereo mix of shape (2, samples), got shape {x.shape}")
    if x.shape[1] < N_FFT:
        raise AudioError(f"a mix of {x.shape[1]} samples is too short for features; need at least {N_FFT}")
    if not np.isfinite(x).all():
        raise AudioError("the mix contains NaN or infinite samples")
    mean_square = float(np.mean(x**2))
    if mean_square == 0.0:  # nothing to measure: every feature but the level is undefined
        return {name: -math.inf if name == "rms_db" else math.nan for name in FEATURE_NAMES}

    spec_l, spec_r = _stft(x)
    mag_l, mag_r = np.abs(spec_l), np.abs(spec_r)
    power_m, power_s = np.square(np.abs(spec_l + spec_r) / 2), np.square(np.abs(spec_l - spec_r) / 2)
    freqs_hz = np.fft.rfftfreq(N_FFT, 1.0 / sample_rate)

    block_m = _block_means(power_m, sample_rate)
    block_total = (block_m + _block_means(power_s, sample_rate)).sum(axis=1)
    active = block_total >= block_total.max() * 10.0 ** (ACTIVITY_GATE_DB / 10.0)
    features = _spectral_shape(block_m[active], freqs_hz)

    features["rms_db"] = 10.0 * math.log10(mean_square)
    features["crest_factor_db"] = 20.0 * math.log10(float(np.abs(x).max())) - features["rms_db"]

    index = panning_index(mag_l, mag_r)
    weight = np.square(mag_l) + np.square(mag_r)  # each bin's energy weights its index
    weighted_index = weight * index
    weighted_index_sq = weighted_index * index
    per_bin = {  # sums over frames, (bins,)
        name: value.sum(axis=0, dtype=np.float64)
        for name, value in (("mid", power_m), ("side", power_s), ("weight", weight),
                            ("pan", weighted_index), ("pan_sq", weighted_index_sq))
    }
    tiny = np.finfo(float).tiny
    for band, (lo_hz, hi_hz) in BANDS_HZ.items():
        in_band = (freqs_hz >= lo_hz) & (freqs_hz < hi_hz)
        sums = {key: float(value[in_band].sum()) for key, value in per_bin.items()}
        features[f"stereo_width_{band}"] = sums["side"] / max(sums["mid"] + sums["side"], tiny)
        features[f"pan_mean_{band}"] = sums["pan"] / max(sums["weight"], tiny)
        features[f"pan_rms_{band}"] = math.sqrt(sums["pan_sq"] / max(sums["weight"], tiny))
    return {name: features[name] for name in FEATURE_NAMES}


def feature_differences(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Signed feature differences, estimate minus reference.

    Args:
        estimate: ``(2, samples)``.
        reference: ``(2, samples)``.
        sample_rate: in Hz.

    Returns:
        ``{"diff_" + name: estimate_value - reference_value}`` for every name in
        `FEATURE_NAMES` (units those of the feature). Aggregate their absolute values
        across songs.
    """
    est, ref = mix_features(estimate, sample_rate), mix_features(reference, sample_rate)
    return {f"diff_{name}": est[name] - ref[name] for name in FEATURE_NAMES}
