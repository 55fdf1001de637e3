"""Build a listening-test folder from a `ListeningTestConfig`.

Per song: every condition is loaded (audio files) or mixed (a method's `predict` on the
song's stems, rendered by `mixdown.console.render`); the conditions must share a sample
rate and length. Anchors are derived from the reference; then every condition is cut to
the excerpt, faded and loudness-matched to the target (BS.1770-4 integrated, the console's
meter). The folder is written atomically: on any error nothing is left behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mixdown.audio import as_stereo, atomic_write_text, load_audio, write_audio
from mixdown.errors import MixdownError
from mixdown.listening.config import ConditionSource, ListeningTestConfig, SongConfig
from mixdown.listening.manifest import AUDIO_DIR, MANIFEST_NAME, Manifest, Role, SongStimuli, atomic_dir
from mixdown.listening.stimuli import cut_excerpt, make_anchor, match_loudness

ProgressCallback = Callable[[int, int], None]
"""Called with ``(conditions_done, conditions_total)``."""


def build_test(config: ListeningTestConfig, output_dir: str | os.PathLike,
               progress: ProgressCallback | None = None) -> Manifest:
    """Write a test folder: excerpts of every song and condition, and the manifest.

    Args:
        config: The test.
        output_dir: Folder to create (must not exist, or be empty).
        progress: Optional callback, called after each condition of each song.

    Returns:
        The manifest written to ``output_dir / test.json``.

    Raises:
        MixdownError: If an audio file is missing or unreadable, a song's conditions
            differ in rate or length, the excerpt runs past a song's end, or an excerpt
            would clip at the target loudness.
    """
    total = len(config.songs) * len(config.conditions)
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    with atomic_dir(output_dir) as tmp:
        songs = [_build_song(config, song, tmp, step) for song in config.songs]
        roles: dict[str, Role] = {name: "test" for name in config.conditions}
        roles[config.reference] = "reference"
        roles.update({anchor.name: "anchor" for anchor in config.anchors})
        manifest = Manifest(name=config.name, instructions=config.instructions, seed=config.seed,
                            target_lufs=config.target_lufs, conditions=config.conditions, roles=roles,
                            songs=tuple(songs), test_type=config.type, repeats=config.repeats,
                            mid_anchor=config.mid_anchor)
        atomic_write_text(tmp / MANIFEST_NAME, manifest.to_json())
    return manifest


def load_conditions(song: SongConfig) -> tuple[dict[str, np.ndarray], int]:
    """Every condition of a song, whole and stereo.

    Method conditions are rendered from the song's stems, resampled to the rate of the
    file conditions where there are any.

    Args:
        song: The song.

    Returns:
        ``({condition: audio}, sample_rate)``, audio float32 ``(2, samples)``.

    Raises:
        MixdownError: If a file is missing or unreadable, or the conditions differ in
            sample rate or length.
    """
    audio: dict[str, np.ndarray] = {}
    rates: dict[str, int] = {}
    for name, source in song.conditions.items():
        if source.file is not None:
            try:
                audio[name], rates[name] = load_audio(source.file)
            except MixdownError as exc:
                raise MixdownError(f"song {song.name!r}, condition {name!r}: {exc}") from None
    if len(set(rates.values())) > 1:
        listed = ", ".join(f"{name} {rate} Hz" for name, rate in rates.items())
        raise MixdownError(f"song {song.name!r}: conditions differ in sample rate ({listed}); "
                           "give every condition at one rate")
    rate = next(iter(rates.values()), None)
    methods = {name: source for name, source in song.conditions.items() if source.method is not None}
    if methods:
        rendered, rate = _render_methods(song, methods, rate)
        audio.update(rendered)
    lengths = {name: signal.shape[-1] for name, signal in audio.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} {n / rate:.3f} s ({n} samples)" for name, n in lengths.items())
        raise MixdownError(f"song {song.name!r}: conditions differ in length ({listed}); "
                           "they must be time-aligned renders of the same song")
    stereo = {name: as_stereo(signal)
              for name, signal in audio.items()}
    return {name: stereo[name] for name in song.conditions}, rate


def _render_methods(song: SongConfig, methods: dict[str, ConditionSource],
                    sample_rate: int | None) -> tuple[dict[str, np.ndarray], int]:
    from mixdown.api import mix
    from mixdown.multitrack import load_multitrack

    try:
        multitrack = load_multitrack(song.stems, sample_rate=sample_rate)
    except MixdownError as exc:
        raise MixdownError(f"song {song.name!r}: {exc}") from None
    rendered = {}
    for name, source in methods.items():
        rendered[name] = mix(multitrack, source.method, seed=source.seed).mix
    return rendered, multitrack.sample_rate


def _build_song(config: ListeningTestConfig, song: SongConfig, test_dir: Path,
                step: Callable[[], None]) -> SongStimuli:
    whole, rate = load_conditions(song)
    length_s = next(iter(whole.values())).shape[-1] / rate
    if song.start_s + config.excerpt_s > length_s + 1e-9:
        raise MixdownError(f"song {song.name!r}: the excerpt (start_s {song.start_s:g} + excerpt_s "
                           f"{config.excerpt_s:g} s) runs past the song's end ({length_s:.3f} s)")
    for anchor in config.anchors:
        if anchor.lowpass_hz is not None and anchor.lowpass_hz >= rate / 2:
            raise MixdownError(f"anchor {anchor.name!r}: lowpass_hz {anchor.lowpass_hz:g} is not below "
                               f"Nyquist ({rate / 2:g} Hz) for song {song.name!r}")
        whole[anchor.name] = make_anchor(whole[config.reference], rate, anchor.lowpass_hz, anchor.mono)
    files, source_lufs = {}, {}
    for name in config.conditions:
        excerpt = cut_excerpt(whole[name], rate, song.start_s, config.excerpt_s, config.fade_ms)
        try:
            matched, source_lufs[name] = match_loudness(excerpt, rate, config.target_lufs)
        except MixdownError as exc:
            raise MixdownError(f"song {song.name!r}, condition {name!r}: {exc}") from None
        peak = float(np.max(np.abs(matched)))
        if peak > 1.0:
            over_db = 20.0 * np.log10(peak)
            raise MixdownError(f"song {song.name!r}, condition {name!r}: at {config.target_lufs:g} LUFS the "
                               f"excerpt peaks at +{over_db:.1f} dBFS and would clip; lower target_lufs to "
                               f"{np.floor((config.target_lufs - over_db) * 10) / 10:g} or less")
        relative = f"{AUDIO_DIR}/{song.name}/{name}.wav"
        (test_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        write_audio(test_dir / relative, matched, rate)
        files[name] = relative
        step()
    return SongStimuli(name=song.name, sample_rate=rate, start_s=song.start_s, duration_s=config.excerpt_s,
                       files=files, source_lufs=source_lufs)
