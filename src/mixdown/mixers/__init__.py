"""Mixing methods. Each is a `Mixer`: a multitrack in, editable `ConsoleParams` out.

Use `get_mixer(name, **options)`; `MIXERS` lists the names. Methods that learn from
data add themselves here as they land, behind the same interface.

Methods that make a mix but no settings (Mix-Wave-U-Net) are `AudioMixer`s instead:
``mix(multitrack) -> (2, samples)``, listed in `AUDIO_MIXERS`, built by `get_audio_mixer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from mixdown.errors import MixdownError
from mixdown.multitrack import Multitrack
from mixdown.params import ConsoleParams


class Mixer(Protocol):
    """Anything that proposes console settings for a multitrack."""

    name: str

    def predict(self, multitrack: Multitrack) -> ConsoleParams:
        """Settings for exactly ``multitrack``'s stems, at its sample rate."""
        ...


def _mono(seed: int | None = None) -> Mixer:
    from mixdown.mixers.baselines import MonoMixer

    return MonoMixer()


def _random(seed: int | None = None) -> Mixer:
    from mixdown.mixers.baselines import RandomMixer

    return RandomMixer(seed=0 if seed is None else seed)


def _rules(seed: int | None = None) -> Mixer:
    from mixdown.mixers.rules import RulesMixer

    return RulesMixer()


def _forest(seed: int | None = None) -> Mixer:
    from mixdown.mixers.forest import ForestMixer

    return ForestMixer()


def _estimator(seed: int | None = None) -> Mixer:
    from mixdown.mixers.estimator import EstimatorMixer

    return EstimatorMixer()


def _dmc(seed: int | None = None) -> Mixer:
    from mixdown.mixers.dmc import DMCMixer

    return DMCMixer()


MIXERS: dict[str, Callable[..., Mixer]] = {"mono": _mono, "random": _random, "rules": _rules, "forest": _forest,
                                           "estimator": _estimator, "dmc": _dmc}


def get_mixer(name: str, seed: int | None = None) -> Mixer:
    """The mixer called ``name`` (see `MIXERS`); ``seed`` matters to stochastic ones."""
    try:
        factory = MIXERS[name]
    except KeyError:
        if name in AUDIO_MIXERS:
            raise MixdownError(f"{name!r} makes a mix but no console settings; it is an audio mixer "
                               "(get_audio_mixer)") from None
        raise MixdownError(f"unknown method {name!r}; choose one of {', '.join(MIXERS)}") from None
    return factory(seed=seed)


class AudioMixer(Protocol):
    """Anything that makes a stereo mix of a multitrack directly, with no console settings."""

    name: str

    def mix(self, multitrack: Multitrack, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """The mix, float32 ``(2, multitrack.num_frames)`` at its sample rate; ``progress(done, total)``."""
        ...


def _waveunet(seed: int | None = None) -> AudioMixer:
    from mixdown.mixers.waveunet import WaveUNetMixer

    return WaveUNetMixer()


AUDIO_MIXERS: dict[str, Callable[..., AudioMixer]] = {"waveunet": _waveunet}
"""Audio-only methods: no `Mixer` (they make no settings), so apart from `MIXERS`."""


def get_audio_mixer(name: str, seed: int | None = None) -> AudioMixer:
    """The audio-only mixer called ``name`` (see `AUDIO_MIXERS`)."""
    try:
        factory = AUDIO_MIXERS[name]
    except KeyError:
        raise MixdownError(f"unknown audio-only method {name!r}; choose one of {', '.join(AUDIO_MIXERS)}") from None
    return factory(seed=seed)
