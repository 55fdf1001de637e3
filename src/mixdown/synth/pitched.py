"""Pitched voices: FM bass, electric piano, plucked string and lead synth.

Each voice follows the contract of `mixdown.synth.voice` and plays events with MIDI pitches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np
from scipy import signal

from mixdown.synth.voice import Event, add_at, by_onset, check_render_args, corner, fade, midi_to_hz


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
    check_render_args(events, n_samples, sample_rate, pitched=True)
    out = np.zeros(n_samples)
    notes = sorted(events, key=by_onset)
    for event, length_s in zip(notes, _monophonic_lengths(notes, release_s), strict=True):
        v = event.velocity
        t = np.arange(max(1, round(length_s * sample_rate))) / sample_rate
        f0 = midi_to_hz(event.pitch + 0.02 * rng.standard_normal())
        index = brightness * (0.3 + 0.7 * v) * rng.uniform(0.9, 1.1) * np.exp(-t / brightness_decay_s) + 0.4
        phase = 2.0 * np.pi * f0 * t
        note = np.tanh(drive * np.sin(phase + index * np.sin(phase))) / np.tanh(drive)
        note *= v * np.exp(-t / 2.0)
        add_at(out, fade(note, sample_rate, 0.003, min(release_s, length_s / 2)), event.onset_s, sample_rate)
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
    check_render_args(events, n_samples, sample_rate, pitched=True)
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
        add_at(out, fade(note, sample_rate, 0.002, release_s), event.onset_s, sample_rate)
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
    check_render_args(events, n_samples, sample_rate, pitched=True)
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
        add_at(out, fade(note, sample_rate, 0.0005, release_s), event.onset_s, sample_rate)
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
    check_render_args(events, n_samples, sample_rate, pitched=True)
    out = np.zeros(n_samples)
    notes = sorted(events, key=by_onset)
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
        add_at(out, fade(note, sample_rate, 0.008, min(release_s, length_s / 2)), event.onset_s, sample_rate)
        previous = event
    sos = signal.butter(2, corner(cutoff_hz, sample_rate), "lowpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, out)
