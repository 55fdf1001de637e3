"""Engineer-like random console settings: ground truth for synthetic training mixes.

Uniform noise over every parameter makes mixes no engineer would make, and a model
trained on them learns nothing useful. Instead each setting is drawn around the
knowledge-engineered class table `mixdown.class_rules.RULES` (De Man & Reiss 2013), with
spreads that cover how differently engineers mix the same song:

* balance: the class's target loudness (measured after EQ and compression, BS.1770,
  over the first `LOUDNESS_EXCERPT_S` seconds) plus N(0, 3 dB);
* pan: focal classes (kick, snare, bass, vocal) and stereo stems near the centre
  (N(0, 0.05)); drums from the drummer's point of view, matching the synthetic
  overheads: hi-hat left at [0.2, 0.7], toms from high (left, [0.2, 0.5]) to floor
  (right, [0.3, 0.7]) in name order; every other source at a width in [0.15, 0.85] on
  alternating sides (the first side random), so the mix stays balanced;
* EQ: every channel gets the *standard strip* `STANDARD_EQ` (high-pass, low shelf,
  bell, high shelf) so networks see one fixed layout; high-pass at the class cutoff
  times a log-uniform factor in [0.6, 1.6] (kick and bass get an inaudible 20 Hz), shelves
  N(0, 3 dB), bell at a log-uniform 150 Hz-6 kHz with N(0, 4 dB) and Q in [0.5, 4];
* compressor: on with a class-dependent probability (0.8 for kick, snare, bass and vocal
  down to 0.2 for cymbals and ambience), ratio log-uniform in [1.5, 8],
  threshold 3-18 dB under the stem's peak, attack 1-40 ms, release 40-600 ms
  (log-uniform), knee 0-12 dB, makeup 0-6 dB;
* reverb: the class's send + N(0, 4 dB); kick and bass (and room mics) dry with
  probability 0.8, else a send of -40 to -25 dB;
* master: reverb decay 0.6-2.8 s, pre-delay 0-40 ms, normalised to -14 LUFS under a
  -1 dBTP ceiling.

All draws come from a `np.random.Generator` the caller seeds (per song), so the same
seed gives the same settings.
"""

from __future__ import annotations

import math

import numpy as np

from mixdown.class_rules import REFERENCE_LUFS, RULES
from mixdown.console import channel_loudness
from mixdown.multitrack import Multitrack, Stem
from mixdown.params import (
    SPECS,
    ChannelParams,
    CompressorParams,
    ConsoleParams,
    EQBand,
    MasterParams,
    ReverbParams,
    clamp_freq_hz,
)

LOUDNESS_EXCERPT_S = 10.0
"""Faders are set from each stem's loudness over its first seconds (at least 3 bars of the
synthetic songs, whose parts repeat every 1-4 bars) rather than the whole song, which would
cost a second full pass of every channel strip; a stem silent there is measured over its
full length. On the 44 stems of four 30 s synthetic songs the excerpt was within 1.1 LU of
the whole stem (median 0.2 LU), small beside the 3 dB spread drawn on purpose."""

_COMPRESSION_PROBABILITY = {"kick": 0.8, "snare": 0.8, "bass": 0.8, "vocal": 0.8, "tom": 0.5,
                            "guitar": 0.5, "keys": 0.4, "other": 0.4, "hihat": 0.2, "overhead": 0.2, "room": 0.2}


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A draw whose logarithm is uniform in ``[log lo, log hi]``."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def clip_to_range(name: str, value: float) -> float:
    """``value`` clipped to the full range of the schema's tensor ``name`` (e.g. ``"gain_db"``)."""
    spec = SPECS[name]
    return min(max(value, spec.minimum), spec.maximum)


def _eq(instrument: str, sample_rate: int, rng: np.random.Generator) -> list[EQBand]:
    cutoff = RULES[instrument].highpass_hz
    highpass = 20.0 if cutoff is None else cutoff * log_uniform(rng, 0.6, 1.6)
    bands = [
        EQBand("highpass", highpass, 0.0, 0.707),
        EQBand("low_shelf", log_uniform(rng, 80.0, 300.0), rng.normal(0.0, 3.0), 0.707),
        EQBand("peak", log_uniform(rng, 150.0, 6000.0), rng.normal(0.0, 4.0), log_uniform(rng, 0.5, 4.0)),
        EQBand("high_shelf", log_uniform(rng, 3000.0, 12000.0), rng.normal(0.0, 3.0), 0.707),
    ]
    return [EQBand(b.type, round(clamp_freq_hz(b.freq_hz, sample_rate), 1), round(clip_to_range("eq_gain_db", b.gain_db), 2),
                   round(b.q, 3)) for b in bands]


def _compressor(instrument: str, peak_db: float, rng: np.random.Generator) -> CompressorParams | None:
    if rng.random() >= _COMPRESSION_PROBABILITY[instrument]:
        return None
    return CompressorParams(
        threshold_db=round(clip_to_range("threshold_db", peak_db - rng.uniform(3.0, 18.0)), 2),
        ratio=round(log_uniform(rng, 1.5, 8.0), 2),
        attack_ms=round(log_uniform(rng, 1.0, 40.0), 2),
        release_ms=round(log_uniform(rng, 40.0, 600.0), 1),
        knee_db=round(rng.uniform(0.0, 12.0), 2),
        makeup_db=round(rng.uniform(0.0, 6.0), 2),
    )


def _pans(multitrack: Multitrack, rng: np.random.Generator) -> list[float]:
    """A pan position per stem (see the module docstring)."""
    stereo = multitrack.stereo_mask()
    names, instruments = multitrack.names, multitrack.instruments
    pans = [0.0] * len(names)
    toms = sorted((i for i, c in enumerate(instruments) if c == "tom" and not stereo[i]),
                  key=lambda i: names[i].lower())
    first_side = float(rng.choice([-1.0, 1.0]))
    spread = 0
    for i, instrument in enumerate(instruments):
        if stereo[i] or RULES[instrument].centred:
            pans[i] = float(np.clip(rng.normal(0.0, 0.05), -1.0, 1.0))
        elif instrument == "hihat":
            pans[i] = -rng.uniform(0.2, 0.7)
        elif instrument == "tom":
            rank = toms.index(i) / max(len(toms) - 1, 1)
            pans[i] = (1.0 - rank) * -rng.uniform(0.2, 0.5) + rank * rng.uniform(0.3, 0.7)
        else:
            pans[i] = first_side * (-1.0) ** spread * rng.uniform(0.15, 0.85)
            spread += 1
    return [round(p, 3) for p in pans]


def loudness_excerpt(multitrack: Multitrack) -> Multitrack:
    """The first `LOUDNESS_EXCERPT_S` seconds of ``multitrack``, in memory (itself if no longer)."""
    frames = round(LOUDNESS_EXCERPT_S * multitrack.sample_rate)
    if multitrack.num_frames <= frames:
        return multitrack
    stems = [Stem(stem.name, stem.instrument, stem.channels, audio=multitrack.stem_audio(i)[:, :frames])
             for i, stem in enumerate(multitrack.stems)]
    return Multitrack(stems, multitrack.sample_rate, frames)


def stem_loudness(multitrack: Multitrack, params: ConsoleParams) -> np.ndarray:
    """Loudness (LUFS) after EQ and compressor per stem, from the excerpt where it is audible."""
    lufs = channel_loudness(loudness_excerpt(multitrack), params)
    silent = ~np.isfinite(lufs)
    if silent.any():
        lufs[silent] = channel_loudness(multitrack, params)[silent]
    return lufs


def _send(instrument: str, rng: np.random.Generator) -> float | None:
    send = RULES[instrument].reverb_send_db
    if send is None:
        return None if rng.random() < 0.8 else round(rng.uniform(-40.0, -25.0), 2)
    return round(clip_to_range("reverb_send_db", send + rng.normal(0.0, 4.0)), 2)


def sample_console_params(multitrack: Multitrack, rng: np.random.Generator, method: str = "synthetic") -> ConsoleParams:
    """Draw engineer-like settings for ``multitrack`` (see the module docstring).

    Args:
        multitrack: the stems (their peaks and processed loudness set thresholds and faders).
        rng: the song's generator.
        method: recorded in the params.

    Returns:
        Valid `ConsoleParams` with the `STANDARD_EQ` layout on every channel.
    """
    channels = []
    pans = _pans(multitrack, rng)
    for i, (name, instrument) in enumerate(zip(multitrack.names, multitrack.instruments, strict=True)):
        peak = float(np.abs(multitrack.stem_audio(i)).max())
        peak_db = 20.0 * math.log10(peak) if peak > 0 else -60.0
        channels.append(ChannelParams(
            name=name, instrument=instrument, pan=pans[i], eq=_eq(instrument, multitrack.sample_rate, rng),
            compressor=_compressor(instrument, peak_db, rng), reverb_send_db=_send(instrument, rng)))
    master = MasterParams(reverb=ReverbParams(decay_s=round(rng.uniform(0.6, 2.8), 3),
                                              predelay_ms=round(rng.uniform(0.0, 40.0), 1), return_db=0.0))
    params = ConsoleParams(channels=channels, master=master, sample_rate=multitrack.sample_rate, method=method)
    offsets = rng.normal(0.0, 3.0, size=len(channels))
    for ch, lufs, offset in zip(params.channels, stem_loudness(multitrack, params), offsets, strict=True):
        if math.isfinite(lufs):
            target = REFERENCE_LUFS + RULES[ch.instrument].level_lu + offset
            ch.gain_db = round(clip_to_range("gain_db", target - float(lufs)), 2)
    params.validate()
    return params
