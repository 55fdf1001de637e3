"""The demo synth (`mixdown.synth.demo`): determinism, levels, stem independence, timing."""

from __future__ import annotations

import numpy as np
import pytest

from mixdown.synth.demo import (
    AVAILABLE_STEMS,
    DEMO_DURATION_S,
    DEMO_STEMS,
    MIN_FULL_DURATION_S,
    compose_song,
    demo_multitrack_arrays,
    synthesize_song,
)

SR = 8000
SECONDS = MIN_FULL_DURATION_S


@pytest.fixture(scope="module")
def song() -> dict[str, np.ndarray]:
    """Every available stem of song 7."""
    return synthesize_song(7, SR, SECONDS, stems=AVAILABLE_STEMS)


def test_same_seed_gives_bit_identical_stems(song):
    again = synthesize_song(7, SR, SECONDS, stems=AVAILABLE_STEMS)
    assert list(again) == list(song)
    for name in song:
        assert again[name].dtype == np.float32
        np.testing.assert_array_equal(again[name], song[name], err_msg=name)


def test_different_seeds_give_different_songs(song):
    scores = {seed: compose_song(seed, SECONDS) for seed in range(6)}
    summaries = {(s.tempo_bpm, s.tonic, s.mode, s.progression, s.groove) for s in scores.values()}
    assert len(summaries) == len(scores)
    other = synthesize_song(8, SR, SECONDS, stems=AVAILABLE_STEMS)
    for name in song:
        assert not np.allclose(other[name], song[name], atol=1e-3), name


@pytest.mark.parametrize("seed", range(4))
def test_every_stem_peaks_in_its_level_range_without_clipping_or_silence(seed):
    stems = synthesize_song(seed, SR, SECONDS, stems=AVAILABLE_STEMS)
    for name, audio in stems.items():
        peak = float(np.abs(audio).max())
        assert 10 ** (-12 / 20) - 1e-6 <= peak <= 10 ** (-3 / 20) + 1e-6 < 1.0, (name, peak)
        audible = np.mean(np.abs(audio) > 1e-3 * peak)
        assert audible > 0.01, (name, audible)  # more than a click


def test_a_stem_is_the_same_whichever_other_stems_are_requested(song):
    for name in AVAILABLE_STEMS:
        alone = synthesize_song(7, SR, SECONDS, stems=(name,))
        np.testing.assert_array_equal(alone[name], song[name], err_msg=name)
    reordered = synthesize_song(7, SR, SECONDS, stems=("room", "bass"), extra=("tom_1",))
    for name, audio in reordered.items():
        np.testing.assert_array_equal(audio, song[name], err_msg=name)


def _first_hit_s(audio: np.ndarray, sample_rate: int) -> float:
    """Time of the first sample above half the peak (skips ghost notes)."""
    envelope = np.abs(audio).max(axis=0)
    return int(np.argmax(envelope > 0.5 * envelope.max())) / sample_rate


@pytest.mark.parametrize(("sample_rate", "seconds"), [(22050, 3.25), (32000, 3.0), (48000, 4.0)])
def test_duration_and_sample_rate_are_honoured(sample_rate, seconds):
    stems = synthesize_song(3, sample_rate, seconds, stems=("kick", "snare", "tom_2", "overhead"))
    for name, audio in stems.items():
        assert audio.shape == ((2 if name == "overhead" else 1), round(seconds * sample_rate)), name
    # the score is in seconds: hits land at the same times whatever the rate (16 kHz keeps
    # the snare's noise band that 8 kHz would cut, which would move its half-peak point)
    reference = synthesize_song(3, 16000, seconds, stems=("kick", "snare", "tom_2"))
    for name, audio in reference.items():
        assert _first_hit_s(stems[name], sample_rate) == pytest.approx(_first_hit_s(audio, 16000), abs=1e-3), name


def test_bundled_demo_is_the_documented_multitrack():
    arrays = demo_multitrack_arrays(SR)
    assert tuple(arrays) == DEMO_STEMS
    for name, audio in arrays.items():
        assert audio.shape == ((2 if name == "overhead" else 1), round(DEMO_DURATION_S * SR)), name


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stems": ("kick", "cowbell")},
        {"stems": ("kick", "kick")},
        {"stems": ("kick",), "extra": ("kick",)},
        {"sample_rate": 4000},
        {"sample_rate": 44100.0},
        {"seed": -1},
        {"duration_s": 0.0},
    ],
)
def test_bad_arguments_are_refused(kwargs):
    kwargs = {"seed": 0, "sample_rate": SR, "duration_s": SECONDS, **kwargs}
    with pytest.raises(ValueError):
        synthesize_song(**kwargs)
