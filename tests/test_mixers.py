"""Baselines and the rule-based mixer: each rule checked on the settings it produces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixdown.class_rules import MAX_PAN, RULES
from mixdown.console import ConsoleTensors, channel_strips
from mixdown.dsp.loudness import integrated_loudness
from mixdown.errors import MixdownError
from mixdown.mixers import METHODS, get_method
from mixdown.multitrack import Multitrack

SR = 22050


@pytest.fixture(scope="module")
def band() -> Multitrack:
    """A drum kit and band of noise-like stems with deliberately uneven levels."""
    rng = np.random.default_rng(0)
    n = 2 * SR
    names = ["kick", "snare", "hihat", "tom_1", "tom_2", "tom_3", "bass", "gtr_a", "gtr_b", "keys", "lead_vocal"]
    arrays = {name: (rng.standard_normal((1, n)) * rng.uniform(0.01, 0.3)).astype(np.float32) for name in names}
    arrays["overheads"] = (rng.standard_normal((2, n)) * 0.05).astype(np.float32)
    arrays["oh_L"] = (rng.standard_normal((1, n)) * 0.05).astype(np.float32)
    arrays["oh_R"] = (rng.standard_normal((1, n)) * 0.05).astype(np.float32)
    return Multitrack.from_arrays(arrays, SR)


def _post_fader_loudness(multitrack: Multitrack, params) -> dict[str, float]:
    p = ConsoleTensors.from_params([params.ordered_like(multitrack.names)])
    with torch.no_grad():
        panned, _ = channel_strips(torch.from_numpy(multitrack.to_array())[None], p,
                                   torch.from_numpy(multitrack.stereo_mask())[None], SR)
    loudness = integrated_loudness(panned[0], SR)
    return dict(zip(multitrack.names, loudness.tolist()))


def test_rules_balance_loudness_by_class(band):
    params = get_method("rules").predict(band)
    loudness = _post_fader_loudness(band, params)
    reference = loudness["kick"] - RULES["kick"].level_lu
    for name, instrument in zip(band.names, band.instruments):
        assert loudness[name] - reference == pytest.approx(RULES[instrument].level_lu, abs=0.1), name


def test_rules_pan_focal_sources_centre_and_spread_the_rest(band):
    params = get_method("rules").predict(band)
    pan = {ch.name: ch.pan for ch in params.channels}
    for name in ("kick", "snare", "bass", "lead_vocal", "overheads"):
        assert pan[name] == 0.0, name
    assert pan["hihat"] < 0  # drummer's perspective
    assert pan["tom_1"] < pan["tom_2"] < pan["tom_3"]
    assert pan["oh_L"] == -MAX_PAN and pan["oh_R"] == MAX_PAN
    assert pan["gtr_a"] * pan["gtr_b"] < 0  # a pair of guitars parts ways
    assert all(abs(p) <= MAX_PAN for p in pan.values())


def test_rules_highpass_everything_but_kick_and_bass(band):
    params = get_method("rules").predict(band)
    for ch in params.channels:
        has_highpass = any(b.type == "highpass" for b in ch.eq)
        assert has_highpass == (ch.instrument not in ("kick", "bass")), ch.name


def test_rules_reverb_spares_the_low_end(band):
    params = get_method("rules").predict(band)
    sends = {ch.instrument: ch.reverb_send_db for ch in params.channels}
    assert sends["kick"] is None and sends["bass"] is None
    assert sends["vocal"] is not None and sends["snare"] is not None


def test_rules_compress_gently_below_the_peak(band):
    params = get_method("rules").predict(band)
    for i, ch in enumerate(params.channels):
        if ch.compressor is None:
            continue
        peak_db = 20 * np.log10(np.abs(band.stem_audio(i)).max())
        assert ch.compressor.ratio <= 4.0
        assert ch.compressor.threshold_db == pytest.approx(peak_db - RULES[ch.instrument].depth_db, abs=0.01)


def test_mono_is_unity_and_centred(band):
    params = get_method("mono").predict(band)
    assert all(ch.gain_db == 0 and ch.pan == 0 and not ch.eq and ch.compressor is None for ch in params.channels)


def test_random_is_reproducible_and_valid(band):
    a = get_method("random", seed=1).predict(band)
    b = get_method("random", seed=1).predict(band)
    c = get_method("random", seed=2).predict(band)
    assert a == b and a != c
    a.validate()


@pytest.mark.parametrize("name", [m for m, info in METHODS.items()
                                  if info.capabilities.gives_params and not info.capabilities.needs_target])
def test_every_mixer_covers_every_stem(band, name):
    try:
        mixer = get_method(name, seed=0)
    except MixdownError as exc:
        if "weights are not installed" not in str(exc):
            raise
        pytest.skip(str(exc))
    params = mixer.run(band).params  # the Method protocol (style without a reference has no predict)
    params.validate()
    assert [ch.name for ch in params.channels] == band.names
    assert params.method == name and params.sample_rate == SR


def test_unknown_mixer_is_a_clear_error():
    with pytest.raises(MixdownError, match="unknown method 'magic'"):
        get_method("magic")
