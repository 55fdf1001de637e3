"""Mix-Wave-U-Net: geometry, slots, context, chunked inference, checkpoints, training, mixer and CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mixdown import weights as weights_module
from mixdown.cli import main
from mixdown.dsp.limiter import true_peak_dbtp
from mixdown.errors import MixdownError
from mixdown.losses import StereoLoss, StereoLossConfig
from mixdown.mixers import METHODS, get_method
from mixdown.mixers.waveunet import WaveUNetMixer, run_network
from mixdown.models import build_model, load_model, save_model
from mixdown.models.waveunet import (
    WaveUNet,
    WaveUNetConfig,
    master,
    slot_stems,
    slot_table,
    upsample_linear,
)
from mixdown.multitrack import INSTRUMENT_CLASSES, Multitrack
from mixdown.weights import shipped

RATE = 8000
TINY = WaveUNetConfig(sample_rate=RATE, levels=3, channels=3, down_kernel=5, up_kernel=3)
DRUM_SLOTS = ("kick", "snare", "hihat", "tom", "overhead", "room", "other")


@pytest.fixture(autouse=True)
def _threads(one_thread):
    """One torch thread: these tiny models gain nothing from more."""


def tiny_model(config: WaveUNetConfig = TINY, seed: int = 0) -> WaveUNet:
    """A model with random weights of a useful size (default init is too timid to show much)."""
    torch.manual_seed(seed)
    model = WaveUNet(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    return model.eval()


def ids(*classes: str) -> torch.Tensor:
    return torch.tensor([[INSTRUMENT_CLASSES.index(c) for c in classes]])


@pytest.mark.parametrize("config", [TINY, WaveUNetConfig(), WaveUNetConfig(levels=8, channels=8, up_kernel=7)])
def test_geometry_is_centred_and_minimal(config):
    for bottleneck in (config.up_kernel, 7, 40):
        assert config.input_frames(bottleneck) - config.output_frames(bottleneck) == 2 * config.context
    for frames in (1, 2, config.grid - 1, config.grid, 1000, 4097):
        bottleneck = config.bottleneck_for(frames)
        assert config.output_frames(bottleneck) >= frames
        assert bottleneck == config.up_kernel or config.output_frames(bottleneck - 1) < frames


def test_network_sizes_agree_with_the_geometry():
    model = tiny_model()
    for bottleneck in (3, 4, 9):
        out = model.network(torch.zeros(2, TINY.input_channels, TINY.input_frames(bottleneck)))
        assert out.shape == (2, 2, TINY.output_frames(bottleneck))


def test_upsampling_interpolates_between_neighbours():
    x = torch.tensor([[[0.0, 2.0, -2.0, 4.0]]])
    assert torch.equal(upsample_linear(x), torch.tensor([[[0.0, 1.0, 2.0, 0.0, -2.0, 1.0, 4.0]]]))


@pytest.mark.parametrize("samples", [1, 5, 64, 257, 1000, 1023])
@pytest.mark.parametrize("channels", [1, 2])
def test_forward_keeps_the_length_for_any_number_of_samples(samples, channels):
    model = tiny_model()
    stems = 0.1 * torch.randn(2, 3, channels, samples)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    with torch.no_grad():
        mix = model(stems, mask, ids("kick", "snare", "bass").expand(2, -1), torch.zeros(2, 3, dtype=torch.bool)).mix
    assert mix.shape == (2, 2, samples) and torch.isfinite(mix).all()


@pytest.mark.parametrize("slots", [INSTRUMENT_CLASSES, DRUM_SLOTS])
def test_stems_are_summed_into_the_slots_of_their_class(slots):
    """Constant stems: each slot holds the sum of its stems, per channel; padding adds nothing."""
    levels = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    stems = levels[None, :, None, None].repeat(1, 1, 2, 5)
    stems[0, 3, 1] = 64.0  # the overhead is stereo: its right channel differs
    instruments = ids("kick", "tom", "tom", "overhead", "vocal", "kick")
    mask = torch.tensor([[True, True, True, True, True, False]])
    x = slot_stems(stems, mask, instruments, slot_table(slots), len(slots))
    expected = torch.zeros(len(slots), 2)
    expected[slots.index("kick")] = 1.0
    expected[slots.index("tom")] = 2.0 + 4.0
    expected[slots.index("overhead")] = torch.tensor([8.0, 64.0])
    expected[slots.index("vocal" if "vocal" in slots else "other")] = 16.0
    assert x.shape == (1, 2 * len(slots), 5)
    assert torch.equal(x[0, :, 0], expected.reshape(-1))


def test_a_mono_stem_fills_both_channels_of_its_slot():
    x = slot_stems(torch.ones(1, 1, 1, 4), torch.ones(1, 1, dtype=torch.bool), ids("bass"),
                   slot_table(INSTRUMENT_CLASSES), len(INSTRUMENT_CLASSES))
    bass = INSTRUMENT_CLASSES.index("bass")
    assert torch.equal(x[0, 2 * bass:2 * bass + 2], torch.ones(2, 4)) and x.sum() == 8.0


def test_an_output_sample_sees_the_context_plus_its_phase_on_the_grid():
    """The support of d output[t] / d input is one run reaching context .. context + grid - 1 per side."""
    model = tiny_model().double()
    context, grid = TINY.context, TINY.grid
    x = torch.randn(1, TINY.input_channels, 2 * context + 4 * grid, dtype=torch.float64, requires_grad=True)
    reaches = []
    for t in range(context + grid, context + 2 * grid):  # one output per phase on the grid
        (gradient,) = torch.autograd.grad(model.mix_slots(x)[0, 0, t], x)
        support = torch.nonzero(gradient.abs().sum(dim=(0, 1))).flatten()
        left, right = t - int(support.min()), int(support.max()) - t
        assert len(support) == left + right + 1
        reaches += [left, right]
        if t % grid == 0:  # on the coarsest grid: exactly the context to the left
            assert left == context
    assert min(reaches) == context and max(reaches) == context + grid - 1


def test_the_network_is_equivariant_to_shifts_on_its_grid_only():
    model = tiny_model()
    x = torch.randn(1, TINY.input_channels, TINY.input_frames(8) + TINY.grid)
    with torch.no_grad():
        whole = model.network(x[..., :TINY.input_frames(8)])
        on_grid = model.network(x[..., TINY.grid:])
        off_grid = model.network(x[..., 1:1 + TINY.input_frames(8)])
    overlap = whole.shape[-1] - TINY.grid
    torch.testing.assert_close(on_grid[..., :overlap], whole[..., TINY.grid:], rtol=0, atol=1e-5)
    assert (off_grid[..., :overlap] - whole[..., 1:1 + overlap]).abs().max() > 1e-3


@pytest.mark.parametrize("chunk_frames", [1, 8, 50, 64, 300, 10_000])
@pytest.mark.parametrize("cuts", [(), (137, 500), (1, 2, 3, 999)])
def test_chunked_inference_equals_the_whole_signal(chunk_frames, cuts):
    model = tiny_model()
    x = torch.randn(1, TINY.input_channels, 1000)
    with torch.no_grad():
        whole = model.mix_slots(x)[0].numpy()
    blocks = np.split(x[0].numpy(), cuts, axis=-1)
    chunked = np.concatenate(list(run_network(model, blocks, 1000, chunk_frames)), axis=-1)
    assert chunked.shape == (2, 1000)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-5)


def test_save_load_gives_the_same_output(tmp_path):
    model = tiny_model(seed=3)
    loaded = load_model(save_model(model, tmp_path / "waveunet.pt"))
    assert loaded.name == "waveunet" and loaded.sample_rate == RATE and loaded.model.config == TINY
    stems = 0.1 * torch.randn(1, 4, 2, 3000)
    mask = torch.ones(1, 4, dtype=torch.bool)
    args = (mask, ids("kick", "snare", "overhead", "bass"), mask)
    with torch.no_grad():
        assert torch.equal(model(stems, *args).mix, loaded.model(stems, *args).mix)


def test_untrained_model_starts_as_the_plain_sum_of_the_stems():
    """The output layer's direct half sums the slots; the U-Net half is what training adds."""
    model = WaveUNet(TINY)
    with torch.no_grad():
        model.output.weight[:, :TINY.channels].zero_()
    stems = torch.randn(1, 3, 2, 700)
    mix = slot_stems(stems, torch.ones(1, 3, dtype=torch.bool), ids("kick", "tom", "keys"),
                     slot_table(TINY.slots), len(TINY.slots))
    with torch.no_grad():
        torch.testing.assert_close(model.mix_slots(mix)[0], stems[0].sum(0), rtol=0, atol=1e-5)


def test_a_tiny_model_overfits_one_mix():
    """Kick hard left at half level, snare right: the stereo loss to that target drops far."""
    torch.manual_seed(1)
    config = WaveUNetConfig(sample_rate=RATE, levels=3, channels=4, down_kernel=5, up_kernel=3, target_lufs=None,
                            ceiling_dbtp=None)
    model = WaveUNet(config)
    stems = 0.3 * torch.randn(1, 2, 1, 1000)
    target = torch.stack([0.5 * stems[0, 0, 0], stems[0, 1, 0]])[None]
    args = (torch.ones(1, 2, dtype=torch.bool), ids("kick", "snare"), torch.zeros(1, 2, dtype=torch.bool))
    loss = StereoLoss(StereoLossConfig(fft_sizes=(64, 256), time_l1_weight=1.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(80):
        optimizer.zero_grad()
        value = loss(model(stems, *args).mix, target)
        value.backward()
        optimizer.step()
        losses.append(value.item())
    assert losses[-1] < 0.25 * losses[0]


@pytest.mark.parametrize("channels", [1, 2])
def test_forward_output_is_at_the_target_loudness(channels):
    import pyloudnorm

    model = tiny_model(WaveUNetConfig(sample_rate=RATE, levels=3, channels=3, down_kernel=5, up_kernel=3,
                                      target_lufs=-20.0, ceiling_dbtp=None))
    stems = 0.05 * torch.randn(1, 2, channels, 2 * RATE)
    with torch.no_grad():
        mix = model(stems, torch.ones(1, 2, dtype=torch.bool), ids("kick", "bass"), torch.zeros(1, 2, dtype=torch.bool))
    meter = pyloudnorm.Meter(RATE, filter_class="DeMan")  # the exact BS.1770 filters at any rate
    assert meter.integrated_loudness(mix.mix[0].numpy().T.astype(np.float64)) == pytest.approx(-20.0, abs=0.05)


def test_master_stage_normalises_limits_and_passes_gradients():
    import pyloudnorm

    t = torch.arange(2 * RATE) / RATE
    sine = 0.01 * torch.sin(2 * torch.pi * 440.0 * t)
    spiky = sine.clone()
    spiky[RATE] = 0.05  # 14 dB over the sine's peak: the limiter must act after normalisation
    mix = torch.stack([torch.stack([sine, sine]), torch.stack([spiky, spiky]), torch.zeros(2, 2 * RATE)])
    mix.requires_grad_(True)
    normalised = master(mix, RATE, -14.0, None)
    limited = master(mix, RATE, -14.0, -1.0)
    meter = pyloudnorm.Meter(RATE, filter_class="DeMan")  # the exact BS.1770 filters at any rate
    loudness = meter.integrated_loudness(normalised[0].detach().numpy().T.astype(np.float64))
    assert loudness == pytest.approx(-14.0, abs=0.05)
    assert true_peak_dbtp(normalised[1].detach().numpy()) > 0.0 >= -1.0 >= true_peak_dbtp(limited[1].detach().numpy())
    assert torch.equal(limited[2], torch.zeros(2, 2 * RATE))  # silence keeps its level
    limited.sum().backward()
    assert torch.isfinite(mix.grad).all() and mix.grad[0].abs().sum() > 0


@pytest.mark.parametrize("changes, message", [
    ({"down_kernel": 4}, "kernels must be odd"),
    ({"slots": ("kick", "snare")}, "including 'other'"),
    ({"slots": ("kick", "cowbell", "other")}, "slots must be distinct classes"),
    ({"levels": 0}, "levels and channels must be positive"),
    ({"target_lufs": 3.0}, "target_lufs"),
])
def test_bad_configs_are_refused_by_name(changes, message):
    with pytest.raises(MixdownError, match=message):
        build_model("waveunet", changes)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    return save_model(tiny_model(seed=5), tmp_path_factory.mktemp("weights") / "waveunet.pt")


def _multitrack(rate: int, seconds: float, seed: int = 0) -> Multitrack:
    rng = np.random.default_rng(seed)
    frames = int(rate * seconds)
    arrays = {name: (0.1 * rng.standard_normal((channels, frames))).astype(np.float32)
              for name, channels in (("kick", 1), ("tom_1", 1), ("tom_2", 1), ("overhead", 2), ("lead vox", 1))}
    return Multitrack.from_arrays(arrays, rate)


def test_mixer_equals_the_model_on_the_whole_song_and_leaves_the_stems_alone(tiny_weights):
    multitrack = _multitrack(RATE, 2.3)
    before = multitrack.to_array()
    mix = WaveUNetMixer(tiny_weights, chunk_frames=300).mix(multitrack)
    model = load_model(tiny_weights).model
    instruments = ids(*multitrack.instruments)
    mask = torch.ones(1, multitrack.num_tracks, dtype=torch.bool)
    with torch.no_grad():
        reference = model(torch.from_numpy(before)[None], mask, instruments, mask).mix[0].numpy()
    assert mix.shape == (2, multitrack.num_frames) and mix.dtype == np.float32
    np.testing.assert_allclose(mix, reference, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(multitrack.to_array(), before)


@pytest.mark.parametrize("rate", [11025, 16000])
def test_mixer_resamples_songs_at_other_rates(tiny_weights, rate):
    multitrack = _multitrack(rate, 1.7)
    done = []
    mix = WaveUNetMixer(tiny_weights, chunk_frames=1000).mix(multitrack, progress=lambda d, t: done.append((d, t)))
    assert mix.shape == (2, multitrack.num_frames) and np.isfinite(mix).all() and np.abs(mix).max() > 0.01
    assert done[-1][0] == done[-1][1] == round(1.7 * RATE)


def test_mixer_errors(tmp_path, monkeypatch):
    with pytest.raises(MixdownError, match="model weights not found"):
        WaveUNetMixer(tmp_path / "missing.pt")
    estimator = save_model(build_model("estimator", {"encoder": {"widths": [2], "embed_dim": 4, "class_dim": 2},
                                                     "hidden": 4}), tmp_path / "estimator.pt")
    with pytest.raises(MixdownError, match="not the waveunet model"):
        WaveUNetMixer(estimator)
    monkeypatch.setattr(weights_module, "shipped", lambda name: tmp_path / "absent.pt")
    with pytest.raises(MixdownError, match="train them with `mixdown train configs/waveunet.yaml`"):
        get_method("waveunet")


def test_waveunet_declares_audio_only_and_its_run_gives_the_mix(tiny_weights):
    assert not METHODS["waveunet"].capabilities.gives_params
    multitrack = Multitrack.from_arrays({"kick": 0.1 * np.ones((1, RATE // 2), np.float32)}, RATE)
    output = get_method("waveunet", weights=tiny_weights).run(multitrack)
    assert output.params is None and output.mix.shape == (2, RATE // 2)


def test_cli_writes_the_mix_and_no_settings_file(tmp_path, tiny_weights, monkeypatch, capsys):
    monkeypatch.setattr(weights_module, "shipped", lambda name: tiny_weights)
    stems = tmp_path / "stems"
    stems.mkdir()
    for name, audio in (("kick", 0.2 * np.random.default_rng(0).standard_normal((1, RATE))),
                        ("overhead", 0.1 * np.random.default_rng(1).standard_normal((2, RATE)))):
        sf.write(stems / f"{name}.wav", audio.T, RATE, subtype="FLOAT")
    out = tmp_path / "mix.wav"
    assert main(["mix", str(stems), "-o", str(out), "--method", "waveunet"]) == 0
    audio, rate = sf.read(out, always_2d=True)
    assert rate == RATE and audio.shape == (RATE, 2)
    assert not (tmp_path / "mix.params.json").exists()
    assert "no settings file" in capsys.readouterr().err
    refused = tmp_path / "refused.wav"
    params = tmp_path / "p.json"
    assert main(["mix", str(stems), "-o", str(refused), "--method", "waveunet", "--params", str(params)]) == 2
    assert "error: --params: waveunet makes a mix but no console settings" in capsys.readouterr().err
    assert not refused.exists() and not params.exists()


@pytest.mark.skipif(not shipped("waveunet.pt").is_file(), reason="Mix-Wave-U-Net weights not trained yet")
def test_shipped_weights_are_small_and_make_a_loud_stereo_mix_of_the_demo():
    """4 s of the bundled demo: finite, at the master's loudness and ceiling, and not mono."""
    import pyloudnorm

    from mixdown.synth.demo import demo_multitrack_arrays

    assert shipped("waveunet.pt").stat().st_size <= 20e6
    rate = 44100
    arrays = {name: audio[:, :4 * rate] for name, audio in demo_multitrack_arrays(rate).items()}
    multitrack = Multitrack.from_arrays(arrays, rate)
    mixer = get_method("waveunet")
    mix = mixer.mix(multitrack)
    config = mixer.model.config
    assert mix.shape == (2, multitrack.num_frames) and np.isfinite(mix).all()
    loudness = pyloudnorm.Meter(rate).integrated_loudness(mix.T.astype(np.float64))
    assert loudness == pytest.approx(config.target_lufs, abs=1.0)  # the limiter may take a little off
    assert true_peak_dbtp(mix) <= config.ceiling_dbtp + 0.1
    side, mid = mix[0] - mix[1], mix[0] + mix[1]
    assert np.sqrt(np.mean(side ** 2)) > 0.01 * np.sqrt(np.mean(mid ** 2))  # a stereo mix, not a mono one
