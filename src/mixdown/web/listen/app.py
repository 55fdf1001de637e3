"""The listening-test server: a FastAPI app over a test folder.

The page (``static/``, plain HTML + JS, no build step) registers a participant, shows a
training page, then the participant's trials. Every test type of
`mixdown.listening.config.TEST_TYPES` is served: MUSHRA, BS.1116, AB and ABX.

**The page never learns which condition is which.** A trial lists its versions as
opaque audio URLs (``/api/audio/KEY``): each key is an HMAC of the participant, the trial
and the version under a secret kept in the test's database, so URLs differ between
participants and trials, say nothing about the condition, and survive a server restart.
Every audio response has the same headers (type, length, ``no-store``; no ETag or
Last-Modified) and bytes of its own: the excerpt is re-quantised to 24 bits with
triangular dither of +-1 LSB (about -147 dBFS, inaudible) seeded by the same HMAC, so the
hidden reference is not byte-identical to the open reference it copies.

Participants are identified by a secret token (header ``X-Participant-Token``) that the
page keeps in the browser's localStorage, so a closed tab resumes where it was. Answers
follow the store's rules (`mixdown.listening.store`): trials in the order served, a
submitted trial cannot change, nothing after finishing; each is committed to SQLite
before the reply. Requests that change anything must come from the page itself (same
origin, JSON bodies: `mixdown.web.common.RequestGuard`) and the ``Host`` header must be
one the server was started for. Errors are JSON ``{"detail": "one-line message"}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import soundfile as sf
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from mixdown.errors import MixdownError
from mixdown.listening.manifest import MANIFEST_NAME, RESPONSES_NAME, Manifest
from mixdown.listening.randomise import Trial, participant_plan
from mixdown.listening.store import (
    DuplicateParticipantError,
    ParticipantRecord,
    ResponseStore,
    SubmissionRefused,
)
from mixdown.web.common import (
    JSON_TYPE,
    BodySizeLimit,
    RequestError,
    RequestGuard,
    parse_json,
)

STATIC_DIR = Path(__file__).parent / "static"
MAX_ID_CHARS = 64
MAX_COMMENT_CHARS = 5000
MAX_BODY_BYTES = 256 * 2**10
TOKEN_HEADER = "X-Participant-Token"
KNOWN = "known"
"""The version key of the open (labelled) reference."""
X_KEY = "x"
"""The version key of ABX's X."""
GRADE_RANGE = (1.0, 5.0)
"""The BS.1116 five-grade impairment scale."""
RATING_RANGE = (0.0, 100.0)
"""The MUSHRA continuous quality scale."""

_NO_STORE = {"Cache-Control": "no-store"}


def create_app(test_dir: str | os.PathLike, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The app serving one test folder.

    Args:
        test_dir: Folder written by ``mixdown listen create``; answers go to its
            ``responses.sqlite``.
        allowed_hosts: ``Host`` header values accepted (None: any), against DNS rebinding
            (`mixdown.web.common.allowed_hosts_for`).

    Returns:
        The FastAPI application.

    Raises:
        MixdownError: If the folder is not a complete test.
    """
    test_dir = Path(test_dir)
    manifest = Manifest.load(test_dir)
    for song in manifest.songs:
        for relative in song.files.values():
            if not (test_dir / relative).is_file():
                raise MixdownError(f"{test_dir}: {relative} is missing; "
                                   "re-create the test with `mixdown listen create`")
    store = ResponseStore(test_dir / RESPONSES_NAME)
    secret = store.secret()
    test_id = hashlib.sha256((test_dir / MANIFEST_NAME).read_bytes()).hexdigest()[:16]
    test_type = manifest.test_type
    reference = manifest.conditions.index(manifest.reference)
    app = FastAPI(title=manifest.name, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodySizeLimit, limit_for=lambda _method, _path: MAX_BODY_BYTES)
    app.add_middleware(RequestGuard, body_types=lambda _method, _path: (JSON_TYPE,))
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(RequestError)
    async def request_error(_request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)

    def participant(token: str | None) -> ParticipantRecord:
        record = store.participant_by_token(token) if token else None
        if record is None:
            raise HTTPException(401, "unknown participant; start again with your ID")
        return record

    def trials_of(record: ParticipantRecord) -> tuple[Trial, ...]:
        return participant_plan(test_type, len(manifest.songs), len(manifest.conditions), reference,
                                manifest.seed, record.participant_id, manifest.repeats)

    def session(record: ParticipantRecord) -> dict:
        done = store.submitted_trials(record.participant_id)
        count = len(trials_of(record))
        remaining = [i for i in range(count) if i not in done]
        return {"participant_id": record.participant_id, "trials": count,
                "next_trial": remaining[0] if remaining else None, "finished": record.finished_at is not None}

    def trial_at(record: ParticipantRecord, index: int) -> Trial:
        trials = trials_of(record)
        if not 0 <= index < len(trials):
            raise HTTPException(404, f"no trial {index}; this test has {len(trials)}")
        return trials[index]

    def versions(trial: Trial) -> list[str]:
        """The version keys of a trial: the open reference, the slots, ABX's X."""
        keys = [KNOWN] if test_type in ("mushra", "bs1116") else []
        keys += [str(slot) for slot in range(len(trial.condition_order))]
        return keys + ([X_KEY] if test_type == "abx" else [])

    def audio_key(record: ParticipantRecord, index: int, version: str, purpose: str = "url") -> str:
        message = f"{purpose}\0{record.participant_id.lower()}\0{index}\0{version}".encode()
        digest = hmac.new(secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    def audio_condition(trial: Trial, version: str) -> str:
        if version == KNOWN:
            return manifest.reference
        slot = trial.x_slot if version == X_KEY else int(version)
        return manifest.conditions[trial.condition_order[slot]]

    def find_audio(record: ParticipantRecord, key: str) -> Iterator[tuple[int, Trial, str]]:
        for index, trial in enumerate(trials_of(record)):
            for version in versions(trial):
                if hmac.compare_digest(audio_key(record, index, version), key):
                    yield index, trial, version

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_NO_STORE)

    @app.get("/api/test")
    def test_info() -> dict:
        per_song = 1 if test_type == "mushra" else _items_per_song(test_type, len(manifest.conditions))
        return {"test_id": test_id, "name": manifest.name, "instructions": manifest.instructions,
                "type": test_type, "trials": len(manifest.songs) * per_song * manifest.repeats,
                "songs": len(manifest.songs), "conditions": len(manifest.conditions)}

    @app.post("/api/participants", status_code=201)
    async def start(request: Request) -> dict:
        body = _object(parse_json(await request.body(), status=422), {"participant_id"})
        participant_id = body.get("participant_id")
        if not isinstance(participant_id, str):
            raise HTTPException(422, f"participant_id: enter a participant ID of 1 to {MAX_ID_CHARS} printable "
                                     "characters")
        participant_id = participant_id.strip()
        if not participant_id or len(participant_id) > MAX_ID_CHARS or not participant_id.isprintable():
            raise HTTPException(422, f"enter a participant ID of 1 to {MAX_ID_CHARS} printable characters")
        try:
            record = store.add_participant(participant_id)
        except DuplicateParticipantError as exc:
            raise HTTPException(409, str(exc)) from None
        return {"token": record.token, **session(record)}

    @app.get("/api/session")
    def get_session(token: Annotated[str | None, Header(alias=TOKEN_HEADER)] = None) -> dict:
        return session(participant(token))

    @app.get("/api/trials/{index}")
    def get_trial(index: int, token: Annotated[str | None, Header(alias=TOKEN_HEADER)] = None) -> dict:
        record = participant(token)
        trial = trial_at(record, index)
        state = session(record)
        if state["next_trial"] is not None and index > state["next_trial"]:
            raise HTTPException(409, f"trial {index + 1} comes after trial {state['next_trial'] + 1}")
        song = manifest.songs[trial.song_index]
        urls = {version: f"api/audio/{audio_key(record, index, version)}" for version in versions(trial)}
        slots = len(trial.condition_order)
        return {"index": index, "trials": state["trials"], "type": test_type, "slots": slots,
                "duration_s": song.duration_s, "known": urls.get(KNOWN),
                "slot_urls": [urls[str(slot)] for slot in range(slots)], "x": urls.get(X_KEY)}

    @app.get("/api/audio/{key}")
    def get_audio(key: str, token: Annotated[str | None, Header(alias=TOKEN_HEADER)] = None) -> Response:
        record = participant(token)
        found = next(find_audio(record, key), None)
        if found is None:
            raise HTTPException(404, "no such audio")
        index, trial, version = found
        song = manifest.songs[trial.song_index]
        seed = audio_key(record, index, version, purpose="dither")
        wav = _dithered_wav(test_dir / song.files[audio_condition(trial, version)], seed)
        return Response(wav, media_type="audio/wav", headers=_NO_STORE)

    @app.post("/api/trials/{index}")
    async def submit_trial(index: int, request: Request,
                           token: Annotated[str | None, Header(alias=TOKEN_HEADER)] = None) -> dict:
        record = participant(token)
        trial = trial_at(record, index)
        data = parse_json(await request.body(), status=422)
        song = manifest.songs[trial.song_index].name
        conditions = [manifest.conditions[c] for c in trial.condition_order]
        try:
            if test_type == "mushra":
                body = _object(data, {"ratings", "played", "comment"})
                ratings = _numbers(body, "ratings", len(conditions), RATING_RANGE)
                _check_played(body, [_slot_label(slot) for slot in range(len(conditions))])
                comment = _comment(body)
                store.submit_ratings(record.participant_id, index, song,
                                     {condition: (slot, rating)
                                      for slot, (condition, rating) in enumerate(zip(conditions, ratings))}, comment)
            elif test_type == "bs1116":
                body = _object(data, {"grades", "played", "comment"})
                grades = _numbers(body, "grades", 2, GRADE_RANGE)
                _check_played(body, ["A", "B"])
                comment = _comment(body)
                condition_slot = 0 if trial.condition_order[1] == reference else 1
                store.submit_grades(record.participant_id, index, song, conditions[condition_slot], condition_slot,
                                    grades[1 - condition_slot], grades[condition_slot], comment)
            else:
                body = _object(data, {"choice", "played", "comment"})
                choice = body.get("choice")
                if isinstance(choice, bool) or choice not in (0, 1):
                    question = "is X A (0) or B (1)" if test_type == "abx" else "which do you prefer, A (0) or B (1)"
                    raise HTTPException(422, f"choice: {question}?")
                _check_played(body, ["A", "B", "X"] if test_type == "abx" else ["A", "B"])
                comment = _comment(body)
                store.submit_choice(record.participant_id, index, song, conditions[0], conditions[1], int(choice),
                                    trial.x_slot, comment)
        except SubmissionRefused as exc:
            raise HTTPException(409, str(exc)) from None
        return session(participant(token))

    @app.post("/api/finish")
    async def finish(request: Request, token: Annotated[str | None, Header(alias=TOKEN_HEADER)] = None) -> dict:
        record = participant(token)
        body = _object(parse_json(await request.body() or b"{}", status=422), {"comment"})
        if session(record)["next_trial"] is not None:
            raise HTTPException(409, "rate every trial before finishing")
        store.finish(record.participant_id, _comment(body))
        return session(participant(token))

    return app


def _items_per_song(test_type: str, conditions: int) -> int:
    return conditions * (conditions - 1) // 2 if test_type == "ab" else conditions - 1


def _object(data: Any, keys: set[str]) -> dict[str, Any]:
    """``data`` if it is a JSON object with no keys but ``keys``, else a 422 naming the problem."""
    if not isinstance(data, dict):
        raise HTTPException(422, f"expected a JSON object with {', '.join(sorted(keys))}")
    unknown = sorted(set(data) - keys)
    if unknown:
        raise HTTPException(422, f"{unknown[0]}: unknown field; expected {', '.join(sorted(keys))}")
    return data


def _numbers(body: dict[str, Any], field: str, count: int, limits: tuple[float, float]) -> list[float]:
    """``body[field]``: a list of ``count`` numbers within ``limits`` (JSON true and false are not numbers)."""
    values = body.get(field)
    if not isinstance(values, list) or len(values) != count:
        got = len(values) if isinstance(values, list) else type(values).__name__
        raise HTTPException(422, f"{field}: expected a list of {count} numbers, got {got}")
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise HTTPException(422, f"{field}[{i}]: {value!r} is not a number")
        if not limits[0] <= value <= limits[1]:
            raise HTTPException(422, f"{field}[{i}]: {value:g} is outside {limits[0]:g} to {limits[1]:g}; "
                                     f"{field} must be between {limits[0]:g} and {limits[1]:g}")
    return [float(value) for value in values]


def _check_played(body: dict[str, Any], labels: list[str]) -> None:
    """``body["played"]``: one true/false per version ``labels``; all must be true."""
    played = body.get("played")
    if not isinstance(played, list) or len(played) != len(labels) or not all(isinstance(p, bool) for p in played):
        raise HTTPException(422, f"played: expected {len(labels)} ratings and played flags (true or false), "
                                 f"one per version ({', '.join(labels)})")
    unplayed = [label for label, was in zip(labels, played) if not was]
    if unplayed:
        raise HTTPException(422, f"play every version before continuing (not played yet: {', '.join(unplayed)})")


def _comment(body: dict[str, Any]) -> str:
    comment = body.get("comment", "")
    if not isinstance(comment, str):
        raise HTTPException(422, "comment: expected text")
    if len(comment) > MAX_COMMENT_CHARS:
        raise HTTPException(422, f"comments are limited to {MAX_COMMENT_CHARS} characters")
    return comment


def _dithered_wav(path: Path, seed: str) -> bytes:
    """The excerpt at ``path`` as 24-bit WAV bytes with +-1 LSB triangular dither seeded by ``seed``.

    Stimuli are stored as 24-bit PCM, so ``round(x * 2**23)`` recovers the stored integers
    exactly; adding the difference of two fair 0/1 draws (-1, 0, +1 LSB with probabilities
    1/4, 1/2, 1/4) changes the bytes of every response and the sound by nothing audible
    (a noise floor near -147 dBFS).
    """
    audio, rate = sf.read(path, dtype="float64", always_2d=True)
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little"))
    noise = rng.integers(0, 2, audio.shape, dtype=np.int64) - rng.integers(0, 2, audio.shape, dtype=np.int64)
    samples = np.clip(np.rint(audio * 2**23).astype(np.int64) + noise, -(2**23), 2**23 - 1)
    buffer = io.BytesIO()
    sf.write(buffer, (samples << 8).astype(np.int32), rate, subtype="PCM_24", format="WAV")
    return buffer.getvalue()


def _slot_label(slot: int) -> str:
    """The letter a slot shows on the page: A, B, ..., Z, AA, AB, ..."""
    label = ""
    slot += 1
    while slot:
        slot, rest = divmod(slot - 1, 26)
        label = chr(ord("A") + rest) + label
    return label
