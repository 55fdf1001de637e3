"""The test folder: its layout, its manifest (``test.json``) and atomic folder writes.

A test folder written by `mixdown.listening.build.build_test` holds::

    test.json              the Manifest: conditions and their roles, songs, stimuli, seed
    audio/SONG/COND.wav    loudness-matched excerpts, one per song and condition
    responses.sqlite       participants' answers (created by the server)
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from mixdown.errors import MixdownError

MANIFEST_NAME = "test.json"
RESPONSES_NAME = "responses.sqlite"
AUDIO_DIR = "audio"
MANIFEST_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Version 2 added ``test_type``, ``repeats`` and ``mid_anchor``; a version-1 manifest is a MUSHRA test."""

Role = Literal["reference", "test", "anchor"]
"""A condition is the hidden reference, a condition under test, or an anchor."""


@dataclass(frozen=True)
class SongStimuli:
    """The excerpts of one song.

    Attributes:
        name: Song name.
        sample_rate: Rate of its excerpts in Hz.
        start_s: Excerpt start in the song, in seconds.
        duration_s: Excerpt length in seconds.
        files: ``{condition: path relative to the test folder}``.
        source_lufs: ``{condition: integrated loudness of the excerpt before matching}``.
    """

    name: str
    sample_rate: int
    start_s: float
    duration_s: float
    files: dict[str, str]
    source_lufs: dict[str, float]


@dataclass(frozen=True)
class Manifest:
    """Everything the server and the analysis need to know about a test.

    Attributes:
        name: Title shown to participants.
        instructions: Shown on the training page and with every trial.
        seed: Seed of the per-participant randomisation.
        target_lufs: Loudness every excerpt was matched to.
        conditions: Every condition, the reference first.
        roles: ``{condition: role}``.
        songs: The songs' stimuli, in configuration order.
        version: Manifest format version.
        test_type: ``"mushra"``, ``"bs1116"``, ``"ab"`` or ``"abx"``
            (`mixdown.listening.config.TEST_TYPES`).
        repeats: Presentations of each song and condition (or pair) per participant.
        mid_anchor: The BS.1534-3 mid anchor (screened on), or ``None``.
    """

    name: str
    instructions: str
    seed: int
    target_lufs: float
    conditions: tuple[str, ...]
    roles: dict[str, Role]
    songs: tuple[SongStimuli, ...]
    version: int = MANIFEST_VERSION
    test_type: str = "mushra"
    repeats: int = 1
    mid_anchor: str | None = None

    @property
    def reference(self) -> str:
        """The hidden-reference condition."""
        return next(name for name in self.conditions if self.roles[name] == "reference")

    def to_json(self) -> str:
        """The manifest as indented JSON."""
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def load(cls, test_dir: str | os.PathLike) -> Manifest:
        """Read the manifest of a test folder.

        Raises:
            MixdownError: If the folder or its manifest is missing or unreadable.
        """
        path = Path(test_dir) / MANIFEST_NAME
        if not Path(test_dir).is_dir():
            raise MixdownError(f"{test_dir}: no such test folder (create one with `mixdown listen create`)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") not in READABLE_VERSIONS:
                raise MixdownError(f"{path}: manifest version {data.get('version')!r}; "
                                   f"this mixdown reads versions {', '.join(map(str, READABLE_VERSIONS))}")
            songs = tuple(SongStimuli(**song) for song in data.pop("songs"))
            return cls(**{**data, "songs": songs, "conditions": tuple(data["conditions"])})
        except FileNotFoundError:
            raise MixdownError(f"{test_dir}: not a listening test (no {MANIFEST_NAME}; "
                               "create one with `mixdown listen create`)") from None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise MixdownError(f"{path}: unreadable manifest ({exc})") from None


@contextmanager
def atomic_dir(path: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield a hidden temporary folder to fill, then move it onto ``path``.

    If the body raises, the temporary folder is removed and ``path`` is untouched.

    Args:
        path: Final folder; its parent must exist.
        replace: Replace an existing ``path`` (otherwise it must not exist or be empty).

    Yields:
        The temporary folder.

    Raises:
        MixdownError: If the parent folder is missing, or ``path`` exists, is not empty
            and ``replace`` is false.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise MixdownError(f"{path.parent}: folder does not exist")
    if path.exists() and not path.is_dir():
        raise MixdownError(f"{path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not replace:
        raise MixdownError(f"{path} already exists and is not empty; choose another folder")
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}"
    tmp.mkdir()  # unlike tempfile.mkdtemp's 0700, the umask decides the final folder's mode
    try:
        yield tmp
        if path.is_dir():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old."))
            os.replace(path, old / "previous")
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
