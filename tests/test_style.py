"""Mixing like a reference (`mixdown.style`, the ``style`` method): features, model, descent, checks, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mixdown.console import ConsoleTensors, render
from mixdown.errors import AudioError
from mixdown.multitrack import Multitrack
from mixdown.params import ConsoleParams, default_channel
from mixdown.style.features import ANALYSIS_RATE_HZ, STYLE_DIM, excerpt_features, style_features
from mixdown.style.loss import style_distance
from mixdown.style.optimise import (
    OptimiseConfig,
    SpectralChannels,
    mix_excerpts,
    optimise_style,
    processed_channels,
    spectral_style_energies,
)
from mixdown.style.reference import check_style_reference, load_style_reference, reference_style

RATE = ANALYSIS_RATE_HZ

pytestmark = pytest.mark.usefixtures("one_thread")


def noise(seconds: float, seed: int, low_hz: float | None = None, high_hz: float | None = None) -> np.ndarray:
    """Band-limited white noise ``(samples,)`` float64 at `RATE`, with a slow random envelope (some dynamics)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / RATE)
    spectrum[(freqs < (low_hz or 0.0)) | (freqs > (high_hz or RATE))] = 0.0
    x = np.fft.irfft(spectrum, n)
    envelope = 0.5 + 0.5 * np.abs(np.sin(np.arange(n) / RATE * (2 + seed) * np.pi))
    return 0.1 * x / x.std() * envelope


# --------------------------------------------------------------------------- features


def test_features_known_signals() -> None:
    x = torch.from_numpy(noise(2.0, 0))[None]
    side, mono, left = torch.stack([x, -x], 1), torch.stack([x, x], 1), torch.stack([x, 0 * x], 1)
    f = style_features(torch.cat([side, mono, left, 5.0 * mono]))
    assert torch.allclose(f.width[0], torch.ones(8, dtype=torch.float64))  # pure side: widest
    assert torch.allclose(f.width[1], torch.zeros(8, dtype=torch.float64), atol=1e-12)  # mono: no width
    assert torch.allclose(f.width[2], torch.full((8,), 0.5, dtype=torch.float64))  # one side: uncorrelated-wide
    assert torch.allclose(f.side_balance[2], torch.ones(8, dtype=torch.float64))  # hard left
    assert torch.allclose(f.side_balance[0], torch.zeros(8, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(f.vector()[3], f.vector()[1], atol=1e-9)  # loudness-independent
    assert f.vector().shape == (4, STYLE_DIM)
    # the balance is relative to the total: its powers sum to 1
    assert torch.allclose((10.0 ** (f.balance_db / 10.0)).sum(-1), torch.ones(4, dtype=torch.float64), atol=1e-6)


def test_features_low_band_and_dynamics() -> None:
    low = torch.from_numpy(noise(2.0, 1, high_hz=100.0))
    flat = torch.from_numpy(noise(2.0, 1))
    f = style_features(torch.stack([torch.stack([low, low]), torch.stack([flat, flat])]))
    assert int(f.balance_db[0].argmax()) == 0 and float(f.balance_db[0, 0]) > -0.5  # nearly all under 125 Hz
    steady = torch.from_numpy(np.random.default_rng(3).standard_normal(2 * RATE))
    gated = steady * (torch.arange(2 * RATE) % RATE < RATE // 10)  # 10 % duty: bursty
    g = style_features(torch.stack([torch.stack([steady, steady]), torch.stack([gated, gated])]))
    assert (g.crest_db[1] > g.crest_db[0] + 3.0).all()  # bursts have more crest
    assert (g.floor_db[1] > g.floor_db[0] + 5.0).all()  # and deeper gaps (no reverb filling them)


def test_features_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"\(batch, 2, samples\)"):
        style_features(torch.zeros(1, 3, 4096))
    with pytest.raises(ValueError, match="shorter"):
        style_features(torch.zeros(1, 2, 100))


def test_features_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    mix = torch.from_numpy(np.stack([noise(0.5, 4), noise(0.5, 5)]))[None].requires_grad_()
    direction = torch.from_numpy(rng.standard_normal(mix.shape)) * 1e-3
    weights = torch.from_numpy(rng.standard_normal(STYLE_DIM))
    value = lambda m: (style_features(m).vector()[0] * weights).sum()  # noqa: E731
    (grad,) = torch.autograd.grad(value(mix), mix)
    eps = 1e-3
    with torch.no_grad():
        numeric = (value(mix + eps * direction) - value(mix - eps * direction)) / (2 * eps)
    assert float((grad * direction).sum()) == pytest.approx(float(numeric), rel=1e-4, abs=1e-7)


def test_distance_zero_for_same_style_and_positive_otherwise() -> None:
    x = torch.from_numpy(noise(2.0, 6))
    a = style_features(torch.stack([x, 0.5 * x])[None])
    b = style_features(torch.stack([x, x])[None])
    assert float(style_distance(a, a)) == 0.0
    assert float(style_distance(a, b)) > 0.1


# --------------------------------------------------------------------------- the descent


def three_stems(seconds: float = 4.0) -> Multitrack:
    """Three mono stems in separate bands (so each one's level and pan shows in its band's style)."""
    arrays = {"bass": noise(seconds, 10, 40.0, 200.0), "keys": noise(seconds, 11, 500.0, 1800.0),
              "hats": noise(seconds, 12, 4500.0, 7500.0)}
    return Multitrack.from_arrays({k: v[None].astype(np.float32) for k, v in arrays.items()}, RATE)


def settings(multitrack: Multitrack, gains: list[float], pans: list[float]) -> ConsoleParams:
    channels = [default_channel(n, c) for n, c in zip(multitrack.names, multitrack.instruments, strict=True)]
    for ch, g, p in zip(channels, gains, pans, strict=True):
        ch.gain_db, ch.pan = g, p
    return ConsoleParams(channels=channels, sample_rate=RATE)


def stem_excerpts(multitrack: Multitrack, excerpts: int = 2, seconds: float = 2.0) -> torch.Tensor:
    n = round(seconds * RATE)
    return torch.stack([torch.from_numpy(np.stack([multitrack.stem_audio(t)[:, k * n:(k + 1) * n]
                                                   for t in range(multitrack.num_tracks)]))
                        for k in range(excerpts)])


def test_spectral_model_matches_rendering() -> None:
    multitrack = three_stems()
    params = settings(multitrack, [0.0, -4.0, 3.0], [-0.4, 0.2, 0.6])
    params.channels[1].reverb_send_db = -6.0
    start = ConsoleTensors.from_params([params])
    stems = stem_excerpts(multitrack)
    stereo = torch.zeros(3, dtype=torch.bool)
    processed = processed_channels(stems, start)
    args = (start.mute[0], start.gain_db[0].double(), start.pan[0].double(), start.reverb_send_db[0].double(),
            start.reverb_decay_s[0].double(), float(start.reverb_predelay_ms[0]), float(start.reverb_return_db[0]))
    exact = excerpt_features(mix_excerpts(processed, stereo, *args))
    energies = spectral_style_energies(SpectralChannels.from_processed(processed, stereo), *args)
    from mixdown.style.features import features_from_energies, pool_frames

    fast = features_from_energies(pool_frames(energies, 2))
    from mixdown.style.loss import style_terms

    terms = {name: float(value) for name, value in style_terms(fast, exact).items()}
    assert float(style_distance(fast, exact)) < 0.15, terms  # a small fraction of one audible step
    assert terms["balance_db"] < 0.1 and terms["width"] < 0.1, terms  # under 0.3 dB and 0.01 of width


def test_descent_matches_a_reference_rendered_from_the_same_stems() -> None:
    """Known answer: levels within 1 dB (relative to their mean) and pans within 0.1 of the reference's."""
    multitrack = three_stems()
    true_gains, true_pans = [0.0, -6.0, 4.0], [-0.5, 0.3, 0.0]
    reference_mix = render(multitrack, settings(multitrack, true_gains, true_pans))
    style = reference_style(reference_mix, RATE)
    start = ConsoleTensors.from_params([settings(multitrack, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])])
    result, report = optimise_style(stem_excerpts(multitrack), torch.zeros(3, dtype=torch.bool), start, style,
                                    OptimiseConfig(budget_s=40.0, max_steps=200, gain_step_db=0.5, pan_step=0.03,
                                                   prior_weight=0.0))
    assert report.distance < 0.5 * report.start_distance
    gains = result.gain_db[0].numpy()
    assert np.abs((gains - gains.mean()) - (np.array(true_gains) - np.mean(true_gains))).max() < 1.0
    assert np.abs(result.pan[0].numpy() - np.array(true_pans)).max() < 0.1


def test_descent_keeps_the_best_iterate_and_respects_zero_steps() -> None:
    multitrack = three_stems(3.0)
    style = reference_style(render(multitrack, settings(multitrack, [0.0, -6.0, 4.0], [-0.5, 0.3, 0.0])), RATE)
    start = ConsoleTensors.from_params([settings(multitrack, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])])
    stems = stem_excerpts(multitrack, 1)
    same, report = optimise_style(stems, torch.zeros(3, dtype=torch.bool), start, style, OptimiseConfig(max_steps=0))
    assert report.steps == 0 and torch.equal(same.gain_db, start.gain_db)
    _, report = optimise_style(stems, torch.zeros(3, dtype=torch.bool), start, style, OptimiseConfig(max_steps=5))
    assert report.distance == min(report.history) <= report.start_distance


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize(("make", "message"), [
    (lambda: np.zeros((2, 4 * RATE), np.float32), "silent"),
    (lambda: np.repeat(noise(4.0, 1)[None], 2, 0), "identical"),
    (lambda: noise(4.0, 1)[None], "mono"),
    (lambda: np.stack([noise(0.5, 1), noise(0.5, 2)]), "0.50 s long"),
    (lambda: np.stack([noise(4.0, 1), np.full(4 * RATE, np.nan)]), "NaN"),
])
def test_bad_reference_arrays_are_refused(make, message) -> None:
    with pytest.raises(AudioError, match=message):
        check_style_reference(make(), RATE)


def test_reference_at_another_rate_and_length_is_analysed(tmp_path: Path) -> None:
    audio = np.stack([noise(5.0, 1), noise(5.0, 2)]).astype(np.float32)
    sf.write(tmp_path / "ref.wav", audio.T, RATE)
    loaded = load_style_reference(tmp_path / "ref.wav", 44100)
    assert loaded.shape == (2, 5 * 44100)
    a, b = reference_style(audio, RATE), reference_style(loaded, 44100)
    assert float(style_distance(a, b)) < 0.05


# --------------------------------------------------------------------------- the method and the CLI


@pytest.fixture(scope="module")
def stems_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("song") / "stems"
    folder.mkdir()
    multitrack = three_stems(3.0)
    for t, name in enumerate(multitrack.names):
        sf.write(folder / f"{name}.wav", multitrack.stem_audio(t).T, RATE, subtype="FLOAT")
    return folder


def write_reference(path: Path, audio: np.ndarray, rate: int = RATE) -> Path:
    sf.write(path, np.asarray(audio).T, rate)
    return path


@pytest.mark.parametrize(("kind", "message"), [
    ("silent", "silent"), ("mono", "mono"), ("short", "0.50 s long"), ("corrupt", "ref.wav"),
])
def test_cli_bad_reference_one_line_no_output(stems_folder: Path, tmp_path: Path, capsys, kind, message) -> None:
    from mixdown import cli

    ref = tmp_path / "ref.wav"
    if kind == "silent":
        write_reference(ref, np.zeros((2, 4 * RATE), np.float32))
    elif kind == "mono":
        write_reference(ref, noise(4.0, 1)[None])
    elif kind == "short":
        write_reference(ref, np.stack([noise(0.5, 1), noise(0.5, 2)]))
    else:
        ref.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" + bytes(64))
    out = tmp_path / "mix.wav"
    assert cli.main(["mix", str(stems_folder), "-o", str(out), "--reference", str(ref)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not out.exists() and not (tmp_path / "mix.params.json").exists()


def test_cli_refuses_reference_for_a_method_without_one(stems_folder: Path, tmp_path: Path, capsys) -> None:
    from mixdown import cli

    ref = write_reference(tmp_path / "ref.wav", np.stack([noise(4.0, 1), noise(4.0, 2)]))
    assert cli.main(["mix", str(stems_folder), "-o", str(tmp_path / "m.wav"), "--method", "rules",
                     "--reference", str(ref)]) == 2
    assert "cannot mix like a reference" in capsys.readouterr().err


def test_cli_reference_options_need_a_reference(stems_folder: Path, tmp_path: Path, capsys) -> None:
    from mixdown import cli

    for option, value in (("--reference-mode", "learned"), ("--reference-model", "dmc")):
        out = tmp_path / "m.wav"
        assert cli.main(["mix", str(stems_folder), "-o", str(out), option, value]) == 2
        assert f"{option}: give the song to mix like with --reference" in capsys.readouterr().err
        assert not out.exists()


def test_style_method_refuses_an_unknown_model_and_another_models_conditioner(tmp_path: Path) -> None:
    from mixdown.errors import MixdownError
    from mixdown.mixers.style import StyleMixer
    from mixdown.style.conditioned import ConditionerConfig, ReferenceConditioner, save_conditioner

    with pytest.raises(MixdownError, match="model 'wave' is not one of estimator, dmc"):
        StyleMixer(model="wave")
    save_conditioner(ReferenceConditioner(ConditionerConfig(base="estimator")), tmp_path / "c.pt")
    with pytest.raises(MixdownError, match="a conditioner of the estimator, not of the dmc"):
        StyleMixer(model="dmc", weights=tmp_path / "c.pt")
    with pytest.raises(ValueError, match="base must be one of"):
        ConditionerConfig(base="waveunet")


def test_conditioner_corrects_either_base() -> None:
    from mixdown.mixers.estimator import EstimatorMixer
    from mixdown.style.conditioned import BASES, ConditionerConfig, ReferenceConditioner, conditioned_estimate
    from mixdown.style.conditioned import conditioner_inputs, load_base

    stems, _ = EstimatorMixer().analysis_batch(three_stems(2.0))
    mask = torch.ones(stems.shape[:2], dtype=torch.bool)
    instruments = torch.zeros(stems.shape[:2], dtype=torch.long)
    settings = {}
    for name in BASES:
        base = load_base(name)
        assert not any(p.requires_grad for p in base.parameters())
        conditioner = ReferenceConditioner(ConditionerConfig(base=name))
        torch.nn.init.normal_(conditioner.channel[-1].weight)
        inputs = conditioner_inputs(base, stems, mask, instruments, torch.zeros_like(mask))
        with torch.no_grad():
            plain = base.estimate(stems, mask, instruments).normalized
            corrected = conditioned_estimate(base, conditioner, inputs, torch.randn(stems.shape[0], STYLE_DIM))
        assert not torch.allclose(corrected.normalized, plain)
        settings[name] = plain
    assert not torch.allclose(settings["estimator"], settings["dmc"])  # two different predictors


@pytest.mark.parametrize("corrected", [("gain_db", "pan"), ("eq_gain_db", "threshold_db")])
def test_conditioner_changes_exactly_the_outputs_it_corrects(corrected: tuple[str, ...]) -> None:
    from mixdown.mixers.estimator import EstimatorMixer
    from mixdown.params import head_outputs
    from mixdown.style.conditioned import ConditionerConfig, ReferenceConditioner, conditioned_estimate
    from mixdown.style.conditioned import conditioner_inputs, load_base

    stems, _ = EstimatorMixer().analysis_batch(three_stems(2.0))
    mask = torch.ones(stems.shape[:2], dtype=torch.bool)
    instruments = torch.zeros(stems.shape[:2], dtype=torch.long)
    base = load_base("estimator")
    conditioner = ReferenceConditioner(ConditionerConfig(corrected=corrected))
    torch.nn.init.normal_(conditioner.channel[-1].weight)
    inputs = conditioner_inputs(base, stems, mask, instruments, torch.zeros_like(mask))
    with torch.no_grad():
        plain = base.estimate(stems, mask, instruments).normalized
        moved = conditioned_estimate(base, conditioner, inputs, torch.randn(stems.shape[0], STYLE_DIM)).normalized
    changed = (moved - plain).abs().amax(dim=(0, 1)) > 1e-6
    expected = torch.tensor([o.tensor in corrected for o in head_outputs(base.config.sample_rate, "channel")])
    assert torch.equal(changed, expected)
    with pytest.raises(ValueError, match="corrected must name"):
        ConditionerConfig(corrected=("ratio",))


@pytest.mark.parametrize(("line", "message"), [("corrected: [ratio]", "corrected must name some of"),
                                                ("hidden: 0", "hidden must be positive")])
def test_a_recipe_with_a_bad_conditioner_is_refused_when_read(tmp_path: Path, line: str, message: str) -> None:
    from mixdown.errors import MixdownError
    from mixdown.train import load_recipe

    shipped = (Path(__file__).parents[1] / "configs" / "estimator_reference.yaml").read_text()
    key = line.split(":")[0]
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("\n".join(line if row.startswith(f"{key}:") else row for row in shipped.splitlines()))
    with pytest.raises(MixdownError, match=message):
        load_recipe(recipe)


def test_conditioner_starts_as_the_estimator_and_round_trips(tmp_path: Path) -> None:
    from mixdown.mixers.estimator import EstimatorMixer
    from mixdown.style.conditioned import (
        ReferenceConditioner,
        conditioned_estimate,
        conditioner_inputs,
        load_conditioner,
        save_conditioner,
    )

    estimator = EstimatorMixer()
    multitrack = three_stems(2.0)
    stems, _ = estimator.analysis_batch(multitrack)
    mask = torch.ones(stems.shape[:2], dtype=torch.bool)
    instruments = torch.zeros(stems.shape[:2], dtype=torch.long)
    inputs = conditioner_inputs(estimator.model, stems, mask, instruments, torch.zeros_like(mask))
    reference = torch.randn(stems.shape[0], STYLE_DIM)
    fresh = ReferenceConditioner()
    with torch.no_grad():
        plain = estimator.model.estimate(stems, mask, instruments)
        conditioned = conditioned_estimate(estimator.model, fresh, inputs, reference)
        unreferenced = conditioned_estimate(estimator.model, fresh, inputs, None)
    assert torch.allclose(conditioned.normalized, plain.normalized, atol=1e-6)  # zero-initialised corrections
    assert torch.allclose(unreferenced.normalized, plain.normalized, atol=1e-6)
    torch.nn.init.normal_(fresh.channel[-1].weight)
    torch.nn.init.normal_(fresh.null_reference)
    save_conditioner(fresh, tmp_path / "c.pt")
    again = load_conditioner(tmp_path / "c.pt")
    with torch.no_grad():
        a, b = (conditioned_estimate(estimator.model, model, inputs, reference).normalized for model in (fresh.eval(), again))
        a_none, b_none = (conditioned_estimate(estimator.model, model, inputs, None).normalized
                          for model in (fresh, again))
    assert torch.equal(a, b) and not torch.allclose(a, plain.normalized)
    assert torch.equal(a_none, b_none) and not torch.allclose(a_none, a)  # the learned "no reference" input


@pytest.mark.parametrize("model", ["estimator", "dmc"])
def test_style_method_with_and_without_reference(model: str) -> None:
    from mixdown.api import mix
    from mixdown.style.conditioned import CONDITIONER_WEIGHTS
    from mixdown.weights import RECIPES, shipped

    if not shipped(CONDITIONER_WEIGHTS[model]).is_file():
        pytest.skip(f"the style conditioner is not trained ({RECIPES[CONDITIONER_WEIGHTS[model]]})")
    multitrack = three_stems(4.0)
    reference = render(multitrack, settings(multitrack, [0.0, -6.0, 4.0], [-0.5, 0.3, 0.0]))
    plain = mix(multitrack, "style", model=model)
    assert plain.params is not None and plain.info["reference"] is False and plain.info["model"] == model
    result = mix(multitrack, "style", reference=reference, mode="optimised", budget_s=3.0, model=model)
    assert result.params is not None and result.params.method == "style"
    assert result.info["style_distance"] <= result.info["style_distance_start"]
    assert result.mix.shape == (2, multitrack.num_frames) and np.isfinite(result.mix).all()


def test_audio_stage_reads_each_excerpt_and_descends_on_its_loss(tmp_path: Path) -> None:
    from functools import partial

    from mixdown.audio import load_audio
    from mixdown.losses import StereoLoss
    from mixdown.models import load_model_as
    from mixdown.style.conditioned import ReferenceConditioner
    from mixdown.style.train import StyleRecipe, audio_batch_losses, cache_examples, excerpt_audio
    from mixdown.synth.synthetic import SynthConfig, song_name
    from mixdown.weights import require

    recipe = StyleRecipe(root=str(tmp_path / "songs"), songs=2, val_songs=1, segment_s=2.0, excerpt_s=2.0,
                         synth=SynthConfig(seed=3, sample_rate=RATE, duration_s=4.0, min_stems=2, max_stems=3,
                                           targets="audio-styles"), build_workers=1, cache=None, export=None)
    base = load_model_as("estimator", require("estimator.pt")).model.eval()
    examples = cache_examples(recipe, base)
    batch = [ex for ex in examples if ex.song == 0]
    assert sorted(ex.start for ex in batch) == [0, 2 * RATE]  # each half's stems, the other half as reference
    stems, stereo, mix = excerpt_audio(recipe, batch)
    song_mix, _ = load_audio(tmp_path / "songs" / song_name(0) / "mix.wav")
    for k, ex in enumerate(batch):
        np.testing.assert_array_equal(mix[k].numpy(), song_mix[:, ex.start:ex.start + 2 * RATE].astype(np.float32))
    tracks = batch[0].inputs.tracks.shape[1]
    assert stems.shape == (2, tracks, 2, 2 * RATE) and stereo.shape == (2, tracks)

    conditioner = ReferenceConditioner()
    losses = partial(audio_batch_losses, base, conditioner, recipe, StereoLoss())
    with torch.no_grad():
        before = [float(v) for v in losses(batch)]
    optimiser = torch.optim.Adam(conditioner.parameters(), lr=1e-2)
    for _ in range(8):
        optimiser.zero_grad()
        sum(losses(batch)).backward()
        optimiser.step()
    with torch.no_grad():
        after = [float(v) for v in losses(batch)]
    assert before[0] == pytest.approx(before[1])  # a fresh conditioner ignores the reference
    assert after[0] < before[0] - 0.01 and after[1] < before[1] - 0.01


def test_real_songs_give_examples_without_settings_at_their_own_rate(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from mixdown.audio import load_audio, resample
    from mixdown.errors import MixdownError
    from mixdown.losses import StereoLoss
    from mixdown.models import load_model_as
    from mixdown.style.conditioned import ReferenceConditioner, save_conditioner
    from mixdown.style.train import (
        StyleRecipe,
        audio_batch_losses,
        excerpt_audio,
        initial_conditioner,
        real_examples,
        real_songs,
    )
    from mixdown.synth.synthetic import SynthConfig, build_dataset, song_name
    from mixdown.weights import require

    # Two "real" songs at 44.1 kHz: synthetic songs whose settings file is removed (a producer's mix states none).
    real = tmp_path / "real"
    build_dataset(real, 2, SynthConfig(seed=5, sample_rate=44100, duration_s=8.0, min_stems=2, max_stems=3,
                                       targets="audio-styles"), workers=1)
    for i in range(2):
        (real / song_name(i) / "params.json").unlink()
    recipe = StyleRecipe(root=str(tmp_path / "unused"), songs=2, val_songs=1, segment_s=2.0, excerpt_s=2.0,
                         synth=SynthConfig(seed=3, sample_rate=RATE, duration_s=4.0, min_stems=2, max_stems=3),
                         audio_epochs=1, real_root=str(real), real_val_songs=1, audio_param_weight=5.0,
                         cache=None, export=None)
    base = load_model_as("estimator", require("estimator.pt")).model.eval()
    train, val = real_examples(recipe, base)
    # 8 s in 2-s halves: pairs (0, 1) and (2, 3), each half once the reference and once the stems.
    assert len(train) == len(val) == 4 and {ex.song for ex in train} == {0} and {ex.song for ex in val} == {1}
    assert sorted(ex.start for ex in train) == [0, 2 * RATE, 4 * RATE, 6 * RATE]
    assert all(ex.truth is None and ex.rate == 44100 and ex.folder == str(real / song_name(0)) for ex in train)

    stems, _, mix = excerpt_audio(recipe, train)
    song_mix, _ = load_audio(real / song_name(0) / "mix.wav")
    for k, ex in enumerate(train):
        window = song_mix[:, 2 * ex.start:2 * ex.start + 4 * RATE]
        np.testing.assert_array_equal(mix[k].numpy(), resample(window, 44100, RATE)[:, :2 * RATE])
    assert stems.shape[-1] == mix.shape[-1] == 2 * RATE

    # No settings, so no parameter loss: its weight changes nothing on a real batch.
    conditioner = ReferenceConditioner()
    with torch.no_grad():
        weighted = audio_batch_losses(base, conditioner, recipe, StereoLoss(), train)
        plain = audio_batch_losses(base, conditioner, StyleRecipe(**{**recipe.__dict__, "audio_param_weight": 0.0}),
                                   StereoLoss(), train)
    assert all(torch.isfinite(v) for v in weighted)
    assert [float(v) for v in weighted] == pytest.approx([float(v) for v in plain], rel=1e-6)

    # With real_projects, only their songs (built first; here already there) are used.
    monkeypatch.setattr("mixdown.data.lmms.build_dataset", lambda *args, **kwargs: [])
    named = StyleRecipe(**{**recipe.__dict__, "real_projects": (f"demos/{song_name(1)}.mmpz",), "real_val_songs": 0})
    assert real_songs(named) == [real / song_name(1)]

    # init: the recipe's conditioner configuration, or one error.
    save_conditioner(ReferenceConditioner(), tmp_path / "c.pt")
    assert initial_conditioner(StyleRecipe(**{**recipe.__dict__, "init": str(tmp_path / "c.pt")})) is not None
    with pytest.raises(MixdownError, match="not of the recipe's"):
        initial_conditioner(StyleRecipe(**{**recipe.__dict__, "init": str(tmp_path / "c.pt"), "hidden": 32}))
    with pytest.raises(MixdownError, match="set audio_epochs"):
        StyleRecipe(**{**recipe.__dict__, "audio_epochs": 0})
