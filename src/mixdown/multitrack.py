"""Multitracks: named stems at one sample rate, each with an instrument class.

A :class:`Multitrack` holds its stems either in memory, as float32 arrays of shape
``(channels, num_frames)``, or as file paths that are streamed on demand, so that
large sessions stay small. Either way :meth:`Multitrack.iter_chunks` yields
``(tracks, 2, frames)`` blocks, mono stems duplicated to both channels.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixdown.audio import (
    PARTIAL_PATTERN,
    SUPPORTED_EXTENSIONS,
    AudioInfo,
    ChunkedReader,
    load_audio,
    peak_dbfs,
    probe_audio,
    resample,
    resampled_length,
)
from mixdown.errors import AudioError, MixdownError
from mixdown.limits import DEFAULT_MAX_STEMS, MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ
from mixdown.safeload import loads_yaml, read_text

logger = logging.getLogger(__name__)

INSTRUMENT_CLASSES = (
    "kick",
    "snare",
    "hihat",
    "tom",
    "overhead",
    "room",
    "bass",
    "guitar",
    "keys",
    "vocal",
    "other",
)

# Name tokens per class, in priority order: when a name holds tokens of several
# classes the first class wins ("Bass Drum" -> kick, "SynthBass" -> bass,
# "Piano Amb" -> keys). Cymbals go with the hihat unless the name says overhead
# ("Cymbal OH" -> overhead). Tokens are matched singly, as adjacent pairs joined
# ("bass" + "drum" -> "bassdrum") and with a plural "s" dropped.
_CLASS_TOKENS: dict[str, frozenset[str]] = {
    "kick": frozenset({"kick", "kik", "bd", "bassdrum", "kickdrum"}),
    "snare": frozenset({"snare", "snr", "sn", "sd"}),
    "tom": frozenset({"tom", "floortom", "floor", "racktom", "rack"}),
    "overhead": frozenset({"overhead", "oh", "ovh"}),
    "hihat": frozenset({"hihat", "hh", "hat", "ride", "crash", "cymbal", "cym"}),
    "bass": frozenset({"bass", "bassgtr", "bassguitar", "sub", "subbass", "synthbass"}),
    "vocal": frozenset(
        {"vocal", "vox", "voice", "leadvocal", "leadvox", "bv", "bgv", "choir", "sing", "singer"}
    ),
    "guitar": frozenset({"guitar", "gtr", "gt"}),
    "keys": frozenset(
        {"keys", "key", "keyboard", "piano", "pno", "organ", "synth", "pad"}
        | {"rhodes", "wurli", "wurlitzer"}
    ),
    "room": frozenset({"room", "amb", "ambience", "ambient"}),
}
_TOKEN_CLASS = {token: cls for cls, tokens in _CLASS_TOKENS.items() for token in tokens}
_PRIORITY = {cls: rank for rank, cls in enumerate(_CLASS_TOKENS)}
_CAMEL_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")

MIN_STEM_DURATION_S = 0.1
SILENCE_DBFS = -90.0
CLIP_LEVEL = 0.999
CLIP_FRACTION = 0.001


def guess_instrument_class(name: str) -> str:
    """Guess a stem's instrument class from its name.

    The name (a supported audio extension is dropped) is split on non-letters and
    camelCase, and the tokens are looked up in a synonym table (``"BassDI"`` ->
    bass, ``"Bass Drum"`` -> kick, ``"OH_L"`` -> overhead, ``"LeadVox"`` -> vocal).
    Cymbals (ride, crash) count as hihat unless the name says overhead.

    Args:
        name: Stem or file name, e.g. ``"01_Kick In.wav"``.

    Returns:
        One of :data:`INSTRUMENT_CLASSES`; ``"other"`` when nothing matches.
    """
    if Path(name).suffix.lower() in SUPPORTED_EXTENSIONS:
        name = Path(name).stem
    words = [word for word in re.split(r"[^A-Za-z]+", name) if word]
    tokens = [token.lower() for word in words for token in _CAMEL_RE.findall(word)]
    candidates = [word.lower() for word in words] + tokens
    candidates += [a + b for a, b in zip(tokens, tokens[1:])]
    classes = [_token_class(token) for token in candidates]
    found = [cls for cls in classes if cls is not None]
    return min(found, key=_PRIORITY.__getitem__) if found else "other"


def _token_class(token: str) -> str | None:
    if token in _TOKEN_CLASS:
        return _TOKEN_CLASS[token]
    if token.endswith("s"):
        return _TOKEN_CLASS.get(token[:-1])
    return None


def load_class_map(path: str | os.PathLike) -> dict[str, str]:
    """Load a YAML or JSON file mapping stem names or glob patterns to classes.

    Example (YAML)::

        "Kick*": kick
        BassDI: bass
        "*vox*": vocal

    Keys match a stem's name (file stem) or file name case-insensitively, exactly
    or as :mod:`fnmatch` patterns; see :func:`load_multitrack`.

    Args:
        path: A ``.yaml``/``.yml``/``.json`` file.

    Returns:
        ``{name or pattern: instrument class}``, classes lower-cased.

    Raises:
        MixdownError: If the file is missing or malformed, or names a class not
            in :data:`INSTRUMENT_CLASSES`.
    """
    path = Path(path)
    data = loads_yaml(read_text(path, "class map"), f"class map {path}", kind="YAML/JSON")
    if not isinstance(data, dict):
        raise MixdownError(
            f"class map {path} must map stem names or glob patterns to instrument classes"
        )
    class_map = {}
    for key, value in data.items():
        if not isinstance(value, str) or value.lower() not in INSTRUMENT_CLASSES:
            raise MixdownError(
                f"class map {path}: {key!r}: {value!r} is not an instrument class "
                f"(one of {', '.join(INSTRUMENT_CLASSES)})"
            )
        class_map[str(key)] = value.lower()
    return class_map


def _mapped_class(path: Path, class_map: Mapping[str, str]) -> str | None:
    """The class ``class_map`` gives a stem file: exact name first, then patterns."""
    names = (path.stem.lower(), path.name.lower())
    lowered = {key.lower(): cls for key, cls in class_map.items()}
    for name in names:
        if name in lowered:
            return lowered[name]
    for pattern, cls in lowered.items():
        if any(fnmatch.fnmatchcase(name, pattern) for name in names):
            return cls
    return None


@dataclass
class Stem:
    """One track of a multitrack.

    Attributes:
        name: Track name (the file stem for stems loaded from files).
        instrument: One of :data:`INSTRUMENT_CLASSES`.
        channels: 1 or 2, as in the source.
        path: Source file, or ``None`` for stems made in memory.
        audio: float32 audio at the multitrack's rate when held in memory, else
            ``None``. Shape ``(channels, num_frames)``.

    Raises:
        MixdownError: If ``instrument`` is not a known class.
        AudioError: If ``channels`` is not 1 or 2 or ``audio`` does not have
            ``channels`` rows.
    """

    name: str
    instrument: str
    channels: int
    path: Path | None = None
    audio: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.instrument not in INSTRUMENT_CLASSES:
            raise MixdownError(
                f"stem {self.name!r}: {self.instrument!r} is not an instrument class "
                f"(one of {', '.join(INSTRUMENT_CLASSES)})"
            )
        if self.channels not in (1, 2):
            raise AudioError(
                f"stem {self.name!r} has {self.channels} channels; "
                "mixdown takes mono or stereo stems"
            )
        if self.audio is not None and (
            self.audio.ndim != 2 or self.audio.shape[0] != self.channels
        ):
            raise AudioError(
                f"stem {self.name!r}: expected audio of shape ({self.channels}, samples), "
                f"got {self.audio.shape}"
            )
        if self.audio is None and self.path is None:
            raise ValueError(f"stem {self.name!r} needs audio or a path")

    @property
    def is_stereo(self) -> bool:
        """Whether the source has two channels."""
        return self.channels == 2


@dataclass
class Multitrack:
    """Named stems of equal length at one sample rate.

    Build one with :meth:`from_arrays` or :func:`load_multitrack`.

    Attributes:
        stems: The tracks, in order.
        sample_rate: Sample rate in Hz.
        num_frames: Length of every stem in frames.

    Raises:
        MixdownError: If there are no stems or two share a name (case-insensitive).
        AudioError: If an in-memory stem is not ``num_frames`` long.
    """

    stems: list[Stem]
    sample_rate: int
    num_frames: int

    def __post_init__(self) -> None:
        if not self.stems:
            raise MixdownError("a multitrack needs at least one stem")
        _check_unique_names([stem.name for stem in self.stems])
        for stem in self.stems:
            if stem.audio is not None and stem.audio.shape[1] != self.num_frames:
                raise AudioError(
                    f"stem {stem.name!r} is {stem.audio.shape[1]} samples long; "
                    f"the other stems are {self.num_frames}"
                )

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, np.ndarray],
        sample_rate: int,
        instruments: Mapping[str, str] | None = None,
    ) -> Multitrack:
        """Build an in-memory multitrack; the arrays are copied to float32.

        Args:
            arrays: ``{name: audio}``, each of shape ``(channels, samples)`` with 1
                or 2 channels and the same number of samples.
            sample_rate: Sample rate in Hz.
            instruments: ``{name: class}``; stems not named here get
                :func:`guess_instrument_class`.

        Returns:
            The multitrack.

        Raises:
            AudioError: If an array has the wrong shape, holds NaN or inf, or the
                lengths differ.
            MixdownError: If ``instruments`` names an unknown stem or class.
        """
        instruments = dict(instruments or {})
        unknown = sorted(set(instruments) - set(arrays))
        if unknown:
            raise MixdownError(f"instruments given for unknown stems: {', '.join(unknown)}")
        stems = []
        for name, array in arrays.items():
            audio = np.array(array, dtype=np.float32)
            if audio.ndim != 2:
                raise AudioError(
                    f"stem {name!r}: expected audio of shape (channels, samples), "
                    f"got {audio.shape}"
                )
            if not np.isfinite(audio).all():
                raise AudioError(f"stem {name!r} contains NaN or infinite samples")
            instrument = instruments.get(name) or guess_instrument_class(name)
            stems.append(Stem(name, instrument, audio.shape[0], audio=audio))
        num_frames = stems[0].audio.shape[1] if stems else 0
        return cls(stems, sample_rate, num_frames)

    @property
    def num_tracks(self) -> int:
        """Number of stems."""
        return len(self.stems)

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.sample_rate

    @property
    def names(self) -> list[str]:
        """Stem names, in track order."""
        return [stem.name for stem in self.stems]

    @property
    def instruments(self) -> list[str]:
        """Instrument classes, in track order."""
        return [stem.instrument for stem in self.stems]

    def stereo_mask(self) -> np.ndarray:
        """Which stems are stereo.

        Returns:
            Boolean array of shape ``(tracks,)``.
        """
        return np.array([stem.is_stereo for stem in self.stems], dtype=bool)

    def iter_chunks(self, chunk_frames: int) -> Iterator[np.ndarray]:
        """Yield the multitrack in consecutive blocks.

        File-backed stems are streamed, one open file per stem; the files are
        closed when the iteration ends, fails or is abandoned.

        Args:
            chunk_frames: Frames per block; the last block may be shorter.

        Yields:
            float32 blocks of shape ``(tracks, 2, frames)`` covering ``num_frames``;
            mono stems are duplicated to both channels.
        """
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be positive, got {chunk_frames}")
        with ExitStack() as stack:
            readers = [
                None
                if stem.audio is not None
                else stack.enter_context(
                    ChunkedReader(stem.path, self.sample_rate, self.num_frames)
                )
                for stem in self.stems
            ]
            for start in range(0, self.num_frames, chunk_frames):
                frames = min(chunk_frames, self.num_frames - start)
                block = np.empty((self.num_tracks, 2, frames), dtype=np.float32)
                for track, (stem, reader) in enumerate(zip(self.stems, readers)):
                    # A (1, frames) mono stem broadcasts to both channels.
                    block[track] = (
                        stem.audio[:, start : start + frames]
                        if reader is None
                        else reader.read(frames)
                    )
                yield block

    def to_array(self, chunk_frames: int = 1 << 18) -> np.ndarray:
        """The whole multitrack as one array.

        Args:
            chunk_frames: Block size used to stream file-backed stems.

        Returns:
            float32 array of shape ``(tracks, 2, num_frames)``; mono stems are
            duplicated to both channels.
        """
        out = np.empty((self.num_tracks, 2, self.num_frames), dtype=np.float32)
        start = 0
        for block in self.iter_chunks(chunk_frames):
            out[..., start : start + block.shape[-1]] = block
            start += block.shape[-1]
        return out

    def stem_audio(self, index: int) -> np.ndarray:
        """One stem's full audio, read from its file if it is not in memory.

        Args:
            index: Track index.

        Returns:
            float32 audio of shape ``(channels, num_frames)``. For in-memory stems
            this is the stored array itself; do not modify it.
        """
        stem = self.stems[index]
        if stem.audio is not None:
            return stem.audio
        with ChunkedReader(stem.path, self.sample_rate, self.num_frames) as reader:
            return reader.read(self.num_frames)

    def with_instruments(self, mapping: Mapping[str, str]) -> Multitrack:
        """A copy with some instrument classes replaced; audio is shared, not copied.

        Args:
            mapping: ``{stem name: class}``.

        Returns:
            The new multitrack.

        Raises:
            MixdownError: If ``mapping`` names an unknown stem or class.
        """
        unknown = sorted(set(mapping) - set(self.names))
        if unknown:
            raise MixdownError(f"no stems named {', '.join(unknown)}")
        stems = [
            dataclasses.replace(stem, instrument=mapping.get(stem.name, stem.instrument))
            for stem in self.stems
        ]
        return Multitrack(stems, self.sample_rate, self.num_frames)


def load_multitrack(
    folder: str | os.PathLike,
    sample_rate: int | None = None,
    class_map: Mapping[str, str] | None = None,
    max_stems: int = DEFAULT_MAX_STEMS,
    in_memory: bool = True,
    on_length_mismatch: str = "pad",
    allow_truncated: bool = False,
) -> Multitrack:
    """Load every audio file in a folder as one stem.

    Files with a supported extension are taken in case-insensitive name order;
    hidden files are ignored and other files skipped (logged at INFO level).

    Stems at a rate other than the target are resampled with a ``UserWarning``.
    The target is ``sample_rate`` if given, else the most common rate among the
    stems (the higher one on a tie). Silent stems (peak below -90 dBFS) and
    clipped ones (at least 0.1 % of samples at ``|x| >= 0.999``) are kept with a
    ``UserWarning``; these level checks need the audio, so they only run when
    ``in_memory`` is true.

    Args:
        folder: Folder of stems.
        sample_rate: Target rate in Hz, or ``None`` for the most common one.
        class_map: ``{stem name or glob pattern: class}`` (see
            :func:`load_class_map`); an exact name match wins over patterns, then
            the first matching pattern. Unmapped stems get
            :func:`guess_instrument_class`.
        max_stems: Most stems accepted.
        in_memory: Load the audio into :attr:`Stem.audio`; if false only the
            headers are read and the audio is streamed when used.
        on_length_mismatch: ``"pad"`` pads shorter stems with silence to the
            longest, with a ``UserWarning``; ``"error"`` raises.
        allow_truncated: Take truncated files (fewer frames than their header
            says) as the frames they hold, with a ``UserWarning``, instead of
            raising (see `mixdown.audio.probe_audio`).

    Returns:
        The multitrack.

    Raises:
        AudioError: If the folder is missing or has no stems, a file is corrupt,
            is truncated, has more than two channels or is shorter than 0.1 s,
            there are more than ``max_stems`` stems, the rate to mix at is outside
            `mixdown.limits.MIN_SAMPLE_RATE_HZ`..`mixdown.limits.MAX_SAMPLE_RATE_HZ`
            (resample with ``sample_rate``), or lengths differ and
            ``on_length_mismatch="error"``.
        MixdownError: If two stems share a name (case-insensitive) or
            ``class_map`` names an unknown class.
    """
    if on_length_mismatch not in ("pad", "error"):
        raise ValueError(
            f"on_length_mismatch must be 'pad' or 'error', got {on_length_mismatch!r}"
        )
    folder = Path(folder)
    if sample_rate is not None and not MIN_SAMPLE_RATE_HZ <= sample_rate <= MAX_SAMPLE_RATE_HZ:
        raise AudioError(f"sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz")
    files = stem_files(folder)
    if len(files) > max_stems:
        raise AudioError(
            f"{folder}: found {len(files)} stems; the limit is {max_stems} (--max-stems)"
        )
    _check_unique_names([path.stem for path in files], [path.name for path in files])
    infos = [probe_audio(path, allow_truncated=allow_truncated) for path in files]
    for info in infos:
        if info.frames < MIN_STEM_DURATION_S * info.sample_rate:
            length = "1 sample" if info.frames == 1 else f"{info.frames} samples"
            raise AudioError(
                f"{info.path} is {length} long; stems must be at least {MIN_STEM_DURATION_S} s"
            )

    rate = sample_rate or _most_common_rate(infos)
    if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
        raise AudioError(
            f"{folder}: the stems are at {rate} Hz; mixdown mixes at {MIN_SAMPLE_RATE_HZ}.."
            f"{MAX_SAMPLE_RATE_HZ} Hz, so pass --sample-rate (e.g. "
            f"{min(max(rate, MIN_SAMPLE_RATE_HZ), MAX_SAMPLE_RATE_HZ)}) to resample them"
        )
    for info in infos:
        if info.sample_rate != rate:
            warnings.warn(
                f"{info.path.name}: resampling {info.sample_rate} Hz -> {rate} Hz",
                UserWarning,
                stacklevel=2,
            )
    lengths = [resampled_length(info.frames, info.sample_rate, rate) for info in infos]
    num_frames = max(lengths)
    shorter = [
        f"{info.path.name} by {(num_frames - length) / rate:.3f} s ({num_frames - length} samples)"
        for info, length in zip(infos, lengths)
        if length < num_frames
    ]
    if shorter and on_length_mismatch == "error":
        raise AudioError(
            f"{folder}: stems differ in length; shorter than the longest: " + ", ".join(shorter)
        )
    if shorter:
        warnings.warn(
            f"padding stems with silence to {num_frames / rate:.3f} s: " + ", ".join(shorter),
            UserWarning,
            stacklevel=2,
        )

    class_map = class_map or {}
    stems = [
        Stem(
            name=info.path.stem,
            instrument=_mapped_class(info.path, class_map)
            or guess_instrument_class(info.path.stem),
            channels=info.channels,
            path=info.path,
            audio=_load_stem(info, rate, num_frames, allow_truncated) if in_memory else None,
        )
        for info in infos
    ]
    logger.info("loaded %d stems from %s at %d Hz", len(stems), folder, rate)
    return Multitrack(stems, rate, num_frames)


def stem_files(folder: str | os.PathLike) -> list[Path]:
    """The stem files `load_multitrack` takes from ``folder``, in its order.

    Hidden files, the temporary files of interrupted writes
    (`mixdown.audio.PARTIAL_PATTERN`) and files of other types are skipped.

    Raises:
        AudioError: If the folder is missing, not a folder, or holds no stems.
    """
    folder = Path(folder)
    if not folder.exists():
        raise AudioError(f"stem folder {folder} does not exist")
    if not folder.is_dir():
        raise AudioError(f"{folder} is not a directory")
    files = []
    for path in sorted(folder.iterdir(), key=lambda p: (p.name.lower(), p.name)):
        if path.name.startswith(".") or PARTIAL_PATTERN.match(path.name):
            continue
        if path.suffix.lower() in SUPPORTED_EXTENSIONS and path.is_file():
            files.append(path)
        else:
            logger.info("skipping %s: not a supported audio file", path)
    if not files:
        raise AudioError(
            f"no audio stems ({'/'.join(SUPPORTED_EXTENSIONS)}) found in {folder}"
        )
    return files


def _check_unique_names(names: list[str], labels: list[str] | None = None) -> None:
    """Raise if two names are equal ignoring case; ``labels`` name them in the message."""
    labels = labels or names
    seen: dict[str, str] = {}
    for name, label in zip(names, labels):
        if name.lower() in seen:
            raise MixdownError(
                f"duplicate stem name {name!r}: {seen[name.lower()]} and {label}"
            )
        seen[name.lower()] = label


def _most_common_rate(infos: list[AudioInfo]) -> int:
    counts = Counter(info.sample_rate for info in infos)
    return max(counts, key=lambda rate: (counts[rate], rate))


def _load_stem(info: AudioInfo, rate: int, num_frames: int, allow_truncated: bool = False) -> np.ndarray:
    """Load, check levels, resample and pad one stem to ``(channels, num_frames)``."""
    with warnings.catch_warnings():  # probe_audio has warned about truncation already
        warnings.simplefilter("ignore", UserWarning)
        audio, source_rate = load_audio(info.path, allow_truncated=allow_truncated)
    peak = peak_dbfs(audio)
    if peak < SILENCE_DBFS:
        warnings.warn(
            f"{info.path.name} is silent (peak {peak:.1f} dBFS)", UserWarning, stacklevel=4
        )
    clipped = float(np.mean(np.abs(audio) >= CLIP_LEVEL))
    if clipped >= CLIP_FRACTION:
        warnings.warn(
            f"{info.path.name} looks clipped ({clipped:.1%} of samples at full scale)",
            UserWarning,
            stacklevel=4,
        )
    audio = resample(audio, source_rate, rate)
    return np.pad(audio, ((0, 0), (0, num_frames - audio.shape[1])))


def info_table(multitrack: Multitrack) -> list[dict]:
    """Per-stem summary for ``mixdown info``.

    Args:
        multitrack: The multitrack; file-backed stems are read one at a time.

    Returns:
        One dict per stem with keys ``name``, ``instrument``, ``channels``,
        ``duration_s``, ``peak_dbfs`` and ``loudness_lufs`` (ITU-R BS.1770
        integrated loudness by the console's meter, `mixdown.dsp.loudness.loudness_lufs`;
        ``-inf`` for silent stems and stems shorter than one 400 ms gating block).
    """
    from mixdown.dsp.loudness import loudness_lufs

    rows = []
    for index, stem in enumerate(multitrack.stems):
        audio = multitrack.stem_audio(index)
        peak = peak_dbfs(audio)
        silent = peak < SILENCE_DBFS
        rows.append(
            {
                "name": stem.name,
                "instrument": stem.instrument,
                "channels": stem.channels,
                "duration_s": multitrack.duration_s,
                "peak_dbfs": peak,
                "loudness_lufs": float("-inf") if silent else loudness_lufs(audio, multitrack.sample_rate),
            }
        )
    return rows

