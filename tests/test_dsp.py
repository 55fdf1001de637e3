"""Known-answer, reference and gradient checks for the console DSP."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyloudnorm
import pytest
import scipy.signal
import torch

from mixdown.dsp.compressor import compressor, static_gain_reduction
from mixdown.dsp.eq import (
    BAND_TYPE_IDS,
    BYPASS,
    biquad_coefficients,
    eq_response_db,
    frequency_response,
    parametric_eq,
)
from mixdown.dsp.iir import biquad
from mixdown.dsp.limiter import limit, true_peak_dbtp
from mixdown.dsp.loudness import LoudnessMeter, integrated_loudness
from mixdown.dsp.pan import pan, pan_gains, pan_matrix
from mixdown.dsp.reverb import (
    STREAM_FFT_FRAMES,
    fft_convolve,
    impulse_response,
    reverb,
    stream_block_frames,
)

SR = 44100


def _sine(freq: float, seconds: float, amplitude: float = 0.5, sr: int = SR) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return amplitude * torch.sin(2 * math.pi * freq * t)


def _db(x: float) -> float:
    return 20 * math.log10(x)


# --- EQ -------------------------------------------------------------------------------

@pytest.mark.parametrize("band", ["peak", "low_shelf", "high_shelf"])
@pytest.mark.parametrize("gain_db", [-12.0, -3.0, 6.0, 15.0])
def test_eq_band_gain_at_its_frequency(band, gain_db):
    """A bell's response at its centre equals its gain; a shelf reaches it deep in its shelf."""
    freq = 1000.0
    b, a = biquad_coefficients(torch.tensor(BAND_TYPE_IDS[band]), torch.tensor(freq, dtype=torch.float64),
                               torch.tensor(gain_db, dtype=torch.float64), torch.tensor(0.707, dtype=torch.float64), SR)
    probe = {"peak": freq, "low_shelf": 20.0, "high_shelf": 20000.0}[band]
    response = frequency_response(b, a, torch.tensor([probe]), SR).abs()
    assert _db(float(response[0])) == pytest.approx(gain_db, abs=0.1)


def test_shelf_is_half_gain_at_its_corner():
    """RBJ shelves pass half their dB gain at the corner frequency."""
    b, a = biquad_coefficients(torch.tensor(BAND_TYPE_IDS["low_shelf"]), torch.tensor(200.0, dtype=torch.float64),
                               torch.tensor(10.0, dtype=torch.float64), torch.tensor(0.707, dtype=torch.float64), SR)
    assert _db(float(frequency_response(b, a, torch.tensor([200.0]), SR).abs()[0])) == pytest.approx(5.0, abs=0.1)


@pytest.mark.parametrize("band,expect_db", [("highpass", -3.0), ("lowpass", -3.0)])
def test_pass_filters_are_3db_down_at_cutoff(band, expect_db):
    b, a = biquad_coefficients(torch.tensor(BAND_TYPE_IDS[band]), torch.tensor(500.0, dtype=torch.float64),
                               torch.tensor(0.0, dtype=torch.float64), torch.tensor(1 / math.sqrt(2), dtype=torch.float64), SR)
    assert _db(float(frequency_response(b, a, torch.tensor([500.0]), SR).abs()[0])) == pytest.approx(expect_db, abs=0.05)


def test_eq_filtering_matches_its_analytic_response():
    """A steady sine through a band cascade comes out scaled by the product of |H|."""
    types = torch.tensor([[BAND_TYPE_IDS["peak"], BAND_TYPE_IDS["highpass"]]])
    freq = torch.tensor([[1000.0, 300.0]], dtype=torch.float64)
    gain = torch.tensor([[6.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([[1.0, 0.707]], dtype=torch.float64)
    b, a = biquad_coefficients(types, freq, gain, q, SR)
    for probe in (300.0, 1000.0, 3000.0):
        expected = float(frequency_response(b[0], a[0], torch.tensor([probe]), SR).abs()[:, 0].prod())
        with torch.no_grad():
            y, _ = parametric_eq(_sine(probe, 0.5)[None, None], types, freq, gain, q, SR)
        assert _db(float(y[0, 0, SR // 4:].abs().max()) / 0.5) == pytest.approx(_db(expected), abs=0.05)


def _random_bands(rows: int, bands: int, seed: int, sr: int = SR) -> tuple[torch.Tensor, ...]:
    """Band settings ``(rows, bands)`` over the full schema ranges: every type, some empty slots."""
    g = torch.Generator().manual_seed(seed)
    types = torch.randint(-1, len(BAND_TYPE_IDS), (rows, bands), generator=g)
    uniform = lambda lo, hi: lo + (hi - lo) * torch.rand(rows, bands, generator=g, dtype=torch.float64)  # noqa: E731
    freq = torch.exp(uniform(math.log(10.0), math.log(0.45 * sr)))
    return types, freq, uniform(-24.0, 24.0), torch.exp(uniform(math.log(0.1), math.log(18.0)))


def test_eq_response_matches_scipy_freqz_of_the_coefficients():
    """Every band type over the full schema ranges, 20 Hz up to Nyquist: equal to freqz to float64 rounding."""
    types, freq, gain, q = _random_bands(rows=64, bands=3, seed=0)
    at_hz = np.geomspace(20.0, 0.49 * SR, 200)
    got = eq_response_db(types, freq, gain, q, SR, torch.from_numpy(at_hz))
    assert got.shape == (64, 200) and got.dtype == torch.float64
    b, a = biquad_coefficients(types, freq, gain, q, SR)
    for row in range(64):
        response = np.ones(len(at_hz), dtype=complex)
        for band in range(3):
            _, h = scipy.signal.freqz(b[row, band].numpy(), a[row, band].numpy(), worN=at_hz, fs=SR)
            response *= h
        expected = 20.0 * np.log10(np.abs(response))
        np.testing.assert_allclose(got[row].numpy(), expected, atol=1e-8, rtol=0)


def test_eq_response_matches_the_consoles_filter_on_an_impulse():
    """The measured response of `parametric_eq` (the console's fused filter) at every DFT bin, 20 Hz - 20 kHz."""
    ids = {**BAND_TYPE_IDS, "bypass": BYPASS}
    types = torch.tensor([[ids[n] for n in ("highpass", "low_shelf", "peak", "high_shelf", "lowpass")],
                          [ids[n] for n in ("peak", "bypass", "low_shelf", "peak", "high_shelf")]])
    freq = torch.tensor([[40.0, 150.0, 1200.0, 6000.0, 16000.0], [90.0, 1000.0, 400.0, 3000.0, 9000.0]],
                        dtype=torch.float64)
    gain = torch.tensor([[0.0, -4.0, 6.0, 3.0, 0.0], [-9.0, 12.0, 5.0, -6.0, 4.0]], dtype=torch.float64)
    q = torch.tensor([[0.707, 0.707, 2.5, 0.707, 0.9], [4.0, 1.0, 0.5, 1.5, 0.707]], dtype=torch.float64)
    n = 1 << 16
    impulse = torch.zeros(2, 1, n, dtype=torch.float64)
    impulse[..., 0] = 1.0
    with torch.no_grad():
        y, _ = parametric_eq(impulse, types, freq, gain, q, SR)
    bins = torch.fft.rfftfreq(n, 1.0 / SR, dtype=torch.float64)
    keep = (bins >= 20.0) & (bins <= 20000.0)
    measured = 20.0 * torch.log10(torch.fft.rfft(y[:, 0]).abs())[:, keep]
    torch.testing.assert_close(eq_response_db(types, freq, gain, q, SR, bins[keep]), measured, atol=1e-4, rtol=0)


def test_eq_response_is_batched_and_empty_is_flat():
    types, freq, gain, q = _random_bands(rows=6, bands=4, seed=1)
    at_hz = torch.tensor([30.0, 440.0, 9000.0], dtype=torch.float64)
    batched = eq_response_db(*(t.reshape(2, 3, 4) for t in (types, freq, gain, q)), SR, at_hz)
    assert batched.shape == (2, 3, 3)
    one_by_one = torch.stack([eq_response_db(types[i], freq[i], gain[i], q[i], SR, at_hz) for i in range(6)])
    torch.testing.assert_close(batched.reshape(6, 3), one_by_one, atol=1e-12, rtol=0)
    empty = torch.zeros(0, dtype=torch.float64)
    flat = eq_response_db(empty.long(), empty, empty, empty, SR, at_hz)
    assert torch.equal(flat, torch.zeros(3, dtype=torch.float64))


def test_eq_response_gradients_match_finite_differences():
    types = torch.tensor([BAND_TYPE_IDS["highpass"], BAND_TYPE_IDS["low_shelf"], BAND_TYPE_IDS["peak"]])
    freq = torch.tensor([50.0, 200.0, 2000.0], dtype=torch.float64, requires_grad=True)
    gain = torch.tensor([0.0, 3.0, -5.0], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([0.707, 0.8, 2.0], dtype=torch.float64, requires_grad=True)
    at_hz = torch.from_numpy(np.geomspace(200.0, 18000.0, 16))
    fn = lambda f, g, q: eq_response_db(types, f, g, q, SR, at_hz)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (freq, gain, q), eps=1e-6, atol=1e-5)


def test_biquad_matches_scipy_lfilter_and_streams():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 5000))
    coeffs = [scipy.signal.iirpeak(w, 3.0) for w in (0.05, 0.2, 0.4)]
    b = torch.tensor(np.stack([c[0] for c in coeffs]))
    a = torch.tensor(np.stack([c[1] for c in coeffs]))
    expected = np.stack([scipy.signal.lfilter(c[0], c[1], x[i], axis=-1) for i, c in enumerate(coeffs)])
    with torch.no_grad():
        whole, _ = biquad(torch.tensor(x), b, a)
        first, state = biquad(torch.tensor(x[..., :1234]), b, a)
        second, _ = biquad(torch.tensor(x[..., 1234:]), b, a, state)
    np.testing.assert_allclose(whole.numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(torch.cat([first, second], -1).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("rows", "channels"), [(1, 1), (3, 2), (9, 1), (11, 2)])
def test_biquad_cascade_matches_scipy_on_any_number_of_signals(rows, channels, threads):
    """The sample-interleaved kernel (groups of up to `LANES` signals, split across threads): each row
    through its own 4-section cascade (random bands over the schema's ranges) equals scipy's float64
    sosfilt, whole or streamed in two blocks."""
    import numba

    from mixdown.dsp.iir import biquad_cascade

    types, freq, gain, q = _random_bands(rows=rows, bands=4, seed=rows)
    b, a = biquad_coefficients(types, freq, gain, q, SR)
    x = torch.from_numpy(np.random.default_rng(rows).standard_normal((rows, channels, 3000)))
    expected = np.stack([scipy.signal.sosfilt(np.concatenate([b[r].numpy(), a[r].numpy()], -1), x[r].numpy())
                         for r in range(rows)])
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        whole, _ = biquad_cascade(x, b, a)
        first, state = biquad_cascade(x[..., :1111], b, a)
        second, _ = biquad_cascade(x[..., 1111:], b, a, state)
    finally:
        numba.set_num_threads(before)
    scale = np.abs(expected).max()
    # high-Q bands near 10 Hz amplify float64 rounding: 1e-9 of the peak
    np.testing.assert_allclose(whole.numpy() / scale, expected / scale, atol=1e-9, rtol=0)
    np.testing.assert_allclose(torch.cat([first, second], -1).numpy() / scale, expected / scale, atol=1e-9, rtol=0)


def test_unity_eq_bands_are_bit_exact():
    x = torch.randn(2, 2, 1000)
    types = torch.tensor([[BAND_TYPE_IDS["peak"], BAND_TYPE_IDS["low_shelf"], BYPASS]] * 2)
    zeros = torch.zeros(2, 3)
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            y, _ = parametric_eq(x, types, torch.full((2, 3), 500.0), zeros, torch.ones(2, 3), SR)
        assert torch.equal(y, x)


# --- pan ------------------------------------------------------------------------------

def test_centre_pan_is_minus_3db_per_side_for_mono():
    gains = pan_gains(torch.tensor([0.0]), torch.tensor([False]))[0]
    assert _db(float(gains[0])) == pytest.approx(-3.01, abs=0.01)
    assert _db(float(gains[1])) == pytest.approx(-3.01, abs=0.01)


@pytest.mark.parametrize("position", np.linspace(-1, 1, 9).tolist())
def test_pan_law_keeps_power_constant(position):
    gains = pan_gains(torch.tensor([position]), torch.tensor([False]))[0]
    assert float(gains.pow(2).sum()) == pytest.approx(1.0, abs=1e-6)


def test_hard_pan_and_stereo_balance():
    x = torch.randn(2, 2, 100)
    out = pan(x, torch.tensor([-1.0, 0.0]), torch.tensor([False, True]))
    assert torch.allclose(out[0, 0], x[0, 0], atol=1e-6) and out[0, 1].abs().max() < 1e-6  # hard left mono
    assert torch.allclose(out[1], x[1], atol=1e-6)  # a centred stereo stem passes unchanged


@pytest.mark.parametrize("channels", [1, 2])
def test_pan_matrix_equals_pan(channels):
    """Row by row, the matrix applied to the row equals `pan` (mono, stereo, and mono stored twice)."""
    x = torch.randn(3, channels, 50, generator=torch.Generator().manual_seed(channels))
    position, stereo = torch.tensor([-0.4, 0.3, 1.0]), torch.tensor([False, True, False])
    gain = torch.tensor([0.5, 2.0, 1.0])
    matrix = pan_matrix(position, stereo, channels, gain=gain)
    assert matrix.shape == (3, 2, channels)
    torch.testing.assert_close(matrix @ x, pan(x, position, stereo, gain=gain), atol=1e-6, rtol=0)


# --- compressor -----------------------------------------------------------------------

def _settings(**values):
    defaults = dict(threshold_db=-20.0, ratio=4.0, attack_ms=5.0, release_ms=200.0, knee_db=0.0, makeup_db=0.0)
    defaults.update(values)
    return [torch.tensor([defaults[k]], dtype=torch.float64) for k in
            ("threshold_db", "ratio", "attack_ms", "release_ms", "knee_db", "makeup_db")]


@pytest.mark.parametrize("threshold_db,ratio,level_db", [(-20.0, 4.0, -6.0), (-30.0, 2.0, -10.0), (-12.0, 10.0, -3.0)])
def test_compressor_static_curve_on_a_steady_sine(threshold_db, ratio, level_db):
    """Peak output of a steady sine above threshold is T + (L - T) / R within 0.5 dB.

    A fast attack and slow release let the peak detector settle on the sine's peak, so
    the output shows the static curve rather than the ballistics.
    """
    amplitude = 10 ** (level_db / 20)
    x = _sine(1000.0, 1.0, amplitude)[None, None]
    with torch.no_grad():
        y, _ = compressor(x, *_settings(threshold_db=threshold_db, ratio=ratio, attack_ms=0.2, release_ms=500.0),
                          sample_rate=SR)
    out_db = _db(float(y[0, 0, SR // 2:].abs().max()))
    assert out_db == pytest.approx(threshold_db + (level_db - threshold_db) / ratio, abs=0.5)


def test_compressor_below_threshold_and_unity_ratio_are_transparent():
    x = _sine(440.0, 0.3, 0.01)[None, None]  # -40 dBFS, under a -20 dB threshold
    with torch.no_grad():
        quiet, _ = compressor(x, *_settings(), sample_rate=SR)
        bypass, _ = compressor(x * 50, *_settings(ratio=1.0), sample_rate=SR)
    assert torch.allclose(quiet, x, atol=1e-12)
    assert torch.equal(bypass, x * 50)


def test_soft_knee_curve_is_continuous_and_matches_hard_outside_knee():
    levels = torch.linspace(-40, 0, 401, dtype=torch.float64)
    soft = static_gain_reduction(levels, -20.0, 4.0, 10.0)
    hard = static_gain_reduction(levels, -20.0, 4.0, 0.0)
    outside = (levels < -25) | (levels > -15)
    assert torch.allclose(soft[outside], hard[outside])
    assert soft.diff().abs().max() < 0.1  # no jumps


def test_compressor_streams_identically():
    x = torch.randn(2, 2, 4000, dtype=torch.float64) * 0.5
    settings = [s.expand(2).clone() for s in _settings(knee_db=6.0)]
    with torch.no_grad():
        whole, _ = compressor(x, *settings, sample_rate=SR)
        a, state = compressor(x[..., :1500], *settings, sample_rate=SR)
        b, _ = compressor(x[..., 1500:], *settings, sample_rate=SR, state=state)
    assert torch.allclose(torch.cat([a, b], -1), whole, atol=1e-12)


@pytest.mark.parametrize("channels", [1, 2])
def test_compressor_render_kernel_equals_the_differentiable_path(channels):
    """The block-wise SIMD kernel (polynomial log and exp, branch-free curve, rows side by side) against
    the per-sample recursion of the autograd path, on more rows than one group holds, each with its own
    settings (hard and soft knees, a 1:1 row, makeup), float32 audio as the console renders it."""
    rows = 11
    g = torch.Generator().manual_seed(channels)
    envelope = torch.rand(rows, 1, 40, generator=g).repeat_interleave(250, dim=-1)
    x = (torch.randn(rows, channels, 10000, generator=g) * envelope).float()
    settings = [torch.linspace(-40.0, -5.0, rows), torch.linspace(1.0, 12.0, rows), torch.linspace(0.5, 40.0, rows),
                torch.linspace(30.0, 600.0, rows), torch.linspace(0.0, 12.0, rows), torch.linspace(0.0, 6.0, rows)]
    with torch.no_grad():
        rendered, final = compressor(x, *settings, sample_rate=SR)
    differentiable, final_grad = compressor(x.clone().requires_grad_(), *settings, sample_rate=SR)
    torch.testing.assert_close(rendered, differentiable.detach(), atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(final, final_grad, atol=1e-4, rtol=0)


# --- gradients (finite differences, float64) -------------------------------------------

def test_biquad_gradients_match_finite_differences():
    torch.manual_seed(0)
    x = (torch.randn(2, 2, 200, dtype=torch.float64) * 0.5).requires_grad_()
    b = torch.tensor([[0.2, 0.3, 0.1], [1.0, -1.5, 0.6]], dtype=torch.float64, requires_grad=True)
    a = torch.tensor([[1.0, -0.5, 0.2], [1.0, -1.2, 0.5]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, b, a: biquad(x, b, a)[0], (x, b, a))


def test_eq_parameter_gradients_match_finite_differences():
    torch.manual_seed(1)
    x = torch.randn(1, 1, 400, dtype=torch.float64)
    types = torch.tensor([[BAND_TYPE_IDS["low_shelf"], BAND_TYPE_IDS["peak"], BAND_TYPE_IDS["highpass"]]])
    freq = torch.tensor([[200.0, 2000.0, 60.0]], dtype=torch.float64, requires_grad=True)
    gain = torch.tensor([[3.0, -4.0, 0.0]], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([[0.7, 2.0, 0.7]], dtype=torch.float64, requires_grad=True)
    fn = lambda f, g, q: parametric_eq(x, types, f, g, q, 8000)[0]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (freq, gain, q), eps=1e-6, atol=1e-5)


def test_compressor_gradients_match_finite_differences():
    torch.manual_seed(2)
    x = (torch.randn(2, 2, 300, dtype=torch.float64) * 0.5).requires_grad_()
    params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in
              ([-20.0, -10.0], [4.0, 2.0], [1.0, 3.0], [10.0, 30.0], [6.0, 3.0], [2.0, 1.0])]
    assert torch.autograd.gradcheck(lambda *a: compressor(*a, sample_rate=8000)[0], (x, *params), eps=1e-6, atol=1e-4)


def test_reverb_decay_gradient_matches_finite_difference():
    send = torch.randn(1, 2, 300, dtype=torch.float64)
    decay = torch.tensor(0.0512, dtype=torch.float64, requires_grad=True)  # away from a tap-count step
    fn = lambda d: reverb(send, impulse_response(d, 0.0, 8000))[0].pow(2).sum()  # noqa: E731
    fn(decay).backward()
    eps = 1e-6
    numeric = (fn(decay.detach() + eps) - fn(decay.detach() - eps)) / (2 * eps)
    assert float(decay.grad) == pytest.approx(float(numeric), rel=1e-3)


# --- reverb ---------------------------------------------------------------------------

def test_reverb_impulse_response_decays_60db_in_decay_time():
    ir = impulse_response(torch.tensor(1.0, dtype=torch.float64), 0.0, 8000)
    energy = ir.pow(2).sum(0)
    early = energy[:400].mean()  # first 50 ms
    late = energy[int(0.9 * 8000):int(0.95 * 8000)].mean()
    decay_db_per_s = 10 * math.log10(float(early / late)) / (0.925 - 0.025)
    assert decay_db_per_s == pytest.approx(60.0, rel=0.15)


@pytest.mark.parametrize("taps", [1, 1000, 71442, STREAM_FFT_FRAMES // 2, STREAM_FFT_FRAMES // 2 + 1, 400000])
def test_stream_blocks_fill_power_of_two_ffts(taps):
    """A streamed block plus the response's tail is exactly one FFT of at least STREAM_FFT_FRAMES points,
    at least half of it new signal."""
    block = stream_block_frames(taps)
    size = block + taps - 1
    assert size & (size - 1) == 0 and size >= STREAM_FFT_FRAMES
    assert block >= size // 2 + 1


def test_reverb_streaming_equals_one_block():
    send = torch.randn(1, 2, 3000)
    ir = impulse_response(torch.tensor(0.2), 10.0, 8000)
    whole, _ = reverb(send, ir)
    a, tail = reverb(send[..., :1000], ir)
    b, tail = reverb(send[..., 1000:2100], ir, tail)
    c, _ = reverb(send[..., 2100:], ir, tail)
    assert torch.allclose(torch.cat([a, b, c], -1), whole, atol=1e-5)


@pytest.mark.parametrize("cuts", [(), (1000, 17000, 50000, 100001), (5, 6, 16390), (16384,)])
def test_streamed_reverb_is_exact(cuts):
    """Block boundaries anywhere (one sample apart, blocks far shorter than the response), batched with a
    response per mix: the streamed overlap-add equals one whole-signal FFT convolution to float64 rounding."""
    ir = impulse_response(torch.tensor(1.5, dtype=torch.float64), 15.0, SR)
    ir = torch.stack([ir, 0.5 * ir.flip(0)])
    send = torch.randn(2, 2, 150000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expected = fft_convolve(send, ir)[..., :send.shape[-1]]
    edges = (0, *cuts, send.shape[-1])
    tail, blocks, spectra = None, [], {}
    for begin, end in itertools.pairwise(edges):
        wet, tail = reverb(send[..., begin:end], ir, tail, spectra)
        blocks.append(wet)
    assert ir.shape[-1] > 50000 and tail.shape == (2, 2, ir.shape[-1] - 1)
    torch.testing.assert_close(torch.cat(blocks, -1), expected, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="carries"):
        reverb(send[..., :10], ir, tail[..., 1:])


# --- loudness and limiter -------------------------------------------------------------

@pytest.mark.parametrize("sr", [44100, 48000, 22050])
def test_loudness_matches_pyloudnorm(sr):
    rng = np.random.default_rng(sr)
    x = (rng.standard_normal((2, sr * 6)) * 0.1).astype(np.float32)
    x[:, : sr * 2] *= 0.01  # a quiet intro the relative gate must drop
    reference = pyloudnorm.Meter(sr, filter_class="DeMan").integrated_loudness(x.T.astype(np.float64))
    ours = float(integrated_loudness(torch.from_numpy(x)[None], sr)[0])
    meter = LoudnessMeter(sr)
    for start in range(0, x.shape[1], 7777):
        meter.update(torch.from_numpy(x[None, :, start:start + 7777]))
    assert ours == pytest.approx(reference, abs=0.01)
    assert float(meter.integrated()[0]) == pytest.approx(ours, abs=1e-4)


def test_loudness_of_a_997hz_sine_is_minus_3_lufs_per_channel_pair():
    """BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LUFS."""
    x = torch.zeros(1, 2, SR * 3)
    x[0, 0] = _sine(997.0, 3.0, 1.0).float()
    assert float(integrated_loudness(x, SR)[0]) == pytest.approx(-3.01, abs=0.05)


def test_true_peak_finds_intersample_peaks():
    """Steady state: 10 ms fades, so that no ringing at abrupt ends can lift the reading."""
    sr = 48000
    t = np.arange(sr) / sr
    fade = np.clip(np.minimum(t, t[-1] - t) / 0.01, 0.0, 1.0)
    x = np.stack([np.sin(2 * np.pi * sr / 4 * t + np.pi / 4) * fade] * 2)  # samples at 0.707, true peak 1.0
    assert _db(np.abs(x).max()) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_dbtp(x, sr) == pytest.approx(0.0, abs=0.1)


def test_limiter_respects_ceiling_and_leaves_quiet_audio_alone():
    t = np.arange(SR) / SR
    loud = np.stack([1.5 * np.sin(2 * np.pi * 997 * t)] * 2).astype(np.float32)
    quiet = loud * 0.1
    assert true_peak_dbtp(limit(loud, -1.0, SR)) <= -1.0 + 1e-6
    np.testing.assert_array_equal(limit(quiet, -1.0, SR), quiet)
