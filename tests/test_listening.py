"""Listening tests: stimuli, configuration, building, randomisation, storage, screening,
statistics (known answers), results and the server's API (FastAPI TestClient)."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import socket
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
import yaml
from fastapi.testclient import TestClient

from mixdown.cli import main
from mixdown.errors import MixdownError
from mixdown.listening.build import build_test
from mixdown.listening.config import INSTRUCTIONS, load_config, parse_config
from mixdown.listening.manifest import RESPONSES_NAME, Manifest, SongStimuli
from mixdown.listening.paired import abx_scores, grade_summaries, preferences
from mixdown.listening.randomise import participant_plan, participant_trials
from mixdown.listening.results import write_results
from mixdown.listening.screening import screen_participants
from mixdown.listening.statistics import holm, pairwise_wilcoxon, summarize
from mixdown.listening.stimuli import cut_excerpt, make_anchor, match_loudness
from mixdown.listening.store import (
    ChoiceRecord,
    DuplicateParticipantError,
    GradeRecord,
    ResponseStore,
)
from mixdown.listening.table import RatingsTable
from mixdown.web.common import allowed_hosts_for
from mixdown.web.listen.app import TOKEN_HEADER, create_app

SR = 22050
LOUDNESS_TOLERANCE_LU = 0.5


def music_like(seconds: float, sample_rate: int = SR, seed: int = 0, channels: int = 2) -> np.ndarray:
    """Broadband stereo test signal: a chord over decaying noise bursts, peak about 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    chord = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (220.0, 277.2, 329.6, 1760.0))
    bursts = rng.standard_normal((channels, t.size)) * np.exp(-8.0 * (t % 0.25))
    audio = 0.1 * chord + 0.3 * bursts
    return (0.5 * audio / np.max(np.abs(audio))).astype(np.float32)


def loudness(audio: np.ndarray, sample_rate: int) -> float:
    # pyloudnorm as the reference, with the exact BS.1770 filters (DeMan) the console's meter
    # uses: its default filters are an approximation that reads about 0.04 LU off.
    return pyloudnorm.Meter(sample_rate, filter_class="DeMan").integrated_loudness(audio.T.astype(np.float64))


def write(path: Path, audio: np.ndarray, sample_rate: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.T, sample_rate, subtype="FLOAT")
    return path


@pytest.fixture
def file_test(tmp_path) -> tuple[Path, dict]:
    """A config of two songs with file conditions (reference, a quieter and a duller mix)."""
    songs = []
    for i, name in enumerate(("one", "two")):
        reference = music_like(3.0, seed=i)
        write(tmp_path / name / "reference.wav", reference)
        write(tmp_path / name / "quiet.wav", 0.2 * reference)
        write(tmp_path / name / "dull.wav", make_anchor(reference, SR, 6000.0, False))
        songs.append({"name": name, "start_s": 0.5, "conditions": {
            c: f"{name}/{c}.wav" for c in ("reference", "quiet", "dull")}})
    config = {"name": "Synthetic", "seed": 3, "excerpt_s": 2.0, "fade_ms": 20, "target_lufs": -20.0,
              "reference": "reference", "songs": songs}
    return tmp_path, config


def save_config(folder: Path, config: dict) -> Path:
    path = folder / "test.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def built(file_test) -> Path:
    folder, config = file_test
    build_test(load_config(save_config(folder, config)), folder / "test")
    return folder / "test"


# ------------------------------------------------------------------ stimuli


def test_cut_excerpt_length_and_raised_cosine_fades():
    audio = np.ones((2, 1000), dtype=np.float32)
    excerpt = cut_excerpt(audio, 1000, start_s=0.1, duration_s=0.5, fade_ms=100.0)
    assert excerpt.shape == (2, 500)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(100) + 0.5) / 100)
    np.testing.assert_allclose(excerpt[0, :100], ramp, atol=1e-7)
    np.testing.assert_allclose(excerpt[1, -100:], ramp[::-1], atol=1e-7)
    np.testing.assert_array_equal(excerpt[:, 100:400], 1.0)
    assert audio.min() == 1.0  # the input is not modified


def test_cut_excerpt_outside_signal_raises():
    with pytest.raises(ValueError, match="outside"):
        cut_excerpt(np.zeros((1, 100)), 100, start_s=0.5, duration_s=0.6, fade_ms=0.0)


@pytest.mark.parametrize("target_lufs", [-30.0, -23.0, -16.0])
@pytest.mark.parametrize("level,channels", [(0.01, 2), (0.9, 2), (0.3, 1)])
def test_match_loudness_reaches_target(target_lufs, level, channels):
    audio = level * music_like(2.0, channels=channels, seed=channels) / 0.5
    matched, measured = match_loudness(audio, SR, target_lufs)
    assert measured == pytest.approx(loudness(audio, SR), abs=0.01)  # two implementations of one meter
    assert loudness(matched, SR) == pytest.approx(target_lufs, abs=0.01)


def test_match_loudness_of_silence_raises():
    with pytest.raises(MixdownError, match="silent"):
        match_loudness(np.zeros((2, SR), dtype=np.float32), SR, -23.0)


@pytest.mark.parametrize("freq_hz,expected_db,tolerance_db", [
    (500.0, 0.0, 0.01), (3500.0, -6.02, 0.05), (7000.0, -104.1, 0.5)])
def test_lowpass_anchor_known_response(freq_hz, expected_db, tolerance_db):
    """A bilinear-transform Butterworth of order N has |H|^2 = 1 / (1 + (tan(w/2) / tan(wc/2))^(2N));
    run forward and backward it is squared: -6.02 dB at the cutoff, -104.1 dB at 7 kHz (N = 8, 48 kHz)."""
    sample_rate = 48000
    t = np.arange(sample_rate) / sample_rate
    tone = np.sin(2 * np.pi * freq_hz * t)[None].repeat(2, axis=0).astype(np.float32)
    anchor = make_anchor(tone, sample_rate, lowpass_hz=3500.0, mono=False)
    middle = slice(sample_rate // 4, 3 * sample_rate // 4)
    gain_db = 20 * np.log10(np.std(anchor[0, middle]) / np.std(tone[0, middle]))
    warped = np.tan(np.pi * freq_hz / sample_rate) / np.tan(np.pi * 3500.0 / sample_rate)
    analytic_db = 20 * np.log10(1 / (1 + warped ** 16))
    assert analytic_db == pytest.approx(expected_db, abs=0.05)
    assert gain_db == pytest.approx(analytic_db, abs=tolerance_db)


def test_mono_anchor_is_the_channel_average():
    stereo = music_like(0.5)
    anchor = make_anchor(stereo, SR, lowpass_hz=None, mono=True)
    np.testing.assert_allclose(anchor[0], stereo.mean(axis=0), atol=1e-7)
    np.testing.assert_array_equal(anchor[0], anchor[1])


# ------------------------------------------------------------------ config


def test_config_merges_shared_conditions_and_orders_reference_first(tmp_path):
    config = parse_config({
        "reference": "target",
        "conditions": {"mono": {"method": "mono"}},
        "anchors": [{"name": "lp35", "lowpass_hz": 3500}, {"name": "mono_anchor", "mono": True}],
        "songs": [{"name": "a", "stems": "stems", "conditions": {"rules": {"method": "rules"}, "target": "a.wav"}}],
    }, tmp_path)
    assert config.conditions == ("target", "rules", "mono", "lp35", "mono_anchor")
    song = config.songs[0]
    assert song.conditions["target"].file == tmp_path / "a.wav"
    assert song.conditions["mono"].method == "mono" and song.stems == tmp_path / "stems"
    assert config.anchors[1].lowpass_hz is None and config.anchors[1].mono


BASE = {"reference": "ref", "songs": [{"name": "a", "conditions": {"ref": "a.wav", "b": "b.wav"}}]}


@pytest.mark.parametrize("change,message", [
    ({"excerpt_sec": 4}, "unknown key 'excerpt_sec'"),
    ({"reference": "nope"}, "has no condition 'nope'"),
    ({"target_lufs": 3}, "target_lufs: 3 is outside"),
    ({"seed": -1}, "seed: expected a non-negative integer"),
    ({"excerpt_s": 2, "fade_ms": 1000}, "fade_ms 1000 is too long"),
    ({"conditions": {"x": {"method": "magic"}}}, "unknown method 'magic'"),
    ({"conditions": {"x": {"method": "mono"}}}, "needs a stems folder"),
    ({"conditions": {"x": {"file": "x.wav", "method": "mono"}}}, "exactly one of file: or method:"),
    ({"conditions": {"b": "other.wav"}}, "defined both for the song and for every song"),
    ({"songs": [{"name": "a", "conditions": {"ref": "a.wav", "b": "b.wav"}},
                {"name": "c", "conditions": {"ref": "c.wav"}}]}, "different conditions"),
    ({"songs": [{"name": "a/b", "conditions": {"ref": "a.wav"}}]}, "not a valid name"),
    ({"songs": []}, "non-empty list"),
    ({"anchors": [{"name": "b", "lowpass_hz": 3500}]}, "anchor 'b' has the name of a condition"),
    ({"anchors": [{"name": "x"}]}, "needs lowpass_hz, mono: true, or both"),
    ({"type": "triangle"}, "type: 'triangle' is not one of mushra, bs1116, ab, abx"),
    ({"type": ["abx"]}, r"type: \['abx'\] is not one of"),
    ({"repeats": 3}, "repeats applies to bs1116, ab and abx tests"),
    ({"type": "abx", "repeats": 0}, "repeats: 0 is outside"),
    ({"type": "abx", "repeats": True}, "repeats: expected a non-negative integer"),
    ({"anchors": [{"name": "m", "lowpass_hz": 7000, "level": "high"}]}, "level: 'high' is not one of low, mid"),
    ({"anchors": [{"name": "m1", "lowpass_hz": 7000, "level": "mid"}, {"name": "m2", "lowpass_hz": 6000,
                                                                       "level": "mid"}]},
     "only one anchor can be the mid anchor"),
])
def test_config_errors_name_the_problem(tmp_path, change, message):
    with pytest.raises(MixdownError, match=message):
        parse_config({**BASE, **change}, tmp_path)


FUZZ_VALUES = [None, True, 0, -1, 1e400, -1e400, float("nan"), 10**400, "", "x", "../../etc", [], {}, [[]],
               {"name": "a"}, 3.5, "mushra", "abx", 2**63]


def test_config_fuzz_gives_a_config_or_one_clean_error(tmp_path):
    """#17: 400 seeded mutations of a valid config (values swapped, keys dropped or added) end in a
    config or a MixdownError naming a key, never another exception."""
    rng = random.Random(16)
    valid = {**BASE, "type": "abx", "repeats": 2, "anchors": [{"name": "lp", "lowpass_hz": 7000, "level": "mid"}],
             "conditions": {"m": {"method": "mono", "seed": 1}}, "songs": [
                 {"name": "a", "stems": "s", "start_s": 1.0, "conditions": {"ref": "a.wav", "b": "b.wav"}}]}
    outcomes = Counter()
    for _ in range(400):
        data = json.loads(json.dumps(valid))
        for _ in range(rng.randint(1, 3)):
            places = []

            def walk(value, path):
                places.append(path)
                items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
                for key, child in items:
                    walk(child, [*path, key])

            walk(data, [])
            path = rng.choice(places[1:]) if len(places) > 1 else None
            if path is None:
                break
            parent = data
            for key in path[:-1]:
                parent = parent[key]
            action = rng.random()
            if action < 0.6:
                parent[path[-1]] = rng.choice(FUZZ_VALUES)
            elif action < 0.8:
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[rng.choice(["extra", "type", "repeats", "level"])] = rng.choice(FUZZ_VALUES)
        try:
            parse_config(data, tmp_path)
            outcomes["config"] += 1
        except MixdownError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("config"), str(exc)
            outcomes["error"] += 1
    assert outcomes["error"] > 200 and outcomes["config"] > 0, outcomes


@pytest.mark.parametrize("test_type", ["mushra", "bs1116", "ab", "abx"])
def test_config_types_default_anchors_and_instructions(tmp_path, test_type):
    config = parse_config({**BASE, "type": test_type}, tmp_path)
    assert config.type == test_type and config.repeats == 1
    assert [a.name for a in config.anchors] == (["anchor"] if test_type == "mushra" else [])
    assert config.instructions == INSTRUCTIONS[test_type] and config.mid_anchor is None
    leveled = parse_config({**BASE, "anchors": [{"name": "lo", "lowpass_hz": 3500, "level": "low"},
                                                {"name": "mid", "lowpass_hz": 7000, "level": "mid"}]}, tmp_path)
    assert leveled.mid_anchor == "mid" and leveled.conditions == ("ref", "b", "lo", "mid")


def test_example_config_builds_from_the_demo(demo_dir, tmp_path):
    """configs/listening_test.yaml (shown in the README) is a valid test of the demo's mixes."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "demo").symlink_to(demo_dir, target_is_directory=True)
    example = Path(__file__).parents[1] / "configs" / "listening_test.yaml"
    path = tmp_path / "configs" / "listening_test.yaml"
    path.write_text(example.read_text(encoding="utf-8"), encoding="utf-8")
    config = load_config(path)
    assert (config.type, config.reference, config.mid_anchor) == ("mushra", "rules", "mid_anchor")
    manifest = build_test(config, tmp_path / "test")
    assert manifest.conditions == ("rules", "mono", "dmc", "random", "low_anchor", "mid_anchor")
    assert manifest.mid_anchor == "mid_anchor" and manifest.roles["mid_anchor"] == "anchor"
    assert Manifest.load(tmp_path / "test") == manifest


def test_config_file_errors(tmp_path):
    with pytest.raises(MixdownError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("songs: [", encoding="utf-8")
    with pytest.raises(MixdownError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


# ------------------------------------------------------------------ build


def test_build_matches_loudness_and_writes_manifest(built):
    manifest = Manifest.load(built)
    assert manifest.conditions == ("reference", "quiet", "dull", "anchor")
    assert manifest.roles == {"reference": "reference", "quiet": "test", "dull": "test", "anchor": "anchor"}
    assert [song.name for song in manifest.songs] == ["one", "two"]
    for song in manifest.songs:
        assert song.source_lufs["quiet"] == pytest.approx(song.source_lufs["reference"] + 20 * np.log10(0.2),
                                                          abs=0.05)
        for condition, relative in song.files.items():
            audio, rate = sf.read(built / relative, always_2d=True)
            assert rate == SR and audio.shape == (2 * SR, 2)
            assert abs(loudness(audio.T, rate) - manifest.target_lufs) < LOUDNESS_TOLERANCE_LU, condition
        reference, _ = sf.read(built / song.files["reference"])
        anchor, _ = sf.read(built / song.files["anchor"])
        spectrum = [np.abs(np.fft.rfft(x[:, 0])) for x in (reference, anchor)]
        high = np.fft.rfftfreq(len(reference), 1 / SR) > 5000
        assert np.sum(spectrum[1][high] ** 2) < 1e-4 * np.sum(spectrum[0][high] ** 2)


@pytest.mark.parametrize("fault,message", [
    ("missing", "condition 'quiet': .*quiet.wav: no such file"),
    ("rate", "differ in sample rate .*quiet 44100 Hz"),
    ("length", "differ in length"),
    ("past_end", "runs past the song's end"),
    ("clip", "would clip; lower target_lufs to"),
    ("silent", "condition 'quiet': the excerpt is silent"),
])
def test_build_bad_input_fails_cleanly(file_test, fault, message):
    folder, config = file_test
    quiet = folder / "one" / "quiet.wav"
    reference = music_like(3.0, seed=0)
    if fault == "missing":
        quiet.unlink()
    elif fault == "rate":
        write(quiet, music_like(3.0 * 2, sample_rate=44100), sample_rate=44100)
    elif fault == "length":
        write(quiet, reference[:, :-100])
    elif fault == "past_end":
        config["songs"][0]["start_s"] = 1.5
    elif fault == "clip":
        spikes = np.zeros_like(reference)
        spikes[:, ::SR // 2] = 0.9
        write(quiet, spikes)
        config["target_lufs"] = -10.0
    elif fault == "silent":
        write(quiet, np.zeros_like(reference))
    with pytest.raises(MixdownError, match=message):
        build_test(load_config(save_config(folder, config)), folder / "test")
    assert not (folder / "test").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".test")]


def test_build_refuses_non_empty_output(file_test):
    folder, config = file_test
    (folder / "test").mkdir()
    (folder / "test" / "keep.txt").write_text("mine")
    with pytest.raises(MixdownError, match="already exists and is not empty"):
        build_test(load_config(save_config(folder, config)), folder / "test")
    assert (folder / "test" / "keep.txt").read_text() == "mine"


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The bundled demo (stems and mixes), written once per session."""
    folder = tmp_path_factory.getbasetemp() / "listen-demo"
    if not (folder / "mix_rules.wav").exists():
        assert main(["demo", "-o", str(folder)]) == 0
    return folder


def test_cli_create_renders_methods_from_demo_stems(demo_dir, tmp_path, capsys):
    """Method conditions are mixed from the stems; the demo is cut to 3 s to keep this fast."""
    seconds = 3.0
    for path in [*demo_dir.glob("stems/*.wav"), demo_dir / "mix_rules.wav"]:
        audio, rate = sf.read(path, always_2d=True)
        write(tmp_path / path.relative_to(demo_dir), audio[:int(seconds * rate)].T, rate)
    config = {"reference": "target", "excerpt_s": 2.0, "target_lufs": -23.0, "seed": 1,
              "conditions": {"mono": {"method": "mono"}},
              "songs": [{"name": "demo", "stems": "stems", "start_s": 0.5, "conditions": {"target": "mix_rules.wav"}}]}
    assert main(["listen", "create", str(save_config(tmp_path, config)), "-o", str(tmp_path / "test")]) == 0
    assert "1 songs x 3 conditions" in " ".join(capsys.readouterr().err.split())
    manifest = Manifest.load(tmp_path / "test")
    mono, rate = sf.read(tmp_path / "test" / manifest.songs[0].files["mono"], always_2d=True)
    target, _ = sf.read(tmp_path / "test" / manifest.songs[0].files["target"], always_2d=True)
    assert mono.shape == target.shape == (int(2.0 * rate), 2)
    assert abs(loudness(mono.T, rate) + 23.0) < LOUDNESS_TOLERANCE_LU
    assert not np.allclose(mono, target, atol=1e-3)  # a different mix, not a copy


def test_cli_create_error_is_one_line(tmp_path, capsys):
    config = {"reference": "a", "songs": [{"name": "s", "conditions": {"a": "a.wav", "b": "b.wav"}}]}
    assert main(["listen", "create", str(save_config(tmp_path, config)), "-o", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: song 's', condition 'a':") and "no such file" in err
    assert not (tmp_path / "t").exists()


# ------------------------------------------------------------------ randomisation


def test_randomisation_is_reproducible_per_participant():
    orders = {pid: participant_trials(5, 6, seed=11, participant_id=pid) for pid in [f"p{i}" for i in range(30)]}
    assert participant_trials(5, 6, seed=11, participant_id="p3") == orders["p3"]
    assert participant_trials(5, 6, seed=11, participant_id=" P3 ") == orders["p3"]  # IDs ignore case/space
    assert participant_trials(5, 6, seed=12, participant_id="p3") != orders["p3"]
    assert len({trials for trials in orders.values()}) == len(orders)  # 5! * 6!^5 orders: no repeats
    for trials in orders.values():
        assert sorted(trial.song_index for trial in trials) == list(range(5))
        assert all(sorted(trial.condition_order) == list(range(6)) for trial in trials)
    first_slots = {trials[0].condition_order[0] for trials in orders.values()}
    assert first_slots == set(range(6))  # every condition gets shown first to someone


@pytest.mark.parametrize("test_type, per_song", [("bs1116", 3), ("abx", 3), ("ab", 6)])
def test_participant_plan_of_each_type(test_type, per_song):
    """4 conditions, the reference at index 1: BS.1116 and ABX pair it with each other condition, AB
    pairs every two conditions; each item `repeats` times, A/B order and X drawn per trial."""
    plans = {pid: participant_plan(test_type, 2, 4, 1, 5, pid, repeats=3) for pid in ("p", "q")}
    assert participant_plan(test_type, 2, 4, 1, 5, " P ", repeats=3) == plans["p"]  # reproducible
    assert plans["p"] != plans["q"]
    for trials in plans.values():
        assert len(trials) == 2 * per_song * 3
        items = Counter((t.song_index, tuple(sorted(t.condition_order))) for t in trials)
        assert set(items.values()) == {3} and len(items) == 2 * per_song
        if test_type != "ab":
            assert all(1 in t.condition_order for t in trials)
        assert {t.condition_order[0] for t in trials} == set(range(4))  # A/B order drawn per trial
        assert all((t.x_slot in (0, 1)) == (test_type == "abx") for t in trials)
    assert participant_plan("mushra", 2, 4, 1, 5, "p") == participant_trials(2, 4, 5, "p")


# ------------------------------------------------------------------ store


def test_store_duplicate_ids_idempotent_trials_and_restart(tmp_path):
    store = ResponseStore(tmp_path / "r.sqlite")
    alice = store.add_participant("Alice")
    with pytest.raises(DuplicateParticipantError, match="'alice' is already taken"):
        store.add_participant("alice")
    store.save_trial("Alice", 0, "one", {"ref": (1, 100.0), "b": (0, 40.0)}, "nice")
    store.save_trial("Alice", 0, "one", {"ref": (1, 100.0), "b": (0, 40.0)}, "nice")
    assert len(store.ratings()) == 2 and len(store.trials()) == 1
    store.save_trial("Alice", 0, "one", {"ref": (1, 95.0), "b": (0, 40.0)}, "changed my mind")
    reopened = ResponseStore(tmp_path / "r.sqlite")  # a restarted server
    assert reopened.participant_by_token(alice.token).participant_id == "Alice"
    assert {(r.condition, r.rating) for r in reopened.ratings()} == {("ref", 95.0), ("b", 40.0)}
    assert reopened.trials()[0].comment == "changed my mind"
    assert reopened.submitted_trials("Alice") == {0}


# ------------------------------------------------------------------ screening and statistics


def table_from(rows: dict[tuple[str, str], dict[str, float]], conditions: tuple[str, ...]) -> RatingsTable:
    return RatingsTable.from_records(((p, s, c, r) for (p, s), ratings in rows.items() for c, r in ratings.items()),
                                     conditions)


@pytest.mark.parametrize("trials,below,excluded", [
    (7, 1, False),    # 14.3 %
    (13, 2, True),    # 15.4 %
    (20, 3, False),   # exactly 15 %: not more than 15 %
    (20, 4, True),
    (5, 0, False),
])
def test_post_screening_rule(trials, below, excluded):
    rows = {("p", f"s{i}"): {"ref": 80.0 if i < below else 90.0, "x": 50.0} for i in range(trials)}
    rows.update({("q", f"s{i}"): {"ref": 100.0, "x": 20.0} for i in range(trials)})
    results = screen_participants(table_from(rows, ("ref", "x")), "ref")
    assert [(r.participant_id, r.trials, r.reference_below, r.excluded) for r in results] == [
        ("p", trials, below, excluded), ("q", trials, 0, False)]


@pytest.mark.parametrize("trials,above,excluded", [
    (7, 1, False),    # 14.3 %
    (13, 2, True),    # 15.4 %
    (20, 3, False),   # exactly 15 %: not more than 15 %
    (20, 4, True),
])
def test_post_screening_mid_anchor_rule(trials, above, excluded):
    """BS.1534-3: excluded when the mid anchor is rated above 90 in more than 15 % of the items; 90 itself is not above."""
    rows = {("p", f"s{i}"): {"ref": 100.0, "mid": 95.0 if i < above else 90.0, "x": 50.0} for i in range(trials)}
    table = table_from(rows, ("ref", "mid", "x"))
    (result,) = screen_participants(table, "ref", mid_anchor="mid")
    assert (result.mid_anchor_trials, result.mid_anchor_above, result.excluded) == (trials, above, excluded)
    (unscreened,) = screen_participants(table, "ref")  # without a mid anchor only the reference rule applies
    assert not unscreened.excluded and unscreened.mid_anchor_trials == 0


def test_summary_interval_is_clipped_to_the_scale():
    ratings = np.array([100.0, 100.0, 100.0, 90.0, 85.0])
    raw, clipped = summarize(ratings), summarize(ratings, scale=(0.0, 100.0))
    assert raw.ci_high > 100.0 and clipped.ci_high == 100.0 and clipped.ci_low == raw.ci_low
    inside = np.array([60.0, 70.0, 80.0, 90.0, 100.0])
    assert summarize(inside, scale=(0.0, 100.0)) == summarize(inside)  # clipping changes nothing inside


def test_summary_mean_median_and_t_interval():
    summary = summarize(np.array([60.0, 70.0, 80.0, 90.0, 100.0, np.nan]))
    # s = sqrt(250), t(0.975, 4) = 2.776445 (t table): half width 2.776445 * sqrt(250) / sqrt(5)
    half = 2.776445 * np.sqrt(250.0) / np.sqrt(5.0)
    assert (summary.n, summary.mean, summary.median) == (5, 80.0, 80.0)
    assert summary.ci_low == pytest.approx(80.0 - half, abs=1e-4)
    assert summary.ci_high == pytest.approx(80.0 + half, abs=1e-4)
    single = summarize(np.array([42.0]))
    assert single.mean == 42.0 and np.isnan(single.ci_low)


@pytest.mark.parametrize("p,expected", [
    ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),  # 4*0.005, 3*0.01, 2*0.03, max(1*0.04, 0.06)
    ([0.5, 0.6], [1.0, 1.0]),                                # capped at 1, then monotone
    ([0.2], [0.2]),
])
def test_holm_known_answers(p, expected):
    np.testing.assert_allclose(holm(p), expected, rtol=1e-12)


# X - Y = [9, 11, 10, 3, 5, 2]: all positive, W = 0
# X - Z = [16, -9, 25, 30, 26, 34]: the negative one has rank 1, W = 1
# Y - Z = [7, -20, 15, 27, 21, 32]: the negative one has rank 3, W = 3
X = [66.0, 51.0, 65.0, 75.0, 81.0, 69.0]
Y = [57.0, 40.0, 55.0, 72.0, 76.0, 67.0]
Z = [50.0, 60.0, 40.0, 45.0, 55.0, 35.0]


def test_pairwise_wilcoxon_and_holm_on_known_table():
    """Exact two-sided p = 2 * #{sign patterns with W <= w} / 2^6; the subsets of ranks
    {1..6} with sum <= 0, 1, 3 number 1, 2 and 5 ({}, {1}, {2}, {3}, {1,2})."""
    rows = {("p", f"s{i}"): {"X": x, "Y": y, "Z": z} for i, (x, y, z) in enumerate(zip(X, Y, Z))}
    tests = pairwise_wilcoxon(table_from(rows, ("X", "Y", "Z")))
    assert [(t.condition_a, t.condition_b, t.n, t.statistic) for t in tests] == [
        ("X", "Y", 6, 0.0), ("X", "Z", 6, 1.0), ("Y", "Z", 6, 3.0)]
    np.testing.assert_allclose([t.p_value for t in tests], [2 / 64, 4 / 64, 10 / 64])
    # Holm: 3 * 2/64, max(that, 2 * 4/64), max(that, 1 * 10/64)
    np.testing.assert_allclose([t.p_holm for t in tests], [0.09375, 0.125, 0.15625])
    assert tests[0].median_difference == 7.0


def test_pairwise_wilcoxon_identical_ratings_and_missing_pairs():
    rows = {("p", "a"): {"X": 50.0, "Y": 50.0}, ("p", "b"): {"X": 60.0, "Y": 60.0}, ("q", "a"): {"X": 10.0}}
    (test,) = pairwise_wilcoxon(table_from(rows, ("X", "Y")))
    assert (test.n, test.p_value, test.p_holm) == (2, 1.0, 1.0) and np.isnan(test.statistic)


# ------------------------------------------------------------------ results


def synthetic_results_test(folder: Path) -> Path:
    """A test folder with a hand-made manifest and known ratings (no audio needed)."""
    songs = tuple(SongStimuli(name, SR, 0.0, 2.0, {}, {}) for name in ("one", "two"))
    manifest = Manifest(name="Known", instructions="-", seed=0, target_lufs=-23.0,
                        conditions=("ref", "X", "Y", "Z", "anchor"),
                        roles={"ref": "reference", "X": "test", "Y": "test", "Z": "test", "anchor": "anchor"},
                        songs=songs)
    folder.mkdir()
    (folder / "test.json").write_text(manifest.to_json())
    store = ResponseStore(folder / RESPONSES_NAME)
    for i, (x, y, z) in enumerate(zip(X, Y, Z)):  # 3 kept participants x 2 songs = the 6 known trials
        pid = f"p{i // 2}"
        if i % 2 == 0:
            store.add_participant(pid)
        song = songs[i % 2].name
        store.save_trial(pid, i % 2, song, {"ref": (0, 100.0), "X": (1, x), "Y": (2, y), "Z": (3, z),
                                            "anchor": (4, 10.0 + i)}, "too quiet | odd" if i == 0 else "")
    store.add_participant("sloppy")  # rates the reference below 90 in both trials: excluded
    for t, song in enumerate(("one", "two")):
        store.save_trial("sloppy", t, song, {"ref": (0, 50.0), "X": (1, 0.0), "Y": (2, 100.0), "Z": (3, 100.0),
                                             "anchor": (4, 90.0)}, "")
    store.finish("sloppy", "bye")
    store.add_participant("idle")  # registered, rated nothing
    return folder


def test_results_known_statistics_plots_and_report(tmp_path, capsys):
    test_dir = synthetic_results_test(tmp_path / "test")
    assert main(["listen", "results", str(test_dir), "-o", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    summary = {(row["scope"], row["song"], row["condition"]): row
               for row in csv.DictReader((out / "summary.csv").open())}
    assert float(summary[("all", "", "X")]["mean"]) == pytest.approx(407 / 6, abs=1e-3)
    assert float(summary[("all", "", "Y")]["mean"]) == pytest.approx(367 / 6, abs=1e-3)
    assert float(summary[("all", "", "Z")]["mean"]) == pytest.approx(47.5, abs=1e-3)
    assert float(summary[("song", "one", "X")]["mean"]) == pytest.approx((66 + 65 + 81) / 3, abs=1e-3)
    assert summary[("all", "", "ref")]["n"] == "6" and float(summary[("all", "", "ref")]["ci_low"]) == 100.0
    pairwise = {(r["condition_a"], r["condition_b"]): r for r in csv.DictReader((out / "pairwise.csv").open())}
    assert set(pairwise) == {("ref", "X"), ("ref", "Y"), ("ref", "Z"), ("X", "Y"), ("X", "Z"), ("Y", "Z")}
    assert float(pairwise[("X", "Y")]["p_value"]) == pytest.approx(2 / 64)
    participants = {r["participant_id"]: r for r in csv.DictReader((out / "participants.csv").open())}
    assert participants["sloppy"]["kept"] == "0" and participants["sloppy"]["reference_below_90"] == "2"
    assert participants["p0"]["kept"] == "1" and participants["idle"]["trials"] == "0"
    ratings = list(csv.DictReader((out / "ratings.csv").open()))
    assert len(ratings) == 8 * 5 and {r["kept"] for r in ratings if r["participant_id"] == "sloppy"} == {"0"}
    for png in ("boxplot_overall.png", "boxplot_song_one.png", "boxplot_song_two.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "1 excluded, 3 kept" in report and "![ratings, all songs](boxplot_overall.png)" in report
    assert "too quiet \\| odd" in report and "| `X` | test | 6 | 67.8 |" in report
    assert "X" in capsys.readouterr().out
    # run again after more answers: the folder is replaced as a whole
    ResponseStore(test_dir / RESPONSES_NAME).save_trial("p0", 0, "one", {"X": (1, 0.0)}, "")
    write_results(test_dir, out)
    assert len(list(csv.DictReader((out / "ratings.csv").open()))) == 40


def test_results_without_answers_is_a_clear_error(built, tmp_path, capsys):
    assert main(["listen", "results", str(built)]) == 2
    assert "no responses yet" in capsys.readouterr().err
    ResponseStore(built / RESPONSES_NAME)
    with pytest.raises(MixdownError, match="no ratings yet"):
        write_results(built, tmp_path / "out")
    with pytest.raises(MixdownError, match="not a listening test"):
        write_results(tmp_path, tmp_path / "out")


def choice(pid: str, index: int, a: str, b: str, answer: int, x_slot: int | None, song: str = "s") -> ChoiceRecord:
    return ChoiceRecord(pid, index, song, a, b, answer, x_slot)


def test_abx_scores_exact_binomial():
    """P(K >= k), K ~ Bin(n, 1/2): 8 of 10 right -> (45 + 10 + 1) / 1024; 5 of 5 -> 1/32; 2 of 4 -> 11/16."""
    records = [choice("p", i, "ref", "q", int(i < 8), 1, song="one" if i < 5 else "two") for i in range(10)]
    records += [choice("p", 10 + i, "d", "ref", i % 2, i % 2) for i in range(5)]  # always right
    records += [choice("r", i, "ref", "d", 0, 1 if i < 2 else 0) for i in range(4)]  # right in trials 2 and 3
    scores = {(s.scope, s.key, s.condition): s for s in abx_scores(records, "ref", ["q", "d"])}
    q, d = scores[("all", "", "q")], scores[("all", "", "d")]
    assert (q.n, q.correct) == (10, 8) and q.p_value == pytest.approx(56 / 1024)
    assert (d.n, d.correct) == (9, 7) and d.p_value == pytest.approx((36 + 9 + 1) / 512)
    assert scores[("participant", "p", "d")].p_value == pytest.approx(1 / 32)
    assert scores[("participant", "r", "d")].p_value == pytest.approx(11 / 16)
    assert (scores[("song", "one", "q")].correct, scores[("song", "two", "q")].correct) == (5, 3)


def test_ab_preferences_sign_test_and_holm():
    """9 of 10 prefer x over y: two-sided p = 2 * 11 / 1024; 2 of 4 prefer y over z: p = 1."""
    records = [choice("p", i, "x", "y", 0 if i < 9 else 1, None) for i in range(10)]
    records += [choice("p", 10 + i, "z", "y", i % 2, None) for i in range(4)]
    tests = preferences(records, ["x", "y", "z"])
    assert [(t.condition_a, t.condition_b, t.n, t.prefer_a) for t in tests] == [("x", "y", 10, 9), ("y", "z", 4, 2)]
    assert tests[0].p_value == pytest.approx(22 / 1024) and tests[1].p_value == 1.0
    assert tests[0].p_holm == pytest.approx(2 * 22 / 1024) and tests[1].p_holm == 1.0


def test_bs1116_difference_grades():
    records = [GradeRecord("p", i, "s", "q", i % 2, ref, grade)
               for i, (ref, grade) in enumerate([(5.0, 3.0), (5.0, 4.0), (4.5, 5.0), (5.0, 2.0)])]
    (summary,) = grade_summaries(records, ["ref", "q"])
    assert summary.difference.mean == pytest.approx((-2 - 1 + 0.5 - 3) / 4)
    assert summary.grade.mean == pytest.approx(3.5) and summary.reference_below == 1
    assert -4.0 <= summary.difference.ci_low < summary.difference.mean < summary.difference.ci_high <= 4.0


def answer_trial(client: TestClient, headers: dict, manifest: Manifest, index: int) -> int:
    """Answer trial ``index`` as a listener who hears the 'dull' version and guesses on 'quiet':
    MUSHRA/BS.1116 rate by condition, AB prefers the earlier condition, ABX is right only for 'dull'.
    Returns the status code."""
    info = trial_info(client, headers, index)
    trial = participant_plan(manifest.test_type, len(manifest.songs), len(manifest.conditions),
                             manifest.conditions.index(manifest.reference), manifest.seed, "lee",
                             manifest.repeats)[index]
    names = [manifest.conditions[c] for c in trial.condition_order]
    played = [True] * (info["slots"] + (1 if info["x"] else 0))
    if manifest.test_type == "bs1116":
        body = {"grades": [5.0 if n == "reference" else {"quiet": 4.5, "dull": 3.0}[n] for n in names], "played": played}
    elif manifest.test_type == "ab":
        body = {"choice": int(manifest.conditions.index(names[1]) < manifest.conditions.index(names[0])),
                "played": played}
    else:
        tested = names[0] if names[1] == "reference" else names[1]
        body = {"choice": trial.x_slot if tested == "dull" else 0, "played": played}
    return client.post(f"/api/trials/{index}", headers=headers, json=body).status_code


@pytest.mark.parametrize("test_type", ["bs1116", "ab", "abx"])
def test_paired_test_types_end_to_end(file_test, tmp_path, test_type, capsys):
    """Build a BS.1116 / AB / ABX test, answer every trial through the API, then `listen results`."""
    folder, config = file_test
    config = {**config, "type": test_type, "repeats": 2}
    build_test(load_config(save_config(folder, config)), folder / "test")
    manifest = Manifest.load(folder / "test")
    assert (manifest.test_type, manifest.repeats, manifest.conditions) == (test_type, 2, ("reference", "quiet", "dull"))
    client = client_for(folder / "test")
    assert client.get("/api/test").json()["type"] == test_type
    headers = start(client, "lee")
    count = client.get("/api/session", headers=headers).json()["trials"]
    assert count == 2 * 2 * (3 if test_type == "ab" else 2)
    info = trial_info(client, headers, 0)
    assert info["slots"] == 2 and (info["known"] is not None) == (test_type == "bs1116")
    assert (info["x"] is not None) == (test_type == "abx")
    bad = client.post("/api/trials/0", headers=headers,
                      json={"choice": True, "played": [True] * 3} if test_type != "bs1116"
                      else {"grades": [5.0, 0.5], "played": [True, True]})
    assert bad.status_code == 422
    for index in range(count):
        assert answer_trial(client, headers, manifest, index) == 200
    assert client.post("/api/finish", headers=headers, json={}).json()["finished"]
    assert main(["listen", "results", str(folder / "test"), "-o", str(tmp_path / "out")]) == 0
    summary = list(csv.DictReader((tmp_path / "out" / "summary.csv").open()))
    report = (tmp_path / "out" / "report.md").read_text()
    if test_type == "abx":
        overall = {r["condition"]: r for r in summary if r["scope"] == "all"}
        assert (overall["dull"]["n"], overall["dull"]["correct"]) == ("4", "4")
        assert float(overall["dull"]["p_value"]) == pytest.approx(1 / 16)
        assert "binomial" in report and "ABX" in capsys.readouterr().out
    elif test_type == "ab":
        pairs = {(r["condition_a"], r["condition_b"]): r for r in summary}
        assert set(pairs) == {("reference", "quiet"), ("reference", "dull"), ("quiet", "dull")}
        assert all(r["n"] == "4" and r["prefer_a"] == "4" for r in pairs.values())
        assert float(pairs[("reference", "dull")]["p_value"]) == pytest.approx(2 / 16)
    else:
        rows = {r["condition"]: r for r in summary}
        assert float(rows["dull"]["mean_difference"]) == pytest.approx(-2.0)
        assert float(rows["quiet"]["mean_difference"]) == pytest.approx(-0.5)
        assert rows["dull"]["n"] == "4" and "difference grade" in report
    answers = list(csv.DictReader((tmp_path / "out" / "answers.csv").open()))
    assert len(answers) == count


# ------------------------------------------------------------------ server API


def client_for(test_dir: Path) -> TestClient:
    return TestClient(create_app(test_dir))


def start(client: TestClient, participant_id: str) -> dict[str, str]:
    response = client.post("/api/participants", json={"participant_id": participant_id})
    assert response.status_code == 201, response.text
    return {TOKEN_HEADER: response.json()["token"]}


def submit(client: TestClient, headers: dict, index: int, ratings=(100, 40, 60, 10), played=(True,) * 4,
           comment: str = ""):
    return client.post(f"/api/trials/{index}", headers=headers,
                       json={"ratings": list(ratings), "played": list(played), "comment": comment})


def samples_of(wav: bytes) -> np.ndarray:
    """24-bit WAV bytes -> integer samples (LSB units), ``(frames, channels)``."""
    audio, _ = sf.read(io.BytesIO(wav), dtype="int32", always_2d=True)
    return audio >> 8


def assert_same_audio(wav: bytes, path: Path) -> None:
    """The served excerpt is the stored one up to the +-1 LSB dither (#18: bytes of its own)."""
    served, stored = samples_of(wav), samples_of(path.read_bytes())
    assert served.shape == stored.shape and np.max(np.abs(served - stored)) <= 1


def trial_info(client: TestClient, headers: dict, index: int) -> dict:
    response = client.get(f"/api/trials/{index}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_api_serves_slots_blind_in_the_participants_order(built):
    """Behaviour changed by #18: audio comes from opaque per-participant URLs, dithered (within 1 LSB
    of the stored excerpt, never its bytes), and a trial is served once the one before is answered."""
    client = client_for(built)
    headers = start(client, "ann")
    manifest = Manifest.load(built)
    trials = participant_trials(2, 4, manifest.seed, "ann")
    assert client.get("/api/trials/1", headers=headers).status_code == 409  # trial 2 before trial 1 is answered
    for index, trial in enumerate(trials):
        info = trial_info(client, headers, index)
        assert info["slots"] == 4 and info["duration_s"] == 2.0 and info["type"] == "mushra"
        song = manifest.songs[trial.song_index]
        for slot, condition in enumerate(trial.condition_order):
            audio = client.get("/" + info["slot_urls"][slot], headers=headers)
            assert audio.headers["content-type"] == "audio/wav"
            assert_same_audio(audio.content, built / song.files[manifest.conditions[condition]])
            assert audio.content != (built / song.files[manifest.conditions[condition]]).read_bytes()
        reference = client.get("/" + info["known"], headers=headers).content
        assert_same_audio(reference, built / song.files["reference"])
        if index == 0:
            assert submit(client, headers, 0).status_code == 200
    assert "reference" not in json.dumps(trial_info(client, headers, 0))
    assert client.get("/api/audio/AAAAAAAAAAAAAAAAAAAAAAAA", headers=headers).status_code == 404
    assert client.get("/" + trial_info(client, headers, 0)["known"]).status_code == 401  # needs the token
    assert client.get("/api/trials/5", headers=headers).status_code == 404
    assert client.get("/api/session").status_code == 401


def test_hidden_reference_cannot_be_told_from_urls_or_headers(built):
    """#18: the open reference and its hidden copy differ in URL and bytes, never in headers."""
    client = client_for(built)
    manifest = Manifest.load(built)
    urls_of = {}
    for participant in ("eve", "fay"):
        headers = start(client, participant)
        info = trial_info(client, headers, 0)
        urls = [info["known"], *info["slot_urls"]]
        urls_of[participant] = urls
        assert all(re.fullmatch(r"api/audio/[A-Za-z0-9_-]{24}", url) for url in urls), urls
        assert not any(name in url for url in urls for name in manifest.conditions)
        responses = [client.get("/" + url, headers=headers) for url in urls]
        header_sets = [{k: v for k, v in r.headers.items() if k != "date"} for r in responses]
        assert all(h == header_sets[0] for h in header_sets), header_sets
        assert not {"etag", "last-modified", "content-disposition"} & set(header_sets[0])
        assert header_sets[0]["cache-control"] == "no-store"
        trial = participant_trials(2, 4, manifest.seed, participant)[0]
        hidden = 1 + trial.condition_order.index(manifest.conditions.index("reference"))
        assert len({r.content for r in responses}) == len(responses)  # no two responses share their bytes
        difference = samples_of(responses[0].content) - samples_of(responses[hidden].content)
        assert np.max(np.abs(difference)) <= 2 and np.any(difference)  # the same excerpt, +-1 LSB dither each
        again = client.get("/" + urls[hidden], headers=headers).content
        assert again == responses[hidden].content  # deterministic per URL
    assert not set(urls_of["eve"]) & set(urls_of["fay"])  # per participant
    fay = {TOKEN_HEADER: ResponseStore(built / RESPONSES_NAME).participants()[1].token}
    assert client.get("/" + urls_of["eve"][0], headers=fay).status_code == 404  # not someone else's


def test_api_duplicate_participant_and_bad_ids(built):
    client = client_for(built)
    start(client, "Bob")
    response = client.post("/api/participants", json={"participant_id": " bob "})
    assert response.status_code == 409 and "'bob' is already taken" in response.json()["detail"]
    for bad in ("", "   ", "x" * 65, "tab\there"):
        response = client.post("/api/participants", json={"participant_id": bad})
        assert response.status_code == 422 and "participant ID" in response.json()["detail"]


def test_api_trial_submission_rules_and_idempotence(built):
    client = client_for(built)
    headers = start(client, "cy")
    response = submit(client, headers, 0, played=(True, False, True, False))
    assert response.status_code == 422 and "not played yet: B, D" in response.json()["detail"]
    assert submit(client, headers, 1).status_code == 409  # trial 2 before trial 1
    assert submit(client, headers, 0, ratings=(100, 40, 60)).status_code == 422
    assert submit(client, headers, 0, ratings=(100, 40, 60, 101)).status_code == 422
    assert client.post("/api/finish", headers=headers, json={}).status_code == 409
    first = submit(client, headers, 0, comment="hm")
    again = submit(client, headers, 0, comment="hm")
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert first.json()["next_trial"] == 1
    rows = sqlite3.connect(built / RESPONSES_NAME).execute("SELECT COUNT(*) FROM ratings").fetchone()
    assert rows == (4,)


def test_api_server_restart_mid_test_resumes(built):
    first = client_for(built)
    headers = start(first, "dee")
    assert submit(first, headers, 0).status_code == 200
    url = trial_info(first, headers, 1)["slot_urls"][2]
    before = first.get("/" + url, headers=headers).content
    restarted = client_for(built)  # a new app process on the same folder
    assert restarted.get("/api/session", headers=headers).json() == {
        "participant_id": "dee", "trials": 2, "next_trial": 1, "finished": False}
    assert trial_info(restarted, headers, 1)["slot_urls"][2] == url  # the URLs survive a restart
    assert restarted.get("/" + url, headers=headers).content == before
    assert submit(restarted, headers, 1).status_code == 200
    done = restarted.post("/api/finish", headers=headers, json={"comment": "thanks"}).json()
    assert done["finished"] and done["next_trial"] is None
    stored = ResponseStore(built / RESPONSES_NAME)
    assert len(stored.ratings()) == 8 and stored.participants()[0].comment == "thanks"


@pytest.mark.parametrize("ratings, message", [
    ([100, True, 60, 10], "ratings[1]: True is not a number"),
    ([100, "40", 60, 10], "ratings[1]: '40' is not a number"),
    ([100, 40, None, 10], "ratings[2]: None is not a number"),
    ([100, 40, 60, -0.5], "ratings[3]: -0.5 is outside 0 to 100"),
    ({"a": 1}, "ratings: expected a list of 4 numbers"),
])
def test_api_ratings_are_numbers_in_range(built, ratings, message):
    client = client_for(built)
    headers = start(client, "gil")
    response = client.post("/api/trials/0", headers=headers, json={"ratings": ratings, "played": [True] * 4})
    assert response.status_code == 422 and message in response.json()["detail"], response.text
    assert ResponseStore(built / RESPONSES_NAME).ratings() == []


@pytest.mark.parametrize("body, message", [
    (b'{"ratings": [100, 40, 60, 1e400], "played": [true, true, true, true]}', "ratings[3]: not a finite number"),
    (b'{"ratings": [100, 40, 60, 1' + b"0" * 400 + b'], "played": [true, true, true, true]}',
     "ratings[3]: 100000000000...(401 digits) is too large"),
    (b'{"ratings": [NaN, 40, 60, 10], "played": [true, true, true, true]}', "ratings[0]: not a finite number"),
    (b'{"ratings": ' + b"[" * 100000 + b"]" * 100000 + b"}", "nested deeper than 32 levels"),
    (b'{"ratings": [100, 40, 60, 10], "played": [true, true, true, true], "extra": 1}', "extra: unknown field"),
    (b"[1, 2", "not valid JSON"),
])
def test_api_malformed_bodies_are_4xx_naming_the_field(built, body, message):
    client = client_for(built)
    headers = start(client, "hal")
    response = client.post("/api/trials/0", headers={**headers, "content-type": "application/json"}, content=body)
    assert response.status_code in (413, 422) and message in response.json()["detail"], response.text


def test_api_trials_in_order_and_frozen_after_finishing(built):
    client = client_for(built)
    headers = start(client, "ivy")
    assert submit(client, headers, 0, ratings=(100, 40, 60, 10)).status_code == 200
    changed = submit(client, headers, 0, ratings=(100, 41, 60, 10))
    assert changed.status_code == 409 and "trial 1 is already submitted" in changed.json()["detail"]
    assert submit(client, headers, 0, ratings=(100, 40, 60, 10)).status_code == 200  # a retry: same answer
    assert submit(client, headers, 1).status_code == 200
    assert client.post("/api/finish", headers=headers, json={"comment": "done"}).json()["finished"]
    for index in (0, 1):
        late = submit(client, headers, index)
        assert late.status_code == 409 and "your answers are final" in late.json()["detail"]
    again = client.post("/api/finish", headers=headers, json={"comment": "changed"})
    assert again.status_code == 200 and again.json()["finished"]
    store = ResponseStore(built / RESPONSES_NAME)
    assert store.participants()[0].comment == "done"
    assert sorted(r.rating for r in store.ratings() if r.trial_index == 0) == [10.0, 40.0, 60.0, 100.0]


def test_api_concurrent_submissions_keep_the_order(built):
    """Twenty threads race to submit both trials: exactly one write per trial, trial 2 only after trial 1."""
    client = client_for(built)
    headers = start(client, "jo")
    results: list[tuple[int, int]] = []

    def post(index: int) -> None:
        results.append((index, submit(client, headers, index).status_code))

    threads = [threading.Thread(target=post, args=(i % 2,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(code in (200, 409) for _, code in results)
    store = ResponseStore(built / RESPONSES_NAME)
    assert {t.trial_index for t in store.trials()} <= {0, 1} and len(store.trials()) == len({t.trial_index for t in
                                                                                              store.trials()})
    assert len(store.ratings()) == 4 * len(store.trials())


def test_api_refuses_cross_origin_and_non_json_requests(built):
    client = client_for(built)
    body = {"participant_id": "kim"}
    cross = client.post("/api/participants", json=body, headers={"origin": "http://evil.example"})
    assert cross.status_code == 403 and "cross-origin" in cross.json()["detail"]
    referer = client.post("/api/participants", json=body, headers={"referer": "http://evil.example/page"})
    assert referer.status_code == 403
    plain = client.post("/api/participants", content=json.dumps(body), headers={"content-type": "text/plain"})
    assert plain.status_code == 415 and "application/json" in plain.json()["detail"]
    form = client.post("/api/participants", data=body)
    assert form.status_code == 415
    assert ResponseStore(built / RESPONSES_NAME).participants() == []
    same = client.post("/api/participants", json=body, headers={"origin": "http://testserver"})
    assert same.status_code == 201


def test_api_host_header_check(built):
    client = TestClient(create_app(built, allowed_hosts=allowed_hosts_for("127.0.0.1")))
    assert client.get("/api/test").status_code == 400  # TestClient's host is "testserver"
    assert client.get("/api/test", headers={"host": "127.0.0.1:8000"}).status_code == 200
    assert client.get("/api/test", headers={"host": "rebound.example:8000"}).status_code == 400


def test_app_refuses_incomplete_test(built):
    (built / Manifest.load(built).songs[1].files["dull"]).unlink()
    with pytest.raises(MixdownError, match="audio/two/dull.wav is missing"):
        create_app(built)
    with pytest.raises(MixdownError, match="no such test folder"):
        create_app(built / "nope")


def test_cli_serve_refuses_bad_folder_and_busy_port(built, tmp_path, capsys):
    assert main(["listen", "serve", str(tmp_path / "nope")]) == 2
    assert "no such test folder" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["listen", "serve", str(built), "--port", str(port)]) == 2
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err
