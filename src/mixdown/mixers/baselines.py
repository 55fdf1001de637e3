"""Reference points every method must beat: a plain sum, and random settings."""

from __future__ import annotations

import math

import numpy as np

from mixdown.mixers import SettingsMethod
from mixdown.multitrack import Multitrack
from mixdown.params import SCHEMA, STANDARD_BANDS, ConsoleParams, ParamSpec, default_channel, parse_dataclass

COMPRESSOR_PROBABILITY = 0.5
"""Chance that a random channel gets a compressor."""


class MonoMixer(SettingsMethod):
    """Every stem at unity gain, centred, unprocessed; only the master normalises loudness."""

    name = "mono"

    def predict(self, multitrack: Multitrack) -> ConsoleParams:
        channels = [default_channel(n, i) for n, i in zip(multitrack.names, multitrack.instruments, strict=True)]
        return ConsoleParams(channels=channels, sample_rate=multitrack.sample_rate, method=self.name)


class RandomMixer(SettingsMethod):
    """Settings drawn from the schema's training ranges, reproducible from ``seed``.

    Every parameter with a training range (`mixdown.params.ParamSpec.train`) is drawn
    uniformly on its scale (logarithmic for frequencies, times and ratios) from that
    range, rounded to its display digits; every channel gets the standard EQ strip
    (`mixdown.params.STANDARD_BANDS`, each band field from its band's range), a
    compressor with probability `COMPRESSOR_PROBABILITY` and a reverb send. Parameters
    without a training range keep their defaults.
    """

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def predict(self, multitrack: Multitrack) -> ConsoleParams:
        rng = np.random.default_rng(self.seed)
        sample_rate = multitrack.sample_rate

        def draw(spec: ParamSpec) -> float:
            if spec.scale == "log":
                return round(math.exp(rng.uniform(math.log(spec.minimum), math.log(spec.maximum))), spec.digits)
            return round(float(rng.uniform(spec.minimum, spec.maximum)), spec.digits)

        def drawn(level: str, group: str) -> dict[str, float]:
            return {spec.key: draw(spec.within(*spec.train)) for spec in SCHEMA
                    if spec.level == level and spec.group == group and spec.train is not None}

        band_specs = [spec for spec in SCHEMA if spec.level == "band"]
        channels = []
        for name, instrument in zip(multitrack.names, multitrack.instruments, strict=True):
            eq = [{"type": band.type, **{spec.key: draw(band.spec(spec.tensor, sample_rate))
                                         for spec in band_specs if spec.tensor in band.train}}
                  for band in STANDARD_BANDS]
            compressor = drawn("channel", "compressor") if rng.random() < COMPRESSOR_PROBABILITY else None
            channels.append({"name": name, "instrument": instrument, **drawn("channel", ""), "eq": eq,
                             "compressor": compressor})
        master = {**drawn("master", ""), "reverb": drawn("master", "reverb")}
        return parse_dataclass(ConsoleParams, {"channels": channels, "master": master, "sample_rate": sample_rate,
                                               "method": self.name}, "random")
