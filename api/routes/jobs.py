"""Jobs: create from an upload, list, read, follow (server-sent events), cancel, and fetch results.

Creating a job judges the upload by its content (``audio.inspect_song``) before anything is stored
under the job or launched, so a bad song costs one clear 422 and nothing else. Every job route
first resolves the id through ``_owned_job``: a malformed id (``../x``) or another owner's job is
the same 404 as a missing one, and no path is ever built from the id before that check.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field

from api.deps import (
    DeliveryDep,
    LauncherDep,
    OwnerDep,
    SecretDep,
    SettingsDep,
    StatusDep,
    StorageDep,
)
from api.schemas import ApiModel
from kapsule_pipeline import uploads
from kapsule_pipeline.errors import (
    InvalidParameter,
    InvalidTransition,
    JobNotFound,
    KapsuleError,
    ObjectNotFound,
)
from kapsule_pipeline.jobs import JobRecord, JobState, is_valid_job_id
from kapsule_pipeline.launch.reconcile import reconcile_if_stale
from kapsule_pipeline.layout import JobLayout
from kapsule_pipeline.review import JobStores, Review, approve, edit_shots, reroll, review_summary
from kapsule_pipeline.settings import Settings
from kapsule_pipeline.stages import check_frame_params
from kapsule_pipeline.status import StatusStore

router = APIRouter(prefix="/jobs", tags=["jobs"])


class JobCreate(ApiModel):
    upload_id: str = Field(..., max_length=100)
    prompt: str = Field("", description="What the video shows.")
    style: str = Field("", description="Look and feel.")
    aspect_ratio: Literal["16:9", "9:16", "1:1"] = "16:9"
    resolution: Literal["720p", "1080p"] = "720p"
    max_shots: int = Field(0, ge=0, le=500, description="0 = as many as the music asks for.")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    video_model: str | None = Field(None, pattern=r"^[\w.-]{1,64}$", description="Default: the server's.")
    budget_usd: float | None = Field(None, ge=0, le=10_000)
    review: bool = Field(
        False, description="Stop after the storyboard until approved (review before paying)."
    )


class ShotEdit(ApiModel):
    prompt: str = Field(..., description="The shot's new prompt.")


class Approval(ApiModel):
    prompts: dict[int, str] = Field(
        default_factory=dict, description="Optional last edits: shot number → new prompt."
    )


class Reroll(ApiModel):
    prompt: str | None = Field(None, description="A new prompt for the shot (default: keep it).")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="Default: a new random seed.")


class JobPage(BaseModel):
    jobs: list[JobRecord]
    next_cursor: str | None


class VideoNotReady(KapsuleError):
    code = "video_not_ready"
    http_status = 409


def _owned_job(status: StatusStore, owner: str, job_id: str) -> JobRecord:
    """The caller's job, or a 404 that does not reveal whether someone else's exists."""
    if not is_valid_job_id(job_id):
        raise JobNotFound(f"there is no job {job_id[:40]!r}")
    try:
        record = status.get(job_id)
    except JobNotFound:
        raise JobNotFound(f"there is no job {job_id!r}") from None
    if record.owner != owner:
        raise JobNotFound(f"there is no job {job_id!r}")
    return record


def _check_text(name: str, value: str, settings: Settings) -> None:
    if len(value) > settings.max_prompt_chars:
        raise InvalidParameter(
            f"the {name} is {len(value)} characters; keep it under {settings.max_prompt_chars}",
            code=f"{name}_too_long",
        )


def _params(
    body: JobCreate, settings: Settings, ticket: uploads.UploadTicket, seconds: float
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "prompt": body.prompt,
        "style": body.style,
        "aspect_ratio": body.aspect_ratio,
        "resolution": body.resolution,
        "max_shots": body.max_shots,
        "seed": body.seed,
        "video_model": body.video_model or settings.video_model,
        "prompt_model": settings.prompt_model,
        "song_name": ticket.filename,
        "song_seconds": seconds,
        "upload_id": ticket.upload_id,
    }
    if body.budget_usd is not None:
        params["budget_usd"] = body.budget_usd
    if body.review:
        params["review"] = True
    return params


@router.post("", response_model=JobRecord, status_code=202)
def create_job(
    body: JobCreate,
    response: Response,
    owner: OwnerDep,
    settings: SettingsDep,
    storage: StorageDep,
    status: StatusDep,
    launcher: LauncherDep,
    secret: SecretDep,
    idempotency_key: Annotated[str | None, Header()] = None,
    x_cloud_trace_context: Annotated[str | None, Header(max_length=200)] = None,
) -> JobRecord:
    """Check the uploaded song by its content, create the job and launch it (202: it runs on)."""
    job_id = uploads.idempotent_job_id(secret, owner, idempotency_key) if idempotency_key else None
    if job_id is not None:
        with contextlib.suppress(JobNotFound):
            existing = status.get(job_id)
            response.headers["Idempotent-Replayed"] = "true"
            return existing
    _check_text("prompt", body.prompt, settings)
    _check_text("style", body.style, settings)
    check_frame_params(body.aspect_ratio, body.resolution, body.max_shots)
    ticket = uploads.load_ticket(storage, body.upload_id, owner)
    key = uploads.upload_key(ticket.upload_id)
    if not storage.exists(key):
        raise uploads.UploadIncomplete(
            f"upload {ticket.upload_id} has no file yet: PUT the song to its URL first"
        )

    from kapsule_pipeline.audio import inspect_song

    with tempfile.TemporaryDirectory(prefix="kapsule-check-") as tmp:
        local = storage.local_path(key) or storage.download_to(key, Path(tmp) / "song")
        info = inspect_song(local, settings)

    record = JobRecord(owner=owner, params=_params(body, settings, ticket, info.duration))
    if x_cloud_trace_context:  # the job's log lines then join this request's trace in Cloud Logging
        record.params["trace_header"] = x_cloud_trace_context
    if job_id is not None:
        record = record.model_copy(update={"id": job_id})
    storage.copy(key, JobLayout(record.id).input_song(info.ext))
    try:
        status.create(record)
    except InvalidParameter:  # the same Idempotency-Key raced us; theirs wins
        response.headers["Idempotent-Replayed"] = "true"
        return _owned_job(status, owner, record.id)
    try:
        execution = launcher.launch(record.id)
    except KapsuleError as exc:
        status.update(
            record.id, {"state": JobState.failed.value, "error": exc.to_dict(), "message": exc.message}
        )
        raise
    with contextlib.suppress(InvalidTransition):  # it may have finished already
        record = status.update(record.id, {"execution": execution})
    return status.get(record.id)


@router.get("", response_model=JobPage)
def list_jobs(
    owner: OwnerDep,
    status: StatusDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> JobPage:
    """The caller's jobs, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    try:
        records, next_cursor = status.list(owner, limit=limit, cursor=cursor)
    except InvalidParameter as exc:
        if exc.code != "bad_cursor":
            raise
        raise InvalidParameter(
            "that page cursor is not one this server handed out; list again without a cursor",
            code="bad_cursor",
        ) from None
    return JobPage(jobs=records, next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobRecord)
def get_job(job_id: str, owner: OwnerDep, status: StatusDep, launcher: LauncherDep) -> JobRecord:
    record = _owned_job(status, owner, job_id)
    # A running job silent for a minute may have died without a word: ask its launcher how it ended.
    with contextlib.suppress(KapsuleError):  # the launcher's API down: show the record as it is
        record = reconcile_if_stale(status, launcher, record)
    return record


@router.post("/{job_id}:cancel", response_model=JobRecord, status_code=202)
def cancel_job(job_id: str, owner: OwnerDep, status: StatusDep, launcher: LauncherDep) -> JobRecord:
    """Mark the job cancelled (a finished job is a 409), then stop its process in the background.

    A job awaiting approval has no process (it exited after the storyboard): nothing to stop, and its
    old execution name must not be signalled (a local pid may have been reused since).
    """
    before = _owned_job(status, owner, job_id)
    record = status.update(job_id, {"state": JobState.cancelled.value, "message": "cancelled by the user"})
    if record.execution and before.state != JobState.awaiting_approval:
        threading.Thread(target=launcher.cancel, args=(record.execution,), daemon=True).start()
    return record


@router.get("/{job_id}/video", response_model=None)
def job_video(
    job_id: str, owner: OwnerDep, status: StatusDep, delivery: DeliveryDep
) -> FileResponse | RedirectResponse | StreamingResponse:
    """The finished MP4: the file itself (with Range) locally, else a redirect to a signed URL."""
    record = _owned_job(status, owner, job_id)
    if record.state != JobState.succeeded:
        raise VideoNotReady(f"job {job_id} is {record.state.value}; the video exists once it has succeeded")
    key = JobLayout(job_id).video
    filename = f"{Path(str(record.params.get('song_name') or 'kapsule')).stem[:80] or 'kapsule'}.mp4"
    path = delivery.local_path(key)
    if path is not None:
        if not path.is_file():
            raise ObjectNotFound(f"the video of job {job_id} is missing from storage")
        return FileResponse(
            path, media_type="video/mp4", filename=filename, content_disposition_type="inline"
        )
    sign = getattr(delivery, "signed_download_url", None)
    if sign is not None:
        return RedirectResponse(sign(key, filename=filename).url, status_code=307)
    return StreamingResponse(delivery.open_read(key), media_type="video/mp4")


# ------------------------------------------------------------------------ review before paying, re-roll


@router.get("/{job_id}/storyboard", response_model=Review)
def job_storyboard(
    job_id: str, owner: OwnerDep, settings: SettingsDep, storage: StorageDep, status: StatusDep
) -> Review:
    """Each shot's prompt, length and estimated cost (what a reviewer approves), once planned."""
    record = _owned_job(status, owner, job_id)
    return review_summary(JobStores(settings, storage, status), record)


@router.patch("/{job_id}/shots/{n}", response_model=Review)
def edit_shot(
    job_id: str,
    n: int,
    body: ShotEdit,
    owner: OwnerDep,
    settings: SettingsDep,
    storage: StorageDep,
    status: StatusDep,
) -> Review:
    """Change one shot's prompt while the job awaits approval (a 409 otherwise)."""
    _owned_job(status, owner, job_id)
    stores = JobStores(settings, storage, status)
    edit_shots(stores, job_id, {n: body.prompt})
    return review_summary(stores, status.get(job_id))


@router.post("/{job_id}:approve", response_model=JobRecord, status_code=202)
def approve_job(
    job_id: str,
    owner: OwnerDep,
    settings: SettingsDep,
    storage: StorageDep,
    status: StatusDep,
    launcher: LauncherDep,
    body: Approval | None = None,
) -> JobRecord:
    """Approve the storyboard (with optional last prompt edits): the job generates and assembles."""
    _owned_job(status, owner, job_id)
    prompts = body.prompts if body is not None else {}
    return approve(JobStores(settings, storage, status), job_id, launcher, prompts)


@router.post("/{job_id}/shots/{n}:reroll", response_model=JobRecord, status_code=202)
def reroll_shot(
    job_id: str,
    n: int,
    owner: OwnerDep,
    settings: SettingsDep,
    storage: StorageDep,
    status: StatusDep,
    launcher: LauncherDep,
    body: Reroll | None = None,
) -> JobRecord:
    """Regenerate one shot of a finished job as a NEW job (its record is returned; the parent stays).

    The new job reuses the parent's other shots, so only this shot is generated and billed.
    """
    _owned_job(status, owner, job_id)
    body = body or Reroll()
    if body.prompt is not None:
        _check_text("prompt", body.prompt, settings)
    stores = JobStores(settings, storage, status)
    return reroll(stores, job_id, n, launcher, prompt=body.prompt, seed=body.seed)
