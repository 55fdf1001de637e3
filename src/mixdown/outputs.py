"""The one output policy of every command: never overwrite an input, never delete a file mixdown did not write.

Every command checks its outputs before any work:

* **Not an input.** An output that is, or resolves to, one of the command's inputs (a
  stem, a reference or target mix, a settings file, a project, a dataset file, a
  configuration) is refused with one error naming both. "Resolves" covers symbolic
  links, hard links (the same ``st_dev``/``st_ino``) and names that differ only in case
  in the same folder (one file on case-insensitive file systems, and a clash for the
  stem loader everywhere). A folder output that is, or holds, an input is refused too.
* **One folder rule.** The folder that holds an output must exist: mixdown creates the
  folder a command is asked to write into (``demo -o``, ``evaluate --out``, ``data synth
  --out``, ``listen create/results -o``), never the folders above it, and never a
  folder for a single-file output (``mix -o``, ``render -o``, ``export ... -o``,
  ``reverse -o``, ``train --export``). It must be a folder mixdown can write to.
* **Only its own files.** A command that writes into a folder (`OutputFolder`) records
  what it wrote in ``.mixdown-outputs.json`` there. It refuses a non-empty folder that
  it did not write (no record of this command, and none of the command's own marker
  files) unless ``--force``, naming a file it would overwrite (or one the folder holds).
  It may then overwrite files of the names it writes, and it removes files it wrote
  before (and does not write again) only where that record lists them; other files are
  never touched. Running a command again into its own folder resumes (``evaluate``,
  ``data synth``, ``data lmms``) or replaces its own files (``demo``, ``listen
  results``); ``--force`` on a resumable command first removes what it wrote before.

Single files are written atomically by `mixdown.audio.atomic_path`, whose temporary
files have visible names that the next write into the same folder sweeps away when
the process that made them is gone (see `PARTIAL_PATTERN`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mixdown.errors import MixdownError

MANIFEST_NAME = ".mixdown-outputs.json"
"""Record, in a folder a command writes into, of the command and the files it wrote."""


class OutputError(MixdownError):
    """An output path breaks the output policy (an input, a missing or foreign folder)."""


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except (OSError, ValueError):
        return None


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are (or, written, would be) one file.

    Both existing: one inode (symbolic and hard links). Otherwise: the same folder (by
    inode) and names equal ignoring case.
    """
    sa, sb = _stat(a), _stat(b)
    if sa is not None and sb is not None and (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino):
        return True
    if a.name.casefold() != b.name.casefold():
        return False
    pa, pb = _stat(a.parent if str(a.parent) else Path(".")), _stat(b.parent if str(b.parent) else Path("."))
    return pa is not None and pb is not None and (pa.st_dev, pa.st_ino) == (pb.st_dev, pb.st_ino)


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (by inode, through links)."""
    sf = _stat(folder)
    if sf is None:
        return False
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return False
    for candidate in (resolved, *resolved.parents):
        sc = _stat(candidate)
        if sc is not None and (sc.st_dev, sc.st_ino) == (sf.st_dev, sf.st_ino):
            return True
    return False


def check_not_input(output: Path, inputs: Iterable[Path | None], label: str = "output") -> None:
    """Refuse an output file that is one of ``inputs`` (see `same_file`).

    Raises:
        OutputError: ``OUTPUT: the output is the input INPUT; ...``.
    """
    for source in inputs:
        if source is not None and same_file(Path(output), Path(source)):
            what = "is" if Path(output).name == Path(source).name else "resolves to"
            raise OutputError(f"{output}: the {label} {what} the input {source}; "
                              "mixdown never overwrites its inputs, choose another name")


def check_output_file(path: Path, inputs: Iterable[Path | None] = (), suffixes: tuple[str, ...] | None = None,
                      label: str = "output") -> None:
    """Check a single-file output before any work (suffix, folder, not an input).

    Args:
        path: The file to write.
        inputs: Every file the command reads.
        suffixes: Accepted endings (lower case, with the dot), or None for any.
        label: What the output is, in messages (``"output"``, ``"settings file"``).

    Raises:
        OutputError: A wrong suffix, a missing or unwritable folder, a folder at ``path``,
            or ``path`` being one of ``inputs``.
    """
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise OutputError(f"{path}: the {label} must end in {_either(suffixes)}")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; the {label} must be a file")
    check_folder_writable(path.parent if str(path.parent) else Path("."), label)
    check_not_input(path, inputs, label)


def check_folder_writable(folder: Path, label: str = "output") -> None:
    """Refuse a missing folder, a file in its place, or one this process cannot write to."""
    if not folder.exists():
        raise OutputError(f"{folder}: {label} folder does not exist")
    if not folder.is_dir():
        raise OutputError(f"{folder}: not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: cannot write to this folder (permission denied)")


def check_not_input_folder(folder: Path, inputs: Iterable[Path | None]) -> None:
    """Refuse an output folder that is, or holds, one of ``inputs``."""
    for source in inputs:
        if source is not None and _inside(Path(source), folder):
            raise OutputError(f"{folder}: the output folder holds the input {source}; "
                              "mixdown never writes over its inputs, choose another folder")


def _either(suffixes: tuple[str, ...]) -> str:
    return suffixes[0] if len(suffixes) == 1 else ", ".join(suffixes[:-1]) + " or " + suffixes[-1]


def _is_partial(name: str) -> bool:
    from mixdown.audio import PARTIAL_PATTERN

    return PARTIAL_PATTERN.match(name) is not None


def _files(folder: Path) -> dict[str, tuple[int, int, int, int]]:
    """Every file under ``folder`` (relative POSIX path -> device, inode, mtime, size), partial files left out."""
    found = {}
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in names:
            if name == MANIFEST_NAME or _is_partial(name):
                continue
            path = Path(root, name)
            st = _stat(path)
            if st is not None:
                found[path.relative_to(folder).as_posix()] = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    return found


def read_manifest(folder: Path) -> dict | None:
    """The folder's record (``{"command": ..., "files": [...]}``), or None if it has none or it is unreadable."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("command"), str) \
            or not isinstance(data.get("files"), list) or not all(isinstance(f, str) for f in data["files"]):
        return None
    return data


def _safe_relative(name: str) -> bool:
    """A recorded name that stays inside its folder (the record is a file anyone can edit)."""
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


class OutputFolder:
    """A folder a command writes into, under the policy of this module.

    Use as a context manager around the command's work: on entry the folder is checked
    (and created, or cleaned of this command's earlier files with ``--force``); on exit,
    successful or not, the files the command wrote are added to the folder's record, a
    replacing command's stale files are removed, and a folder it created and left empty
    is removed again.

    Args:
        path: The folder.
        command: The command's name as typed, e.g. ``"listen results"``.
        force: Write into a non-empty folder this command did not write (``--force``).
        inputs: Files and folders the command reads; the folder may not be or hold one.
        markers: Files whose presence shows an earlier run of this command (from before
            records were kept), e.g. ``evaluation.json`` for ``evaluate``.
        expected: Names (relative paths) the command will write, if known: named in the
            refusal when one exists.
        replace: The command rewrites all its files each run: files it wrote before and
            not this time are removed after a successful run. Otherwise it resumes, and
            ``force`` removes what it wrote before at the start.

    Raises:
        OutputError: On entry: the folder's parent is missing, a file is in its place, it
            is or holds an input, or it is a foreign non-empty folder without ``force``.
    """

    def __init__(self, path: Path, command: str, *, force: bool = False, inputs: Iterable[Path | None] = (),
                 markers: Iterable[str] = (), expected: Iterable[str] = (), replace: bool = False):
        self.path = Path(path)
        self.command = command
        self.force = force
        self.inputs = [Path(p) for p in inputs if p is not None]
        self.markers = tuple(markers)
        self.expected = tuple(expected)
        self.replace = replace
        self.created = False
        self._before: dict[str, tuple[int, int, int, int]] = {}
        self._previous: list[str] = []

    def check(self) -> None:
        """The checks of entry, without creating or removing anything."""
        self._check()

    def _check(self) -> bool:
        """Check the folder; returns whether it holds an earlier run of this command."""
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"{self.path}: cannot create the output folder: a file of that name exists")
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not self.path.exists():
            check_folder_writable(parent, "output")
            return False
        check_not_input_folder(self.path, self.inputs)
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise OutputError(f"{self.path}: cannot write to this folder (permission denied)")
        manifest = read_manifest(self.path)
        ours = (manifest is not None and manifest["command"] == self.command) or \
            (manifest is None and bool(self.markers) and all((self.path / m).exists() for m in self.markers))
        if ours or self.force:
            return ours
        present = sorted(_files(self.path))
        if not present:
            return False
        clobbered = [name for name in self.expected if name in present]
        if clobbered:
            detail = f"it would overwrite {self.path / clobbered[0]}"
        else:
            writer = f"`mixdown {manifest['command']}`" if manifest is not None else "someone else"
            detail = f"it holds {self.path / present[0]}, written by {writer}"
        raise OutputError(f"{self.path}: the folder is not empty and `mixdown {self.command}` did not write it "
                          f"({detail}); choose an empty or new folder, or pass --force (mixdown then replaces "
                          "only the files it writes)")

    def __enter__(self) -> OutputFolder:
        self._check()
        if not self.path.exists():
            try:
                self.path.mkdir()
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot create the folder ({exc.strerror})") from None
            self.created = True
        manifest = read_manifest(self.path)
        if manifest is not None and manifest["command"] == self.command:  # what this command wrote, never another's
            self._previous = [name for name in manifest["files"] if _safe_relative(name)]
        if self.force and not self.replace:
            for name in self._previous:
                _remove(self.path / name, self.path)
            self._previous = []
        self._before = _files(self.path)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        after = _files(self.path) if self.path.is_dir() else {}
        written = sorted(name for name, key in after.items() if self._before.get(name) != key)
        kept = [name for name in self._previous if name in after]
        if self.replace and exc_type is None:
            for name in kept:
                if name not in written:
                    _remove(self.path / name, self.path)
            kept = []
        files = sorted(set(kept) | set(written))
        if self.created and not files and exc_type is not None:
            _remove_empty_tree(self.path)
            return
        if not self.path.is_dir():
            return
        from mixdown.audio import atomic_write_text

        record = {"command": self.command, "files": files,
                  "note": "files mixdown wrote here; it removes or replaces only these"}
        try:
            atomic_write_text(self.path / MANIFEST_NAME, json.dumps(record, indent=1) + "\n")
        except OSError:
            if exc_type is None:
                raise


def _remove(path: Path, folder: Path) -> None:
    """Remove a recorded file, then the folders it leaves empty up to ``folder``."""
    try:
        if path.is_symlink() or path.is_file():
            path.unlink()
    except OSError:
        return
    parent = path.parent
    while parent != folder and folder in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent


def _remove_empty_tree(folder: Path) -> None:
    """Remove ``folder`` if it holds nothing but empty folders (and partial files of this run)."""
    for root, _dirs, names in os.walk(folder, topdown=False):
        if any(not _is_partial(n) for n in names):
            return
        for name in names:
            Path(root, name).unlink(missing_ok=True)
        try:
            Path(root).rmdir()
        except OSError:
            return


@contextmanager
def output_folder(path: Path, command: str, **options) -> Iterator[OutputFolder]:
    """`OutputFolder` as a function (same arguments)."""
    with OutputFolder(path, command, **options) as folder:
        yield folder
