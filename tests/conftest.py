"""Shared fixtures: synthetic signals and small audio files under ``tmp_path``."""

from collections.abc import Callable, Iterator
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


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch and one numba thread for a test module (as dataset worker processes run).

    Short test signals gain nothing from thread hand-offs, which on a busy machine cost far
    more than the work itself; results are the same either way.
    """
    import numba
    import torch

    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    yield
    torch.set_num_threads(before[0])
    numba.set_num_threads(before[1])


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


CHROMIUM = Path("/usr/bin/chromium")
"""Debian's chromium, which `.ci/run` installs for the browser tests."""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Flags for a closed network: without the background-networking ones chromium floods refused connections."""


@pytest.fixture(scope="session")
def chromium_browser():
    """A headless Playwright ``Browser`` on Debian's chromium (skips where it is not installed)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
