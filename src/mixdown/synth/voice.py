"""Notes, and what every synthesized voice shares.

A score is a set of :data:`Pattern` s, time-ordered tuples of :class:`Event` (built by
`mixdown.synth.score`). A voice (`mixdown.synth.drums`, `mixdown.synth.pitched`) renders a
pattern into a new float64 buffer; every voice is a pure function
``voice(events, n_samples, sample_rate, rng, **sound_params)`` returning shape
``(samples,)``, except `mixdown.synth.drums.overheads` which returns ``(2, samples)``.
Voices never clip, fade every note in and out (no clicks, :func:`fade`) and are not
level-normalised: levels are of order 1 and sum where notes overlap (:func:`add_at`).

All randomness comes from the ``np.random.Generator`` passed in; the same generator state and
arguments give bit-identical output. Voices work at any sample rate; filter corners above
0.45 x ``sample_rate`` are pulled down to it (:func:`corner`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


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
"""Kit pieces produced by `mixdown.synth.score.drum_groove` and understood by the overhead and
room microphones of `mixdown.synth.drums`."""


def midi_to_hz(pitch: float | np.ndarray) -> float | np.ndarray:
    """Equal-tempered frequency of a MIDI pitch (69 = A4 = 440 Hz); fractional pitches allowed."""
    return 440.0 * np.exp2((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def check_render_args(events: Sequence[Event], n_samples: int, sample_rate: int, pitched: bool) -> None:
    """Raise ``ValueError`` unless a voice's arguments are usable (``pitched``: every event has a pitch)."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    for event in events:
        if event.onset_s < 0 or event.duration_s <= 0 or not 0.0 <= event.velocity <= 1.0:
            raise ValueError(f"bad event {event}: need onset_s >= 0, duration_s > 0, 0 <= velocity <= 1")
        if pitched and event.pitch is None:
            raise ValueError(f"pitched voice got an event without pitch: {event}")


def corner(hz: float, sample_rate: int) -> float:
    """Clamp a filter corner below Nyquist."""
    return min(hz, 0.45 * sample_rate)


def _ramp(n: int) -> np.ndarray:
    """Raised-cosine ramp from ~0 to ~1 over ``n`` samples."""
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)


def fade(x: np.ndarray, sample_rate: int, in_s: float, out_s: float) -> np.ndarray:
    """Apply raised-cosine fades in place to a voice-owned 1-D buffer and return it."""
    n_in = min(len(x), max(1, round(in_s * sample_rate)))
    n_out = min(len(x), max(1, round(out_s * sample_rate)))
    x[:n_in] *= _ramp(n_in)
    x[len(x) - n_out :] *= _ramp(n_out)[::-1]
    return x


def add_at(out: np.ndarray, sound: np.ndarray, onset_s: float, sample_rate: int) -> None:
    """Mix ``sound`` into ``out`` at ``onset_s``; a sound cut by the buffer end gets a 5 ms fade."""
    start = round(onset_s * sample_rate)
    n = min(len(sound), len(out) - start)
    if n <= 0:
        return
    if n < len(sound):
        sound = fade(sound[:n].copy(), sample_rate, 0.0, 0.005)
    out[start : start + n] += sound


def by_onset(event: Event) -> float:
    """Sort key: the event's onset."""
    return event.onset_s
