"""Shared fixtures: synthetic signals and small audio files under ``tmp_path``."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def sine(
    freq_hz: float = 1000.0,
    seconds: float = 0.5,
    sample_rate: int = 44100,
    channels: int = 1,
    amplitude: float = 0.5,
) -> np.ndarray:
    """A float32 sine of shape ``(channels, samples)``."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    wave = amplitude * np.sin(2 * np.pi * freq_hz * t)
    return np.repeat(wave[None], channels, axis=0).astype(np.float32)


@pytest.fixture
def make_sine() -> Callable[..., np.ndarray]:
    """:func:`sine` as a fixture."""
    return sine


@pytest.fixture
def write_stem(tmp_path: Path) -> Callable[..., Path]:
    """Write ``(channels, samples)`` audio to ``tmp_path / name`` and return the path."""

    def write(
        name: str, audio: np.ndarray, sample_rate: int = 44100, subtype: str | None = None
    ) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.asarray(audio).T, sample_rate, subtype=subtype)
        return path

    return write
