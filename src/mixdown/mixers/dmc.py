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

import os

from mixdown.mixers.estimator import EstimatorMixer
from mixdown.weights import require


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
        from mixdown.models import load_model_as

        loaded = load_model_as("dmc", weights if weights is not None else require("dmc.pt"))
        self.dmc = loaded.model
        self.model = loaded.model.controller
        self.sample_rate = loaded.sample_rate
