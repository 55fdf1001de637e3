"""The console: unity rendering, streaming == differentiable path, master bus, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mixdown.console import (
    ConsoleTensors,
    channel_loudness,
    channel_strips,
    mix_buses,
    render,
    render_tensor,
    strip_buses,
)
from mixdown.dsp import reverb as reverb_module
from mixdown.dsp.limiter import true_peak_dbtp
from mixdown.dsp.loudness import integrated_loudness
from mixdown.multitrack import Multitrack
from mixdown.params import (
    ChannelParams,
    CompressorParams,
    ConsoleParams,
    EQBand,
    MasterParams,
    ReverbParams,
    default_channel,
)

SR = 44100


def _multitrack(seconds: float = 2.0, seed: int = 0) -> Multitrack:
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    arrays = {
        "kick": (rng.standard_normal((1, n)) * 0.1).astype(np.float32),
        "overheads": (rng.standard_normal((2, n)) * 0.05).astype(np.float32),
        "bass": (0.3 * np.sin(2 * np.pi * 55 * np.arange(n) / SR))[None].astype(np.float32),
    }
    return Multitrack.from_arrays(arrays, SR)


def _full_chain(multitrack: Multitrack) -> ConsoleParams:
    channels = [
        ChannelParams(name=name, instrument=instrument, gain_db=-2.0 * i, pan=round(-0.6 + 0.5 * i, 3),
                      eq=[EQBand("highpass", 60.0), EQBand("peak", 900.0, 5.0, 1.5), EQBand("high_shelf", 7000.0, -4.0)],
                      compressor=CompressorParams(-24.0, 4.0, 3.0, 120.0, 6.0, 4.0), reverb_send_db=-10.0)
        for i, (name, instrument) in enumerate(zip(multitrack.names, multitrack.instruments))
    ]
    return ConsoleParams(channels=channels, master=MasterParams(reverb=ReverbParams(decay_s=0.8)), sample_rate=SR)


def _neutral(multitrack: Multitrack) -> ConsoleParams:
    return ConsoleParams(channels=[default_channel(n) for n in multitrack.names],
                         master=MasterParams(target_lufs=None, ceiling_dbtp=None), sample_rate=SR)


def test_unity_settings_reproduce_a_stereo_stem():
    multitrack = Multitrack.from_arrays({"pad": (np.random.default_rng(1).standard_normal((2, SR)) * 0.2)
                                         .astype(np.float32)}, SR)
    mix = render(multitrack, _neutral(multitrack))
    np.testing.assert_allclose(mix, multitrack.stem_audio(0), atol=1e-6)


def test_unity_settings_pan_a_mono_stem_at_minus_3db():
    multitrack = Multitrack.from_arrays({"vox": (np.random.default_rng(2).standard_normal((1, SR)) * 0.2)
                                         .astype(np.float32)}, SR)
    mix = render(multitrack, _neutral(multitrack))
    expected = multitrack.stem_audio(0)[0] / math.sqrt(2)
    np.testing.assert_allclose(mix[0], expected, atol=1e-6)
    np.testing.assert_allclose(mix[1], expected, atol=1e-6)


@pytest.mark.parametrize("chunk_frames", [4096, 10000, 1 << 17])
def test_streaming_render_equals_differentiable_render(chunk_frames):
    multitrack = _multitrack()
    params = _full_chain(multitrack)
    streamed = render(multitrack, params, chunk_frames=chunk_frames)
    p = ConsoleTensors.from_params([params])
    whole = render_tensor(torch.from_numpy(multitrack.to_array())[None], p,
                          torch.from_numpy(multitrack.stereo_mask())[None], SR)[0].detach().numpy()
    assert np.abs(streamed - whole).max() < 1e-5


@pytest.mark.parametrize("chunk_frames", [5000, 16384, 70001])
@pytest.mark.parametrize("fft_frames", [1, reverb_module.STREAM_FFT_FRAMES])
def test_streamed_reverb_equals_differentiable_render(chunk_frames, fft_frames, monkeypatch):
    """A reverb response (2.5 s) several chunks long: the streamed render (overlap-add, the tail carried
    across reverb blocks, which are not the strips' chunks) equals the whole-signal render (one FFT)."""
    monkeypatch.setattr(reverb_module, "STREAM_FFT_FRAMES", fft_frames)
    multitrack = _multitrack(seconds=4.0)
    params = _full_chain(multitrack)
    params.master.reverb = ReverbParams(decay_s=2.5, predelay_ms=33.0)
    assert 2.5 * SR > 1.5 * max(chunk_frames, 5000)
    taps = round(0.033 * SR) + math.ceil(2.5 * SR)
    blocks = -(-multitrack.num_frames // reverb_module.stream_block_frames(taps))
    assert blocks == (2 if fft_frames == 1 else 1)
    streamed = render(multitrack, params, chunk_frames=chunk_frames)
    p = ConsoleTensors.from_params([params])
    whole = render_tensor(torch.from_numpy(multitrack.to_array())[None], p,
                          torch.from_numpy(multitrack.stereo_mask())[None], SR)[0].detach().numpy()
    assert np.abs(streamed - whole).max() < 1e-5


def test_render_without_sends_skips_the_reverb_exactly(monkeypatch):
    """Every send off: the reverb is not run (no response built), and the render is the one with it run
    on the silent send bus (streamed, which always runs it), to float rounding."""
    multitrack = _multitrack()
    params = _full_chain(multitrack)
    for channel in params.channels:
        channel.reverb_send_db = None
    streamed = render(multitrack, params)
    built = []
    monkeypatch.setattr("mixdown.console.impulse_response", lambda *args: built.append(args))
    whole = render_tensor(torch.from_numpy(multitrack.to_array())[None], ConsoleTensors.from_params([params]),
                          torch.from_numpy(multitrack.stereo_mask())[None], SR)[0].numpy()
    assert not built
    assert np.abs(streamed - whole).max() < 1e-5


def test_batched_render_equals_one_at_a_time():
    multitrack = _multitrack()
    first = _full_chain(multitrack)
    second = _full_chain(multitrack)
    second.channels[0].gain_db = -12.0
    second.master.reverb.decay_s = 2.0
    stems = torch.from_numpy(multitrack.to_array())[None].expand(2, -1, -1, -1)
    stereo = torch.from_numpy(multitrack.stereo_mask())[None].expand(2, -1)
    batched = render_tensor(stems, ConsoleTensors.from_params([first, second]), stereo, SR)
    for i, params in enumerate((first, second)):
        single = render_tensor(stems[:1], ConsoleTensors.from_params([params]), stereo[:1], SR)
        assert torch.allclose(batched[i], single[0], atol=1e-5)


def test_strip_buses_equal_panned_strips_summed():
    """The one-product bus sum equals panning every track and summing (`mix_buses`), with a mono stem
    stored as two channels among stereo ones, for a batch of two mixes."""
    multitrack = _multitrack()
    first, second = _full_chain(multitrack), _full_chain(multitrack)
    second.channels[1].pan, second.channels[2].reverb_send_db = 0.8, -3.0
    p = ConsoleTensors.from_params([first, second])
    stems = torch.from_numpy(multitrack.to_array())[None].expand(2, -1, -1, -1)
    stereo = torch.from_numpy(multitrack.stereo_mask())[None].expand(2, -1)
    with torch.no_grad():
        buses, _ = strip_buses(stems, p, stereo, SR)
        dry, send = mix_buses(channel_strips(stems, p, stereo, SR)[0], p)
    torch.testing.assert_close(buses, torch.stack([dry, send], dim=1), atol=1e-6, rtol=0)


def test_master_hits_target_loudness_under_ceiling():
    multitrack = _multitrack()
    params = _full_chain(multitrack)
    params.master.target_lufs = -16.0
    mix = render(multitrack, params)
    loudness = float(integrated_loudness(torch.from_numpy(mix)[None], SR)[0])
    assert loudness == pytest.approx(-16.0, abs=0.3)  # the limiter may shave a little
    assert true_peak_dbtp(mix) <= -1.0 + 1e-6


def test_mute_removes_a_channel_and_gain_scales_it():
    multitrack = _multitrack()
    params = _neutral(multitrack)
    base = render(multitrack, params)
    params.channel("kick").mute = True
    muted = render(multitrack, params)
    kick_only = base - muted
    params.channel("kick").mute = False
    params.channel("kick").gain_db = -6.0
    quieter = render(multitrack, params)
    np.testing.assert_allclose(base - quieter, kick_only * (1 - 10 ** (-6 / 20)), atol=1e-5)


def test_gradients_reach_every_parameter():
    multitrack = _multitrack(seconds=0.5)
    p = ConsoleTensors.from_params([_full_chain(multitrack)])
    trainable = ["gain_db", "pan", "eq_freq_hz", "eq_gain_db", "eq_q", "threshold_db", "ratio", "attack_ms",
                 "release_ms", "knee_db", "makeup_db", "reverb_send_db", "reverb_decay_s", "reverb_return_db"]
    for name in trainable:
        getattr(p, name).requires_grad_(True)
    p.target_lufs = torch.tensor([math.nan])  # loudness normalisation would cancel the overall level
    mix = render_tensor(torch.from_numpy(multitrack.to_array())[None], p,
                        torch.from_numpy(multitrack.stereo_mask())[None], SR)
    mix.pow(2).mean().backward()
    for name in trainable:
        grad = getattr(p, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_render_without_strip_gradients_is_the_same_mix_with_the_same_fader_gradients():
    multitrack = _multitrack(seconds=0.5)
    stems = torch.from_numpy(multitrack.to_array())[None]
    stereo = torch.from_numpy(multitrack.stereo_mask())[None]
    grads, mixes = [], []
    for strip_grad in (True, False):
        p = ConsoleTensors.from_params([_full_chain(multitrack)])
        for name in ("gain_db", "pan", "eq_gain_db", "threshold_db", "reverb_send_db"):
            getattr(p, name).requires_grad_(True)
        p.target_lufs = torch.tensor([math.nan])
        mix = render_tensor(stems, p, stereo, SR, strip_grad=strip_grad)
        mix.pow(2).mean().backward()
        mixes.append(mix.detach())
        grads.append({name: getattr(p, name).grad for name in ("gain_db", "pan", "eq_gain_db", "threshold_db",
                                                               "reverb_send_db")})
    torch.testing.assert_close(mixes[1], mixes[0], rtol=1e-5, atol=1e-6)  # the no-grad compressor: another kernel
    for name in ("gain_db", "pan", "reverb_send_db"):  # after the strips: unchanged
        torch.testing.assert_close(grads[1][name], grads[0][name])
    assert grads[0]["eq_gain_db"].abs().sum() > 0 and grads[0]["threshold_db"].abs().sum() > 0
    assert grads[1]["eq_gain_db"] is None and grads[1]["threshold_db"] is None


def test_params_round_trip_through_tensors():
    multitrack = _multitrack()
    params = _full_chain(multitrack)
    back = ConsoleTensors.from_params([params]).to_params(0, multitrack.names, multitrack.instruments, SR, "manual")
    assert back.to_dict()["channels"] == params.to_dict()["channels"]


def test_channel_loudness_reads_each_stem_after_processing():
    multitrack = _multitrack()
    params = _neutral(multitrack)
    loudness = channel_loudness(multitrack, params)
    for i in range(multitrack.num_tracks):
        stem = torch.from_numpy(multitrack.stem_audio(i))[None]
        assert loudness[i] == pytest.approx(float(integrated_loudness(stem, SR)[0]), abs=0.05)


def test_long_session_streams_from_files(tmp_path):
    """File-backed stems render chunk by chunk to the same mix as in-memory stems."""
    import soundfile as sf

    from mixdown.multitrack import load_multitrack

    multitrack = _multitrack(seconds=3.0)
    for i, name in enumerate(multitrack.names):
        sf.write(tmp_path / f"{name}.wav", multitrack.stem_audio(i).T, SR, subtype="FLOAT")
    on_disk = load_multitrack(tmp_path, in_memory=False)
    params = _full_chain(multitrack)
    np.testing.assert_allclose(render(on_disk, params, chunk_frames=8192), render(multitrack, params), atol=1e-6)


def test_settings_names_match_the_dsp_functions():
    """Field names of the JSON schema are the keyword names of the processors they drive."""
    import inspect
    from dataclasses import fields

    from mixdown.dsp.compressor import compressor

    assert {f.name for f in fields(CompressorParams)} <= set(inspect.signature(compressor).parameters)
    tensor_fields = {f.name for f in fields(ConsoleTensors)}
    assert {f.name for f in fields(CompressorParams)} <= tensor_fields
