"""Listening tests: stimuli, configuration, building, randomisation, storage, screening,
statistics (known answers), results and the server's API (FastAPI TestClient)."""

from __future__ import annotations

import csv
import json
import socket
import sqlite3
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
from mixdown.listening.config import load_config, parse_config
from mixdown.listening.manifest import RESPONSES_NAME, Manifest, SongStimuli
from mixdown.listening.randomise import participant_trials
from mixdown.listening.results import write_results
from mixdown.listening.screening import screen_participants
from mixdown.listening.statistics import holm, pairwise_wilcoxon, summarize
from mixdown.listening.stimuli import cut_excerpt, make_anchor, match_loudness
from mixdown.listening.store import DuplicateParticipantError, ResponseStore
from mixdown.listening.table import RatingsTable
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
])
def test_config_errors_name_the_problem(tmp_path, change, message):
    with pytest.raises(MixdownError, match=message):
        parse_config({**BASE, **change}, tmp_path)


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


def test_api_serves_slots_blind_in_the_participants_order(built):
    client = client_for(built)
    headers = start(client, "ann")
    manifest = Manifest.load(built)
    trials = participant_trials(2, 4, manifest.seed, "ann")
    for index, trial in enumerate(trials):
        info = client.get(f"/api/trials/{index}", headers=headers).json()
        assert info["slots"] == 4 and info["duration_s"] == 2.0
        song = manifest.songs[trial.song_index]
        for slot, condition in enumerate(trial.condition_order):
            audio = client.get(f"/api/trials/{index}/audio/{slot}", headers=headers)
            assert audio.headers["content-type"] == "audio/wav"
            assert audio.content == (built / song.files[manifest.conditions[condition]]).read_bytes()
        reference = client.get(f"/api/trials/{index}/audio/reference", headers=headers).content
        assert reference == (built / song.files["reference"]).read_bytes()
    assert "reference" not in json.dumps(client.get("/api/trials/0", headers=headers).json())
    assert client.get("/api/trials/0/audio/9", headers=headers).status_code == 404
    assert client.get("/api/trials/5", headers=headers).status_code == 404
    assert client.get("/api/session").status_code == 401


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
    before = first.get("/api/trials/1/audio/2", headers=headers).content
    assert submit(first, headers, 0).status_code == 200
    restarted = client_for(built)  # a new app process on the same folder
    assert restarted.get("/api/session", headers=headers).json() == {
        "participant_id": "dee", "trials": 2, "next_trial": 1, "finished": False}
    assert restarted.get("/api/trials/1/audio/2", headers=headers).content == before
    assert submit(restarted, headers, 1).status_code == 200
    done = restarted.post("/api/finish", headers=headers, json={"comment": "thanks"}).json()
    assert done["finished"] and done["next_trial"] is None
    stored = ResponseStore(built / RESPONSES_NAME)
    assert len(stored.ratings()) == 8 and stored.participants()[0].comment == "thanks"


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
