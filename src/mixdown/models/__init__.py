"""Learned mixing models: the registry, their configs and checkpoints.

A model is a plain ``torch.nn.Module`` built from a frozen dataclass config (it never
imports Lightning; `mixdown.train` wraps it). `MODELS` maps a name to ``(config class,
model class)``; everything else (training, export, loading, the mixers that ship
weights) goes through it, so adding a model is one module and one line here.

The protocol every model follows (`MixingModel`):

* ``model.config``: its frozen dataclass config, with a ``sample_rate`` field (Hz);
* ``model(stems, mask, instruments, stereo)`` returns an object with a ``mix``
  attribute, the stereo mix ``(batch, 2, samples)``.

Parametric models (whose mixes come from console settings) also provide
``model.estimate(stems, mask, instruments, stereo)`` (settings without rendering) and
``model.parameter_loss(estimate, target, mask)`` (distance to true `ConsoleTensors`);
see `mixdown.models.estimator`.

Checkpoints (`save_model` / `load_model`) are a plain dict, loaded with
``torch.load(weights_only=True)`` (no pickled classes)::

    {"model_name": str, "config": dict, "state_dict": dict, "sample_rate": int,
     "versions": {"mixdown": str, "torch": str}, "format": 1}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

import mixdown
from mixdown.audio import atomic_path
from mixdown.config import config_from_dict, config_to_dict
from mixdown.errors import MixdownError
from mixdown.models.dmc import DMC, DMCConfig
from mixdown.models.emulator import Emulator, EmulatorConfig
from mixdown.models.estimator import Estimator, EstimatorConfig
from mixdown.models.waveunet import WaveUNet, WaveUNetConfig

CHECKPOINT_FORMAT = 1

MODELS: dict[str, tuple[type, type[torch.nn.Module]]] = {
    "estimator": (EstimatorConfig, Estimator),
    "emulator": (EmulatorConfig, Emulator),
    "dmc": (DMCConfig, DMC),
    "waveunet": (WaveUNetConfig, WaveUNet),
}
"""Model name -> (config dataclass, model class)."""


class MixingModel(Protocol):
    """What `mixdown.train` and the mixers expect of a registered model."""

    config: Any

    def __call__(self, stems: torch.Tensor, mask: torch.Tensor, instruments: torch.Tensor,
                 stereo: torch.Tensor) -> Any:
        """Mix ``stems (batch, tracks, channels, samples)``; the result has ``.mix (batch, 2, samples)``."""
        ...


def build_model(name: str, config: dict[str, Any] | None = None, where: str = "model") -> torch.nn.Module:
    """A fresh model of registered type ``name`` with ``config`` overriding its defaults.

    Raises:
        MixdownError: If ``name`` is not in `MODELS` or the config is bad.
    """
    try:
        config_cls, model_cls = MODELS[name]
    except KeyError:
        raise MixdownError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None
    return model_cls(config_from_dict(config_cls, config, where))


def model_name(model: torch.nn.Module) -> str:
    """The registry name of ``model``'s class."""
    for name, (_, model_cls) in MODELS.items():
        if type(model) is model_cls:
            return name
    raise MixdownError(f"{type(model).__name__} is not a registered model")


def checkpoint_dict(model: torch.nn.Module) -> dict[str, Any]:
    """The plain checkpoint dict of ``model`` (see the module docstring)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model_name": model_name(model),
        "config": config_to_dict(model.config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "sample_rate": int(model.config.sample_rate),
        "versions": {"mixdown": str(mixdown.__version__), "torch": str(torch.__version__)},
    }


def write_checkpoint(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a plain checkpoint dict, atomically; returns the path written.

    Raises:
        MixdownError: If the folder does not exist.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise MixdownError(f"{path.parent}: folder for the weights does not exist")
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return path


def read_checkpoint(path: str | os.PathLike, what: str = "model weights") -> Any:
    """The object in a checkpoint file, read with ``weights_only=True`` (no code is unpickled).

    Args:
        path: the file.
        what: what it holds, for the messages.

    Raises:
        MixdownError: If the file is missing or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise MixdownError(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        problem = " ".join(str(exc).split())[:200]
        raise MixdownError(f"{path}: cannot read {what} ({problem})") from None


def save_model(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model`` as a plain checkpoint dict, atomically.

    Returns:
        The path written.
    """
    return write_checkpoint(checkpoint_dict(model), path)


@dataclass(frozen=True)
class LoadedModel:
    """A model read back from a checkpoint.

    Attributes:
        name: Its registry name.
        model: The module, in eval mode, on the CPU.
        sample_rate: Rate it was trained at, in Hz.
        versions: Library versions it was saved with.
    """

    name: str
    model: torch.nn.Module
    sample_rate: int
    versions: dict[str, str]


def model_from_checkpoint(data: Any, source: str) -> LoadedModel:
    """Rebuild a model from a checkpoint dict already in memory (see `load_model`)."""
    required = ("model_name", "config", "state_dict", "sample_rate", "versions")
    if not isinstance(data, dict) or any(key not in data for key in required):
        raise MixdownError(f"{source}: not a mixdown model checkpoint (expected keys {list(required)})")
    if data.get("format", CHECKPOINT_FORMAT) != CHECKPOINT_FORMAT:
        raise MixdownError(f"{source}: checkpoint format {data['format']} is not supported "
                           f"(expected {CHECKPOINT_FORMAT})")
    model = build_model(data["model_name"], data["config"], where=f"{source}: config")
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as exc:
        problem = " ".join(str(exc).split())
        raise MixdownError(f"{source}: weights do not fit the {data['model_name']} model ({problem})") from None
    model.eval()
    return LoadedModel(data["model_name"], model, int(data["sample_rate"]), dict(data["versions"]))


def load_model(path: str | os.PathLike) -> LoadedModel:
    """Read a checkpoint written by `save_model` (``weights_only=True``; no code is unpickled).

    Raises:
        MixdownError: If the file is missing, unreadable, not such a checkpoint, or
            its weights do not fit its model.
    """
    return model_from_checkpoint(read_checkpoint(path), str(path))


def load_model_as(name: str, path: str | os.PathLike) -> LoadedModel:
    """`load_model`, refusing a checkpoint of another model than ``name``."""
    loaded = load_model(path)
    if loaded.name != name:
        raise MixdownError(f"{path}: holds a {loaded.name!r} model, not the {name} model")
    return loaded
