"""What the entry points hand the job service: a submission, a beat-grid fix, and the model check.

Kept apart from ``service`` so each stays small; the service re-exports them, and the CLI and the API
build these objects from their options and request bodies.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kapsule.catalog import video_models
from kapsule.catalog.pricing import price_per_second
from kapsule.core.access import LOCAL_OWNER
from kapsule.core.errors import (
    BudgetExceeded,
    DailyCapReached,
    KapsuleError,
    ModelNotAllowed,
    UnknownModel,
)
from kapsule.core.settings import Settings
from kapsule.generation.references import ReferenceImage
from kapsule.infra.status import StatusStore
from kapsule.job.params import JobOptions, JobParams
from kapsule.job.record import JobRecord, utcnow
from kapsule.song.intake import SongSource


def check_models(params: JobParams, settings: Settings, *, today: date | None = None) -> None:
    """Refuse a model this deployment does not know or cannot use, or a job it would refuse, before
    any job exists.

    Only names, the capability table (``video_models``), prices and credentials are looked at (no
    client, no request), so a typo in ``--video-model``, a model Google has retired (its documented
    retirement date in this mode is ``today`` or earlier; default: now, UTC), or reference images on
    a model or aspect ratio Veo refuses them for, is one line at submission instead of a failed job
    minutes later.
    """
    from kapsule.infra.genai_client import genai_mode

    video, prompt = params.video_model, params.prompt_model
    if video != "local":
        if not video.startswith("veo-"):
            raise UnknownModel(
                f"video model {video!r} is not one Kapsule knows: use 'local' or a Veo model id"
            )
        try:
            price_per_second(video, settings)  # a model not in the table is UnknownModel here
        except UnknownModel:
            raise
        except KapsuleError as exc:
            raise UnknownModel(f"video model {video!r} cannot be used here: {exc.message}") from None
        # Retired: named before any credential problem, since no account can use it.
        video_models.check_lifecycle(video, video_models.mode_of(settings), today=today)
    if prompt != "local" and not prompt.startswith("gemini-"):
        raise UnknownModel(
            f"prompt model {prompt!r} is not one Kapsule knows: use 'local' or a Gemini model id"
        )
    models = {video, prompt} - {"local"}
    if params.lyrics_aligner == "gemini":  # asked for by name: refused here, not silently offline later
        models.add("the Gemini lyrics aligner")
    for model in models:
        try:
            genai_mode(settings)
        except KapsuleError as exc:
            raise UnknownModel(f"{model} cannot be used on this deployment: {exc.message}") from None
    # The capability table, not the price override, decides what Veo accepts (UnknownModel or
    # UnsupportedVideoRequest, the same code from the CLI and the API); it also says where 4k is made.
    video_models.check_job(
        video,
        video_models.mode_of(settings),
        aspect_ratio=params.aspect_ratio,
        reference_images=len(params.reference_images),
        continuity=params.continuity,
        resolution=params.resolution,
        today=today,
    )


def request_hash(*parts: bytes) -> str:
    """The fingerprint of a creating request (its body and files), stored with its Idempotency-Key."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


class GridChange(BaseModel):
    """A musician's fix of the beat grid: double or half the tempo, another meter, the bar line moved,
    or an exact BPM (which analyses the song again with it as a hint)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tempo: Literal["keep", "double", "half"] = Field("keep", description="Double or half the tempo.")
    shift_beats: int = Field(0, ge=-11, le=11, description="Move every bar line by this many beats.")
    beats_per_bar: int | None = Field(None, ge=2, le=12, description="Regroup the beats into bars of N.")
    bpm: float | None = Field(None, ge=30.0, le=300.0, description="Analyse again with this tempo.")

    @property
    def tempo_factor(self) -> float:
        return {"keep": 1.0, "double": 2.0, "half": 0.5}[self.tempo]


PASTED_LYRICS = "pasted"
"""The name lyrics pasted as text go by (``JobParams.lyrics`` names the user's lyrics file)."""


@dataclass(frozen=True)
class LyricsFile:
    """The user's lyrics as given: a file's name and bytes, or pasted text (named ``pasted``)."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Submission:
    """A job as an entry point hands it over: the user's options, their files, and who asks.

    The job service turns it into the job's ``JobParams`` (``JobService.params_for``): the options,
    the deployment's default models, and the names of the files.
    """

    options: JobOptions
    song: SongSource
    owner: str = LOCAL_OWNER
    references: Sequence[ReferenceImage] = ()
    job_id: str | None = None  # from an Idempotency-Key: a retried request maps to the same job
    request_hash: str | None = None  # of the whole request, to tell a replay from a different job
    upload_id: str | None = None
    trace_header: str | None = None
    lyrics: LyricsFile | None = None  # checked (format, length, the song's length) before the job exists


@dataclass(frozen=True)
class Precheck:
    """A job as a client describes it before uploading its song (``JobService.check``): the options,
    the song's file name and, when the client could read it, its length; the lyrics themselves."""

    options: JobOptions
    song_name: str
    song_seconds: float | None = None
    reference_names: Sequence[str] = ()
    lyrics: LyricsFile | None = None


def check_allowed(owner: str, params: JobParams, settings: Settings) -> None:
    """Refuse a model this owner may not use (``KAPSULE_ALLOWED_MODELS``; default: only ``local``)."""
    if owner == LOCAL_OWNER:
        return
    allowed = settings.allowed_models.get(owner, settings.allowed_models.get("*", ["local"]))
    for kind, model in (("video", params.video_model), ("prompt", params.prompt_model)):
        if not any(fnmatch.fnmatchcase(model, pattern) for pattern in allowed):
            raise ModelNotAllowed(
                f"the {kind} model {model!r} is not allowed for your key on this server "
                f"(allowed: {', '.join(allowed) or 'none'}); ask its operator"
            )


def with_budget(params: JobParams, settings: Settings, song_seconds: float) -> JobParams:
    """``params`` with the default budget when a paid job sets none, after checking that the budget
    covers at least the song's length of video (no storyboard can cost less): refused now, not later."""
    if params.video_model == "local":
        return params
    price = price_per_second(params.video_model, settings, resolution=params.resolution)
    budget = params.budget_usd or settings.default_job_budget_usd
    floor = round(song_seconds * price, 2)
    if budget and floor > budget + 1e-9:
        raise BudgetExceeded(
            f"a {song_seconds:.0f} s song needs at least {song_seconds:.0f} s of video with "
            f"{params.video_model} (${floor:.2f}), over the budget of ${budget:.2f}: raise the budget "
            "or choose a cheaper model"
        )
    return params.model_copy(update={"budget_usd": budget})


def reserved_today(records: Sequence[JobRecord]) -> float:
    """What an owner's jobs of today may spend: a finished job what its ledger holds (spent, and
    started operations whose bill is not known yet), a live one at least its budget."""
    return sum(
        r.cost.committed_usd if r.finished else max(r.cost.committed_usd, r.params.budget_usd)
        for r in records
    )


def check_daily_cap(
    status: StatusStore, owner: str, params: JobParams, settings: Settings, *, excluding: str | None = None
) -> None:
    """Refuse a paid job that could take an API owner's day over ``owner_daily_cap_usd``.

    ``excluding``: the job asking (an approval, a regrid), whose own budget is the one checked. The
    sum is read, not reserved: two jobs submitted in the same instant can both pass here. What they
    send cannot pass the cap: each paid request is reserved in the ledger, in the store's transaction
    that checks the owner's day (``kapsule.job.ledger``).
    """
    cap = settings.owner_daily_cap_usd
    if not cap or owner == LOCAL_OWNER or not params.budget_usd:
        return
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    records: list[JobRecord] = []
    cursor: str | None = None
    while True:
        page, cursor = status.list(owner, limit=100, cursor=cursor)
        fresh = [r for r in page if r.created_at >= today]
        records += [r for r in fresh if r.id != excluding]
        if cursor is None or len(fresh) < len(page):
            break
    reserved = reserved_today(records)
    if reserved + params.budget_usd > cap + 1e-9:
        raise DailyCapReached(
            f"today's jobs may already spend ${reserved:.2f} of your ${cap:.2f} daily cap; this job's "
            f"budget of ${params.budget_usd:.2f} does not fit: lower it, or wait until tomorrow (UTC)"
        )
