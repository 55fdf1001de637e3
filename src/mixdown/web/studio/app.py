"""The studio's HTTP layer: FastAPI routes over `Studio`, plus the static page.

Routes (JSON unless said otherwise; errors are ``{"detail": "..."}`` with a 4xx status):

==========================================  ===============================================
``GET  /``                                  the page (``static/index.html``)
``GET  /api/config``                        methods, classes, the parameter schema, limits
``GET  /api/folders``                       folders with audio under the allowed root
``GET  /api/sessions``                      sessions, newest first
``POST /api/sessions``                      multipart: ``method`` and ``stems`` (files) or ``folder``,
                                            optional ``reference`` (a mix for A/B that ``style`` mixes like)
``GET  /api/sessions/{id}``                 the session: status/progress, or settings and meters
``DELETE /api/sessions/{id}``               forget it (uploaded files are removed)
``PUT  /api/sessions/{id}/params``          new settings (the params JSON): an undoable edit
``POST /api/sessions/{id}/undo``, ``/redo`` move through the edit history
``PUT  /api/sessions/{id}/solo``            ``{"names": [...]}`` soloed channels (monitoring only)
``POST /api/sessions/{id}/remix``           ``{"method": ...}`` new settings from a method
``PUT  /api/sessions/{id}/reference``       multipart ``reference``: a reference mix for A/B (and for
                                            re-mixing with ``style``)
``GET  /api/sessions/{id}/reference.wav``   it, as WAV
``GET  /api/sessions/{id}/mix.wav``         the mix; ``which=edited|model``, ``monitor=1`` applies
                                            solo, ``download=1`` names it as an attachment
``GET  /api/sessions/{id}/params.json``     the settings in effect (attachment)
``GET  /api/sessions/{id}/sheet.csv``       the mix sheet (attachment)
``GET  /api/sessions/{id}/strips/{i}.wav``  channel ``i`` after its EQ and compressor, before
                                            fader and pan (32-bit float; ``X-Strip-Key``):
                                            what the page's live preview plays
``GET  /api/sessions/{id}/strips/{i}/gain_reduction``  its compressor's gain reduction over time
``GET  /api/sessions/{id}/reverb.wav``      the console's reverb impulse response
``GET  /api/sessions/{id}/reaper.zip``      a REAPER project with the stems (attachment);
                                            ``platform=windows|macos|linux`` names the plug-in files
==========================================  ===============================================

Requests that change anything (POST, PUT, DELETE) must come from the studio's own page
(``Origin``/``Referer`` naming the ``Host``) and carry ``application/json`` bodies
(forms for uploads and folders); JSON bodies are limited in size, nesting and to
finite numbers (`mixdown.web.common.RequestGuard`, `mixdown.web.common.parse_json`).
Uploads are refused with 413 as soon as they pass the per-file cap times the files sent.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.middleware.trustedhost import TrustedHostMiddleware

from mixdown.errors import MixdownError
from mixdown.export.mixsheet import mixsheet_csv
from mixdown.web.common import (
    FORM_TYPE,
    JSON_TYPE,
    MULTIPART_TYPE,
    BodySizeLimit,
    RequestError,
    RequestGuard,
    parse_json,
)
from mixdown.web.studio.service import Studio, StudioConfig, Upload, page_config
from mixdown.web.studio.store import SESSION_ID_CHARS

STATIC_DIR = Path(__file__).parent / "static"
JSON_BODY_LIMIT = 2 * 2**20
_SESSION_ID = re.compile(rf"[A-Za-z0-9_-]{{{SESSION_ID_CHARS}}}")
_NO_STORE = {"Cache-Control": "no-store"}


def create_app(config: StudioConfig, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The studio app serving ``config.data_dir``.

    Args:
        config: server settings.
        allowed_hosts: Host header values accepted (None: any), against DNS rebinding
            when the server listens on the loopback interface.
    """
    studio = Studio(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        studio.close()

    app = FastAPI(title="mixdown studio", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.studio = studio
    upload_paths = re.compile(r"/api/sessions(/[^/]+/reference)?/?")

    def is_upload(method: str, path: str) -> bool:
        return method in ("POST", "PUT") and upload_paths.fullmatch(path) is not None

    def body_limit(method: str, path: str) -> int:
        return config.max_request_bytes if is_upload(method, path) else JSON_BODY_LIMIT

    def file_limit(method: str, path: str) -> int | None:
        return config.max_file_bytes if is_upload(method, path) else None

    def body_types(method: str, path: str) -> tuple[str, ...]:
        return (MULTIPART_TYPE, FORM_TYPE) if is_upload(method, path) else (JSON_TYPE,)

    # outermost last: the Host check, then same origin + content type, then the body size
    app.add_middleware(BodySizeLimit, limit_for=body_limit, file_limit_for=file_limit)
    app.add_middleware(RequestGuard, body_types=body_types)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(RequestError)
    async def upload_error(_request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)

    @app.exception_handler(MixdownError)
    async def user_error(_request: Request, exc: MixdownError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_NO_STORE)

    @app.get("/api/config")
    def get_config() -> dict[str, Any]:
        return page_config(config)

    @app.get("/api/folders")
    def get_folders() -> dict[str, Any]:
        return {"folders": studio.folders()}

    @app.get("/api/sessions")
    def list_sessions() -> dict[str, Any]:
        return {"sessions": studio.sessions()}

    @app.post("/api/sessions", status_code=201)
    async def create_session(request: Request) -> dict[str, Any]:
        form = await request.form(max_files=config.max_stems + 2, max_fields=8, max_part_size=64 * 2**10)
        method = str(form.get("method") or "rules")
        folder = form.get("folder")
        stems = [item for item in form.getlist("stems") if isinstance(item, UploadFile)]
        reference = form.get("reference")
        if folder and stems:
            raise RequestError("give either stems or a folder, not both")
        if folder:
            record = await run_in_threadpool(studio.create_from_folder, method, str(folder))
        else:
            uploads = [Upload(item.filename or "stem", item.file, item.size or 0) for item in stems]
            upload = (Upload(reference.filename or "reference", reference.file, reference.size or 0)
                      if isinstance(reference, UploadFile) else None)
            record = await run_in_threadpool(studio.create_from_uploads, method, uploads, upload)
        return await run_in_threadpool(studio.state, record.id)

    @app.get("/api/sessions/{session_id}")
    def get_session(session_id: str) -> dict[str, Any]:
        return studio.state(_checked(session_id))

    @app.delete("/api/sessions/{session_id}", status_code=204)
    def delete_session(session_id: str) -> Response:
        studio.delete(_checked(session_id))
        return Response(status_code=204)

    @app.put("/api/sessions/{session_id}/params")
    async def put_params(session_id: str, request: Request) -> dict[str, Any]:
        data = await _json(request)
        return await run_in_threadpool(studio.set_params, _checked(session_id), data)

    @app.post("/api/sessions/{session_id}/undo")
    def undo(session_id: str) -> dict[str, Any]:
        return studio.step(_checked(session_id), -1)

    @app.post("/api/sessions/{session_id}/redo")
    def redo(session_id: str) -> dict[str, Any]:
        return studio.step(_checked(session_id), +1)

    @app.put("/api/sessions/{session_id}/solo")
    async def put_solo(session_id: str, request: Request) -> dict[str, Any]:
        data = await _json(request)
        names = data.get("names") if isinstance(data, dict) else None
        return await run_in_threadpool(studio.set_solo, _checked(session_id), names)

    @app.post("/api/sessions/{session_id}/remix")
    async def remix(session_id: str, request: Request) -> dict[str, Any]:
        data = await _json(request)
        method = data.get("method") if isinstance(data, dict) else None
        return await run_in_threadpool(studio.remix, _checked(session_id), str(method))

    @app.put("/api/sessions/{session_id}/reference")
    async def put_reference(session_id: str, request: Request) -> dict[str, Any]:
        form = await request.form(max_files=1, max_fields=4, max_part_size=64 * 2**10)
        item = form.get("reference")
        if not isinstance(item, UploadFile):
            raise RequestError("no reference: send the file in the form field 'reference'")
        upload = Upload(item.filename or "reference", item.file, item.size or 0)
        return await run_in_threadpool(studio.set_reference, _checked(session_id), upload)

    @app.get("/api/sessions/{session_id}/reference.wav")
    def get_reference(session_id: str) -> FileResponse:
        return FileResponse(studio.reference_path(_checked(session_id)), media_type="audio/wav", headers=_NO_STORE)

    @app.get("/api/sessions/{session_id}/mix.wav")
    def get_mix(session_id: str, which: str = "edited", monitor: bool = False, download: bool = False) -> Response:
        if which not in ("edited", "model"):
            raise RequestError(f"which: {which!r} is not 'edited' or 'model'")
        wav, loudness = studio.mix_wav(_checked(session_id), which, monitor)
        headers = dict(_NO_STORE)
        if loudness is not None:
            headers["X-Loudness-LUFS"] = f"{loudness:.2f}"
        if download:
            headers["Content-Disposition"] = f'attachment; filename="mixdown-{session_id[:8]}-{which}.wav"'
        return Response(wav, media_type="audio/wav", headers=headers)

    @app.get("/api/sessions/{session_id}/params.json")
    def get_params(session_id: str) -> Response:
        text = studio.params(_checked(session_id)).to_json()
        return Response(text, media_type="application/json", headers=_attachment(f"mixdown-{session_id[:8]}.params.json"))

    @app.get("/api/sessions/{session_id}/sheet.csv")
    def get_sheet(session_id: str) -> Response:
        params = studio.params(_checked(session_id))
        return Response(mixsheet_csv(params), media_type="text/csv",
                        headers=_attachment(f"mixdown-{session_id[:8]}-sheet.csv"))

    @app.get("/api/sessions/{session_id}/strips/{index}.wav")
    def get_strip(session_id: str, index: int) -> Response:
        wav, key = studio.strip_wav(_checked(session_id), index)
        return Response(wav, media_type="audio/wav", headers={**_NO_STORE, "X-Strip-Key": key})

    @app.get("/api/sessions/{session_id}/strips/{index}/gain_reduction")
    def get_gain_reduction(session_id: str, index: int) -> dict[str, Any]:
        return studio.gain_reduction(_checked(session_id), index)

    @app.get("/api/sessions/{session_id}/reverb.wav")
    def get_reverb(session_id: str) -> Response:
        return Response(studio.reverb_wav(_checked(session_id)), media_type="audio/wav", headers=_NO_STORE)

    @app.get("/api/sessions/{session_id}/reaper.zip")
    def get_reaper(session_id: str, platform: str = "windows") -> Response:
        return Response(studio.reaper_zip(_checked(session_id), platform), media_type="application/zip",
                        headers=_attachment(f"mixdown-{session_id[:8]}-reaper.zip"))

    return app


def _checked(session_id: str) -> str:
    """``session_id`` if it has the shape of one (it becomes part of paths), else a 404."""
    if not _SESSION_ID.fullmatch(session_id):
        raise RequestError(f"no session {session_id!r}", 404)
    return session_id


async def _json(request: Request) -> Any:
    """The body as JSON, with `mixdown.web.common.parse_json`'s limits (depth, finite numbers)."""
    return parse_json(await request.body())


def _attachment(filename: str) -> dict[str, str]:
    return {**_NO_STORE, "Content-Disposition": f'attachment; filename="{filename}"'}

