"""The Differentiable Mixing Console as a mixer (`mixdown.models.dmc`, shipped weights).

The DMC was trained through its neural channel-strip emulator, but the user gets its
*settings*: the controller's predictions, rendered by the real console
(`mixdown.console.render`), editable like any other mixer's. The emulator is not used
at inference.

Analysis is `mixdown.mixers.estimator.EstimatorMixer`'s, with the DMC's controller in
place of the estimator (the two share the network): up to ``EXCERPTS`` excerpts of
``EXCERPT_S`` seconds spread over the song, resampled to the model's rate (22.05 kHz),
settings averaged in the normalised space over the excerpts where a stem sounds, then
mapped to physical units once. Settings are in physical units and apply at the
multitrack's own rate (EQ frequencies are capped below its Nyquist limit).
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from mixdown.errors import MixdownError
from mixdown.mixers.estimator import EstimatorMixer


def default_weights() -> Path:
    """The DMC weights shipped with the package (controller and emulator)."""
    return Path(str(importlib.resources.files("mixdown").joinpath("weights", "dmc.pt")))


class DMCMixer(EstimatorMixer):
    """Console settings predicted by the trained DMC's controller (see the module docstring).

    Args:
        weights: A checkpoint of the ``dmc`` model written by `mixdown.models.save_model`;
            default: the shipped one.

    Attributes:
        dmc: The whole model (controller and emulator).

    Raises:
        MixdownError: If the weights are missing, unreadable or of another model.
    """

    name = "dmc"

    def __init__(self, weights: str | os.PathLike | None = None):  # noqa: super().__init__ loads an estimator
        from mixdown.models import load_model

        path = Path(weights) if weights is not None else default_weights()
        if weights is None and not path.is_file():
            raise MixdownError(f"the DMC's weights are not installed ({path}); train them with "
                               "`python -m mixdown.models.emulator configs/emulator.yaml` then "
                               "`mixdown train configs/dmc.yaml`")
        loaded = load_model(path)
        if loaded.name != "dmc":
            raise MixdownError(f"{path}: holds a {loaded.name!r} model, not the DMC")
        self.dmc = loaded.model
        self.model = loaded.model.controller
        self.sample_rate = loaded.sample_rate
