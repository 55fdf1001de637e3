"""Differentiable Mixing Console: emulator (`mixdown.models.emulator`), model (`mixdown.models.dmc`),
mixer (`mixdown.mixers.dmc`)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

from mixdown.cli import main
from mixdown.config import config_to_dict
from mixdown.console import ConsoleTensors, render, render_tensor
from mixdown.dsp.pan import pan_gains
from mixdown.errors import MixdownError
from mixdown.losses import StereoLoss, StereoLossConfig
from mixdown.mixers import get_method
from mixdown.mixers.dmc import DMCMixer
from mixdown.models import load_model, save_model
from mixdown.models.dmc import DMC, DMCConfig, fader_pan_send
from mixdown.models.emulator import (
    MAX_LOG_GAIN,
    N_EMULATED,
    Emulator,
    EmulatorConfig,
    EmulatorLoss,
    EmulatorLossConfig,
    StripPairs,
    emulated_outputs,
    render_strip,
)
from mixdown.models.encoders import EncoderConfig
from mixdown.models.estimator import EstimatorConfig
from mixdown.models.tcn import TCNConfig
from mixdown.multitrack import Multitrack
from mixdown.params import (
    STANDARD_EQ,
    ChannelParams,
    CompressorParams,
    ConsoleParams,
    EQBand,
    MasterParams,
)
from mixdown.synth.demo import demo_multitrack_arrays
from mixdown.weights import shipped

SR = 8000
TINY_EMULATOR = EmulatorConfig(sample_rate=SR, n_fft=32, hop=8, cond_hidden=8,
                               tcn=TCNConfig(channels=4, blocks=3, kernel_size=3, dilation_growth=2, cond_dim=8))
TINY = DMCConfig(controller=EstimatorConfig(encoder=EncoderConfig(sample_rate=SR, n_fft=256, hop=128, n_mels=16,
                                                                  f_max_hz=4000.0, widths=(4, 8), embed_dim=16,
                                                                  class_dim=4), hidden=16),
                 emulator=TINY_EMULATOR)


def _emulator(seed: int = 0) -> Emulator:
    """A tiny emulator that is not the identity (its zero-initialised gain layer randomised)."""
    torch.manual_seed(seed)
    model = Emulator(TINY_EMULATOR)
    torch.nn.init.normal_(model.gain.weight, std=0.2)
    return model.eval()


def _dmc(seed: int = 0) -> DMC:
    torch.manual_seed(seed)
    model = DMC(TINY)
    model.emulator.load_state_dict(_emulator(seed).state_dict())
    model.emulator_pretrained.fill_(True)
    return model.eval()


def _batch(tracks: int, samples: int = SR, seed: int = 0, stereo_track: int | None = 1):
    """``(stems, mask, instruments, stereo)`` of one song: decaying noise bursts, one stereo track."""
    gen = torch.Generator().manual_seed(seed)
    envelope = torch.exp(-torch.arange(samples) / (0.1 * SR)).repeat(4)[:samples] if samples else None
    stems = 0.2 * torch.randn(1, tracks, 2, samples, generator=gen) * envelope
    stereo = torch.zeros(1, tracks, dtype=torch.bool)
    if stereo_track is not None and stereo_track < tracks:
        stereo[0, stereo_track] = True
    stems = torch.where(stereo[..., None, None], stems, stems[:, :, :1].expand_as(stems))
    instruments = torch.randint(0, 11, (1, tracks), generator=gen)
    return stems, torch.ones(1, tracks, dtype=torch.bool), instruments, stereo


# ----------------------------------------------------------------------------- emulator


@pytest.mark.parametrize("samples", [7, 333])  # shorter than half the window, and longer
def test_untrained_emulator_is_the_identity(samples: int) -> None:
    x = torch.randn(2, 1, samples, dtype=torch.float64)
    y = Emulator(TINY_EMULATOR).double()(x, torch.rand(2, N_EMULATED, dtype=torch.float64))
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, rtol=0, atol=1e-12)  # the STFT round trip, exact up to rounding


def test_emulator_gain_is_a_gain_per_bin() -> None:
    """A constant output of the gain layer scales the signal by its soft-limited gain, and limits hold."""
    model = Emulator(TINY_EMULATOR).double()
    x = torch.randn(1, 1, 400, dtype=torch.float64)
    for log_gain in (math.log(0.5), 100.0):
        torch.nn.init.constant_(model.gain.bias, log_gain)
        y = model(x, torch.rand(1, N_EMULATED, dtype=torch.float64))
        expected = math.exp(MAX_LOG_GAIN * math.tanh(log_gain / MAX_LOG_GAIN))
        torch.testing.assert_close(y, expected * x, rtol=1e-12, atol=1e-12)
    assert expected == pytest.approx(math.exp(MAX_LOG_GAIN), rel=1e-9)  # +43 dB at most


def test_emulator_receptive_field_bounds_its_impulse_response() -> None:
    model = _emulator().double()
    n_fft, hop, field = TINY_EMULATOR.n_fft, TINY_EMULATOR.hop, model.receptive_field_samples
    samples, at = 4 * field, 2 * field + 1
    background = 0.1 * torch.randn(1, 1, samples, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    impulse = torch.zeros(1, 1, samples, dtype=torch.float64)
    impulse[..., at] = 1.0
    params = torch.rand(1, N_EMULATED, dtype=torch.float64)
    with torch.no_grad():  # what the impulse changes: in its own frames, and in the gains the TCN gives later ones
        wet = model(background + impulse, params) - model(background, params) - impulse
    support = torch.nonzero(wet[0, 0].abs() > 1e-12).flatten()
    assert int(support.min()) >= at - n_fft  # causal up to the STFT window
    assert int(support.max()) - int(support.min()) + 1 <= field
    assert int(support.max()) - at > (TINY_EMULATOR.tcn.receptive_field - 2) * hop  # it does reach that far


def test_emulated_settings_are_the_eq_and_compressor() -> None:
    outputs = emulated_outputs(44100)
    assert len(outputs) == N_EMULATED == 1 + 3 * 3 + 6  # high-pass frequency, 3 x (freq, gain, q), compressor
    assert {out.band for out in outputs if out.band is not None} == set(range(len(STANDARD_EQ)))


def test_render_strip_is_the_real_console_with_fader_and_pan_neutral() -> None:
    gen = torch.Generator().manual_seed(1)
    audio = 0.3 * torch.randn(3, 1, 4000, generator=gen)
    normalized = torch.rand(3, N_EMULATED, generator=gen)
    strip = render_strip(audio, normalized, SR)
    centre = math.cos(math.pi / 4)
    for row in range(3):  # the same settings as an editable file, through console.render
        values = [float(out.spec.denormalize(normalized[row, i])) for i, out in enumerate(emulated_outputs(SR))]
        physical = dict(zip([(o.tensor, o.band) for o in emulated_outputs(SR)], values, strict=True))
        eq = [EQBand(band, physical[("eq_freq_hz", k)], physical.get(("eq_gain_db", k), 0.0),
                     physical.get(("eq_q", k), 0.707)) for k, band in enumerate(STANDARD_EQ)]
        compressor = CompressorParams(**{f: physical[(f, None)] for f in
                                         ("threshold_db", "ratio", "attack_ms", "release_ms", "knee_db", "makeup_db")})
        params = ConsoleParams([ChannelParams("x", eq=eq, compressor=compressor)], sample_rate=SR,
                               master=MasterParams(target_lufs=None, ceiling_dbtp=None))
        mix = render(Multitrack.from_arrays({"x": audio[row].numpy()}, SR), params)
        np.testing.assert_allclose(mix[0] / centre, strip[row, 0].numpy(), atol=1e-5)


def test_strip_pairs_are_reproducible_and_skip_silence() -> None:
    t = np.arange(6000) / SR
    sources = [np.zeros(6000, np.float32), (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)]
    pairs = StripPairs(sources, 1000, length=20, seed=3, input_gain_db=(-6.0, 0.0))
    for i in range(len(pairs)):
        audio, params = pairs[i]
        again = pairs[i]
        assert torch.equal(audio, again[0]) and torch.equal(params, again[1])
        assert audio.shape == (1, 1000) and params.shape == (N_EMULATED,)
        assert 0.0 <= float(params.min()) and float(params.max()) <= 1.0
        assert float(audio.abs().max()) > 0.2  # the sine, at -6..0 dB, never the silent source
    with pytest.raises(MixdownError):
        StripPairs(sources, 7000, length=1, seed=0)


def test_emulator_loss_known_answers() -> None:
    gen = torch.Generator().manual_seed(2)
    target = torch.randn(3, 1, 2048, generator=gen)
    estimate = target + 0.1 * torch.randn(3, 1, 2048, generator=gen)
    config = EmulatorLossConfig(fft_sizes=(64, 256), l1_weight=5.0)
    per_item = EmulatorLoss(config, reduction="none")(estimate, target)
    assert per_item.shape == (3,)
    assert float(EmulatorLoss(config)(estimate, target)) == pytest.approx(float(per_item.mean()), rel=1e-6)
    assert float(EmulatorLoss(config)(target, target)) == pytest.approx(0.0, abs=1e-6)
    spectral = EmulatorLoss(replace(config, l1_weight=0.0), reduction="none")(estimate, target)
    l1 = (estimate - target).abs().mean(dim=(1, 2))
    torch.testing.assert_close(per_item - spectral, 5.0 * l1)


def test_emulator_save_load_gives_the_same_output(tmp_path) -> None:
    model = _emulator(4)
    path = save_model(model, tmp_path / "emulator.pt")
    loaded = load_model(path)
    assert loaded.name == "emulator" and loaded.sample_rate == SR
    x, params = torch.randn(2, 1, 500), torch.rand(2, N_EMULATED)
    with torch.no_grad():
        assert torch.equal(loaded.model(x, params), model(x, params))


# ----------------------------------------------------------------------------- DMC model


def test_fader_pan_send_leaves_only_fader_and_pan() -> None:
    stems, mask, _, stereo = _batch(3, samples=3000)
    eq = [EQBand("peak", 500.0, 9.0, 1.0), EQBand("high_shelf", 2000.0, -6.0, 0.707)]
    channels = [ChannelParams(f"s{i}", gain_db=-3.0 * i, pan=0.5 - 0.4 * i, eq=eq,
                              compressor=CompressorParams(-30.0, 4.0, 5.0, 50.0, 6.0, 3.0)) for i in range(3)]
    settings = ConsoleTensors.from_params([ConsoleParams(channels, sample_rate=SR, master=MasterParams(
        target_lufs=None, ceiling_dbtp=None))])
    with torch.no_grad():
        mix = render_tensor(stems, fader_pan_send(settings), stereo, SR)
    expected = torch.zeros(2, 3000)
    for i in range(3):
        gains = pan_gains(torch.tensor(channels[i].pan), stereo[0, i]) * 10.0 ** (channels[i].gain_db / 20.0)
        source = stems[0, i] if bool(stereo[0, i]) else stems[0, i, :1].expand(2, -1)
        expected += gains[:, None] * source
    torch.testing.assert_close(mix[0], expected, atol=1e-5, rtol=1e-5)


def test_permuting_inputs_permutes_settings_and_keeps_the_mix() -> None:
    model = _dmc()
    stems, mask, instruments, stereo = _batch(5, stereo_track=2)
    order = torch.tensor([3, 0, 4, 2, 1])
    with torch.no_grad():
        out = model(stems, mask, instruments, stereo)
        permuted = model(stems[:, order], mask[:, order], instruments[:, order], stereo[:, order])
    torch.testing.assert_close(permuted.estimate.normalized, out.estimate.normalized[:, order], atol=1e-5, rtol=0)
    torch.testing.assert_close(permuted.mix, out.mix, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("tracks", [2, 8, 16])
def test_any_number_of_stems_and_padding_changes_nothing(tracks: int) -> None:
    model = _dmc(1)
    stems, mask, instruments, stereo = _batch(tracks, seed=tracks)
    with torch.no_grad():
        out = model(stems, mask, instruments, stereo)
        pad = lambda x, value: torch.cat([x, torch.full_like(x[:, :2], value)], dim=1)  # noqa: E731
        padded = model(pad(stems, 0.3), pad(mask, False), pad(instruments, 10), pad(stereo, False))
    assert out.mix.shape == (1, 2, SR) and out.estimate.normalized.shape == (1, tracks, len(model.controller.specs))
    assert torch.isfinite(out.mix).all() and float(out.mix.abs().max()) > 0.0
    torch.testing.assert_close(padded.mix, out.mix, atol=1e-5, rtol=1e-4)  # masked tracks are muted and unseen


def test_a_few_steps_reduce_the_loss_on_one_example() -> None:
    model = _dmc(2).train()
    stems, mask, instruments, stereo = _batch(3, samples=6000, seed=5)
    # A target the DMC can reach: its own render (same emulator) of fixed random settings.
    gen = torch.Generator().manual_seed(7)
    normalized = torch.rand(1, 3, len(model.controller.specs), generator=gen)
    with torch.no_grad():
        settings = model.controller.to_console(normalized, torch.rand(1, 1, generator=gen), mask)
        target = model.render(stems, normalized, settings, mask, stereo)
    loss_fn = StereoLoss(StereoLossConfig(fft_sizes=(128, 512)))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(12):
        loss = loss_fn(model(stems, mask, instruments, stereo).mix, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(p.grad is None for p in model.emulator.parameters())  # the emulator stays frozen
    assert losses[-1] < 0.8 * losses[0]


def test_training_needs_a_pretrained_emulator(tmp_path) -> None:
    model = DMC(TINY)
    stems, mask, instruments, stereo = _batch(2, samples=2000)
    with torch.no_grad():
        model.eval()(stems, mask, instruments, stereo)  # inference works (a checkpoint brings the weights)
        with pytest.raises(MixdownError, match="pre-trained emulator"):
            model.train()(stems, mask, instruments, stereo)
    path = save_model(_emulator(6), tmp_path / "emulator.pt")
    loaded = DMC(replace(TINY, emulator_weights=str(path)))
    assert bool(loaded.emulator_pretrained)
    for mine, theirs in zip(loaded.emulator.parameters(), _emulator(6).parameters(), strict=True):
        assert torch.equal(mine, theirs) and not mine.requires_grad


def test_load_emulator_refuses_other_models_and_settings(tmp_path) -> None:
    other = Emulator(replace(TINY_EMULATOR, hop=16))
    with pytest.raises(MixdownError, match="settings differ"):
        DMC(TINY).load_emulator(save_model(other, tmp_path / "other.pt"))
    with pytest.raises(MixdownError, match="not an emulator"):
        DMC(TINY).load_emulator(save_model(_dmc(), tmp_path / "dmc.pt"))


def test_dmc_checkpoint_holds_the_emulator(tmp_path) -> None:
    model = _dmc(3)
    loaded = load_model(save_model(model, tmp_path / "dmc.pt"))
    assert loaded.name == "dmc" and bool(loaded.model.emulator_pretrained)
    stems, mask, instruments, stereo = _batch(3, samples=3000)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(stems, mask, instruments, stereo).mix,
                                   model(stems, mask, instruments, stereo).mix, atol=0, rtol=0)


def test_emulator_pretraining_runs_through_mixdown_train(tmp_path, capsys) -> None:
    """The one training entry pre-trains the emulator: checkpoints with the recipe, a loadable export."""
    run = tmp_path / "run"
    recipe = {"model": "emulator", "model_config": config_to_dict(TINY_EMULATOR), "loss": {"fft_sizes": [64, 256]},
              "train_songs": 1, "val_songs": 1, "song_duration_s": 2.0, "segment_s": 0.25, "batch_size": 2,
              "max_steps": 3, "val_every_steps": 2, "val_segments": 2, "log_every_steps": 1, "threads": 1,
              "out": str(run), "export": str(run / "emulator.pt")}
    path = tmp_path / "emulator.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert main(["train", str(path)]) == 0
    assert f"wrote {run / 'emulator.pt'}" in capsys.readouterr().err
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    saved = last["hyper_parameters"]["train_config"]
    assert last["global_step"] == 3 and saved["model"] == "emulator" and saved["seed"] == 0
    assert saved["model_config"] == config_to_dict(TINY_EMULATOR) and saved["max_steps"] == 3
    metrics = (next(run.glob("logs/version_*/metrics.csv"))).read_text().splitlines()
    header = metrics[0].split(",")
    validations = [row.split(",") for row in metrics[1:] if row.split(",")[header.index("val/emulator_loss")]]
    assert len(validations) == 2  # every val_every_steps and after the last step
    assert all(float(row[header.index("val/identity_loss")]) > 0 for row in validations)
    loaded = load_model(run / "emulator.pt")
    assert loaded.name == "emulator" and loaded.model.config == TINY_EMULATOR
    best = torch.load(next(run.glob("checkpoints/step*.ckpt")), weights_only=True)["state_dict"]
    assert all(torch.equal(v, best[f"model.{k}"]) for k, v in loaded.model.state_dict().items())
    assert bool(DMC(replace(TINY, emulator_weights=str(run / "emulator.pt"))).emulator_pretrained)


# ----------------------------------------------------------------------------- mixer (shipped weights)


@pytest.mark.skipif(not shipped("dmc.pt").is_file(), reason="DMC weights not trained yet")
def test_shipped_weights_give_valid_editable_settings() -> None:
    arrays = {name: audio[:, :4 * 44100] for name, audio in demo_multitrack_arrays().items()}
    multitrack = Multitrack.from_arrays(arrays, 44100)
    mixer = get_method("dmc")
    params = mixer.predict(multitrack)
    params.validate()
    assert params.method == "dmc" and params.sample_rate == 44100
    assert [ch.name for ch in params.channels] == multitrack.names
    assert all([band.type for band in ch.eq] == list(STANDARD_EQ) for ch in params.channels)
    assert len({ch.gain_db for ch in params.channels}) > 1  # it balances, not a constant
    mix = render(multitrack, params)
    assert mix.shape == (2, multitrack.num_frames) and np.isfinite(mix).all()
    assert bool(mixer.dmc.emulator_pretrained)


def test_mixer_refuses_other_checkpoints(tmp_path) -> None:
    path = save_model(_emulator(), tmp_path / "emulator.pt")
    with pytest.raises(MixdownError, match="not the dmc model"):
        DMCMixer(path)
    with pytest.raises(MixdownError, match="not found"):
        DMCMixer(tmp_path / "missing.pt")
    assert shipped("dmc.pt").name == "dmc.pt"
