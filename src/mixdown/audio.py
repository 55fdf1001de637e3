"""Audio file I/O: probing, loading, resampling, streaming and atomic writing.

Every signal is a float32 array of shape ``(channels, samples)`` with one or two
channels. Bad files raise :class:`~mixdown.errors.AudioError` with a one-line
message that names the file.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from mixdown.errors import AudioError, MixdownError
from mixdown.limits import MAX_FILE_RATE_HZ, MIN_FILE_RATE_HZ

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS = (".wav", ".flac", ".aif", ".aiff")
"""File extensions mixdown reads and writes (matched case-insensitively)."""

_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".aif": "AIFF", ".aiff": "AIFF"}
_RESAMPLE_QUALITY = "HQ"

PARTIAL_PATTERN = re.compile(r"^.*\.mixdown-partial-(?P<pid>[0-9]+)-[0-9a-f]{8}(\.[^.]*)?$")
"""Names of the temporary files of `atomic_path`: ``NAME.mixdown-partial-PID-XXXXXXXX.EXT``.

Visible on purpose: a run killed before it could clean up (SIGKILL, power loss) leaves
one in the output's folder, where anyone can see it and the next write into that
folder removes it (`sweep_partial_files`) once process PID is gone. Stem folders and
datasets skip these names."""


@dataclass(frozen=True)
class AudioInfo:
    """Header information of an audio file.

    Attributes:
        path: The file.
        sample_rate: Sample rate in Hz.
        channels: Number of channels (1 or 2).
        frames: Number of samples per channel (that the file holds).
        declared_frames: What the header promises (WAV and AIFF), or None where it
            says nothing more than ``frames``; not compared.
    """

    path: Path
    sample_rate: int
    channels: int
    frames: int
    declared_frames: int | None = field(default=None, compare=False)

    @property
    def truncated(self) -> bool:
        """Whether the header promises more frames than the file holds."""
        return self.declared_frames is not None and self.declared_frames > self.frames

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate


def probe_audio(path: str | os.PathLike, allow_truncated: bool = False) -> AudioInfo:
    """Read an audio file's header and check that mixdown can use it.

    Args:
        path: Audio file.
        allow_truncated: Accept a file that holds fewer frames than its header says
            (cut short by a failed copy or download), as the frames it holds, with a
            ``UserWarning``; otherwise it is an error.

    Returns:
        The file's :class:`AudioInfo`.

    Raises:
        AudioError: If the file is missing, unreadable or corrupt, truncated, has no
            frames, more than two channels or a rate outside
            `mixdown.limits.MIN_FILE_RATE_HZ`..`mixdown.limits.MAX_FILE_RATE_HZ`.
    """
    result = _probe(Path(path))
    if result.truncated:
        message = (f"{result.path} is truncated: its header promises {result.declared_frames} frames, "
                   f"the file holds {result.frames}")
        if not allow_truncated:
            raise AudioError(f"{message} (pass --allow-truncated to use what it holds)")
        warnings.warn(f"{message}; using those", UserWarning, stacklevel=2)
    return result


def _probe(path: Path) -> AudioInfo:
    """`probe_audio` without the truncation policy (the header's promise is in the result)."""
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        info = sf.info(str(path))
    except RuntimeError as err:  # soundfile.LibsndfileError subclasses RuntimeError
        raise AudioError(f"{path}: cannot read audio ({_one_line(err)})") from err
    except (OSError, ValueError, OverflowError) as err:
        raise AudioError(f"{path}: cannot read audio ({_one_line(err)})") from err
    if info.frames <= 0:
        raise AudioError(f"{path}: contains no audio frames")
    if info.channels > 2:
        raise AudioError(
            f"{path} has {info.channels} channels; mixdown takes mono or stereo stems"
        )
    if not MIN_FILE_RATE_HZ <= info.samplerate <= MAX_FILE_RATE_HZ:
        raise AudioError(
            f"{path}: sample rate {info.samplerate} Hz; mixdown reads files at "
            f"{MIN_FILE_RATE_HZ}..{MAX_FILE_RATE_HZ} Hz"
        )
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames), _declared_frames(path))


_MAX_CHUNKS = 4096  # chunks walked in a RIFF / AIFF header before giving up


def _declared_frames(path: Path) -> int | None:
    """Frames a WAV (RIFF, RIFX, RF64) or AIFF header declares; None for other formats or unknown sizes."""
    try:
        with open(path, "rb") as file:
            head = file.read(12)
            if len(head) < 12:
                return None
            kind, form = head[:4], head[8:12]
            if kind in (b"RIFF", b"RIFX", b"RF64") and form == b"WAVE":
                return _wav_frames(file, "<" if kind != b"RIFX" else ">", kind == b"RF64")
            if kind == b"FORM" and form in (b"AIFF", b"AIFC"):
                return _aiff_frames(file)
    except (OSError, struct.error):
        return None
    return None


def _chunks(file, order: str) -> Iterator[tuple[bytes, int, int]]:
    """``(id, size, data offset)`` of the chunks after a 12-byte RIFF/AIFF header."""
    offset = 12
    for _ in range(_MAX_CHUNKS):
        file.seek(offset)
        header = file.read(8)
        if len(header) < 8:
            return
        chunk, size = header[:4], struct.unpack(order + "I", header[4:])[0]
        yield chunk, size, offset + 8
        offset += 8 + size + (size & 1)


def _wav_frames(file, order: str, rf64: bool) -> int | None:
    block_align, data_size = None, None
    for chunk, size, start in _chunks(file, order):
        if chunk == b"ds64" and rf64:
            file.seek(start + 8)
            data_size = struct.unpack(order + "Q", file.read(8))[0]
        elif chunk == b"fmt ":
            file.seek(start + 12)
            block_align = struct.unpack(order + "H", file.read(2))[0]
        elif chunk == b"data":
            if not rf64 or data_size is None:
                data_size = size
            break
    if not block_align or data_size is None or data_size in (0, 0xFFFFFFFF):
        return None  # streamed WAVs write 0 or 0xFFFFFFFF for "unknown"
    return data_size // block_align


def _aiff_frames(file) -> int | None:
    for chunk, _size, start in _chunks(file, ">"):
        if chunk == b"COMM":
            file.seek(start + 2)
            return struct.unpack(">I", file.read(4))[0] or None
    return None


def load_audio(
    path: str | os.PathLike, sample_rate: int | None = None, allow_truncated: bool = False
) -> tuple[np.ndarray, int]:
    """Load a whole audio file.

    Args:
        path: Audio file.
        sample_rate: Target rate in Hz; the audio is resampled with :func:`resample`
            when it differs from the file's rate. ``None`` keeps the file's rate.
        allow_truncated: See :func:`probe_audio`.

    Returns:
        ``(audio, rate)``: float32 audio of shape ``(channels, samples)`` and its
        rate in Hz. Integer formats decode to [-1, 1]; float files are returned
        as stored.

    Raises:
        AudioError: As :func:`probe_audio`, or if the file contains NaN or inf.
    """
    info = probe_audio(path, allow_truncated=allow_truncated)
    try:
        data, rate = sf.read(str(info.path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as err:
        raise AudioError(f"{info.path}: cannot read audio ({_one_line(err)})") from err
    if len(data) < info.frames and not allow_truncated:
        raise AudioError(f"{info.path} is truncated: its header promises {info.frames} frames, "
                         f"the file holds {len(data)} (pass --allow-truncated to use what it holds)")
    if len(data) == 0:
        raise AudioError(f"{info.path}: contains no audio frames")
    audio = np.ascontiguousarray(data.T)
    _check_finite(audio, info.path)
    if sample_rate is not None and sample_rate != rate:
        audio, rate = resample(audio, rate, sample_rate), sample_rate
    return audio, int(rate)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample with soxr (quality "HQ").

    Args:
        audio: Signal to resample.
        rate_in: Its sample rate in Hz.
        rate_out: Target sample rate in Hz.

    Returns:
        float32 audio at ``rate_out``, :func:`resampled_length` samples long; the
        input itself (as float32) when the rates are equal.

    Shape:
        audio: ``(channels, samples)``; returns ``(channels, samples_out)``.
    """
    if audio.ndim != 2:
        raise ValueError(f"expected audio of shape (channels, samples), got {audio.shape}")
    audio = audio.astype(np.float32, copy=False)
    if rate_in == rate_out:
        return audio
    out = soxr.resample(audio.T, rate_in, rate_out, quality=_RESAMPLE_QUALITY)
    return np.ascontiguousarray(out.T, dtype=np.float32)


def resampled_length(frames: int, rate_in: int, rate_out: int) -> int:
    """Number of frames :func:`resample` returns: ``frames * rate_out / rate_in``
    rounded half up, as soxr does.

    Args:
        frames: Input length in frames.
        rate_in: Input sample rate in Hz.
        rate_out: Output sample rate in Hz.

    Returns:
        Output length in frames.
    """
    return (2 * frames * rate_out + rate_in) // (2 * rate_in)


class ChunkedReader:
    """Stream an audio file in blocks at a target rate with bounded memory.

    The output is exactly ``total_frames`` long: the file is padded with silence
    past its end, or cut. When the file's rate differs from ``sample_rate`` it is
    resampled with a streaming soxr resampler, whose output matches
    :func:`resample` on the whole file.

    Use as a context manager, or call :meth:`close`.

    Args:
        path: Audio file.
        sample_rate: Output sample rate in Hz.
        total_frames: Output length in frames at ``sample_rate``.

    Truncation is not checked here (the multitrack's loader did, see :func:`probe_audio`):
    a file that holds fewer frames than its header says is padded like a short one.

    Raises:
        AudioError: As :func:`probe_audio`; :meth:`read` raises it if the file
            contains NaN or inf or cannot be decoded.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, total_frames: int):
        self.info = _probe(Path(path))
        self.sample_rate = sample_rate
        self.channels = self.info.channels
        self._remaining = total_frames
        self._ratio = self.info.sample_rate / sample_rate
        self._stream = (
            soxr.ResampleStream(
                self.info.sample_rate,
                sample_rate,
                self.channels,
                dtype="float32",
                quality=_RESAMPLE_QUALITY,
            )
            if self.info.sample_rate != sample_rate
            else None
        )
        self._pending = np.zeros((0, self.channels), dtype=np.float32)
        self._eof = False
        try:
            self._file = sf.SoundFile(str(self.info.path))
        except (RuntimeError, OSError, ValueError) as err:
            raise AudioError(
                f"{self.info.path}: cannot read audio ({_one_line(err)})"
            ) from err

    def read(self, frames: int) -> np.ndarray:
        """Read the next block.

        Args:
            frames: Number of frames wanted.

        Returns:
            float32 block of ``min(frames, frames left of total_frames)`` frames,
            zero-padded past the end of the file.

        Shape:
            Returns ``(channels, frames)``.
        """
        n = max(0, min(frames, self._remaining))
        self._remaining -= n
        pieces, have = [self._pending], len(self._pending)
        while have < n and not self._eof:
            block = self._next_block(max(int(np.ceil((n - have) * self._ratio)), 1024))
            pieces.append(block)
            have += len(block)
        pending = np.concatenate(pieces) if len(pieces) > 1 else self._pending
        out = np.zeros((self.channels, n), dtype=np.float32)
        got = min(n, len(pending))
        out[:, :got] = pending[:got].T
        self._pending = pending[got:]
        return out

    def _next_block(self, frames_in: int) -> np.ndarray:
        """Read up to ``frames_in`` source frames; return them at the target rate."""
        try:
            block = self._file.read(frames_in, dtype="float32", always_2d=True)
        except (RuntimeError, OSError, ValueError) as err:
            raise AudioError(f"{self.info.path}: cannot read audio ({_one_line(err)})") from err
        _check_finite(block, self.info.path)
        self._eof = len(block) < frames_in
        if self._stream is None:
            return block
        return self._stream.resample_chunk(block, last=self._eof)

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> ChunkedReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write, then move it onto ``path`` atomically.

    The temporary file lives in ``path``'s folder, with a visible name that ends in the
    same extension (`PARTIAL_PATTERN`). If the body raises (KeyboardInterrupt and the
    CLI's SIGTERM included), it is removed and ``path`` is left untouched; if the
    process is killed outright, the next `atomic_path` into that folder removes it
    (`sweep_partial_files`).

    Args:
        path: Final destination.

    Yields:
        The temporary path to write to.

    Raises:
        MixdownError: If the temporary file cannot be created or moved into place
            (a read-only or missing folder, a full disk), naming ``path``.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    sweep_partial_files(folder)
    stem, suffix = (path.stem, path.suffix) if path.suffix else (path.name, "")
    while True:
        tmp = folder / f"{stem}.mixdown-partial-{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:  # mode 0666 less the umask, like any new file
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
        except OSError as err:
            raise MixdownError(f"{path}: cannot write ({err.strerror or err})") from None
    try:
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError as err:
            raise MixdownError(f"{path}: cannot write ({err.strerror or err})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sweep_partial_files(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of `atomic_path` in ``folder`` whose writing process is gone.

    Returns:
        The files removed.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = PARTIAL_PATTERN.match(entry.name)
        if match is None or _process_alive(int(match["pid"])):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except (OverflowError, ValueError, OSError):
        return False
    return True


def write_audio(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    subtype: str = "PCM_24",
) -> None:
    """Write audio atomically; the format follows the extension.

    Args:
        path: Destination ending in .wav, .flac, .aif or .aiff.
        audio: Signal in [-1, 1]; integer subtypes clip values outside it.
        sample_rate: Sample rate in Hz.
        subtype: soundfile subtype, e.g. ``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``.

    Shape:
        audio: ``(channels, samples)`` with 1 or 2 channels.

    Raises:
        AudioError: If the extension is unsupported, the audio is not mono or
            stereo, contains NaN or inf, or the file cannot be written.
    """
    path = Path(path)
    file_format = _FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise AudioError(
            f"{path}: unsupported extension; use one of {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise AudioError(
            f"{path}: expected audio of shape (channels, samples) with 1 or 2 channels, "
            f"got {audio.shape}"
        )
    _check_finite(audio, path)
    try:
        with atomic_path(path) as tmp:
            sf.write(str(tmp), audio.T, sample_rate, subtype=subtype, format=file_format)
    except MixdownError as err:
        raise AudioError(str(err)) from None
    except (RuntimeError, ValueError, OSError) as err:
        raise AudioError(f"{path}: cannot write audio ({_one_line(err)})") from err
    logger.debug("wrote %s (%d Hz, %s)", path, sample_rate, subtype)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text atomically (see :func:`atomic_path`).

    Args:
        path: Destination.
        text: Content.

    Raises:
        MixdownError: If the file cannot be written, naming it.
    """
    with atomic_path(path) as tmp:
        try:
            tmp.write_text(text, encoding="utf-8")
        except OSError as err:
            raise MixdownError(f"{path}: cannot write ({err.strerror or err})") from None


def as_stereo(audio: np.ndarray) -> np.ndarray:
    """``(2, samples)``: a mono ``(1, samples)`` signal duplicated, a stereo one as it is."""
    return np.repeat(audio, 2, axis=0) if audio.shape[0] == 1 else audio


def peak_dbfs(audio: np.ndarray) -> float:
    """Sample peak in dBFS.

    Args:
        audio: Any signal, e.g. ``(channels, samples)``.

    Returns:
        ``20 * log10(max |audio|)``; ``-inf`` for silence or an empty array.
    """
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 20.0 * float(np.log10(peak)) if peak > 0.0 else float("-inf")


def _check_finite(audio: np.ndarray, path: Path) -> None:
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())
