"""Reference points every method must beat: a plain sum, and random settings."""

from __future__ import annotations

import numpy as np

from mixdown.multitrack import Multitrack
from mixdown.params import ChannelParams, CompressorParams, ConsoleParams, EQBand, clamp_freq_hz, default_channel


class MonoMixer:
    """Every stem at unity gain, centred, unprocessed; only the master normalises loudness."""

    name = "mono"

    def predict(self, multitrack: Multitrack) -> ConsoleParams:
        channels = [default_channel(n, i) for n, i in zip(multitrack.names, multitrack.instruments, strict=True)]
        return ConsoleParams(channels=channels, sample_rate=multitrack.sample_rate, method=self.name)


class RandomMixer:
    """Settings drawn uniformly from plausible ranges, reproducible from ``seed``.

    Gains in [-20, 0] dB, pans in [-1, 1], a low shelf, a bell and a high shelf of up to
    +-9 dB, a compressor half of the time, and a reverb send in [-40, -10] dB.
    """

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def predict(self, multitrack: Multitrack) -> ConsoleParams:
        rng = np.random.default_rng(self.seed)
        channels = []
        for name, instrument in zip(multitrack.names, multitrack.instruments, strict=True):
            r = lambda lo, hi: round(float(rng.uniform(lo, hi)), 2)  # noqa: E731
            compressor = None
            if rng.random() < 0.5:
                compressor = CompressorParams(threshold_db=r(-40, -5), ratio=r(1.5, 8), attack_ms=r(1, 50),
                                              release_ms=r(30, 500), knee_db=r(0, 12), makeup_db=r(0, 6))
            channels.append(ChannelParams(
                name=name, instrument=instrument, gain_db=r(-20, 0), pan=r(-1, 1),
                eq=[EQBand("low_shelf", r(60, 250), r(-9, 9), 0.707),
                    EQBand("peak", round(float(np.exp(rng.uniform(np.log(200), np.log(5000)))), 1), r(-9, 9), r(0.5, 3)),
                    EQBand("high_shelf", clamp_freq_hz(r(3000, 12000), multitrack.sample_rate), r(-9, 9), 0.707)],
                compressor=compressor, reverb_send_db=r(-40, -10)))
        return ConsoleParams(channels=channels, sample_rate=multitrack.sample_rate, method=self.name)
