"""True peak: the BS.1770 meter against EBU Tech 3341, and the master limiter against an independent meter.

The independent meter is scipy's ``resample_poly`` (16x and 32x, its own Kaiser-windowed
design), written here and used nowhere in the package.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import torch

import mixdown.dsp.limiter as limiter_module
from mixdown.console import ConsoleTensors, render, render_tensor
from mixdown.dsp.limiter import SAFETY_MARGIN_DB, limit, limiter_gain
from mixdown.dsp.true_peak import (
    _exact_peaks,
    _quarter_bank,
    bs1770_bank,
    bs1770_oversampling,
    ceiling_peaks,
    interval_peaks,
    reconstruction_bank,
    reconstruction_peak,
    true_peak_dbtp,
)
from mixdown.multitrack import Multitrack
from mixdown.params import ChannelParams, ConsoleParams, MasterParams

CEILING = -1.0


def independent_dbtp(x: np.ndarray, up: int = 32) -> float:
    """Peak of ``resample_poly(x, up, 1)`` in dBFS, in blocks so that memory stays small."""
    x = np.asarray(x, dtype=np.float64)
    samples, block, margin = x.shape[-1], 1 << 14, 64
    peak = 0.0
    for start in range(0, samples, block):
        lo, hi = max(0, start - margin), min(samples, start + block + margin)
        y = scipy.signal.resample_poly(x[:, lo:hi], up, 1, axis=-1)
        first = (start - lo) * up if lo > 0 else 0  # interior block edges ring: keep only this block's points
        last = (min(samples, start + block) - lo) * up if hi < samples else y.shape[-1]
        peak = max(peak, float(np.abs(y[:, first:last]).max()))
    return 20.0 * np.log10(peak)


def _faded_sine(sr: int, freq: float, amplitude: float, phase_deg: float, seconds: float = 1.0) -> np.ndarray:
    """A stereo sine with 10 ms linear fades (as the Tech 3341 files), ``(2, samples)``."""
    t = np.arange(int(sr * seconds)) / sr
    fade = np.clip(np.minimum(t, t[-1] - t) / 0.01, 0.0, 1.0)
    return np.stack([amplitude * np.sin(2 * np.pi * freq * t + np.deg2rad(phase_deg)) * fade] * 2)


def _tech3341_burst(sr: int, offset: int) -> np.ndarray:
    """Cases 20-23: a 0.50 FFS sine at fs/6 holding one period of a 1.00 FFS sine at fs/4, made at 4 fs
    (the period starts and ends on zero crossings of the fs/6 sine), low-pass filtered and decimated by 4
    starting ``offset`` samples in (0-3)."""
    n = 4 * sr
    x = 0.5 * np.sin(2 * np.pi * np.arange(n) / 24.0)  # fs/6 at 4 fs: 24 samples a period
    start = n // 2 // 24 * 24
    x[start:start + 16] = np.sin(2 * np.pi * np.arange(16) / 16.0)  # fs/4 at 4 fs: 16 samples
    x[start + 16:] = 0.5 * np.sin(2 * np.pi * np.arange(n - start - 16) / 24.0)
    return np.stack([scipy.signal.resample_poly(x[offset:], 1, 4)] * 2)


# EBU Tech 3341 v4 (2016), Table 1, cases 15-23, as transcribed in the phonometry project's
# tests/reference_data/broadcast.py (github.com/jmrplens/phonometry): stereo signals at the file's
# rate fs, expected maximum true-peak level, tolerance +0.2/-0.4 dB.
TECH3341_TRUE_PEAK = {
    15: (lambda sr: _faded_sine(sr, sr / 4, 0.50, 0.0), -6.0),
    16: (lambda sr: _faded_sine(sr, sr / 4, 0.50, 45.0), -6.0),
    17: (lambda sr: _faded_sine(sr, sr / 6, 0.50, 60.0), -6.0),
    18: (lambda sr: _faded_sine(sr, sr / 8, 0.50, 67.5), -6.0),
    19: (lambda sr: _faded_sine(sr, sr / 4, 1.41, 45.0), 3.0),
    20: (lambda sr: _tech3341_burst(sr, 0), 0.0),
    21: (lambda sr: _tech3341_burst(sr, 1), 0.0),
    22: (lambda sr: _tech3341_burst(sr, 2), 0.0),
    23: (lambda sr: _tech3341_burst(sr, 3), 0.0),
}


@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("case", sorted(TECH3341_TRUE_PEAK))
def test_bs1770_meter_passes_ebu_tech3341_true_peak_cases(case, sr):
    make, expected = TECH3341_TRUE_PEAK[case]
    assert expected - 0.4 <= true_peak_dbtp(make(sr), sr) <= expected + 0.2


@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("freq", [19000.0, 20000.0])
def test_meter_reads_tones_near_nyquist_at_or_above_the_sample_peak(freq, sr):
    """The replaced meter read a -6.02 dBTP 19 kHz sine at 44.1 kHz as -6.35 (below its sample peak)."""
    x = _faded_sine(sr, freq, 10 ** (-6.02 / 20), 30.0)
    sample_peak = 20 * np.log10(np.abs(x).max())
    assert sample_peak <= true_peak_dbtp(x, sr) <= -6.02 + 0.2


@pytest.mark.parametrize(("sr", "factor"), [(96000, 4), (48000, 4), (44100, 4), (32000, 8), (24000, 8),
                                            (22050, 8), (16000, 16), (8000, 16)])
def test_meter_oversamples_more_below_44k(sr, factor):
    assert bs1770_oversampling(sr) == factor == bs1770_bank(factor).factor
    assert true_peak_dbtp(_faded_sine(sr, sr / 4, 0.50, 45.0), sr) == pytest.approx(-6.02, abs=0.2)


def test_bs1770_filter_meets_its_design():
    """Each phase against an ideal fractional delay over the band it was fitted to (0-20 kHz at 48 kHz)."""
    for factor in (4, 8, 16):
        bank = bs1770_bank(factor)
        assert bank.taps.shape == (factor - 1, 12)
        positions = bank.first + np.arange(12)
        f = np.linspace(0.0, 0.4, 400)
        response = np.exp(-2j * np.pi * np.outer(f, positions)) @ bank.taps.T
        ideal = np.exp(-2j * np.pi * np.outer(f, bank.delays))
        assert np.abs(response - ideal).max() < 0.021
        gain_db = 20 * np.log10(np.abs(response))
        assert -0.12 < gain_db.min() and gain_db.max() < 0.18


def test_meter_never_reads_under_the_sample_peak_and_the_bound_holds():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5000)) * np.repeat(rng.uniform(0, 1, 50), 100)
    for bank in (bs1770_bank(4), reconstruction_bank()):
        peaks = interval_peaks(x, (bank,))
        magnitude = np.abs(x).max(axis=0)
        assert (peaks >= magnitude).all()
        near = scipy.ndimage.maximum_filter1d(magnitude, 2 * bank.reach + 1, mode="constant")
        assert (peaks <= bank.l1 * near + 1e-12).all()


def test_ceiling_peaks_are_exact_wherever_they_exceed_the_threshold():
    """Its tiers (a bound, quarter-sample points, the full reconstruction) only ever skip work."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 30000)) / 4
    full = interval_peaks(x, (bs1770_bank(4), reconstruction_bank()))
    for threshold in (0.5, 0.9, 1.2):
        got = ceiling_peaks(x, threshold, 44100)
        over = full > threshold
        np.testing.assert_array_equal(got[over], full[over])
        assert (got[~over] <= threshold).all()


@pytest.mark.parametrize("threads", [1, 2])
def test_exact_peaks_equal_explicit_tap_sums_for_any_grouping_of_intervals(threads):
    """The interval kernel (runs of consecutive intervals as FIRs, isolated ones as tap sums, split across
    threads) against the definition: the largest |sum_k taps[p, k] x[c, n + first + k]| and |x[c, n]|."""
    import numba

    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3000)).astype(np.float32)
    banks = (bs1770_bank(4), _quarter_bank(), reconstruction_bank())
    reach = max(bank.reach for bank in banks)
    xp = np.pad(x, ((0, 0), (reach, reach))).astype(np.float64)
    # isolated intervals, short runs, a run longer than a task's (256) and both ends of the signal
    index = np.unique(np.concatenate([[0, 1, 5, 9, 10, 11], np.arange(100, 106), np.arange(400, 1000),
                                      rng.choice(3000, 300, replace=False), [2998, 2999]]))
    expected = np.abs(x[:, index]).max(axis=0).astype(np.float64)
    for bank in banks:
        windows = np.stack([xp[:, index + reach + bank.first + k] for k in range(bank.taps.shape[1])], -1)
        values = np.einsum("pk,cik->cpi", bank.taps, windows)
        expected = np.maximum(expected, np.abs(values).max(axis=(0, 1)))
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        got = _exact_peaks(np.pad(x, ((0, 0), (reach, reach))), reach, index, banks, np.zeros(len(index)))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_reconstruction_agrees_with_an_independent_oversampler():
    rng = np.random.default_rng(2)
    t = np.arange(44100) / 44100
    signals = [rng.standard_normal((2, 44100)) / 4, _faded_sine(44100, 997.0, 0.5, 0.0),
               np.stack([np.sign(np.sin(2 * np.pi * 3000 * t + 0.1))] * 2),
               np.stack([scipy.signal.chirp(t, 100.0, 1.0, 22000.0)] * 2)]
    for x in signals:
        ours = 20 * np.log10(reconstruction_peak(x))
        assert -0.08 < ours - independent_dbtp(x) < 0.3


def _loud_signals(sr: int) -> dict[str, np.ndarray]:
    """Hard material for a ceiling, 6 dB and more over full scale, ``(2, samples)``, 0.5 s."""
    rng = np.random.default_rng(sr)
    n = sr // 2
    t = np.arange(n) / sr
    square = np.sign(np.sin(2 * np.pi * 3000.0 * t + 0.1))
    return {
        "white_noise": rng.uniform(-2.0, 2.0, (2, n)),
        "gaussian_bursts": rng.standard_normal((2, n)) * np.repeat(rng.uniform(0.2, 2.0, 50), n // 50 + 1)[:n],
        "square_3k_full_scale": np.stack([2.0 * square, 2.0 * np.roll(square, 3)]),
        "sine_19k": 2.0 * _faded_sine(sr, 19000.0, 1.0, 40.0, 0.5),
        "sine_20k": 2.0 * _faded_sine(sr, 20000.0, 1.0, 80.0, 0.5),
        "chirp_to_nyquist": 2.0 * np.stack([scipy.signal.chirp(t, 15000.0, t[-1], sr / 2)] * 2),
    }


@pytest.mark.parametrize("sr", [44100, 48000])
def test_limiter_holds_the_ceiling_by_an_independent_meter(sr):
    for name, x in _loud_signals(sr).items():
        out = limit(x.astype(np.float32), CEILING, sr)
        assert out.dtype == np.float32
        for up in (16, 32):
            assert independent_dbtp(out, up) <= CEILING, (name, up)
        assert true_peak_dbtp(out, sr) <= CEILING, name


def test_limiter_is_transparent_under_the_ceiling():
    """Under the ceiling (by its safety margin) nothing changes, to the bit; over it, only the look-ahead
    ramps around the peaks move."""
    sr = 44100
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 3 * sr)) * 0.1).astype(np.float32)
    peak_db = 20 * np.log10(reconstruction_peak(x))
    under = x * np.float32(10 ** ((CEILING - SAFETY_MARGIN_DB - 0.01 - peak_db) / 20))
    assert independent_dbtp(under) < CEILING
    np.testing.assert_array_equal(limit(under, CEILING, sr), under)
    np.testing.assert_array_equal(limiter_gain(under, CEILING, sr), np.ones(under.shape[-1]))
    clicks = [20000, 70000, 110000]
    loud = under.copy()
    for at in clicks:
        loud[:, at:at + 40] *= 4.0  # 12 dB over the rest for 1 ms
    gain = limiter_gain(loud, CEILING, sr)
    reach = round(0.005 * sr) * 3 // 2 + 25  # look-ahead, half of it for the smoothing, the filters' reach
    distance = np.min([np.abs(np.arange(len(gain)) - at - 20) for at in clicks], axis=0)
    np.testing.assert_array_equal(gain[distance > reach + 20], 1.0)
    assert all(gain[at:at + 40].max() < 10 ** (-6 / 20) for at in clicks)
    assert independent_dbtp(loud * gain) <= CEILING


def test_limiter_blocks_give_the_same_gain(monkeypatch):
    """Blocks with margins: the gain does not depend on where the blocks fall (peaks straddle them)."""
    sr = 44100
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5 * sr)) * np.repeat(rng.uniform(0.1, 0.6, 50), sr // 10)
    whole = limiter_gain(x, CEILING, sr)
    monkeypatch.setattr(limiter_module, "CHUNK", 4096)
    blocked = limiter_gain(x, CEILING, sr)
    np.testing.assert_allclose(blocked, whole, rtol=0, atol=1e-6)  # the moving average's running-sum rounding
    assert (whole < 1.0).any()


def _hot_params(names: list[str], sr: int) -> ConsoleParams:
    """Faders +12 dB, loudness normalisation off: the limiter does all the work."""
    return ConsoleParams(channels=[ChannelParams(name=n, gain_db=12.0) for n in names],
                         master=MasterParams(target_lufs=None, ceiling_dbtp=CEILING), sample_rate=sr)


@pytest.mark.parametrize("name", ["white_noise", "square_3k_full_scale", "sine_20k"])
def test_render_and_render_tensor_hold_the_ceiling(name):
    """Through the console (the limiter's gain applied in place to the streamed mix, and in the autograd path)."""
    sr = 44100
    audio = (0.5 * _loud_signals(sr)[name]).astype(np.float32)
    params = _hot_params([name], sr)
    mix = render(Multitrack.from_arrays({name: audio}, sr), params)
    assert independent_dbtp(mix, 16) <= CEILING and independent_dbtp(mix, 32) <= CEILING
    tensor_mix = render_tensor(torch.from_numpy(audio)[None, None], ConsoleTensors.from_params([params]),
                               torch.tensor([[True]]), sr)[0].detach().numpy()
    assert independent_dbtp(tensor_mix, 32) <= CEILING
    np.testing.assert_allclose(tensor_mix, mix, rtol=0, atol=1e-5)


METHOD_WEIGHTS = {"mono": None, "random": None, "rules": None, "forest": "forest.npz",
                  "producer": "producer.npz", "estimator": "estimator.pt", "dmc": "dmc.pt"}


@pytest.fixture(scope="module")
def hard_multitracks() -> dict[str, Multitrack]:
    """A 2-s excerpt of the demo song, and a multitrack of noise, a full-scale square and 19 and 20 kHz sines."""
    from mixdown.synth.demo import demo_multitrack_arrays

    sr = 44100
    demo = {name: audio[:, :2 * sr] for name, audio in demo_multitrack_arrays(sr).items()}
    rng = np.random.default_rng(5)
    t = np.arange(2 * sr) / sr
    synthetic = {"noise": rng.uniform(-1.0, 1.0, (2, 2 * sr)),
                 "square": np.sign(np.sin(2 * np.pi * 997.0 * t))[None],
                 "sine_19k": _faded_sine(sr, 19000.0, 1.0, 0.0, 2.0),
                 "sine_20k": _faded_sine(sr, 20000.0, 1.0, 90.0, 2.0)[:1]}
    return {"demo": Multitrack.from_arrays(demo, sr),
            "synthetic": Multitrack.from_arrays({k: v.astype(np.float32) for k, v in synthetic.items()}, sr)}


@pytest.mark.parametrize("method", sorted(METHOD_WEIGHTS))
def test_every_method_mix_holds_the_ceiling(method, hard_multitracks):
    """Every method that runs without training (those whose shipped weights are installed)."""
    from mixdown.api import mix
    from mixdown.weights import shipped

    weights = METHOD_WEIGHTS[method]
    if weights is not None and not shipped(weights).is_file():
        pytest.skip(f"{weights} is not installed")
    for name, multitrack in hard_multitracks.items():
        result = mix(multitrack, method, **({"seed": 0} if method == "random" else {}))
        ceiling = result.params.master.ceiling_dbtp
        assert ceiling is not None
        assert independent_dbtp(result.mix, 16) <= ceiling and independent_dbtp(result.mix, 32) <= ceiling, name
