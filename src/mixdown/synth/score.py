"""Score helpers: the parts of a synthetic song as :data:`~mixdown.synth.voice.Pattern` s.

Drum grooves with humanised velocities, ghost notes and tom fills (:func:`drum_groove`),
diatonic chord progressions (:func:`chord_progression`), keyboard comping
(:func:`comping_part`), a bass line on the chord roots (:func:`bass_part`), a lead melody on
the scale (:func:`melody_part`) and guitar arpeggios (:func:`arpeggio_part`). The voices of
`mixdown.synth.drums` and `mixdown.synth.pitched` render them.

All randomness comes from the ``np.random.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixdown.synth.voice import DRUM_PIECES, Event, Pattern, by_onset

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
        patterns[piece] = tuple(sorted(events, key=by_onset))
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
    return tuple(sorted(events, key=by_onset))


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
    return tuple(sorted(events, key=by_onset))


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
    return tuple(sorted(events, key=by_onset))


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
    return tuple(sorted(events, key=by_onset))
