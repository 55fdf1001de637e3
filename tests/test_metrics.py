"""Metrics against known answers: identical mixes, gains, pans, sines, noise, hand-made params."""

import math

import numpy as np
import pyloudnorm
import pytest
import torch

from mixdown.dsp.loudness import loudness_lufs
from mixdown.errors import AudioError, ParamsError
from mixdown.losses import StereoLoss
from mixdown.metrics import (
    FEATURE_NAMES,
    MRSTFT_CONFIG,
    PARAM_ERROR_NAMES,
    evaluate_mix,
    feature_differences,
    loudness_diff_lu,
    mix_features,
    mrstft_distances,
    panning_index,
    param_errors,
    si_sdr_db,
    summarize_param_errors,
)
from mixdown.metrics.features import N_FFT
from mixdown.params import ChannelParams, CompressorParams, ConsoleParams, EQBand

SR = 44100


def noise(seed: int, channels: int = 2, seconds: float = 1.0, scale: float = 0.1) -> np.ndarray:
    return scale * np.random.default_rng(seed).standard_normal((channels, int(seconds * SR)))


def tone(freq_hz: float, amplitude: float = 0.5, seconds: float = 1.0) -> np.ndarray:
    """A mono sine, ``(samples,)``."""
    return amplitude * np.sin(2 * np.pi * freq_hz * np.arange(int(seconds * SR)) / SR)


def panned(mono: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power pan of ``mono`` to ``(2, samples)`` (mixdown's law, -1 hard left)."""
    theta = (pan + 1.0) * math.pi / 4.0
    return np.stack([math.cos(theta) * mono, math.sin(theta) * mono])


def song_like(seed: int) -> np.ndarray:
    """Three sources at different pans: noise left, a tone right, a chord centre."""
    rng = np.random.default_rng(seed)
    chord = tone(220.0, 0.2) + tone(277.2, 0.15) + tone(329.6, 0.1)
    return panned(0.05 * rng.standard_normal(SR), -0.6) + panned(tone(1500.0, 0.1), 0.4) + panned(chord, 0.0)


# ---------------------------------------------------------------- audio metrics


@pytest.mark.parametrize("make", [lambda: noise(0), lambda: song_like(1), lambda: panned(tone(440.0), -1.0)])
def test_identical_mixes_score_zero_and_si_sdr_inf(make):
    mix = make()
    row = evaluate_mix(mix, mix.copy(), SR)
    assert row["si_sdr_db"] == math.inf
    others = {k: v for k, v in row.items() if k != "si_sdr_db"}
    assert set(others) == {"stereo_mrstft", "stereo_mrstft_matched", "mrstft", "loudness_diff_lu",
                           *(f"diff_{n}" for n in FEATURE_NAMES)}
    assert all(v == 0.0 for v in others.values()), others


@pytest.mark.parametrize("gain_db", [-12.0, -3.0, 1.5, 6.0])
def test_known_gain_gives_known_loudness_difference(gain_db):
    reference = song_like(2)
    estimate = reference * 10.0 ** (gain_db / 20.0)
    assert loudness_diff_lu(estimate, reference, SR) == pytest.approx(gain_db, abs=0.1)
    row = evaluate_mix(estimate, reference, SR)
    assert row["diff_rms_db"] == pytest.approx(gain_db, abs=1e-9)
    assert row["si_sdr_db"] > 100.0  # scale-invariant: only rounding separates them
    assert row["diff_spectral_centroid_hz"] == pytest.approx(0.0, abs=1e-3)  # float32 spectra



# One loudness meter: the metrics, `mixdown info`, the studio, the REAPER export and the
# listening test all read the console's BS.1770 meter through `loudness_lufs`.


@pytest.mark.parametrize("sample_rate", [44100, 48000, 22050])
@pytest.mark.parametrize("channels", [1, 2])
def test_loudness_lufs_matches_pyloudnorm_deman(sample_rate, channels):
    """pyloudnorm as the reference, with the exact BS.1770 filters re-derived per rate (DeMan), as ours."""
    rng = np.random.default_rng(sample_rate + channels)
    audio = (0.1 * rng.standard_normal((channels, 5 * sample_rate))).astype(np.float32)
    audio[:, : 2 * sample_rate] *= 0.01  # a quiet intro the relative gate drops
    reference = pyloudnorm.Meter(sample_rate, filter_class="DeMan").integrated_loudness(audio.T.astype(np.float64))
    before = audio.copy()
    ours = loudness_lufs(audio, sample_rate)
    assert ours == pytest.approx(reference, abs=0.01)
    assert loudness_lufs(torch.from_numpy(audio), sample_rate) == pytest.approx(ours, abs=1e-9)  # numpy or torch
    assert loudness_lufs(audio.astype(np.float64).T.copy().T, sample_rate) == pytest.approx(ours, abs=1e-9)
    np.testing.assert_array_equal(audio, before)  # the input is not modified


def test_loudness_lufs_of_silence_short_signals_and_bad_shapes():
    assert loudness_lufs(np.zeros((2, SR)), SR) == -math.inf
    assert loudness_lufs(noise(0, seconds=0.3), SR) == -math.inf  # under one 400 ms block
    with pytest.raises(AudioError, match=r"expected audio of shape \(channels, samples\)"):
        loudness_lufs(np.zeros(SR), SR)


def test_loudness_difference_is_the_console_meter():
    estimate, reference = song_like(3), noise(4)
    assert loudness_diff_lu(estimate, reference, SR) == loudness_lufs(estimate, SR) - loudness_lufs(reference, SR)


@pytest.mark.parametrize("target_db", [-5.0, 0.0, 10.0, 30.0])
def test_si_sdr_of_reference_plus_orthogonal_noise(target_db):
    """Per channel, averaged: channels at target +- 3 dB average to the target, whatever each channel's scale."""
    reference = song_like(3)
    distortion = noise(4)
    for channel, offset_db in ((0, 3.0), (1, -3.0)):
        r, d = reference[channel], distortion[channel]
        d -= (d @ r) / (r @ r) * r
        d *= math.sqrt((r @ r) / (d @ d) / 10.0 ** ((target_db + offset_db) / 10.0))
    # scaling the estimate, each channel differently, must not matter
    estimate = np.array([[0.3], [2.0]]) * (reference + distortion)
    assert si_sdr_db(estimate, reference) == pytest.approx(target_db, abs=1e-6)


def test_si_sdr_is_the_mean_of_the_channels_not_one_projection():
    reference, estimate = song_like(7), song_like(7) + 0.3 * noise(8)
    per_channel = [si_sdr_db(estimate[c:c + 1], reference[c:c + 1]) for c in range(2)]
    assert si_sdr_db(estimate, reference) == pytest.approx(sum(per_channel) / 2, abs=1e-12)
    mono_left = reference.copy()
    mono_left[1] = 0.0  # a silent reference channel is left out, not an error
    assert si_sdr_db(estimate, mono_left) == pytest.approx(per_channel[0], abs=1e-12)


def test_si_sdr_edge_cases():
    reference = noise(5)
    assert si_sdr_db(np.zeros_like(reference), reference) == -math.inf
    assert si_sdr_db(0.5 * reference, reference) == math.inf
    with pytest.raises(AudioError, match="silent reference"):
        si_sdr_db(reference, np.zeros_like(reference))
    with pytest.raises(AudioError, match="silent reference"):
        evaluate_mix(reference, np.zeros_like(reference), SR)


def test_silent_estimate_is_scored_not_rejected():
    reference = song_like(6)
    row = evaluate_mix(np.zeros_like(reference), reference, SR)
    assert row["si_sdr_db"] == -math.inf and row["loudness_diff_lu"] == -math.inf
    assert row["diff_rms_db"] == -math.inf and math.isnan(row["diff_spectral_centroid_hz"])
    assert math.isfinite(row["stereo_mrstft"]) and row["stereo_mrstft"] > 1.0


@pytest.mark.parametrize("seed", [7, 8])
def test_stereo_mrstft_ignores_left_right_swap_plain_mrstft_does_not(seed):
    reference = song_like(seed)
    estimate = reference + panned(noise(seed, channels=1)[0] * 0.2, 0.7)
    straight = mrstft_distances(estimate, reference)
    swapped = mrstft_distances(estimate[::-1], reference)
    assert swapped["stereo_mrstft"] == pytest.approx(straight["stereo_mrstft"], rel=1e-6)
    assert swapped["mrstft"] > straight["mrstft"] + 0.1


@pytest.fixture
def torch_one_thread():
    """torch on one thread for the test (two threads on a busy 2-core machine run 10x slower)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


@pytest.mark.parametrize("seed", [9, 10])
def test_mrstft_distances_equal_the_training_loss_and_auraloss(seed, torch_one_thread):
    auraloss = pytest.importorskip("auraloss")
    torch = torch_one_thread
    estimate, reference = song_like(seed), song_like(seed + 1) * 0.7 + noise(seed, scale=0.01)
    est, ref = (torch.from_numpy(x.astype(np.float32))[None] for x in (estimate, reference))
    config = MRSTFT_CONFIG
    plain = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=list(config.fft_sizes), hop_sizes=[int(n * config.hop_fraction) for n in config.fft_sizes],
        win_lengths=list(config.fft_sizes), eps=config.eps)
    got = mrstft_distances(estimate, reference)
    assert got["stereo_mrstft"] == pytest.approx(float(StereoLoss(config)(est, ref)), rel=1e-4)
    assert got["mrstft"] == pytest.approx(float(plain(est, ref)), rel=1e-4)


@pytest.mark.parametrize(
    ("estimate", "reference", "message"),
    [
        (np.zeros((1, SR)), np.zeros((1, SR)), r"shape \(2, samples\)"),
        (np.zeros((2, SR)), np.zeros((2, SR - 1)), "differ in length"),
        (np.full((2, SR), np.nan), np.ones((2, SR)), "NaN"),
        (np.ones((2, 1000)), np.ones((2, 1000)), "too short"),
    ],
)
def test_bad_input_is_a_clear_error(estimate, reference, message):
    with pytest.raises(AudioError, match=message):
        evaluate_mix(estimate, reference, SR)


# ---------------------------------------------------------------- mix features


@pytest.mark.parametrize("freq_hz", [100.0, 1000.0, 1234.5, 5000.0, 15000.0])
def test_centroid_of_a_sine_is_its_frequency(freq_hz):
    features = mix_features(panned(tone(freq_hz), 0.0), SR)
    assert features["spectral_centroid_hz"] == pytest.approx(freq_hz, abs=SR / N_FFT)
    assert features["spectral_flatness"] < 1e-6


def test_white_noise_features():
    features = mix_features(np.repeat(noise(11, channels=1), 2, axis=0), SR)
    nyquist = SR / 2
    assert features["spectral_flatness"] > 0.95
    assert features["spectral_centroid_hz"] == pytest.approx(nyquist / 2, rel=0.02)
    assert features["spectral_bandwidth_hz"] == pytest.approx(nyquist / math.sqrt(12.0), rel=0.03)  # uniform
    assert features["spectral_rolloff_hz"] == pytest.approx(0.85 * nyquist, rel=0.02)


@pytest.mark.parametrize(
    ("wave", "crest_db", "rms_db"),
    [
        (lambda t: 0.5 * np.sin(2 * np.pi * 441.0 * t), 10 * math.log10(2), 20 * math.log10(0.5 / math.sqrt(2))),
        (lambda t: 0.25 * np.sign(np.sin(2 * np.pi * 100.5 * t)), 0.0, 20 * math.log10(0.25)),
    ],
    ids=["sine", "square"],
)
def test_crest_factor_and_rms(wave, crest_db, rms_db):
    mono = wave(np.arange(SR) / SR)
    features = mix_features(np.stack([mono, mono]), SR)
    assert features["crest_factor_db"] == pytest.approx(crest_db, abs=0.01)
    assert features["rms_db"] == pytest.approx(rms_db, abs=0.01)


@pytest.mark.parametrize("pan", [-1.0, -0.5, 0.0, 0.3, 1.0])
def test_panning_index_of_a_constant_power_pan(pan):
    features = mix_features(panned(noise(12, channels=1)[0], pan), SR)
    expected = math.copysign(1.0 - math.cos(pan * math.pi / 2.0), pan)
    for band in ("all", "low", "mid", "high"):
        assert features[f"pan_mean_{band}"] == pytest.approx(expected, abs=1e-5)
        assert features[f"pan_rms_{band}"] == pytest.approx(abs(expected), abs=1e-5)
    # one source: side/mid energy (1 - sin 2theta) / (1 + sin 2theta), mapped r / (1 + r)
    assert features["stereo_width_all"] == pytest.approx((1.0 - math.cos(pan * math.pi / 2.0)) / 2.0, abs=1e-5)


def test_panning_index_per_bin():
    # hard left, hard right, centre, silent, and a 3:1 left-heavy bin: (1 - 6 / 10) * -1
    left, right = np.array([1.0 + 1j, 0.0, 2.0, 0.0, 3.0]), np.array([0.0, 3.0j, 2.0j, 0.0, 1.0])
    np.testing.assert_allclose(panning_index(np.abs(left), np.abs(right)), [-1.0, 1.0, 0.0, 0.0, -0.4])


@pytest.mark.parametrize(
    ("make", "width"),
    [
        (lambda x: np.stack([x, x]), 0.0),  # mono
        (lambda x: np.stack([x, np.zeros_like(x)]), 0.5),  # hard left
        (lambda x: np.stack([x, -x]), 1.0),  # anti-phase
    ],
    ids=["mono", "hard-left", "anti-phase"],
)
def test_stereo_width(make, width):
    features = mix_features(make(noise(13, channels=1)[0]), SR)
    for band in ("all", "low", "mid", "high"):
        assert features[f"stereo_width_{band}"] == pytest.approx(width, abs=1e-9)


def test_feature_differences_are_estimate_minus_reference():
    estimate, reference = panned(tone(500.0), -0.5), panned(tone(3000.0), 0.5)
    diffs = feature_differences(estimate, reference, SR)
    est, ref = mix_features(estimate, SR), mix_features(reference, SR)
    assert diffs == {f"diff_{name}": est[name] - ref[name] for name in FEATURE_NAMES}
    assert diffs["diff_pan_mean_all"] == pytest.approx(-2.0 * (1.0 - math.cos(math.pi / 4.0)), abs=1e-5)
    assert diffs["diff_spectral_centroid_hz"] == pytest.approx(-2500.0, abs=SR / N_FFT)


# ---------------------------------------------------------------- parameter errors


def _console(*channels: ChannelParams) -> ConsoleParams:
    return ConsoleParams(channels=list(channels))


def _hand_made() -> tuple[ConsoleParams, ConsoleParams]:
    truth = _console(
        ChannelParams("kick", gain_db=-6.0, pan=0.0,
                      eq=[EQBand("highpass", 100.0), EQBand("peak", 2000.0, -1.0, 1.0)],
                      compressor=CompressorParams(threshold_db=-20.0, ratio=4.0), reverb_send_db=-30.0),
        ChannelParams("snare", gain_db=-2.0, pan=0.2, eq=[EQBand("low_shelf", 200.0, 2.0)],
                      compressor=CompressorParams(threshold_db=-10.0, ratio=2.0), reverb_send_db=-12.0),
        ChannelParams("hat", gain_db=-10.0, pan=-0.5, eq=[EQBand("high_shelf", 8000.0, 3.0)]),
    )
    estimate = _console(  # other channel order on purpose
        ChannelParams("hat", gain_db=-10.0, pan=0.5, eq=[EQBand("peak", 8000.0, 3.0)]),
        ChannelParams("kick", gain_db=-3.0, pan=0.1,
                      eq=[EQBand("highpass", 80.0), EQBand("peak", 4000.0, 3.0, 2.0)], reverb_send_db=None),
        ChannelParams("snare", gain_db=0.0, pan=0.2, eq=[EQBand("low_shelf", 200.0, 2.0)],
                      compressor=CompressorParams(threshold_db=-16.0, ratio=8.0), reverb_send_db=-12.0),
    )
    return estimate, truth


def test_param_errors_on_hand_made_settings():
    errors = param_errors(*_hand_made())
    assert list(errors) == ["kick", "snare", "hat"]
    # fader offsets 3, 2, 0 dB: mean 5/3
    expected = {
        "kick": {"gain_db": 3.0, "gain_balance_db": 4 / 3, "pan": 0.1, "eq_gain_db": 4.0,
                 "eq_freq_oct": (math.log2(100 / 80) + 1.0) / 2, "comp_threshold_db": 20.0,
                 "comp_ratio_log2": 2.0, "reverb_send_db": 50.0},
        "snare": {"gain_db": 2.0, "gain_balance_db": 1 / 3, "pan": 0.0, "eq_gain_db": 0.0, "eq_freq_oct": 0.0,
                  "eq_response_db": 0.0, "comp_threshold_db": 6.0, "comp_ratio_log2": 2.0, "reverb_send_db": 0.0},
        "hat": {"gain_db": 0.0, "gain_balance_db": 5 / 3, "pan": 1.0, "eq_gain_db": math.nan,
                "eq_freq_oct": math.nan, "comp_threshold_db": 0.0, "comp_ratio_log2": 0.0, "reverb_send_db": 0.0},
    }
    for name, values in expected.items():
        assert set(errors[name]) == set(PARAM_ERROR_NAMES)
        for key, value in values.items():
            assert errors[name][key] == pytest.approx(value, abs=1e-9, nan_ok=True), (name, key)
    assert errors["kick"]["eq_response_db"] > 0.1 and errors["hat"]["eq_response_db"] > 0.1

    summary = summarize_param_errors(errors)
    assert summary["median_gain_db"] == pytest.approx(2.0)
    assert summary["median_gain_balance_db"] == pytest.approx(4 / 3)
    assert summary["median_pan"] == pytest.approx(0.1)
    assert summary["median_eq_gain_db"] == pytest.approx(2.0)  # hat's nan left out: median of 4 and 0
    assert summary["median_comp_ratio_log2"] == pytest.approx(2.0)
    assert summary["median_reverb_send_db"] == pytest.approx(0.0)


@pytest.mark.parametrize("gain_db", [6.0, -3.0])
def test_eq_response_error_of_a_broadband_shelf(gain_db):
    # a high shelf at 10 Hz lifts the whole 20 Hz - 20 kHz grid by ~gain_db
    estimate = _console(ChannelParams("a", eq=[EQBand("high_shelf", 10.0, gain_db)]))
    errors = param_errors(estimate, _console(ChannelParams("a")))
    assert errors["a"]["eq_response_db"] == pytest.approx(abs(gain_db), abs=0.05)
    assert math.isnan(errors["a"]["eq_gain_db"])  # layouts differ: no band-wise error


def test_mute_and_offset_rules():
    estimate = _console(ChannelParams("a", gain_db=4.0), ChannelParams("b", gain_db=-6.0, mute=True))
    truth = _console(ChannelParams("a", gain_db=0.0), ChannelParams("b", gain_db=-10.0))
    errors = param_errors(estimate, truth)
    assert errors["b"]["gain_db"] == pytest.approx(70.0)  # muted = -80 dB
    assert errors["a"]["gain_balance_db"] == errors["b"]["gain_balance_db"] == pytest.approx(37.0)
    # a constant offset on every fader is invisible to the balance error
    shifted = _console(ChannelParams("a", gain_db=5.0), ChannelParams("b", gain_db=-5.0))
    balance = param_errors(shifted, truth)
    assert all(e["gain_balance_db"] == pytest.approx(0.0) and e["gain_db"] == 5.0 for e in balance.values())


def _drop_last_channel(params: ConsoleParams) -> None:
    params.channels.pop()


def _pan_out_of_range(params: ConsoleParams) -> None:
    params.channels[0].pan = 2.0


@pytest.mark.parametrize(
    ("spoil", "message"), [(_drop_last_channel, r"missing \['snare'\]"), (_pan_out_of_range, "pan")]
)
def test_param_errors_reject_bad_settings(spoil, message):
    estimate, truth = _hand_made()
    spoil(estimate)
    with pytest.raises(ParamsError, match=message):
        param_errors(estimate, truth)
