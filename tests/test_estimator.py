"""The learned estimator: mel front end, encoder, model, checkpoints, the mixer."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mixdown.config import config_from_dict
from mixdown.console import ConsoleTensors
from mixdown.errors import MixdownError
from mixdown.mixers import METHODS, get_method
from mixdown.mixers.estimator import EXCERPT_S, EstimatorMixer, excerpt_starts
from mixdown.models import build_model, load_model, save_model
from mixdown.models.encoders import (
    EncoderConfig,
    LogMel,
    MultitrackEncoder,
    hz_to_mel,
    masked_mean,
    mel_filterbank,
    mel_to_hz,
)
from mixdown.models.estimator import N_CHANNEL_PARAMS, Estimator, EstimatorConfig
from mixdown.multitrack import INSTRUMENT_CLASSES, Multitrack
from mixdown.params import SPECS, ConsoleParams, head_outputs
from mixdown.weights import shipped

RATE = 16000
TINY = EstimatorConfig(encoder=EncoderConfig(sample_rate=RATE, n_fft=256, hop=128, n_mels=16, f_max_hz=7000.0,
                                             widths=(4, 8), embed_dim=8, class_dim=3), hidden=8)


def tiny_model(seed: int = 0) -> Estimator:
    torch.manual_seed(seed)
    return Estimator(TINY).eval()


def random_batch(batch: int, tracks: int, samples: int, channels: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    stems = 0.3 * torch.randn(batch, tracks, channels, samples, generator=gen)
    instruments = torch.randint(0, len(INSTRUMENT_CLASSES), (batch, tracks), generator=gen)
    return stems, torch.ones(batch, tracks, dtype=torch.bool), instruments


# ----------------------------------------------------------------------------- mel front end


@pytest.mark.parametrize("freq_hz, mel", [(0.0, 0.0), (700.0, 2595.0 * math.log10(2.0)), (6300.0, 2595.0)])
def test_mel_scale_known_values(freq_hz, mel):
    assert float(hz_to_mel(torch.tensor(freq_hz, dtype=torch.float64))) == pytest.approx(mel)
    assert float(mel_to_hz(torch.tensor(mel, dtype=torch.float64))) == pytest.approx(freq_hz, abs=1e-9)


@pytest.mark.parametrize("n_fft, n_mels, rate, f_min, f_max", [(512, 20, 16000, 0.0, 8000.0),
                                                                (2048, 64, 44100, 20.0, 16000.0)])
def test_mel_filters_are_unit_triangles_that_sum_to_one(n_fft, n_mels, rate, f_min, f_max):
    filters = mel_filterbank(n_fft, n_mels, rate, f_min, f_max).double()
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    points = mel_to_hz(torch.linspace(float(hz_to_mel(torch.tensor(f_min))), float(hz_to_mel(torch.tensor(f_max))),
                                      n_mels + 2, dtype=torch.float64)).numpy()
    inside = (freqs >= points[1]) & (freqs <= points[-2])
    np.testing.assert_allclose(filters.sum(dim=1).numpy()[inside], 1.0, atol=1e-6)
    assert float(filters.max()) <= 1.0 + 1e-6
    assert filters.shape == (n_fft // 2 + 1, n_mels)
    assert (filters[freqs > points[-1]] == 0).all() and (filters[freqs < points[0]] == 0).all()


def test_log_mel_of_a_bin_centred_sine_matches_the_hann_spectrum():
    """A sine of amplitude A on bin k reads A^2 there and (A/2)^2 on bins k +- 1 (Hann), 0 elsewhere."""
    config = EncoderConfig(sample_rate=RATE, n_fft=256, hop=64, n_mels=16, f_max_hz=8000.0)
    log_mel = LogMel(config)
    k, amplitude = 40, 0.5
    t = torch.arange(RATE // 2) / RATE
    x = amplitude * torch.sin(2 * math.pi * k * RATE / config.n_fft * t)
    power = log_mel.band_power(x)[:, 4:-4].mean(-1)  # frames away from the padded ends
    bins = torch.zeros(config.n_fft // 2 + 1)
    bins[k], bins[k - 1], bins[k + 1] = amplitude ** 2, (amplitude / 2) ** 2, (amplitude / 2) ** 2
    expected = bins @ log_mel.filters
    torch.testing.assert_close(power, expected, rtol=1e-3, atol=1e-7)
    assert float(log_mel(x).max()) <= 10 * math.log10(amplitude ** 2 * 1.5) + 0.01


def test_masked_mean_ignores_masked_tracks():
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 5.0], [0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    torch.testing.assert_close(masked_mean(x, mask), torch.tensor([[2.0, 3.0], [5.0, 5.0]]))


def test_encoder_context_is_order_invariant_and_ignores_padding():
    encoder = MultitrackEncoder(TINY.encoder).eval()
    stems, mask, instruments = random_batch(1, 3, 4000)
    order = torch.tensor([2, 0, 1])
    padded = torch.cat([stems, torch.zeros(1, 2, 2, 4000)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(1, 2, dtype=torch.bool)], dim=1)
    padded_instruments = torch.cat([instruments, torch.zeros(1, 2, dtype=torch.long)], dim=1)
    with torch.no_grad():
        base = encoder(stems, mask, instruments)
        shuffled = encoder(stems[:, order], mask, instruments[:, order])
        with_padding = encoder(padded, padded_mask, padded_instruments)
    torch.testing.assert_close(shuffled.context, base.context, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(shuffled.tracks, base.tracks[:, order], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(with_padding.context, base.context, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(with_padding.tracks[:, :3], base.tracks, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- the model


def test_outputs_name_console_fields_and_stay_inside_the_console_ranges():
    fields = {f.name for f in dataclasses.fields(ConsoleTensors)}
    outputs = [*head_outputs(RATE, "channel"), *head_outputs(44100, "channel"), *head_outputs(RATE, "master")]
    for out in outputs:
        assert out.tensor in fields
        full = SPECS[out.tensor]
        assert full.minimum <= out.spec.minimum < out.spec.maximum <= full.maximum, out.spec
    assert len(head_outputs(RATE, "channel")) == N_CHANNEL_PARAMS == len(tiny_model().specs)
    assert max(o.spec.maximum for o in head_outputs(RATE, "channel") if o.tensor == "eq_freq_hz") <= 0.45 * RATE


def test_normalize_inverts_to_console():
    model = tiny_model()
    u = torch.rand(2, 3, N_CHANNEL_PARAMS, generator=torch.Generator().manual_seed(1)) * 0.98 + 0.01
    master = torch.tensor([[0.2], [0.9]])
    back, back_master = model.normalize(model.to_console(u, master, torch.ones(2, 3, dtype=torch.bool)))
    torch.testing.assert_close(back, u, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(back_master, master, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 2])
def test_forward_renders_a_loudness_normalised_stereo_mix_with_gradients(channels):
    model = tiny_model().train()
    stems, mask, instruments = random_batch(2, 3, RATE // 2, channels)
    mask[1, 2] = False
    stems[1, 2] = 0.0
    stereo = torch.full((2, 3), channels == 2)
    out = model(stems, mask, instruments, stereo)
    assert out.mix.shape == (2, 2, RATE // 2)
    assert torch.isfinite(out.mix).all()
    assert bool(out.estimate.params.mute[1, 2]) and not bool(out.estimate.params.mute[0].any())
    from mixdown.dsp.loudness import integrated_loudness

    with torch.no_grad():
        lufs = integrated_loudness(out.mix.double(), RATE)
    assert (lufs - (-14.0)).abs().max() < 1.5  # normalised to -14 LUFS, the limiter takes a little
    out.mix.square().mean().backward()
    for name in ("channel_head.0.weight", "master_head.0.weight", "encoder.cnn.0.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and float(grad.abs().sum()) > 0, name


def test_estimates_do_not_depend_on_the_rest_of_the_batch():
    model = tiny_model()
    a, mask_a, inst_a = random_batch(1, 2, 3000, seed=1)
    b, mask_b, inst_b = random_batch(1, 4, 3000, seed=2)
    stems = torch.zeros(2, 4, 2, 3000)
    stems[0, :2], stems[1] = a[0], b[0]
    mask = torch.tensor([[True, True, False, False], [True] * 4])
    instruments = torch.zeros(2, 4, dtype=torch.long)
    instruments[0, :2], instruments[1] = inst_a[0], inst_b[0]
    with torch.no_grad():
        batched = model.estimate(stems, mask, instruments)
        alone_a = model.estimate(a, mask_a, inst_a)
        alone_b = model.estimate(b, mask_b, inst_b)
    torch.testing.assert_close(batched.normalized[0, :2], alone_a.normalized[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(batched.normalized[1], alone_b.normalized[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(batched.master_normalized[1], alone_b.master_normalized[0], rtol=1e-4, atol=1e-5)


def _target(model: Estimator, u: torch.Tensor, master: torch.Tensor) -> ConsoleTensors:
    return model.to_console(u, master, torch.ones(u.shape[:2], dtype=torch.bool))


def test_parameter_loss_known_answers():
    model = tiny_model()
    gen = torch.Generator().manual_seed(3)
    u = torch.rand(1, 2, N_CHANNEL_PARAMS, generator=gen) * 0.9 + 0.05
    master = torch.tensor([[0.4]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    estimate = model.estimate(*random_batch(1, 2, 2000))  # any estimate, replaced below
    estimate = dataclasses.replace(estimate, normalized=u, master_normalized=master)
    target = _target(model, u, master)
    assert float(model.parameter_loss(estimate, target, mask)[0]) == pytest.approx(0.0, abs=1e-4)
    mirrored = dataclasses.replace(target, pan=-target.pan)  # the side of a pan is not supervised
    assert float(model.parameter_loss(estimate, mirrored, mask)[0]) == pytest.approx(0.0, abs=1e-4)
    gain = [i for i, o in enumerate(model.specs) if o.tensor == "gain_db"][0]
    shifted = u.clone()
    shifted[..., gain] += 0.05  # one of N_CHANNEL_PARAMS parameters off by 0.05 on every track
    off = dataclasses.replace(estimate, normalized=shifted)
    expected = 0.05 / N_CHANNEL_PARAMS
    assert float(model.parameter_loss(off, target, mask)[0]) == pytest.approx(expected, rel=1e-3)
    no_compressor = dataclasses.replace(target, ratio=torch.ones_like(target.ratio),
                                        threshold_db=target.threshold_db - 20.0)
    detail = {"threshold_db", "attack_ms", "release_ms", "knee_db"}
    ratio = [i for i, o in enumerate(model.specs) if o.tensor == "ratio"][0]
    expected = float(u[..., ratio].mean()) / (N_CHANNEL_PARAMS - len(detail))  # ratio 1 -> 0; threshold unsupervised
    assert float(model.parameter_loss(estimate, no_compressor, mask)[0]) == pytest.approx(expected, rel=1e-3)


# ----------------------------------------------------------------------------- configs and checkpoints


@pytest.mark.parametrize("data, message", [
    ({"hiden": 3}, "unknown keys ['hiden']"),
    ({"encoder": {"n_melz": 3}}, "m.encoder: unknown keys ['n_melz']"),
    ({"hidden": "big"}, "m.hidden: expected int"),
    ({"encoder": {"widths": 8}}, "m.encoder.widths: expected a list"),
    ({"hidden": 0}, "hidden must be positive"),
])
def test_config_from_dict_names_the_bad_key(data, message):
    with pytest.raises(MixdownError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config_from_dict(EstimatorConfig, data, "m")


def test_config_from_dict_builds_nested_tuples_and_floats():
    config = config_from_dict(EstimatorConfig, {"encoder": {"widths": [4, 8], "f_min_hz": 30}}, "m")
    assert config.encoder.widths == (4, 8) and config.encoder.f_min_hz == 30.0
    assert config == EstimatorConfig(encoder=EncoderConfig(widths=(4, 8), f_min_hz=30.0))


def test_save_load_gives_the_same_outputs(tmp_path):
    model = tiny_model(seed=5)
    path = save_model(model, tmp_path / "estimator.pt")
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"format", "model_name", "config", "state_dict", "sample_rate", "versions"}
    assert raw["model_name"] == "estimator" and raw["sample_rate"] == RATE
    loaded = load_model(path)
    assert loaded.name == "estimator" and loaded.model.config == TINY
    stems, mask, instruments = random_batch(1, 3, RATE // 2)
    with torch.no_grad():
        a = model(stems, mask, instruments, torch.ones(1, 3, dtype=torch.bool))
        b = loaded.model(stems, mask, instruments, torch.ones(1, 3, dtype=torch.bool))
    torch.testing.assert_close(a.mix, b.mix, rtol=0, atol=0)
    torch.testing.assert_close(a.estimate.normalized, b.estimate.normalized, rtol=0, atol=0)


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    (b"not a checkpoint", "cannot read model weights"),
    ({"model_name": "estimator"}, "not a mixdown model checkpoint"),
    ({"model_name": "nope", "config": {}, "state_dict": {}, "sample_rate": 1, "versions": {}}, "unknown model 'nope'"),
    ({"model_name": "estimator", "config": {}, "state_dict": {"x": torch.zeros(1)}, "sample_rate": 44100,
      "versions": {}}, "weights do not fit the estimator model"),
])
def test_load_model_errors(tmp_path, content, message):
    path = tmp_path / "weights.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(MixdownError, match=message):
        load_model(path)


def test_build_model_rejects_unknown_names():
    with pytest.raises(MixdownError, match="unknown model 'dmc2'"):
        build_model("dmc2")


# ----------------------------------------------------------------------------- the mixer


@pytest.mark.parametrize("frames, excerpt, count, expected", [
    (100, 200, 8, [0]), (200, 200, 8, [0]), (300, 200, 8, [0, 100]), (1000, 100, 3, [0, 450, 900]),
])
def test_excerpt_starts(frames, excerpt, count, expected):
    assert excerpt_starts(frames, excerpt, count) == expected


def _multitrack(count: int, rate: int, seconds: float, seed: int = 0) -> Multitrack:
    rng = np.random.default_rng(seed)
    names = ["kick", "snare", "bass", "keys", "overhead", "guitar", "lead", "room"]
    arrays = {}
    for i in range(count):
        channels = 2 if i % 4 == 3 else 1
        arrays[f"{names[i % len(names)]}_{i}"] = (0.2 * rng.standard_normal((channels, int(rate * seconds)))
                                                  ).astype(np.float32)
    return Multitrack.from_arrays(arrays, rate)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    return save_model(tiny_model(seed=7), tmp_path_factory.mktemp("weights") / "estimator.pt")


@pytest.mark.parametrize("count, rate, seconds", [(2, RATE, 1.0), (8, RATE, 7.0), (16, 22050, 3.0)])
def test_mixer_gives_valid_settings_for_any_number_of_stems(tiny_weights, count, rate, seconds):
    multitrack = _multitrack(count, rate, seconds)
    params = EstimatorMixer(tiny_weights).predict(multitrack)
    assert isinstance(params, ConsoleParams) and params.method == "estimator"
    assert [ch.name for ch in params.channels] == multitrack.names
    assert params.sample_rate == rate
    params.validate()
    assert ConsoleParams.from_json(params.to_json()) == params
    assert all([b.type for b in ch.eq] == ["highpass", "low_shelf", "peak", "high_shelf"] for ch in params.channels)


def test_mixer_averages_excerpts_where_a_stem_sounds(tiny_weights):
    """A stem silent in some excerpts gets the settings of the excerpts where it sounds."""
    mixer = EstimatorMixer(tiny_weights)
    multitrack = _multitrack(3, RATE, 4 * EXCERPT_S, seed=4)
    stems, active = mixer.analysis_batch(multitrack)
    assert stems.shape[:2] == active.shape and active.all()
    audio = multitrack.stem_audio(1).copy()
    audio[:, : audio.shape[1] // 2] = 0.0
    gappy = Multitrack.from_arrays({n: (audio if i == 1 else multitrack.stem_audio(i))
                                    for i, n in enumerate(multitrack.names)}, RATE)
    _, active = mixer.analysis_batch(gappy)
    assert not active[:, 1].all() and active[:, 1].any() and active[:, [0, 2]].all()
    params = mixer.predict(gappy)
    params.validate()


def test_mixer_errors(tmp_path):
    other = tmp_path / "other.pt"
    with pytest.raises(MixdownError, match="model weights not found"):
        EstimatorMixer(tmp_path / "missing.pt")
    other.write_bytes(b"junk")
    with pytest.raises(MixdownError, match="cannot read model weights"):
        EstimatorMixer(other)


def test_estimator_is_a_registered_method():
    assert METHODS["estimator"].capabilities.gives_params
    assert isinstance(get_method("estimator"), EstimatorMixer)


@pytest.mark.skipif(not shipped("estimator.pt").is_file(), reason="estimator weights not trained yet")
def test_shipped_weights_are_small_and_mix_the_demo():
    from mixdown.synth.demo import demo_multitrack_arrays

    assert shipped("estimator.pt").stat().st_size <= 20e6
    multitrack = Multitrack.from_arrays(demo_multitrack_arrays(44100), 44100)
    params = get_method("estimator").predict(multitrack)
    params.validate()
    gains = {ch.instrument: ch.gain_db for ch in params.channels}
    assert len(set(gains.values())) > 1  # a balance, not one fader for all
