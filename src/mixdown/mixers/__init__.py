"""Mixing methods, all behind one `Method` protocol.

A method takes a `Multitrack` (and, if its capabilities say so, the target mix to
reproduce or a reference to mix like) and returns a `MethodOutput`: editable
`ConsoleParams` for the console to render, or, for methods that have no settings
(Mix-Wave-U-Net), the mix itself. `METHODS` lists every method with its capabilities
and a one-line description, known without importing the method's module (so the CLI's
``--help`` stays fast); `get_method` builds one. Front ends do not call methods
directly: `mixdown.api.mix` runs a method and renders its settings.

Adding a method: a module here with a class implementing `Method` (settings-only
methods subclass `SettingsMethod` and write ``predict``), and one `MethodInfo` entry in
`METHODS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from mixdown.errors import MixdownError

if TYPE_CHECKING:  # the registry is imported by the CLI's --help, which must not load numpy or torch
    import numpy as np

    from mixdown.multitrack import Multitrack
    from mixdown.params import ConsoleParams

ProgressCallback = Callable[[float, float], None]
"""Called with ``(done, total)``."""


@dataclass(frozen=True)
class Capabilities:
    """What a method gives and needs.

    Attributes:
        gives_params: it outputs console settings (else only audio).
        needs_target: it needs the mix to reproduce (reverse engineering).
        takes_reference: it can mix in the style of a reference song.
    """

    gives_params: bool = True
    needs_target: bool = False
    takes_reference: bool = False


@dataclass
class MethodOutput:
    """A method's answer: ``params`` to render, or the ``mix`` itself (float32 ``(2, samples)``).

    ``info`` holds method-specific figures worth reporting (e.g. reverse's losses).
    """

    params: ConsoleParams | None = None
    mix: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Method(Protocol):
    """A mixing method.

    Attributes:
        name: its name in `METHODS`.
        capabilities: what it gives and needs.
    """

    name: str
    capabilities: ClassVar[Capabilities]

    def run(self, multitrack: Multitrack, target: np.ndarray | None = None, reference: np.ndarray | None = None,
            progress: ProgressCallback | None = None) -> MethodOutput:
        """Mix ``multitrack``.

        Args:
            multitrack: the stems.
            target: float32 ``(2, frames)`` mix to reproduce, at the stems' rate and length
                (only for methods that need one).
            reference: float32 ``(2, samples)`` song to mix like (only for methods that take one).
            progress: optional callback.
        """
        ...


class SettingsMethod:
    """Base of methods that only propose settings from the stems: subclasses write `predict`."""

    name: str
    capabilities: ClassVar[Capabilities] = Capabilities()

    def predict(self, multitrack: Multitrack) -> ConsoleParams:
        """Settings for exactly ``multitrack``'s stems, at its sample rate."""
        raise NotImplementedError

    def run(self, multitrack: Multitrack, target: np.ndarray | None = None, reference: np.ndarray | None = None,
            progress: ProgressCallback | None = None) -> MethodOutput:
        return MethodOutput(params=self.predict(multitrack))


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: where its class lives, what it can do, and a one-line description.

    Attributes:
        target: ``"module:Class"``; the class takes the keyword options `get_method` passes.
        capabilities: see `Capabilities`.
        summary: one line for ``--help`` and the studio.
        options: the keyword options the class accepts (others are refused by name).
    """

    target: str
    capabilities: Capabilities
    summary: str
    options: tuple[str, ...] = ()


METHODS: dict[str, MethodInfo] = {
    "mono": MethodInfo("mixdown.mixers.baselines:MonoMixer", Capabilities(),
                       "unity gains, centred, no processing"),
    "random": MethodInfo("mixdown.mixers.baselines:RandomMixer", Capabilities(),
                         "random settings drawn from the schema's training ranges", ("seed",)),
    "rules": MethodInfo("mixdown.mixers.rules:RulesMixer", Capabilities(),
                        "knowledge-engineered rules by instrument class (De Man & Reiss 2013)"),
    "forest": MethodInfo("mixdown.mixers.forest:ForestMixer", Capabilities(),
                         "random forests on audio features predict gains and pans (Moffat & Sandler 2019)"),
    "producer": MethodInfo("mixdown.mixers.producer:ProducerMixer", Capabilities(),
                           "gains and pans learned from real producers' LMMS mixes (forests on stem features)",
                           ("weights",)),
    "estimator": MethodInfo("mixdown.mixers.estimator:EstimatorMixer", Capabilities(),
                            "learned parameter estimator trained through the differentiable console",
                            ("weights",)),
    "dmc": MethodInfo("mixdown.mixers.dmc:DMCMixer", Capabilities(),
                      "Differentiable Mixing Console (Steinmetz et al. 2021)", ("weights",)),
    "waveunet": MethodInfo("mixdown.mixers.waveunet:WaveUNetMixer", Capabilities(gives_params=False),
                           "multi-input Wave-U-Net, audio only (Martinez Ramirez et al.)", ("weights",)),
    "style": MethodInfo("mixdown.mixers.style:StyleMixer", Capabilities(takes_reference=True),
                        "mix like a reference song: reference-conditioned estimator, then style descent "
                        "through the console (after Diff-MST)", ("mode", "model", "weights", "budget_s")),
    "reverse": MethodInfo("mixdown.mixers.reverse:ReverseMethod", Capabilities(needs_target=True),
                          "settings that reproduce a given mix, through the differentiable console",
                          ("config",)),
}
"""Every method by name, in the order tables list them."""


def method_info(name: str) -> MethodInfo:
    """The registry entry of ``name``; `MixdownError` listing the methods if there is none."""
    try:
        return METHODS[name]
    except KeyError:
        raise MixdownError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None


def get_method(name: str, **options: Any) -> Method:
    """Build the method called ``name`` with its options (None values are left out).

    ``seed`` is passed only to the methods that take one (it matters to stochastic ones);
    any other option a method does not take is refused.

    Raises:
        MixdownError: unknown method, unknown option, or a method that cannot be built
            (e.g. its weights are not installed).
    """
    info = method_info(name)
    given = {key: value for key, value in options.items()
             if value is not None and (key != "seed" or "seed" in info.options)}
    unknown = sorted(set(given) - set(info.options))
    if unknown:
        raise MixdownError(f"method {name!r} takes no option {', '.join(unknown)}")
    module, cls = info.target.split(":")
    return getattr(importlib.import_module(module), cls)(**given)
