"""Per-stem audio features for learned mixers, measured in one streaming pass.

Moffat & Sandler (2019) predict each track's mix gain from a vector of audio features
of that track with a random forest. This module computes such a vector for every stem
of a multitrack: level and dynamics, long-term spectral shape, rhythm, stereo image,
the instrument class, and the stem's relation to the other stems (its share of the
song's loudness and spectrum), since a track's gain depends on what it is mixed with.

Each signal is analysed as the console receives it (`Multitrack.iter_chunks`: mono
stems duplicated to both channels). Spectral features use the mid channel
``(left + right) / 2`` framed with a ``FRAME`` -point Hann window every ``HOP``
samples; the "mix" is the unity-gain sum of all stems. Everything is accumulated chunk
by chunk, so memory stays bounded for long sessions and all stems are analysed at once.

The features, in column order (`FEATURE_NAMES`):

Level and dynamics
    ``loudness_lufs``: ITU-R BS.1770-4 integrated loudness (gated), floored at
    ``SILENCE_LUFS``. ``rms_dbfs``: RMS level over both channels. ``peak_dbfs``: sample
    peak. ``crest_db``: peak minus RMS (transient vs sustained material).
    ``active_fraction``: fraction of frames within 30 dB of the stem's loudest frame
    (sparse parts such as toms score low).
Spectral shape (of the long-term average power spectrum ``P(f)``)
    ``centroid_hz``: ``sum f P / sum P``. ``spread_hz``: ``sqrt(sum (f - centroid)^2 P / sum P)``.
    ``flatness``: geometric over arithmetic mean of ``P`` (1 for white noise, ~0 for
    a tone). ``rolloff_hz``: frequency below which ``ROLLOFF`` of the power lies.
    ``low_ratio``, ``mid_ratio``, ``high_ratio``: fractions of the power below
    ``BANDS_HZ[0]``, between the two, and above ``BANDS_HZ[1]``.
Rhythm and texture
    ``flux``: positive spectral flux ``sum_t sum_f max(0, |X_t| - |X_t-1|)`` over
    ``sum_t sum_f |X_t|``; level-independent, 0 for a steady tone.
    ``onset_rate_hz``: onsets per second, the peaks of the positive flux curve that
    reach ``ONSET_LEVEL`` of its maximum, at least ``MIN_ONSET_GAP_S`` apart.
    ``zcr_hz``: zero crossings per second of the mid channel (``2 f`` for a sine).
Stereo
    ``stereo``: 1 for a two-channel stem. ``side_ratio``: side energy over mid plus
    side energy, ``(L - R)/2`` vs ``(L + R)/2`` (0 for mono, 0.5 for independent channels).
Context (relative to the other stems)
    ``loudness_rel_mix_lu``: loudness minus the loudness of the mix.
    ``loudness_rel_mean_lu``: loudness minus the mean loudness of the song's stems.
    ``low_share``, ``mid_share``, ``high_share``: the stem's power in each band over the
    summed power of all stems in that band.
    ``centroid_rel_mix_oct``: ``log2`` of the stem's centroid over the mix's.
    ``num_stems``: stems in the song. ``same_class_count``: stems of this stem's class.
Instrument class
    ``class_<name>``: one-hot over `mixdown.multitrack.INSTRUMENT_CLASSES`.

References:
    D. Moffat and M. Sandler, "Machine Learning Multitrack Gain Mixing of Drums",
    AES 147th Convention, Engineering Brief 527, 2019.
    ITU-R BS.1770-4, "Algorithms to measure audio programme loudness and true-peak audio level".
    G. Peeters, "A large set of audio features for sound description", IRCAM, 2004
    (centroid, spread, flatness, rolloff, flux definitions).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import find_peaks

from mixdown.dsp.loudness import LoudnessMeter
from mixdown.multitrack import INSTRUMENT_CLASSES, Multitrack

FRAME = 2048
HOP = 1024
CHUNK_FRAMES = 1 << 17
SILENCE_LUFS = -70.0  # BS.1770 absolute gate: nothing quieter counts as sound
FLOOR_DB = -120.0
BANDS_HZ = (250.0, 4000.0)
ROLLOFF = 0.85
ACTIVE_RANGE_DB = 30.0
ONSET_LEVEL = 0.1
MIN_ONSET_GAP_S = 0.05
_EPS = 1e-12

SIGNAL_FEATURES = (
    "loudness_lufs", "rms_dbfs", "peak_dbfs", "crest_db", "active_fraction",
    "centroid_hz", "spread_hz", "flatness", "rolloff_hz", "low_ratio", "mid_ratio", "high_ratio",
    "flux", "onset_rate_hz", "zcr_hz", "stereo", "side_ratio",
)
"""Features of a stem on its own."""

CONTEXT_FEATURES = (
    "loudness_rel_mix_lu", "loudness_rel_mean_lu", "low_share", "mid_share", "high_share",
    "centroid_rel_mix_oct", "num_stems", "same_class_count",
)
"""Features of a stem relative to the song's other stems."""

FEATURE_NAMES = SIGNAL_FEATURES + CONTEXT_FEATURES + tuple(f"class_{c}" for c in INSTRUMENT_CLASSES)
"""Column names of `multitrack_features`, in order (see the module docstring)."""


class _Accumulator:
    """Running sums over the chunks of ``signals`` stereo signals."""

    def __init__(self, signals: int, sample_rate: int):
        self.signals = signals
        self.sample_rate = sample_rate
        n = signals
        self.meter = LoudnessMeter(self.sample_rate, batch=n)
        self.samples = 0
        self.peak = np.zeros(n)
        self.energy = np.zeros(n)  # sum of squares over both channels
        self.mid_energy = np.zeros(n)
        self.side_energy = np.zeros(n)
        self.crossings = np.zeros(n)
        self.last_sign: np.ndarray | None = None
        self.tail = np.zeros((n, 0), dtype=np.float32)  # samples not yet in a whole frame
        self.window = np.hanning(FRAME + 1)[:FRAME].astype(np.float32)  # periodic Hann
        self.power = np.zeros((n, FRAME // 2 + 1))  # summed frame power spectra
        self.magnitude_sum = np.zeros(n)
        self.flux_sum = np.zeros(n)
        self.previous: np.ndarray | None = None  # last frame's magnitudes, for the flux
        self.frame_energy: list[np.ndarray] = []
        self.novelty: list[np.ndarray] = []

    def update(self, block: np.ndarray) -> None:
        """Add the next ``(signals, 2, frames)`` block."""
        self.meter.update(torch.from_numpy(block))
        wide = block.astype(np.float64)
        self.samples += block.shape[-1]
        self.peak = np.maximum(self.peak, np.abs(wide).max(axis=(1, 2)))
        self.energy += (wide**2).sum(axis=(1, 2))
        mid = 0.5 * (wide[:, 0] + wide[:, 1])
        self.mid_energy += (mid**2).sum(-1)
        self.side_energy += ((0.5 * (wide[:, 0] - wide[:, 1])) ** 2).sum(-1)
        sign = np.signbit(mid)
        if self.last_sign is not None:
            sign = np.concatenate([self.last_sign[:, None], sign], axis=1)
        self.crossings += (sign[:, 1:] != sign[:, :-1]).sum(-1)
        self.last_sign = sign[:, -1]
        self._frames(np.concatenate([self.tail, mid.astype(np.float32)], axis=1))

    def _frames(self, buffer: np.ndarray) -> None:
        count = (buffer.shape[-1] - FRAME) // HOP + 1 if buffer.shape[-1] >= FRAME else 0
        self.tail = buffer[:, count * HOP:]
        if count == 0:
            return
        frames = sliding_window_view(buffer, FRAME, axis=-1)[:, ::HOP][:, :count]
        magnitude = np.abs(np.fft.rfft(frames * self.window, axis=-1)).astype(np.float64)
        power = magnitude**2
        self.power += power.sum(axis=1)
        self.frame_energy.append(power.sum(-1))
        self.magnitude_sum += magnitude.sum(axis=(1, 2))
        previous = magnitude[:, :1] if self.previous is None else self.previous[:, None]
        rise = np.maximum(np.diff(np.concatenate([previous, magnitude], axis=1), axis=1), 0.0).sum(-1)
        self.flux_sum += rise.sum(-1)
        self.novelty.append(rise)
        self.previous = magnitude[:, -1]


def _db(power: np.ndarray) -> np.ndarray:
    return np.maximum(10.0 * np.log10(np.maximum(power, _EPS**2)), FLOOR_DB)


def _signal_features(acc: _Accumulator) -> dict[str, np.ndarray]:
    """Per-signal features (rows of ``acc``) by name, but ``stereo``; ``band_power`` is ``(signals, 3)``."""
    sr = acc.sample_rate
    loudness = acc.meter.integrated().numpy()
    loudness = np.where(np.isfinite(loudness), np.maximum(loudness, SILENCE_LUFS), SILENCE_LUFS)
    rms_db = _db(acc.energy / max(2 * acc.samples, 1))
    peak_db = _db(acc.peak**2)
    freqs = np.fft.rfftfreq(FRAME, 1.0 / sr)
    p = acc.power
    total = p.sum(-1)
    has_sound = total > _EPS
    safe_total = np.where(has_sound, total, 1.0)
    centroid = (p * freqs).sum(-1) / safe_total
    spread = np.sqrt(np.maximum((p * (freqs - centroid[:, None]) ** 2).sum(-1) / safe_total, 0.0))
    mean_power = np.maximum(p.mean(-1), _EPS)
    flatness = np.exp(np.log(np.maximum(p, _EPS)).mean(-1)) / mean_power
    cumulative = np.cumsum(p, axis=-1)
    rolloff = freqs[np.minimum((cumulative < ROLLOFF * cumulative[:, -1:]).sum(-1), len(freqs) - 1)]
    low = p[:, freqs < BANDS_HZ[0]].sum(-1)
    high = p[:, freqs >= BANDS_HZ[1]].sum(-1)
    mid = total - low - high
    if acc.frame_energy:
        energy = np.concatenate(acc.frame_energy, axis=1)
        loudest = energy.max(-1, keepdims=True)
        active = ((energy > loudest * 10.0 ** (-ACTIVE_RANGE_DB / 10.0)) & (loudest > _EPS)).mean(-1)
        novelty = np.concatenate(acc.novelty, axis=1)
    else:
        active = np.zeros(acc.signals)
        novelty = np.zeros((acc.signals, 0))
    gap = max(1, math.ceil(MIN_ONSET_GAP_S * sr / HOP))
    duration_s = max(acc.samples / sr, _EPS)
    onsets = np.array([len(find_peaks(row, height=ONSET_LEVEL * row.max(), distance=gap)[0]) if row.size and row.max() > 0
                       else 0 for row in novelty]) / duration_s
    mid_side = acc.mid_energy + acc.side_energy
    return {
        "loudness_lufs": loudness, "rms_dbfs": rms_db, "peak_dbfs": peak_db, "crest_db": peak_db - rms_db,
        "active_fraction": active,
        "centroid_hz": np.where(has_sound, centroid, 0.0), "spread_hz": np.where(has_sound, spread, 0.0),
        "flatness": np.where(has_sound, flatness, 0.0), "rolloff_hz": np.where(has_sound, rolloff, 0.0),
        "low_ratio": np.where(has_sound, low / safe_total, 0.0), "mid_ratio": np.where(has_sound, mid / safe_total, 0.0),
        "high_ratio": np.where(has_sound, high / safe_total, 0.0),
        "flux": acc.flux_sum / np.maximum(acc.magnitude_sum, _EPS), "onset_rate_hz": onsets,
        "zcr_hz": acc.crossings / duration_s,
        "side_ratio": np.where(mid_side > _EPS, acc.side_energy / np.maximum(mid_side, _EPS), 0.0),
        "band_power": np.stack([low, mid, high], axis=1),
    }


def multitrack_features(multitrack: Multitrack, chunk_frames: int = CHUNK_FRAMES) -> np.ndarray:
    """The feature vector of every stem (columns: `FEATURE_NAMES`).

    Args:
        multitrack: the stems (in memory or streamed from files).
        chunk_frames: frames analysed per block (bounds memory; the result does not
            depend on it beyond float rounding).

    Returns:
        float64 ``(tracks, len(FEATURE_NAMES))``, finite, in the multitrack's stem order.
    """
    tracks = multitrack.num_tracks
    acc = _Accumulator(tracks + 1, multitrack.sample_rate)
    for block in multitrack.iter_chunks(chunk_frames):
        acc.update(np.concatenate([block, block.sum(axis=0, keepdims=True)], axis=0))
    f = _signal_features(acc)
    f["stereo"] = np.concatenate([multitrack.stereo_mask(), [False]]).astype(np.float64)
    stems = slice(0, tracks)
    loudness = f["loudness_lufs"][stems]
    sounding = loudness > SILENCE_LUFS
    mean_loudness = loudness[sounding].mean() if sounding.any() else SILENCE_LUFS
    band_power = f["band_power"][stems]
    share = band_power / np.maximum(band_power.sum(axis=0), _EPS)
    centroid, mix_centroid = f["centroid_hz"][stems], f["centroid_hz"][tracks]
    relative_centroid = np.where((centroid > 0) & (mix_centroid > 0),
                                 np.log2(np.maximum(centroid, _EPS) / max(mix_centroid, _EPS)), 0.0)
    instruments = multitrack.instruments
    context = {
        "loudness_rel_mix_lu": loudness - f["loudness_lufs"][tracks],
        "loudness_rel_mean_lu": loudness - mean_loudness,
        "low_share": share[:, 0], "mid_share": share[:, 1], "high_share": share[:, 2],
        "centroid_rel_mix_oct": relative_centroid,
        "num_stems": np.full(tracks, float(tracks)),
        "same_class_count": np.array([float(instruments.count(c)) for c in instruments]),
    }
    one_hot = np.array([[float(c == cls) for cls in INSTRUMENT_CLASSES] for c in instruments]).reshape(tracks, -1)
    columns = [f[name][stems] for name in SIGNAL_FEATURES] + [context[name] for name in CONTEXT_FEATURES]
    return np.concatenate([np.stack(columns, axis=1), one_hot], axis=1)
