"""The core CLI commands (demo, mix, render, info) through ``mixdown.cli.main(argv)``.

Happy paths check the files against references (the demo synth, a re-render, the linear
fader); every bad input must end with one ``error:`` line naming the culprit, exit code 2
and nothing left in the output folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
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


# --------------------------------------------------------------------------- argument ranges


@pytest.mark.parametrize(("argv", "expected"), [
    pytest.param(["--sample-rate", "1000000000"], ["--sample-rate", "1000000000", "8000..192000"], id="rate-1e9"),
    pytest.param(["--sample-rate", "1e9"], ["--sample-rate", "8000..192000"], id="rate-1e9-float-form"),
    pytest.param(["--sample-rate", "-1"], ["--sample-rate", "-1", "8000..192000"], id="rate-minus-1"),
    pytest.param(["--sample-rate", "1"], ["--sample-rate", "8000..192000"], id="rate-1"),
    pytest.param(["--sample-rate", "44.1k"], ["--sample-rate", "not a number"], id="rate-text"),
    pytest.param(["--sample-rate", "44100.5"], ["--sample-rate", "not an integer"], id="rate-fraction"),
    pytest.param(["--max-stems", "100000"], ["--max-stems", "1..256"], id="max-stems-huge"),
    pytest.param(["--seed", "-3"], ["--seed", "0..4294967295"], id="seed-negative"),
    pytest.param(["--seed", "nan"], ["--seed", "not an integer"], id="seed-nan"),
    pytest.param(["--methd", "mono"], ["unrecognized arguments", "--methd"], id="typo"),
])
def test_numeric_options_are_checked_before_any_work(tmp_path, capsys, argv, expected):
    out = tmp_path / "out"
    out.mkdir()
    capsys.readouterr()
    assert cli.main(["mix", str(tmp_path / "nowhere"), "-o", str(out / "mix.wav"), *argv]) == cli.EXIT_ERROR
    lines = _stderr_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("error: mixdown"), lines
    for fragment in expected:
        assert fragment in lines[0], (fragment, lines[0])
    assert os.listdir(out) == []


@pytest.mark.parametrize(("argv", "option"), [
    (["render", "S", "p.json", "-o", "m.wav", "--sample-rate", "0"], "--sample-rate"),
    (["reverse", "S", "r.wav", "-o", "p.json", "--steps", "-1"], "--steps"),
    (["reverse", "S", "r.wav", "-o", "p.json", "--excerpt-seconds", "inf"], "--excerpt-seconds"),
    (["reverse", "S", "r.wav", "-o", "p.json", "--seconds", "0"], "--seconds"),
    (["data", "synth", "--songs", "-1", "--out", "d"], "--songs"),
    (["data", "synth", "--songs", "1", "--out", "d", "--sample-rate", "384000"], "--sample-rate"),
    (["data", "synth", "--songs", "1", "--out", "d", "--workers", "0"], "--workers"),
    (["data", "synth", "--songs", "1", "--out", "d", "--duration", "nan"], "--duration"),
    (["data", "lmms", "--out", "d", "--seconds", "-2"], "--seconds"),
    (["evaluate", "D", "--methods", "mono", "--out", "o", "--workers", "100000"], "--workers"),
    (["evaluate", "D", "--methods", "mono", "--out", "o", "--seconds", "0"], "--seconds"),
    (["evaluate", "D", "--methods", "mono", "--out", "o", "--folds", "1"], "--folds"),
    (["evaluate", "D", "--methods", "mono", "--out", "o", "--songs", "0"], "--songs"),
    (["train", "c.yaml", "--max-steps", "1e400"], "--max-steps"),
    (["listen", "serve", "T", "--port", "70000"], "--port"),
], ids=lambda value: "-".join(value[:2] + value[-2:-1]) if isinstance(value, list) else "")
def test_every_numeric_option_has_a_range(tmp_path, capsys, argv, option):
    capsys.readouterr()
    assert cli.main([str(tmp_path / a) if a in ("S", "D", "T", "d", "o") else a for a in argv]) == cli.EXIT_ERROR
    lines = _stderr_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"argument {option}" in lines[0], lines
    assert sorted(os.listdir(tmp_path)) == []


def test_argument_errors_and_help_do_not_import_torch(tmp_path):
    """#15: ``mixdown --help`` and argument errors answer without loading torch (or the audio stack)."""
    probe = ("import sys\nfrom mixdown.cli import main\n"
             "try:\n    rc = main(sys.argv[1:])\nexcept SystemExit as exc:\n    rc = exc.code\n"
             "heavy = [m for m in ('torch', 'scipy', 'numba', 'soxr', 'mixdown.console') if m in sys.modules]\n"
             "print('PROBE', rc, heavy, file=sys.stderr)")
    for argv, code in ((["mix", str(tmp_path), "-o", str(tmp_path / "m.wav"), "--sample-rate", "1000000000"], 2),
                       (["render", "--help"], 0), (["evaluate", "--help"], 0), (["--help"], 0)):
        result = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=300, check=False)
        assert f"PROBE {code} []" in result.stderr, (argv, result.stderr)
    timed = subprocess.run([sys.executable, "-X", "importtime", "-m", "mixdown", "--help"], capture_output=True,
                           text=True, timeout=300, check=False)
    assert timed.returncode == 0 and "usage: mixdown" in timed.stdout
    imported = {line.split("|")[-1].strip() for line in timed.stderr.splitlines() if line.startswith("import time")}
    assert "torch" not in imported and "mixdown.console" not in imported and "mixdown.mixers" in imported


# --------------------------------------------------------------------------- help texts and progress


def _help(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def _subcommands(parser) -> dict[str, object]:
    import argparse

    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subcommands(sub).items()})
    return found


def test_every_command_has_a_one_line_summary_and_a_description(capsys):
    parser = cli._build_parser()
    commands = _subcommands(parser)
    assert {"mix", "render", "info", "demo", "export reaper", "data check", "listen results", "evaluate"} <= set(commands)
    top = _help([], capsys)
    for name, sub in commands.items():
        assert sub.description, name
        if " " not in name:
            assert re.search(rf"^\s+{name}\s+\S", top, re.MULTILINE), (name, top)
        assert sub.description.splitlines()[0] in _help(name.split(), capsys).replace("\n", " ").replace("  ", " ") \
            or sub.description[:30] in _help(name.split(), capsys)


def test_mix_and_evaluate_help_list_every_method_with_its_summary(capsys):
    from mixdown.mixers import METHODS

    for argv in (["mix"], ["evaluate"]):
        text = " ".join(_help(argv, capsys).split())
        for name, info in METHODS.items():
            assert f"{name} {info.summary}" in text, (argv, name)


def test_export_platforms_and_data_defaults_match_the_library():
    """The light copies the help texts use (so that --help imports nothing heavy) agree with the library."""
    import dataclasses

    from mixdown.commands import data, export
    from mixdown.data.folder import LAYOUTS
    from mixdown.data.lmms import BuildConfig
    from mixdown.export.reaper import PLUGIN_SUFFIXES, default_platform
    from mixdown.synth.synthetic import SynthConfig

    assert export.PLATFORMS == tuple(sorted(PLUGIN_SUFFIXES)) and export.default_platform() == default_platform()
    synth = {f.name: f.default for f in dataclasses.fields(SynthConfig)}
    assert all(synth[key] == value for key, value in data.SYNTH_DEFAULTS.items())
    lmms = {f.name: f.default for f in dataclasses.fields(BuildConfig)}
    assert all(lmms[key] == value for key, value in data.LMMS_DEFAULTS.items())
    assert data.LAYOUT_NAMES == tuple(LAYOUTS)


def test_progress_goes_to_logs_as_lines_when_stderr_is_not_a_terminal(demo_dir, tmp_path, capsys):
    assert not cli.err.is_terminal  # captured: as in a log file
    assert cli.main(["render", str(demo_dir / "stems"), str(demo_dir / "mix_rules.params.json"),
                     "-o", str(tmp_path / "m.wav")]) == 0
    lines = _stderr_lines(capsys)
    progress = [line for line in lines if line.startswith("rendering: ")]
    assert progress and progress[-1] == "rendering: 100%" and len(progress) <= 11, lines
    percents = [int(line.split()[-1].rstrip("%")) for line in progress]
    assert percents == sorted(percents)
    with cli.progress("counting", 1000) as update:
        for done in range(0, 1001, 100):
            update(done, 1000)
    lines = [line for line in _stderr_lines(capsys) if line.startswith("counting")]
    assert [line.split()[-1] for line in lines] == [f"{p}%" for p in range(10, 101, 10)]
    with cli.progress("fine", 100000) as update:  # many small steps: still a line per tenth
        for done in range(0, 100001, 7):
            update(done, 100000)
    lines = [line for line in _stderr_lines(capsys) if line.startswith("fine")]
    assert 9 <= len(lines) <= 11


# --------------------------------------------------------------------------- rates: mix -> render round trips


@pytest.mark.parametrize("rate", [8000, 44100, 96000, 192000])
def test_mix_then_render_round_trips_at_every_supported_rate(tmp_path, rate):
    stems = tmp_path / "stems"
    for i, name in enumerate(("bass", "keys")):
        _write(stems / f"{name}.wav", np.sin(2 * np.pi * (110.0 * (i + 1)) * np.arange(rate // 5) / rate)[None] * 0.3,
               rate)
    assert cli.main(["mix", str(stems), "-o", str(tmp_path / "mix.wav"), "--method", "rules"]) == 0
    params = ConsoleParams.load(tmp_path / "mix.params.json")
    assert params.sample_rate == rate
    assert cli.main(["render", str(stems), str(tmp_path / "mix.params.json"), "-o", str(tmp_path / "again.wav")]) == 0
    mix, mix_rate = _read(tmp_path / "mix.wav")
    again, again_rate = _read(tmp_path / "again.wav")
    assert mix_rate == again_rate == rate
    np.testing.assert_array_equal(again, mix)


@pytest.mark.parametrize("rate", [384000, 7999])
def test_stems_at_a_rate_mixdown_does_not_mix_at_are_refused_alike_or_resampled_alike(tmp_path, capsys, rate):
    stems = tmp_path / "stems"
    for name in ("bass", "keys"):
        _write(stems / f"{name}.wav", np.sin(2 * np.pi * 220.0 * np.arange(rate // 5) / rate)[None] * 0.3, rate)
    out = tmp_path / "out"
    out.mkdir()
    params = _params(tmp_path)  # any settings: the rate is refused first
    capsys.readouterr()
    for argv in (["mix", str(stems), "-o", str(out / "mix.wav")], ["render", str(stems), str(params), "-o",
                                                                    str(out / "mix.wav")]):
        assert cli.main(argv) == cli.EXIT_ERROR
        lines = _stderr_lines(capsys)
        assert len(lines) == 1 and f"{rate} Hz" in lines[0] and "--sample-rate" in lines[0], lines
    assert os.listdir(out) == []
    target = min(max(rate, 8000), 192000)
    assert cli.main(["mix", str(stems), "-o", str(out / "mix.wav"), "--sample-rate", str(target)]) == 0
    assert ConsoleParams.load(out / "mix.params.json").sample_rate == target
    assert cli.main(["render", str(stems), str(out / "mix.params.json"), "-o", str(out / "again.wav"),
                     "--sample-rate", str(target)]) == 0
    np.testing.assert_array_equal(_read(out / "again.wav")[0], _read(out / "mix.wav")[0])


# --------------------------------------------------------------------------- settings files and audio inputs


def test_a_clipping_render_with_the_limiter_off_warns_with_the_count(tmp_path, capsys):
    def loud(data: dict) -> None:
        data["master"].update(target_lufs=None, ceiling_dbtp=None, gain_db=24.0)

    argv = _render(loud)(tmp_path, tmp_path)
    capsys.readouterr()
    assert cli.main(argv) == 0
    warnings = [line for line in _stderr_lines(capsys) if line.startswith("warning: ")]
    (clip,) = [line for line in warnings if "limiter is off" in line]
    mix = _read(tmp_path / "mix.wav")[0]  # PCM_24: clipped at full scale
    count = int(re.search(r"and (\d+) of (\d+) samples", clip).group(1))
    assert count > 0 and count == int(np.sum(np.abs(mix) >= 1.0 - 2.0**-22))


@pytest.mark.parametrize(("edit", "expected"), [
    pytest.param(lambda data: data["master"].pop("ceiling_dbtp"), ["master", "'ceiling_dbtp'", "null"],
                 id="no-ceiling"),
    pytest.param(lambda data: data["channels"][0].pop("gain_db"), ["channels[0]", "'gain_db'"], id="no-gain"),
    pytest.param(lambda data: data["channels"][1].update(instrument=None), ["channels[1]", "instrument"],
                 id="instrument-null"),
    pytest.param(lambda data: data["channels"][1].update(instrument="piano"), ["instrument", "'piano'"],
                 id="instrument-unknown"),
    pytest.param(lambda data: data["channels"][0].update(eq=[{"type": "peak", "freq_hz": 500.0, "gain_db": 0.0,
                                                              "q": 1.0}] * 9),
                 ["eq", "9 items", "at most 8"], id="nine-bands"),
])
def test_settings_errors_name_the_key(tmp_path, capsys, edit, expected):
    argv = _render(edit)(tmp_path, tmp_path)
    capsys.readouterr()
    assert cli.main(argv) == cli.EXIT_ERROR
    lines = _stderr_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "settings.json" in lines[0], lines
    for fragment in expected:
        assert fragment in lines[0], (fragment, lines[0])
    assert not (tmp_path / "mix.wav").exists()


def test_truncated_stem_is_an_error_unless_allowed(tmp_path, capsys):
    stems = _stems(tmp_path / "stems")
    data = (stems / "kick.wav").read_bytes()
    (stems / "kick.wav").write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "out"
    out.mkdir()
    capsys.readouterr()
    assert cli.main(["mix", str(stems), "-o", str(out / "mix.wav")]) == cli.EXIT_ERROR
    lines = _stderr_lines(capsys)
    assert len(lines) == 1 and "kick.wav" in lines[0] and "truncated" in lines[0] and "--allow-truncated" in lines[0]
    assert os.listdir(out) == []
    assert cli.main(["mix", str(stems), "-o", str(out / "mix.wav"), "--allow-truncated"]) == 0
    warnings = [line for line in _stderr_lines(capsys) if line.startswith("warning: ")]
    assert any("kick.wav is truncated" in line for line in warnings), warnings
