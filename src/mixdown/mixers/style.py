"""Mix like a reference song: the ``style`` method (issue 14; after Diff-MST, Vanka et al. 2024).

The reference is any finished stereo song (another song, any length); it is analysed,
never mixed in (`mixdown.style`). Two modes, one option (``mode``):

* ``learned``: the shipped estimator's settings (`mixdown.mixers.estimator`, the same
  excerpts and averaging) corrected per excerpt by the reference conditioner
  (`mixdown.style.conditioned`, weights ``estimator_reference.pt``);
* ``optimised`` (default): then gradient descent through the console's faders, pans,
  reverb sends and decay on the style distance to the reference
  (`mixdown.style.optimise`), within ``budget_s`` seconds, keeping the best iterate.

Without a reference the conditioner runs with its learned "no reference" input
(`mixdown.style.conditioned`), trained on the same songs: that is "the same method
without a reference", and nothing is optimised. The reference passed to
`run` is at the stems' sample rate (`mixdown.style.reference.load_style_reference`
reads a file at any rate); it is checked (stereo, not silent, at least
`mixdown.style.reference.MIN_REFERENCE_S` long) before any work.
"""

from __future__ import annotations

import math
import os
from typing import ClassVar

import numpy as np
import torch

from mixdown.errors import MixdownError
from mixdown.mixers import Capabilities, MethodOutput, ProgressCallback
from mixdown.multitrack import INSTRUMENT_CLASSES, Multitrack
from mixdown.params import clamp_freq_hz

MODES = ("learned", "optimised")


class StyleMixer:
    """Settings that mix the stems like a reference song (see the module docstring).

    Args:
        mode: ``"learned"`` or ``"optimised"``.
        weights: the conditioner's checkpoint (default: the shipped ``estimator_reference.pt``).
        budget_s: time budget of the optimised mode's descent, seconds.

    Raises:
        MixdownError: an unknown mode, a bad budget, or weights that are missing or unreadable.
    """

    name = "style"
    capabilities: ClassVar[Capabilities] = Capabilities(takes_reference=True)

    def __init__(self, mode: str = "optimised", weights: str | os.PathLike | None = None,
                 budget_s: float | None = None):
        from mixdown.mixers.estimator import EstimatorMixer
        from mixdown.style.conditioned import load_conditioner
        from mixdown.style.optimise import OptimiseConfig
        from mixdown.weights import require

        if mode not in MODES:
            raise MixdownError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        if budget_s is not None and not (isinstance(budget_s, (int, float)) and 0.0 < budget_s <= 3600.0):
            raise MixdownError(f"budget_s must be a number of seconds in (0, 3600], got {budget_s!r}")
        self.mode = mode
        self.estimator = EstimatorMixer()
        self.conditioner = load_conditioner(weights if weights is not None else require("estimator_reference.pt"))
        self.config = OptimiseConfig() if budget_s is None else OptimiseConfig(budget_s=float(budget_s))

    def run(self, multitrack: Multitrack, target: np.ndarray | None = None, reference: np.ndarray | None = None,
            progress: ProgressCallback | None = None) -> MethodOutput:
        from mixdown.style.conditioned import conditioned_estimate, conditioner_inputs
        from mixdown.style.optimise import optimise_style
        from mixdown.style.reference import reference_style

        style = None if reference is None else reference_style(reference, multitrack.sample_rate)
        base = self.estimator.model
        stems, active = self.estimator.analysis_batch(multitrack)
        excerpts, tracks = active.shape
        mask = torch.ones(excerpts, tracks, dtype=torch.bool)
        instruments = torch.tensor([[INSTRUMENT_CLASSES.index(c) for c in multitrack.instruments]] * excerpts)
        stereo = torch.from_numpy(multitrack.stereo_mask())
        with torch.no_grad():
            inputs = conditioner_inputs(base, stems, mask, instruments, stereo.expand(excerpts, -1))
            estimate = conditioned_estimate(base, self.conditioner, inputs,
                                            None if style is None else style.vector().float().expand(excerpts, -1))
            weights = torch.where(active.any(dim=0, keepdim=True), active, torch.ones_like(active)).float()
            normalized = (estimate.normalized * weights[..., None]).sum(0) / weights.sum(0)[:, None]
            settings = base.to_console(normalized[None], estimate.master_normalized.mean(0)[None], mask[:1])
        info: dict = {"reference": style is not None, "mode": self.mode}
        if self.mode == "optimised" and style is not None:
            settings, report = optimise_style(stems, stereo, settings, style, self.config, progress)
            info.update(style_distance_start=round(report.start_distance, 4),
                        style_distance=round(report.distance, 4), steps=report.steps,
                        descent_s=round(report.seconds, 2))
        settings.eq_freq_hz.clamp_(max=clamp_freq_hz(math.inf, multitrack.sample_rate))
        params = settings.to_params(0, multitrack.names, multitrack.instruments, multitrack.sample_rate, self.name)
        params.validate()
        return MethodOutput(params=params, info=info)
