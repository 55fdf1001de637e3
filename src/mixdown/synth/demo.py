"""Deterministic synthetic songs: the bundled demo multitrack, no downloads.

:func:`compose_song` draws a score from a seed (groove style, tempo 80-160 BPM, key, mode,
chord progression, bass figure, comping rhythm and all parts: `mixdown.synth.score`);
:func:`synthesize_song` renders it with the voices of `mixdown.synth.drums` and
`mixdown.synth.pitched` into separate, unmixed stems, each peak-normalised to its own random
level between -12 and -3 dBFS.

Randomness is split into independent streams keyed by ``(seed, purpose, stem)``, so a stem
renders identically whichever other stems are requested.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import signal

from mixdown.synth import drums, pitched, score
from mixdown.synth.voice import DRUM_PIECES, Pattern

DEMO_STEMS: tuple[str, ...] = ("kick", "snare", "hihat", "tom_1", "tom_2", "overhead", "bass", "keys")
"""The bundled demo stems; ``overhead`` is stereo, the others mono."""

EXTRA_STEMS: tuple[str, ...] = ("guitar", "lead", "room")
"""Optional stems: plucked guitar arpeggios, a lead synth melody and a mono drum-room mic."""

AVAILABLE_STEMS: tuple[str, ...] = DEMO_STEMS + EXTRA_STEMS

DEMO_SEED = 2024
DEMO_DURATION_S = 15.0

_TEMPO_RANGES_BPM: dict[str, tuple[float, float]] = {
    "rock": (80.0, 150.0),
    "half_time": (120.0, 160.0),
    "four_on_the_floor": (115.0, 130.0),
}
_BASS_FIGURES_FOR: dict[str, tuple[str, ...]] = {
    "rock": ("eighths", "root_fifth", "half_notes"),
    "half_time": ("root_fifth", "half_notes"),
    "four_on_the_floor": ("offbeat", "eighths"),
}
_COMP_RHYTHMS_FOR: dict[str, tuple[str, ...]] = {
    "rock": ("whole", "halves", "pushes"),
    "half_time": ("whole", "halves"),
    "four_on_the_floor": ("offbeats", "pushes", "halves"),
}
PITCHED_STEMS: tuple[str, ...] = ("bass", "keys", "guitar", "lead")
"""Stems played from a pitched part of the score (``Song.parts``)."""
_REPLACEABLE = DRUM_PIECES + PITCHED_STEMS
_STREAMS = {name: i for i, name in enumerate(DRUM_PIECES + AVAILABLE_STEMS)}
_SCORE, _SOUND, _LEVEL = 0, 1, 2  # purposes of the random streams
_LEVEL_RANGE_DB = (-12.0, -3.0)
_DC_BLOCK_HZ = 20.0

MIN_FULL_DURATION_S = score.bar_seconds(min(low for low, _ in _TEMPO_RANGES_BPM.values()))
"""Shortest song in which every stem sounds (3 s): one bar at the slowest tempo. The toms
play only at the end of each bar, so in a shorter song a stem may get no note and be silent."""


@dataclass(frozen=True)
class Song:
    """The score of one synthetic song.

    Attributes:
        seed: Seed it was composed from.
        tempo_bpm: Tempo in quarter notes per minute (4/4 throughout).
        tonic: Pitch class of the key, 0 = C ... 11 = B.
        mode: ``major`` or ``minor``.
        progression: Key of ``score.PROGRESSIONS[mode]``, one chord per bar.
        groove: Drum style, one of ``score.GROOVE_STYLES``.
        n_bars: Number of bars composed (the last may run past the song's end).
        parts: Patterns keyed by the kit pieces of ``voice.DRUM_PIECES`` and by
            ``bass``, ``keys``, ``guitar`` and ``lead``.
    """

    seed: int
    tempo_bpm: float
    tonic: int
    mode: str
    progression: str
    groove: str
    n_bars: int
    parts: Mapping[str, Pattern]


def _rng(seed: int, purpose: int, name: str = "score") -> np.random.Generator:
    return np.random.default_rng([seed, purpose, _STREAMS.get(name, len(_STREAMS))])


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def compose_song(seed: int, duration_s: float = 12.0) -> Song:
    """Compose the score of a song long enough to fill ``duration_s``.

    Args:
        seed: Non-negative integer; the same seed always gives the same song.
        duration_s: Length to cover in seconds (> 0).

    Returns:
        The song's score.
    """
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    rng = _rng(int(seed), _SCORE)
    groove = _pick(rng, score.GROOVE_STYLES)
    tempo_bpm = round(float(rng.uniform(*_TEMPO_RANGES_BPM[groove])), 1)
    tonic = int(rng.integers(12))
    mode = _pick(rng, tuple(score.SCALES))
    progression = _pick(rng, list(score.PROGRESSIONS[mode]))
    n_bars = math.ceil(duration_s / score.bar_seconds(tempo_bpm))
    chords = score.chord_progression(
        tonic, mode, score.PROGRESSIONS[mode][progression], n_bars, sevenths=progression.startswith("ii")
    )
    parts = dict(score.drum_groove(groove, tempo_bpm, n_bars, rng))
    parts["bass"] = score.bass_part(chords, tempo_bpm, _pick(rng, _BASS_FIGURES_FOR[groove]), rng)
    parts["keys"] = score.comping_part(chords, tempo_bpm, _pick(rng, _COMP_RHYTHMS_FOR[groove]), rng)
    parts["guitar"] = score.arpeggio_part(chords, tempo_bpm, rng)
    parts["lead"] = score.melody_part(chords, tonic, mode, tempo_bpm, rng)
    return Song(int(seed), tempo_bpm, tonic, mode, progression, groove, n_bars, parts)


def _render_kit_piece(piece: str, song: Song, n_samples: int, sample_rate: int) -> np.ndarray:
    """Render one kit piece with sound parameters drawn from its own stream; ``(samples,)``."""
    rng = _rng(song.seed, _SOUND, piece)
    events = song.parts[piece]
    if piece == "kick":
        return drums.kick(
            events,
            n_samples,
            sample_rate,
            rng,
            start_hz=rng.uniform(130.0, 170.0),
            end_hz=rng.uniform(42.0, 55.0),
            decay_s=rng.uniform(0.22, 0.4),
        )
    if piece == "snare":
        return drums.snare(
            events,
            n_samples,
            sample_rate,
            rng,
            body_hz=rng.uniform(180.0, 220.0),
            decay_s=rng.uniform(0.12, 0.2),
            snappy=rng.uniform(0.6, 1.0),
        )
    if piece == "hihat":
        return drums.hihat(events, n_samples, sample_rate, rng, cutoff_hz=rng.uniform(6500.0, 8500.0))
    if piece == "tom_1":
        return drums.tom(
            events, n_samples, sample_rate, rng, pitch_hz=rng.uniform(140.0, 180.0), decay_s=rng.uniform(0.22, 0.32)
        )
    if piece == "tom_2":
        return drums.tom(
            events, n_samples, sample_rate, rng, pitch_hz=rng.uniform(85.0, 110.0), decay_s=rng.uniform(0.3, 0.45)
        )
    return drums.crash(events, n_samples, sample_rate, rng, decay_s=rng.uniform(0.8, 1.4))


def _render_stem(
    name: str,
    song: Song,
    n_samples: int,
    sample_rate: int,
    kit: Mapping[str, np.ndarray],
    sources: Mapping[str, np.ndarray],
) -> np.ndarray:
    """Render one stem before normalisation: ``(samples,)`` or ``(2, samples)`` for overhead."""
    if name in DRUM_PIECES:
        return kit[name]
    if name in sources:
        return sources[name]
    rng = _rng(song.seed, _SOUND, name)
    if name == "overhead":
        return drums.overheads(kit, sample_rate, rng, width=rng.uniform(0.8, 1.0))
    if name == "room":
        return drums.room(kit, sample_rate, rng, rt60_s=rng.uniform(0.35, 0.8))
    events = song.parts[name]
    if name == "bass":
        return pitched.bass(
            events,
            n_samples,
            sample_rate,
            rng,
            brightness=rng.uniform(2.0, 4.0),
            brightness_decay_s=rng.uniform(0.08, 0.2),
        )
    if name == "keys":
        return pitched.keys(events, n_samples, sample_rate, rng, brightness=rng.uniform(0.35, 0.55))
    if name == "guitar":
        return pitched.pluck(events, n_samples, sample_rate, rng, brightness=rng.uniform(0.4, 0.8))
    return pitched.lead(events, n_samples, sample_rate, rng, cutoff_hz=rng.uniform(2500.0, 5000.0))


def _finish(x: np.ndarray, level_db: float, sample_rate: int) -> np.ndarray:
    """DC-block (2nd-order 20 Hz high-pass) and peak-normalise to ``level_db``; float32 ``(channels, samples)``."""
    sos = signal.butter(2, _DC_BLOCK_HZ, "highpass", fs=sample_rate, output="sos")
    y = signal.sosfilt(sos, np.atleast_2d(x), axis=-1)
    peak = np.max(np.abs(y), initial=0.0)
    if peak > 0:
        y *= 10.0 ** (level_db / 20.0) / peak
    return y.astype(np.float32)


def kit_pieces(stems: tuple[str, ...]) -> tuple[str, ...]:
    """The kit pieces (``voice.DRUM_PIECES``) a song with these stems plays: all of them
    when an overhead or room microphone hears the kit, else those that are stems."""
    if any(name in ("overhead", "room") for name in stems):
        return DRUM_PIECES
    return tuple(piece for piece in DRUM_PIECES if piece in stems)


def synthesize_song(
    seed: int,
    sample_rate: int = 44100,
    duration_s: float = 12.0,
    stems: tuple[str, ...] = DEMO_STEMS,
    extra: tuple[str, ...] = (),
    *,
    sources: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Render a synthetic song as separate, unmixed stems.

    Args:
        seed: Non-negative integer; the same seed gives bit-identical stems, different seeds
            give a different tempo, key, progression and groove.
        sample_rate: Sample rate in Hz (e.g. 44100 or 48000).
        duration_s: Length of every stem in seconds.
        stems: Stems to render, from :data:`AVAILABLE_STEMS`.
        extra: More stems appended to ``stems``, e.g. ``("guitar", "lead")``.
        sources: Dry renders of this song's score by other means (e.g. sample libraries,
            `mixdown.synth.samples`) that replace the synthesized voices: kit pieces of
            ``voice.DRUM_PIECES`` (the overhead and room mics then pick them up too) or
            the pitched stems ``bass``, ``keys``, ``guitar``, ``lead``; mono float arrays of
            shape ``(samples,)``. They are DC-blocked and levelled like the synthesized ones.

    Returns:
        Stem name -> float32 array of shape ``(channels, samples)`` with
        ``samples = round(duration_s * sample_rate)``; ``overhead`` has 2 channels, every
        other stem 1. Each stem peaks at its own level in [-12, -3] dBFS; if ``duration_s``
        is under :data:`MIN_FULL_DURATION_S` a stem with no note in that time is all zeros.
    """
    names = tuple(stems) + tuple(extra)
    unknown = [name for name in names if name not in AVAILABLE_STEMS]
    if unknown:
        raise ValueError(f"unknown stems {unknown}; expected some of {AVAILABLE_STEMS}")
    if len(set(names)) != len(names):
        raise ValueError(f"stems must not repeat, got {names}")
    if not isinstance(sample_rate, int | np.integer) or sample_rate < 8000:
        raise ValueError(f"sample_rate must be an integer >= 8000, got {sample_rate!r}")
    song = compose_song(seed, duration_s)
    n_samples = round(duration_s * sample_rate)
    sources = dict(sources or {})
    unusable = [name for name in sources if name not in _REPLACEABLE]
    if unusable:
        raise ValueError(f"sources {unusable} cannot replace a voice; expected some of {_REPLACEABLE}")
    bad_shapes = {name: np.shape(x) for name, x in sources.items() if np.shape(x) != (n_samples,)}
    if bad_shapes:
        raise ValueError(f"sources must have shape ({n_samples},), got {bad_shapes}")
    kit = {
        piece: sources[piece] if piece in sources else _render_kit_piece(piece, song, n_samples, sample_rate)
        for piece in kit_pieces(names)
    }
    return {
        name: _finish(
            _render_stem(name, song, n_samples, sample_rate, kit, sources),
            float(_rng(song.seed, _LEVEL, name).uniform(*_LEVEL_RANGE_DB)),
            sample_rate,
        )
        for name in names
    }


def demo_multitrack_arrays(sample_rate: int = 44100) -> dict[str, np.ndarray]:
    """The bundled demo multitrack: :data:`DEMO_STEMS` of song 2024, 15 s long.

    Args:
        sample_rate: Sample rate in Hz.

    Returns:
        Stem name -> float32 array ``(channels, samples)``, as :func:`synthesize_song`.
    """
    return synthesize_song(DEMO_SEED, sample_rate=sample_rate, duration_s=DEMO_DURATION_S)
