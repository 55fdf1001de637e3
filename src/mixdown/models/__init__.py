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

import dataclasses
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

import mixdown
from mixdown.audio import atomic_path
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


def config_from_dict(cls: type, data: Any, where: str) -> Any:
    """Build frozen dataclass ``cls`` from plain data (YAML / checkpoint), checking keys and types.

    Nested dataclasses are built recursively, lists become tuples where a tuple is
    annotated, ints are accepted for floats. Omitted keys keep their defaults.

    Args:
        cls: The dataclass.
        data: A mapping of field name to value (``None`` means all defaults).
        where: How to name ``data`` in messages, e.g. ``"configs/estimator.yaml: model"``.

    Returns:
        The instance.

    Raises:
        MixdownError: Naming the key for an unknown key, a value of the wrong type, or
            a value the dataclass itself refuses.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MixdownError(f"{where}: expected a mapping of option: value, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise MixdownError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    kwargs = {key: _convert(hints[key], value, f"{where}.{key}") for key, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, MixdownError) as exc:
        raise MixdownError(f"{where}: {exc}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    """``value`` checked against (and converted to) type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(option, value, where)
            except MixdownError as exc:
                errors.append(str(exc))
        raise MixdownError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {options}")
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise MixdownError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        if len(args) == 2 and args[1] is Ellipsis or len(args) <= 1:
            return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise MixdownError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise MixdownError(f"{where}: expected a mapping, got {value!r}")
        return value
    if origin is typing.Literal:
        if value not in args:
            raise MixdownError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (not isinstance(value, hint) or (hint is int and isinstance(value, bool))):
        raise MixdownError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain data (tuples as lists): YAML- and checkpoint-ready."""
    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


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


def save_model(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model`` as a plain checkpoint dict, atomically.

    Returns:
        The path written.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise MixdownError(f"{path.parent}: folder for the weights does not exist")
    with atomic_path(path) as tmp:
        torch.save(checkpoint_dict(model), tmp)
    return path


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
    path = Path(path)
    if not path.is_file():
        raise MixdownError(f"{path}: model weights not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        problem = " ".join(str(exc).split())[:200]
        raise MixdownError(f"{path}: cannot read model weights ({problem})") from None
    return model_from_checkpoint(data, str(path))
