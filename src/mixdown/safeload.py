"""Reading JSON and YAML that people edit, with limits: every malformed file is one error.

`json.loads` and `yaml.safe_load` raise `RecursionError` on deeply nested input (a
100000-deep array), `ValueError` on integers longer than Python's digit limit or on a
YAML date such as ``2001-13-01``, and integers beyond a float's range make later
``float()`` calls raise `OverflowError`. These functions check size and nesting
(`mixdown.limits.MAX_SETTINGS_BYTES`, `mixdown.limits.MAX_NESTING`) before parsing and
turn every failure into the caller's error class with a one-line message naming the
source. Integers too large for a 64-bit value come back as floats (``inf`` beyond a
float's range), so range checks see an out-of-range number instead of failing on a
conversion; ``NaN`` and ``Infinity`` are kept, for the schema checks to name the field.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from mixdown.errors import MixdownError
from mixdown.limits import MAX_NESTING, MAX_SETTINGS_BYTES, MAX_YAML_ALIASES

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BIG_INT = 2**63
_MAX_INT_DIGITS = 40


def read_text(path: str | os.PathLike, what: str = "", max_bytes: int = MAX_SETTINGS_BYTES,
              error: type[MixdownError] = MixdownError) -> str:
    """A UTF-8 text file's contents, refusing files over ``max_bytes``.

    Raises:
        error: ``PATH: cannot read (...)``, ``PATH: not UTF-8 text`` or ``PATH: N bytes; at most M``.
    """
    path = Path(path)
    name = f"{what} {path}" if what else str(path)
    try:
        with open(path, "rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise error(f"{name}: larger than {max_bytes // 2**20} MiB; not a settings file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"cannot read {name}: not UTF-8 text") from None


def json_depth(text: str, limit: int = MAX_NESTING) -> int:
    """Deepest nesting of ``[``/``{`` in JSON ``text`` (strings skipped); stops counting past ``limit``."""
    depth = deepest = 0
    for char in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if char in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
    return deepest


def loads_json(text: str, source: str, error: type[MixdownError] = MixdownError,
               max_depth: int = MAX_NESTING) -> Any:
    """Parse JSON ``text`` (named ``source`` in messages) within the size and nesting limits.

    Raises:
        error: ``SOURCE: not valid JSON (...)``, or nesting / size over the limits.
    """
    if len(text) > MAX_SETTINGS_BYTES:
        raise error(f"{source}: larger than {MAX_SETTINGS_BYTES // 2**20} MiB; not a settings file")
    if json_depth(text, max_depth) > max_depth:
        raise error(f"{source}: nested more than {max_depth} levels deep")
    try:
        data = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise error(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise error(f"{source}: not valid JSON ({_one_line(exc)})") from None
    return data


def loads_yaml(text: str, source: str, error: type[MixdownError] = MixdownError,
               max_depth: int = MAX_NESTING, kind: str = "YAML") -> Any:
    """Parse YAML ``text`` (safe loader) within the size, nesting and alias limits.

    Raises:
        error: ``SOURCE is not valid KIND: ...``, or nesting / size / aliases over the limits.
    """
    import yaml

    if len(text) > MAX_SETTINGS_BYTES:
        raise error(f"{source}: larger than {MAX_SETTINGS_BYTES // 2**20} MiB; not a settings file")
    try:
        depth = aliases = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):  # events: no recursion, no objects built
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > max_depth:
                    raise error(f"{source}: nested more than {max_depth} levels deep")
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_YAML_ALIASES:
                    raise error(f"{source}: more than {MAX_YAML_ALIASES} YAML aliases")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{source} is not valid {kind}: {_one_line(exc)}") from None
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        raise error(f"{source} is not valid {kind}: {_one_line(exc)}") from None
    return tame_numbers(data, source, error)


def tame_numbers(data: Any, source: str = "data", error: type[MixdownError] = MixdownError) -> Any:
    """``data`` with integers beyond 64 bits replaced by floats (``±inf`` past a float's range).

    Shared values (YAML aliases) are converted once and stay shared, so an alias bomb
    costs nothing here; a value that contains itself (a recursive alias) is refused.

    Raises:
        error: ``SOURCE: a value contains itself (a recursive YAML alias)``.
    """
    done: dict[int, Any] = {}
    active: set[int] = set()

    def tame(value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value if -_BIG_INT <= value < _BIG_INT else _int_as_float(value)
        if not isinstance(value, (list, dict)):
            return value
        key = id(value)
        if key in active:
            raise error(f"{source}: a value contains itself (a recursive YAML alias)")
        if key not in done:
            active.add(key)
            if isinstance(value, list):
                done[key] = [tame(item) for item in value]
            else:
                done[key] = {name: tame(item) for name, item in value.items()}
            active.discard(key)
        return done[key]

    return tame(data)


def _int_as_float(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def _parse_int(text: str) -> int | float:
    """JSON integers: as ints up to 64 bits, beyond that as floats (``inf`` past a float's range)."""
    if len(text) > _MAX_INT_DIGITS:
        return float(text)  # float() has no digit limit and gives inf when too large
    value = int(text)
    return value if -_BIG_INT <= value < _BIG_INT else float(value)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__
