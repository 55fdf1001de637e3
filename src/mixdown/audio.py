"""Audio file I/O: probing, loading, resampling, streaming and atomic writing.

Every signal is a float32 array of shape ``(channels, samples)`` with one or two
channels. Bad files raise :class:`~mixdown.errors.AudioError` with a one-line
message that names the file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from mixdown.errors import AudioError

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS = (".wav", ".flac", ".aif", ".aiff")
"""File extensions mixdown reads and writes (matched case-insensitively)."""

_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".aif": "AIFF", ".aiff": "AIFF"}
_RESAMPLE_QUALITY = "HQ"

# Read once at import: os.umask can only be read by setting it, which is not thread-safe.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@dataclass(frozen=True)
class AudioInfo:
    """Header information of an audio file.

    Attributes:
        path: The file.
        sample_rate: Sample rate in Hz.
        channels: Number of channels (1 or 2).
        frames: Number of samples per channel.
    """

    path: Path
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate


def probe_audio(path: str | os.PathLike) -> AudioInfo:
    """Read an audio file's header and check that mixdown can use it.

    Args:
        path: Audio file.

    Returns:
        The file's :class:`AudioInfo`.

    Raises:
        AudioError: If the file is missing, unreadable or corrupt, has no frames, or
            has more than two channels.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        info = sf.info(str(path))
    except RuntimeError as err:  # soundfile.LibsndfileError subclasses RuntimeError
        raise AudioError(f"{path}: cannot read audio ({_one_line(err)})") from err
    if info.frames <= 0:
        raise AudioError(f"{path}: contains no audio frames")
    if info.channels > 2:
        raise AudioError(
            f"{path} has {info.channels} channels; mixdown takes mono or stereo stems"
        )
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames))


def load_audio(
    path: str | os.PathLike, sample_rate: int | None = None
) -> tuple[np.ndarray, int]:
    """Load a whole audio file.

    Args:
        path: Audio file.
        sample_rate: Target rate in Hz; the audio is resampled with :func:`resample`
            when it differs from the file's rate. ``None`` keeps the file's rate.

    Returns:
        ``(audio, rate)``: float32 audio of shape ``(channels, samples)`` and its
        rate in Hz. Integer formats decode to [-1, 1]; float files are returned
        as stored.

    Raises:
        AudioError: As :func:`probe_audio`, or if the file contains NaN or inf.
    """
    info = probe_audio(path)
    try:
        data, rate = sf.read(str(info.path), dtype="float32", always_2d=True)
    except RuntimeError as err:
        raise AudioError(f"{info.path}: cannot read audio ({_one_line(err)})") from err
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

    Raises:
        AudioError: As :func:`probe_audio`; :meth:`read` raises it if the file
            contains NaN or inf.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, total_frames: int):
        self.info = probe_audio(path)
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
        except RuntimeError as err:
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
        block = self._file.read(frames_in, dtype="float32", always_2d=True)
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

    The temporary file is hidden, lives in ``path``'s directory and has the same
    extension. If the body raises, it is removed and ``path`` is left untouched.

    Args:
        path: Final destination.

    Yields:
        The temporary path to write to.
    """
    path = Path(path)
    with tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix, delete=False
    ) as tmp_file:
        tmp = Path(tmp_file.name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # NamedTemporaryFile creates files as 0600
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
    except (RuntimeError, ValueError, OSError) as err:
        raise AudioError(f"{path}: cannot write audio ({_one_line(err)})") from err
    logger.debug("wrote %s (%d Hz, %s)", path, sample_rate, subtype)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text atomically (see :func:`atomic_path`).

    Args:
        path: Destination.
        text: Content.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


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
