"""Synthetic datasets: songs (`mixdown.synth.synthetic`), console targets (`mixdown.synth.targets`),
the dataset build and the ``mixdown data`` commands."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from mixdown import cli
from mixdown.class_rules import REFERENCE_LUFS, RULES
from mixdown.console import channel_loudness, render
from mixdown.errors import MixdownError
from mixdown.multitrack import Multitrack, load_multitrack
from mixdown.params import STANDARD_EQ, ConsoleParams
from mixdown.synth import synthetic
from mixdown.synth.demo import AVAILABLE_STEMS, MIN_FULL_DURATION_S, synthesize_song
from mixdown.synth.synthetic import (
    SynthConfig,
    build_dataset,
    choose_stems,
    generate_song,
    song_name,
    write_song,
)
from mixdown.synth.targets import LOUDNESS_EXCERPT_S, sample_console_params
from mixdown.synth.voice import DRUM_PIECES

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 16000
SECONDS = MIN_FULL_DURATION_S
CONFIG = SynthConfig(seed=3, sample_rate=SR, duration_s=SECONDS, min_stems=1)
ALL_STEMS = SynthConfig(seed=3, sample_rate=SR, duration_s=SECONDS, min_stems=len(AVAILABLE_STEMS))


@pytest.fixture(scope="module")
def full_song() -> synthetic.SyntheticSong:
    """Song 0 with every available stem."""
    return generate_song(0, ALL_STEMS)


def _assert_songs_equal(a: synthetic.SyntheticSong, b: synthetic.SyntheticSong) -> None:
    assert a.name == b.name and a.multitrack.names == b.multitrack.names
    for i, name in enumerate(a.multitrack.names):
        np.testing.assert_array_equal(a.multitrack.stem_audio(i), b.multitrack.stem_audio(i), err_msg=name)
    assert a.params == b.params
    np.testing.assert_array_equal(a.mix, b.mix)


# --------------------------------------------------------------------------- songs


def test_same_seed_and_index_give_a_bit_identical_song(full_song):
    _assert_songs_equal(generate_song(0, ALL_STEMS), full_song)


@pytest.mark.parametrize("other", [(SynthConfig(seed=4, sample_rate=SR, duration_s=SECONDS,
                                                min_stems=len(AVAILABLE_STEMS)), 0), (ALL_STEMS, 1)],
                         ids=["other seed", "other index"])
def test_other_seeds_and_indices_give_other_songs(full_song, other):
    song = generate_song(other[1], other[0])
    assert song.multitrack.names == full_song.multitrack.names  # every stem, so compare them one by one
    for i, name in enumerate(song.multitrack.names):
        assert not np.allclose(song.multitrack.stem_audio(i), full_song.multitrack.stem_audio(i), atol=1e-3), name
    assert song.params != full_song.params


def test_stem_counts_and_choices_cover_the_configured_range():
    config = SynthConfig(seed=0, sample_rate=SR, duration_s=SECONDS, min_stems=3, max_stems=6)
    chosen = [choose_stems(i, config)[0] for i in range(300)]
    counts = [len(stems) for stems in chosen]
    assert set(counts) == {3, 4, 5, 6}
    assert all(len(set(stems)) == len(stems) and set(stems) <= set(AVAILABLE_STEMS) for stems in chosen)
    assert {name for stems in chosen for name in stems} == set(AVAILABLE_STEMS)
    seeds = {choose_stems(i, config)[1] for i in range(300)}
    assert len(seeds) == 300


@pytest.mark.parametrize("index", range(3))
def test_songs_are_audible_unclipped_and_mixed_by_the_console(index):
    song = generate_song(index, CONFIG)
    assert CONFIG.min_stems <= song.multitrack.num_tracks <= CONFIG.max_stems
    assert song.multitrack.num_frames == round(SECONDS * SR)
    for i, name in enumerate(song.multitrack.names):
        audio = song.multitrack.stem_audio(i)
        peak = float(np.abs(audio).max())
        assert 10 ** (-12 / 20) - 1e-6 <= peak <= 10 ** (-3 / 20) + 1e-6, (name, peak)
        assert np.mean(np.abs(audio) > 1e-3 * peak) > 0.01, name  # more than a click
    assert song.mix.shape == (2, song.multitrack.num_frames) and song.mix.dtype == np.float32
    assert float(np.abs(song.mix).max()) <= 10 ** (-1 / 20) + 1e-4  # the -1 dBTP ceiling
    np.testing.assert_array_equal(song.mix, render(song.multitrack, song.params))


@pytest.mark.parametrize("mic", ["overhead", "room"])
@pytest.mark.parametrize("piece", DRUM_PIECES)
def test_overhead_and_room_pick_up_every_kit_piece(mic, piece):
    """Known answer: with one kit piece an impulse and the others silent, the microphone hears that impulse."""
    n = round(SECONDS * SR)
    onset = n // 2
    sources = {p: np.zeros(n) for p in DRUM_PIECES}
    sources[piece][onset] = 1.0
    audio = synthesize_song(5, SR, SECONDS, stems=(mic,), sources=sources)[mic]
    assert float(np.abs(audio).max()) > 0.1  # levelled, so only silence would fail
    arrival = np.argmax(np.abs(audio) > 0.5 * np.abs(audio).max(axis=1, keepdims=True), axis=1)
    assert np.all(arrival >= onset) and np.all(arrival <= onset + round(0.002 * SR)), arrival
    assert np.abs(audio[:, : onset - round(0.05 * SR)]).max() < 1e-3 * np.abs(audio).max()  # nothing before


def test_sources_replace_voices_and_are_checked():
    n = round(SECONDS * SR)
    tone = np.sin(2 * np.pi * 220.0 * np.arange(n) / SR)
    song = synthesize_song(5, SR, SECONDS, stems=("bass", "keys"), sources={"bass": tone})
    expected = synthesize_song(5, SR, SECONDS, stems=("keys",))
    np.testing.assert_array_equal(song["keys"], expected["keys"])
    spectrum = np.abs(np.fft.rfft(song["bass"][0]))
    assert np.argmax(spectrum) == round(220.0 * n / SR)
    with pytest.raises(ValueError, match="cannot replace"):
        synthesize_song(5, SR, SECONDS, stems=("bass",), sources={"overhead": tone})
    with pytest.raises(ValueError, match="shape"):
        synthesize_song(5, SR, SECONDS, stems=("bass",), sources={"bass": tone[:-1]})


@pytest.mark.parametrize("kwargs", [
    {"seed": -1}, {"sample_rate": 4000}, {"sample_rate": 22050.0}, {"duration_s": MIN_FULL_DURATION_S - 0.5},
    {"duration_s": 601.0}, {"min_stems": 0}, {"min_stems": 5, "max_stems": 4}, {"max_stems": len(AVAILABLE_STEMS) + 1},
    {"drumkit": "/nonexistent/kit"}, {"soundfont": "/nonexistent/font.sf2"},
])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(MixdownError):
        SynthConfig(**kwargs)


# --------------------------------------------------------------------------- console targets


def test_targets_are_valid_reproducible_and_seed_dependent(full_song):
    params = sample_console_params(full_song.multitrack, np.random.default_rng(11))
    params.validate()
    assert ConsoleParams.from_json(params.to_json()) == params
    assert [ch.name for ch in params.channels] == full_song.multitrack.names
    assert all(tuple(b.type for b in ch.eq) == STANDARD_EQ for ch in params.channels)
    assert sample_console_params(full_song.multitrack, np.random.default_rng(11)) == params
    assert sample_console_params(full_song.multitrack, np.random.default_rng(12)) != params


@pytest.fixture(scope="module")
def draws() -> tuple[Multitrack, list[ConsoleParams]]:
    """120 draws of settings for a small multitrack of one stem per class."""
    rng = np.random.default_rng(0)
    envelope = np.exp(-np.arange(SR // 4) / (0.05 * SR))
    bursts = np.tile(envelope, 4)  # four decaying noise bursts in 1 s
    arrays = {name: (0.3 * bursts * rng.standard_normal(SR))[None].astype(np.float32)
              for name in ("kick", "snare", "hihat", "tom_1", "tom_2", "bass", "guitar", "keys")}
    multitrack = Multitrack.from_arrays(arrays, SR)
    return multitrack, [sample_console_params(multitrack, np.random.default_rng(seed)) for seed in range(120)]


def _values(params: list[ConsoleParams], name: str, get) -> list:
    return [get(p.channel(name)) for p in params]


def test_focal_classes_stay_centred_and_others_spread(draws):
    _, params = draws
    for name in ("kick", "snare", "bass"):
        pans = np.array(_values(params, name, lambda ch: ch.pan))
        assert abs(pans.mean()) < 0.02 and pans.std() < 0.08, name
    for name in ("guitar", "keys"):
        widths = np.abs(_values(params, name, lambda ch: ch.pan))
        assert widths.min() >= 0.15 and widths.mean() > 0.4, name
    guitar, keys = (np.sign(_values(params, n, lambda ch: ch.pan)) for n in ("guitar", "keys"))
    assert np.all(guitar == -keys)  # alternating sides
    assert 0.35 < np.mean(guitar > 0) < 0.65
    # Drummer's perspective, as the synthetic overheads: hi-hat and high tom left, floor tom right.
    assert max(_values(params, "hihat", lambda ch: ch.pan)) < 0
    assert max(_values(params, "tom_1", lambda ch: ch.pan)) < 0 < min(_values(params, "tom_2", lambda ch: ch.pan))


def test_kick_and_bass_are_mostly_dry_while_snare_and_keys_get_reverb(draws):
    _, params = draws
    for name in ("kick", "bass"):
        dry = np.mean([send is None for send in _values(params, name, lambda ch: ch.reverb_send_db)])
        assert 0.7 < dry < 0.9, name  # drawn dry with probability 0.8
    for name in ("snare", "keys"):
        assert all(send is not None for send in _values(params, name, lambda ch: ch.reverb_send_db)), name
    compressed = {name: np.mean([c is not None for c in _values(params, name, lambda ch: ch.compressor)])
                  for name in ("kick", "hihat")}
    assert compressed["kick"] > 0.7 > 0.35 > compressed["hihat"]


def test_faders_put_each_processed_stem_at_its_class_level_plus_3_db_spread(draws):
    multitrack, params = draws
    assert multitrack.duration_s < LOUDNESS_EXCERPT_S  # so the faders see exactly this loudness
    offsets = []  # processed loudness after the fader minus the class's target, pooled over stems
    for p in params[:20]:
        lufs = channel_loudness(multitrack, p)
        for ch, loudness in zip(p.ordered_like(multitrack.names).channels, lufs, strict=True):
            offsets.append(loudness + ch.gain_db - REFERENCE_LUFS - RULES[ch.instrument].level_lu)
    assert abs(np.mean(offsets)) < 0.8 and 2.4 < np.std(offsets) < 3.6, (np.mean(offsets), np.std(offsets))


def test_faders_of_long_songs_come_from_the_excerpt_unless_a_stem_is_silent_there():
    rate = 8000
    frames = round((LOUDNESS_EXCERPT_S + 4.0) * rate)
    steady = np.full((1, frames), 0.1, dtype=np.float32) * np.sin(np.arange(frames) * 0.3)
    late = np.zeros((1, frames), dtype=np.float32)
    late[0, -2 * rate:] = steady[0, : 2 * rate]
    multitrack = Multitrack.from_arrays({"keys": steady, "guitar": late}, rate)
    params = sample_console_params(multitrack, np.random.default_rng(0))
    assert all(math.isfinite(ch.gain_db) and ch.gain_db != 0.0 for ch in params.channels)


# --------------------------------------------------------------------------- files and builds


def test_written_song_renders_back_to_its_stored_mix(full_song, tmp_path):
    folder = write_song(full_song, tmp_path)
    assert folder == tmp_path / full_song.name
    assert sorted(p.name for p in folder.iterdir()) == ["mix.wav", "params.json", "stems"]
    assert sf.info(folder / "mix.wav").subtype == "FLOAT"
    stems = load_multitrack(folder / "stems")
    assert sorted(stems.names) == sorted(full_song.multitrack.names)
    assert stems.instruments == [full_song.multitrack.instruments[full_song.multitrack.names.index(n)]
                                 for n in stems.names]
    params = ConsoleParams.load(folder / "params.json")
    assert params == full_song.params
    mix, rate = sf.read(folder / "mix.wav", dtype="float32", always_2d=True)
    assert rate == SR
    np.testing.assert_allclose(render(stems, params), mix.T, rtol=0, atol=1e-6)
    with pytest.raises(MixdownError, match="exists"):
        write_song(full_song, tmp_path)


def test_build_resumes_cleans_staging_and_refuses_other_options(tmp_path):
    calls = []
    assert build_dataset(tmp_path, 2, CONFIG, progress=lambda done, total: calls.append((done, total))) == \
        [song_name(0), song_name(1)]
    assert calls == [(0, 2), (1, 2), (2, 2)]
    first = (tmp_path / song_name(0) / "mix.wav").read_bytes()
    stale = tmp_path / f".{song_name(2)}.12345"
    (stale / "stems").mkdir(parents=True)
    calls.clear()
    assert build_dataset(tmp_path, 3, CONFIG, progress=lambda done, total: calls.append((done, total))) == \
        [song_name(2)]
    assert calls == [(2, 3), (3, 3)]
    assert not stale.exists() and (tmp_path / song_name(0) / "mix.wav").read_bytes() == first
    assert yaml.safe_load((tmp_path / "synth.yaml").read_text()) == {
        "seed": 3, "sample_rate": SR, "duration_s": SECONDS, "min_stems": 1, "max_stems": len(AVAILABLE_STEMS),
        "drumkit": None, "soundfont": None, "targets": "class-table"}
    with pytest.raises(MixdownError, match="seed differ"):
        build_dataset(tmp_path, 3, SynthConfig(seed=4, sample_rate=SR, duration_s=SECONDS, min_stems=1))


def test_parallel_build_writes_the_same_songs_as_generate_song(tmp_path):
    assert build_dataset(tmp_path, 2, CONFIG, workers=2) == [song_name(0), song_name(1)]
    for index in range(2):
        song = generate_song(index, CONFIG)
        mix, _ = sf.read(tmp_path / song.name / "mix.wav", dtype="float32", always_2d=True)
        np.testing.assert_array_equal(mix.T, song.mix)
        assert ConsoleParams.load(tmp_path / song.name / "params.json") == song.params


# --------------------------------------------------------------------------- CLI


def _synth_argv(out: Path, songs: int, *extra: str) -> list[str]:
    return ["data", "synth", "--songs", str(songs), "--out", str(out), "--seed", "3", "--duration", str(SECONDS),
            "--sample-rate", str(SR), "--min-stems", "1", "--workers", "1", *extra]


def test_cli_synth_then_check(tmp_path, capsys):
    out = tmp_path / "synth"
    assert cli.main(_synth_argv(out, 2)) == 0
    assert "wrote 2 songs" in capsys.readouterr().err
    assert cli.main(_synth_argv(out, 2)) == 0
    assert "wrote 0 songs" in capsys.readouterr().err
    assert cli.main(["data", "check", str(out)]) == 0
    assert "2 of 2 songs OK" in capsys.readouterr().out
    (out / song_name(1) / "mix.wav").write_bytes(b"not audio")
    assert cli.main(["data", "check", str(out)]) == cli.EXIT_ERROR
    assert song_name(1) in capsys.readouterr().err
    assert cli.main(["data", "check", str(out), "--skip-bad"]) == cli.EXIT_ERROR
    captured = capsys.readouterr()
    assert "1 of 2 songs OK" in captured.out and song_name(1) in captured.out
    assert "error: 1 bad songs" in captured.err


@pytest.mark.parametrize("extra, message", [
    (("--min-stems", "0"), "min_stems"), (("--duration", "1"), "duration_s"), (("--workers", "0"), "workers"),
    (("--drumkit", "/nonexistent/kit"), "does not exist"), (("--soundfont", "/nonexistent/font.sf2"), "does not exist"),
])
def test_cli_synth_refuses_bad_options_before_writing(tmp_path, capsys, extra, message):
    out = tmp_path / "synth"
    assert cli.main(_synth_argv(out, 1, *extra)) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())
