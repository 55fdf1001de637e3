"""The one output policy (`mixdown.outputs`) through every command.

* an output that is, or resolves to, an input (same path, symbolic link, hard link,
  a name differing only in case in the same folder, a linked folder) is refused with one
  error naming both, and the input is left byte for byte;
* commands that write into a folder never delete or overwrite a file they did not write
  (listen results, evaluate, data synth, demo, export), refuse a foreign non-empty folder
  unless --force, and replace only their own files;
* one folder rule: the output's folder must exist (mixdown creates only the folder it is
  told to write into), and an unwritable folder is a one-line error;
* a SIGTERM during a long render leaves no file, and the temporary file of a killed run
  is swept by the next write into that folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixdown import audio as audio_module
from mixdown import cli, outputs
from mixdown.audio import PARTIAL_PATTERN, atomic_write_text
from mixdown.outputs import MANIFEST_NAME, OutputError, OutputFolder, same_file
from mixdown.params import ConsoleParams, default_channel

SR = 8000


def _lines(capsys: pytest.CaptureFixture) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _one_error(capsys: pytest.CaptureFixture, *fragments: str) -> str:
    lines = _lines(capsys)
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and not any("Traceback" in line for line in lines), lines
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def _tone(frames: int = SR // 4, amplitude: float = 0.3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amplitude * np.sin(2 * np.pi * rng.uniform(100, 400) * np.arange(frames) / SR))[:, None]


@pytest.fixture
def session(tmp_path: Path) -> dict[str, Path]:
    """Stems (bass, kick), their settings, a reference mix and a class map."""
    stems = tmp_path / "stems"
    stems.mkdir()
    for i, name in enumerate(("bass", "kick")):
        sf.write(stems / f"{name}.wav", _tone(seed=i), SR)
    params = ConsoleParams(channels=[default_channel("bass", "bass"), default_channel("kick", "kick")], sample_rate=SR)
    (tmp_path / "settings.json").write_text(params.to_json())
    reference = np.concatenate([_tone(seed=0) + _tone(seed=1)] * 2, axis=1) * 0.5
    sf.write(tmp_path / "reference.wav", reference, SR)
    (tmp_path / "classes.yaml").write_text("bass: bass\n")
    out = tmp_path / "out"
    out.mkdir()
    return {"tmp": tmp_path, "stems": stems, "kick": stems / "kick.wav", "params": tmp_path / "settings.json",
            "reference": tmp_path / "reference.wav", "classes": tmp_path / "classes.yaml", "out": out}


# --------------------------------------------------------------------------- output == input


def _alias(kind: str, target: Path, suffix: str, tmp: Path) -> Path:
    """A path that is ``target`` in the way ``kind`` says (``suffix`` forces the output's extension)."""
    if kind == "same":
        return target
    if kind == "case":
        return target.with_name(target.stem.upper() + target.suffix)
    if kind == "symlink":
        link = tmp / "links" / f"alias{suffix}"
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(target)
        return link
    if kind == "hardlink":
        link = tmp / "links" / f"alias{suffix}"
        link.parent.mkdir(exist_ok=True)
        os.link(target, link)
        return link
    if kind == "linked-folder":
        folder = tmp / "linked"
        folder.symlink_to(target.parent, target_is_directory=True)
        return folder / target.name
    raise AssertionError(kind)


# (command line with {out} as the output, what {out} aliases, the output's suffix)
OVERWRITES: list[tuple[str, list[str], str, str]] = [
    ("mix-onto-stem", ["mix", "{stems}", "-o", "{out}", "--method", "mono"], "kick", ".wav"),
    ("mix-params-onto-stem", ["mix", "{stems}", "-o", "{tmp}/out/m.wav", "--params", "{out}"], "kick", ".json"),
    ("mix-params-onto-target", ["mix", "{stems}", "-o", "{tmp}/out/m.wav", "--params", "{out}", "--method", "reverse",
                                "--target", "{reference}"], "reference", ".json"),
    ("mix-onto-class-map", ["mix", "{stems}", "-o", "{out}", "--class-map", "{classes}"], "classes", ".wav"),
    ("render-onto-stem", ["render", "{stems}", "{params}", "-o", "{out}"], "kick", ".wav"),
    ("render-onto-settings", ["render", "{stems}", "{params}", "-o", "{out}"], "params", ".wav"),
    ("reverse-onto-stem", ["reverse", "{stems}", "{reference}", "-o", "{out}"], "kick", ".json"),
    ("reverse-render-onto-stem", ["reverse", "{stems}", "{reference}", "-o", "{tmp}/out/p.json", "--render", "{out}"],
     "kick", ".wav"),
    ("reverse-render-onto-reference", ["reverse", "{stems}", "{reference}", "-o", "{tmp}/out/p.json",
                                       "--render", "{out}"], "reference", ".wav"),
    ("export-reaper-onto-settings", ["export", "reaper", "{stems}", "{params}", "-o", "{out}"], "params", ".RPP"),
    ("export-sheet-onto-settings", ["export", "sheet", "{params}", "-o", "{out}"], "params", ".csv"),
]


SUFFIXES = {"kick": ".wav", "reference": ".wav", "params": ".json", "classes": ".yaml"}

# Links can give any input the output's extension; the same name (or its case variant) only when the input has it.
OVERWRITE_CASES = [pytest.param(argv, target, suffix, kind, id=f"{name}-{kind}")
                   for name, argv, target, suffix in OVERWRITES
                   for kind in ("same", "case", "symlink", "hardlink", "linked-folder")
                   if kind in ("symlink", "hardlink") or SUFFIXES[target] == suffix.lower()]


@pytest.mark.parametrize(("argv", "target", "suffix", "kind"), OVERWRITE_CASES)
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(session, capsys, argv, target, suffix, kind):
    source = session[target]
    before = {p: p.read_bytes() for p in session["tmp"].rglob("*") if p.is_file()}
    out = _alias(kind, source, suffix, session["tmp"])
    names = {key: str(value) for key, value in session.items()} | {"out": str(out)}
    capsys.readouterr()
    assert cli.main([arg.format(**names) for arg in argv]) == cli.EXIT_ERROR
    line = _one_error(capsys, str(out), "input")
    assert source.name in line or str(source) in line
    for path, content in before.items():
        assert path.read_bytes() == content, path
    assert not list(session["out"].iterdir())


def test_train_refuses_to_export_over_its_recipe(tmp_path, capsys):
    recipe = tmp_path / "forest.yaml"
    recipe.write_text((Path(__file__).parents[1] / "configs" / "forest.yaml").read_text())
    before = recipe.read_bytes()
    assert cli.main(["train", str(recipe), "--export", str(recipe)]) == cli.EXIT_ERROR
    _one_error(capsys, "forest.yaml", "input")
    assert recipe.read_bytes() == before


def test_same_file_forms(tmp_path):
    a = tmp_path / "a.wav"
    a.write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    os.link(a, tmp_path / "sub" / "b.wav")
    (tmp_path / "c.wav").symlink_to(a)
    assert same_file(a, tmp_path / "sub" / "b.wav") and same_file(tmp_path / "c.wav", a)
    assert same_file(tmp_path / "A.WAV", a)  # not there yet, but one name on case-insensitive systems
    assert same_file(tmp_path / "sub" / ".." / "a.wav", a)
    assert not same_file(tmp_path / "sub" / "a.wav", a) and not same_file(tmp_path / "d.wav", a)


# --------------------------------------------------------------------------- folders: only its own files


def _listen_results(tmp: Path, out: Path, force: bool) -> list[str]:
    from test_listening import synthetic_results_test

    test_dir = tmp / "test"
    if not test_dir.exists():
        synthetic_results_test(test_dir)
    return ["listen", "results", str(test_dir), "-o", str(out)] + (["--force"] if force else [])


def _demo(tmp: Path, out: Path, force: bool) -> list[str]:
    return ["demo", "-o", str(out)] + (["--force"] if force else [])


def _synth(tmp: Path, out: Path, force: bool) -> list[str]:
    return ["data", "synth", "--songs", "1", "--out", str(out), "--duration", "4", "--sample-rate", str(SR),
            "--min-stems", "1", "--max-stems", "2", "--workers", "1"] + (["--force"] if force else [])


def _evaluate(tmp: Path, out: Path, force: bool) -> list[str]:
    dataset = tmp / "dataset"
    if not dataset.exists():
        assert cli.main(_synth(tmp, dataset, False)) == 0
    return ["evaluate", str(dataset), "--methods", "mono", "--out", str(out), "--seconds", "2"] + \
        (["--force"] if force else [])


FOLDER_COMMANDS = {"listen-results": _listen_results, "demo": _demo, "data-synth": _synth, "evaluate": _evaluate}


@pytest.fixture
def short_demo(monkeypatch):
    from mixdown.synth import demo

    monkeypatch.setattr(cli, "DEMO_SAMPLE_RATE", SR)
    monkeypatch.setattr(demo, "DEMO_DURATION_S", 2.0)


@pytest.mark.parametrize("command", list(FOLDER_COMMANDS))
def test_folder_commands_never_touch_files_they_did_not_write(tmp_path, capsys, short_demo, one_thread, command):
    make = FOLDER_COMMANDS[command]
    out = tmp_path / "out"
    out.mkdir()
    notes = out / "notes.txt"
    notes.write_text("mine")
    capsys.readouterr()
    # a folder it did not write: refused, naming a file, nothing written
    assert cli.main(make(tmp_path, out, False)) == cli.EXIT_ERROR
    _one_error(capsys, str(out), "--force")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    # --force: writes its files beside notes.txt, records them
    assert cli.main(make(tmp_path, out, True)) == 0
    record = json.loads((out / MANIFEST_NAME).read_text())
    assert record["files"] and "notes.txt" not in record["files"]
    assert all((out / name).is_file() for name in record["files"])
    # again, without --force: its own folder now; notes.txt still kept
    stale = out / record["files"][0]
    assert cli.main(make(tmp_path, out, False)) == 0
    assert notes.read_text() == "mine" and stale.exists()
    # a file it recorded but did not write this time is removed only by a replacing command or --force
    (out / "extra.dat").write_text("old output")
    record["files"].append("extra.dat")
    (out / MANIFEST_NAME).write_text(json.dumps(record))
    assert cli.main(make(tmp_path, out, True)) == 0
    assert not (out / "extra.dat").exists() and notes.read_text() == "mine"
    assert not [p for p in out.rglob("*") if PARTIAL_PATTERN.match(p.name)]


def test_listen_results_replaces_its_stale_files_and_keeps_others(tmp_path, capsys):
    out = tmp_path / "test" / "results"
    argv = _listen_results(tmp_path, out, False)
    assert cli.main(argv) == 0
    (out / "notes.txt").write_text("keep")
    plot = out / "boxplot_song_two.png"
    assert plot.exists()
    record = json.loads((out / MANIFEST_NAME).read_text())
    record["files"].append("boxplot_song_gone.png")  # a song of an earlier run
    (out / "boxplot_song_gone.png").write_bytes(b"old")
    (out / MANIFEST_NAME).write_text(json.dumps(record))
    assert cli.main(argv) == 0
    assert not (out / "boxplot_song_gone.png").exists() and plot.exists()
    assert (out / "notes.txt").read_text() == "keep"


def test_export_writes_beside_other_files_and_never_deletes(session, capsys):
    out = session["out"]
    (out / "notes.txt").write_text("mine")
    assert cli.main(["export", "reaper", str(session["stems"]), str(session["params"]), "-o", str(out / "p.RPP")]) == 0
    assert cli.main(["export", "sheet", str(session["params"]), "-o", str(out / "sheet.csv")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "p.RPP", "sheet.csv"]
    assert (out / "notes.txt").read_text() == "mine"


def test_output_folder_holding_an_input_is_refused(tmp_path, capsys, one_thread):
    dataset = tmp_path / "dataset"
    assert cli.main(_synth(tmp_path, dataset, False)) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(dataset), "--methods", "mono", "--out", str(dataset), "--force"]) == 2
    _one_error(capsys, str(dataset), "input")
    test_dir = tmp_path / "test"
    _listen_results(tmp_path, test_dir, False)
    assert cli.main(["listen", "results", str(test_dir), "-o", str(test_dir), "--force"]) == 2
    _one_error(capsys, "input")


# --------------------------------------------------------------------------- one folder rule


@pytest.mark.parametrize("argv", [
    ["mix", "{stems}", "-o", "{tmp}/new/deeper/mix.wav"],
    ["render", "{stems}", "{params}", "-o", "{tmp}/new/mix.wav"],
    ["reverse", "{stems}", "{reference}", "-o", "{tmp}/new/p.json"],
    ["export", "reaper", "{stems}", "{params}", "-o", "{tmp}/new/p.RPP"],
    ["export", "sheet", "{params}", "-o", "{tmp}/new/s.csv"],
    ["demo", "-o", "{tmp}/new/demo"],
    ["evaluate", "{tmp}", "--methods", "mono", "--out", "{tmp}/new/eval"],
    ["data", "synth", "--songs", "1", "--out", "{tmp}/new/synth"],
    ["listen", "create", "{classes}", "-o", "{tmp}/new/test"],
    ["listen", "results", "{tmp}", "-o", "{tmp}/new/results"],
], ids=lambda argv: "-".join(a for a in argv[:2] if not a.startswith("{")))
def test_every_command_refuses_a_missing_parent_folder_and_creates_none(session, capsys, argv):
    names = {key: str(value) for key, value in session.items()}
    assert cli.main([arg.format(**names) for arg in argv]) == cli.EXIT_ERROR
    _one_error(capsys, "new", "does not exist")
    assert not (session["tmp"] / "new").exists()


@pytest.fixture
def read_only(session, monkeypatch) -> Path:
    """``out`` made read-only; as root (who writes anyway) the permission check is made to see it so."""
    folder = session["out"]
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(outputs.os, "access",
                            lambda path, mode, **kw: False if Path(path) == folder else real(path, mode, **kw))
    yield folder
    folder.chmod(0o755)


@pytest.mark.parametrize("argv", [
    ["export", "reaper", "{stems}", "{params}", "-o", "{out}/p.RPP"],
    ["reverse", "{stems}", "{reference}", "-o", "{out}/p.json"],
    ["listen", "create", "{classes}", "-o", "{out}/test"],
    ["mix", "{stems}", "-o", "{out}/m.wav"],
    ["demo", "-o", "{out}/demo"],
], ids=lambda argv: "-".join(a for a in argv[:2] if not a.startswith("{")))
def test_a_read_only_output_folder_is_one_error_line(session, read_only, capsys, argv):
    names = {key: str(value) for key, value in session.items()}
    assert cli.main([arg.format(**names) for arg in argv]) == cli.EXIT_ERROR
    _one_error(capsys, str(read_only), "cannot write")
    assert not list(read_only.iterdir())


def test_a_write_that_fails_late_is_one_error_line_and_leaves_nothing(session, capsys, monkeypatch):
    """The folder was writable when checked but the write fails (made read-only meanwhile, disk full)."""
    real = os.open

    def refuse(path, flags, *args, **kw):
        if PARTIAL_PATTERN.match(Path(path).name):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, flags, *args, **kw)

    monkeypatch.setattr(audio_module.os, "open", refuse)
    for argv in (["export", "reaper", str(session["stems"]), str(session["params"]), "-o", str(session["out"] / "p.RPP")],
                 ["mix", str(session["stems"]), "-o", str(session["out"] / "m.wav"), "--method", "mono"]):
        assert cli.main(argv) == cli.EXIT_ERROR
        _one_error(capsys, str(session["out"]), "Permission denied")
    assert not list(session["out"].iterdir())


# --------------------------------------------------------------------------- partial files, SIGTERM


def test_partial_file_of_a_dead_process_is_swept_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    pid = int(dead.stdout)
    leftover = tmp_path / f"mix.mixdown-partial-{pid}-0123abcd.wav"
    leftover.write_bytes(b"\0" * 1000)
    mine = tmp_path / f"other.mixdown-partial-{os.getpid()}-0123abcd.json"  # a write of this process, in flight
    mine.write_text("")
    atomic_write_text(tmp_path / "notes.json", "{}")
    assert not leftover.exists() and mine.exists()


LONG_RENDER = """
import sys
import numpy as np, soundfile as sf
from pathlib import Path
from mixdown.params import ConsoleParams, default_channel
folder = Path(sys.argv[1])
(folder / "stems").mkdir()
rng = np.random.default_rng(0)
for name in ("bass", "keys"):
    sf.write(folder / "stems" / f"{name}.wav", 0.1 * rng.standard_normal(int(sys.argv[2]) * 44100), 44100)
params = ConsoleParams(channels=[default_channel("bass", "bass"), default_channel("keys", "keys")], sample_rate=44100)
(folder / "p.json").write_text(params.to_json())
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_render_leaves_no_file(tmp_path, sig):
    """SIGTERM while the output is being written: exit 143, no output, no temporary file. SIGKILL cannot be
    caught: the visible temporary file it leaves is removed by the next write into the folder."""
    seconds = 45
    subprocess.run([sys.executable, "-c", LONG_RENDER, str(tmp_path), str(seconds)], check=True)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "mixdown", "render", str(tmp_path / "stems"),
                                str(tmp_path / "p.json"), "-o", str(out / "mix.flac")],
                               stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while not any(PARTIAL_PATTERN.match(p.name) for p in out.iterdir()):
        assert process.poll() is None, f"finished before writing was seen: {process.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(sig)
    stderr = process.communicate(timeout=120)[1]
    if sig == signal.SIGTERM:
        assert process.returncode == cli.EXIT_TERMINATED, stderr
        assert "terminated" in stderr and "Traceback" not in stderr
        assert list(out.iterdir()) == []
    else:
        assert process.returncode == -signal.SIGKILL
        (partial,) = out.iterdir()
        assert PARTIAL_PATTERN.match(partial.name) and not (out / "mix.flac").exists()
        atomic_write_text(out / "next.json", "{}")  # the next write into the folder sweeps it
        assert [p.name for p in out.iterdir()] == ["next.json"]


# --------------------------------------------------------------------------- OutputFolder itself


def test_output_folder_refuses_a_file_in_its_place_and_removes_what_it_created_on_failure(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="a file of that name exists"):
        OutputFolder(tmp_path / "file", "demo").check()
    with pytest.raises(RuntimeError), OutputFolder(tmp_path / "fresh", "demo"):
        raise RuntimeError("the command failed before writing anything")
    assert not (tmp_path / "fresh").exists()


def test_output_folder_ignores_recorded_paths_outside_it(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (tmp_path / "precious.txt").write_text("keep")
    (folder / MANIFEST_NAME).write_text(json.dumps({"command": "demo", "files": ["../precious.txt", "/etc/hosts"]}))
    with OutputFolder(folder, "demo", replace=True):
        (folder / "new.txt").write_text("x")
    assert (tmp_path / "precious.txt").read_text() == "keep"
    assert json.loads((folder / MANIFEST_NAME).read_text())["files"] == ["new.txt"]


def test_force_never_removes_what_another_command_wrote(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "metrics.csv").write_text("rows")
    (folder / MANIFEST_NAME).write_text(json.dumps({"command": "evaluate", "files": ["metrics.csv"]}))
    with pytest.raises(OutputError, match="written by `mixdown evaluate`"):
        OutputFolder(folder, "demo", replace=True).check()
    with OutputFolder(folder, "demo", replace=True, force=True):
        (folder / "mix_mono.wav").write_bytes(b"x")
    assert (folder / "metrics.csv").read_text() == "rows"
