"""The core CLI commands (demo, mix, render, info) through ``mixdown.cli.main(argv)``.

Happy paths check the files against references (the demo synth, a re-render, the linear
fader); every bad input must end with one ``error:`` line naming the culprit, exit code 2
and nothing left in the output folder.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixdown import cli
from mixdown.params import ConsoleParams, default_channel
from mixdown.synth import demo

DEMO_RATE = 16000
DEMO_SECONDS = 3.0
SR = 8000
"""Rate of the tiny stems written for the bad-input cases."""


def _stderr_lines(capsys: pytest.CaptureFixture) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _read(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    return audio.T, rate


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mixdown demo`` output, shortened to 3 s at 16 kHz to keep the tests fast."""
    folder = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "DEMO_SAMPLE_RATE", DEMO_RATE)
        patch.setattr(demo, "DEMO_DURATION_S", DEMO_SECONDS)
        assert cli.main(["demo", "-o", str(folder)]) == 0
    return folder


def test_demo_writes_the_synthesized_stems_and_both_mixes(demo_dir):
    expected = demo.synthesize_song(demo.DEMO_SEED, DEMO_RATE, DEMO_SECONDS)
    assert sorted(p.stem for p in (demo_dir / "stems").iterdir()) == sorted(demo.DEMO_STEMS)
    for name, reference in expected.items():
        audio, rate = _read(demo_dir / "stems" / f"{name}.wav")
        assert rate == DEMO_RATE and audio.shape == reference.shape
        np.testing.assert_allclose(audio, reference, atol=2.0**-23)  # PCM_24 rounding
    for method in ("mono", "rules"):
        mix, rate = _read(demo_dir / f"mix_{method}.wav")
        assert rate == DEMO_RATE and mix.shape == (2, round(DEMO_SECONDS * DEMO_RATE))
        params = ConsoleParams.load(demo_dir / f"mix_{method}.params.json")
        assert params.method == method
        assert sorted(ch.name for ch in params.channels) == sorted(demo.DEMO_STEMS)


@pytest.mark.parametrize("method", ["mono", "random", "rules"])
def test_mix_writes_mix_and_settings_that_render_back_to_it(demo_dir, tmp_path, method):
    out = tmp_path / "out.wav"
    assert cli.main(["mix", str(demo_dir / "stems"), "-o", str(out), "--method", method, "--seed", "3"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.params.json", "out.wav"]
    mix, rate = _read(out)
    assert rate == DEMO_RATE and mix.shape == (2, round(DEMO_SECONDS * DEMO_RATE))
    assert np.abs(mix).max() > 0.01
    params = ConsoleParams.load(tmp_path / "out.params.json")
    assert params.method == method and params.sample_rate == DEMO_RATE
    assert sorted(ch.name for ch in params.channels) == sorted(demo.DEMO_STEMS)

    again = tmp_path / "again.wav"
    assert cli.main(["render", str(demo_dir / "stems"), str(tmp_path / "out.params.json"), "-o", str(again)]) == 0
    np.testing.assert_array_equal(_read(again)[0], mix)


def test_mix_mono_from_files_matches_the_demo_mono_mix(demo_dir, tmp_path):
    out = tmp_path / "mono.wav"
    assert cli.main(["mix", str(demo_dir / "stems"), "-o", str(out), "--method", "mono"]) == 0
    np.testing.assert_allclose(_read(out)[0], _read(demo_dir / "mix_mono.wav")[0], atol=1e-5)


def test_render_edited_fader_scales_that_stem_only(demo_dir, tmp_path):
    """With loudness normalisation and limiter off the mix is linear in each fader (post
    compressor), so +6 dB on the snare scales exactly the snare's contribution by 10**(6/20)."""
    assert cli.main(["mix", str(demo_dir / "stems"), "-o", str(tmp_path / "base.wav"), "--method", "rules"]) == 0
    data = json.loads((tmp_path / "base.params.json").read_text())
    data["master"].update(target_lufs=None, ceiling_dbtp=None)
    snare = next(ch for ch in data["channels"] if ch["name"] == "snare")
    base_gain_db = snare["gain_db"]

    def render(name: str, gain_db: float, mute: bool) -> np.ndarray:
        snare.update(gain_db=gain_db, mute=mute)
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
        out = tmp_path / f"{name}.wav"
        args = ["render", str(demo_dir / "stems"), str(tmp_path / f"{name}.json"), "-o", str(out)]
        assert cli.main(args) == 0
        return _read(out)[0]

    flat = render("flat", base_gain_db, False)
    louder = render("louder", base_gain_db + 6.0, False)
    without = render("without", base_gain_db, True)
    contribution = flat - without
    assert np.abs(contribution).max() > 1e-3
    np.testing.assert_allclose(louder - without, 10.0 ** (6.0 / 20.0) * contribution, atol=2e-5)


def test_info_lists_every_stem_with_its_class(demo_dir, capsys):
    assert cli.main(["info", str(demo_dir / "stems")]) == 0
    out = capsys.readouterr().out
    classes = {"kick": "kick", "snare": "snare", "hihat": "hihat", "tom_1": "tom", "tom_2": "tom",
               "overhead": "overhead", "bass": "bass", "keys": "keys"}
    for name, instrument in classes.items():
        assert re.search(rf"^\W*{name}\W+{instrument}\W", out, re.MULTILINE), (name, out)
    assert f"{len(classes)} stems" in out


# --------------------------------------------------------------------------- bad input


def _write(path: Path, audio: np.ndarray, rate: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(audio, dtype=np.float32).T, rate)
    return path


def _tone(frames: int = SR // 4, amplitude: float = 0.3) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * 220.0 * np.arange(frames) / SR))[None].astype(np.float32)


def _stems(folder: Path, names: tuple[str, ...] = ("bass", "kick")) -> Path:
    for name in names:
        _write(folder / f"{name}.wav", _tone())
    return folder


def _params(tmp: Path, edit: Callable[[dict], None] = lambda data: None) -> Path:
    """Settings for `_stems` (bass, kick), edited by ``edit`` and written as JSON."""
    params = ConsoleParams(channels=[default_channel("bass", "bass"), default_channel("kick", "kick")],
                           sample_rate=SR)
    data = params.to_dict()
    edit(data)
    path = tmp / "settings.json"
    path.write_text(json.dumps(data))  # NaN floats become the NaN literal
    return path


def _mix(folder: Path, *extra: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, out: ["mix", str(folder), "-o", str(out / "mix.wav"), *extra]


def _render(edit: Callable[[dict], None]) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, out: ["render", str(_stems(tmp / "stems")), str(_params(tmp, edit)), "-o", str(out / "mix.wav")]


def _many_stems(tmp: Path, count: int) -> Path:
    return _stems(tmp / "many", tuple(f"track_{i:02d}" for i in range(count)))


def _channel(index: int, **values) -> Callable[[dict], None]:
    return lambda data: data["channels"][index].update(values)


def _missing_folder(tmp, out):
    return ["mix", str(tmp / "nowhere"), "-o", str(out / "mix.wav")]


def _empty_folder(tmp, out):
    (tmp / "empty").mkdir()
    return ["mix", str(tmp / "empty"), "-o", str(out / "mix.wav")]


def _no_audio_files(tmp, out):
    (tmp / "texts").mkdir()
    (tmp / "texts" / "notes.txt").write_text("kick, snare")
    return ["info", str(tmp / "texts")]


def _stems_is_a_file(tmp, out):
    (tmp / "stems.wav").write_bytes(b"")
    return ["mix", str(tmp / "stems.wav"), "-o", str(out / "mix.wav")]


def _corrupt_file(tmp, out):
    _stems(tmp / "stems")
    (tmp / "stems" / "x.wav").write_bytes(np.random.default_rng(0).bytes(2000))
    return ["mix", str(tmp / "stems"), "-o", str(out / "mix.wav")]


def _one_sample(tmp, out):
    _stems(tmp / "stems")
    _write(tmp / "stems" / "snare.wav", _tone(frames=1))
    return ["mix", str(tmp / "stems"), "-o", str(out / "mix.wav")]


def _too_many(count: int):
    return lambda tmp, out: ["mix", str(_many_stems(tmp, count)), "-o", str(out / "mix.wav"), "--max-stems", "32"]


def _max_stems_zero(tmp, out):
    return ["mix", str(_stems(tmp / "stems")), "-o", str(out / "mix.wav"), "--max-stems", "0"]


def _rate_mismatch(tmp, out):
    return _render(lambda data: data.update(sample_rate=44100))(tmp, out)


def _nan_literal(tmp, out):
    argv = _render(_channel(0, gain_db=float("nan")))(tmp, out)
    assert "NaN" in (tmp / "settings.json").read_text()
    return argv


def _params_missing(tmp, out):
    return ["render", str(_stems(tmp / "stems")), str(tmp / "settings.json"), "-o", str(out / "mix.wav")]


def _params_not_json(tmp, out):
    (tmp / "settings.json").write_text("{'channels': []}")
    return ["render", str(_stems(tmp / "stems")), str(tmp / "settings.json"), "-o", str(out / "mix.wav")]


def _bad_extension(tmp, out):
    return ["mix", str(_stems(tmp / "stems")), "-o", str(out / "mix.mp3")]


def _output_folder_missing(tmp, out):
    return ["mix", str(_stems(tmp / "stems")), "-o", str(out / "later" / "mix.wav")]


def _params_folder_missing(tmp, out):
    return ["mix", str(_stems(tmp / "stems")), "-o", str(out / "mix.wav"), "--params", str(out / "later" / "p.json")]


def _demo_into_a_file(tmp, out):
    (tmp / "taken").write_text("")
    return ["demo", "-o", str(tmp / "taken")]


COMPRESSOR = {"threshold_db": -20.0, "ratio": 0.0, "attack_ms": 10.0, "release_ms": 100.0, "knee_db": 6.0,
              "makeup_db": 0.0}
PEAK_AT_5KHZ = [{"type": "peak", "freq_hz": 5000.0, "gain_db": 3.0, "q": 1.0}]


@pytest.mark.parametrize(
    ("make_argv", "expected"),
    [
        pytest.param(_missing_folder, ["nowhere", "does not exist"], id="missing-folder"),
        pytest.param(_empty_folder, ["empty", "no audio stems"], id="empty-folder"),
        pytest.param(_no_audio_files, ["texts", "no audio stems"], id="zero-stems"),
        pytest.param(_stems_is_a_file, ["stems.wav", "not a directory"], id="folder-is-a-file"),
        pytest.param(_corrupt_file, ["x.wav", "cannot read audio"], id="corrupt-file"),
        pytest.param(_one_sample, ["snare.wav", "1 sample"], id="one-sample-stem"),
        pytest.param(_too_many(33), ["many", "33 stems", "32"], id="33-stems"),
        pytest.param(_too_many(64), ["many", "64 stems", "32"], id="64-stems"),
        pytest.param(_max_stems_zero, ["--max-stems"], id="max-stems-0"),
        pytest.param(_rate_mismatch, ["settings.json", "44100", "8000"], id="sample-rate-mismatch"),
        pytest.param(_nan_literal, ["settings.json", "channels[0]", "gain_db", "finite"], id="nan-gain"),
        pytest.param(_render(_channel(0, gian_db=1.0)), ["settings.json", "channels[0].gian_db", "unknown key"],
                     id="unknown-key"),
        pytest.param(_render(_channel(0, name="guitar")), ["settings.json", "guitar", "bass"], id="names-mismatch"),
        pytest.param(_render(lambda data: data.update(master=None)), ["settings.json", "master"], id="null-master"),
        pytest.param(_render(_channel(1, gain_db=1000)), ["settings.json", "channels[1]", "gain_db", "1000"],
                     id="gain-1000-db"),
        pytest.param(_render(_channel(0, compressor=COMPRESSOR)), ["settings.json", "compressor.ratio"], id="ratio-0"),
        pytest.param(_render(_channel(0, eq=PEAK_AT_5KHZ)), ["settings.json", "eq[0].freq_hz", "Nyquist"],
                     id="freq-above-nyquist"),
        pytest.param(_params_missing, ["settings.json", "cannot read"], id="params-missing"),
        pytest.param(_params_not_json, ["settings.json", "not valid JSON"], id="params-not-json"),
        pytest.param(_bad_extension, ["mix.mp3", ".wav"], id="bad-extension"),
        pytest.param(_output_folder_missing, ["later", "does not exist"], id="output-folder-missing"),
        pytest.param(_params_folder_missing, ["later", "does not exist"], id="params-folder-missing"),
        pytest.param(_demo_into_a_file, ["taken", "cannot create"], id="demo-into-a-file"),
    ],
)
def test_bad_input_is_one_error_line_exit_2_and_no_output(tmp_path, capsys, make_argv, expected):
    out = tmp_path / "out"
    out.mkdir()
    argv = make_argv(tmp_path, out)
    capsys.readouterr()
    assert cli.main(argv) == cli.EXIT_ERROR
    lines = _stderr_lines(capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "Traceback" not in lines[0]
    for fragment in expected:
        assert fragment in lines[0], (fragment, lines[0])
    assert os.listdir(out) == []  # no output, no temp file


@pytest.mark.parametrize(
    ("audio", "expected"),
    [
        pytest.param(np.zeros((1, SR // 4), np.float32), "silent", id="silent"),
        pytest.param(np.clip(10.0 * _tone(), -1.0, 1.0), "clipped", id="clipped"),
    ],
)
def test_silent_or_clipped_stem_warns_and_still_mixes(tmp_path, capsys, audio, expected):
    _write(_stems(tmp_path / "stems") / "odd.wav", audio)
    out = tmp_path / "out"
    out.mkdir()
    capsys.readouterr()
    assert cli.main(["mix", str(tmp_path / "stems"), "-o", str(out / "mix.wav"), "--method", "mono"]) == 0
    lines = _stderr_lines(capsys)
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(warnings) == 1 and "odd.wav" in warnings[0] and expected in warnings[0], lines
    assert not any(line.startswith("error") for line in lines)
    assert sorted(os.listdir(out)) == ["mix.params.json", "mix.wav"]
