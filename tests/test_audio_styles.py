"""The audio-driven synthetic engineer (`mixdown.synth.audio_styles`): decisions from the audio alone.

Known answers for the stem description, independence from names, classes and the rules'
table, and the decisions the module docstring states (low stems centred, high-pass under
a stem's own lowest energy, masking carved)."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from mixdown.errors import MixdownError
from mixdown.multitrack import Multitrack
from mixdown.params import STANDARD_EQ
from mixdown.synth import audio_styles
from mixdown.synth.audio_styles import CENTRE_BELOW_HZ, describe, sample_audio_style_params
from mixdown.synth.synthetic import SynthConfig, generate_song

SR = 22050


def _tone(freq_hz: float, seconds: float = 2.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq_hz * t))[None].astype(np.float32)


def _noise_band(lo_hz: float, hi_hz: float, seed: int, seconds: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(int(seconds * SR)))
    freqs = np.fft.rfftfreq(int(seconds * SR), 1 / SR)
    spectrum[(freqs < lo_hz) | (freqs > hi_hz)] = 0
    x = np.fft.irfft(spectrum, int(seconds * SR))
    return (0.2 * x / np.abs(x).max())[None].astype(np.float32)


def test_description_of_a_sine_known_answers():
    d = describe(_tone(1000.0), SR)
    assert d.centroid_hz == pytest.approx(1000.0, rel=0.02)
    assert d.crest_db == pytest.approx(20 * np.log10(np.sqrt(2)), abs=0.05)  # 3.01 dB
    assert d.rms_db == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.05)
    assert d.transient_db == pytest.approx(0.0, abs=0.1)  # steady
    assert np.argmax(d.band_share) == 2 and d.band_share[2] > 0.99  # the 400-1200 Hz band


def _band() -> Multitrack:
    return Multitrack.from_arrays({"low": _tone(60.0), "mid_a": _noise_band(500, 2000, 1),
                                   "mid_b": _noise_band(600, 2500, 2), "air": _noise_band(4000, 9000, 3)}, SR)


def test_settings_do_not_depend_on_names_or_classes():
    band = _band()
    renamed = Multitrack.from_arrays(dict(zip(["kick", "vocal", "bass", "hihat"],
                                              (band.stem_audio(i) for i in range(4)), strict=True)), SR)
    assert renamed.instruments != band.instruments
    a = sample_audio_style_params(band, np.random.default_rng(3))
    b = sample_audio_style_params(renamed, np.random.default_rng(3))
    for x, y in zip(a.channels, b.channels, strict=True):
        assert (x.gain_db, x.pan, x.eq, x.compressor, x.reverb_send_db) == (y.gain_db, y.pan, y.eq, y.compressor,
                                                                              y.reverb_send_db)


def test_the_generator_never_reads_the_rules_table():
    tree = ast.parse(inspect.getsource(audio_styles))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert "mixdown.class_rules" not in imported and "RULES" not in names and "instrument" not in {
        node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}


@pytest.mark.parametrize("seed", range(6))
def test_stated_decisions_hold_for_every_style(seed):
    band = _band()
    params = sample_audio_style_params(band, np.random.default_rng(seed))
    low, mid_a, mid_b, air = params.channels
    assert [b.type for b in low.eq] == list(STANDARD_EQ)
    assert abs(low.pan) <= 0.2  # centroid 60 Hz < CENTRE_BELOW_HZ: centred
    assert describe(band.stem_audio(0), SR).centroid_hz < CENTRE_BELOW_HZ
    assert np.sign(mid_a.pan) == -np.sign(mid_b.pan) != 0  # neighbours in spectrum on opposite sides
    # High-pass under each stem's lowest energy (1 % frequency x 0.4-0.9), at most 400 Hz.
    assert low.eq[0].freq_hz < 60.0 < 200.0 <= mid_a.eq[0].freq_hz <= air.eq[0].freq_hz == pytest.approx(400.0)
    assert abs(air.pan) >= abs(mid_a.pan) * 0.7  # brighter stems wider (up to the drawn jitter)
    assert mid_a.eq[2].gain_db < 0.75 * 3 or mid_b.eq[2].gain_db < 0.75 * 3  # bells cut (noise sd 0.75 dB)


def test_synthetic_songs_choose_their_generator():
    config = SynthConfig(seed=4, sample_rate=SR, duration_s=4.0, min_stems=3, max_stems=4, targets="audio-styles")
    song = generate_song(0, config)
    again = generate_song(0, config)
    assert song.params.method == "synthetic:audio-styles" and song.params == again.params
    assert np.array_equal(song.mix, again.mix)
    with pytest.raises(MixdownError, match="targets must be one of class-table, audio-styles"):
        SynthConfig(targets="rules")
