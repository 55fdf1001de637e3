"""Synthetic "engineers" whose decisions come from the audio, not from the rules' class table.

`mixdown.synth.targets` draws settings around `mixdown.class_rules.RULES`, the table the
`rules` mixer applies; a model trained on those targets can at best learn the rules, and
synthetic evaluation favours `rules` by construction. This generator never reads an
instrument class, a stem name or the rules: every setting is a function of what each stem
sounds like, of how the stems overlap, and of a per-song *style* (how one engineer tends to
mix), plus noise. It is the ``"audio-styles"`` choice of `SynthConfig.targets`.

Per stem, over its first `LOUDNESS_EXCERPT_S` seconds (mono sum, Welch spectrum), `describe`
measures: energy in `BAND_EDGES_HZ` bands, spectral centroid, the frequency under which 1 %
of the energy lies, crest factor (peak over RMS) and transientness (90th over 50th
percentile of the 10-ms frame level).

Per song, the style draws (`Style`): a spectral tilt of the balance (dB per octave of the
stem's centroid over 1 kHz: bass-heavy or bright engineers), the spread of per-stem
prominence, the stereo width, the reverb wetness, how hard it compresses, and how strongly
it carves EQ space between overlapping stems.

Decisions (each with its own noise):

* pan: stems with a centroid under `CENTRE_BELOW_HZ`, and stereo stems, near the centre;
  the others ranked by centroid, alternating sides in that order (neighbours in spectrum
  go to opposite sides, a masking-aware placement), wider for brighter stems, scaled by
  the style's width;
* EQ (the `STANDARD_EQ` layout, so networks keep one layout): high-pass under the stem's
  own lowest energy (its 1 % frequency times 0.4-0.9, at most 400 Hz); a bell cut at the band where the
  other stems mask it most while it still has energy, deeper with the style's carving; a
  low-shelf cut on stems whose low band the others dominate; a high shelf that follows the
  style's tilt;
* compressor: more likely the larger the crest factor and the harder the style; threshold
  between the stem's RMS and peak; slower attack on transient stems (to keep the attack);
* reverb send: the style's wetness, less (up to 10 dB) for transient stems, none (mostly) for stems
  whose energy is mostly under 120 Hz; the decay follows the wetness;
* faders: each stem's loudness after EQ and compressor set to a song reference plus the
  tilt term and a prominence drawn with the style's spread; broadband (flat-spectrum)
  stems sit a little lower.

All draws come from the caller's generator, so a song's settings are a function of its
seed and its audio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.signal

from mixdown.multitrack import Multitrack
from mixdown.params import (
    ChannelParams,
    CompressorParams,
    ConsoleParams,
    EQBand,
    MasterParams,
    ReverbParams,
    clamp_freq_hz,
)
from mixdown.synth.targets import clip_to_range, log_uniform, loudness_excerpt, stem_loudness

BAND_EDGES_HZ = (20.0, 120.0, 400.0, 1200.0, 3500.0, 8000.0)
"""Lower edges of the analysis bands; the last band runs to Nyquist."""

CENTRE_BELOW_HZ = 300.0
"""Stems whose spectral centroid is under this stay near the centre (low end in mono)."""

REFERENCE_LUFS = -24.0
"""Loudness the faders aim each stem at before the style's offsets; the master's
normalisation removes the common level, so only the differences matter."""

_FRAME_S = 0.01


@dataclass(frozen=True)
class StemDescription:
    """What `describe` measures of one stem.

    Attributes:
        band_energy: ``(len(BAND_EDGES_HZ),)`` energy per band (linear, summed PSD).
        centroid_hz: Spectral centroid.
        low_hz: Frequency under which 1 % of the energy lies.
        crest_db: Peak over RMS, in dB.
        transient_db: 90th over 50th percentile of the 10-ms frame RMS, in dB.
        rms_db: RMS level in dBFS (of the mono sum over the excerpt).
        peak_db: Peak level in dBFS.
    """

    band_energy: np.ndarray
    centroid_hz: float
    low_hz: float
    crest_db: float
    transient_db: float
    rms_db: float
    peak_db: float

    @property
    def band_share(self) -> np.ndarray:
        """Energy per band over the total (zeros for a silent stem)."""
        total = float(self.band_energy.sum())
        return self.band_energy / total if total > 0 else np.zeros_like(self.band_energy)

    @property
    def flatness(self) -> float:
        """Entropy of the band shares over its maximum, in [0, 1]: 1 for a broadband stem."""
        share = self.band_share[self.band_share > 0]
        return float(-(share * np.log(share)).sum() / math.log(len(BAND_EDGES_HZ))) if share.size else 0.0


@dataclass(frozen=True)
class Style:
    """One engineer's tendencies for a song (see the module docstring)."""

    tilt_db_per_octave: float
    prominence_spread_db: float
    width: float
    wetness_db: float
    squash: float
    carving: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Style:
        return cls(tilt_db_per_octave=float(rng.uniform(-1.5, 1.5)), prominence_spread_db=float(rng.uniform(1.0, 4.0)),
                   width=float(rng.uniform(0.25, 0.95)), wetness_db=float(rng.uniform(-32.0, -14.0)),
                   squash=float(rng.uniform(0.0, 1.0)), carving=float(rng.uniform(0.0, 1.0)))


def describe(audio: np.ndarray, sample_rate: int) -> StemDescription:
    """Measure one stem (see `StemDescription`).

    Args:
        audio: ``(channels, samples)`` float.
        sample_rate: In Hz.
    """
    mono = np.asarray(audio, dtype=np.float64).mean(axis=0)
    freqs, psd = scipy.signal.welch(mono, fs=sample_rate, nperseg=min(4096, max(256, mono.size)))
    edges = [*BAND_EDGES_HZ, sample_rate / 2.0 + 1.0]
    bands = np.array([psd[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
    total = float(psd.sum())
    centroid = float((freqs * psd).sum() / total) if total > 0 else 1000.0
    low = float(freqs[np.searchsorted(np.cumsum(psd), 0.01 * total)]) if total > 0 else 20.0
    rms = float(np.sqrt(np.mean(mono**2)))
    peak = float(np.abs(mono).max()) if mono.size else 0.0
    frame = max(1, round(_FRAME_S * sample_rate))
    frames = mono[:mono.size // frame * frame].reshape(-1, frame)
    levels = np.sqrt((frames**2).mean(axis=1)) if frames.size else np.zeros(1)
    p50, p90 = np.percentile(levels, [50, 90])
    return StemDescription(
        band_energy=bands, centroid_hz=max(centroid, 20.0), low_hz=max(low, 20.0),
        crest_db=20.0 * math.log10(peak / rms) if rms > 0 else 0.0,
        transient_db=20.0 * math.log10(max(p90, 1e-9) / max(p50, 1e-9)) if p90 > 0 else 0.0,
        rms_db=20.0 * math.log10(rms) if rms > 0 else -120.0, peak_db=20.0 * math.log10(peak) if peak > 0 else -120.0)


def _masking(descriptions: list[StemDescription]) -> np.ndarray:
    """``(stems, bands)``: the other stems' energy in each band over this stem's own, in dB."""
    energy = np.array([d.band_energy for d in descriptions]) + 1e-20
    others = energy.sum(axis=0, keepdims=True) - energy
    return 10.0 * np.log10(others / energy + 1e-20)


def _pans(descriptions: list[StemDescription], stereo: np.ndarray, style: Style,
          rng: np.random.Generator) -> list[float]:
    pans = [float(np.clip(rng.normal(0.0, 0.04), -1.0, 1.0)) for _ in descriptions]
    sides = [i for i, d in enumerate(descriptions) if not stereo[i] and d.centroid_hz >= CENTRE_BELOW_HZ]
    sides.sort(key=lambda i: descriptions[i].centroid_hz)
    side = float(rng.choice([-1.0, 1.0]))
    for rank, i in enumerate(sides):
        brightness = (rank + 1) / len(sides)
        pans[i] = side * style.width * (0.35 + 0.65 * brightness) * float(rng.uniform(0.75, 1.0))
        side = -side
    return [round(float(np.clip(p, -1.0, 1.0)), 3) for p in pans]


def _eq(d: StemDescription, masking_db: np.ndarray, style: Style, sample_rate: int,
        rng: np.random.Generator) -> list[EQBand]:
    share = d.band_share
    # The band where the others mask this stem most, among bands holding >= 5 % of its energy.
    audible = np.flatnonzero(share >= 0.05)
    carve = int(audible[np.argmax(masking_db[audible])]) if audible.size else 2
    lo = BAND_EDGES_HZ[carve]
    hi = BAND_EDGES_HZ[carve + 1] if carve + 1 < len(BAND_EDGES_HZ) else min(16000.0, 0.45 * sample_rate)
    bell_hz = math.sqrt(lo * hi) * log_uniform(rng, 0.8, 1.25)
    bell_db = -style.carving * float(rng.uniform(1.5, 6.0)) * min(1.0, max(0.0, masking_db[carve] / 12.0)) \
        + rng.normal(0.0, 0.75)
    low_masked = share[0] + share[1] >= 0.05 and masking_db[0] > 6.0
    low_shelf_db = -style.carving * float(rng.uniform(1.0, 5.0)) if low_masked else rng.normal(0.0, 1.0)
    high_shelf_db = style.tilt_db_per_octave * float(rng.uniform(0.5, 2.0)) + rng.normal(0.0, 1.0)
    bands = [
        EQBand("highpass", min(d.low_hz * float(rng.uniform(0.4, 0.9)), 400.0), 0.0, 0.707),
        EQBand("low_shelf", log_uniform(rng, 80.0, 250.0), low_shelf_db, 0.707),
        EQBand("peak", bell_hz, bell_db, log_uniform(rng, 0.7, 2.5)),
        EQBand("high_shelf", log_uniform(rng, 4000.0, 10000.0), high_shelf_db, 0.707),
    ]
    return [EQBand(b.type, round(clamp_freq_hz(max(b.freq_hz, 20.0), sample_rate), 1),
                   round(clip_to_range("eq_gain_db", b.gain_db), 2), round(b.q, 3)) for b in bands]


def _compressor(d: StemDescription, style: Style, rng: np.random.Generator) -> CompressorParams | None:
    probability = float(np.clip(0.1 + style.squash * (d.crest_db - 6.0) / 12.0, 0.05, 0.95))
    if rng.random() >= probability or d.peak_db <= -100.0:
        return None
    transient = d.transient_db > 6.0
    return CompressorParams(
        threshold_db=round(clip_to_range("threshold_db", d.rms_db + float(rng.uniform(0.2, 0.7)) * (d.peak_db - d.rms_db)),
                           2),
        ratio=round(1.5 + style.squash * float(rng.uniform(1.0, 6.0)), 2),
        attack_ms=round(log_uniform(rng, 10.0, 40.0) if transient else log_uniform(rng, 1.0, 10.0), 2),
        release_ms=round(log_uniform(rng, 40.0, 600.0), 1),
        knee_db=round(float(rng.uniform(0.0, 12.0)), 2),
        makeup_db=round(float(rng.uniform(0.0, 3.0)), 2),
    )


def _send(d: StemDescription, style: Style, rng: np.random.Generator) -> float | None:
    if d.band_share[0] >= 0.5 and rng.random() < 0.8:
        return None
    send = style.wetness_db - min(0.5 * max(0.0, d.transient_db - 3.0), 10.0) + rng.normal(0.0, 3.0)
    return round(clip_to_range("reverb_send_db", send), 2)


def sample_audio_style_params(multitrack: Multitrack, rng: np.random.Generator,
                              method: str = "synthetic:audio-styles") -> ConsoleParams:
    """Draw one engineer's settings for ``multitrack`` from its audio (see the module docstring).

    Args:
        multitrack: The stems.
        rng: The song's generator.
        method: Recorded in the params.

    Returns:
        Valid `ConsoleParams` with the `STANDARD_EQ` layout on every channel.
    """
    style = Style.draw(rng)
    excerpt = loudness_excerpt(multitrack)
    descriptions = [describe(excerpt.stem_audio(i), multitrack.sample_rate) for i in range(len(multitrack.names))]
    masking = _masking(descriptions)
    pans = _pans(descriptions, multitrack.stereo_mask(), style, rng)
    channels = [ChannelParams(name=name, instrument=instrument, pan=pans[i],
                              eq=_eq(descriptions[i], masking[i], style, multitrack.sample_rate, rng),
                              compressor=_compressor(descriptions[i], style, rng),
                              reverb_send_db=_send(descriptions[i], style, rng))
                for i, (name, instrument) in enumerate(zip(multitrack.names, multitrack.instruments, strict=True))]
    wet = (style.wetness_db + 32.0) / 18.0  # 0 (driest style) .. 1 (wettest)
    decay = float(np.clip(0.6 + 2.2 * wet + rng.normal(0.0, 0.3), 0.6, 2.8))
    master = MasterParams(reverb=ReverbParams(decay_s=round(decay, 3), predelay_ms=round(float(rng.uniform(0.0, 40.0)), 1),
                                              return_db=0.0))
    params = ConsoleParams(channels=channels, master=master, sample_rate=multitrack.sample_rate, method=method)
    prominence = rng.normal(0.0, style.prominence_spread_db, size=len(channels))
    for ch, d, lufs, offset in zip(params.channels, descriptions, stem_loudness(multitrack, params), prominence,
                                   strict=True):
        if math.isfinite(lufs):
            target = (REFERENCE_LUFS + style.tilt_db_per_octave * math.log2(d.centroid_hz / 1000.0)
                      - 3.0 * d.flatness + offset)
            ch.gain_db = round(clip_to_range("gain_db", target - float(lufs)), 2)
    params.validate()
    return params
