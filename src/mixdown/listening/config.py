"""Listening-test configuration: dataclasses and their YAML loader.

A test rates every **condition** (a mix, or the hidden reference or an anchor) of every
**song**. Conditions come from audio files or from mixing methods run on the song's
stems. Example (paths relative to the YAML file; ``configs/listening_test.yaml`` is a
complete one)::

    name: Demo mixes
    type: mushra              # mushra (default), bs1116, ab or abx: see TEST_TYPES
    seed: 7                   # randomisation seed (per-participant orders derive from it)
    target_lufs: -23          # every excerpt is loudness-matched to this (BS.1770 integrated)
    excerpt_s: 8              # excerpt length
    fade_ms: 50               # raised-cosine fade in and out of each excerpt
    reference: target         # the condition that is the (hidden) reference
    anchors:                  # derived from the reference (MUSHRA default: one 3.5 kHz low-pass)
      - {name: anchor, lowpass_hz: 3500, level: low}
      - {name: mid_anchor, lowpass_hz: 7000, level: mid}   # the mid anchor gets BS.1534-3's screening rule
      - {name: mono_anchor, mono: true}
    conditions:               # conditions every song has
      mono: {method: mono}
      random: {method: random, seed: 3}
    songs:
      - name: demo
        stems: demo/stems     # needed by method conditions
        start_s: 2.0          # where the excerpt starts
        conditions:           # this song's own conditions
          target: demo/mix_rules.wav

Every key is checked; unknown keys, wrong types and out-of-range values raise
`MixdownError` naming the key.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixdown.config import read_config_file
from mixdown.errors import MixdownError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Song, condition and anchor names: they become file names."""

DEFAULT_INSTRUCTIONS = (
    "Rate how good each mix sounds compared with the reference, on a scale from 0 (bad) to "
    "100 (excellent). One of the mixes is the reference itself: rate it 100. Switch between "
    "mixes as often as you like while playing; use the loop to compare a short passage."
)

INSTRUCTIONS = {
    "mushra": DEFAULT_INSTRUCTIONS,
    "bs1116": (
        "Compare each of A and B with the reference and grade any difference you hear on the impairment "
        "scale, from 5.0 (imperceptible) to 1.0 (very annoying). One of A and B is the reference itself: "
        "grade it 5.0. Switch as often as you like while playing; use the loop to compare a short passage."),
    "ab": (
        "Listen to A and B and choose the one you prefer. Switch as often as you like while playing; use "
        "the loop to compare a short passage."),
    "abx": (
        "A and B are two different versions; X is one of them. Listen to all three and say whether X is A "
        "or B. Switch as often as you like while playing; use the loop to compare a short passage. If you "
        "cannot tell, make your best guess."),
}
"""The instructions each test type shows unless the YAML gives its own."""

TARGET_LUFS_RANGE = (-60.0, -5.0)
EXCERPT_S_RANGE = (1.0, 60.0)
LOWPASS_HZ_RANGE = (100.0, 20000.0)
REPEATS_RANGE = (1, 50)

TEST_TYPES = {
    "mushra": "ITU-R BS.1534-3 (MUSHRA): per song, the open reference and every condition (the hidden "
              "reference and the anchors among them) rated 0-100",
    "bs1116": "ITU-R BS.1116-3 double-blind triple stimulus with hidden reference: per song and condition, "
              "the open reference and two versions (the condition and the hidden reference, in random order) "
              "graded 1.0-5.0 on the impairment scale",
    "ab": "paired comparison: per song and pair of conditions, which of two versions is preferred",
    "abx": "ABX: per song and condition, A and B are the reference and the condition in random order and "
           "X is one of them; the participant says which; scored with a binomial test",
}
"""The test types (``type:``) and what a trial of each holds."""

ANCHOR_LEVELS = ("low", "mid")
"""BS.1534-3's anchors: the low anchor (3.5 kHz low-pass) and the mid anchor (7 kHz); the mid
anchor's ratings screen assessors (`mixdown.listening.screening`)."""


@dataclass(frozen=True)
class ConditionSource:
    """Where a condition's audio comes from: exactly one of a file or a method.

    Attributes:
        file: Audio file of the whole song (mono or stereo).
        method: Name of a method (`mixdown.mixers.METHODS`) that needs no target mix, run on the song's stems and
            rendered with `mixdown.console.render`.
        seed: Seed for stochastic methods.
    """

    file: Path | None = None
    method: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class AnchorConfig:
    """An anchor condition derived from the reference (ITU-R BS.1534-3 anchors).

    The reference is optionally downmixed to mono, then optionally low-passed.

    Attributes:
        name: Condition name.
        lowpass_hz: Low-pass cutoff in Hz (3500 for BS.1534's low anchor, 7000 for its
            mid anchor), or ``None`` for none.
        mono: Downmix to mono (both channels carry ``(left + right) / 2``).
        level: ``"low"`` or ``"mid"`` (BS.1534-3's low and mid anchors), or ``None``. The
            mid anchor's ratings screen MUSHRA assessors; at most one anchor is ``"mid"``.
    """

    name: str = "anchor"
    lowpass_hz: float | None = 3500.0
    mono: bool = False
    level: str | None = None


@dataclass(frozen=True)
class SongConfig:
    """One song of the test.

    Attributes:
        name: Song name (shown to nobody; used in results).
        conditions: ``{condition name: source}``, the song's own merged with the
            test-wide ones.
        stems: Folder of stems, needed by method conditions.
        start_s: Start of the excerpt in seconds.
    """

    name: str
    conditions: Mapping[str, ConditionSource]
    stems: Path | None = None
    start_s: float = 0.0


@dataclass(frozen=True)
class ListeningTestConfig:
    """A whole listening test.

    Attributes:
        songs: The songs; each has the same condition names.
        reference: Name of the condition used as the (hidden) reference.
        name: Title shown to participants.
        instructions: Shown on the training page and above every trial.
        target_lufs: Integrated loudness (ITU-R BS.1770-4) of every excerpt.
        excerpt_s: Excerpt length in seconds.
        fade_ms: Raised-cosine fade in and out of each excerpt, in ms.
        seed: Seed of the per-participant randomisation.
        anchors: Anchor conditions derived from the reference (for ``mushra`` one low anchor
            by default, for the other types none).
        type: One of `TEST_TYPES`.
        repeats: How often each song and condition (``bs1116``, ``abx``) or pair (``ab``)
            is presented to each participant; 1 for ``mushra``.
    """

    songs: tuple[SongConfig, ...]
    reference: str
    name: str = "Listening test"
    instructions: str = DEFAULT_INSTRUCTIONS
    target_lufs: float = -23.0
    excerpt_s: float = 10.0
    fade_ms: float = 50.0
    seed: int = 0
    anchors: tuple[AnchorConfig, ...] = (AnchorConfig(level="low"),)
    type: str = "mushra"
    repeats: int = 1

    @property
    def mid_anchor(self) -> str | None:
        """The anchor with ``level: mid``, if any."""
        return next((anchor.name for anchor in self.anchors if anchor.level == "mid"), None)

    @property
    def conditions(self) -> tuple[str, ...]:
        """Every condition: the reference, the others in the first song's order, then anchors."""
        others = [name for name in self.songs[0].conditions if name != self.reference]
        return (self.reference, *others, *(anchor.name for anchor in self.anchors))


def load_config(path: str | os.PathLike) -> ListeningTestConfig:
    """Read and check a listening-test YAML file.

    Args:
        path: The YAML file; relative paths inside it are relative to its folder.

    Returns:
        The configuration.

    Raises:
        MixdownError: If the file is missing, not YAML, or any entry is invalid.
    """
    path = Path(path)
    return parse_config(read_config_file(path), path.parent, where=str(path))


def parse_config(data: Any, base_dir: Path, where: str = "config") -> ListeningTestConfig:
    """Build a `ListeningTestConfig` from parsed YAML.

    Args:
        data: The parsed document (a mapping).
        base_dir: Folder that relative paths are relative to.
        where: Name of the source, for messages.

    Returns:
        The configuration.

    Raises:
        MixdownError: On any invalid entry, naming it.
    """
    top = _mapping(data, where, required={"songs", "reference"},
                   optional={"name", "instructions", "target_lufs", "excerpt_s", "fade_ms", "seed",
                             "anchors", "conditions", "type", "repeats"})
    test_type = top.get("type", ListeningTestConfig.type)
    if not isinstance(test_type, str) or test_type not in TEST_TYPES:
        raise MixdownError(f"{where}: type: {test_type!r} is not one of {', '.join(TEST_TYPES)}")
    shared = _conditions(top.get("conditions", {}), base_dir, f"{where}: conditions")
    songs_data = top["songs"]
    if not isinstance(songs_data, list) or not songs_data:
        raise MixdownError(f"{where}: songs: expected a non-empty list of songs")
    songs = tuple(_song(entry, shared, base_dir, f"{where}: songs[{i}]") for i, entry in enumerate(songs_data))
    defaults = ListeningTestConfig  # its class attributes are the field defaults
    anchors_data = top.get("anchors")
    if anchors_data is None:
        anchors = defaults.anchors if test_type == "mushra" else ()
    else:
        anchors = _anchors(anchors_data, f"{where}: anchors")
    repeats = _integer(top.get("repeats", defaults.repeats), f"{where}: repeats")
    if not REPEATS_RANGE[0] <= repeats <= REPEATS_RANGE[1]:
        raise MixdownError(f"{where}: repeats: {repeats} is outside [{REPEATS_RANGE[0]}, {REPEATS_RANGE[1]}]")
    if test_type == "mushra" and repeats != 1:
        raise MixdownError(f"{where}: repeats: a MUSHRA trial already holds every condition; "
                           "repeats applies to bs1116, ab and abx tests")
    config = ListeningTestConfig(
        songs=songs,
        reference=_name(top["reference"], f"{where}: reference"),
        name=_string(top.get("name", defaults.name), f"{where}: name"),
        instructions=_string(top.get("instructions", INSTRUCTIONS[test_type]), f"{where}: instructions"),
        target_lufs=_number(top.get("target_lufs", defaults.target_lufs), f"{where}: target_lufs",
                            TARGET_LUFS_RANGE),
        excerpt_s=_number(top.get("excerpt_s", defaults.excerpt_s), f"{where}: excerpt_s", EXCERPT_S_RANGE),
        fade_ms=_number(top.get("fade_ms", defaults.fade_ms), f"{where}: fade_ms", (0.0, 1000.0)),
        seed=_integer(top.get("seed", defaults.seed), f"{where}: seed"),
        anchors=anchors,
        type=test_type,
        repeats=repeats,
    )
    _check_consistent(config, where)
    return config


def _check_consistent(config: ListeningTestConfig, where: str) -> None:
    if 2 * config.fade_ms / 1000.0 >= config.excerpt_s:
        raise MixdownError(f"{where}: fade_ms {config.fade_ms:g} is too long for {config.excerpt_s:g} s excerpts")
    names = [song.name.lower() for song in config.songs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise MixdownError(f"{where}: duplicate song name {duplicates[0]!r}")
    first = config.songs[0]
    for song in config.songs:
        if config.reference not in song.conditions:
            raise MixdownError(f"{where}: song {song.name!r} has no condition {config.reference!r} (the reference)")
        if set(song.conditions) != set(first.conditions):
            diff = sorted(set(song.conditions) ^ set(first.conditions))
            raise MixdownError(f"{where}: songs {first.name!r} and {song.name!r} have different conditions "
                               f"({', '.join(diff)}); every song needs the same ones")
        needs_stems = [name for name, source in song.conditions.items() if source.method is not None]
        if needs_stems and song.stems is None:
            raise MixdownError(f"{where}: song {song.name!r}: condition {needs_stems[0]!r} runs a method, "
                               "so the song needs a stems folder (stems: ...)")
    if len(config.songs[0].conditions) < 2:
        raise MixdownError(f"{where}: a test needs at least two conditions (the reference and one mix)")
    for anchor in config.anchors:
        if anchor.name.lower() in (name.lower() for name in first.conditions):
            raise MixdownError(f"{where}: anchor {anchor.name!r} has the name of a condition")
    anchor_names = [anchor.name.lower() for anchor in config.anchors]
    if len(set(anchor_names)) != len(anchor_names):
        raise MixdownError(f"{where}: anchors: two anchors share a name")
    if sum(anchor.level == "mid" for anchor in config.anchors) > 1:
        raise MixdownError(f"{where}: anchors: only one anchor can be the mid anchor (level: mid)")


def _song(data: Any, shared: dict[str, ConditionSource], base_dir: Path, where: str) -> SongConfig:
    entry = _mapping(data, where, required={"name"}, optional={"stems", "start_s", "conditions"})
    own = _conditions(entry.get("conditions", {}), base_dir, f"{where}: conditions")
    both = sorted(set(own) & set(shared), key=str.lower)
    if both:
        raise MixdownError(f"{where}: condition {both[0]!r} is defined both for the song and for every song")
    lowered = [name.lower() for name in [*own, *shared]]
    if len(set(lowered)) != len(lowered):
        raise MixdownError(f"{where}: two conditions differ only in case")
    stems = entry.get("stems")
    return SongConfig(
        name=_name(entry["name"], f"{where}: name"),
        conditions={**own, **shared},
        stems=None if stems is None else base_dir / _string(stems, f"{where}: stems"),
        start_s=_number(entry.get("start_s", 0.0), f"{where}: start_s", (0.0, math.inf)),
    )


def _conditions(data: Any, base_dir: Path, where: str) -> dict[str, ConditionSource]:
    if not isinstance(data, dict):
        raise MixdownError(f"{where}: expected a mapping of condition names to files or {{method: ...}}")
    sources = {}
    for key, value in data.items():
        name = _name(key, f"{where}: {key!r}")
        if isinstance(value, str):
            sources[name] = ConditionSource(file=base_dir / value)
            continue
        entry = _mapping(value, f"{where}: {name}", required=set(), optional={"file", "method", "seed"})
        if ("file" in entry) == ("method" in entry):
            raise MixdownError(f"{where}: {name}: give exactly one of file: or method:")
        if "file" in entry:
            if "seed" in entry:
                raise MixdownError(f"{where}: {name}: seed only applies to method conditions")
            sources[name] = ConditionSource(file=base_dir / _string(entry["file"], f"{where}: {name}: file"))
            continue
        from mixdown.mixers import METHODS

        usable = [m for m, info in METHODS.items() if not info.capabilities.needs_target]
        method = _string(entry["method"], f"{where}: {name}: method")
        if method not in usable:
            raise MixdownError(f"{where}: {name}: unknown method {method!r}; choose one of {', '.join(usable)}")
        seed = entry.get("seed")
        sources[name] = ConditionSource(method=method,
                                        seed=None if seed is None else _integer(seed, f"{where}: {name}: seed"))
    return sources


def _anchors(data: Any, where: str) -> tuple[AnchorConfig, ...]:
    if not isinstance(data, list):
        raise MixdownError(f"{where}: expected a list of anchors ([] for none)")
    anchors = []
    for i, value in enumerate(data):
        entry = _mapping(value, f"{where}[{i}]", required={"name"}, optional={"lowpass_hz", "mono", "level"})
        lowpass = entry.get("lowpass_hz")
        mono = entry.get("mono", False)
        level = entry.get("level")
        if level is not None and level not in ANCHOR_LEVELS:
            raise MixdownError(f"{where}[{i}]: level: {level!r} is not one of {', '.join(ANCHOR_LEVELS)}")
        if not isinstance(mono, bool):
            raise MixdownError(f"{where}[{i}]: mono: expected true or false, got {mono!r}")
        if lowpass is None and not mono:
            raise MixdownError(f"{where}[{i}]: an anchor needs lowpass_hz, mono: true, or both")
        anchors.append(AnchorConfig(
            name=_name(entry["name"], f"{where}[{i}]: name"),
            lowpass_hz=None if lowpass is None else _number(lowpass, f"{where}[{i}]: lowpass_hz", LOWPASS_HZ_RANGE),
            mono=mono,
            level=level,
        ))
    return tuple(anchors)


def _mapping(data: Any, where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise MixdownError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(str(key) for key in set(data) - required - optional)
    if unknown:
        raise MixdownError(f"{where}: unknown key {unknown[0]!r}; expected {', '.join(sorted(required | optional))}")
    missing = sorted(required - set(data))
    if missing:
        raise MixdownError(f"{where}: missing key {missing[0]!r}")
    return data


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise MixdownError(f"{where}: {value!r} is not a valid name (letters, digits, '_', '-', '.'; "
                           "starting with a letter or digit; at most 64)")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MixdownError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _number(value: Any, where: str, limits: tuple[float, float]) -> float:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**1023:
        raise MixdownError(f"{where}: expected a finite number, got an integer of {len(str(abs(value)))} digits")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MixdownError(f"{where}: expected a finite number, got {value!r}")
    if not limits[0] <= value <= limits[1]:
        raise MixdownError(f"{where}: {value:g} is outside [{limits[0]:g}, {limits[1]:g}]")
    return float(value)


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MixdownError(f"{where}: expected a non-negative integer, got {value!r}")
    return value
