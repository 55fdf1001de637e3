"""Song-level cross-validation (`mixdown.evaluation.crossval`) and the producer mixer trained per fold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dataset_fixtures import folder_song_stems, write_wav

from mixdown.console import render
from mixdown.errors import MixdownError
from mixdown.evaluation.crossval import CVConfig, assign_folds, run_crossval
from mixdown.mixers.producer import (
    ProducerConfig,
    ProducerMixer,
    ProducerModel,
    heard_settings,
    train_producer,
)
from mixdown.multitrack import Multitrack
from mixdown.params import ChannelParams, ConsoleParams, MasterParams

RATE = 8000
GAINS = {"kick": 0.0, "snare": -12.0, "bass": 6.0, "keys": -20.0}  # the "producer's" habits, by stem
PANS = {"kick": 0.0, "snare": 0.0, "bass": 0.0, "keys": 0.6}


def _band_noises(seed: int, seconds: float = 2.0, stereo_pad: bool = False) -> dict[str, np.ndarray]:
    """Independent noises in overlapping octave-wide bands, one per stem of `GAINS` (and a stereo ``pad``).

    Unlike steady harmonic tones, sources whose spectra and envelopes differ: what
    `heard_settings` (NNLS on band powers, phase-blind) can tell apart.
    """
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    frames = round(seconds * RATE)
    bands = {"kick": (40, 120), "snare": (150, 400), "bass": (300, 900), "keys": (800, 2400), "pad": (2000, 3800)}
    names = [*GAINS, *(["pad"] if stereo_pad else [])]
    stems = {}
    for name in names:
        noise = rng.standard_normal((2 if name == "pad" else 1, frames))
        audio = sosfilt(butter(4, bands[name], "bandpass", fs=RATE, output="sos"), noise)
        stems[name] = (0.1 * audio / audio.std()).astype(np.float32)
    return stems


def _dataset(root: Path, songs: int, stems_of=lambda i: folder_song_stems(i, frames=2 * RATE)) -> list[str]:
    """Songs whose mix is the console's render of the same producer settings on varied stems."""
    names = []
    for i in range(songs):
        stems = {name: audio * (1.0 + 0.15 * ((i + k) % 3)) for k, (name, audio) in enumerate(stems_of(i).items())}
        params = ConsoleParams(channels=[ChannelParams(name, gain_db=GAINS[name], pan=PANS[name]) for name in stems],
                               master=MasterParams(target_lufs=None, ceiling_dbtp=None), sample_rate=RATE)
        multitrack = Multitrack.from_arrays(stems, RATE)
        song = root / f"song_{i}"
        for name, audio in stems.items():
            write_wav(song / "stems" / f"{name}.wav", audio, RATE)
        write_wav(song / "mix.wav", render(multitrack, params), RATE)
        (song / "params.json").write_text(params.to_json(), encoding="utf-8")
        names.append(song.name)
    return names


def test_folds_split_songs_disjointly_and_evenly() -> None:
    names = [f"s{i}" for i in range(23)]
    folds = assign_folds(names, 5, seed=3)
    assert sorted(folds) == sorted(names)
    sizes = np.bincount(list(folds.values()), minlength=5)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 23
    assert folds == assign_folds(list(reversed(names)), 5, seed=3)  # by name, not input order
    assert folds != assign_folds(names, 5, seed=4)
    with pytest.raises(MixdownError, match="cannot be split"):
        assign_folds(names[:3], 5)


def test_heard_settings_read_the_gains_and_pans_of_a_rendered_mix() -> None:
    """Independent band noises (power adds) mixed at known gains and pans."""
    stems = _band_noises(0, seconds=4.0, stereo_pad=True)
    names = list(stems)
    gains = {**GAINS, "pad": -3.0}
    pans = {**PANS, "snare": -0.4, "pad": 0.3}
    params = ConsoleParams(channels=[ChannelParams(name, gain_db=gains[name], pan=pans[name]) for name in stems],
                           master=MasterParams(target_lufs=None, ceiling_dbtp=None), sample_rate=RATE)
    multitrack = Multitrack.from_arrays(stems, RATE)
    gain_db, pan = heard_settings(multitrack, render(multitrack, params))
    # Band power fluctuates frame to frame; a stem 20 dB under its neighbour in the bands they share is read
    # less exactly (measured: 0.6 dB) than the others (under 0.1 dB).
    tolerance = [1.0 if gains[n] <= -20.0 else 0.3 for n in names]
    assert np.all(np.abs(gain_db - [gains[n] for n in names]) <= tolerance), gain_db
    np.testing.assert_allclose(pan, [pans[n] for n in names], atol=0.15)  # measured: 0.13 at -20 dB
    gain_db, pan = heard_settings(Multitrack.from_arrays({**stems, "mute": 0 * stems["kick"]}, RATE),
                                  render(multitrack, params))
    assert (gain_db[-1], pan[-1]) == (0.0, 0.0)  # a silent stem


def test_producer_learns_heard_gains(tmp_path: Path) -> None:
    _dataset(tmp_path, 4, _band_noises)
    model = train_producer(ProducerConfig(dataset=str(tmp_path), targets="heard", trees=20, min_samples_leaf=1,
                                          max_features=1.0))
    stems = {name: 0.7 * audio for name, audio in _band_noises(9).items()}
    gains = {ch.name: ch.gain_db for ch in ProducerMixer(model=model).predict(Multitrack.from_arrays(stems, RATE)).channels}
    assert sorted(gains, key=gains.get) == sorted(GAINS, key=GAINS.get)


def test_producer_learns_stated_gains(tmp_path: Path) -> None:
    _dataset(tmp_path, 4)
    model = train_producer(ProducerConfig(dataset=str(tmp_path), trees=20, min_samples_leaf=1, max_features=1.0))
    path = tmp_path / "producer.npz"
    model.save(path)
    mixer = ProducerMixer(model=ProducerModel.load(path))
    stems = {name: 0.7 * audio for name, audio in folder_song_stems(1, frames=2 * RATE).items()}
    params = mixer.predict(Multitrack.from_arrays(stems, RATE))
    gains = {ch.name: ch.gain_db for ch in params.channels}
    mean = np.mean(list(GAINS.values()))
    assert sorted(gains, key=gains.get) == sorted(GAINS, key=GAINS.get)  # the producer's order of levels
    for name, gain in GAINS.items():  # relative gains as stated, within the forest's averaging
        assert gains[name] - np.mean(list(gains.values())) == pytest.approx(gain - mean, abs=3.0)
    assert abs(params.channel("keys").pan) == pytest.approx(0.6, abs=0.15)
    assert params.channel("kick").pan == 0.0


def test_crossval_trains_per_fold_and_reports(tmp_path: Path) -> None:
    data = tmp_path / "real"
    names = _dataset(data, 8)
    out = tmp_path / "cv"
    result = run_crossval(CVConfig(dataset=str(data), out=str(out), methods=("mono", "producer"), folds=2))
    folds = json.loads((out / "folds.json").read_text())["song_fold"]
    assert sorted(folds) == names
    rows = {(r["song"], r["method"]): r for r in result["rows"]}
    assert set(rows) == {(s, m) for s in names for m in ("mono", "producer", "oracle")}
    for song in names:  # the oracle renders the stated settings: the mix itself
        assert rows[(song, "oracle")]["stereo_mrstft_matched"] < 1e-3

    def median(method: str, metric: str) -> float:
        return float(np.median([rows[(s, method)][metric] for s in names]))

    # trained on the other fold's 4 songs only (16 rows, leaves of 4), it has moved towards the stated gains
    assert median("producer", "median_gain_balance_db") < median("mono", "median_gain_balance_db")
    summary = (out / "summary.md").read_text()
    assert "| producer |" in summary and "fold 1" in summary


def test_training_data_can_be_restricted_to_the_training_folds(tmp_path: Path) -> None:
    from mixdown.data.songs import DatasetConfig
    from mixdown.train import DataConfig, DataSource, named_songs

    names = _dataset(tmp_path, 5)
    folds = assign_folds(names, 5)
    train_songs = tuple(name for name in names if folds[name] != 0)
    source = DataSource(str(tmp_path), songs=train_songs)
    data = DataConfig(sources=(source,), val_fraction=0.0, test_fraction=0.0)
    dataset = named_songs(source, "train", data, DatasetConfig(mode="sequential", segment_frames=RATE,
                                                                sample_rate=RATE))
    assert sorted(song.name for song in dataset.songs) == sorted(train_songs)  # the held-out fold never seen
    with pytest.raises(MixdownError, match="not found"):
        named_songs(DataSource(str(tmp_path), songs=("nope",)), "train", data, DatasetConfig(sample_rate=RATE))


def test_resuming_refuses_a_run_made_on_other_folds(tmp_path: Path) -> None:
    data = tmp_path / "real"
    _dataset(data, 4)
    out = tmp_path / "cv"
    run_crossval(CVConfig(dataset=str(data), out=str(out), methods=("mono",), folds=2))
    rows = (out / "metrics.csv").read_text()
    run_crossval(CVConfig(dataset=str(data), out=str(out), methods=("mono",), folds=2))  # same split: resumes
    assert (out / "metrics.csv").read_text() == rows
    _dataset(data, 5)  # the dataset grew: the fold assignment changes
    with pytest.raises(MixdownError, match="song_fold"):
        run_crossval(CVConfig(dataset=str(data), out=str(out), methods=("mono",), folds=2))
    with pytest.raises(MixdownError, match="folds"):
        run_crossval(CVConfig(dataset=str(data), out=str(out), methods=("mono",), folds=3))
