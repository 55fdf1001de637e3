"""Mix like a reference song: the ``style`` method (issue 14; after Diff-MST, Vanka et al. 2024).

The reference is any finished stereo song (another song, any length); it is analysed,
never mixed in (`mixdown.style`). Two modes, one option (``mode``):

* ``learned``: the settings of a shipped parameter predictor (``model``: the estimator,
  `mixdown.mixers.estimator`, by default; or the DMC's controller, `mixdown.mixers.dmc`;
  the same excerpts and averaging) corrected per excerpt by that predictor's reference
  conditioner (`mixdown.style.conditioned`, weights ``estimator_reference_real.pt``:
  trained on synthetic songs, then on real LMMS songs' producer mixes; or
  ``dmc_reference.pt``: synthetic songs only);
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
        model: the parameter predictor the reference conditions, ``"estimator"`` or ``"dmc"``.
        weights: the conditioner's checkpoint (default: the shipped one of ``model``).
        budget_s: time budget of the optimised mode's descent, seconds.

    Raises:
        MixdownError: an unknown mode or model, a bad budget, or weights that are missing,
            unreadable or for another model.
    """

    name = "style"
    capabilities: ClassVar[Capabilities] = Capabilities(takes_reference=True)

    def __init__(self, mode: str = "optimised", model: str = "estimator", weights: str | os.PathLike | None = None,
                 budget_s: float | None = None):
        from mixdown.mixers.dmc import DMCMixer
        from mixdown.mixers.estimator import EstimatorMixer
        from mixdown.style.conditioned import BASES, CONDITIONER_WEIGHTS, load_conditioner
        from mixdown.style.optimise import OptimiseConfig
        from mixdown.weights import require

        if mode not in MODES:
            raise MixdownError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        if model not in BASES:
            raise MixdownError(f"model {model!r} is not one of {', '.join(BASES)}")
        if budget_s is not None and not (isinstance(budget_s, (int, float)) and 0.0 < budget_s <= 3600.0):
            raise MixdownError(f"budget_s must be a number of seconds in (0, 3600], got {budget_s!r}")
        self.mode = mode
        self.predictor = DMCMixer() if model == "dmc" else EstimatorMixer()
        path = weights if weights is not None else require(CONDITIONER_WEIGHTS[model])
        self.conditioner = load_conditioner(path)
        if self.conditioner.config.base != model:
            raise MixdownError(f"{path}: a conditioner of the {self.conditioner.config.base}, not of the {model}")
        self.config = OptimiseConfig() if budget_s is None else OptimiseConfig(budget_s=float(budget_s))

    def run(self, multitrack: Multitrack, target: np.ndarray | None = None, reference: np.ndarray | None = None,
            progress: ProgressCallback | None = None) -> MethodOutput:
        from mixdown.style.conditioned import conditioned_estimate, conditioner_inputs
        from mixdown.style.optimise import optimise_style
        from mixdown.style.reference import reference_style

        style = None if reference is None else reference_style(reference, multitrack.sample_rate)
        base = self.predictor.model
        stems, active = self.predictor.analysis_batch(multitrack)
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
        info: dict = {"reference": style is not None, "mode": self.mode, "model": self.conditioner.config.base}
        if self.mode == "optimised" and style is not None:
            settings, report = optimise_style(stems, stereo, settings, style, self.config, progress)
            info.update(style_distance_start=round(report.start_distance, 4),
                        style_distance=round(report.distance, 4), steps=report.steps,
                        descent_s=round(report.seconds, 2))
        settings.eq_freq_hz.clamp_(max=clamp_freq_hz(math.inf, multitrack.sample_rate))
        params = settings.to_params(0, multitrack.names, multitrack.instruments, multitrack.sample_rate, self.name)
        params.validate()
        return MethodOutput(params=params, info=info)
