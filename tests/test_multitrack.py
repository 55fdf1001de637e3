import json
import warnings
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from mixdown import multitrack as multitrack_module
from mixdown.audio import ChunkedReader, resample
from mixdown.errors import AudioError, MixdownError
from mixdown.multitrack import (
    Multitrack,
    Stem,
    guess_instrument_class,
    info_table,
    load_class_map,
    load_multitrack,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("01_Kick In.wav", "kick"),
        ("KickOut", "kick"),
        ("BD", "kick"),
        ("kik", "kick"),
        ("Bass Drum", "kick"),
        ("bassdrum", "kick"),
        ("Kick Sub", "kick"),
        ("SnareTop", "snare"),
        ("Snare Bottom", "snare"),
        ("SD", "snare"),
        ("hi-hat", "hihat"),
        ("HiHat", "hihat"),
        ("HH", "hihat"),
        ("Ride", "hihat"),
        ("Crash_2", "hihat"),
        ("Cymbals", "hihat"),
        ("Tom 2", "tom"),
        ("Floor Tom", "tom"),
        ("Rack1", "tom"),
        ("OH_L", "overhead"),
        ("Overheads", "overhead"),
        ("Cymbal OH", "overhead"),
        ("ovh", "overhead"),
        ("Room", "room"),
        ("Drum Amb", "room"),
        ("ambience", "room"),
        ("BassDI", "bass"),
        ("Bass Gtr", "bass"),
        ("bassgtr", "bass"),
        ("SynthBass", "bass"),
        ("Sub", "bass"),
        ("Gtr_L", "guitar"),
        ("Acoustic Guitar", "guitar"),
        ("gt2", "guitar"),
        ("Rhodes", "keys"),
        ("Piano Amb", "keys"),
        ("pno", "keys"),
        ("Organ", "keys"),
        ("Synth Pad", "keys"),
        ("Wurli", "keys"),
        ("LeadVox", "vocal"),
        ("Lead Vocal", "vocal"),
        ("BVs", "vocal"),
        ("Choir", "vocal"),
        ("fx_riser", "other"),
        ("tambourine", "other"),
        ("Bottom", "other"),
    ],
)
def test_guess_instrument_class(name, expected):
    assert guess_instrument_class(name) == expected


def _multitrack_folder(write_stem, make_sine, rate=44100, seconds=0.5):
    """kick (mono), gtr (stereo, L != R), vox (mono FLAC) in tmp_path / 'stems'."""
    stereo = make_sine(220.0, seconds, rate, channels=2)
    stereo[1] *= 0.25
    write_stem("stems/Kick.wav", make_sine(60.0, seconds, rate), rate)
    write_stem("stems/gtr.wav", stereo, rate)
    path = write_stem("stems/Vox.flac", make_sine(440.0, seconds, rate), rate)
    return path.parent


def test_load_multitrack_basics(write_stem, make_sine, caplog):
    folder = _multitrack_folder(write_stem, make_sine)
    (folder / ".hidden.wav").write_bytes(b"junk")
    (folder / "notes.txt").write_text("not audio")
    (folder / "sub").mkdir()
    with caplog.at_level("INFO", logger="mixdown.multitrack"), warnings.catch_warnings():
        warnings.simplefilter("error")
        mt = load_multitrack(folder)
    assert mt.names == ["gtr", "Kick", "Vox"]
    assert mt.instruments == ["guitar", "kick", "vocal"]
    assert (mt.num_tracks, mt.sample_rate, mt.num_frames) == (3, 44100, 22050)
    assert mt.duration_s == pytest.approx(0.5)
    np.testing.assert_array_equal(mt.stereo_mask(), [True, False, False])
    assert [stem.channels for stem in mt.stems] == [2, 1, 1]
    assert all(stem.audio.dtype == np.float32 for stem in mt.stems)
    assert "notes.txt" in caplog.text and ".hidden" not in caplog.text


def test_iter_chunks_duplicates_mono_and_keeps_stereo(write_stem, make_sine):
    mt = load_multitrack(_multitrack_folder(write_stem, make_sine))
    chunks = list(mt.iter_chunks(10000))
    assert [c.shape for c in chunks] == [(3, 2, 10000), (3, 2, 10000), (3, 2, 2050)]
    full = np.concatenate(chunks, axis=-1)
    assert full.dtype == np.float32
    np.testing.assert_array_equal(full[0], mt.stems[0].audio)  # stereo untouched
    np.testing.assert_array_equal(full[1, 0], full[1, 1])  # mono duplicated
    np.testing.assert_array_equal(full[1, 0], mt.stems[1].audio[0])


@pytest.mark.parametrize("in_memory", [True, False])
@pytest.mark.parametrize("chunk_frames", [1, 4096, 10**6])
def test_iter_chunks_concatenation_equals_to_array(write_stem, make_sine, in_memory, chunk_frames):
    folder = _multitrack_folder(write_stem, make_sine, seconds=0.2)
    write_stem("stems/keys.wav", make_sine(330.0, 0.15, 48000, channels=2), 48000)
    with pytest.warns(UserWarning):
        mt = load_multitrack(folder, in_memory=in_memory)
    assert all((stem.audio is None) != in_memory for stem in mt.stems)
    full = mt.to_array()
    assert full.shape == (4, 2, mt.num_frames)
    np.testing.assert_array_equal(np.concatenate(list(mt.iter_chunks(chunk_frames)), axis=-1), full)


def test_file_backed_matches_in_memory(write_stem, make_sine):
    folder = _multitrack_folder(write_stem, make_sine, seconds=0.2)
    write_stem("stems/keys.wav", make_sine(330.0, 0.15, 48000, channels=2), 48000)
    with pytest.warns(UserWarning):
        in_memory = load_multitrack(folder)
    with pytest.warns(UserWarning):
        streamed = load_multitrack(folder, in_memory=False)
    np.testing.assert_allclose(streamed.to_array(), in_memory.to_array(), atol=1e-4)
    for index in range(in_memory.num_tracks):
        np.testing.assert_allclose(
            streamed.stem_audio(index), in_memory.stem_audio(index), atol=1e-4
        )


def test_iter_chunks_closes_readers_when_abandoned(write_stem, make_sine, monkeypatch):
    closed = []

    class SpyReader(ChunkedReader):
        def close(self):
            closed.append(self.info.path.name)
            super().close()

    monkeypatch.setattr(multitrack_module, "ChunkedReader", SpyReader)
    mt = load_multitrack(_multitrack_folder(write_stem, make_sine), in_memory=False)
    chunks = mt.iter_chunks(1000)
    next(chunks)
    chunks.close()
    assert sorted(closed) == ["Kick.wav", "Vox.flac", "gtr.wav"]


def test_mixed_sample_rates_resample_to_most_common(tmp_path, write_stem, make_sine):
    write_stem("stems/a.wav", make_sine(seconds=1.0, sample_rate=48000), 48000)
    write_stem("stems/b.wav", make_sine(seconds=1.0, sample_rate=48000), 48000)
    write_stem("stems/c.wav", make_sine(seconds=1.0, sample_rate=44100), 44100)
    with pytest.warns(UserWarning, match=r"c\.wav: resampling 44100 Hz -> 48000 Hz"):
        mt = load_multitrack(tmp_path / "stems")
    assert (mt.sample_rate, mt.num_frames) == (48000, 48000)
    expected = resample(make_sine(seconds=1.0, sample_rate=44100), 44100, 48000)
    np.testing.assert_allclose(mt.stems[2].audio, expected, atol=1e-4)


def test_explicit_sample_rate(tmp_path, write_stem, make_sine):
    write_stem("stems/a.wav", make_sine(seconds=1.0, sample_rate=44100), 44100)
    with pytest.warns(UserWarning, match="a.wav: resampling 44100 Hz -> 22050 Hz"):
        mt = load_multitrack(tmp_path / "stems", sample_rate=22050)
    assert (mt.sample_rate, mt.num_frames) == (22050, 22050)


def test_shorter_stems_are_padded_with_a_warning(tmp_path, write_stem, make_sine):
    write_stem("stems/long.wav", make_sine(seconds=1.0))
    write_stem("stems/short.wav", make_sine(seconds=0.5))
    with pytest.warns(UserWarning, match=r"short\.wav by 0\.500 s \(22050 samples\)"):
        mt = load_multitrack(tmp_path / "stems")
    assert mt.num_frames == 44100
    short = mt.stems[1].audio
    np.testing.assert_allclose(short[:, :22050], make_sine(seconds=0.5), atol=1e-4)  # PCM_16
    assert not short[:, 22050:].any()


def test_length_mismatch_can_be_an_error(tmp_path, write_stem, make_sine):
    write_stem("stems/long.wav", make_sine(seconds=1.0))
    write_stem("stems/short.wav", make_sine(seconds=0.5))
    with pytest.raises(AudioError, match="short.wav"):
        load_multitrack(tmp_path / "stems", on_length_mismatch="error")


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros((1, 4410)), r"quiet\.wav is silent"),
        (np.ones((2, 4410)), r"quiet\.wav looks clipped"),
    ],
)
def test_silent_and_clipped_stems_warn_and_are_kept(tmp_path, write_stem, audio, message):
    write_stem("stems/quiet.wav", audio)
    with pytest.warns(UserWarning, match=message):
        mt = load_multitrack(tmp_path / "stems")
    assert mt.names == ["quiet"]


def test_folder_errors(tmp_path):
    with pytest.raises(AudioError, match="nowhere does not exist"):
        load_multitrack(tmp_path / "nowhere")
    (tmp_path / "file.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="file.wav is not a directory"):
        load_multitrack(tmp_path / "file.wav")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("hi")
    with pytest.raises(
        AudioError, match=r"no audio stems \(.wav/.flac/.aif/.aiff\) found in .*empty"
    ):
        load_multitrack(tmp_path / "empty")


def test_too_many_stems(tmp_path, write_stem, make_sine):
    for index in range(33):
        write_stem(f"stems/track{index:02d}.wav", make_sine(seconds=0.1))
    with pytest.raises(AudioError, match=r"found 33 stems; the limit is 32 \(--max-stems\)"):
        load_multitrack(tmp_path / "stems", max_stems=32)


def test_corrupt_stem_is_named(tmp_path, write_stem, make_sine):
    write_stem("stems/ok.wav", make_sine())
    (tmp_path / "stems" / "broken.wav").write_bytes(b"RIFF\x00garbage")
    with pytest.raises(AudioError, match="broken.wav"):
        load_multitrack(tmp_path / "stems")


@pytest.mark.parametrize(("frames", "length"), [(1, "1 sample"), (4409, "4409 samples")])
def test_too_short_stem(tmp_path, write_stem, frames, length):
    write_stem("stems/x.wav", np.full((1, frames), 0.1))
    with pytest.raises(AudioError, match=f"x.wav is {length} long; stems must be at least 0.1 s"):
        load_multitrack(tmp_path / "stems")


def test_duplicate_stem_names(tmp_path, write_stem, make_sine):
    write_stem("stems/kick.wav", make_sine())
    write_stem("stems/Kick.flac", make_sine())
    with pytest.raises(MixdownError, match="duplicate stem name.*Kick.flac.*kick.wav"):
        load_multitrack(tmp_path / "stems")


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_class_map_overrides_guess_with_names_and_globs(tmp_path, write_stem, make_sine, suffix):
    for name in ["Kick.wav", "SM57 top.wav", "SM57 bottom.wav", "fx.wav"]:
        write_stem(f"stems/{name}", make_sine())
    mapping = {"sm57*": "snare", "KICK": "tom", "*.WAV": "other", "Fx": "keys"}
    path = tmp_path / f"classes{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(mapping))
    else:
        path.write_text("".join(f'"{key}": {value}\n' for key, value in mapping.items()))
    class_map = load_class_map(path)
    assert class_map == mapping
    mt = load_multitrack(tmp_path / "stems", class_map=class_map)
    assert dict(zip(mt.names, mt.instruments)) == {
        "fx": "keys",
        "Kick": "tom",
        "SM57 bottom": "snare",
        "SM57 top": "snare",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Kick*: kik\n", r"'Kick\*': 'kik' is not an instrument class"),
        ("- kick\n", "must map stem names"),
        ("kick: [unclosed\n", "not valid YAML/JSON"),
    ],
)
def test_bad_class_map(tmp_path, text, message):
    path = tmp_path / "classes.yaml"
    path.write_text(text)
    with pytest.raises(MixdownError, match=message):
        load_class_map(path)


def test_missing_class_map(tmp_path):
    with pytest.raises(MixdownError, match="nope.yaml"):
        load_class_map(tmp_path / "nope.yaml")


def test_from_arrays(make_sine):
    kick = make_sine(60.0)
    mt = Multitrack.from_arrays(
        {"kick": kick, "Gtr": make_sine(channels=2)}, 44100, instruments={"Gtr": "keys"}
    )
    assert mt.instruments == ["kick", "keys"]
    assert (mt.num_frames, mt.stems[0].path) == (kick.shape[1], None)
    kick[:] = 0  # the multitrack holds a copy
    assert mt.stems[0].audio.any()


@pytest.mark.parametrize(
    ("arrays", "error", "message"),
    [
        ({"a": np.zeros((1, 100)), "b": np.zeros((1, 101))}, AudioError, "'b' is 101 samples long"),
        ({"a": np.zeros(100)}, AudioError, r"'a': expected audio of shape \(channels, samples\)"),
        ({"a": np.zeros((3, 100))}, AudioError, "'a' has 3 channels"),
        ({"a": np.full((1, 100), np.nan)}, AudioError, "'a' contains NaN"),
        ({}, MixdownError, "at least one stem"),
    ],
)
def test_from_arrays_errors(arrays, error, message):
    with pytest.raises(error, match=message):
        Multitrack.from_arrays(arrays, 44100)


def test_instruments_are_validated(make_sine):
    with pytest.raises(MixdownError, match="'kick': 'drums' is not an instrument class"):
        Multitrack.from_arrays({"kick": make_sine()}, 44100, instruments={"kick": "drums"})
    with pytest.raises(MixdownError, match="unknown stems: snare"):
        Multitrack.from_arrays({"kick": make_sine()}, 44100, instruments={"snare": "snare"})


def test_with_instruments(make_sine):
    mt = Multitrack.from_arrays({"a": make_sine(), "b": make_sine()}, 44100)
    changed = mt.with_instruments({"b": "vocal"})
    assert (mt.instruments, changed.instruments) == (["other", "other"], ["other", "vocal"])
    with pytest.raises(MixdownError, match="no stems named c"):
        mt.with_instruments({"c": "kick"})


def test_stem_is_stereo():
    assert Stem("x", "other", 2, audio=np.zeros((2, 4), np.float32)).is_stereo
    assert not Stem("x", "other", 1, path=Path("x.wav")).is_stereo


def test_info_table(make_sine):
    tone = make_sine(1000.0, seconds=1.0, channels=2)
    blip = np.pad(tone[:1, :4000], ((0, 0), (0, 40100)))  # loud enough for one gating block
    mt = Multitrack.from_arrays(
        {"tone": tone, "silence": np.zeros((1, 44100)), "blip": blip}, 44100
    )
    rows = info_table(mt)
    assert [row["name"] for row in rows] == ["tone", "silence", "blip"]
    assert rows[0]["channels"] == 2 and rows[0]["duration_s"] == pytest.approx(1.0)
    assert rows[0]["peak_dbfs"] == pytest.approx(20 * np.log10(0.5), abs=1e-3)
    # pyloudnorm with the exact BS.1770 filters (DeMan), which the console's meter uses; its
    # default filters are an approximation about 0.04 LU off.
    expected = pyloudnorm.Meter(44100, filter_class="DeMan").integrated_loudness(tone.T.astype(np.float64))
    assert rows[0]["loudness_lufs"] == pytest.approx(expected, abs=0.01)
    assert rows[1]["peak_dbfs"] == rows[1]["loudness_lufs"] == -np.inf
    assert np.isfinite(rows[2]["loudness_lufs"])


def test_info_table_short_stem_has_no_loudness(make_sine):
    rows = info_table(Multitrack.from_arrays({"short": make_sine(seconds=0.2)}, 44100))
    assert rows[0]["loudness_lufs"] == -np.inf
    assert np.isfinite(rows[0]["peak_dbfs"])


def test_info_table_streams_file_backed_stems(write_stem, make_sine):
    mt = load_multitrack(_multitrack_folder(write_stem, make_sine), in_memory=False)
    rows = info_table(mt)
    assert [row["instrument"] for row in rows] == ["guitar", "kick", "vocal"]
    assert all(np.isfinite(row["loudness_lufs"]) for row in rows)
    assert sf.info(mt.stems[0].path).channels == rows[0]["channels"]


def test_temporary_files_of_interrupted_writes_are_not_stems(tmp_path, write_stem, make_sine):
    write_stem("kick.wav", make_sine(seconds=0.2, sample_rate=8000), 8000)
    write_stem("mix.mixdown-partial-123-0123abcd.wav", make_sine(seconds=0.2, sample_rate=8000), 8000)
    assert load_multitrack(tmp_path).names == ["kick"]


@pytest.mark.parametrize(("rate", "given"), [(384000, None), (7999, None), (44100, 1000), (44100, 10**9)])
def test_a_rate_mixdown_does_not_mix_at_is_refused_with_the_fix(tmp_path, write_stem, make_sine, rate, given):
    write_stem("kick.wav", make_sine(seconds=0.2, sample_rate=rate), rate)
    with pytest.raises(AudioError, match=r"8000\.\.192000 Hz"):
        load_multitrack(tmp_path, sample_rate=given)
    if given is None:
        target = min(max(rate, 8000), 192000)
        assert load_multitrack(tmp_path, sample_rate=target).sample_rate == target


def test_truncated_stem_is_refused_unless_allowed(tmp_path, write_stem, make_sine):
    path = write_stem("kick.wav", make_sine(seconds=0.5, sample_rate=8000), 8000, subtype="PCM_16")
    write_stem("bass.wav", make_sine(seconds=0.5, sample_rate=8000), 8000)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(AudioError, match="kick.wav is truncated"):
        load_multitrack(tmp_path)
    with pytest.warns(UserWarning, match="kick.wav is truncated"):
        multitrack = load_multitrack(tmp_path, allow_truncated=True)
    assert multitrack.num_frames == 4000  # the truncated stem is padded like a short one
    with pytest.warns(UserWarning, match="kick.wav is truncated"):
        streamed = load_multitrack(tmp_path, allow_truncated=True, in_memory=False)
    np.testing.assert_array_equal(streamed.to_array(), multitrack.to_array())
