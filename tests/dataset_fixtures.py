"""Tiny datasets in each layout the loaders read, written from synthetic signals.

Every writer takes a root under ``tmp_path`` and lays out a few ~1 s songs at a low rate
exactly as the real dataset does (folder names, file names, metadata), so the loaders
are tested against the real structure without the real audio. Stems are sines at
distinct frequencies; mixes are their plain sum (mono stems on both channels), not a
console render.

``FOLDER_QUIET_SONG`` has a section-by-section activity pattern (see
:func:`write_folder_dataset`) for the silence filter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from mixdown.params import ConsoleParams, default_channel

RATE = 8000
FRAMES = 8000  # 1 s at RATE
QUARTER = FRAMES // 4

FOLDER_STEMS = ("kick", "snare", "bass", "keys")
FOLDER_QUIET_SONG = "song_quiet"
FOLDER_STEREO_SONG = "song_stereo"


def tone(freq_hz: float, frames: int = FRAMES, rate: int = RATE, channels: int = 1,
         amplitude: float = 0.2) -> np.ndarray:
    """A float32 sine ``(channels, frames)``; a stereo one has its right channel at half level."""
    wave = amplitude * np.sin(2 * np.pi * freq_hz * np.arange(frames) / rate)
    gains = [1.0, 0.5][:channels]
    return np.stack([g * wave for g in gains]).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray, rate: int = RATE) -> Path:
    """Write ``(channels, frames)`` as 32-bit float WAV (exact samples), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.T, rate, subtype="FLOAT")
    return path


def plain_mix(stems: list[np.ndarray]) -> np.ndarray:
    """``(2, frames)``: the stems summed, mono ones on both channels."""
    return sum(np.broadcast_to(stem, (2, stem.shape[1])) for stem in stems).astype(np.float32)


def folder_song_stems(index: int, frames: int = FRAMES, rate: int = RATE) -> dict[str, np.ndarray]:
    """The four mono stems of folder song ``index`` (frequencies differ per song)."""
    return {name: tone(110.0 * (k + 1) + 7.0 * index, frames, rate) for k, name in enumerate(FOLDER_STEMS)}


def write_folder_song(folder: Path, stems: dict[str, np.ndarray], rate: int = RATE, params: bool = True) -> None:
    """``folder/stems/<name>.wav``, ``folder/mix.wav`` and (optionally) a neutral ``params.json``."""
    for name, audio in stems.items():
        write_wav(folder / "stems" / f"{name}.wav", audio, rate)
    write_wav(folder / "mix.wav", plain_mix(list(stems.values())), rate)
    if params:
        settings = ConsoleParams(channels=[default_channel(name) for name in reversed(list(stems))],
                                 sample_rate=rate, method="fixture")
        (folder / "params.json").write_text(settings.to_json(), encoding="utf-8")


def write_folder_dataset(root: Path, songs: int = 3) -> list[str]:
    """A folder-layout dataset: ``song_0 .. song_{songs-1}`` plus two special songs.

    * ``song_<i>``: four mono stems (kick, snare, bass, keys), ``params.json`` naming
      them (in reverse order, to test reordering).
    * ``song_stereo``: the same with a stereo ``overhead`` stem added, no params.
    * ``song_quiet``: per quarter second, the active stems are all four; kick and
      snare; kick alone; none. The rest is digital silence.

    Returns:
        The song names, sorted.
    """
    for i in range(songs):
        write_folder_song(root / f"song_{i}", folder_song_stems(i))
    stereo = folder_song_stems(songs) | {"overhead": tone(1000.0, channels=2)}
    write_folder_song(root / FOLDER_STEREO_SONG, stereo, params=False)
    quiet = folder_song_stems(songs + 1)
    active = {"kick": 3, "snare": 2, "bass": 1, "keys": 1}  # quarters each stem plays
    for name, quarters in active.items():
        quiet[name][:, quarters * QUARTER:] = 0.0
    write_folder_song(root / FOLDER_QUIET_SONG, quiet)
    (root / "synth.yaml").write_text("seed: 0\n", encoding="utf-8")  # a file beside the songs, as synthetic writes
    return sorted([f"song_{i}" for i in range(songs)] + [FOLDER_STEREO_SONG, FOLDER_QUIET_SONG])


ENST_TAKES = {
    1: ("001_hits_snare-drum_sticks_x6", "012_phrase_rock_simple_slow_sticks", "013_phrase_disco_simple_fast_sticks"),
    2: ("021_phrase_funk_simple_slow_mallets", "061_minus-one_blues_102_sticks"),
}
"""Takes per drummer; drummer 2's kit has a third tom."""

ENST_DRY_CHANNELS = ("hi-hat", "kick", "overhead_L", "overhead_R", "snare", "tom_1", "tom_2")


def write_enst(root: Path) -> None:
    """An ENST-Drums copy: ``drummer_<n>/audio/<channel>/<take>.wav``, mixes, annotations."""
    for drummer, takes in ENST_TAKES.items():
        channels = ENST_DRY_CHANNELS + (("tom_3",) if drummer == 2 else ())
        audio = root / f"drummer_{drummer}" / "audio"
        for t, take in enumerate(takes):
            tracks = [tone(100.0 + 50.0 * c + 10.0 * t) for c in range(len(channels))]
            for channel, track in zip(channels, tracks, strict=True):
                write_wav(audio / channel / f"{take}.wav", track)
            dry = plain_mix(tracks) / len(tracks)
            write_wav(audio / "dry_mix" / f"{take}.wav", dry)
            write_wav(audio / "wet_mix" / f"{take}.wav", np.tanh(2.0 * dry).astype(np.float32))
            if "minus-one" in take:
                write_wav(audio / "accompaniment" / f"{take}.wav", tone(220.0, channels=2))
            annotation = root / f"drummer_{drummer}" / "annotation" / f"{take}.txt"
            annotation.parent.mkdir(parents=True, exist_ok=True)
            annotation.write_text("0.100 bd\n0.600 sd\n", encoding="utf-8")


MEDLEYDB_SONGS = {
    "ArtistA_First": ("drum set", "electric bass", "male singer"),
    "ArtistA_Second": ("drum set", "piano"),
    "ArtistB_Third": ("clean electric guitar", "female singer"),
    "ArtistC_Fourth": ("drum set", "electric bass", "violin"),
}
"""Stem instruments per song; every "drum set" stem has kick drum and snare drum raw tracks."""


def write_medleydb(root: Path) -> None:
    """A MedleyDB copy: per song ``_METADATA.yaml``, ``_MIX.wav``, ``_STEMS/`` and ``_RAW/``."""
    for song, instruments in MEDLEYDB_SONGS.items():
        folder = root / song
        stems_meta, stem_audio = {}, []
        for s, instrument in enumerate(instruments, start=1):
            raw_labels = ("kick drum", "snare drum") if instrument == "drum set" else (instrument,)
            raws = [tone(90.0 * s + 40.0 * r, channels=1) for r in range(len(raw_labels))]
            stem = plain_mix(raws) if instrument == "drum set" else raws[0]
            key = f"S{s:02d}"
            stem_file = f"{song}_STEM_{s:02d}.wav"
            write_wav(folder / f"{song}_STEMS" / stem_file, stem)
            raw_meta = {}
            for r, (label, raw) in enumerate(zip(raw_labels, raws, strict=True), start=1):
                raw_file = f"{song}_RAW_{s:02d}_{r:02d}.wav"
                write_wav(folder / f"{song}_RAW" / raw_file, raw)
                raw_meta[f"R{r:02d}"] = {"filename": raw_file, "instrument": label}
            stems_meta[key] = {"component": "", "filename": stem_file, "instrument": instrument, "raw": raw_meta}
            stem_audio.append(stem)
        write_wav(folder / f"{song}_MIX.wav", plain_mix(stem_audio))
        artist, title = song.split("_")
        metadata = {"album": "", "artist": artist, "composer": [artist], "excerpt": "no", "genre": "Rock",
                    "has_bleed": "no", "instrumental": "no", "mix_filename": f"{song}_MIX.wav",
                    "origin": "Fixture", "producer": [artist], "raw_dir": f"{song}_RAW",
                    "stem_dir": f"{song}_STEMS", "stems": stems_meta, "title": title, "version": 1.2,
                    "website": []}
        (folder / f"{song}_METADATA.yaml").write_text(yaml.safe_dump(metadata), encoding="utf-8")


MUSDB_TRAIN = ("A Band - Song One", "Actions - One Minute Smile", "Leaf - Summerghost", "Z Band - Last Song")
MUSDB_TEST = ("Test Artist - Test One", "Test Artist - Test Two")
MUSDB_VALIDATION = ("Actions - One Minute Smile", "Leaf - Summerghost")
"""Two of the fixture's training songs are on the official validation list."""


def write_musdb(root: Path) -> None:
    """A MUSDB18-HQ copy: ``{train,test}/<song>/{mixture,drums,bass,other,vocals}.wav``, all stereo."""
    for subset, songs in (("train", MUSDB_TRAIN), ("test", MUSDB_TEST)):
        for i, song in enumerate(songs):
            stems = [tone(100.0 * (k + 1) + 13.0 * i, channels=2) for k in range(4)]
            for name, audio in zip(("drums", "bass", "other", "vocals"), stems, strict=True):
                write_wav(root / subset / song / f"{name}.wav", audio)
            write_wav(root / subset / song / "mixture.wav", plain_mix(stems))
