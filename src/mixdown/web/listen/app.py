"""The listening-test server: a FastAPI app over a test folder.

The page (``static/``, plain HTML + JS, no build step) registers a participant, shows a
training page, then one trial per song. The client never learns which condition is
which: it asks for ``/api/trials/{index}/audio/{slot}`` and the server maps the slot
to a condition with the participant's randomisation (`mixdown.listening.randomise`),
which is recomputed from the test's seed and the participant ID, so a server restart
changes nothing. Every submitted trial is committed to SQLite before the reply.

Participants are identified by a secret token (header ``X-Participant-Token``) that
the page keeps in the browser's localStorage, so a closed tab resumes where it was.
Errors are JSON ``{"detail": "one-line message"}``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from mixdown.errors import MixdownError
from mixdown.listening.manifest import MANIFEST_NAME, RESPONSES_NAME, Manifest
from mixdown.listening.randomise import Trial, participant_trials
from mixdown.listening.store import DuplicateParticipantError, ParticipantRecord, ResponseStore

STATIC_DIR = Path(__file__).parent / "static"
MAX_ID_CHARS = 64
MAX_COMMENT_CHARS = 5000
TOKEN_HEADER = "X-Participant-Token"
REFERENCE_SLOT = "reference"


class StartRequest(BaseModel):
    """Body of ``POST /api/participants``."""

    participant_id: str


class TrialSubmission(BaseModel):
    """Body of ``POST /api/trials/{index}``: one rating per slot, in slot order."""

    ratings: list[float]
    played: list[bool]
    comment: str = ""


class FinishRequest(BaseModel):
    """Body of ``POST /api/finish``."""

    comment: str = ""


def create_app(test_dir: str | os.PathLike) -> FastAPI:
    """The app serving one test folder.

    Args:
        test_dir: Folder written by ``mixdown listen create``; answers go to its
            ``responses.sqlite``.

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
    test_id = hashlib.sha256((test_dir / MANIFEST_NAME).read_bytes()).hexdigest()[:16]
    app = FastAPI(title=manifest.name, docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def participant(token: str | None) -> ParticipantRecord:
        record = store.participant_by_token(token) if token else None
        if record is None:
            raise HTTPException(401, "unknown participant; start again with your ID")
        return record

    def trials_of(record: ParticipantRecord) -> tuple[Trial, ...]:
        return participant_trials(len(manifest.songs), len(manifest.conditions), manifest.seed,
                                  record.participant_id)

    def session(record: ParticipantRecord) -> dict:
        done = store.submitted_trials(record.participant_id)
        remaining = [i for i in range(len(manifest.songs)) if i not in done]
        return {"participant_id": record.participant_id, "trials": len(manifest.songs),
                "next_trial": remaining[0] if remaining else None, "finished": record.finished_at is not None}

    def trial_at(record: ParticipantRecord, index: int) -> Trial:
        if not 0 <= index < len(manifest.songs):
            raise HTTPException(404, f"no trial {index}; this test has {len(manifest.songs)}")
        return trials_of(record)[index]

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/test")
    def test_info() -> dict:
        return {"test_id": test_id, "name": manifest.name, "instructions": manifest.instructions,
                "trials": len(manifest.songs), "conditions": len(manifest.conditions)}

    @app.post("/api/participants", status_code=201)
    def start(request: StartRequest) -> dict:
        participant_id = request.participant_id.strip()
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
        song = manifest.songs[trial.song_index]
        return {"index": index, "trials": len(manifest.songs), "slots": len(trial.condition_order),
                "duration_s": song.duration_s}

    @app.get("/api/trials/{index}/audio/{slot}")
    def get_audio(index: int, slot: str, token: Annotated[str | None, Header(alias=TOKEN_HEADER)] = None,
                  ) -> FileResponse:
        trial = trial_at(participant(token), index)
        song = manifest.songs[trial.song_index]
        if slot == REFERENCE_SLOT:
            condition = manifest.reference
        elif slot.isdigit() and int(slot) < len(trial.condition_order):
            condition = manifest.conditions[trial.condition_order[int(slot)]]
        else:
            raise HTTPException(404, f"no slot {slot!r} in trial {index}")
        return FileResponse(test_dir / song.files[condition], media_type="audio/wav",
                            headers={"Cache-Control": "no-store"})

    @app.post("/api/trials/{index}")
    def submit_trial(index: int, submission: TrialSubmission,
                     token: Annotated[str | None, Header(alias=TOKEN_HEADER)] = None) -> dict:
        record = participant(token)
        trial = trial_at(record, index)
        state = session(record)
        if state["next_trial"] is not None and index > state["next_trial"]:
            raise HTTPException(409, f"submit trial {state['next_trial'] + 1} first")
        slots = len(trial.condition_order)
        if len(submission.ratings) != slots or len(submission.played) != slots:
            raise HTTPException(422, f"expected {slots} ratings and played flags, got "
                                     f"{len(submission.ratings)} and {len(submission.played)}")
        if not all(0.0 <= rating <= 100.0 for rating in submission.ratings):
            raise HTTPException(422, "ratings must be between 0 and 100")
        unplayed = [_slot_label(slot) for slot, played in enumerate(submission.played) if not played]
        if unplayed:
            raise HTTPException(422, f"play every version before continuing (not played yet: {', '.join(unplayed)})")
        if len(submission.comment) > MAX_COMMENT_CHARS:
            raise HTTPException(422, f"comments are limited to {MAX_COMMENT_CHARS} characters")
        ratings = {manifest.conditions[condition]: (slot, rating)
                   for slot, (condition, rating) in enumerate(zip(trial.condition_order, submission.ratings))}
        store.save_trial(record.participant_id, index, manifest.songs[trial.song_index].name, ratings,
                         submission.comment)
        return session(record)

    @app.post("/api/finish")
    def finish(request: FinishRequest, token: Annotated[str | None, Header(alias=TOKEN_HEADER)] = None) -> dict:
        record = participant(token)
        if session(record)["next_trial"] is not None:
            raise HTTPException(409, "rate every trial before finishing")
        if len(request.comment) > MAX_COMMENT_CHARS:
            raise HTTPException(422, f"comments are limited to {MAX_COMMENT_CHARS} characters")
        store.finish(record.participant_id, request.comment)
        return session(participant(token))

    return app


def _slot_label(slot: int) -> str:
    """The letter a slot shows on the page: A, B, ..., Z, AA, AB, ..."""
    label = ""
    slot += 1
    while slot:
        slot, rest = divmod(slot - 1, 26)
        label = chr(ord("A") + rest) + label
    return label
