"""Drum voices: kick, snare, hi-hat, toms and crash, and the overhead and room microphones.

Each voice follows the contract of `mixdown.synth.voice`; :func:`overheads` and :func:`room`
pick up a rendered kit (the outputs of the other voices, keyed by
:data:`~mixdown.synth.voice.DRUM_PIECES`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import signal

from mixdown.synth.voice import DRUM_PIECES, Event, add_at, check_render_args, corner, fade

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
    check_render_args(events, n_samples, sample_rate, pitched=False)
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
        add_at(out, fade(hit, sample_rate, 0.0003, 0.01), event.onset_s, sample_rate)
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
    check_render_args(events, n_samples, sample_rate, pitched=False)
    out = np.zeros(n_samples)
    wires_sos = signal.butter(
        2, [corner(1500.0, sample_rate), corner(10000.0, sample_rate)], "bandpass", fs=sample_rate, output="sos"
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
        add_at(out, fade(hit, sample_rate, 0.0003, 0.01), event.onset_s, sample_rate)
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
    check_render_args(events, n_samples, sample_rate, pitched=False)
    out = np.zeros(n_samples)
    sos = signal.butter(4, corner(cutoff_hz, sample_rate), "highpass", fs=sample_rate, output="sos")
    lengths = [round((event.duration_s + 0.012) * sample_rate) for event in events]
    for event, n, metal in zip(events, lengths, _metal_segments(lengths, sample_rate, rng), strict=True):
        t = np.arange(n) / sample_rate
        source = 0.6 * metal + 0.4 * rng.standard_normal(n)
        hit = event.velocity * signal.sosfilt(sos, source) * np.exp(-t / (decay_ratio * event.duration_s))
        add_at(out, fade(hit, sample_rate, 0.0002, 0.012), event.onset_s, sample_rate)
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
    check_render_args(events, n_samples, sample_rate, pitched=False)
    out = np.zeros(n_samples)
    stick_sos = signal.butter(
        2, [corner(1000.0, sample_rate), corner(5000.0, sample_rate)], "bandpass", fs=sample_rate, output="sos"
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
        add_at(out, fade(hit, sample_rate, 0.0003, 0.01), event.onset_s, sample_rate)
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
    check_render_args(events, n_samples, sample_rate, pitched=False)
    out = np.zeros(n_samples)
    sos = signal.butter(2, corner(cutoff_hz, sample_rate), "highpass", fs=sample_rate, output="sos")
    n = round(6.0 * decay_s * sample_rate)
    envelope = np.exp(-np.arange(n) / (decay_s * sample_rate))
    # A hit that rings past the end of the buffer is only rendered up to it (and faded there).
    lengths = [max(0, min(n, n_samples - round(event.onset_s * sample_rate))) for event in events]
    segments = _metal_segments(lengths, sample_rate, rng, ratio=1.41)
    for event, length, metal in zip(events, lengths, segments, strict=True):
        source = 0.5 * metal + 0.5 * rng.standard_normal(length)
        hit = event.velocity * signal.sosfilt(sos, source) * envelope[:length]
        add_at(out, fade(hit, sample_rate, 0.001, 0.05), event.onset_s, sample_rate)
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
    sos = signal.butter(2, corner(highpass_hz, sample_rate), "highpass", fs=sample_rate, output="sos")
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
    tail = signal.sosfilt(signal.butter(1, corner(damping_hz, sample_rate), fs=sample_rate, output="sos"), tail)
    start = round(predelay_s * sample_rate)
    ir = np.zeros(start + n_tail)
    ir[0] = 0.4
    ir[start:] = fade(tail / np.sqrt(np.sum(tail**2)), sample_rate, 0.002, 0.02)
    return signal.oaconvolve(dry, ir)[:n_samples]
