"""Jobs: create from an upload, list, read, follow (server-sent events), cancel, and fetch results.

Every route only translates HTTP into a call of the job service (``kapsule.control.service``), which
checks the job's parameters and its song by content before anything exists, owns every state change,
and answers another owner's job with the same 404 as a missing one. The request body of
``POST /v1/jobs`` is ``JobOptions`` (the values of ``JobParams``) plus the uploads that carry its
files, so the API accepts exactly what the CLI does.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field

from kapsule.api.deps import DeliveryDep, OwnerDep, SecretDep, ServiceDep, StorageDep, require_ready
from kapsule.api.schemas import ApiModel
from kapsule.control import uploads
from kapsule.control.service import GridChange, Submission, request_hash
from kapsule.control.submission import PASTED_LYRICS, LyricsFile, Precheck
from kapsule.core.errors import (
    BadCursor,
    InvalidParameter,
    ObjectNotFound,
    UploadIncomplete,
    VideoNotReady,
)
from kapsule.generation.references import ReferenceImage
from kapsule.job.artifacts import MAX_SHOT_SEED, Analysis, ReadingKind
from kapsule.job.layout import JobLayout
from kapsule.job.params import MAX_LYRICS_BYTES, MAX_REFERENCE_IMAGES, JobOptions, JobParams
from kapsule.job.record import JobRecord, JobState
from kapsule.song.intake import StoredSong
from kapsule.storyboard.review import Review

router = APIRouter(prefix="/jobs", tags=["jobs"])


class JobCreate(JobOptions, ApiModel):
    """A new job: the values of ``JobParams``, and the uploads holding its song and reference images."""

    upload_id: str = Field(..., max_length=100, description="The song's upload (POST /v1/uploads).")
    reference_upload_ids: list[str] = Field(
        default_factory=list,
        max_length=MAX_REFERENCE_IMAGES,
        description="Uploads of reference images (purpose 'reference_image'): a character, product or "
        "cover kept the same across shots (Veo 3.1).",
    )
    lyrics_text: str | None = Field(
        None,
        max_length=MAX_LYRICS_BYTES // 4,
        description="The song's lyrics, pasted: plain text (one line per sung line, blank lines between "
        "verses; timed to the song) or the text of an LRC, SRT or VTT file.",
    )
    lyrics_upload_id: str | None = Field(
        None, max_length=100, description="Or an upload of a lyrics file (purpose 'lyrics')."
    )


class JobCheck(JobOptions, ApiModel):
    """A job described before its song is uploaded (``POST /v1/jobs/check``): its options, the song's
    file name and length as the browser read them, and pasted lyrics."""

    filename: str = Field("", max_length=255, description="The song's file name.")
    song_seconds: float | None = Field(
        None, gt=0, le=24 * 3600, description="The song's length as the client read it, if it could."
    )
    lyrics_text: str | None = Field(
        None, max_length=MAX_LYRICS_BYTES // 4, description="The lyrics, as for POST /v1/jobs."
    )


class ShotEdit(ApiModel):
    prompt: str = Field(..., description="The shot's new prompt.")


class Approval(ApiModel):
    prompts: dict[int, str] = Field(
        default_factory=dict, description="Optional last edits: shot number → new prompt."
    )


class Reroll(ApiModel):
    prompt: str | None = Field(None, description="A new prompt for the shot (default: keep it).")
    seed: int | None = Field(None, ge=0, le=MAX_SHOT_SEED, description="Default: a new random seed.")


class JobPage(BaseModel):
    jobs: list[JobRecord]
    next_cursor: str | None


def _uploaded(
    storage: StorageDep, upload_id: str, owner: str, purpose: uploads.UploadPurpose
) -> tuple[uploads.UploadTicket, str]:
    """The caller's finished upload: its ticket and storage key (409 if nothing was PUT yet)."""
    ticket = uploads.load_ticket(storage, upload_id, owner)
    if ticket.purpose != purpose:
        raise InvalidParameter(f"upload {upload_id} was made for a {ticket.purpose}, not a {purpose}")
    key = uploads.upload_key(ticket.upload_id)
    if not storage.exists(key):
        raise UploadIncomplete(f"upload {ticket.upload_id} has no file yet: PUT the file to its URL first")
    return ticket, key


@router.post("", response_model=JobRecord, status_code=202, dependencies=[Depends(require_ready)])
def create_job(
    body: JobCreate,
    response: Response,
    owner: OwnerDep,
    storage: StorageDep,
    service: ServiceDep,
    secret: SecretDep,
    idempotency_key: Annotated[str | None, Header()] = None,
    x_cloud_trace_context: Annotated[str | None, Header(max_length=200)] = None,
) -> JobRecord:
    """Check the uploaded song by its content, create the job and launch it (202: it runs on).

    The same Idempotency-Key with the same body replays the first job (``Idempotent-Replayed``); with
    another body it is a 409, never a silent replay of a different job.
    """
    ticket, key = _uploaded(storage, body.upload_id, owner, "song")
    references = []
    for upload_id in body.reference_upload_ids:
        ref_ticket, ref_key = _uploaded(storage, upload_id, owner, "reference_image")
        references.append(ReferenceImage(ref_ticket.filename, storage.read_bytes(ref_key)))
    if body.lyrics_text is not None and body.lyrics_upload_id is not None:
        raise InvalidParameter("give the lyrics as lyrics_text or lyrics_upload_id, not both")
    lyrics = LyricsFile(PASTED_LYRICS, body.lyrics_text.encode()) if body.lyrics_text is not None else None
    if body.lyrics_upload_id is not None:
        lyrics_ticket, lyrics_key = _uploaded(storage, body.lyrics_upload_id, owner, "lyrics")
        lyrics = LyricsFile(lyrics_ticket.filename, storage.read_bytes(lyrics_key))
    submission = Submission(
        options=body,  # a JobCreate is JobOptions plus its uploads
        song=StoredSong(storage, key, ticket.filename),
        owner=owner,
        references=references,
        job_id=uploads.idempotent_job_id(secret, owner, idempotency_key) if idempotency_key else None,
        request_hash=request_hash(owner.encode(), body.model_dump_json().encode()),
        upload_id=ticket.upload_id,
        trace_header=x_cloud_trace_context,  # the job's log lines then join this request's trace
        lyrics=lyrics,
    )
    record, replayed = service.submit(submission)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return record


@router.post("/check", response_model=JobParams)
def check_job(body: JobCheck, owner: OwnerDep, service: ServiceDep) -> JobParams:
    """Check a job's options and lyrics before its song is uploaded, so a bad lyrics file or option
    costs no upload: 200 with the job's parameters, or the error ``POST /v1/jobs`` would give. Nothing
    is created; ``POST /v1/jobs`` checks everything again against the uploaded song."""
    lyrics = LyricsFile(PASTED_LYRICS, body.lyrics_text.encode()) if body.lyrics_text is not None else None
    check = Precheck(options=body, song_name=body.filename, song_seconds=body.song_seconds, lyrics=lyrics)
    return service.check(owner, check)


@router.get("", response_model=JobPage)
def list_jobs(
    owner: OwnerDep,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> JobPage:
    """The caller's jobs, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    try:
        records, next_cursor = service.list_jobs(owner, limit=limit, cursor=cursor)
    except BadCursor:
        raise BadCursor(
            "that page cursor is not one this server handed out; list again without a cursor"
        ) from None
    return JobPage(jobs=records, next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobRecord)
def get_job(job_id: str, owner: OwnerDep, service: ServiceDep) -> JobRecord:
    """The job's record; a running job silent for a minute is first checked with its launcher."""
    return service.observe(owner, job_id)


@router.post("/{job_id}:cancel", response_model=JobRecord, status_code=202)
def cancel_job(job_id: str, owner: OwnerDep, service: ServiceDep) -> JobRecord:
    """Mark the job cancelled (a finished job is a 409), then stop its process in the background."""
    return service.cancel(owner, job_id)


@router.get("/{job_id}/video", response_model=None)
def job_video(
    job_id: str, owner: OwnerDep, service: ServiceDep, delivery: DeliveryDep
) -> FileResponse | RedirectResponse | StreamingResponse:
    """The finished MP4: the file itself (with Range) locally, else a redirect to a signed URL."""
    record = service.get(owner, job_id)
    if record.state != JobState.succeeded:
        raise VideoNotReady(f"job {job_id} is {record.state.value}; the video exists once it has succeeded")
    key = JobLayout(job_id).video
    filename = f"{Path(record.params.song or 'kapsule').stem[:80] or 'kapsule'}.mp4"
    path = delivery.local_path(key)
    if path is not None:
        if not path.is_file():
            raise ObjectNotFound(f"the video of job {job_id} is missing from storage")
        return FileResponse(
            path, media_type="video/mp4", filename=filename, content_disposition_type="inline"
        )
    direct = delivery.direct_access
    if direct is not None:
        return RedirectResponse(direct.signed_download_url(key, filename=filename).url, status_code=307)
    return StreamingResponse(delivery.open_read(key), media_type="video/mp4")


@router.get("/{job_id}/captions.vtt", response_class=Response)
def job_captions(job_id: str, owner: OwnerDep, service: ServiceDep, delivery: DeliveryDep) -> Response:
    """The finished video's lyric captions as WebVTT (the studio player's ``<track>``); 404 when the
    job has none (no lyrics, or captions 'burned' or 'none')."""
    service.get(owner, job_id)  # another owner's job is the same 404 as a missing one
    try:
        data = delivery.read_bytes(JobLayout(job_id).captions("vtt"))
    except ObjectNotFound:
        raise ObjectNotFound(f"job {job_id} has no caption file") from None
    return Response(data, media_type="text/vtt; charset=utf-8")


@router.get("/{job_id}/captions.srt", response_class=Response)
def job_captions_srt(job_id: str, owner: OwnerDep, service: ServiceDep, delivery: DeliveryDep) -> Response:
    """The lyric captions as SubRip, for the platforms that take a caption file; 404 when none."""
    record = service.get(owner, job_id)
    try:
        data = delivery.read_bytes(JobLayout(job_id).captions("srt"))
    except ObjectNotFound:
        raise ObjectNotFound(f"job {job_id} has no caption file") from None
    filename = f"{Path(record.params.song or 'kapsule').stem[:80] or 'kapsule'}.srt"
    return Response(
        data,
        media_type="application/x-subrip; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_ascii(filename)}"'},
    )


@router.get("/{job_id}/poster.jpg", response_class=Response)
def job_poster(job_id: str, owner: OwnerDep, service: ServiceDep) -> Response:
    """A frame of the finished video (the player's poster, the past jobs' thumbnail)."""
    return _job_image(owner, service, job_id, "poster")


@router.get("/{job_id}/contact-sheet.jpg", response_class=Response)
def job_contact_sheet(job_id: str, owner: OwnerDep, service: ServiceDep) -> Response:
    """One thumbnail per shot, numbered from 1 as the studio and the CLI number shots."""
    return _job_image(owner, service, job_id, "contact_sheet")


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)


def _job_image(
    owner: str, service: ServiceDep, job_id: str, which: Literal["poster", "contact_sheet"]
) -> Response:
    ctx = service.context(owner, job_id)
    key = ctx.layout.poster if which == "poster" else ctx.layout.contact_sheet
    try:
        data = ctx.storage.read_bytes(key)
    except ObjectNotFound:
        raise ObjectNotFound(f"job {job_id} has no {which.replace('_', ' ')} yet") from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


# ------------------------------------------------------------------------ review before paying, re-roll


@router.get("/{job_id}/storyboard", response_model=Review)
def job_storyboard(job_id: str, owner: OwnerDep, service: ServiceDep) -> Review:
    """Each shot's prompt, length and estimated cost (what a reviewer approves), once planned."""
    return service.review(owner, job_id)


@router.patch("/{job_id}/shots/{n}", response_model=Review)
def edit_shot(job_id: str, n: int, body: ShotEdit, owner: OwnerDep, service: ServiceDep) -> Review:
    """Change one shot's prompt while the job awaits approval (a 409 otherwise)."""
    return service.edit_prompt(owner, job_id, n, body.prompt)


@router.post("/{job_id}:regrid", response_model=Review)
def regrid_job(job_id: str, body: GridChange, owner: OwnerDep, service: ServiceDep) -> Review:
    """Fix the beat grid of a job awaiting approval (double, half, shift the bar line, another meter,
    or an exact BPM) and re-plan its storyboard: nothing is generated or paid for."""
    return service.regrid(owner, job_id, body)


@router.get("/{job_id}/analysis", response_model=Analysis)
def job_analysis(job_id: str, owner: OwnerDep, service: ServiceDep) -> Analysis:
    """The job's analysis (beats, downbeats, readings): what the studio draws its beat grid from."""
    ctx = service.context(owner, job_id)
    try:
        return ctx.read_model(ctx.layout.analysis, Analysis)
    except ObjectNotFound:
        raise ObjectNotFound(f"job {job_id} has not been analysed yet") from None


@router.get("/{job_id}/click", response_class=Response)
def job_click(
    job_id: str,
    owner: OwnerDep,
    service: ServiceDep,
    reading: Annotated[
        ReadingKind | None,
        Query(description="A runner-up reading (an `alternatives[].kind`); omitted: the chosen grid."),
    ] = None,
) -> Response:
    """The click-track preview: the song with a click on each beat, accented on each bar line, of the
    chosen grid or of a runner-up ``reading`` (rendered on first request), so the musician can hear
    both when the analysis's ``close_call`` says it is unsure."""
    from kapsule.stages.files import reading_click

    ctx = service.context(owner, job_id)
    path = ctx.storage.local_path(ctx.layout.click_preview) if reading is None else None
    if path is not None and path.is_file():  # with Range, so the studio's player can seek in it
        return FileResponse(path, media_type="audio/mp4")
    try:
        data = reading_click(ctx, reading)
    except ObjectNotFound as exc:
        what = "click-track preview" if reading is None else f"{reading} reading to click"
        raise ObjectNotFound(f"job {job_id} has no {what} yet ({exc})") from None
    return Response(data, media_type="audio/mp4")


@router.get("/{job_id}/song", response_class=FileResponse)
def job_song(job_id: str, owner: OwnerDep, service: ServiceDep) -> FileResponse:
    """The job's song as it was uploaded: the studio plays it under the clicks of another reading of
    the beat grid (Web Audio), so a musician can hear each reading when the analysis is unsure."""
    ctx = service.context(owner, job_id)
    path = ctx.input_song()
    kind, _ = mimetypes.guess_type(path.name)  # the extension intake chose from the content
    return FileResponse(path, media_type=kind or "application/octet-stream")


@router.post("/{job_id}:approve", response_model=JobRecord, status_code=202)
def approve_job(job_id: str, owner: OwnerDep, service: ServiceDep, body: Approval | None = None) -> JobRecord:
    """Approve the storyboard (with optional last prompt edits): the job generates and assembles."""
    return service.approve(owner, job_id, body.prompts if body is not None else {})


@router.post("/{job_id}/shots/{n}:reroll", response_model=JobRecord, status_code=202)
def reroll_shot(
    job_id: str, n: int, owner: OwnerDep, service: ServiceDep, body: Reroll | None = None
) -> JobRecord:
    """Regenerate one shot of a finished job as a NEW job (its record is returned; the parent stays).

    The new job reuses the parent's other shots, so only this shot is generated and billed.
    """
    body = body or Reroll()
    return service.reroll(owner, job_id, n, prompt=body.prompt, seed=body.seed)
