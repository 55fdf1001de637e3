"""StereoLoss: known answers, the left/right symmetry, auraloss reference, gradients, shapes; FixedTargetLoss."""

from __future__ import annotations

import math

import auraloss
import pytest
import torch

from mixdown.losses import FixedTargetLoss, StereoLoss, StereoLossConfig

SAMPLES = 16384
SPECTRAL = StereoLossConfig(fft_sizes=(256, 1024, 4096))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: these short signals gain nothing from thread hand-offs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _noise(batch: int = 1, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """White stereo noise, partly correlated between the sides (right quieter): ``(batch, 2, SAMPLES)``."""
    generator = torch.Generator().manual_seed(seed)
    common = torch.randn(batch, 1, SAMPLES, generator=generator, dtype=dtype)
    sides = torch.randn(batch, 2, SAMPLES, generator=generator, dtype=dtype)
    return 0.1 * (common + 0.5 * sides) * torch.tensor([1.0, 0.6], dtype=dtype)[:, None]


@pytest.mark.parametrize("batch", [1, 3])
def test_identical_mixes_cost_nothing(batch):
    x = _noise(batch)
    assert float(StereoLoss(SPECTRAL)(x, x)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("scale", [0.5, 0.8, 1.25, 2.0])
def test_scaled_estimate_known_answer(scale):
    # |STFT(a y)| = a |STFT(y)|: spectral convergence is |1 - a| and the log-magnitude
    # L1 is |ln a| at every resolution, for the sum and the difference alike.
    y = _noise()
    loss = StereoLoss(SPECTRAL)(scale * y, y)
    assert float(loss) == pytest.approx(abs(1.0 - scale) + abs(math.log(scale)), rel=1e-4)


def test_time_l1_term_known_answer():
    y = _noise()
    config = StereoLossConfig(fft_sizes=(256,), sum_weight=0.0, difference_weight=0.0, time_l1_weight=2.0)
    assert float(StereoLoss(config)(y + 0.25, y)) == pytest.approx(2.0 * 0.25, rel=1e-5)


def test_matches_auraloss_sum_and_difference():
    estimate, target = _noise(seed=1), _noise(seed=2)
    reference = auraloss.freq.SumAndDifferenceSTFTLoss(
        fft_sizes=[256, 1024, 4096], hop_sizes=[64, 256, 1024], win_lengths=[256, 1024, 4096])
    assert float(StereoLoss(SPECTRAL)(estimate, target)) == pytest.approx(float(reference(estimate, target)), rel=1e-5)


def test_swapping_both_mixes_changes_nothing():
    estimate, target = _noise(seed=1), _noise(seed=2)
    loss = StereoLoss(SPECTRAL)
    assert float(loss(estimate.flip(1), target.flip(1))) == pytest.approx(float(loss(estimate, target)), rel=1e-5)


def test_mirrored_mix_costs_nothing_unlike_per_channel_stft():
    target = _noise()
    mirrored = target.flip(1)  # a correct mix with left and right swapped
    per_channel = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=[256, 1024, 4096], hop_sizes=[64, 256, 1024], win_lengths=[256, 1024, 4096])
    assert float(StereoLoss(SPECTRAL)(mirrored, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(per_channel(mirrored, target)) > 0.3
    assert float(StereoLoss(SPECTRAL)(mirrored, target)) < 1e-3 * float(per_channel(mirrored, target))


def test_time_l1_term_sees_orientation():
    target = _noise()
    config = StereoLossConfig(fft_sizes=(256, 1024), time_l1_weight=1.0)
    assert float(StereoLoss(config)(target.flip(1), target)) > 0.01


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_batch_equals_one_at_a_time(reduction):
    estimate, target = _noise(3, seed=1), _noise(3, seed=2)
    single = torch.stack([StereoLoss(SPECTRAL)(estimate[i:i + 1], target[i:i + 1]) for i in range(3)])
    batched = StereoLoss(SPECTRAL, reduction=reduction)(estimate, target)
    expected = {"mean": single.mean(), "sum": single.sum(), "none": single}[reduction]
    assert batched.shape == expected.shape
    torch.testing.assert_close(batched, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("time_l1_weight", [0.0, 0.5])
def test_fixed_target_equals_stereo_loss(reduction, time_l1_weight):
    """The target's spectra computed once: the same value as `StereoLoss` (the same operations), for every
    estimate scored against it."""
    loss = StereoLoss(StereoLossConfig(fft_sizes=(256, 1024, 4096), time_l1_weight=time_l1_weight), reduction)
    target = _noise(2, seed=2)
    fixed = FixedTargetLoss(loss, target)
    for seed in (1, 3):
        estimate = _noise(2, seed=seed)
        torch.testing.assert_close(fixed(estimate), loss(estimate, target), rtol=1e-6, atol=0.0)


def test_fixed_target_passes_gradients_to_the_estimate_only():
    target = _noise(seed=2).requires_grad_(True)
    estimate = _noise(seed=1).requires_grad_(True)
    FixedTargetLoss(StereoLoss(SPECTRAL), target)(estimate).backward()
    assert float(estimate.grad.abs().sum()) > 0.0 and target.grad is None


@pytest.mark.parametrize("shape", [(1, 2, SAMPLES - 1), (2, 2, SAMPLES), (1, 1, SAMPLES)])
def test_fixed_target_rejects_other_shapes(shape):
    fixed = FixedTargetLoss(StereoLoss(SPECTRAL), _noise())
    with pytest.raises(ValueError, match="batch, 2, samples"):
        fixed(torch.zeros(shape))


def test_fixed_target_rejects_a_short_target():
    with pytest.raises(ValueError, match="shorter"):
        FixedTargetLoss(StereoLoss(SPECTRAL), torch.zeros(1, 2, SPECTRAL.min_samples - 1))


def test_gradient_matches_finite_differences():
    # d loss / d gain for estimate = gain * x, in float64, against a central difference.
    x, target = _noise(seed=1, dtype=torch.float64), _noise(seed=2, dtype=torch.float64)
    loss = StereoLoss(StereoLossConfig(fft_sizes=(256, 1024), time_l1_weight=0.5))
    gain = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    loss(gain * x, target).backward()
    h = 1e-5
    numeric = (float(loss((0.7 + h) * x, target)) - float(loss((0.7 - h) * x, target))) / (2 * h)
    assert gain.grad is not None and torch.isfinite(gain.grad)
    assert float(gain.grad) == pytest.approx(numeric, rel=1e-4)


def test_gradient_reaches_every_sample():
    target = _noise(seed=2)
    estimate = _noise(seed=1).requires_grad_(True)
    StereoLoss(SPECTRAL)(estimate, target).backward()
    assert torch.isfinite(estimate.grad).all() and float(estimate.grad.abs().sum()) > 0.0


def test_silence_stays_finite():
    silent = torch.zeros(1, 2, SAMPLES)
    assert math.isfinite(float(StereoLoss(SPECTRAL)(_noise(), silent)))


@pytest.mark.parametrize("shape", [(1, 1, SAMPLES), (1, 3, SAMPLES), (2, SAMPLES)])
def test_rejects_non_stereo_shapes(shape):
    with pytest.raises(ValueError, match="batch, 2, samples"):
        StereoLoss(SPECTRAL)(torch.zeros(shape), torch.zeros(shape))


def test_rejects_signals_shorter_than_the_largest_fft():
    short = torch.zeros(1, 2, SPECTRAL.min_samples - 1)
    with pytest.raises(ValueError, match="shorter"):
        StereoLoss(SPECTRAL)(short, short)


@pytest.mark.parametrize("kwargs", [{"fft_sizes": ()}, {"hop_fraction": 0.0}, {"time_l1_weight": -1.0}, {"eps": 0.0}])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        StereoLossConfig(**kwargs)
