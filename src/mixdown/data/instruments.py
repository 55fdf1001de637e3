"""Synthetic instrument voices and score helpers.

Two halves:

* **Score helpers** build :data:`Pattern` s (time-ordered tuples of :class:`Event`) for one part
  of a song: drum grooves with humanised velocities, ghost notes and tom fills
  (:func:`drum_groove`), diatonic chord progressions (:func:`chord_progression`), keyboard
  comping (:func:`comping_part`), a bass line on the chord roots (:func:`bass_part`), a lead
  melody on the scale (:func:`melody_part`) and guitar arpeggios (:func:`arpeggio_part`).
* **Voices** render a pattern into a new float64 buffer. Every voice is a pure function
  ``voice(events, n_samples, sample_rate, rng, **sound_params)`` returning shape
  ``(samples,)``, except :func:`overheads` which returns ``(2, samples)``. Voices never clip,
  fade every note in and out (no clicks) and are not level-normalised: levels are of order 1
  and sum where notes overlap.

All randomness comes from the ``np.random.Generator`` passed in; the same generator state and
arguments give bit-identical output. Voices work at any sample rate; filter corners above
0.45 x ``sample_rate`` are pulled down to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numba
import numpy as np
from scipy import signal


class Event(NamedTuple):
    """One note or drum hit.

    Attributes:
        onset_s: Start time in seconds from the start of the buffer (>= 0).
        duration_s: Gate length in seconds (> 0): how long a note is held, or how long an open
            hi-hat rings before it is choked. One-shot drums other than the hi-hat ring out
            naturally and ignore it.
        pitch: MIDI note number (69 = A4 = 440 Hz), or ``None`` for unpitched hits.
        velocity: Loudness in ``[0, 1]``; harder hits are also brighter.
    """

    onset_s: float
    duration_s: float
    pitch: int | None
    velocity: float


Pattern = tuple[Event, ...]
"""The events of one part, sorted by onset."""

DRUM_PIECES: tuple[str, ...] = ("kick", "snare", "hihat", "tom_1", "tom_2", "crash")
"""Kit pieces produced by :func:`drum_groove` and understood by :func:`overheads`/:func:`room`."""

GROOVE_STYLES: tuple[str, ...] = ("rock", "half_time", "four_on_the_floor")

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
}
"""Semitone offsets of the seven scale degrees from the tonic."""

_HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)

PROGRESSIONS: dict[str, dict[str, tuple[int, ...]]] = {
    "major": {
        "I-V-vi-IV": (0, 4, 5, 3),
        "I-vi-IV-V": (0, 5, 3, 4),
        "I-IV-vi-V": (0, 3, 5, 4),
        "ii-V-I-I": (1, 4, 0, 0),
    },
    "minor": {
        "i-VI-III-VII": (0, 5, 2, 6),
        "i-iv-VII-III": (0, 3, 6, 2),
        "i-VII-VI-V": (0, 6, 5, 4),
        "ii-V-i-i": (1, 4, 0, 0),
    },
}
"""Chord progressions per mode as 0-based scale degrees, one chord per bar. In minor the V
chord is built on the harmonic minor scale (major dominant with a leading tone)."""

COMP_RHYTHMS: dict[str, tuple[tuple[int, int], ...]] = {
    "whole": ((0, 8),),
    "halves": ((0, 4), (4, 4)),
    "pushes": ((0, 3), (3, 3), (6, 2)),
    "offbeats": ((1, 1), (3, 1), (5, 1), (7, 1)),
}
"""Keyboard comping rhythms: ``(onset, length)`` in eighth notes within a 4/4 bar."""

BASS_FIGURES: dict[str, tuple[tuple[int, int, str], ...]] = {
    "eighths": tuple((step, 1, "root") for step in range(8)),
    "root_fifth": ((0, 3, "root"), (3, 1, "root"), (4, 2, "fifth"), (6, 1, "octave"), (7, 1, "approach")),
    "half_notes": ((0, 4, "root"), (4, 3, "fifth"), (7, 1, "approach")),
    "offbeat": ((1, 1, "root"), (3, 1, "root"), (5, 1, "octave"), (7, 1, "root")),
}
"""Bass figures: ``(onset, length, role)`` in eighth notes; role is one of ``root``, ``fifth``,
``octave`` or ``approach`` (a semitone below or above the next bar's root)."""

# Kick steps (16ths of a 4/4 bar); one variant is chosen per song.
_KICK_VARIANTS: dict[str, tuple[tuple[int, ...], ...]] = {
    "rock": ((0, 8), (0, 8, 10), (0, 6, 8, 10)),
    "half_time": ((0,), (0, 10), (0, 6, 10)),
    "four_on_the_floor": ((0, 4, 8, 12),),
}
_SNARE_STEPS: dict[str, tuple[int, ...]] = {
    "rock": (4, 12),
    "half_time": (8,),
    "four_on_the_floor": (4, 12),
}

VELOCITY_LAYERS = 32
"""Drum voices shape a hit's timbre from its velocity rounded to this many steps (a sampler's
velocity layers) and cache each shape; the hit's level follows the exact velocity."""

# The six square-wave frequencies of the Roland TR-808 cymbal/hi-hat circuit.
_METAL_HZ = np.array([205.3, 304.4, 369.6, 522.7, 540.0, 800.0])

# Overhead placement from the drummer's perspective: piece -> (gain, pan), pan -1 = left.
_OVERHEAD_LAYOUT: dict[str, tuple[float, float]] = {
    "kick": (0.25, 0.0),
    "snare": (0.35, -0.15),
    "hihat": (2.5, -0.6),
    "tom_1": (0.3, -0.25),
    "tom_2": (0.3, 0.55),
    "crash": (1.2, 0.4),
}
_ROOM_GAINS: dict[str, float] = {
    "kick": 0.8,
    "snare": 1.0,
    "hihat": 0.35,
    "tom_1": 0.9,
    "tom_2": 0.9,
    "crash": 0.5,
}


# --------------------------------------------------------------------------- small helpers


def midi_to_hz(pitch: float | np.ndarray) -> float | np.ndarray:
    """Equal-tempered frequency of a MIDI pitch (69 = A4 = 440 Hz); fractional pitches allowed."""
    return 440.0 * np.exp2((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def _check_render_args(events: Sequence[Event], n_samples: int, sample_rate: int, pitched: bool) -> None:
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    for event in events:
        if event.onset_s < 0 or event.duration_s <= 0 or not 0.0 <= event.velocity <= 1.0:
            raise ValueError(f"bad event {event}: need onset_s >= 0, duration_s > 0, 0 <= velocity <= 1")
        if pitched and event.pitch is None:
            raise ValueError(f"pitched voice got an event without pitch: {event}")


def _corner(hz: float, sample_rate: int) -> float:
    """Clamp a filter corner below Nyquist."""
    return min(hz, 0.45 * sample_rate)


def _ramp(n: int) -> np.ndarray:
    """Raised-cosine ramp from ~0 to ~1 over ``n`` samples."""
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)


def _fade(x: np.ndarray, sample_rate: int, in_s: float, out_s: float) -> np.ndarray:
    """Apply raised-cosine fades in place to a voice-owned 1-D buffer and return it."""
    n_in = min(len(x), max(1, round(in_s * sample_rate)))
    n_out = min(len(x), max(1, round(out_s * sample_rate)))
    x[:n_in] *= _ramp(n_in)
    x[len(x) - n_out :] *= _ramp(n_out)[::-1]
    return x


def _add_at(out: np.ndarray, sound: np.ndarray, onset_s: float, sample_rate: int) -> None:
    """Mix ``sound`` into ``out`` at ``onset_s``; a sound cut by the buffer end gets a 5 ms fade."""
    start = round(onset_s * sample_rate)
    n = min(len(sound), len(out) - start)
    if n <= 0:
        return
    if n < len(sound):
        sound = _fade(sound[:n].copy(), sample_rate, 0.0, 0.005)
    out[start : start + n] += sound


def _sweep_phases(t: np.ndarray, end_hz: float, sweep_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Phase terms of an oscillator gliding exponentially down to ``end_hz``.

    For ``f(t) = end_hz + extra_hz * exp(-t / sweep_s)`` the phase (radians, 0 at ``t = 0``) is
    ``steady + extra_hz * per_hz``; returns ``(steady, per_hz)`` so that several hits with
    different sweep depths share the expensive part.
    """
    return 2.0 * np.pi * end_hz * t, 2.0 * np.pi * sweep_s * -np.expm1(-t / sweep_s)


def _metal(n: int, sample_rate: int, rng: np.random.Generator, ratio: float = 1.0) -> np.ndarray:
    """Sum of the six TR-808 square waves (random phases) scaled to unit peak, shape ``(n,)``."""
    t = np.arange(n) / sample_rate
    phases = (_METAL_HZ[:, None] * ratio * t + rng.uniform(0.0, 1.0, (len(_METAL_HZ), 1))) % 1.0
    return np.where(phases < 0.5, 1.0, -1.0).sum(axis=0) / len(_METAL_HZ)


def _metal_segments(
    lengths: Sequence[int], sample_rate: int, rng: np.random.Generator, ratio: float = 1.0
) -> list[np.ndarray]:
    """One :func:`_metal` segment per hit, each read from a random point of a single long render.

    The six frequencies are incommensurate, so every offset is a fresh combination of oscillator
    phases; rendering the cluster once (longest hit + 1 s) costs one buffer instead of one per hit.
    """
    if not lengths:
        return []
    bank = _metal(max(lengths) + sample_rate, sample_rate, rng, ratio)
    starts = rng.integers(0, len(bank) - np.asarray(lengths) + 1)
    return [bank[start : start + n] for start, n in zip(starts, lengths, strict=True)]


def _velocity_layer(velocity: float) -> float:
    """``velocity`` rounded to one of :data:`VELOCITY_LAYERS` steps, for caching a hit's timbre."""
    return round(velocity * VELOCITY_LAYERS) / VELOCITY_LAYERS


def _polyblep_saw(cycles_per_sample: np.ndarray, phase0: float) -> np.ndarray:
    """Band-limited sawtooth in ``[-1, 1]`` (PolyBLEP: Valimaki & Huovilainen 2007).

    Args:
        cycles_per_sample: Instantaneous frequency / sample rate, shape ``(samples,)``, < 0.5.
        phase0: Starting phase in cycles, ``[0, 1)``.
    """
    dt = cycles_per_sample
    phase = (phase0 + np.cumsum(dt) - dt[0]) % 1.0
    saw = 2.0 * phase - 1.0
    just_wrapped = phase < dt
    u = phase[just_wrapped] / dt[just_wrapped]
    saw[just_wrapped] -= 2.0 * u - u * u - 1.0
    about_to_wrap = phase > 1.0 - dt
    u = (phase[about_to_wrap] - 1.0) / dt[about_to_wrap]
    saw[about_to_wrap] -= u * u + 2.0 * u + 1.0
    return saw


def _monophonic_lengths(events: Sequence[Event], release_s: float) -> list[float]:
    """Sounding length of each (onset-sorted) note: gate + release, cut at the next onset."""
    lengths = []
    for i, event in enumerate(events):
        length = event.duration_s + release_s
        if i + 1 < len(events):
            length = min(length, events[i + 1].onset_s - event.onset_s)
        lengths.append(length)
    return lengths


def _onset(event: Event) -> float:
    return event.onset_s


def _humanize(value: float, rng: np.random.Generator, spread: float) -> float:
    """Multiply a velocity by ``1 + N(0, spread)`` and keep it in ``[0.05, 1]``."""
    return float(np.clip(value * (1.0 + spread * rng.standard_normal()), 0.05, 1.0))


def _jitter(onset_s: float, rng: np.random.Generator, spread_s: float) -> float:
    """Add Gaussian timing jitter, never before time 0."""
    return max(0.0, onset_s + spread_s * float(rng.standard_normal()))


def _check_tempo(tempo_bpm: float, n_bars: int) -> None:
    if not 20.0 <= tempo_bpm <= 400.0:
        raise ValueError(f"tempo_bpm must be in [20, 400], got {tempo_bpm}")
    if n_bars < 1:
        raise ValueError(f"n_bars must be >= 1, got {n_bars}")


# --------------------------------------------------------------------------- score helpers


def bar_seconds(tempo_bpm: float) -> float:
    """Length of one 4/4 bar in seconds."""
    return 240.0 / tempo_bpm


def drum_groove(
    style: str,
    tempo_bpm: float,
    n_bars: int,
    rng: np.random.Generator,
    *,
    ghost_prob: float = 0.15,
    humanize_s: float = 0.004,
) -> dict[str, Pattern]:
    """A humanised 4/4 drum groove with ghost notes, tom pickups and fills.

    Every odd bar ends in a one- or two-beat tom fill (tom_1 then tom_2, sometimes led by the
    snare); every even bar ends in a two-hit tom pickup, so both toms sound in every bar. A
    crash replaces the hi-hat on the downbeat of every fourth bar.

    Args:
        style: One of :data:`GROOVE_STYLES`: ``rock`` (snare on 2 and 4, eighth hats),
            ``half_time`` (snare on 3) or ``four_on_the_floor`` (kick on every beat, open hats
            on the off-beats).
        tempo_bpm: Tempo in quarter notes per minute.
        n_bars: Number of bars.
        rng: Source of the groove variant, ghost notes, fills and humanisation.
        ghost_prob: Probability of a ghost snare on each free off-beat sixteenth.
        humanize_s: Standard deviation of the timing jitter in seconds.

    Returns:
        One pattern per piece of :data:`DRUM_PIECES`; unpitched events (``pitch=None``).
    """
    if style not in GROOVE_STYLES:
        raise ValueError(f"unknown groove style {style!r}; expected one of {GROOVE_STYLES}")
    _check_tempo(tempo_bpm, n_bars)
    step_s = 15.0 / tempo_bpm
    variants = _KICK_VARIANTS[style]
    kick_steps = variants[rng.integers(len(variants))]
    snare_steps = _SNARE_STEPS[style]
    if style == "half_time" and rng.random() < 0.5:
        hat_steps = tuple(range(16))
    elif style == "four_on_the_floor":
        hat_steps = tuple(range(16))
    else:
        hat_steps = tuple(range(0, 16, 2))
    hits: dict[str, list[tuple[float, float]]] = {piece: [] for piece in DRUM_PIECES}  # (step, velocity)
    open_hats: set[float] = set()
    for bar in range(n_bars):
        first = bar * 16
        is_fill = bar % 2 == 1
        groove_end = 16 - 4 * int(rng.integers(1, 3)) if is_fill else 14
        crash = bar % 4 == 0
        for step in kick_steps:
            if step < groove_end:
                hits["kick"].append((first + step, 1.0 if step == 0 else 0.85))
        for step in snare_steps:
            if step < groove_end:
                hits["snare"].append((first + step, 0.95))
        for step in range(1, groove_end, 2):
            if all(abs(step - s) > 1 for s in snare_steps) and rng.random() < ghost_prob:
                hits["snare"].append((first + step, float(rng.uniform(0.12, 0.28))))
        open_step = 10 if style != "four_on_the_floor" and rng.random() < 0.4 else None
        for step in hat_steps:
            if step >= groove_end or (crash and step == 0):
                continue
            accent = 0.85 if step % 4 == 0 else (0.65 if step % 2 == 0 else 0.45)
            hits["hihat"].append((first + step, accent))
            if step == open_step or (style == "four_on_the_floor" and step % 4 == 2):
                open_hats.add(first + step)
        if crash:
            hits["crash"].append((first, 1.0))
        if is_fill:
            stride = 1 if rng.random() < 0.6 else 2
            fill_steps = list(range(groove_end, 16, stride))
            lead_with_snare = rng.random() < 0.5
            for i, step in enumerate(fill_steps):
                velocity = 0.7 + 0.3 * i / max(1, len(fill_steps) - 1)
                if i == 0 and lead_with_snare:
                    piece = "snare"
                else:
                    piece = "tom_1" if i < len(fill_steps) / 2 else "tom_2"
                hits[piece].append((first + step, velocity))
            if lead_with_snare and len(fill_steps) < 4:  # keep both toms in short fills
                hits["tom_1"].append((first + fill_steps[0] + 0.5 * stride, 0.7))
        else:
            hits["tom_1"].append((first + 14, 0.7))
            hits["tom_2"].append((first + 15, 0.8))

    hat_onsets = sorted(step for step, _ in hits["hihat"])
    patterns: dict[str, Pattern] = {}
    for piece, piece_hits in hits.items():
        events = []
        for step, velocity in sorted(piece_hits):
            duration_s = step_s
            if piece == "hihat":
                if step in open_hats:
                    later = [s for s in hat_onsets if s > step]
                    duration_s = ((later[0] if later else step + 2) - step) * step_s
                else:
                    duration_s = float(rng.uniform(0.04, 0.07))
            events.append(
                Event(
                    _jitter(step * step_s, rng, humanize_s),
                    duration_s,
                    None,
                    _humanize(velocity, rng, 0.08),
                )
            )
        patterns[piece] = tuple(sorted(events, key=_onset))
    return patterns


def chord_progression(
    tonic: int,
    mode: str,
    degrees: Sequence[int],
    n_bars: int,
    *,
    sevenths: bool = False,
) -> tuple[tuple[int, ...], ...]:
    """Diatonic chords, one per bar, cycling through ``degrees``.

    Args:
        tonic: Pitch class of the key, 0 = C ... 11 = B.
        mode: ``major`` or ``minor`` (see :data:`SCALES`).
        degrees: 0-based scale degrees, e.g. ``PROGRESSIONS["major"]["I-V-vi-IV"]``.
        n_bars: Number of chords to return.
        sevenths: Stack four thirds instead of three.

    Returns:
        ``n_bars`` chords, each a tuple of MIDI pitches in root position with the root in
        octave 3 (MIDI 48-59); the first pitch is the root.
    """
    if mode not in SCALES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {tuple(SCALES)}")
    if not 0 <= tonic < 12:
        raise ValueError(f"tonic must be a pitch class 0-11, got {tonic}")
    if not degrees or any(not 0 <= d < 7 for d in degrees):
        raise ValueError(f"degrees must be a non-empty sequence of 0-6, got {degrees}")
    chords = []
    for bar in range(n_bars):
        degree = degrees[bar % len(degrees)]
        scale = _HARMONIC_MINOR if mode == "minor" and degree == 4 else SCALES[mode]
        steps = [degree + 2 * i for i in range(4 if sevenths else 3)]
        chords.append(tuple(48 + tonic + scale[s % 7] + 12 * (s // 7) for s in steps))
    return tuple(chords)


def _voice_chords(chords: Sequence[tuple[int, ...]], low: int, high: int) -> list[tuple[int, ...]]:
    """Close voicings within ``[low, high]``, each inversion chosen nearest the previous one."""
    voiced: list[tuple[int, ...]] = []
    centre = low + 0.4 * (high - low)
    for chord in chords:
        pcs = [p % 12 for p in chord]
        best: tuple[int, ...] | None = None
        for inversion in range(len(pcs)):
            order = pcs[inversion:] + pcs[:inversion]
            for base in (low + (order[0] - low) % 12, low + (order[0] - low) % 12 + 12):
                notes = [base]
                for pc in order[1:]:
                    notes.append(notes[-1] + (pc - notes[-1]) % 12 or 12)
                if notes[-1] > high:
                    continue
                if best is None or abs(np.mean(notes) - centre) < abs(np.mean(best) - centre):
                    best = tuple(notes)
        if best is None:
            raise ValueError(f"range [{low}, {high}] is too narrow to voice {chord}")
        voiced.append(best)
        centre = float(np.mean(best))
    return voiced


def comping_part(
    chords: Sequence[tuple[int, ...]],
    tempo_bpm: float,
    rhythm: str,
    rng: np.random.Generator,
    *,
    low: int = 53,
    high: int = 77,
) -> Pattern:
    """Voice-led keyboard chords, one chord per bar, played in a comping rhythm.

    Args:
        chords: One chord per bar (MIDI pitches, root first), e.g. from :func:`chord_progression`.
        tempo_bpm: Tempo in quarter notes per minute.
        rhythm: Key of :data:`COMP_RHYTHMS`.
        rng: Source of velocity humanisation and the few-millisecond spread of each chord.
        low: Lowest allowed MIDI pitch of a voicing.
        high: Highest allowed MIDI pitch of a voicing.

    Returns:
        Polyphonic pattern (notes of a chord share an onset up to the spread).
    """
    if rhythm not in COMP_RHYTHMS:
        raise ValueError(f"unknown comping rhythm {rhythm!r}; expected one of {tuple(COMP_RHYTHMS)}")
    _check_tempo(tempo_bpm, len(chords))
    eighth_s = 30.0 / tempo_bpm
    legato = 0.6 if rhythm == "offbeats" else 0.92
    events = []
    for bar, voicing in enumerate(_voice_chords(chords, low, high)):
        for onset, length in COMP_RHYTHMS[rhythm]:
            velocity = 0.75 if onset == 0 else 0.65
            start_s = _jitter((bar * 8 + onset) * eighth_s, rng, 0.003)
            for pitch in voicing:
                events.append(
                    Event(
                        start_s + float(rng.uniform(0.0, 0.012)),
                        length * eighth_s * legato,
                        pitch,
                        _humanize(velocity, rng, 0.06),
                    )
                )
    return tuple(sorted(events, key=_onset))


def bass_part(
    chords: Sequence[tuple[int, ...]],
    tempo_bpm: float,
    figure: str,
    rng: np.random.Generator,
) -> Pattern:
    """A monophonic bass line on the chord roots, one figure per bar.

    Args:
        chords: One chord per bar (MIDI pitches, root first, fifth third).
        tempo_bpm: Tempo in quarter notes per minute.
        figure: Key of :data:`BASS_FIGURES`.
        rng: Source of approach-note direction and humanisation.

    Returns:
        Pattern with roots placed in MIDI 33-44 (A1-G#2), non-overlapping notes.
    """
    if figure not in BASS_FIGURES:
        raise ValueError(f"unknown bass figure {figure!r}; expected one of {tuple(BASS_FIGURES)}")
    _check_tempo(tempo_bpm, len(chords))
    eighth_s = 30.0 / tempo_bpm
    legato = 0.7 if figure in ("eighths", "offbeat") else 0.9
    events = []
    for bar, chord in enumerate(chords):
        root = 33 + (chord[0] - 33) % 12
        next_chord = chords[(bar + 1) % len(chords)]
        next_root = 33 + (next_chord[0] - 33) % 12
        approach = next_root + (-1 if rng.random() < 0.6 else 1)
        pitches = {"root": root, "fifth": root + chord[2] - chord[0], "octave": root + 12, "approach": approach}
        for onset, length, role in BASS_FIGURES[figure]:
            velocity = 0.9 if onset % 2 == 0 else 0.75
            events.append(
                Event(
                    _jitter((bar * 8 + onset) * eighth_s, rng, 0.003),
                    length * eighth_s * legato,
                    pitches[role],
                    _humanize(velocity, rng, 0.06),
                )
            )
    return tuple(sorted(events, key=_onset))


def _phrase_rhythm(rng: np.random.Generator, n_eighths: int) -> list[int]:
    """Note lengths in eighths that fill ``n_eighths`` (a melodic rhythm)."""
    lengths: list[int] = []
    while sum(lengths) < n_eighths:
        lengths.append(min(int(rng.choice([1, 1, 2, 2, 2, 3, 4])), n_eighths - sum(lengths)))
    return lengths


def melody_part(
    chords: Sequence[tuple[int, ...]],
    tonic: int,
    mode: str,
    tempo_bpm: float,
    rng: np.random.Generator,
    *,
    low: int = 67,
    high: int = 86,
) -> Pattern:
    """A monophonic lead melody on the scale in two-bar phrases.

    The phrase rhythm usually repeats (so the tune has a motif); pitches follow a stepwise
    random walk on the scale and land on a chord tone on beats 1 and 3.

    Args:
        chords: One chord per bar (MIDI pitches).
        tonic: Pitch class of the key, 0-11.
        mode: ``major`` or ``minor``.
        tempo_bpm: Tempo in quarter notes per minute.
        rng: Source of rhythm and pitch choices.
        low: Lowest MIDI pitch.
        high: Highest MIDI pitch.

    Returns:
        Pattern of non-overlapping notes; only the last note of a phrase leaves a short breath.
    """
    if mode not in SCALES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {tuple(SCALES)}")
    _check_tempo(tempo_bpm, len(chords))
    eighth_s = 30.0 / tempo_bpm
    scale_pitches = [p for p in range(low, high + 1) if (p - tonic) % 12 in SCALES[mode]]
    index = len(scale_pitches) // 2
    motif = _phrase_rhythm(rng, 16)
    events = []
    for phrase_start in range(0, len(chords) * 8, 16):
        rhythm = motif if rng.random() < 0.65 else _phrase_rhythm(rng, 16)
        onset = phrase_start
        for i, length in enumerate(rhythm):
            bar = onset // 8
            if bar >= len(chords):
                break
            index = int(np.clip(index + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, len(scale_pitches) - 1))
            if onset % 4 == 0:  # beats 1 and 3: nearest chord tone
                tones = [j for j, p in enumerate(scale_pitches) if p % 12 in {c % 12 for c in chords[bar]}]
                index = min(tones, key=lambda j: (abs(j - index), j))
            gate = 0.6 if i == len(rhythm) - 1 else 0.95
            events.append(
                Event(
                    _jitter(onset * eighth_s, rng, 0.003),
                    length * eighth_s * gate,
                    scale_pitches[index],
                    _humanize(0.85 if onset % 2 == 0 else 0.7, rng, 0.06),
                )
            )
            onset += length
    return tuple(sorted(events, key=_onset))


def arpeggio_part(
    chords: Sequence[tuple[int, ...]],
    tempo_bpm: float,
    rng: np.random.Generator,
) -> Pattern:
    """Eighth-note up-and-down guitar arpeggios over each bar's chord, notes left ringing.

    Args:
        chords: One chord per bar (MIDI pitches, root first).
        tempo_bpm: Tempo in quarter notes per minute.
        rng: Source of humanisation.

    Returns:
        Pattern with the root in MIDI 45-56 (A2-G#3) and each note ringing for a quarter note.
    """
    _check_tempo(tempo_bpm, len(chords))
    eighth_s = 30.0 / tempo_bpm
    events = []
    for bar, chord in enumerate(chords):
        root = 45 + (chord[0] - 45) % 12
        notes = [root + p - chord[0] for p in chord] + [root + 12]
        order = notes + notes[-2:0:-1]
        for step in range(8):
            events.append(
                Event(
                    _jitter((bar * 8 + step) * eighth_s, rng, 0.003),
                    2 * eighth_s * 0.95,
                    order[step % len(order)],
                    _humanize(0.85 if step == 0 else 0.7, rng, 0.08),
                )
            )
    return tuple(sorted(events, key=_onset))


# --------------------------------------------------------------------------- drum voices


def kick(
    events: Sequence[Event],
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    start_hz: float = 150.0,
    end_hz: float = 45.0,
    sweep_s: float = 0.035,
    decay_s: float = 0.3,
) -> np.ndarray:
    """Kick drum: an exponentially pitch-swept, decaying sine with a short noise click.

    Harder hits sweep from higher (timbre in :data:`VELOCITY_LAYERS` steps) and are louder.

    Args:
        events: Hits; ``duration_s`` and ``pitch`` are ignored.
        n_samples: Length of the output buffer.
        sample_rate: Sample rate in Hz.
        rng: Source of the click noise.
        start_hz: Pitch at the hit (for velocity 1; softer hits sweep from lower).
        end_hz: Pitch the sweep settles to.
        sweep_s: Time constant of the pitch sweep in seconds.
        decay_s: Time constant of the amplitude decay in seconds.

    Returns:
        Mono buffer, shape ``(samples,)``.
    """
    _check_render_args(events, n_samples, sample_rate, pitched=False)
    out = np.zeros(n_samples)
    t = np.arange(round(7.0 * decay_s * sample_rate)) / sample_rate
    steady, per_hz = _sweep_phases(t, end_hz, sweep_s)
    envelope = np.exp(-t / decay_s)
    n_click = round(0.006 * sample_rate)
    click_env = np.exp(-t[:n_click] / 0.0012)
    bodies: dict[float, np.ndarray] = {}  # saturated body per velocity layer
    for event in events:
        v = event.velocity
        layer = _velocity_layer(v)
        if layer not in bodies:
            body = np.sin(steady + (start_hz - end_hz) * (0.75 + 0.25 * layer) * per_hz) * envelope
            bodies[layer] = np.tanh(1.5 * body) / np.tanh(1.5)
        hit = v * bodies[layer]
        hit[:n_click] += 0.3 * v * v * click_env * rng.standard_normal(n_click)
        _add_at(out, _fade(hit, sample_rate, 0.0003, 0.01), event.onset_s, sample_rate)
    return out


def snare(
    events: Sequence[Event],
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    body_hz: float = 200.0,
    decay_s: float = 0.15,
    snappy: float = 0.8,
) -> np.ndarray:
    """Snare drum: a tuned two-mode shell plus band-passed (1.5-10 kHz) noise from the wires.

    Args:
        events: Hits; ``duration_s`` and ``pitch`` are ignored. Soft hits make ghost notes.
        n_samples: Length of the output buffer.
        sample_rate: Sample rate in Hz.
        rng: Source of the wire noise.
        body_hz: Fundamental of the shell (~180-220 Hz); the second mode sits at 1.59x.
        decay_s: Time constant of the wire noise in seconds (the shell decays 3x faster).
        snappy: Level of the wires relative to the shell.

    Returns:
        Mono buffer, shape ``(samples,)``.
    """
    _check_render_args(events, n_samples, sample_rate, pitched=False)
    out = np.zeros(n_samples)
    wires_sos = signal.butter(
        2, [_corner(1500.0, sample_rate), _corner(10000.0, sample_rate)], "bandpass", fs=sample_rate, output="sos"
    )
    t = np.arange(round(7.0 * decay_s * sample_rate)) / sample_rate
    steady, per_hz = _sweep_phases(t, body_hz, 0.008)
    phase = steady + 0.12 * body_hz * per_hz
    shell = (np.sin(phase) + 0.5 * np.sin(1.59 * phase)) * np.exp(-t / (decay_s / 3.0))
    wire_env = np.exp(-t / decay_s)
    for event in events:
        v = event.velocity
        wires = signal.sosfilt(wires_sos, rng.standard_normal(len(t))) * wire_env
        hit = v * (0.8 * shell + snappy * (0.6 + 0.4 * v) * 1.5 * wires)
        _add_at(out, _fade(hit, sample_rate, 0.0003, 0.01), event.onset_s, sample_rate)
    return out


def hihat(
    events: Sequence[Event],
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    cutoff_hz: float = 7000.0,
    decay_ratio: float = 0.4,
) -> np.ndarray:
    """Hi-hat: TR-808 square-wave cluster plus noise, high-passed (4th order) at ``cutoff_hz``.

    Closed and open hats differ only by ``Event.duration_s``: the hat decays with time constant
    ``decay_ratio * duration_s`` and is choked with a 12 ms fade at the end of the gate. Use
    ~0.04-0.07 s for a closed hat and up to the next hat hit for an open one.

    Args:
        events: Hits; ``pitch`` is ignored.
        n_samples: Length of the output buffer.
        sample_rate: Sample rate in Hz.
        rng: Source of the noise and oscillator phases.
        cutoff_hz: High-pass corner in Hz.
        decay_ratio: Decay time constant as a fraction of the gate.

    Returns:
        Mono buffer, shape ``(samples,)``.
    """
    _check_render_args(events, n_samples, sample_rate, pitched=False)
    out = np.zeros(n_samples)
    sos = signal.butter(4, _corner(cutoff_hz, sample_rate), "highpass", fs=sample_rate, output="sos")
    lengths = [round((event.duration_s + 0.012) * sample_rate) for event in events]
    for event, n, metal in zip(events, lengths, _metal_segments(lengths, sample_rate, rng), strict=True):
        t = np.arange(n) / sample_rate
        source = 0.6 * metal + 0.4 * rng.standard_normal(n)
        hit = event.velocity * signal.sosfilt(sos, source) * np.exp(-t / (decay_ratio * event.duration_s))
        _add_at(out, _fade(hit, sample_rate, 0.0002, 0.012), event.onset_s, sample_rate)
    return out


def tom(
    events: Sequence[Event],
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    pitch_hz: float = 120.0,
    decay_s: float = 0.3,
    sweep: float = 0.35,
) -> np.ndarray:
    """Tom: a membrane (modes 1 and 1.59) swept down to ``pitch_hz``, plus a stick click.

    Typical tunings: rack tom ~140-200 Hz, floor tom ~80-110 Hz. Harder hits overshoot more
    (timbre in :data:`VELOCITY_LAYERS` steps) and are louder.

    Args:
        events: Hits; ``duration_s`` and ``pitch`` are ignored.
        n_samples: Length of the output buffer.
        sample_rate: Sample rate in Hz.
        rng: Source of the stick noise.
        pitch_hz: Settled fundamental in Hz.
        decay_s: Amplitude decay time constant in seconds.
        sweep: Relative pitch overshoot at the hit for velocity 1 (0.35 = starts 35 % sharp).

    Returns:
        Mono buffer, shape ``(samples,)``.
    """
    _check_render_args(events, n_samples, sample_rate, pitched=False)
    out = np.zeros(n_samples)
    stick_sos = signal.butter(
        2, [_corner(1000.0, sample_rate), _corner(5000.0, sample_rate)], "bandpass", fs=sample_rate, output="sos"
    )
    t = np.arange(round(7.0 * decay_s * sample_rate)) / sample_rate
    steady, per_hz = _sweep_phases(t, pitch_hz, 0.06)
    envelope = np.exp(-t / decay_s)
    n_mode_2 = round(0.4 * len(t))  # the 1.59x mode decays 2.5x faster: 7 of its time constants
    envelope_2 = 0.3 * np.exp(-t[:n_mode_2] / (0.4 * decay_s))
    n_stick = round(0.03 * sample_rate)
    stick_env = np.exp(-t[:n_stick] / 0.005)
    bodies: dict[float, np.ndarray] = {}  # saturated membrane per velocity layer
    for event in events:
        v = event.velocity
        layer = _velocity_layer(v)
        if layer not in bodies:
            phase = steady + sweep * layer * pitch_hz * per_hz
            body = np.sin(phase) * envelope
            body[:n_mode_2] += np.sin(1.59 * phase[:n_mode_2]) * envelope_2
            bodies[layer] = np.tanh(1.3 * body) / np.tanh(1.3)
        hit = v * bodies[layer]
        hit[:n_stick] += 0.3 * v * stick_env * signal.sosfilt(stick_sos, rng.standard_normal(n_stick))
        _add_at(out, _fade(hit, sample_rate, 0.0003, 0.01), event.onset_s, sample_rate)
    return out


def crash(
    events: Sequence[Event],
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    cutoff_hz: float = 3500.0,
    decay_s: float = 1.0,
) -> np.ndarray:
    """Crash cymbal: detuned square-wave cluster plus noise, high-passed, long decay.

    Args:
        events: Hits; ``duration_s`` and ``pitch`` are ignored.
        n_samples: Length of the output buffer.
        sample_rate: Sample rate in Hz.
        rng: Source of the noise and oscillator phases.
        cutoff_hz: High-pass (2nd order) corner in Hz.
        decay_s: Amplitude decay time constant in seconds.

    Returns:
        Mono buffer, shape ``(samples,)``.
    """
    _check_render_args(events, n_samples, sample_rate, pitched=False)
    out = np.zeros(n_samples)
    sos = signal.butter(2, _corner(cutoff_hz, sample_rate), "highpass", fs=sample_rate, output="sos")
    n = round(6.0 * decay_s * sample_rate)
    envelope = np.exp(-np.arange(n) / (decay_s * sample_rate))
    # A hit that rings past the end of the buffer is only rendered up to it (and faded there).
    lengths = [max(0, min(n, n_samples - round(event.onset_s * sample_rate))) for event in events]
    segments = _metal_segments(lengths, sample_rate, rng, ratio=1.41)
    for event, length, metal in zip(events, lengths, segments, strict=True):
        source = 0.5 * metal + 0.5 * rng.standard_normal(length)
        hit = event.velocity * signal.sosfilt(sos, source) * envelope[:length]
        _add_at(out, _fade(hit, sample_rate, 0.001, 0.05), event.onset_s, sample_rate)
    return out


def _kit_length(kit: Mapping[str, np.ndarray]) -> int:
    if not kit:
        raise ValueError("kit is empty")
    unknown = set(kit) - set(DRUM_PIECES)
    if unknown:
        raise ValueError(f"unknown kit pieces {sorted(unknown)}; expected some of {DRUM_PIECES}")
    lengths = {piece: np.shape(x) for piece, x in kit.items()}
    if len(set(lengths.values())) != 1 or len(next(iter(lengths.values()))) != 1:
        raise ValueError(f"kit pieces must be mono buffers of equal length, got shapes {lengths}")
    return len(next(iter(kit.values())))


def overheads(
    kit: Mapping[str, np.ndarray],
    sample_rate: int,
    rng: np.random.Generator,
    *,
    width: float = 1.0,
    highpass_hz: float = 150.0,
) -> np.ndarray:
    """A spaced stereo overhead pair picking up the whole kit, cymbal-heavy.

    Each piece is placed at a pan position (drummer's perspective: hi-hat left, floor tom
    right, jittered slightly by ``rng``) using both cues a spaced pair captures: the far
    microphone hears it later (0.2 ms + up to 0.8 ms extra) and quieter (up to -6 dB). Kick
    and snare are attenuated relative to the cymbals and the pair is high-passed.

    Args:
        kit: Mono renders, shape ``(samples,)`` each, keyed by names in :data:`DRUM_PIECES`
            (e.g. the outputs of :func:`kick`, :func:`hihat`, :func:`crash`, ...).
        sample_rate: Sample rate in Hz.
        rng: Source of the small placement and level jitter.
        width: Scales every pan position (0 = mono, 1 = natural).
        highpass_hz: 2nd-order high-pass corner in Hz.

    Returns:
        Stereo buffer, shape ``(2, samples)``: left, right.
    """
    n_samples = _kit_length(kit)
    out = np.zeros((2, n_samples))
    for piece, x in kit.items():
        gain, pan = _OVERHEAD_LAYOUT[piece]
        pan = float(np.clip(width * pan + rng.uniform(-0.08, 0.08), -1.0, 1.0))
        gain *= 10.0 ** (rng.uniform(-1.5, 1.5) / 20.0)
        for channel, distance in ((0, max(pan, 0.0)), (1, max(-pan, 0.0))):
            delay = round((0.0002 + 0.0008 * distance) * sample_rate)
            out[channel, delay:] += gain * 10.0 ** (-6.0 * distance / 20.0) * x[: n_samples - delay]
    sos = signal.butter(2, _corner(highpass_hz, sample_rate), "highpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, out, axis=-1)


def room(
    kit: Mapping[str, np.ndarray],
    sample_rate: int,
    rng: np.random.Generator,
    *,
    rt60_s: float = 0.5,
    predelay_s: float = 0.01,
    damping_hz: float = 4000.0,
) -> np.ndarray:
    """A mono room microphone: the kit through a short exponentially decaying noise IR.

    Args:
        kit: Mono renders, shape ``(samples,)`` each, keyed by names in :data:`DRUM_PIECES`.
        sample_rate: Sample rate in Hz.
        rng: Source of the impulse-response noise.
        rt60_s: Reverberation time (60 dB decay) in seconds.
        predelay_s: Gap between the direct sound and the reverberant tail in seconds.
        damping_hz: Low-pass (1st order) corner of the tail, modelling air/wall absorption.

    Returns:
        Mono buffer, shape ``(samples,)``.
    """
    n_samples = _kit_length(kit)
    dry = sum(_ROOM_GAINS[piece] * x for piece, x in kit.items())
    n_tail = round(rt60_s * sample_rate)
    tail = rng.standard_normal(n_tail) * np.exp(-6.91 * np.arange(n_tail) / n_tail)  # -60 dB at rt60
    tail = signal.sosfilt(signal.butter(1, _corner(damping_hz, sample_rate), fs=sample_rate, output="sos"), tail)
    start = round(predelay_s * sample_rate)
    ir = np.zeros(start + n_tail)
    ir[0] = 0.4
    ir[start:] = _fade(tail / np.sqrt(np.sum(tail**2)), sample_rate, 0.002, 0.02)
    return signal.oaconvolve(dry, ir)[:n_samples]


# --------------------------------------------------------------------------- tonal voices


def bass(
    events: Sequence[Event],
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    brightness: float = 3.0,
    brightness_decay_s: float = 0.12,
    drive: float = 1.5,
    release_s: float = 0.03,
) -> np.ndarray:
    """Monophonic 2-operator FM bass (1:1 ratio) whose modulation index decays per note.

    The decaying index acts like a closing low-pass: each note starts saw-bright and settles to
    a round tone (Chowning 1973). A sine modulator on a sine carrier at 1:1 has no DC term.
    Overlapping notes are cut at the next onset (legato, one voice).

    Args:
        events: Notes with MIDI pitches.
        n_samples: Length of the output buffer.
        sample_rate: Sample rate in Hz.
        rng: Source of a small per-note detune (+-2 cents) and brightness spread.
        brightness: Peak modulation index at velocity 1.
        brightness_decay_s: Time constant of the index decay in seconds.
        drive: ``tanh`` saturation amount (odd harmonics only).
        release_s: Fade after the gate in seconds.

    Returns:
        Mono buffer, shape ``(samples,)``.
    """
    _check_render_args(events, n_samples, sample_rate, pitched=True)
    out = np.zeros(n_samples)
    notes = sorted(events, key=_onset)
    for event, length_s in zip(notes, _monophonic_lengths(notes, release_s), strict=True):
        v = event.velocity
        t = np.arange(max(1, round(length_s * sample_rate))) / sample_rate
        f0 = midi_to_hz(event.pitch + 0.02 * rng.standard_normal())
        index = brightness * (0.3 + 0.7 * v) * rng.uniform(0.9, 1.1) * np.exp(-t / brightness_decay_s) + 0.4
        phase = 2.0 * np.pi * f0 * t
        note = np.tanh(drive * np.sin(phase + index * np.sin(phase))) / np.tanh(drive)
        note *= v * np.exp(-t / 2.0)
        _add_at(out, _fade(note, sample_rate, 0.003, min(release_s, length_s / 2)), event.onset_s, sample_rate)
    return out


def keys(
    events: Sequence[Event],
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    decay_s: float = 1.6,
    brightness: float = 0.45,
    tine: float = 0.25,
    release_s: float = 0.08,
    n_partials: int = 6,
) -> np.ndarray:
    """Polyphonic electric piano: harmonic partials whose decay speeds up with partial number.

    Partial ``k`` has amplitude ``(brightness * (0.6 + 0.4 v)) ** (k - 1)`` and decays as
    ``exp(-k t / tau)`` with ``tau = decay_s * sqrt(261.6 Hz / f0)`` (low notes ring longer),
    so the tone darkens as it sustains; a short inharmonic "tine" at 7x ``f0`` marks the attack.
    The note is damped with a raised-cosine release after its gate.

    Args:
        events: Notes with MIDI pitches; notes may overlap (chords).
        n_samples: Length of the output buffer.
        sample_rate: Sample rate in Hz.
        rng: Source of a small per-note detune (+-1.5 cents).
        decay_s: Decay time constant of the fundamental at middle C in seconds.
        brightness: Amplitude ratio between neighbouring partials.
        tine: Level of the attack tine.
        release_s: Damper fade after the gate in seconds.
        n_partials: Number of harmonics (those above 0.45 x ``sample_rate`` are dropped).

    Returns:
        Mono buffer, shape ``(samples,)``.
    """
    _check_render_args(events, n_samples, sample_rate, pitched=True)
    out = np.zeros(n_samples)
    for event in events:
        v = event.velocity
        t = np.arange(round((event.duration_s + release_s) * sample_rate)) / sample_rate
        f0 = midi_to_hz(event.pitch + 0.015 * rng.standard_normal())
        tau = decay_s * math.sqrt(261.63 / f0)
        audible = min(n_partials, math.ceil(0.45 * sample_rate / f0) - 1)
        amplitudes = (brightness * (0.6 + 0.4 * v)) ** np.arange(audible)
        note = _damped_harmonics(len(t), f0 / sample_rate, 1.0 / (tau * sample_rate), amplitudes)
        if 7.0 * f0 < 0.45 * sample_rate:
            n_tine = min(len(t), round(0.1 * sample_rate))
            note[:n_tine] += tine * v * np.sin(2.0 * np.pi * 7.0 * f0 * t[:n_tine]) * np.exp(-t[:n_tine] / 0.015)
        note *= v
        _add_at(out, _fade(note, sample_rate, 0.002, release_s), event.onset_s, sample_rate)
    return out


@numba.njit(cache=True, nogil=True)
def _damped_harmonics(
    n: int, cycles_per_sample: float, decay_per_sample: float, amplitudes: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """``sum_k amplitudes[k] * exp(-(k + 1) d i) * sin(2 pi (k + 1) c i)`` for ``i < n``, shape ``(n,)``.

    Partial ``k + 1`` is the imaginary part of the phasor ``w**i`` with
    ``w = exp((k + 1) (-d + 2 pi j c))``, advanced by one complex multiplication per sample.
    """
    count = len(amplitudes)
    step_re, step_im = np.empty(count), np.empty(count)
    for k in range(count):
        magnitude = math.exp(-(k + 1) * decay_per_sample)
        angle = 2.0 * math.pi * (k + 1) * cycles_per_sample
        step_re[k], step_im[k] = magnitude * math.cos(angle), magnitude * math.sin(angle)
    re, im = np.ones(count), np.zeros(count)
    out = np.empty(n)
    for i in range(n):
        acc = 0.0
        for k in range(count):
            acc += amplitudes[k] * im[k]
            re[k], im[k] = re[k] * step_re[k] - im[k] * step_im[k], re[k] * step_im[k] + im[k] * step_re[k]
        out[i] = acc
    return out


@numba.njit(cache=True, nogil=True)
def _string_loop(excitation: np.ndarray, delay: int, c: float, g: float) -> np.ndarray:  # pragma: no cover - compiled
    """The Karplus-Strong loop of :func:`pluck` as a sparse recursion, shape ``(samples,)``.

    ``Y (1 + c z^-1) = X (1 + c z^-1) + g/2 (c + (1 + c) z^-1 + z^-2) z^-delay Y``: the
    same filter as ``lfilter([1, c], a, x)`` with ``a`` of length ``delay + 3``, at five
    multiply-adds per sample instead of ``delay + 3``.
    """
    y = np.zeros(len(excitation))
    half_g = 0.5 * g
    for n in range(len(y)):
        acc = excitation[n]
        if n >= 1:
            acc += c * (excitation[n - 1] - y[n - 1])
        if n >= delay:
            acc += half_g * c * y[n - delay]
        if n >= delay + 1:
            acc += half_g * (1.0 + c) * y[n - delay - 1]
        if n >= delay + 2:
            acc += half_g * y[n - delay - 2]
        y[n] = acc
    return y


def pluck(
    events: Sequence[Event],
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    decay_s: float = 1.5,
    brightness: float = 0.6,
    pick_position: float = 0.18,
    release_s: float = 0.06,
) -> np.ndarray:
    """Plucked guitar string by Karplus-Strong (Karplus & Strong 1983; Jaffe & Smith 1983).

    The string loop ``y[n] = x[n] + g * A(y)[n - N]`` with a two-point average and a first-order
    all-pass ``A`` for fine tuning (loop delay ``N + 0.5 + d`` = one period) is a single IIR
    filter with five non-zero taps, run by a compiled loop (:func:`_string_loop`). The excitation
    is one period of noise, low-passed by brightness and velocity and comb-filtered at the pick
    position.

    Args:
        events: Notes with MIDI pitches; notes may overlap (strings ring together). Pitches
            above ``sample_rate / 4`` are rejected.
        n_samples: Length of the output buffer.
        sample_rate: Sample rate in Hz.
        rng: Source of the excitation noise.
        decay_s: 60 dB decay time at 196 Hz (G3) in seconds; scales with ``sqrt(196 / f0)``.
        brightness: 0..1, openness of the pick (higher = brighter attack).
        pick_position: Pick distance from the bridge as a fraction of the string length.
        release_s: Fret-hand mute after the gate in seconds.

    Returns:
        Mono buffer, shape ``(samples,)``.
    """
    _check_render_args(events, n_samples, sample_rate, pitched=True)
    out = np.zeros(n_samples)
    for event in events:
        v = event.velocity
        f0 = float(midi_to_hz(event.pitch))
        period = sample_rate / f0
        if period < 4.0:
            raise ValueError(f"pitch {event.pitch} is too high for pluck at {sample_rate} Hz")
        delay = int(period - 0.6)
        frac = period - 0.5 - delay  # all-pass delay in [0.1, 1.1): stable and well tuned
        c = (1.0 - frac) / (1.0 + frac)
        g = 10.0 ** (-3.0 / (f0 * decay_s * math.sqrt(196.0 / f0)))
        pole = 1.0 - 0.9 * brightness * (0.5 + 0.5 * v)
        burst = signal.lfilter([1.0 - pole], [1.0, -pole], rng.standard_normal(delay))
        burst -= np.roll(burst, max(1, round(pick_position * delay)))
        burst -= burst.mean()
        excitation = np.zeros(round((event.duration_s + release_s) * sample_rate))
        n_burst = min(delay, len(excitation))
        excitation[:n_burst] = v * burst[:n_burst] / np.max(np.abs(burst))
        note = _string_loop(excitation, delay, c, g)
        _add_at(out, _fade(note, sample_rate, 0.0005, release_s), event.onset_s, sample_rate)
    return out


def lead(
    events: Sequence[Event],
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    vibrato_hz: float = 5.5,
    vibrato_cents: float = 18.0,
    detune_cents: float = 8.0,
    cutoff_hz: float = 3500.0,
    glide_s: float = 0.04,
    release_s: float = 0.04,
) -> np.ndarray:
    """Monophonic lead synth: two detuned band-limited saws, delayed vibrato, glide, low-pass.

    Legato notes (starting within 20 ms of the previous gate end) glide from the previous
    pitch. Vibrato fades in between 0.12 and 0.37 s into a note.

    Args:
        events: Notes with MIDI pitches; overlapping notes are cut at the next onset.
        n_samples: Length of the output buffer.
        sample_rate: Sample rate in Hz.
        rng: Source of the free-running phase of the second oscillator and the vibrato phase.
        vibrato_hz: Vibrato rate in Hz.
        vibrato_cents: Vibrato depth in cents (peak).
        detune_cents: Spread between the two oscillators in cents.
        cutoff_hz: 2nd-order low-pass corner in Hz.
        glide_s: Portamento time constant in seconds.
        release_s: Fade after the gate in seconds.

    Returns:
        Mono buffer, shape ``(samples,)``.
    """
    _check_render_args(events, n_samples, sample_rate, pitched=True)
    out = np.zeros(n_samples)
    notes = sorted(events, key=_onset)
    previous: Event | None = None
    for event, length_s in zip(notes, _monophonic_lengths(notes, release_s), strict=True):
        t = np.arange(max(1, round(length_s * sample_rate))) / sample_rate
        pitch = np.full(len(t), float(event.pitch))
        if previous is not None and event.onset_s - (previous.onset_s + previous.duration_s) < 0.02:
            pitch += (previous.pitch - event.pitch) * np.exp(-t / glide_s)
        depth = vibrato_cents / 100.0 * np.clip((t - 0.12) / 0.25, 0.0, 1.0)
        pitch += depth * np.sin(2.0 * np.pi * vibrato_hz * t + rng.uniform(0.0, 2.0 * np.pi))
        cycles = midi_to_hz(pitch) / sample_rate
        spread = 2.0 ** (detune_cents / 2400.0)
        note = 0.5 * (_polyblep_saw(cycles * spread, 0.5) + _polyblep_saw(cycles / spread, rng.uniform()))
        note *= event.velocity * (0.8 + 0.2 * np.exp(-t / 0.1))
        _add_at(out, _fade(note, sample_rate, 0.008, min(release_s, length_s / 2)), event.onset_s, sample_rate)
        previous = event
    sos = signal.butter(2, _corner(cutoff_hz, sample_rate), "lowpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, out)
