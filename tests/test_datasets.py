"""Dataset loaders, checks, splits and collation, on tiny fixtures of each real layout."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
import torch
from dataset_fixtures import (
    ENST_TAKES,
    FOLDER_QUIET_SONG,
    FOLDER_STEMS,
    FOLDER_STEREO_SONG,
    FRAMES,
    MUSDB_TEST,
    MUSDB_TRAIN,
    MUSDB_VALIDATION,
    QUARTER,
    RATE,
    tone,
    write_enst,
    write_folder_dataset,
    write_medleydb,
    write_musdb,
    write_wav,
)

from mixdown.audio import load_audio, resampled_length
from mixdown.data import songs as songs_module
from mixdown.data.collate import MultitrackCollate, collate_multitracks
from mixdown.data.enst import ENST_CHANNELS, ENSTDrumsDataset
from mixdown.data.folder import FolderDataset, check_dataset, find_songs
from mixdown.data.medleydb import MedleyDBDataset, artist
from mixdown.data.musdb import VALIDATION_SONGS, MUSDBDataset
from mixdown.data.songs import (
    DatasetConfig,
    SegmentMeta,
    SongDataset,
    SongError,
    rms_dbfs,
    split_songs,
)
from mixdown.errors import MixdownError
from mixdown.params import ChannelParams, ConsoleParams

SEQUENTIAL = DatasetConfig(segment_frames=QUARTER, sample_rate=RATE, mode="sequential", filter_silence=False)
WRITERS = {"folder": write_folder_dataset, "enst": write_enst, "medleydb": write_medleydb, "musdb": write_musdb}
DATASETS = {"folder": FolderDataset, "enst": ENSTDrumsDataset, "medleydb": MedleyDBDataset, "musdb": MUSDBDataset}


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    """One copy of every fixture layout, shared read-only by the tests of this module."""
    base = tmp_path_factory.mktemp("datasets")
    for layout, write in WRITERS.items():
        write(base / layout)
    return {layout: base / layout for layout in WRITERS}


@pytest.fixture
def folder_copy(roots, tmp_path) -> Path:
    """A private copy of the folder dataset, for tests that break it."""
    return Path(shutil.copytree(roots["folder"], tmp_path / "folder"))


# What each fixture holds: {song: (track names, instrument classes)}.
EXPECTED_SONGS = {
    "folder": {
        **{f"song_{i}": (("bass", "keys", "kick", "snare"), ("bass", "keys", "kick", "snare")) for i in range(3)},
        FOLDER_QUIET_SONG: (("bass", "keys", "kick", "snare"), ("bass", "keys", "kick", "snare")),
        FOLDER_STEREO_SONG: (("bass", "keys", "kick", "overhead", "snare"),
                             ("bass", "keys", "kick", "overhead", "snare")),
    },
    "enst": {
        **{f"drummer_1/{take}": (tuple(c for c in ENST_CHANNELS if c != "tom_3"),
                                 ("kick", "snare", "hihat", "tom", "tom", "overhead", "overhead"))
           for take in ENST_TAKES[1] if "_hits_" not in take},
        **{f"drummer_2/{take}": (ENST_CHANNELS, ("kick", "snare", "hihat", "tom", "tom", "tom", "overhead", "overhead"))
           for take in ENST_TAKES[2]},
    },
    "medleydb": {
        "ArtistA_First": (("S01_drum_set", "S02_electric_bass", "S03_male_singer"), ("overhead", "bass", "vocal")),
        "ArtistA_Second": (("S01_drum_set", "S02_piano"), ("overhead", "keys")),
        "ArtistB_Third": (("S01_clean_electric_guitar", "S02_female_singer"), ("guitar", "vocal")),
        "ArtistC_Fourth": (("S01_drum_set", "S02_electric_bass", "S03_violin"), ("overhead", "bass", "other")),
    },
    "musdb": {song: (("drums", "bass", "other", "vocals"), ("overhead", "bass", "other", "vocal"))
              for song in MUSDB_TRAIN + MUSDB_TEST},
}


def _file_segment(path: Path, offset: int, frames: int) -> np.ndarray:
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return data.T[:, offset: offset + frames]


@pytest.mark.parametrize("layout", list(DATASETS))
def test_layout_songs_shapes_and_contents(roots, layout):
    dataset = DATASETS[layout](roots[layout], SEQUENTIAL)
    expected = EXPECTED_SONGS[layout]
    assert sorted(song.name for song in dataset.songs) == sorted(expected)
    assert len(dataset) == len(expected) * (FRAMES // QUARTER)  # 1 s songs in quarter-second segments
    for index in range(len(dataset)):
        stems, mix, meta = dataset[index]
        song = dataset.songs[[s.name for s in dataset.songs].index(meta.song)]
        names, classes = expected[meta.song]
        assert (meta.stem_names, meta.instruments) == (names, classes)
        assert stems.dtype == mix.dtype == torch.float32
        assert stems.shape[0] == len(names) and stems.shape[2] == QUARTER and mix.shape == (2, QUARTER)
        assert meta.sample_rate == RATE and meta.offset_frames == (index % 4) * QUARTER
        for row, track in zip(stems, song.stems, strict=True):  # the segment is the files' samples
            np.testing.assert_array_equal(row.numpy(), np.broadcast_to(
                _file_segment(track.path, meta.offset_frames, QUARTER), row.shape))
        np.testing.assert_array_equal(mix.numpy(), np.broadcast_to(
            _file_segment(song.mix, meta.offset_frames, QUARTER), mix.shape))


def test_folder_params_in_meta_follow_stem_order(roots):
    dataset = FolderDataset(roots["folder"], SEQUENTIAL)
    metas = {meta.song: meta for _, _, meta in (dataset[i] for i in range(0, len(dataset), 4))}
    assert metas[FOLDER_STEREO_SONG].params is None  # this song has no params.json
    for name in ("song_0", "song_1", FOLDER_QUIET_SONG):
        params = metas[name].params
        assert isinstance(params, ConsoleParams) and params.method == "fixture"
        assert [ch.name for ch in params.channels] == list(metas[name].stem_names)  # file lists them reversed


@pytest.mark.parametrize(("mix", "folder"), [("wet", "wet_mix"), ("dry", "dry_mix")])
def test_enst_target_mix(roots, mix, folder):
    dataset = ENSTDrumsDataset(roots["enst"], SEQUENTIAL, mix=mix)
    _, got, meta = dataset[0]
    drummer, take = meta.song.split("/")
    path = roots["enst"] / drummer / "audio" / folder / f"{take}.wav"
    np.testing.assert_array_equal(got.numpy(), _file_segment(path, 0, QUARTER))


def test_enst_hits_takes_optional(roots):
    with_hits = ENSTDrumsDataset(roots["enst"], SEQUENTIAL, include_hits=True)
    assert "drummer_1/001_hits_snare-drum_sticks_x6" in [s.name for s in with_hits.songs]
    assert len(with_hits.songs) == len(EXPECTED_SONGS["enst"]) + 1


def test_medleydb_raw_tracks(roots):
    dataset = MedleyDBDataset(roots["medleydb"], SEQUENTIAL, tracks="raw")
    first = next(song for song in dataset.songs if song.name == "ArtistA_First")
    assert [(t.name, t.instrument) for t in first.stems] == [
        ("S01_R01_kick_drum", "kick"), ("S01_R02_snare_drum", "snare"),
        ("S02_R01_electric_bass", "bass"), ("S03_R01_male_singer", "vocal")]


@pytest.mark.parametrize(("segment", "hop", "offsets"), [
    (QUARTER, None, [0, 2000, 4000, 6000]),
    (3000, 2500, [0, 2500, 5000]),  # the last segment ends exactly at the song's end
    (3000, None, [0, 3000, 6000]),  # the last one runs 1000 frames past it (zero-padded)
    (12000, None, [0]),  # a song shorter than a segment is one padded segment
])
def test_sequential_offsets_cover_each_song(roots, segment, hop, offsets):
    config = DatasetConfig(segment_frames=segment, hop_frames=hop, sample_rate=RATE, mode="sequential",
                           filter_silence=False)
    dataset = SongDataset([s for s in find_songs(roots["folder"]) if s.name == "song_0"], config)
    items = [dataset[i] for i in range(len(dataset))]
    assert [meta.offset_frames for _, _, meta in items] == offsets
    stems, mix, _ = items[-1]
    tail = FRAMES - offsets[-1]
    assert stems.shape[-1] == segment and mix.shape[-1] == segment
    assert not stems[..., tail:].any() and not mix[..., tail:].any()
    assert stems[..., :tail].abs().amax(dim=-1).min() > 0.1


def _quiet_song_dataset(roots, config: DatasetConfig) -> SongDataset:
    return SongDataset([s for s in find_songs(roots["folder"]) if s.name == FOLDER_QUIET_SONG], config)


@pytest.mark.parametrize(("filter_silence", "offsets"), [(True, [0, QUARTER]), (False, [0, 2000, 4000, 6000])])
def test_sequential_silence_filter(roots, filter_silence, offsets):
    # Quarters of the quiet song: 4 stems active; 2 of 4 (half silent: kept); 1 of 4 (dropped); none (dropped).
    config = DatasetConfig(segment_frames=QUARTER, sample_rate=RATE, mode="sequential", filter_silence=filter_silence)
    dataset = _quiet_song_dataset(roots, config)
    assert [dataset[i][2].offset_frames for i in range(len(dataset))] == offsets


def _passes_filter(stems: torch.Tensor, mix: torch.Tensor) -> bool:
    silent = sum(rms_dbfs(stem.numpy()) < -60.0 for stem in stems)
    return rms_dbfs(mix.numpy()) >= -60.0 and silent <= 0.5 * len(stems)


def test_random_segments_skip_silence(roots):
    base = DatasetConfig(segment_frames=QUARTER, sample_rate=RATE, segments_per_epoch=40, max_draws=50)
    filtered = _quiet_song_dataset(roots, base)
    assert all(_passes_filter(stems, mix) for stems, mix, _ in (filtered[i] for i in range(len(filtered))))
    unfiltered = _quiet_song_dataset(roots, DatasetConfig(**{**base.__dict__, "filter_silence": False}))
    assert not all(_passes_filter(stems, mix) for stems, mix, _ in (unfiltered[i] for i in range(len(unfiltered))))


def test_random_offsets_are_seeded_per_epoch_and_index(roots):
    config = DatasetConfig(segment_frames=QUARTER, sample_rate=RATE, segments_per_epoch=30)

    def offsets(dataset, order):
        return {i: dataset[i][2].offset_frames for i in order}

    dataset = FolderDataset(roots["folder"], config)
    first = offsets(dataset, range(30))
    np.random.seed(123)
    torch.manual_seed(123)  # global generators play no part
    assert offsets(FolderDataset(roots["folder"], config), reversed(range(30))) == first
    assert dataset[7][2].song == dataset.songs[7 % len(dataset.songs)].name
    dataset.set_epoch(1)
    assert dataset[0][2].epoch == 1
    assert offsets(dataset, range(30)) != first
    reseeded = FolderDataset(roots["folder"], DatasetConfig(**{**config.__dict__, "seed": 1}))
    assert offsets(reseeded, range(30)) != first
    assert len(set(first.values())) > 20  # offsets spread over the songs


@pytest.mark.parametrize(("val", "test"), [(0.1, 0.1), (0.2, 0.3), (0.0, 0.25)])
def test_split_songs_is_a_fixed_partition(val, test):
    names = [f"song_{i:03d}" for i in range(100)]
    split = split_songs(names, val, test, seed=7)
    assert sorted(sum(split.values(), [])) == names  # every song once: no leak, none lost
    assert (len(split["val"]), len(split["test"])) == (round(100 * val), round(100 * test))
    assert split_songs(list(reversed(names)), val, test, seed=7) == split
    assert split_songs(names, val, test, seed=8) != split
    grown = split_songs(names + ["song_new"], val, test, seed=7)  # songs only move at the cut points
    moved = [name for name in names if name not in grown[next(k for k in split if name in split[k])]]
    assert len(moved) <= 2


def test_split_by_group_keeps_groups_together():
    names = [f"Artist{a}_Song{s}" for a in range(30) for s in range(3)]
    split = split_songs(names, 0.2, 0.2, group=artist)
    sides = {part: {artist(name) for name in songs} for part, songs in split.items()}
    assert not (sides["train"] & sides["val"] or sides["train"] & sides["test"] or sides["val"] & sides["test"])
    assert (len(sides["val"]), len(sides["test"])) == (6, 6)


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.1), (1.0, 0.0), (0.6, 0.5)])
def test_split_fractions_checked(val, test):
    with pytest.raises(MixdownError, match="fraction"):
        split_songs(["a", "b"], val, test)


@pytest.mark.parametrize("layout", ["folder", "enst", "medleydb"])
def test_dataset_splits_by_song(roots, layout):
    parts = {split: {s.name for s in DATASETS[layout](roots[layout], SEQUENTIAL, split=split, val_fraction=0.25,
                                                      test_fraction=0.25).songs} for split in ("train", "val", "test")}
    assert set.union(*parts.values()) == set(EXPECTED_SONGS[layout])
    assert sum(map(len, parts.values())) == len(EXPECTED_SONGS[layout])
    if layout == "medleydb":  # by artist: ArtistA's two songs share a split
        assert any({"ArtistA_First", "ArtistA_Second"} <= songs for songs in parts.values())


def test_musdb_official_split(roots):
    parts = {split: sorted(s.name for s in MUSDBDataset(roots["musdb"], SEQUENTIAL, split=split).songs)
             for split in ("train", "val", "test")}
    assert parts == {"train": sorted(set(MUSDB_TRAIN) - set(MUSDB_VALIDATION)),
                     "val": sorted(MUSDB_VALIDATION), "test": sorted(MUSDB_TEST)}
    assert len(VALIDATION_SONGS) == 14


def test_loudness_normalisation_hits_target(roots):
    segment = RATE // 2  # 0.5 s: one full 400 ms gating block
    plain = DatasetConfig(segment_frames=segment, sample_rate=RATE, mode="sequential", filter_silence=False)
    normed = DatasetConfig(**{**plain.__dict__, "stem_lufs": -23.0})
    raw_set, norm_set = FolderDataset(roots["folder"], plain), FolderDataset(roots["folder"], normed)
    meter = pyloudnorm.Meter(RATE, filter_class="DeMan")  # the exact BS.1770 filters at any rate
    checked = 0
    for index in range(len(norm_set)):
        raw, _, _ = raw_set[index]
        stems, _, meta = norm_set[index]
        for k, stereo in enumerate(meta.stereo):
            source = stems[k, : 2 if stereo else 1].numpy().T.astype(np.float64)
            expected = raw[k] * 10.0 ** (meta.stem_gain_db[k] / 20.0)
            torch.testing.assert_close(stems[k], expected.to(torch.float32), rtol=1e-5, atol=1e-7)
            if rms_dbfs(raw[k].numpy()) < -60.0:  # silent stems are left alone
                assert meta.stem_gain_db[k] == 0.0 and not stems[k].any()
                continue
            assert meta.stem_gain_db[k] != 0.0
            assert meter.integrated_loudness(source) == pytest.approx(-23.0, abs=0.05)  # pyloudnorm as reference
            checked += 1
    assert checked > 30


def test_loudness_needs_a_gating_block(roots):
    with pytest.raises(MixdownError, match="0.4 s"):
        FolderDataset(roots["folder"], DatasetConfig(segment_frames=QUARTER, sample_rate=RATE, stem_lufs=-23.0))


@pytest.mark.parametrize("rate", [11025, 16000])
def test_resampled_segments_match_whole_file_resampling(roots, rate):
    config = DatasetConfig(segment_frames=3000, sample_rate=rate, mode="sequential", filter_silence=False)
    dataset = SongDataset([s for s in find_songs(roots["folder"]) if s.name == FOLDER_STEREO_SONG], config)
    assert dataset.song_frames(0) == resampled_length(FRAMES, RATE, rate)
    whole = [load_audio(track.path, rate)[0] for track in dataset.songs[0].stems]
    for index in range(len(dataset)):
        stems, _, meta = dataset[index]
        assert meta.sample_rate == rate
        for row, full in zip(stems, whole, strict=True):
            expected = np.zeros((full.shape[0], 3000), dtype=np.float32)
            piece = full[:, meta.offset_frames: meta.offset_frames + 3000]
            expected[:, : piece.shape[1]] = piece
            np.testing.assert_allclose(row.numpy(), np.broadcast_to(expected, row.shape), atol=1e-5)


@pytest.mark.parametrize(("channels", "song", "width", "stereo"), [
    (None, "song_0", 1, (False,) * 4),
    (None, FOLDER_STEREO_SONG, 2, (False, False, False, True, False)),
    (2, "song_0", 2, (False,) * 4),
    (1, FOLDER_STEREO_SONG, 1, (False,) * 5),
])
def test_stem_channels(roots, channels, song, width, stereo):
    config = DatasetConfig(segment_frames=QUARTER, sample_rate=RATE, mode="sequential", filter_silence=False,
                           channels=channels)
    source = next(s for s in find_songs(roots["folder"]) if s.name == song)
    stems, _, meta = SongDataset([source], config)[0]
    assert stems.shape[1] == width and meta.stereo == stereo
    files = [_file_segment(track.path, 0, QUARTER) for track in source.stems]
    for row, data in zip(stems.numpy(), files, strict=True):
        if width == 1:
            np.testing.assert_allclose(row[0], data.mean(axis=0), atol=1e-7)  # stereo stems averaged
        elif data.shape[0] == 1:
            np.testing.assert_array_equal(row, np.repeat(data, 2, axis=0))  # mono duplicated
        else:
            np.testing.assert_array_equal(row, data)


@pytest.mark.parametrize(("rate", "bound"), [(RATE, QUARTER), (16000, (QUARTER + 2 * 1024) // 2 + 1)])
def test_reads_are_bounded_by_the_segment(roots, monkeypatch, rate, bound):
    requested = []
    original = songs_module._read_padded

    def spy(path, start, frames):
        requested.append(frames)
        return original(path, start, frames)

    monkeypatch.setattr(songs_module, "_read_padded", spy)
    dataset = FolderDataset(roots["folder"], DatasetConfig(segment_frames=QUARTER, sample_rate=rate))
    for index in range(len(dataset)):
        dataset[index]
    assert requested and max(requested) <= bound < FRAMES


# Each breakage: (what to do to the folder dataset copy, song it hits, words of the problem).
def _remove(path: Path) -> None:
    path.unlink()


BREAKAGES = {
    "missing mix": (lambda root: _remove(root / "song_1" / "mix.wav"), "song_1", "missing mix file song_1/mix.wav"),
    "missing stem": (lambda root: _remove(root / "song_1" / "stems" / "kick.wav"), "song_1",
                     "settings for unknown stems ['kick']"),
    "corrupt file": (lambda root: (root / "song_2" / "stems" / "bass.wav").write_bytes(b"RIFF\x00garbage"),
                     "song_2", "unreadable audio"),
    "three channels": (lambda root: write_wav(root / "song_2" / "stems" / "bass.wav", tone(100.0, channels=1)
                                              .repeat(3, axis=0)), "song_2", "3 channels"),
    "length": (lambda root: write_wav(root / "song_0" / "stems" / "keys.wav", tone(300.0, FRAMES - 10)), "song_0",
               "lengths differ: mix 8000 frames; stems/keys.wav 7990"),
    "rate": (lambda root: write_wav(root / "song_0" / "stems" / "keys.wav", tone(300.0, FRAMES), 16000), "song_0",
             "sample rates differ"),
    "params rate": (lambda root: (root / "song_0" / "params.json").write_text(ConsoleParams(
        [ChannelParams(name) for name in FOLDER_STEMS], sample_rate=16000).to_json()), "song_0",
        "params.json is for 16000 Hz but the audio is 8000 Hz"),
    "params json": (lambda root: (root / "song_0" / "params.json").write_text("{not json"), "song_0",
                    "not valid JSON"),
    "no stems folder": (lambda root: shutil.rmtree(root / "song_2" / "stems"), "song_2", "no stems/ folder"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_check_dataset_reports_bad_songs(folder_copy, caplog, breakage):
    damage, song, words = BREAKAGES[breakage]
    damage(folder_copy)
    with pytest.raises(MixdownError, match="^" + song + ": ") as raised:
        check_dataset(folder_copy)
    assert words in str(raised.value) and isinstance(raised.value, SongError) and raised.value.song == song
    with caplog.at_level(logging.WARNING, logger="mixdown.data"):
        report = check_dataset(folder_copy, skip_bad=True)
    assert [s for s, _ in report.problems] == [song] and words in report.problems[0][1]
    assert song not in report.songs_ok and len(report.songs_ok) == len(EXPECTED_SONGS["folder"]) - 1
    assert not report.ok and f"{song}: " in report.summary() and "4 of 5 songs OK" in report.summary()
    assert any(song in record.getMessage() and record.name == "mixdown.data" for record in caplog.records)
    with pytest.raises(SongError, match=song):  # the loaders run the same checks
        FolderDataset(folder_copy, SEQUENTIAL)
    dataset = FolderDataset(folder_copy, DatasetConfig(**{**SEQUENTIAL.__dict__, "skip_bad": True}))
    assert song not in [s.name for s in dataset.songs] and dataset.problems == report.problems


@pytest.mark.parametrize(("layout", "damage", "song", "words"), [
    ("enst", lambda root: _remove(root / "drummer_2" / "audio" / "tom_3" / f"{ENST_TAKES[2][0]}.wav"),
     f"drummer_2/{ENST_TAKES[2][0]}", f"missing stem file tom_3/{ENST_TAKES[2][0]}.wav"),
    ("medleydb", lambda root: _remove(root / "ArtistB_Third" / "ArtistB_Third_STEMS" / "ArtistB_Third_STEM_02.wav"),
     "ArtistB_Third", "missing stem file ArtistB_Third_STEMS/ArtistB_Third_STEM_02.wav"),
    ("medleydb", lambda root: (root / "ArtistC_Fourth" / "ArtistC_Fourth_METADATA.yaml").write_text("stems: [1, 2"),
     "ArtistC_Fourth", "malformed metadata ArtistC_Fourth_METADATA.yaml"),
    ("musdb", lambda root: _remove(root / "test" / MUSDB_TEST[1] / "mixture.wav"), MUSDB_TEST[1],
     "missing mix file"),
])
def test_check_dataset_other_layouts(roots, tmp_path, layout, damage, song, words):
    root = Path(shutil.copytree(roots[layout], tmp_path / layout))
    assert check_dataset(root, layout).ok
    damage(root)
    with pytest.raises(MixdownError, match=words):
        check_dataset(root, layout)
    report = check_dataset(root, layout, skip_bad=True)
    assert report.problems == [(song, report.problems[0][1])] and words in report.problems[0][1]
    assert len(report.songs_ok) == len(EXPECTED_SONGS[layout]) - 1


def test_check_dataset_good_report(roots):
    report = check_dataset(roots["folder"])
    assert report.ok and sorted(report.songs_ok) == sorted(EXPECTED_SONGS["folder"])
    assert report.duration_s == pytest.approx(5.0)
    assert report.summary() == f"{roots['folder']} (folder layout): 5 of 5 songs OK, 0:00:05 of audio"


@pytest.mark.parametrize(("args", "words"), [
    (lambda tmp: (tmp / "absent",), "does not exist"),
    (lambda tmp: (tmp,), "no songs found"),
    (lambda tmp: (tmp, "nope"), "unknown dataset layout 'nope'"),
])
def test_check_dataset_bad_arguments(tmp_path, args, words):
    with pytest.raises(MixdownError, match=words):
        check_dataset(*args(tmp_path))


def test_loader_without_songs_fails_clearly(tmp_path):
    with pytest.raises(MixdownError, match=f"no songs found in {tmp_path}"):
        FolderDataset(tmp_path)


def test_dataset_config_checked():
    with pytest.raises(MixdownError, match="mode"):
        DatasetConfig(mode="shuffled")
    with pytest.raises(MixdownError, match="channels"):
        DatasetConfig(channels=3)


def _item(tracks: int, channels: int = 1, index: int = 0, epoch: int = 0, samples: int = 16,
          params: bool = True) -> tuple[torch.Tensor, torch.Tensor, SegmentMeta]:
    """An item whose track ``k`` is the constant ``k + 1`` and is named ``t<k>`` (gain_db ``-k`` in its params)."""
    names = tuple(f"t{k}" for k in range(tracks))
    stems = torch.arange(1.0, tracks + 1.0)[:, None, None].expand(tracks, channels, samples).clone()
    settings = ConsoleParams([ChannelParams(name, gain_db=-float(k)) for k, name in enumerate(names)]) if params \
        else None
    meta = SegmentMeta(song=f"s{index}", stem_names=names, instruments=("other",) * tracks,
                       stereo=(channels == 2,) * tracks, offset_frames=0, sample_rate=RATE, index=index, epoch=epoch,
                       stem_gain_db=tuple(0.5 * k for k in range(tracks)), params=settings)
    return stems, torch.zeros(2, samples), meta


def test_collate_pads_and_masks():
    batch = collate_multitracks([_item(2, index=0), _item(3, index=1)])
    assert batch.stems.shape == (2, 3, 1, 16) and batch.mix.shape == (2, 2, 16)
    assert batch.mask.tolist() == [[True, True, False], [True, True, True]]
    assert not batch.stems[0, 2].any() and batch.stems[1, 2].eq(3.0).all()
    fixed = MultitrackCollate(max_tracks=5)([_item(2), _item(3, index=1)])
    assert fixed.stems.shape == (2, 5, 1, 16) and fixed.mask.sum().item() == 5
    with pytest.raises(ValueError, match="max_tracks=2"):
        collate_multitracks([_item(3)], max_tracks=2)


def test_collate_mixed_mono_and_stereo():
    batch = collate_multitracks([_item(2, channels=1), _item(3, channels=2, index=1)])
    assert batch.stems.shape == (2, 3, 2, 16)
    assert torch.equal(batch.stems[0, :2, 0], batch.stems[0, :2, 1])  # mono duplicated to both channels
    assert batch.stereo.tolist() == [[False, False, False], [True, True, True]]
    assert collate_multitracks([_item(2), _item(1, index=1)]).stems.shape[2] == 1  # all mono stays mono


def test_collate_shuffle_keeps_tracks_meta_and_params_aligned():
    items = [_item(tracks, index=index, epoch=3) for index, tracks in enumerate((2, 5, 4, 5, 3, 5))]
    batch = MultitrackCollate(shuffle_tracks=True, seed=9)(items)
    moved = 0
    for b, meta in enumerate(batch.metas):
        order = [int(name[1:]) for name in meta.stem_names]
        moved += order != sorted(order)
        assert sorted(order) == list(range(len(order))) and batch.mask[b].sum() == len(order)
        for t, k in enumerate(order):
            assert batch.stems[b, t].eq(k + 1.0).all()  # the row is the named track
            assert meta.params.channels[t].name == meta.stem_names[t]
            assert meta.params.channels[t].gain_db == -float(k) and meta.stem_gain_db[t] == 0.5 * k
        assert not batch.stems[b, len(order):].any()
    assert moved >= 3
    again = MultitrackCollate(shuffle_tracks=True, seed=9)(items)
    assert torch.equal(again.stems, batch.stems)  # seeded: the same in any worker
    next_epoch = MultitrackCollate(shuffle_tracks=True, seed=9)([_item(5, index=i, epoch=4) for i in range(6)])
    this_epoch = MultitrackCollate(shuffle_tracks=True, seed=9)([_item(5, index=i, epoch=3) for i in range(6)])
    assert [m.stem_names for m in next_epoch.metas] != [m.stem_names for m in this_epoch.metas]
    assert items[1][2].stem_names == ("t0", "t1", "t2", "t3", "t4") and items[1][0][4].eq(5.0).all()  # inputs kept


def test_dataloader_end_to_end(roots):
    dataset = MedleyDBDataset(roots["medleydb"], DatasetConfig(segment_frames=QUARTER, sample_rate=RATE,
                                                               segments_per_epoch=6))
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=MultitrackCollate(shuffle_tracks=True))
    batches = list(loader)
    assert len(batches) == 2
    for batch in batches:
        assert batch.stems.shape == (3, 3, 2, QUARTER) and batch.mix.shape == (3, 2, QUARTER)
        counts = [len(EXPECTED_SONGS["medleydb"][meta.song][0]) for meta in batch.metas]
        assert batch.mask.sum(dim=1).tolist() == counts


# What `mixdown data check` finds by decoding (as loading a song whole does), and headers alone do not.
def _with_sample(path: Path, value: float) -> None:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    audio[len(audio) // 2, 0] = value
    sf.write(path, audio, rate, subtype="FLOAT")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


DECODE_BREAKAGES = {
    "nan stem": (lambda root: _with_sample(root / "song_1" / "stems" / "snare.wav", np.nan), "song_1",
                 "contains NaN or infinite samples", True),
    "inf mix": (lambda root: _with_sample(root / "song_2" / "mix.wav", np.inf), "song_2",
                "contains NaN or infinite samples", True),
    "names equal ignoring case": (lambda root: shutil.copy(root / "song_0" / "stems" / "kick.wav",
                                                           root / "song_0" / "stems" / "KICK.wav"), "song_0",
                                  "duplicate stem names ['KICK', 'kick'] (equal ignoring case)", False),
    "truncated stem": (lambda root: _truncate(root / "song_1" / "stems" / "bass.wav"), "song_1",
                       "bass.wav is truncated", False),
    "rate mixdown does not mix at": (lambda root: [write_wav(path, tone(200.0, 4000, 4000), 4000) for path in
                                                   (root / "song_2").rglob("*.wav")], "song_2",
                                     "mixdown mixes at 8000..192000 Hz", True),
}


@pytest.mark.parametrize("breakage", list(DECODE_BREAKAGES))
def test_data_check_fails_what_evaluate_rejects(folder_copy, tmp_path, capsys, breakage):
    from mixdown import cli

    damage, song, words, decoding_only = DECODE_BREAKAGES[breakage]
    (folder_copy / "song_2" / "params.json").unlink(missing_ok=True)  # a rate change would void it first
    damage(folder_copy)
    with pytest.raises(SongError, match="^" + song + ": ") as raised:
        check_dataset(folder_copy, decode=True)
    assert words in str(raised.value)
    if decoding_only:  # the training loaders read headers only (and segments later)
        assert check_dataset(folder_copy).ok
    else:  # the loaders refuse it too
        with pytest.raises(SongError, match=song):
            check_dataset(folder_copy)
    capsys.readouterr()
    assert cli.main(["data", "check", str(folder_copy)]) == cli.EXIT_ERROR
    assert words in capsys.readouterr().err
    assert cli.main(["evaluate", str(folder_copy), "--methods", "mono", "--out", str(tmp_path / "eval")]) == 2
    assert song in capsys.readouterr().err
