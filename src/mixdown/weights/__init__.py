"""The pretrained weights shipped in the package, and the recipe that retrains each."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from mixdown.errors import MixdownError

RECIPES: dict[str, str] = {
    "estimator.pt": "mixdown train configs/estimator.yaml",
    "estimator_reference.pt": "mixdown train configs/estimator_reference.yaml",
    "estimator_reference_real.pt": "mixdown train configs/estimator_reference.yaml, then mixdown train "
                                   "configs/estimator_reference_real.yaml",
    "dmc.pt": "mixdown train configs/emulator.yaml, then mixdown train configs/dmc.yaml",
    "dmc_reference.pt": "mixdown train configs/dmc_reference.yaml",
    "waveunet.pt": "mixdown train configs/waveunet.yaml",
    "forest.npz": "mixdown train configs/forest.yaml",
    "producer.npz": "mixdown train configs/producer.yaml",
}
"""Each shipped file and the command that trains it from scratch."""


def shipped(filename: str) -> Path:
    """Where the package keeps the shipped weights ``filename`` (one of `RECIPES`)."""
    return Path(str(importlib.resources.files(__name__).joinpath(filename)))


def require(filename: str) -> Path:
    """`shipped`, checked: a `MixdownError` naming the recipe if the file is not installed."""
    path = shipped(filename)
    if not path.is_file():
        raise MixdownError(f"the shipped weights are not installed ({path}); "
                           f"train them with `{RECIPES[filename]}`")
    return path
