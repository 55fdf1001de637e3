"""The one way to mix: stems and a method in, a stereo mix and its settings out.

Every front end (CLI, studio, listening-test builder, evaluation) calls `mix` (or
`propose`, when it renders the settings itself), so every method is available
everywhere on equal terms::

    from mixdown.api import mix
    result = mix("path/to/stems", method="rules")
    result.mix        # float32 (2, frames) at the stems' rate
    result.params     # ConsoleParams (None for audio-only methods such as waveunet)
    result.info       # timings and method-specific figures

Progress is reported through a callback ``progress(stage, done, total)``, where
``stage`` names the work (``"mixing (dmc)"``, ``"rendering"``); nothing here prints.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixdown.errors import MixdownError
from mixdown.mixers import METHODS, Method, MethodOutput, get_method
from mixdown.multitrack import Multitrack, load_multitrack
from mixdown.params import ConsoleParams

StageProgress = Callable[[str, float, float], None]
"""Called with ``(stage, done, total)``."""


@dataclass
class MixResult:
    """What `mix` returns.

    Attributes:
        mix: float32 ``(2, frames)`` at the stems' sample rate.
        params: the settings that rendered it, or None for audio-only methods.
        info: ``method``, ``method_s`` (time the method took), ``render_s`` (NaN for
            audio-only methods), and whatever the method reports (e.g. reverse's losses).
    """

    mix: np.ndarray
    params: ConsoleParams | None
    info: dict[str, Any] = field(default_factory=dict)


def propose(multitrack: Multitrack, method: str | Method = "rules", *,
            target: np.ndarray | None = None, reference: np.ndarray | None = None,
            progress: StageProgress | None = None, **options: Any) -> MethodOutput:
    """Run a method without rendering its settings (see `mix` for the arguments).

    Returns:
        The method's output; its ``info`` has ``method`` and ``method_s`` added.
    """
    runner = _build(method, options)
    caps = runner.capabilities
    if caps.needs_target and target is None:
        raise MixdownError(f"method {runner.name!r} needs the mix to reproduce (a target mix)")
    if target is not None and not caps.needs_target:
        raise MixdownError(f"method {runner.name!r} does not use a target mix")
    if reference is not None and not caps.takes_reference:
        able = [name for name, info in METHODS.items() if info.capabilities.takes_reference]
        raise MixdownError(f"method {runner.name!r} cannot mix like a reference; methods that can: "
                           f"{', '.join(able) if able else 'none yet'}")
    stage = f"mixing ({runner.name})"
    began = time.perf_counter()
    output = runner.run(multitrack, target=target, reference=reference,
                        progress=None if progress is None else lambda done, total: progress(stage, done, total))
    output.info = {"method": runner.name, "method_s": time.perf_counter() - began, **output.info}
    if output.params is None and output.mix is None:
        raise MixdownError(f"method {runner.name!r} returned neither settings nor a mix")
    return output


def mix(stems: Multitrack | str | os.PathLike, method: str | Method = "rules", *,
        target: np.ndarray | None = None, reference: np.ndarray | None = None,
        progress: StageProgress | None = None, **options: Any) -> MixResult:
    """Mix stems with a method and render its settings through the console.

    Args:
        stems: a `Multitrack`, or a folder of stems (loaded with the defaults of
            `mixdown.multitrack.load_multitrack`).
        method: a name of `mixdown.mixers.METHODS` or a built `Method`.
        target: float32 ``(2, frames)`` mix to reproduce, at the stems' rate and length,
            for methods that need one (``reverse``).
        reference: float32 ``(2, samples)`` song to mix like, for methods that take one.
        progress: optional ``(stage, done, total)`` callback.
        **options: method options (``seed``, ``weights``, ``config``); ``seed`` is passed
            only to the methods that take one.

    Raises:
        MixdownError: unknown method or option, a target or reference the method cannot
            use (or a missing target it needs), or a method that fails.
    """
    from mixdown.console import render

    multitrack = stems if isinstance(stems, Multitrack) else load_multitrack(Path(stems))
    output = propose(multitrack, method, target=target, reference=reference, progress=progress, **options)
    info = dict(output.info)
    if output.params is None:
        audio = np.asarray(output.mix, dtype=np.float32)
        if audio.shape != (2, multitrack.num_frames):
            raise MixdownError(f"method {info['method']!r} returned audio of shape {audio.shape}; expected "
                               f"(2, {multitrack.num_frames})")
        return MixResult(audio, None, {**info, "render_s": float("nan")})
    began = time.perf_counter()
    audio = render(multitrack, output.params,
                   progress=None if progress is None else lambda done, total: progress("rendering", done, total))
    return MixResult(audio, output.params, {**info, "render_s": time.perf_counter() - began})


def _build(method: str | Method, options: dict[str, Any]) -> Method:
    if not isinstance(method, str):
        if options:
            raise MixdownError(f"options {sorted(options)} apply to methods given by name only")
        return method
    return get_method(method, **options)
