"""The studio's API: sessions of stems, their mixes and edits, independent of HTTP.

`Studio` is what the FastAPI routes (`mixdown.web.studio.app`) call. It opens sessions
from uploaded files or from a folder under the server's allowed root, mixes them in the
background with any method of `STUDIO_METHODS` (through `mixdown.api.propose`), keeps each session's edit history
in a `SessionStore` and renders mixes through a per-session `MixEngine` (kept in memory
for the most recently used sessions, rebuilt from disk when needed).

Errors a user can cause raise `RequestError` (with an HTTP status) or another
`MixdownError` (a 400).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
import shutil
import threading
import warnings
import zipfile
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf

from mixdown.api import propose
from mixdown.audio import SUPPORTED_EXTENSIONS, as_stereo, load_audio, write_audio
from mixdown.dsp.loudness import loudness_lufs
from mixdown.dsp.true_peak import bs1770_bank, bs1770_oversampling
from mixdown.errors import MixdownError, ParamsError
from mixdown.export.reaper import (
    PLUGIN_SUFFIXES,
    reaper_project,
    reaper_summary,
    reverb_impulse_response,
)
from mixdown.export.rpp import params_from_rpp, parse_rpp, rpp_media
from mixdown.mixers import METHODS
from mixdown.multitrack import INSTRUMENT_CLASSES, Multitrack, load_multitrack
from mixdown.params import (
    DESIGN_FREQ_FRACTION,
    EQ_BAND_TYPES,
    MAX_EQ_BANDS,
    SCHEMA,
    SPECS,
    ChannelParams,
    ConsoleParams,
    MasterParams,
    ParamSpec,
)
from mixdown.web.common import (
    RequestError,
    check_files_within,
    format_bytes,
    probe_upload,
    resolve_within,
    safe_stem_name,
)
from mixdown.web.studio.engine import (
    GAIN_REDUCTION_HOP,
    MixEngine,
    RenderResult,
    display_freqs_hz,
    eq_curve_db,
    strip_key,
)
from mixdown.web.studio.store import SessionRecord, SessionStore

logger = logging.getLogger(__name__)

RENDERS_KEPT = 4
STUDIO_METHODS = [name for name, info in METHODS.items()
                  if info.capabilities.gives_params and not info.capabilities.needs_target]
"""Methods the studio offers: those that propose editable settings from the stems alone."""
"""Rendered mixes kept per live session (edited, model, solo variants)."""

MAX_LISTED_FOLDERS = 500
PROJECT_SUFFIXES = {".rpp": "reaper", ".mmp": "lmms", ".mmpz": "lmms", ".json": "settings"}
"""Project files a session may open with its stems, and the method name the session shows."""
MAX_PROJECT_BYTES = 16 * 2**20
_LOAD_WARNINGS_LOCK = threading.Lock()


@dataclass(frozen=True)
class StudioConfig:
    """How a studio server runs.

    Attributes:
        data_dir: where sessions are stored (created if missing).
        root: folder under which "open a server folder" may look; None turns it off.
        max_stems: most stems per session.
        max_file_bytes: largest uploaded file.
        max_request_bytes: largest upload request (all files together).
        live_sessions: sessions whose stems and renders stay in memory.
        workers: threads per render (channel strips in parallel).
    """

    data_dir: Path
    root: Path | None = None
    max_stems: int = 32
    max_file_bytes: int = 200 * 2**20
    max_request_bytes: int = 1024 * 2**20
    live_sessions: int = 4
    workers: int = 2


@dataclass
class Upload:
    """One uploaded file: the client's name and a seekable stream of its bytes."""

    filename: str
    file: BinaryIO
    size: int


@dataclass
class _Live:
    """A session held in memory: its render engine and recent renders by settings."""

    engine: MixEngine
    renders: OrderedDict[str, tuple[RenderResult, bytes | None]] = field(default_factory=OrderedDict)


class Studio:
    """Sessions, mixing jobs and renders for one data directory.

    Args:
        config: server settings.
    """

    def __init__(self, config: StudioConfig):
        self.config = config
        self.store = SessionStore(config.data_dir)
        self._jobs: dict[str, object] = {}
        self._progress: dict[str, tuple[str, float]] = {}
        self._live: OrderedDict[str, _Live] = OrderedDict()
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="studio-mix")

    def close(self) -> None:
        """Wait for running mixing jobs and release the threads."""
        self._pool.shutdown(wait=True, cancel_futures=False)

    # -- opening sessions -------------------------------------------------------------

    def create_from_uploads(self, method: str, uploads: list[Upload], reference: Upload | None = None) -> SessionRecord:
        """Check and store uploaded stems (and a reference mix), then start mixing them in the background.

        A method that takes a reference (``style``) mixes like ``reference`` from the start.

        Raises:
            RequestError: no stems, too many, a file too large (413), not WAV/FLAC/AIFF
                audio (415), unusable names or two stems with the same name.
        """
        _check_method(method)
        reference_audio = None if reference is None else self._read_reference(reference)
        projects = [u for u in uploads if Path(u.filename or "").suffix.lower() in PROJECT_SUFFIXES]
        uploads = [u for u in uploads if u not in projects]
        if len(projects) > 1:
            raise RequestError(f"{len(projects)} project files uploaded; open one project with its stems")
        if projects and projects[0].size > MAX_PROJECT_BYTES:
            raise RequestError(f"{projects[0].filename}: {format_bytes(projects[0].size)}; a project file may have "
                               f"{format_bytes(MAX_PROJECT_BYTES)}", 413)
        if not uploads:
            raise RequestError("no stems: upload at least one audio file (WAV, FLAC or AIFF)")
        if len(uploads) > self.config.max_stems:
            raise RequestError(f"{len(uploads)} stems uploaded; the limit is {self.config.max_stems}")
        names: dict[str, str] = {}
        checked = []
        for upload in uploads:
            self._check_size(upload)
            audio = probe_upload(upload.file, upload.filename)
            name = safe_stem_name(upload.filename)
            if name.lower() in names:
                raise RequestError(f"two stems named {name!r}: {names[name.lower()]} and {upload.filename}")
            names[name.lower()] = upload.filename
            checked.append((name + audio.extension, upload.file))
        session_id = self.store.new_id()
        final = self.store.session_dir(session_id)
        partial = final.with_name(f".{session_id}.partial")
        try:
            (partial / "stems").mkdir(parents=True)
            for filename, file in checked:
                with open(partial / "stems" / filename, "wb") as out:
                    file.seek(0)
                    shutil.copyfileobj(file, out, 1 << 20)
            for project in projects:
                project.file.seek(0)
                (partial / f"project{Path(project.filename).suffix.lower()}").write_bytes(
                    project.file.read(MAX_PROJECT_BYTES + 1)[:MAX_PROJECT_BYTES])
            os.replace(partial, final)
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise MixdownError(f"cannot store the uploaded stems ({exc.strerror})") from None
        if projects:
            method = PROJECT_SUFFIXES[Path(projects[0].filename).suffix.lower()]
        record = self.store.create(session_id, method, "upload", final / "stems")
        if reference_audio is not None:
            self._store_reference(session_id, *reference_audio)
        self._start_job(session_id)
        return record

    def create_from_folder(self, method: str, folder: str) -> SessionRecord:
        """Open the stems of a folder under the allowed root and start mixing them.

        Raises:
            RequestError: 403 when folder sessions are off or the folder is outside the
                root, 404 when it does not exist.
            AudioError: the folder holds no usable stems or too many.
        """
        _check_method(method)
        if self.config.root is None:
            raise RequestError("opening server folders is off: start the server with --root DIR", 403)
        stems_dir = resolve_within(self.config.root, folder)
        project, reference, stems_dir = self._folder_project(stems_dir)
        self._check_folder("folder", stems_dir)
        with _LOAD_WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_multitrack(stems_dir, max_stems=self.config.max_stems, in_memory=False)  # headers only
        session_id = self.store.new_id()
        if project is not None:
            session_dir = self.store.session_dir(session_id)
            session_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(project, session_dir / f"project{project.suffix.lower()}")
            method = PROJECT_SUFFIXES[project.suffix.lower()]
        record = self.store.create(session_id, method, "folder", stems_dir)
        if reference is not None:
            signal, rate = load_audio(reference)
            self._store_reference(session_id, signal, rate)
        self._start_job(session_id)
        return record

    def _folder_project(self, folder: Path) -> tuple[Path | None, Path | None, Path]:
        """The settings a server folder comes with: ``(project file, reference mix, stems folder)``.

        * a song of the dataset folder layout (`mixdown.data.folder`; what ``mixdown data
          lmms`` writes from LMMS projects): opening ``song/stems`` or ``song`` takes
          ``song/params.json`` as the settings and ``song/mix.wav`` as the reference;
        * a folder with one REAPER project (``.RPP``, as the studio's REAPER zip unpacks), or
          its ``stems`` folder: the project's tracks' media files, in one folder under the
          root, are the stems.
        """
        root = self.config.root.resolve()
        parent = folder.parent if folder.name == "stems" and folder.resolve() != root else None
        song = parent or folder
        if (song / "params.json").is_file() and (song / "stems").is_dir():
            mix = song / "mix.wav"
            found = [song / "params.json", *([mix] if mix.is_file() else [])]
            check_files_within(self.config.root, found)
            return found[0], found[1] if len(found) > 1 else None, song / "stems"
        projects = _rpp_files(folder) or (_rpp_files(parent) if parent else [])
        if len(projects) != 1:
            return None, None, folder
        check_files_within(self.config.root, projects)
        folder = projects[0].parent
        folders = {(folder / path).resolve().parent for path in _rpp_media_paths(projects[0].read_text(errors="replace"))}
        if len(folders) != 1 or not next(iter(folders)).is_relative_to(root):
            raise RequestError(f"{projects[0].name}: its tracks' media files are not in one folder under the root", 403)
        return projects[0], None, folders.pop()

    def _check_folder(self, source: str, stems_dir: Path) -> None:
        """A folder session reads only files under the allowed root, symlinks resolved.

        Checked when it opens and again whenever its stems are read (mixing, reloading, the
        REAPER zip), since a file may have become a link since.

        Raises:
            RequestError: 403 when folders are off or a stem links outside the root.
        """
        if source != "folder":
            return
        if self.config.root is None:
            raise RequestError("opening server folders is off: start the server with --root DIR", 403)
        entries = sorted(stems_dir.iterdir()) if stems_dir.is_dir() else []
        check_files_within(self.config.root, [stems_dir, *(
            path for path in entries if not path.name.startswith(".") and path.suffix.lower() in SUPPORTED_EXTENSIONS)])

    def folders(self) -> list[str]:
        """Folders under the allowed root that hold audio files, relative to it ([] when off)."""
        if self.config.root is None:
            return []
        root = self.config.root.resolve()
        found = []
        for path, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            if any(Path(f).suffix.lower() in SUPPORTED_EXTENSIONS for f in files if not f.startswith(".")):
                found.append(Path(path).relative_to(root).as_posix())
            if len(found) >= MAX_LISTED_FOLDERS:
                break
        return found

    # -- background mixing ---------------------------------------------------------------

    def _start_job(self, session_id: str) -> None:
        with self._guard:
            if session_id in self._jobs:
                return
            self._progress[session_id] = ("queued", 0.0)
            self._jobs[session_id] = self._pool.submit(self._mix, session_id)

    def _mix(self, session_id: str) -> None:
        record = self.store.get(session_id)
        try:
            self._check_folder(record.source, record.stems_dir)
            self._progress[session_id] = ("loading stems", 0.0)
            multitrack, notes = self._load(record.stems_dir)
            self._progress[session_id] = (f"mixing ({record.method})", 0.0)
            project = self._project_file(session_id)
            if project is None:
                reference = self._style_reference(record.method, session_id, multitrack)
                params = propose(multitrack, record.method, reference=reference).params
            else:
                params = project_params(project, multitrack)
            live = self._make_live(session_id, multitrack)

            def rendering(done: int, total: int) -> None:
                self._progress[session_id] = ("rendering", done / total)

            result = live.engine.render(params, progress=rendering)
            live.renders[_render_key(params)] = (result, None)
            self.store.finish_mix(session_id, params, _stems_info(multitrack), multitrack.num_frames, notes)
        except MixdownError as exc:
            self.store.set_status(session_id, "error", str(exc))
        except Exception as exc:  # a bug, not bad input: keep the server up and say so on the page
            logger.exception("mixing session %s failed", session_id)
            self.store.set_status(session_id, "error", f"internal error while mixing: {exc}")
        finally:
            with self._guard:
                self._jobs.pop(session_id, None)
                self._progress.pop(session_id, None)

    def _project_file(self, session_id: str) -> Path | None:
        """The project file (REAPER, LMMS or a params JSON) the session was opened with, if any."""
        found = [self.store.session_dir(session_id) / f"project{suffix}" for suffix in PROJECT_SUFFIXES]
        return next((path for path in found if path.is_file()), None)

    def _load(self, stems_dir: Path, sample_rate: int | None = None) -> tuple[Multitrack, list[str]]:
        """Load stems into memory; returns them and the loader's warnings as notes."""
        with _LOAD_WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            multitrack = load_multitrack(stems_dir, sample_rate=sample_rate, max_stems=self.config.max_stems)
        return multitrack, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]

    def _make_live(self, session_id: str, multitrack: Multitrack) -> _Live:
        live = _Live(MixEngine(multitrack, workers=self.config.workers))
        with self._guard:
            self._live[session_id] = live
            self._live.move_to_end(session_id)
            while len(self._live) > self.config.live_sessions:
                self._live.popitem(last=False)
        return live

    def _get_live(self, record: SessionRecord) -> _Live:
        with self._guard:
            live = self._live.get(record.id)
            if live is not None:
                self._live.move_to_end(record.id)
                return live
        self._check_folder(record.source, record.stems_dir)
        multitrack, _ = self._load(record.stems_dir, sample_rate=record.sample_rate)
        names = [s["name"] for s in record.stems]
        if multitrack.names != names:
            raise RequestError(f"the stems on disk changed since the session was mixed: now {multitrack.names}, "
                               f"then {names}", 409)
        return self._make_live(record.id, multitrack)

    # -- reading -----------------------------------------------------------------------------

    def _lock(self, session_id: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(session_id, threading.RLock())

    def _record(self, session_id: str) -> SessionRecord:
        record = self.store.get(session_id)
        if record is None:
            raise RequestError(f"no session {session_id!r}", 404)
        return record

    def _ready(self, session_id: str) -> SessionRecord:
        record = self._record(session_id)
        if record.status == "mixing":
            raise RequestError("the session is still being mixed", 409)
        if record.status == "error":
            raise RequestError(f"the session failed: {record.message}", 409)
        return record

    def sessions(self) -> list[dict[str, Any]]:
        """A summary of every session, newest first."""
        return [{"id": r.id, "created_s": r.created_s, "method": r.method, "source": r.source,
                 "status": r.status, "stems": [s["name"] for s in r.stems]} for r in self.store.list()]

    def state(self, session_id: str) -> dict[str, Any]:
        """Everything the page shows of a session (mixes it first if needed)."""
        record = self._record(session_id)
        if record.status == "mixing":
            self._start_job(session_id)  # resumes a job a server restart interrupted
            stage, fraction = self._progress.get(session_id, ("queued", 0.0))
            return {**_summary(record), "progress": {"stage": stage, "fraction": fraction}}
        if record.status == "error":
            return _summary(record)
        with self._lock(session_id):
            params = self.store.params_at(session_id, record.cursor)
            result, _ = self._render(record, params, monitor=True)
        freqs = display_freqs_hz(record.sample_rate)
        return {
            **_summary(record),
            "sample_rate": record.sample_rate,
            "duration_s": record.num_frames / record.sample_rate,
            "stems": record.stems,
            "params": params.to_dict(),
            "edit": record.cursor,
            "can_undo": record.cursor > 0,
            "can_redo": record.cursor < record.edits - 1,
            "solo": record.solo,
            "mix": {"loudness_lufs": _finite(result.loudness_lufs), "peak_dbfs": _finite(result.peak_dbfs),
                    "true_peak_dbtp": _finite(result.true_peak_dbtp), "master_gain_db": round(result.master_gain_db, 4)},
            "true_peak_meter": _true_peak_meter(record.sample_rate),
            "strips": [{"name": ch.name, "key": _short_hash(strip_key(ch)), "compressor": ch.compressor is not None}
                       for ch in params.ordered_like([s["name"] for s in record.stems]).channels],
            "reference": None if not self.store.reference_path(session_id).exists()
            else {"loudness_lufs": _finite(record.reference_lufs)},
            "eq": {"freqs_hz": [round(float(f), 1) for f in freqs],
                   "curves": {ch.name: [round(float(g), 2) for g in eq_curve_db(ch.eq, freqs, record.sample_rate)]
                              for ch in params.channels}},
        }

    # -- editing ---------------------------------------------------------------------------------

    def set_params(self, session_id: str, data: Any) -> dict[str, Any]:
        """Make ``data`` (the params JSON schema) the session's settings: a new, undoable edit.

        Raises:
            ParamsError: malformed or out-of-range settings, or settings for other stems.
        """
        with self._lock(session_id):
            record = self._ready(session_id)
            params = ConsoleParams.from_dict(data)
            params.check_matches([s["name"] for s in record.stems])
            if params.sample_rate != record.sample_rate:
                raise ParamsError(f"sample_rate: the settings are for {params.sample_rate} Hz but the stems are "
                                  f"{record.sample_rate} Hz")
            current = self.store.params_at(session_id, record.cursor)
            if params.to_dict() != current.to_dict():
                self.store.push_edit(session_id, params)
            # still under the session's lock: the reply shows this edit, not a concurrent one
            return self.state(session_id)

    def step(self, session_id: str, delta: int) -> dict[str, Any]:
        """Undo (``delta=-1``) or redo (``+1``); a step past either end changes nothing."""
        with self._lock(session_id):
            self._ready(session_id)
            self.store.move_cursor(session_id, delta)
            return self.state(session_id)

    def set_solo(self, session_id: str, names: Any) -> dict[str, Any]:
        """Solo the channels ``names`` (monitoring: the settings and the download are unchanged)."""
        with self._lock(session_id):
            record = self._ready(session_id)
            stems = [s["name"] for s in record.stems]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise RequestError("solo: expected a list of channel names")
            unknown = sorted(set(names) - set(stems))
            if unknown:
                raise RequestError(f"solo: no channels named {unknown}")
            self.store.set_solo(session_id, [n for n in stems if n in names])
            return self.state(session_id)

    def remix(self, session_id: str, method: str) -> dict[str, Any]:
        """Let ``method`` propose settings again, with the instrument classes now set; undoable."""
        _check_method(method)
        with self._lock(session_id):
            record = self._ready(session_id)
            current = self.store.params_at(session_id, record.cursor)
            live = self._get_live(record)
            multitrack = live.engine.multitrack.with_instruments({ch.name: ch.instrument for ch in current.channels})
            reference = self._style_reference(method, session_id, multitrack, required=True)
            params = propose(multitrack, method, reference=reference).params
            self.store.push_edit(session_id, params, model=True)
            return self.state(session_id)

    def set_reference(self, session_id: str, upload: Upload) -> dict[str, Any]:
        """Store a reference mix (converted to WAV) for A/B listening and for methods that mix like one."""
        with self._lock(session_id):
            self._record(session_id)
            self._store_reference(session_id, *self._read_reference(upload))
            return self.state(session_id)

    def _read_reference(self, upload: Upload) -> tuple[np.ndarray, int]:
        """An uploaded reference mix decoded: ``(signal (channels, samples), rate)``; checked like a stem."""
        self._check_size(upload)
        audio = probe_upload(upload.file, upload.filename)
        incoming_dir = self.store.data_dir / "incoming"
        incoming_dir.mkdir(parents=True, exist_ok=True)
        incoming = incoming_dir / f".{self.store.new_id()}{audio.extension}"
        try:
            upload.file.seek(0)
            with open(incoming, "wb") as out:
                shutil.copyfileobj(upload.file, out, 1 << 20)
            return load_audio(incoming)
        finally:
            incoming.unlink(missing_ok=True)

    def _check_size(self, upload: Upload) -> None:
        """Refuse (413) a file over the per-file limit."""
        if upload.size > self.config.max_file_bytes:
            raise RequestError(f"{upload.filename}: {format_bytes(upload.size)}; the limit per file is "
                               f"{format_bytes(self.config.max_file_bytes)}", 413)

    def _style_reference(self, method: str, session_id: str, multitrack: Multitrack,
                         required: bool = False) -> np.ndarray | None:
        """The session's reference at the stems' rate, for a method that mixes like one; None for the others.

        Raises:
            RequestError: ``required`` and the method takes a reference the session does not have.
            AudioError: the reference cannot serve as a style (mono, too short, silent).
        """
        info = METHODS.get(method)
        if info is None or not info.capabilities.takes_reference:
            return None
        path = self.store.reference_path(session_id)
        if not path.exists():
            if required:
                raise RequestError(f"{method} mixes like a reference mix: add one (Reference) first")
            return None
        from mixdown.style.reference import load_style_reference

        return load_style_reference(path, multitrack.sample_rate)

    def _store_reference(self, session_id: str, signal: np.ndarray, rate: int) -> None:
        target = self.store.reference_path(session_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_audio(target, signal, rate)
        stereo = as_stereo(signal)
        self.store.set_reference_lufs(session_id, _finite(loudness_lufs(stereo, rate)))

    def delete(self, session_id: str) -> None:
        """Forget a session (not while it is being mixed)."""
        with self._lock(session_id):
            self._record(session_id)
            with self._guard:
                if session_id in self._jobs:
                    raise RequestError("the session is being mixed; delete it when it is done", 409)
                self._live.pop(session_id, None)
            self.store.delete(session_id)

    # -- audio out ----------------------------------------------------------------------------------

    def mix_wav(self, session_id: str, which: str = "edited", monitor: bool = False) -> tuple[bytes, float | None]:
        """The session's mix as a 24-bit WAV file, and its loudness (LUFS, None for silence).

        Args:
            which: ``"edited"`` (the settings in effect) or ``"model"`` (the method's).
            monitor: apply the solo buttons (for listening in the page).
        """
        with self._lock(session_id):
            record = self._ready(session_id)
            params = record.model_params if which == "model" else self.store.params_at(session_id, record.cursor)
            result, wav = self._render(record, params, monitor=monitor, wav=True)
        return wav, _finite(result.loudness_lufs)

    def strip_wav(self, session_id: str, index: int) -> tuple[bytes, str]:
        """Channel ``index``'s strip (EQ -> compressor at unity fader, before the pan) as a
        32-bit float WAV, and its key: what the page plays for the live preview.

        The strip follows the settings in effect; the key (as in `state`'s ``strips``)
        changes when its EQ or compressor does.
        """
        with self._lock(session_id):
            record = self._ready(session_id)
            name = self._stem_name(record, index)
            params = self.store.params_at(session_id, record.cursor)
            strip = self._get_live(record).engine.strip(params, name)
            key = _short_hash(strip.key)
        buffer = io.BytesIO()
        sf.write(buffer, strip.audio.T, record.sample_rate, subtype="FLOAT", format="WAV")
        return buffer.getvalue(), key

    def gain_reduction(self, session_id: str, index: int) -> dict[str, Any]:
        """Channel ``index``'s compressor gain reduction over the song for the page's meters.

        Returns:
            ``{"key", "hop_frames", "sample_rate", "gain_reduction_db"}``: one value (dB,
            rounded to 0.1) per ``hop_frames`` frames, ``[]`` without a compressor.
        """
        with self._lock(session_id):
            record = self._ready(session_id)
            name = self._stem_name(record, index)
            params = self.store.params_at(session_id, record.cursor)
            strip = self._get_live(record).engine.strip(params, name)
        values = [] if strip.gain_reduction_db is None else np.round(strip.gain_reduction_db, 1).tolist()
        return {"key": _short_hash(strip.key), "hop_frames": GAIN_REDUCTION_HOP, "sample_rate": record.sample_rate,
                "gain_reduction_db": values}

    def reverb_wav(self, session_id: str) -> bytes:
        """The console's reverb impulse response for the settings in effect (decay and pre-delay;
        unit energy per side, the return level not applied), as a 32-bit float WAV."""
        record = self._ready(session_id)
        reverb = self.store.params_at(session_id, record.cursor).master.reverb
        ir = reverb_impulse_response(reverb.decay_s, reverb.predelay_ms, record.sample_rate)
        buffer = io.BytesIO()
        sf.write(buffer, ir.T, record.sample_rate, subtype="FLOAT", format="WAV")
        return buffer.getvalue()

    @staticmethod
    def _stem_name(record: SessionRecord, index: int) -> str:
        if not 0 <= index < len(record.stems):
            raise RequestError(f"no channel {index}: the session has {len(record.stems)}", 404)
        return record.stems[index]["name"]

    def params(self, session_id: str) -> ConsoleParams:
        """The settings in effect."""
        record = self._ready(session_id)
        return self.store.params_at(session_id, record.cursor)

    def reference_path(self, session_id: str) -> Path:
        self._record(session_id)
        path = self.store.reference_path(session_id)
        if not path.exists():
            raise RequestError("this session has no reference mix", 404)
        return path

    def reaper_zip(self, session_id: str, platform: str = "windows") -> bytes:
        """A zip of a REAPER project (``project.RPP``) with the settings in effect and the stems
        it plays (under ``stems/``, referenced by relative paths).

        Args:
            platform: whose plug-in file names to write (see `mixdown.export.reaper`).
        """
        if platform not in PLUGIN_SUFFIXES:
            raise RequestError(f"platform: {platform!r} is not one of {', '.join(PLUGIN_SUFFIXES)}")
        record = self._ready(session_id)
        params = self.store.params_at(session_id, record.cursor)
        self._check_folder(record.source, record.stems_dir)
        with _LOAD_WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            multitrack = load_multitrack(record.stems_dir, sample_rate=record.sample_rate, in_memory=False,
                                         max_stems=self.config.max_stems)
        media = {stem.name: f"stems/{stem.path.name}" for stem in multitrack.stems}
        with self._lock(session_id):  # the master's loudness gain, as the studio's render measured it
            gain_db = self._render(record, params, monitor=False)[0].master_gain_db
        project = reaper_project(multitrack, params, media, gain_db, platform=platform)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("project.RPP", project.text)
            for stem in multitrack.stems:
                archive.write(stem.path, media[stem.name])
            if project.reverb_ir is not None:
                ir = io.BytesIO()
                sf.write(ir, project.reverb_ir.T, project.sample_rate, subtype="FLOAT", format="WAV")
                archive.writestr(project.reverb_ir_path, ir.getvalue())
            archive.writestr("README.txt", reaper_summary(project))
        return buffer.getvalue()

    def _render(self, record: SessionRecord, params: ConsoleParams, monitor: bool,
                wav: bool = False) -> tuple[RenderResult, bytes | None]:
        """Render ``params`` (with the solo buttons if ``monitor``), cached per live session.

        Solo is solo-in-place: the other channels are muted and the master keeps the gain
        it applies to the whole mix (its loudness normalisation is not redone for the
        soloed channels), so a soloed channel sounds at its level in the mix, as on a
        console and in the page's live preview.
        """
        if monitor and record.solo:
            full, _ = self._render(record, params, monitor=False)
            params = replace(params, channels=[replace(ch, mute=ch.mute or ch.name not in record.solo)
                                               for ch in params.channels],
                             master=replace(params.master, target_lufs=None, gain_db=full.master_gain_db))
        key = _render_key(params)
        live = self._get_live(record)
        cached = live.renders.get(key)
        if cached is None:
            cached = (live.engine.render(params), None)
        if wav and cached[1] is None:
            cached = (cached[0], _wav_bytes(cached[0].mix, record.sample_rate))
        live.renders[key] = cached
        live.renders.move_to_end(key)
        while len(live.renders) > RENDERS_KEPT:
            live.renders.popitem(last=False)
        return cached


def project_params(path: Path, multitrack: Multitrack) -> ConsoleParams:
    """Settings for ``multitrack`` from the project a session was opened with.

    * ``.rpp``: a REAPER project `mixdown.export.reaper` wrote (and maybe edited in REAPER
      since), read by `mixdown.export.rpp.params_from_rpp`;
    * ``.mmp`` / ``.mmpz``: an LMMS project: each stem takes the gain and pan the project
      states for its track (`mixdown.data.lmms.project_tracks`; a stem ``NN_name`` as
      ``mixdown data lmms`` names them is track NN, otherwise the track of the same name),
      normalisation and limiter off as the producer's mix has them;
    * ``.json``: a settings file (the dataset layout's ``params.json``).

    Stems the project does not name get unity settings.

    Raises:
        MixdownError: an unreadable project or settings that do not fit the stems.
    """
    suffix = path.suffix.lower()
    rate = multitrack.sample_rate
    if suffix == ".rpp":
        stems = {stem.name: stem.is_stereo for stem in multitrack.stems}
        return params_from_rpp(path.read_text(errors="replace"), stems, rate)
    if suffix == ".json":
        params = ConsoleParams.load(path)
        params.check_matches(multitrack.names)
        if params.sample_rate != rate:
            raise ParamsError(f"{path.name}: the settings are for {params.sample_rate} Hz but the stems are {rate} Hz")
        return params
    from mixdown.data.lmms import project_tracks, read_project

    tracks = project_tracks(read_project(path))
    by_index = {track.index: track for track in tracks}
    by_name = {safe_stem_name(track.name).lower(): track for track in tracks}
    gain, pan = SPECS["gain_db"], SPECS["pan"]
    channels = []
    for stem in multitrack.stems:
        number = re.match(r"(\d+)_", stem.name)
        track = by_index.get(int(number.group(1))) if number else None
        track = track or by_name.get(stem.name.lower())
        if track is None:
            channels.append(ChannelParams(name=stem.name, instrument=stem.instrument))
            continue
        level = track.gain_db if math.isfinite(track.gain_db) else gain.minimum
        channels.append(ChannelParams(name=stem.name, instrument=stem.instrument, mute=track.muted,
                                      gain_db=round(min(max(level, gain.minimum), gain.maximum), 3),
                                      pan=round(min(max(track.pan, pan.minimum), pan.maximum), 4)))
    return ConsoleParams(channels=channels, master=MasterParams(target_lufs=None, ceiling_dbtp=None),
                         sample_rate=rate, method="lmms")


def _rpp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".rpp") if folder.is_dir() else []


def _rpp_media_paths(text: str) -> list[str]:
    """The media file paths of a REAPER project's tracks."""
    return list(rpp_media(parse_rpp(text)).values())


def schema_entry(spec: ParamSpec) -> dict[str, Any]:
    """One `SCHEMA` entry as the page reads it (see `page_config`)."""
    return {"path": spec.path, "tensor": spec.tensor, "key": spec.key, "level": spec.level, "group": spec.group,
            "min": spec.minimum, "max": spec.maximum, "default": spec.default, "unit": spec.unit,
            "scale": spec.scale, "digits": spec.digits, "nullable": spec.off is not None}


def page_config(config: StudioConfig) -> dict[str, Any]:
    """What the page needs to know to build its forms and check input early.

    ``schema`` lists every console parameter of `mixdown.params.SCHEMA`, in order: its JSON
    path, tensor name, key, level (``channel``, ``band``, ``master``), group (the object
    holding it: ``compressor``, ``reverb`` or ``""``), range, default, unit, scale
    (``linear`` or ``log``, for sliders), digits kept, and whether it may be null (off).
    The page builds its controls from it. ``band_freq_fraction``: band frequencies stay
    under this fraction of the sample rate (`mixdown.params.max_design_freq_hz`).
    """
    return {
        "methods": STUDIO_METHODS,
        "instrument_classes": list(INSTRUMENT_CLASSES),
        "eq_band_types": list(EQ_BAND_TYPES),
        "max_eq_bands": MAX_EQ_BANDS,
        "schema": [schema_entry(spec) for spec in SCHEMA],
        "band_freq_fraction": DESIGN_FREQ_FRACTION,
        "max_stems": config.max_stems,
        "max_file_bytes": config.max_file_bytes,
        "max_request_bytes": config.max_request_bytes,
        "folders": config.root is not None,
        "gain_reduction_hop": GAIN_REDUCTION_HOP,
    }


def _check_method(method: str) -> None:
    if method not in STUDIO_METHODS:
        raise RequestError(f"unknown method {method!r}; choose one of {', '.join(STUDIO_METHODS)}")


def _summary(record: SessionRecord) -> dict[str, Any]:
    return {"id": record.id, "status": record.status, "method": record.method, "source": record.source,
            "created_s": record.created_s, "message": record.message, "warnings": record.warnings}


def _stems_info(multitrack: Multitrack) -> list[dict]:
    return [{"name": s.name, "instrument": s.instrument, "channels": s.channels} for s in multitrack.stems]


def _render_key(params: ConsoleParams) -> str:
    return params.to_json()


def _true_peak_meter(sample_rate: int) -> dict[str, Any]:
    """The BS.1770 true-peak interpolator at a session's rate (`mixdown.dsp.true_peak.bs1770_bank`),
    for the page's meter to read true peak as the server does: ``taps[p][k]`` weighs
    ``x[n + first + k]`` for the value at ``n + delays[p]``."""
    bank = bs1770_bank(bs1770_oversampling(sample_rate))
    return {"taps": bank.taps.tolist(), "delays": bank.delays.tolist(), "first": bank.first}


def _short_hash(text: str) -> str:
    """A short stable digest (the page's cache key of a strip)."""
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _finite(value: float | None) -> float | None:
    """``value`` rounded for display, None for a missing or infinite reading (JSON has no inf)."""
    return None if value is None or not math.isfinite(value) else round(value, 2)


def _wav_bytes(mix: np.ndarray, sample_rate: int) -> bytes:
    """A mix ``(2, frames)`` as 24-bit WAV file bytes."""
    buffer = io.BytesIO()
    sf.write(buffer, mix.T, sample_rate, subtype="PCM_24", format="WAV")
    return buffer.getvalue()

