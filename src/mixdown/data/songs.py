"""Multitrack song datasets: songs on disk, their checks, splits and lazy segments.

Every dataset layout (`folder`, `enst`, `medleydb`, `musdb`) only says where a song's
files are (a :class:`SongSource`). Everything else lives here, shared:

* **Checks** (:func:`inspect_song`): every stem and the mix exist and open, have one
  sample rate and one length; a ``params.json`` parses and names exactly the stems, at
  the audio's rate. A bad song raises :class:`SongError`; :func:`open_songs` either
  stops there or, with ``skip_bad``, skips it with a warning on the ``mixdown.data``
  logger and lists it.
* **Splits** (:func:`split_songs`): a fixed train/val/test split *by song*, decided by
  the names alone, so no song (or group, e.g. artist) is in two splits.
* **Segments** (:class:`SongDataset`): a torch ``Dataset`` of fixed-length segments,
  read lazily from the files (soundfile ``start``/``frames``; never a whole song) and
  resampled to the target rate on the fly. Items are ``(stems, mix, meta)``.

Segment modes:

* ``"random"`` (training): item ``i`` is a segment of song ``i % songs`` at an offset
  drawn from ``np.random.default_rng([seed, epoch, i])``; call
  :meth:`SongDataset.set_epoch` between epochs. No global random state is used.
* ``"sequential"`` (evaluation): every segment at offsets ``0, hop, 2 hop, ...`` of
  every song, the last one reaching the song's end (zero-padded past it).

Silence filtering (on by default) skips a segment when its mix is silent or more than
half of its stems are. Levels are RMS over all channels and samples of the segment, in
dBFS (0 dBFS = a full-scale square wave):

* mix silent: RMS below ``mix_silence_dbfs = -60`` dBFS;
* stem silent: RMS below ``stem_silence_dbfs = -60`` dBFS;
* skipped: mix silent, or silent stems > ``max_silent_stem_fraction = 0.5`` of stems.

Random mode redraws the offset (up to ``max_draws`` times, then keeps the draw with the
most active stems); sequential mode drops such segments when the dataset is opened.

Channels: the mix is always ``(2, samples)`` (a mono mix is duplicated). Stems keep
their channel count where they can: ``channels=None`` gives a song whose stems are all
mono ``(tracks, 1, samples)``; when a song mixes mono and stereo stems its mono stems
are duplicated to two channels, the console's convention for a mono source in a
stereo row (`mixdown.dsp.pan.pan`), and ``meta.stereo`` says which stems are genuinely
stereo. ``channels=2`` makes every stem two channels that way; ``channels=1`` averages
stereo stems to mono (and ``meta.stereo`` is then all false).

Loudness normalisation (``stem_lufs``, off by default; -23 LUFS is the EBU R128
programme level and a sensible choice): each stem of a segment gets the gain that puts
its ITU-R BS.1770-4 integrated loudness (gated, `mixdown.dsp.loudness`) at
``stem_lufs``, measured on its source channels (one for a mono stem, even when
duplicated). Silent stems (see above) and segments shorter than one 400 ms gating block
are left as they are. The gains are in ``meta.stem_gain_db``; ground-truth console
settings in ``meta.params`` describe the stems *before* these gains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from mixdown.audio import as_stereo, probe_audio, resample, resampled_length
from mixdown.dsp.loudness import integrated_loudness
from mixdown.errors import AudioError, MixdownError, ParamsError
from mixdown.limits import MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ
from mixdown.params import ConsoleParams

logger = logging.getLogger("mixdown.data")

MIX_SILENCE_DBFS = -60.0
"""A segment's mix is silent below this RMS level (dBFS)."""

STEM_SILENCE_DBFS = -60.0
"""A segment's stem is silent below this RMS level (dBFS)."""

MAX_SILENT_STEM_FRACTION = 0.5
"""A segment is skipped when more than this fraction of its stems are silent."""

SPLITS = ("train", "val", "test")
MODES = ("random", "sequential")

_GATE_BLOCK_S = 0.4  # BS.1770 gating block
_RESAMPLE_MARGIN_FRAMES = 1024  # output frames read on each side of a resampled segment


class SongError(MixdownError):
    """A song of a dataset is unusable.

    Attributes:
        song: The song's name.
        problem: What is wrong, one line.
    """

    def __init__(self, song: str, problem: str):
        super().__init__(f"{song}: {problem}")
        self.song = song
        self.problem = problem


@dataclass(frozen=True)
class TrackSource:
    """One stem as a layout describes it.

    Attributes:
        name: Track name, unique within the song.
        path: Its audio file.
        instrument: One of :data:`~mixdown.multitrack.INSTRUMENT_CLASSES`.
    """

    name: str
    path: Path
    instrument: str


@dataclass(frozen=True)
class SongSource:
    """A song as a layout describes it, before any file is opened.

    Attributes:
        name: Unique song name within the dataset.
        stems: Its tracks, in order.
        mix: The reference mix file.
        params: A ``params.json`` with the true console settings, if any.
        error: What the layout could not make sense of (e.g. malformed metadata);
            such a song fails its checks.
    """

    name: str
    stems: tuple[TrackSource, ...]
    mix: Path
    params: Path | None = None
    error: str | None = None


@dataclass(frozen=True)
class Track:
    """A checked stem: :class:`TrackSource` plus its channel count (1 or 2)."""

    name: str
    path: Path
    instrument: str
    channels: int


@dataclass(frozen=True)
class Song:
    """A checked song: every file opens, one sample rate, one length.

    Attributes:
        name: Song name.
        stems: Its tracks, in order.
        mix: The mix file.
        mix_channels: 1 or 2.
        file_rate: Sample rate of every file, in Hz.
        num_frames: Length of every file in frames at ``file_rate``.
        params: True console settings, channels in track order, or ``None``.
    """

    name: str
    stems: tuple[Track, ...]
    mix: Path
    mix_channels: int
    file_rate: int
    num_frames: int
    params: ConsoleParams | None = None

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.file_rate


def _short(path: Path) -> str:
    """A file named by its folder and name: enough to find it within a song."""
    return str(Path(*path.parts[-2:]))


def inspect_song(source: SongSource, decode: bool = False) -> Song:
    """Check a song's files (headers, or every sample with ``decode``) and its ``params.json``.

    Args:
        source: The song.
        decode: Also read every sample, as loading the song whole does (`mixdown evaluate`,
            `mixdown data check`): samples must be finite, every file must decode to the
            length its header states, and the rate must be one mixdown mixes at
            (`mixdown.limits`). Without it only headers are read (fast, for the training
            loaders, which read segments and resample).

    Returns:
        The checked song.

    Raises:
        SongError: Naming the song and the first problem found: the layout's error, no
            stems, stem names equal ignoring case, a missing, unreadable, truncated or
            corrupt file (or one with more than two channels), differing sample rates or
            lengths, a ``params.json`` that does not parse, does not name exactly the
            stems or is for another sample rate; with ``decode``, NaN or infinite
            samples or a rate mixdown does not mix at.
    """
    def fail(problem: str) -> SongError:
        return SongError(source.name, problem)

    if source.error is not None:
        raise fail(source.error)
    if not source.stems:
        raise fail("no stems")
    names = [stem.name for stem in source.stems]
    folded = [name.lower() for name in names]  # as `mixdown.multitrack.Multitrack` compares them
    duplicates = sorted({name for name, key in zip(names, folded) if folded.count(key) > 1})
    if duplicates:
        exact = any(names.count(name) > 1 for name in duplicates)
        raise fail(f"duplicate stem names {duplicates}" + ("" if exact else " (equal ignoring case)"))
    for label, path in [("mix", source.mix)] + [("stem", stem.path) for stem in source.stems]:
        if not path.is_file():
            raise fail(f"missing {label} file {_short(path)}")
    try:
        mix_info = probe_audio(source.mix)
        stem_infos = [probe_audio(stem.path) for stem in source.stems]
    except AudioError as err:
        raise fail(f"unreadable audio: {err}") from err
    infos = [mix_info] + stem_infos
    rates = sorted({info.sample_rate for info in infos})
    if len(rates) > 1:
        listing = ", ".join(f"{_short(info.path)} {info.sample_rate} Hz" for info in infos)
        raise fail(f"sample rates differ: {listing}")
    lengths = sorted({info.frames for info in infos})
    if len(lengths) > 1:
        odd = [info for info in infos if info.frames != mix_info.frames]
        listing = ", ".join(f"{_short(info.path)} {info.frames}" for info in odd)
        raise fail(f"lengths differ: mix {mix_info.frames} frames; {listing}")
    if decode:
        if not MIN_SAMPLE_RATE_HZ <= rates[0] <= MAX_SAMPLE_RATE_HZ:
            raise fail(f"the audio is at {rates[0]} Hz; mixdown mixes at {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz")
        for info in infos:
            try:
                check_samples(info.path, info.frames)
            except AudioError as err:
                raise fail(f"unreadable audio: {err}") from err
    params = None
    if source.params is not None:
        try:
            params = ConsoleParams.load(source.params).ordered_like(names)
        except ParamsError as err:
            raise fail(f"{_short(source.params)}: {err}") from err
        if params.sample_rate != rates[0]:
            raise fail(f"{_short(source.params)} is for {params.sample_rate} Hz but the audio is {rates[0]} Hz")
    stems = tuple(Track(stem.name, stem.path, stem.instrument, info.channels)
                  for stem, info in zip(source.stems, stem_infos, strict=True))
    return Song(source.name, stems, source.mix, mix_info.channels, rates[0], mix_info.frames, params)


def check_samples(path: Path, frames: int, block_frames: int = 1 << 16) -> None:
    """Decode a whole file block by block: every sample finite, exactly ``frames`` frames.

    Raises:
        AudioError: Naming the file: it cannot be decoded, holds NaN or infinite samples,
            or ends early (truncated).
    """
    got = 0
    try:
        with sf.SoundFile(str(path)) as file:
            while True:
                block = file.read(block_frames, dtype="float32", always_2d=True)
                if not len(block):
                    break
                if not np.isfinite(block).all():
                    raise AudioError(f"{path}: contains NaN or infinite samples")
                got += len(block)
    except (RuntimeError, OSError, ValueError) as err:
        raise AudioError(f"{path}: cannot read audio ({' '.join(str(err).split())})") from err
    if got < frames:
        raise AudioError(f"{path} is truncated: its header promises {frames} frames, the file holds {got}")


def open_songs(sources: Iterable[SongSource], skip_bad: bool = False,
               decode: bool = False) -> tuple[list[Song], list[tuple[str, str]]]:
    """Check songs with :func:`inspect_song`.

    Args:
        sources: The songs.
        skip_bad: Skip a bad song (logging a warning on ``mixdown.data``) instead of
            raising.
        decode: See :func:`inspect_song`.

    Returns:
        ``(songs, problems)``: the good songs in order, and ``(song, problem)`` for each
        skipped one.

    Raises:
        SongError: For the first bad song, unless ``skip_bad``.
    """
    songs, problems = [], []
    for source in sources:
        try:
            songs.append(inspect_song(source, decode=decode))
        except SongError as err:
            if not skip_bad:
                raise
            logger.warning("skipping song %s: %s", err.song, err.problem)
            problems.append((err.song, err.problem))
    return songs, problems


def split_songs(names: Iterable[str], val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                group: Callable[[str], str] | None = None) -> dict[str, list[str]]:
    """A fixed train/val/test split by song, decided by the names alone.

    Groups (by default each song is its own group; e.g. MedleyDB groups by artist) are
    ranked by the SHA-256 of ``f"{seed}/{group}"``; the first ``round(test_fraction *
    groups)`` are the test split, the next ``round(val_fraction * groups)`` validation,
    the rest training (halves round up). The same names and seed always give the same
    split, whatever order they come in, and a group never spans two splits.

    Args:
        names: Song names (duplicates are ignored).
        val_fraction: Share of groups for validation, in [0, 1).
        test_fraction: Share of groups for testing, in [0, 1).
        seed: Changes the ranking.
        group: Maps a song name to its group.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each sorted.

    Raises:
        MixdownError: If a fraction is outside [0, 1) or they sum to 1 or more.
    """
    for label, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise MixdownError(f"{label} must be in [0, 1), got {fraction}")
    if val_fraction + test_fraction >= 1.0:
        raise MixdownError(f"val_fraction + test_fraction must be below 1, got {val_fraction + test_fraction}")
    group = group or (lambda name: name)
    names = sorted(set(names))
    groups = sorted({group(name) for name in names},
                    key=lambda g: (hashlib.sha256(f"{seed}/{g}".encode()).hexdigest(), g))
    n_test = math.floor(test_fraction * len(groups) + 0.5)
    n_val = math.floor(val_fraction * len(groups) + 0.5)
    split_of = {g: "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
                for rank, g in enumerate(groups)}
    return {split: [name for name in names if split_of[group(name)] == split] for split in SPLITS}


def select_split(sources: Sequence[SongSource], split: str | None, val_fraction: float = 0.1,
                 test_fraction: float = 0.1, seed: int = 0,
                 group: Callable[[str], str] | None = None) -> list[SongSource]:
    """The sources in one split of :func:`split_songs` (all of them for ``split=None``).

    Raises:
        MixdownError: If ``split`` is not one of :data:`SPLITS` or ``None``, or as
            :func:`split_songs`.
    """
    if split is None:
        return list(sources)
    if split not in SPLITS:
        raise MixdownError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    keep = set(split_songs([s.name for s in sources], val_fraction, test_fraction, seed, group)[split])
    return [source for source in sources if source.name in keep]


def describe(root: Path, layout: str, split: str | None) -> str:
    """``"<root> (<layout> layout, <split> split)"``: a dataset named in messages."""
    return f"{root} ({layout} layout" + (f", {split} split)" if split else ")")


@dataclass(frozen=True)
class DatasetConfig:
    """How a :class:`SongDataset` cuts, filters and shapes segments (see the module docstring).

    Attributes:
        segment_frames: Segment length in frames at the output rate.
        sample_rate: Output rate in Hz (songs at other rates are resampled with soxr);
            ``None`` keeps each song's own rate.
        mode: ``"random"`` (training) or ``"sequential"`` (evaluation).
        hop_frames: Sequential mode: frames between segment starts (default
            ``segment_frames``: no overlap).
        segments_per_epoch: Random mode: items per epoch (default: one per song).
        seed: Random mode: seed of the offsets.
        filter_silence: Skip silent segments.
        mix_silence_dbfs: A mix below this RMS level (dBFS) is silent.
        stem_silence_dbfs: A stem below this RMS level (dBFS) is silent.
        max_silent_stem_fraction: Skip a segment with more than this fraction of
            silent stems.
        max_draws: Random mode: offsets tried per item before keeping the best one.
        stem_lufs: Normalise each stem of a segment to this loudness (LUFS), or
            ``None`` to leave levels alone.
        channels: ``None`` (keep mono stems mono where the song allows), ``1`` or ``2``.
        max_tracks: Leave out songs with more stems than this (logged), or ``None``.
        skip_bad: Skip songs that fail their checks instead of raising.

    Raises:
        MixdownError: On a value out of range.
    """

    segment_frames: int = 65536
    sample_rate: int | None = 44100
    mode: str = "random"
    hop_frames: int | None = None
    segments_per_epoch: int | None = None
    seed: int = 0
    filter_silence: bool = True
    mix_silence_dbfs: float = MIX_SILENCE_DBFS
    stem_silence_dbfs: float = STEM_SILENCE_DBFS
    max_silent_stem_fraction: float = MAX_SILENT_STEM_FRACTION
    max_draws: int = 10
    stem_lufs: float | None = None
    channels: int | None = None
    max_tracks: int | None = None
    skip_bad: bool = False

    def __post_init__(self) -> None:
        if self.segment_frames < 1:
            raise MixdownError(f"segment_frames must be positive, got {self.segment_frames}")
        if self.sample_rate is not None and not 1000 <= self.sample_rate <= 384000:
            raise MixdownError(f"sample_rate must be in 1000..384000 Hz, got {self.sample_rate}")
        if self.mode not in MODES:
            raise MixdownError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.hop_frames is not None and self.hop_frames < 1:
            raise MixdownError(f"hop_frames must be positive, got {self.hop_frames}")
        if self.segments_per_epoch is not None and self.segments_per_epoch < 1:
            raise MixdownError(f"segments_per_epoch must be positive, got {self.segments_per_epoch}")
        if not 0.0 <= self.max_silent_stem_fraction <= 1.0:
            raise MixdownError(f"max_silent_stem_fraction must be in [0, 1], got {self.max_silent_stem_fraction}")
        if self.max_draws < 1:
            raise MixdownError(f"max_draws must be positive, got {self.max_draws}")
        if self.stem_lufs is not None and not -70.0 < self.stem_lufs <= 0.0:
            raise MixdownError(f"stem_lufs must be in (-70, 0] LUFS, got {self.stem_lufs}")
        if self.channels not in (None, 1, 2):
            raise MixdownError(f"channels must be None, 1 or 2, got {self.channels!r}")
        if self.max_tracks is not None and self.max_tracks < 1:
            raise MixdownError(f"max_tracks must be positive, got {self.max_tracks}")


@dataclass(frozen=True)
class SegmentMeta:
    """What a segment is: the third element of every dataset item.

    Attributes:
        song: Song name.
        stem_names: Track names, in the order of the stems tensor.
        instruments: Instrument class per track.
        stereo: Per track, whether the source is genuinely stereo (a 2-channel row
            of a mono source is that source duplicated).
        offset_frames: Start of the segment in the song, frames at ``sample_rate``.
        sample_rate: Rate of the audio in Hz.
        index: Dataset index of the item.
        epoch: Epoch the item was drawn in (random mode).
        stem_gain_db: Loudness-normalisation gain applied per track (0 when none).
        params: True console settings, channels in track order, or ``None``.
    """

    song: str
    stem_names: tuple[str, ...]
    instruments: tuple[str, ...]
    stereo: tuple[bool, ...]
    offset_frames: int
    sample_rate: int
    index: int
    epoch: int
    stem_gain_db: tuple[float, ...]
    params: ConsoleParams | None = None

    def permuted(self, order: Sequence[int]) -> SegmentMeta:
        """The same meta with its tracks (and param channels) in ``order``."""
        pick = lambda values: tuple(values[i] for i in order)  # noqa: E731
        params = None if self.params is None else dataclasses.replace(
            self.params, channels=[self.params.channels[i] for i in order])
        return dataclasses.replace(self, stem_names=pick(self.stem_names), instruments=pick(self.instruments),
                                   stereo=pick(self.stereo), stem_gain_db=pick(self.stem_gain_db), params=params)


def read_frames(path: Path, file_rate: int, file_frames: int, out_rate: int, start: int, frames: int) -> np.ndarray:
    """Read ``frames`` frames from ``start`` of a file, at another rate if asked.

    Only the frames needed are read. Past the end of the file the output is zero. When
    resampling, the block read is aligned to a whole number of rate periods (so output
    sample ``k`` lies exactly at time ``k / out_rate``) and has 1024 output frames of
    margin on each side, so it matches :func:`mixdown.audio.resample` of the whole file.

    Args:
        path: Audio file.
        file_rate: Its sample rate in Hz.
        file_frames: Its length in frames.
        out_rate: Output rate in Hz.
        start: First frame, at ``out_rate``.
        frames: Frames wanted, at ``out_rate``.

    Returns:
        float32 audio of shape ``(channels, frames)``.

    Raises:
        AudioError: If the file cannot be read or holds NaN or inf.
    """
    if file_rate == out_rate:
        return _read_padded(path, start, frames)
    step = math.gcd(file_rate, out_rate)
    period_in, period_out = file_rate // step, out_rate // step
    first = max(0, start - _RESAMPLE_MARGIN_FRAMES) // period_out
    last = -(-(start + frames + _RESAMPLE_MARGIN_FRAMES) // period_out)
    block = _read_padded(path, first * period_in, (last - first) * period_in)
    offset = start - first * period_out
    out = resample(block, file_rate, out_rate)[:, offset: offset + frames]
    out = np.pad(out, ((0, 0), (0, frames - out.shape[1])))
    valid = resampled_length(file_frames, file_rate, out_rate) - start
    out[:, max(valid, 0):] = 0.0
    return out


def _read_padded(path: Path, start: int, frames: int) -> np.ndarray:
    """``(channels, frames)`` float32 from frame ``start``, zero past the end of the file."""
    try:
        with sf.SoundFile(str(path)) as file:
            channels = file.channels
            data = np.zeros((0, channels), dtype=np.float32)
            if start < file.frames:
                file.seek(start)
                data = file.read(frames, dtype="float32", always_2d=True)
    except (RuntimeError, ValueError) as err:  # soundfile.LibsndfileError subclasses RuntimeError
        raise AudioError(f"{path}: cannot read audio ({' '.join(str(err).split())})") from err
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    out = np.zeros((channels, frames), dtype=np.float32)
    out[:, : data.shape[0]] = data.T
    return out


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level over every element, in dBFS; ``-inf`` for silence.

    Args:
        audio: Any signal, e.g. ``(channels, samples)``.
    """
    flat = audio.ravel()
    power = float(np.dot(flat, flat)) / flat.size if flat.size else 0.0
    return 10.0 * math.log10(power) if power > 0.0 else -math.inf


class SongDataset(torch.utils.data.Dataset):
    """Fixed-length segments of checked songs, read lazily (see the module docstring).

    Each item is ``(stems, mix, meta)``: float32 tensors of shape ``(tracks, channels,
    samples)`` and ``(2, samples)``, and a :class:`SegmentMeta`. Batch items of different
    track counts with :class:`mixdown.data.collate.MultitrackCollate`.

    The layouts subclass this (`FolderDataset`, `ENSTDrumsDataset`, `MedleyDBDataset`,
    `MUSDBDataset`); build one directly from :class:`SongSource` objects for any other
    layout.

    Args:
        sources: The songs.
        config: Segmenting options.
        description: What the songs are, for messages (e.g. ``"data/ (folder layout,
            val split)"``).

    Attributes:
        songs: The usable songs.
        problems: ``(song, problem)`` for each song skipped by ``config.skip_bad``.

    Raises:
        SongError: If a song fails its checks and ``config.skip_bad`` is false.
        MixdownError: If no usable song is left, or ``config.stem_lufs`` is set with
            segments shorter than one 400 ms gating block.
    """

    def __init__(self, sources: Sequence[SongSource], config: DatasetConfig = DatasetConfig(),
                 description: str = "the dataset"):
        super().__init__()
        if not sources:
            raise MixdownError(f"no songs found in {description}")
        songs, self.problems = open_songs(sources, config.skip_bad)
        if config.max_tracks is not None:
            for song in songs:
                if len(song.stems) > config.max_tracks:
                    logger.info("leaving out %s: %d stems > max_tracks %d", song.name, len(song.stems),
                                config.max_tracks)
            songs = [song for song in songs if len(song.stems) <= config.max_tracks]
        if not songs:
            raise MixdownError(f"no usable songs in {description}" + (
                f" ({len(self.problems)} skipped as bad)" if self.problems else ""))
        self.songs: list[Song] = songs
        self.config = config
        self.epoch = 0
        if config.stem_lufs is not None:
            shortest = min(config.segment_frames / self._rate(song) for song in songs)
            if shortest < _GATE_BLOCK_S:
                raise MixdownError(f"stem_lufs needs segments of at least {_GATE_BLOCK_S} s; "
                                   f"segment_frames {config.segment_frames} is {shortest:.3f} s")
        self._segments = self._sequential_segments() if config.mode == "sequential" else None

    def __len__(self) -> int:
        if self._segments is not None:
            return len(self._segments)
        return self.config.segments_per_epoch or len(self.songs)

    def set_epoch(self, epoch: int) -> None:
        """Select the random offsets of ``epoch`` (random mode).

        With ``DataLoader(persistent_workers=True)`` the workers keep the epoch they
        started with; recreate the iterator (the default) for this to reach them.
        """
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, SegmentMeta]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} segments")
        if self._segments is not None:
            song_index, offset = self._segments[index]
            stems, mix = self.read_segment(song_index, offset)
        else:
            song_index = index % len(self.songs)
            offset, stems, mix = self._draw(song_index, np.random.default_rng([self.config.seed, self.epoch, index]))
        return self._item(index, song_index, offset, stems, mix)

    def song_frames(self, song_index: int) -> int:
        """Length of song ``song_index`` in frames at the output rate."""
        song = self.songs[song_index]
        return resampled_length(song.num_frames, song.file_rate, self._rate(song))

    def read_segment(self, song_index: int, offset: int) -> tuple[list[np.ndarray], np.ndarray]:
        """Read one segment of a song at the output rate, as stored.

        Args:
            song_index: Index into :attr:`songs`.
            offset: First frame at the output rate.

        Returns:
            ``(stems, mix)``: one float32 ``(channels, segment_frames)`` array per stem,
            with its file's channel count, and the ``(2, segment_frames)`` mix.
        """
        song = self.songs[song_index]
        return [self._read(song, track.path, offset) for track in song.stems], self._read_mix(song, offset)

    def _rate(self, song: Song) -> int:
        return self.config.sample_rate or song.file_rate

    def _read(self, song: Song, path: Path, offset: int) -> np.ndarray:
        return read_frames(path, song.file_rate, song.num_frames, self._rate(song), offset, self.config.segment_frames)

    def _read_mix(self, song: Song, offset: int) -> np.ndarray:
        mix = self._read(song, song.mix, offset)
        return as_stereo(mix)

    def _offsets(self, song_index: int) -> range:
        """Sequential offsets: hop-spaced, the last segment reaching the song's end."""
        hop = self.config.hop_frames or self.config.segment_frames
        beyond = max(self.song_frames(song_index) - self.config.segment_frames, 0)
        return range(0, -(-beyond // hop) * hop + 1, hop)

    def _silent_stems(self, stems: list[np.ndarray]) -> int:
        return sum(rms_dbfs(stem) < self.config.stem_silence_dbfs for stem in stems)

    def _too_silent(self, silent_stems: int, count: int) -> bool:
        return silent_stems > self.config.max_silent_stem_fraction * count

    def _sequential_segments(self) -> list[tuple[int, int]]:
        segments = [(i, offset) for i in range(len(self.songs)) for offset in self._offsets(i)]
        if not self.config.filter_silence:
            return segments
        kept = []
        for song_index, offset in segments:
            song = self.songs[song_index]
            if rms_dbfs(self._read_mix(song, offset)) < self.config.mix_silence_dbfs:
                continue
            stems = [self._read(song, track.path, offset) for track in song.stems]
            if not self._too_silent(self._silent_stems(stems), len(stems)):
                kept.append((song_index, offset))
        logger.info("sequential segments: kept %d of %d (silence filter)", len(kept), len(segments))
        if not kept:
            raise MixdownError("every segment of the dataset is silent; lower the silence thresholds "
                               "or set filter_silence=False")
        return kept

    def _draw(self, song_index: int, rng: np.random.Generator) -> tuple[int, list[np.ndarray], np.ndarray]:
        """Random mode: an offset whose segment passes the silence filter, or the best of ``max_draws``."""
        config, song = self.config, self.songs[song_index]
        highest = max(self.song_frames(song_index) - config.segment_frames, 0)
        draws = config.max_draws if config.filter_silence else 1
        best: tuple[tuple[int, float], int] | None = None
        for _ in range(draws):
            offset = int(rng.integers(0, highest + 1))
            mix = self._read_mix(song, offset)
            mix_db = rms_dbfs(mix)
            if config.filter_silence and mix_db < config.mix_silence_dbfs:
                score = (-1, mix_db)
            else:
                stems = [self._read(song, track.path, offset) for track in song.stems]
                silent = self._silent_stems(stems)
                if not config.filter_silence or not self._too_silent(silent, len(stems)):
                    return offset, stems, mix
                score = (len(stems) - silent, mix_db)
            if best is None or score > best[0]:
                best = (score, offset)
        offset = best[1]
        stems, mix = self.read_segment(song_index, offset)
        return offset, stems, mix

    def _item(self, index: int, song_index: int, offset: int, stems: list[np.ndarray],
              mix: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, SegmentMeta]:
        song, config = self.songs[song_index], self.config
        width = config.channels or max(stem.shape[0] for stem in stems)
        stereo = [width == 2 and stem.shape[0] == 2 for stem in stems]
        stacked = np.empty((len(stems), width, config.segment_frames), dtype=np.float32)
        for row, stem in zip(stacked, stems, strict=True):
            row[:] = stem.mean(axis=0, keepdims=True) if stem.shape[0] > width else stem  # mono broadcasts
        gains_db = np.zeros(len(stems))
        if config.stem_lufs is not None:
            gains_db = self._loudness_gains_db(stacked, np.array(stereo), self._rate(song))
            stacked *= (10.0 ** (gains_db / 20.0)).astype(np.float32)[:, None, None]
        meta = SegmentMeta(
            song=song.name, stem_names=tuple(t.name for t in song.stems),
            instruments=tuple(t.instrument for t in song.stems), stereo=tuple(stereo), offset_frames=offset,
            sample_rate=self._rate(song), index=index, epoch=self.epoch,
            stem_gain_db=tuple(float(g) for g in gains_db), params=song.params)
        return torch.from_numpy(stacked), torch.from_numpy(np.ascontiguousarray(mix)), meta

    def _loudness_gains_db(self, stems: np.ndarray, stereo: np.ndarray, rate: int) -> np.ndarray:
        """Gain per stem that brings its BS.1770 loudness to ``stem_lufs`` (0 for silent stems)."""
        gains = np.zeros(len(stems))
        for is_stereo, width in ((False, 1), (True, 2)):
            rows = np.flatnonzero(stereo == is_stereo)
            if not rows.size:
                continue
            with torch.no_grad():
                lufs = integrated_loudness(torch.from_numpy(stems[rows, :width].astype(np.float64)), rate).numpy()
            for row, level in zip(rows, lufs, strict=True):
                if math.isfinite(level) and rms_dbfs(stems[row, :width]) >= self.config.stem_silence_dbfs:
                    gains[row] = self.config.stem_lufs - level
        return gains
