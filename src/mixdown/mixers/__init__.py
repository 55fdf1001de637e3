"""Mixing methods. Each is a `Mixer`: a multitrack in, editable `ConsoleParams` out.

Use `get_mixer(name, **options)`; `MIXERS` lists the names. Methods that learn from
data add themselves here as they land, behind the same interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

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


MIXERS: dict[str, Callable[..., Mixer]] = {"mono": _mono, "random": _random, "rules": _rules}


def get_mixer(name: str, seed: int | None = None) -> Mixer:
    """The mixer called ``name`` (see `MIXERS`); ``seed`` matters to stochastic ones."""
    try:
        factory = MIXERS[name]
    except KeyError:
        raise MixdownError(f"unknown method {name!r}; choose one of {', '.join(MIXERS)}") from None
    return factory(seed=seed)
