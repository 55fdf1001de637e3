"""Reading configuration files (YAML or JSON) into frozen dataclasses: the one loader.

Every recipe and settings file of mixdown (training recipes, ``configs/*.yaml``, the
listening test's file) is read by `read_config_file` and, where it is a dataclass, built
by `load_config`, which checks every key and value through
`config_from_dict`: unknown keys, wrong types and values the dataclass
refuses raise `MixdownError` naming the file and the key, e.g.
``configs/forest.yaml: unknown keys ['treez']; known: [...]``.

Example::

    from mixdown.config import load_config
    from mixdown.mixers.forest import ForestRecipe

    recipe = load_config(ForestRecipe, "configs/forest.yaml", what="forest recipe")
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from mixdown.errors import MixdownError

T = TypeVar("T")


def read_config_file(path: str | os.PathLike, what: str = "") -> Any:
    """The parsed contents of a YAML or JSON file (``.json`` files are read as JSON).

    Args:
        path: The file.
        what: What it is, for messages (``"training config"``), or empty.

    Returns:
        The document (``None`` for an empty YAML file).

    Raises:
        MixdownError: ``cannot read WHAT PATH: reason`` or ``WHAT PATH is not valid YAML: ...``.
    """
    from mixdown.safeload import loads_json, loads_yaml, read_text

    path = Path(path)
    name = f"{what} {path}" if what else str(path)
    text = read_text(path, what)  # size, nesting and number limits: every malformed file is one error
    if path.suffix.lower() == ".json":
        return loads_json(text, name)
    return loads_yaml(text, name)


def load_config(cls: type[T], path: str | os.PathLike, what: str = "", data: Any = None) -> T:
    """Build frozen dataclass ``cls`` from a YAML / JSON file of its fields (omitted ones keep defaults).

    Args:
        cls: The dataclass (nested dataclass fields are nested mappings).
        path: The file.
        what: What it is, for messages about reading it (see `read_config_file`).
        data: The file's parsed contents, if already read (then ``path`` only names it).

    Returns:
        The instance.

    Raises:
        MixdownError: If the file cannot be read or parsed, is not a mapping, has a key
            ``cls`` does not know, or a value of the wrong type or out of range; the
            message starts with the path (and the key path for nested sections).
    """

    if data is None:
        data = read_config_file(path, what)
    return config_from_dict(cls, data, str(path))


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
