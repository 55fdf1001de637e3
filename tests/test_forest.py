"""Stem features on known-answer signals, and the random-forest mixer and its weights."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest

from mixdown.cli import main
from mixdown.errors import MixdownError
from mixdown.features import FEATURE_NAMES, multitrack_features
from mixdown.mixers import get_method
from mixdown.mixers.forest import (
    ForestConfig,
    ForestModel,
    export_forest,
    fit_forest,
    train_forest,
)
from mixdown.mixers.rules import RulesMixer
from mixdown.multitrack import INSTRUMENT_CLASSES, Multitrack
from mixdown.train import load_recipe
from mixdown.weights import shipped

SR = 44100


def features_of(arrays: dict[str, np.ndarray], sample_rate: int = SR, **kwargs) -> dict[str, np.ndarray]:
    """``{feature name: (stems,) values}`` of in-memory stems."""
    table = multitrack_features(Multitrack.from_arrays(arrays, sample_rate), **kwargs)
    return dict(zip(FEATURE_NAMES, table.T, strict=True))


@pytest.mark.parametrize(("freq_hz", "band"), [(100.0, "low_ratio"), (1000.0, "mid_ratio"), (8000.0, "high_ratio")])
def test_spectral_features_of_a_sine(make_sine, freq_hz, band):
    f = features_of({"tone": make_sine(freq_hz, seconds=2.0)})
    assert f["centroid_hz"][0] == pytest.approx(freq_hz, rel=0.01)
    assert abs(f["rolloff_hz"][0] - freq_hz) <= 2 * SR / 2048  # within two bins
    assert f["spread_hz"][0] < 40.0  # the Hann main lobe only
    assert f["flatness"][0] < 1e-3
    assert f[band][0] == pytest.approx(1.0, abs=1e-3)
    assert f["zcr_hz"][0] == pytest.approx(2 * freq_hz, rel=0.01)
    assert f["flux"][0] < 0.01  # a steady tone has no spectral change


@pytest.mark.parametrize("amplitude", [0.5, 0.1])
def test_levels_of_a_sine_match_pyloudnorm_and_theory(make_sine, amplitude):
    stereo = make_sine(997.0, seconds=3.0, channels=2, amplitude=amplitude)
    f = features_of({"tone": stereo})
    # pyloudnorm's DeMan filters are the BS.1770 ones re-derived per rate, as mixdown's.
    reference = pyloudnorm.Meter(SR, filter_class="DeMan").integrated_loudness(stereo.T.astype(np.float64))
    assert f["loudness_lufs"][0] == pytest.approx(reference, abs=0.02)
    # BS.1770: a full-scale 997 Hz sine in each of two channels reads 0 LUFS.
    assert f["loudness_lufs"][0] == pytest.approx(20 * np.log10(amplitude), abs=0.05)
    assert f["peak_dbfs"][0] == pytest.approx(20 * np.log10(amplitude), abs=0.01)
    assert f["rms_dbfs"][0] == pytest.approx(20 * np.log10(amplitude / np.sqrt(2)), abs=0.01)
    assert f["crest_db"][0] == pytest.approx(10 * np.log10(2), abs=0.02)
    assert f["side_ratio"][0] == 0.0 and f["stereo"][0] == 1.0


def test_onset_rate_of_a_click_train():
    rng = np.random.default_rng(0)
    seconds, rate_hz = 4.0, 4.0
    audio = np.zeros((1, int(seconds * SR)), dtype=np.float32)
    burst = (rng.standard_normal(441) * np.exp(-np.arange(441) / 80.0) * 0.5).astype(np.float32)
    for t in np.arange(0.125, seconds, 1.0 / rate_hz):
        audio[0, int(t * SR):int(t * SR) + 441] += burst
    f = features_of({"clicks": audio})
    assert f["onset_rate_hz"][0] == pytest.approx(rate_hz)
    assert f["active_fraction"][0] < 0.5


def test_context_features_of_two_identical_stems():
    noise = (np.random.default_rng(1).standard_normal((1, SR)) * 0.1).astype(np.float32)
    f = features_of({"kick": noise, "kick_2": noise.copy(), "bass": 0.1 * noise})
    # Two equal in-phase stems sum to twice the amplitude: each is 20 log10(2 + 0.1) LU under the mix.
    assert f["loudness_rel_mix_lu"][:2] == pytest.approx([-20 * np.log10(2.1)] * 2, abs=0.05)
    assert f["loudness_rel_mean_lu"][:2] == pytest.approx([20 / 3] * 2, abs=0.05)
    for band in ("low_share", "mid_share", "high_share"):
        assert f[band] == pytest.approx(np.array([1.0, 1.0, 0.01]) / 2.01, rel=1e-6)
    assert f["centroid_rel_mix_oct"] == pytest.approx([0.0] * 3, abs=1e-6)
    assert f["num_stems"].tolist() == [3, 3, 3]
    assert f["same_class_count"].tolist() == [2, 2, 1]
    assert f["class_kick"].tolist() == [1, 1, 0] and f["class_bass"].tolist() == [0, 0, 1]
    assert sum(f[f"class_{c}"].sum() for c in INSTRUMENT_CLASSES) == 3


def test_stereo_image_and_silence():
    rng = np.random.default_rng(2)
    f = features_of({"wide": (rng.standard_normal((2, SR)) * 0.1).astype(np.float32),
                     "silent": np.zeros((1, SR), dtype=np.float32)})
    assert f["side_ratio"][0] == pytest.approx(0.5, abs=0.02)  # independent channels
    assert f["stereo"].tolist() == [1.0, 0.0]
    assert f["loudness_lufs"][1] == -70.0 and f["centroid_hz"][1] == 0.0 and f["onset_rate_hz"][1] == 0.0


def test_features_do_not_depend_on_the_chunk_size(make_sine):
    rng = np.random.default_rng(3)
    arrays = {"a": (rng.standard_normal((1, 3 * SR)) * np.linspace(0, 0.3, 3 * SR)).astype(np.float32),
              "b": make_sine(220.0, seconds=3.0, channels=2)}
    whole = multitrack_features(Multitrack.from_arrays(arrays, SR), chunk_frames=1 << 20)
    streamed = multitrack_features(Multitrack.from_arrays(arrays, SR), chunk_frames=3001)
    np.testing.assert_allclose(streamed, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("max_depth", [3, None])
def test_array_forest_equals_scikit_learn(max_depth):
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, len(FEATURE_NAMES)))
    y = 2 * x[:, 0] + np.sin(3 * x[:, 5]) + 0.1 * rng.normal(size=400)
    forest = RandomForestRegressor(n_estimators=12, max_depth=max_depth, max_features=0.5, random_state=0).fit(x, y)
    probe = rng.normal(scale=2.0, size=(1000, len(FEATURE_NAMES)))
    np.testing.assert_allclose(export_forest(forest).predict(probe), forest.predict(probe), rtol=0, atol=1e-9)


def test_model_save_load_round_trip_and_bad_files(tmp_path):
    model = ForestModel.load(shipped("forest.npz"))
    path = tmp_path / "forest.npz"
    model.save(path)
    again = ForestModel.load(path)
    probe = np.random.default_rng(5).normal(size=(50, len(FEATURE_NAMES)))
    for a, b in zip(model.predict(probe), again.predict(probe), strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.config == model.config and again.info == model.info
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for bad in (tmp_path / "junk.npz", tmp_path / "missing.npz"):
        with pytest.raises(MixdownError):
            ForestModel.load(bad)


def test_shipped_weights_are_small_and_from_the_shipped_recipe():
    assert shipped("forest.npz").stat().st_size <= 5_000_000
    shipped_recipe = load_recipe(Path(__file__).parents[1] / "configs" / "forest.yaml")
    assert ForestModel.load(shipped("forest.npz")).config == shipped_recipe.forest_config


@pytest.fixture(scope="module")
def forest_mixer():
    return get_method("forest")


@pytest.mark.parametrize("count", [2, 8, 16])
def test_forest_mixer_returns_valid_settings(forest_mixer, count):
    rng = np.random.default_rng(count)
    names = ["kick", "snare", "bass", "hihat", "tom_1", "tom_2", "overheads", "keys", "gtr_a", "gtr_b",
             "lead_vocal", "room", "pad", "shaker", "ride", "synth"][:count]
    arrays = {n: (rng.standard_normal((2 if n == "overheads" else 1, SR)) * rng.uniform(0.01, 0.3))
              .astype(np.float32) for n in names}
    multitrack = Multitrack.from_arrays(arrays, SR)
    params = forest_mixer.predict(multitrack)
    params.validate()
    rules = RulesMixer().predict(multitrack)
    assert params.method == "forest" and [ch.name for ch in params.channels] == names
    for ch, rule in zip(params.channels, rules.channels, strict=True):
        assert ch.eq == rule.eq and ch.compressor == rule.compressor and ch.reverb_send_db == rule.reverb_send_db
        assert np.sign(ch.pan) == np.sign(rule.pan)  # the side is the rules'; the width is learned
        assert -30.0 < ch.gain_db < 30.0


def test_retraining_is_deterministic_from_the_seed():
    config = ForestConfig(songs=1, duration_s=3.0, sample_rate=22050, min_stems=4, max_stems=6, trees=3,
                          max_depth=4, min_samples_leaf=1)
    first, second = train_forest(config), train_forest(config)
    for name in ("level", "width"):
        for field in dataclasses.fields(getattr(first, name)):
            np.testing.assert_array_equal(getattr(getattr(first, name), field.name),
                                          getattr(getattr(second, name), field.name))
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(60, len(FEATURE_NAMES))), rng.normal(size=60)
    reseeded = [fit_forest(x, y, dataclasses.replace(config, seed=seed)).threshold for seed in (0, 0, 1)]
    np.testing.assert_array_equal(reseeded[0], reseeded[1])
    assert not np.array_equal(reseeded[0], reseeded[2])


def test_training_command_writes_weights_and_rejects_bad_config(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("model: forest\nsongs: 1\nduration_s: 3.0\nsample_rate: 22050\nmin_stems: 2\nmax_stems: 3\n"
                      "trees: 2\n")
    out = tmp_path / "tiny.npz"
    assert main(["train", str(config), "--export", str(out)]) == 0
    assert ForestModel.load(out).config.trees == 2
    config.write_text("model: forest\nsongs: 1\ntreez: 2\n")
    assert main(["train", str(config), "--export", str(tmp_path / "bad.npz")]) == 2
    assert not (tmp_path / "bad.npz").exists()
    with pytest.raises(MixdownError, match="treez"):
        load_recipe(config)
