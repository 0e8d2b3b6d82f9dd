"""The job record, its states and the transitions a writer may make.

A job is one upload turned into one video. Its record is the single source of truth the CLI, the
API and the studio page read. It changes only through a ``JobUpdate`` (``kapsule.job.update``), which
every store applies inside its own transaction after ``check_transition``, so the rules below hold for
SQLite and Firestore alike: a finished job is never reopened, and a late progress write after a
cancel is refused rather than lost silently.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from kapsule.core.access import LOCAL_OWNER
from kapsule.core.errors import InvalidTransition
from kapsule.job.params import JobParams


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    awaiting_approval = "awaiting_approval"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL_STATES = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled})

ALLOWED_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.queued: frozenset({JobState.running, JobState.cancelled, JobState.failed}),
    JobState.running: frozenset(
        {JobState.awaiting_approval, JobState.succeeded, JobState.failed, JobState.cancelled}
    ),
    JobState.awaiting_approval: frozenset({JobState.running, JobState.cancelled, JobState.failed}),
    JobState.succeeded: frozenset(),
    JobState.failed: frozenset(),
    JobState.cancelled: frozenset(),
}

STAGES = ("analyze", "storyboard", "generate", "assemble")

STAGE_WEIGHTS: dict[str, float] = {"analyze": 0.10, "storyboard": 0.05, "generate": 0.60, "assemble": 0.25}
"""Share of the job's overall progress each stage accounts for (roughly its share of the work)."""


def overall_progress(stage: str, fraction: float) -> float:
    """The job's progress when ``stage`` is ``fraction`` done (earlier stages count in full)."""
    before = sum(STAGE_WEIGHTS[s] for s in STAGES[: STAGES.index(stage)])
    return round(min(1.0, before + STAGE_WEIGHTS[stage] * min(1.0, max(0.0, fraction))), 4)


def stage_fraction(stage: str, progress: float) -> float:
    """Inverse of ``overall_progress``: how far ``stage`` is, given the job's overall progress."""
    before = sum(STAGE_WEIGHTS[s] for s in STAGES[: STAGES.index(stage)])
    return round(min(1.0, max(0.0, (progress - before) / STAGE_WEIGHTS[stage])), 3)


def new_job_id() -> str:
    """An unguessable, URL-safe id that is also a safe single path segment (no '/', no '.')."""
    return "j" + secrets.token_hex(10)


def is_valid_job_id(job_id: str) -> bool:
    """Ids we issued look exactly like ``new_job_id``'s; anything else (``../x``) is refused."""
    return len(job_id) == 21 and job_id[0] == "j" and all(c in "0123456789abcdef" for c in job_id[1:])


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobError(BaseModel):
    code: str
    message: str
    stage: str | None = None


class JobCost(BaseModel):
    """What the job costs: the storyboard's estimate, and from the spend ledger (``kapsule.job.ledger``)
    what its paid requests have spent (``actual_usd``) and hold reserved (``reserved_usd``: sent or
    about to be, their bill not known yet; it counts against the budget and the owner's cap)."""

    video_seconds: float = 0.0
    estimated_usd: float = 0.0
    actual_usd: float = 0.0
    reserved_usd: float = 0.0
    prompt_tokens: int = 0

    @property
    def committed_usd(self) -> float:
        """Spent plus reserved: what the job's paid requests may cost at most."""
        return round(self.actual_usd + self.reserved_usd, 4)


class StageTiming(BaseModel):
    """Where one stage's time went (from papermill's per-cell metadata); ``skipped`` on a re-run."""

    notebook: str
    skipped: bool = False
    failed: bool = False
    wall_s: float = 0.0
    cells_s: float = 0.0
    setup_s: float = 0.0
    stage_s: float = 0.0
    overhead_s: float = 0.0
    save_s: float = 0.0


def _is_none(value: object) -> bool:
    return value is None


class Approval(BaseModel):
    """The review of a job asked to be reviewed: prompt edits so far, and whether it was approved.

    WHY edits live in the record and not only in ``storyboard.json``: the record is written in a
    transaction, a storage object is not. Two reviewers editing different shots at once both keep
    their edit, and an edit racing the approval is either in the record the approval committed, or
    refused (409).
    """

    approved: bool = False
    approved_at: datetime | None = None
    prompt_edits: dict[int, str] = Field(default_factory=dict)  # shot index -> prompt (JSON: "3": ...)
    # A regrid re-planning the storyboard holds the review (its token, since when): no approval, edit
    # or other regrid lands until it has written the new plan (``kapsule.job.update.NotReplanning``).
    replan_token: str | None = Field(None, exclude_if=_is_none)
    replan_started_at: datetime | None = Field(None, exclude_if=_is_none)


class JobOutputs(BaseModel):
    """Where a succeeded job's results are: storage keys, the delivery store's URL and the length.

    Until the assemble stage has run every field is None. A field that is None is left out of the
    JSON, so the record the API returns (and the studio page reads) has exactly the keys a job made:
    ``{}`` before assembly, ``captions_srt``/``captions_vtt`` only for a job with soft captions.
    """

    video: str | None = Field(None, exclude_if=_is_none)
    delivery_url: str | None = Field(None, exclude_if=_is_none)
    poster: str | None = Field(None, exclude_if=_is_none)
    contact_sheet: str | None = Field(None, exclude_if=_is_none)
    duration: str | None = Field(None, exclude_if=_is_none)  # the video's seconds, as text ("12.345")
    captions_srt: str | None = Field(None, exclude_if=_is_none)
    captions_vtt: str | None = Field(None, exclude_if=_is_none)
    # How the video shows the lyrics: 'burned', 'soft', 'both' or 'none'. A player shows its caption
    # track only when nothing is burned in, so no line is ever on screen twice.
    captions: str | None = Field(None, exclude_if=_is_none)


class RerollOf(BaseModel):
    """A re-roll job: which job and shot it makes again, and with what."""

    parent_job: str
    shot: int
    seed: int
    prompt_changed: bool


class JobRecord(BaseModel):
    """The job record: the inputs (``params``), then what the job learned and did."""

    id: str = Field(default_factory=new_job_id)
    owner: str = LOCAL_OWNER
    state: JobState = JobState.queued
    stage: str | None = None
    progress: float = Field(0.0, ge=0.0, le=1.0)
    message: str = ""
    params: JobParams = Field(default_factory=JobParams)
    song_seconds: float | None = None  # measured at intake
    upload_id: str | None = None  # the upload the song came from (API)
    request_hash: str | None = None  # sha256 of the creating request (Idempotency-Key replays)
    trace_header: str | None = None  # X-Cloud-Trace-Context of the creating request
    timings: dict[str, StageTiming] = Field(default_factory=dict)
    approval: Approval = Field(default_factory=Approval)
    reroll: RerollOf | None = None
    outputs: JobOutputs = Field(default_factory=JobOutputs)
    error: JobError | None = None
    cost: JobCost = Field(default_factory=JobCost)
    attempt: int = 0
    execution: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    heartbeat_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES


def check_transition(current: JobState, new: JobState) -> None:
    """Raise ``InvalidTransition`` unless ``current → new`` is allowed (same state is always fine)."""
    if current == new and current not in TERMINAL_STATES:
        return
    if new not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(f"a {current.value} job cannot become {new.value}")
