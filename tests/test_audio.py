import json

import numpy as np
import pytest
import soundfile as sf

from mixdown import audio as audio_module
from mixdown.audio import (
    AudioInfo,
    ChunkedReader,
    atomic_path,
    atomic_write_text,
    load_audio,
    peak_dbfs,
    probe_audio,
    resample,
    resampled_length,
    write_audio,
)
from mixdown.errors import AudioError


def test_probe_audio_reads_header(write_stem, make_sine):
    path = write_stem("kick.wav", make_sine(seconds=0.5, sample_rate=48000, channels=2), 48000)
    info = probe_audio(path)
    assert info == AudioInfo(path, 48000, 2, 24000)
    assert info.duration_s == pytest.approx(0.5)


@pytest.fixture(params=["missing", "corrupt", "empty", "six_channels"])
def bad_file(request, tmp_path):
    path = tmp_path / f"{request.param}.wav"
    if request.param == "corrupt":
        path.write_bytes(b"RIFF not really a wave file")
    elif request.param == "empty":
        sf.write(path, np.zeros((0, 1)), 44100)
    elif request.param == "six_channels":
        sf.write(path, np.zeros((4410, 6)), 44100)
    return path


@pytest.mark.parametrize("reader", [probe_audio, load_audio])
def test_bad_files_raise_audio_error_naming_the_file(reader, bad_file):
    with pytest.raises(AudioError, match=bad_file.name) as excinfo:
        reader(bad_file)
    assert "\n" not in str(excinfo.value)


def test_six_channels_message(write_stem):
    path = write_stem("surround.wav", np.zeros((6, 4410)))
    with pytest.raises(AudioError, match="has 6 channels; mixdown takes mono or stereo stems"):
        probe_audio(path)


def test_load_audio_shape_dtype_and_values(write_stem, make_sine):
    stereo = make_sine(channels=2)
    stereo[1] *= -1
    path = write_stem("gtr.wav", stereo, subtype="FLOAT")
    audio, rate = load_audio(path)
    assert rate == 44100
    assert audio.dtype == np.float32
    assert audio.shape == stereo.shape
    np.testing.assert_array_equal(audio, stereo)


def test_load_audio_resamples_when_asked(write_stem, make_sine):
    path = write_stem("vox.flac", make_sine(seconds=1.0, sample_rate=44100), 44100)
    audio, rate = load_audio(path, sample_rate=48000)
    assert (audio.shape, rate) == ((1, 48000), 48000)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_load_audio_rejects_non_finite(write_stem, make_sine, bad_value):
    audio = make_sine()
    audio[0, 100] = bad_value
    path = write_stem("nan.wav", audio, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav"):
        load_audio(path)


def test_resample_1khz_sine_keeps_frequency_and_rms(make_sine):
    x = make_sine(1000.0, seconds=1.0, sample_rate=48000, channels=2)
    y = resample(x, 48000, 44100)
    assert y.shape == (2, 44100) and y.dtype == np.float32
    core = y[:, 1000:-1000]  # away from the filter's edge transients
    spectrum = np.abs(np.fft.rfft(core[0] * np.hanning(core.shape[1])))
    peak_hz = np.argmax(spectrum) * 44100 / core.shape[1]
    assert peak_hz == pytest.approx(1000.0, abs=2.0)
    np.testing.assert_allclose(np.sqrt(np.mean(core**2, axis=1)), 0.5 / np.sqrt(2), rtol=1e-3)


def test_resample_identity_for_equal_rates(make_sine):
    x = make_sine()
    assert resample(x, 44100, 44100) is x


@pytest.mark.parametrize(
    ("frames", "rate_in", "rate_out"),
    [(3, 44100, 22050), (5, 44100, 22050), (1001, 48000, 44100), (100, 44100, 48000)],
)
def test_resampled_length_matches_soxr(frames, rate_in, rate_out):
    out = resample(np.zeros((1, frames), np.float32), rate_in, rate_out)
    assert out.shape[1] == resampled_length(frames, rate_in, rate_out)


@pytest.mark.parametrize(
    ("file_rate", "target_rate"), [(48000, 44100), (44100, 48000), (44100, 44100)]
)
@pytest.mark.parametrize("extra_frames", [-5000, 0, 7000])
@pytest.mark.parametrize("chunk", [1, 997, 4096])
def test_chunked_reader_equals_one_shot(write_stem, file_rate, target_rate, extra_frames, chunk):
    rng = np.random.default_rng(0)
    source = rng.uniform(-0.5, 0.5, (2, file_rate // 4)).astype(np.float32)
    path = write_stem("stem.wav", source, file_rate, subtype="FLOAT")
    expected = resample(source, file_rate, target_rate)
    total = expected.shape[1] + extra_frames
    expected = np.pad(expected, ((0, 0), (0, max(extra_frames, 0))))[:, :total]

    with ChunkedReader(path, target_rate, total) as reader:
        blocks = [reader.read(chunk) for _ in range(-(-total // chunk))]
        assert reader.read(chunk).shape == (2, 0)
    assert all(block.shape == (2, chunk) for block in blocks[:-1])
    np.testing.assert_allclose(np.concatenate(blocks, axis=1), expected, atol=1e-4)


def test_chunked_reader_rejects_non_finite(write_stem, make_sine):
    audio = make_sine()
    audio[0, -1] = np.nan
    path = write_stem("bad.wav", audio, subtype="FLOAT")
    with ChunkedReader(path, 44100, audio.shape[1]) as reader:
        with pytest.raises(AudioError, match="bad.wav"):
            reader.read(audio.shape[1])


@pytest.mark.parametrize("name", ["mix.wav", "mix.flac", "mix.aiff", "mix.aif", "MIX.WAV"])
@pytest.mark.parametrize("channels", [1, 2])
def test_write_audio_round_trip(tmp_path, make_sine, name, channels):
    audio = make_sine(channels=channels)
    path = tmp_path / name
    write_audio(path, audio, 44100)
    loaded, rate = load_audio(path)
    assert rate == 44100
    assert sf.info(path).subtype == "PCM_24"
    np.testing.assert_allclose(loaded, audio, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == [name]


@pytest.mark.parametrize(
    "audio",
    [
        np.full((2, 100), np.nan, np.float32),
        np.zeros((3, 100), np.float32),
        np.zeros(100, np.float32),
    ],
    ids=["nan", "three_channels", "one_dimensional"],
)
def test_write_audio_rejects_bad_audio_and_leaves_nothing(tmp_path, audio):
    with pytest.raises(AudioError, match="out.wav"):
        write_audio(tmp_path / "out.wav", audio, 44100)
    assert list(tmp_path.iterdir()) == []


def test_write_audio_rejects_unknown_extension(tmp_path):
    with pytest.raises(AudioError, match="out.mp3"):
        write_audio(tmp_path / "out.mp3", np.zeros((1, 10)), 44100)
    assert list(tmp_path.iterdir()) == []


def test_write_audio_failure_keeps_old_file_and_removes_temp(tmp_path, monkeypatch, make_sine):
    path = tmp_path / "mix.wav"
    write_audio(path, make_sine(), 44100)
    before = path.read_bytes()

    real_write = sf.write

    def failing_write(file, data, *args, **kwargs):
        real_write(file, data[: len(data) // 2], *args, **kwargs)
        raise RuntimeError("disk full")

    monkeypatch.setattr(audio_module.sf, "write", failing_write)
    with pytest.raises(AudioError, match="mix.wav.*disk full"):
        write_audio(path, make_sine(440.0), 44100)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["mix.wav"]


def test_atomic_write_text(tmp_path):
    path = tmp_path / "params.json"
    atomic_write_text(path, json.dumps({"gain_db": -3.0}))
    assert json.loads(path.read_text()) == {"gain_db": -3.0}
    assert [p.name for p in tmp_path.iterdir()] == ["params.json"]


def test_atomic_path_failure_leaves_destination_untouched(tmp_path):
    path = tmp_path / "params.json"
    path.write_text("old")
    with pytest.raises(ValueError), atomic_path(path) as tmp:
        # visible, so that a killed run's leftover is seen and swept (audio.PARTIAL_PATTERN)
        assert tmp.parent == tmp_path and tmp.suffix == ".json" and audio_module.PARTIAL_PATTERN.match(tmp.name)
        tmp.write_text("half-written")
        raise ValueError("boom")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["params.json"]


@pytest.mark.parametrize(
    ("audio", "expected"),
    [
        (np.zeros((2, 10)), -np.inf),
        (np.zeros((1, 0)), -np.inf),
        (np.array([[0.5, -1.0]]), 0.0),
        (np.array([[0.0, -0.5]]), 20 * np.log10(0.5)),
    ],
)
def test_peak_dbfs(audio, expected):
    assert peak_dbfs(audio) == pytest.approx(expected)


# ------------------------------------------------------------------ damaged and odd files


def _cut(path, fraction=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@pytest.mark.parametrize(("name", "subtype"), [("a.wav", "PCM_16"), ("a.wav", "PCM_24"), ("a.wav", "FLOAT"),
                                               ("a.wav", "PCM_U8"), ("a.aiff", "PCM_16"), ("a.flac", "PCM_16")])
def test_a_truncated_file_is_an_error_naming_it_unless_allowed(write_stem, make_sine, name, subtype):
    path = _cut(write_stem(name, make_sine(seconds=0.5, sample_rate=8000, channels=2), 8000, subtype=subtype))
    with pytest.raises(AudioError, match=rf"{path.name}.*(truncated|cannot read)"):
        load_audio(path)
    if name.endswith(".flac"):
        return  # a cut FLAC stream does not decode at all
    with pytest.raises(AudioError, match=rf"{path.name} is truncated: its header promises 4000 frames"):
        probe_audio(path)
    with pytest.warns(UserWarning, match="is truncated"):
        audio, rate = load_audio(path, allow_truncated=True)
    assert rate == 8000 and 0 < audio.shape[1] < 4000
    with ChunkedReader(path, 8000, 4000) as reader:  # truncation is the loader's call; streaming pads
        assert reader.read(4000).shape == (2, 4000)


def test_streamed_wav_sizes_are_not_truncation(write_stem, make_sine):
    """Writers that stream (pipes) put 0 or 0xFFFFFFFF in the size fields: the file is what it holds."""
    path = write_stem("s.wav", make_sine(seconds=0.1, sample_rate=8000), 8000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.index(b"data")
    data[at + 4:at + 8] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    assert probe_audio(path).frames == 800


def _wav_with_header(path, channels=1, rate=8000, bits=16, extra=b"", data_size=None, frames=800):
    import struct

    block = channels * bits // 8
    payload = np.zeros(min(frames * block, 2**20), dtype=np.uint8).tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
    size = len(payload) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra + b"data" + struct.pack("<I", size) + payload
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


@pytest.mark.parametrize(("make", "message"), [
    pytest.param(lambda p: _wav_with_header(p, data_size=0xFFFFFFF0), "truncated", id="data-size-4GB"),
    pytest.param(lambda p: _wav_with_header(p, channels=6), "6 channels", id="6-channels"),
    pytest.param(lambda p: _wav_with_header(p, channels=65535), "channels|cannot read", id="65535-channels"),
    pytest.param(lambda p: _wav_with_header(p, rate=100), "sample rate 100 Hz", id="rate-100"),
    pytest.param(lambda p: _wav_with_header(p, rate=4_000_000_000), "sample rate|cannot read", id="rate-4e9"),
    pytest.param(lambda p: _wav_with_header(p, frames=0), "no audio frames", id="0-frames"),
    pytest.param(lambda p: _wav_with_header(p, bits=13), "cannot read|truncated", id="13-bit"),
    pytest.param(lambda p: p.write_bytes(b"RIFF\xff\xff\xff\xffWAVE" + b"\0" * 100), "cannot read", id="bogus"),
])
def test_odd_headers_are_one_error_naming_the_file(tmp_path, make, message):
    path = tmp_path / "odd.wav"
    make(path)
    with pytest.raises(AudioError, match=rf"odd\.wav.*({message})|({message}).*odd\.wav"):
        load_audio(path)


@pytest.mark.parametrize(("make", "frames"), [
    pytest.param(lambda p: _wav_with_header(p, extra=b"LIST" + (2**20).to_bytes(4, "little") + b"\0" * 2**20),
                 800, id="1MB-metadata-chunk"),
    pytest.param(lambda p: _wav_with_header(p, bits=8), 800, id="8-bit"),
    pytest.param(lambda p: _wav_with_header(p, frames=1), 1, id="1-sample"),
])
def test_odd_but_valid_files_load(tmp_path, make, frames):
    path = tmp_path / "odd.wav"
    make(path)
    audio, rate = load_audio(path)
    assert rate == 8000 and audio.shape == (1, frames) and np.isfinite(audio).all()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_an_error_naming_the_file(write_stem, value):
    audio = np.zeros((1, 800), np.float32)
    audio[0, 400] = value
    path = write_stem("nan.wav", audio, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: contains NaN or infinite samples"):
        load_audio(path)
