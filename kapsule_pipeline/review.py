"""Review before paying, and re-rolls of one shot: the library logic the API and the CLI share.

A job created with ``params["review"]`` pauses after its storyboard (``running → awaiting_approval``,
see ``pipeline.run_job``); its process exits, nothing runs and nothing has been paid for. The owner
reads ``review_summary`` (each shot's prompt, length and price), may ``edit_shot`` prompts, then
``approve`` it: the record goes back to ``running`` and a new execution is launched, which skips the
analysis and storyboard (their outputs exist) and generates and assembles.

A re-roll never reopens a finished job (the state machine forbids it, see ``jobs``): ``reroll`` makes
a NEW job that starts from the parent's song, analysis, storyboard (with the one shot changed) and
shot clips, copied into its own folder. Every other shot's request key is unchanged and its clip
exists, so the generate stage makes (and bills) only the changed shot; the new job has its own
executed notebooks and the parent's stay as they were: the notebooks keep the history.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from kapsule_pipeline.errors import InvalidParameter, InvalidTransition, KapsuleError, ObjectNotFound
from kapsule_pipeline.jobs import JobRecord, JobState, utcnow
from kapsule_pipeline.launch import Launcher
from kapsule_pipeline.layout import JobLayout
from kapsule_pipeline.models import ShotManifest, Storyboard
from kapsule_pipeline.settings import Settings
from kapsule_pipeline.status import StatusStore
from kapsule_pipeline.storage import Storage

MAX_SEED = 2**32 - 1  # shot seeds are uint32 (what Veo takes; see storyboard.shot_seed)
PROMPT_EDITS = "prompt_edits"  # params key: {shot index as text: prompt}, applied over storyboard.json
_PARAMS_NOT_INHERITED = (
    "timings", "review", "approved", "approved_at", "upload_id", "trace_header", PROMPT_EDITS,
)  # fmt: skip


class ShotNotFound(KapsuleError):
    """The shot number is not in the job's storyboard."""

    code = "shot_not_found"
    http_status = 404


class StoryboardNotReady(KapsuleError):
    """The job has no storyboard yet (it is still analysing the song, or failed before)."""

    code = "storyboard_not_ready"
    http_status = 409


@dataclass(frozen=True)
class JobStores:
    """What the review functions touch: the settings, the job files and the job records."""

    settings: Settings
    storage: Storage
    status: StatusStore


class ReviewShot(BaseModel):
    index: int
    start: float
    end: float
    seconds: float  # the shot's length in the video
    request_seconds: int  # the clip length asked of the video model (what is billed)
    prompt: str
    seed: int
    cost_usd: float


class Review(BaseModel):
    """What a reviewer sees before paying: every shot and what the whole storyboard will cost."""

    job_id: str
    state: str
    video_model: str
    shots: list[ReviewShot]
    video_seconds: float
    total_usd: float
    to_generate: int
    new_usd: float
    budget_usd: float | None


# -------------------------------------------------------------------------------------- reading


def needs_review(record: JobRecord) -> bool:
    """A job asked to be reviewed that has not been approved yet stops after its storyboard."""
    return bool(record.params.get("review")) and not record.params.get("approved")


def with_prompt_edits(board: Storyboard, params: dict[str, Any]) -> Storyboard:
    """``board`` with the prompt edits recorded in a job's params applied (pure).

    WHY edits live in the job record: the record is written in a transaction, a storage object is
    not. Two reviewers editing different shots at once both keep their edit, and an edit racing
    the approval is either in the record the approval committed, or refused (409). Only ``approve``
    writes the edited storyboard back, after it has won the compare-and-set.
    """
    edits = params.get(PROMPT_EDITS) or {}
    if not edits:
        return board
    shots = [
        shot.model_copy(update={"prompt": edits[str(shot.index)]}) if str(shot.index) in edits else shot
        for shot in board.shots
    ]
    return board.model_copy(update={"shots": shots})


def _stored_board(stores: JobStores, job_id: str) -> Storyboard:
    try:
        return Storyboard.model_validate_json(stores.storage.read_bytes(JobLayout(job_id).storyboard))
    except ObjectNotFound:
        raise StoryboardNotReady(f"job {job_id} has no storyboard yet") from None


def load_board(stores: JobStores, job_id: str, record: JobRecord | None = None) -> Storyboard:
    """The job's storyboard as its owner sees it: ``storyboard.json`` with the pending prompt edits."""
    board = _stored_board(stores, job_id)
    return with_prompt_edits(board, (record or stores.status.get(job_id)).params)


def review_summary(stores: JobStores, record: JobRecord) -> Review:
    """Each shot's prompt, length and price, and the storyboard's total (clips in storage cost 0)."""
    from kapsule_pipeline.cost import estimate_storyboard
    from kapsule_pipeline.generation import make_video_generator
    from kapsule_pipeline.generation.references import settings_for_job

    board = load_board(stores, record.id, record)
    model = str(record.params.get("video_model") or board.video_model)
    generator = make_video_generator(model, settings_for_job(stores.settings, record.id, record.params))
    layout = JobLayout(record.id)
    total = estimate_storyboard(board, generator)
    new = estimate_storyboard(board, generator, exists=stores.storage.exists, layout=layout)
    shots = []
    for shot in board.shots:
        request = generator.request_for(shot, board)
        shots.append(
            ReviewShot(
                index=shot.index,
                start=shot.start,
                end=shot.end,
                seconds=round(shot.duration, 3),
                request_seconds=request.seconds,
                prompt=shot.prompt,
                seed=shot.seed,
                cost_usd=generator.estimate_cost_usd(request),
            )
        )
    budget = record.params.get("budget_usd")
    return Review(
        job_id=record.id,
        state=record.state.value,
        video_model=model,
        shots=shots,
        video_seconds=total.video_seconds,
        total_usd=total.total_usd,
        to_generate=new.to_generate,
        new_usd=new.new_usd,
        budget_usd=float(budget) if budget else None,
    )


# ------------------------------------------------------------------------------------ the pause


def pause_for_review(stores: JobStores, job_id: str) -> JobRecord:
    """Record the estimate and move ``running → awaiting_approval`` (called by the pipeline)."""
    record = stores.status.get(job_id)
    review = review_summary(stores, record)
    return stores.status.update(
        job_id,
        {
            "state": JobState.awaiting_approval.value,
            "stage": "storyboard",
            "message": (
                f"{len(review.shots)} shots, estimated ${review.total_usd:.2f} with {review.video_model}: "
                "review the prompts, then approve to generate"
            ),
            "cost": lambda c: {
                **c,
                "estimated_usd": review.total_usd,
                "video_seconds": round(review.video_seconds, 3),
            },
        },
    )


def _require_state(record: JobRecord, state: JobState, action: str) -> None:
    if record.state != state:
        raise InvalidTransition(
            f"job {record.id} is {record.state.value}; only a job that is {state.value.replace('_', ' ')} "
            f"can be {action}"
        )


def _check_prompt(prompt: str, settings: Settings) -> str:
    text = prompt.strip()
    if not text:
        raise InvalidParameter("a shot's prompt cannot be empty", code="empty_prompt")
    if len(text) > settings.max_prompt_chars:
        raise InvalidParameter(
            f"the prompt is {len(text)} characters; keep it under {settings.max_prompt_chars}",
            code="prompt_too_long",
        )
    return text


def _shot_position(board: Storyboard, index: int) -> int:
    for position, shot in enumerate(board.shots):
        if shot.index == index:
            return position
    raise ShotNotFound(
        f"there is no shot {index}; this storyboard has shots 0 to {len(board.shots) - 1}"
        if board.shots
        else f"there is no shot {index}; this storyboard has no shots"
    )


def _write_board(stores: JobStores, job_id: str, board: Storyboard) -> None:
    data = board.model_dump_json(indent=2).encode()
    stores.storage.write_bytes(JobLayout(job_id).storyboard, data, content_type="application/json")


def _checked_edits(
    stores: JobStores, job_id: str, prompts: dict[int, str]
) -> tuple[Storyboard, dict[str, str]]:
    """The stored storyboard, and every edit checked against it (shot exists, prompt fits) before any
    is recorded: a bad one changes nothing."""
    board = _stored_board(stores, job_id)
    checked = {}
    for index, text in prompts.items():
        _shot_position(board, index)
        checked[str(index)] = _check_prompt(text, stores.settings)
    return board, checked


def _merge_edits(edits: dict[str, str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda params: {**params, PROMPT_EDITS: {**(params.get(PROMPT_EDITS) or {}), **edits}}


def _while_awaiting(job_id: str, action: str) -> Callable[[str], str]:
    """A state value for ``StatusStore.update`` that refuses, inside the transaction, unless awaiting."""

    def check(state: str) -> str:
        if state != JobState.awaiting_approval.value:
            raise InvalidTransition(
                f"job {job_id} is {state}; only a job that is awaiting approval can be {action}"
            )
        return state

    return check


def edit_shots(stores: JobStores, job_id: str, prompts: dict[int, str]) -> Storyboard:
    """Record new prompts for shots of a job awaiting approval; returns the storyboard as edited.

    The edits go into the job record in one transaction that also checks the state, so concurrent
    edits of different shots all survive and none lands after the approval (see ``with_prompt_edits``).
    """
    _require_state(stores.status.get(job_id), JobState.awaiting_approval, "edited")
    stored, edits = _checked_edits(stores, job_id, prompts)
    record = stores.status.update(
        job_id, {"state": _while_awaiting(job_id, "edited"), "params": _merge_edits(edits)}
    )
    # The file follows for anyone who reads it (a late write may lag another edit; the approval and
    # the generate stage both apply the record's edits again, so nothing generated ever lags).
    board = with_prompt_edits(stored, record.params)
    _write_board(stores, job_id, board)
    return board


# ------------------------------------------------------------------------------------- approval


def approve(
    stores: JobStores, job_id: str, launcher: Launcher, prompts: dict[int, str] | None = None
) -> JobRecord:
    """Apply ``prompts`` edits, set the job running again and launch an execution that resumes it.

    The state change is a compare-and-set inside the store's transaction (only from
    ``awaiting_approval``), so two approvals racing launch one execution, and the other gets a 409.
    ``heartbeat_at`` is cleared: that is how the new execution's ``take_job`` tells an approved job
    waiting for its process from one another process is running.
    """
    record = stores.status.get(job_id)
    _require_state(record, JobState.awaiting_approval, "approved")
    stored, edits = _checked_edits(stores, job_id, prompts or {})

    def from_awaiting(state: str) -> str:
        if state != JobState.awaiting_approval.value:
            raise InvalidTransition(f"job {job_id} is {state}; it was approved or cancelled meanwhile")
        return JobState.running.value

    record = stores.status.update(
        job_id,
        {
            "state": from_awaiting,
            "heartbeat_at": None,
            "message": "approved: generating the shots",
            "params": lambda p: {
                **_merge_edits(edits)(p),
                "approved": True,
                "approved_at": utcnow().isoformat(),
            },
        },
    )
    # This call won the compare-and-set, and no edit is accepted after it: it alone writes the
    # storyboard the generation will read, with every edit the record holds.
    _write_board(stores, job_id, with_prompt_edits(stored, record.params))
    return _launch(stores, record, launcher)


def _launch(stores: JobStores, record: JobRecord, launcher: Launcher) -> JobRecord:
    """Start an execution of ``record``; a launcher failure is recorded in the job, then raised."""
    try:
        execution = launcher.launch(record.id)
    except KapsuleError as exc:
        with contextlib.suppress(InvalidTransition):
            stores.status.update(
                record.id, {"state": JobState.failed.value, "error": exc.to_dict(), "message": exc.message}
            )
        raise
    with contextlib.suppress(InvalidTransition):  # it may have finished already
        return stores.status.update(record.id, {"execution": execution})
    return stores.status.get(record.id)


# --------------------------------------------------------------------------------------- re-roll


def new_seed(old: int) -> int:
    """A fresh random seed, never the shot's current one (a re-roll must change the request)."""
    while True:
        seed = secrets.randbelow(MAX_SEED) + 1
        if seed != old:
            return seed


def reroll(
    stores: JobStores,
    job_id: str,
    index: int,
    launcher: Launcher,
    *,
    prompt: str | None = None,
    seed: int | None = None,
) -> JobRecord:
    """Create and launch a new job that regenerates shot ``index`` of the succeeded job ``job_id``.

    The new job's folder is seeded from the parent's: its song, analysis, storyboard (shot ``index``
    with the new prompt and/or seed; a new random seed by default), every other shot's clip and
    their manifest entries. Only the changed shot's request key is new, so only it is generated and
    billed. The new record names its parent (``params.parent_job``) and the shot re-rolled.
    """
    parent = stores.status.get(job_id)
    _require_state(parent, JobState.succeeded, "re-rolled")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise InvalidParameter(f"the seed must be between 0 and {MAX_SEED}, got {seed}")
    text = _check_prompt(prompt, stores.settings) if prompt is not None else None
    board = load_board(stores, job_id)
    position = _shot_position(board, index)
    shot = board.shots[position]
    if seed is None:
        seed = shot.seed if text is not None and text != shot.prompt else new_seed(shot.seed)
    if (text is None or text == shot.prompt) and seed == shot.seed:
        raise InvalidParameter(
            f"shot {index} already has that prompt and seed {seed}: change one of them to re-roll it",
            code="nothing_to_reroll",
        )
    board.shots[position] = shot.model_copy(update={"prompt": text or shot.prompt, "seed": seed})

    params: dict[str, Any] = {k: v for k, v in parent.params.items() if k not in _PARAMS_NOT_INHERITED}
    params.update(
        parent_job=parent.id, reroll={"shot": index, "seed": seed, "prompt_changed": text is not None}
    )
    child = JobRecord(owner=parent.owner, params=params, message=f"re-roll of shot {index} of {parent.id}")
    _seed_folder(stores, parent.id, child.id, board, index)
    stores.status.create(child)
    return _launch(stores, child, launcher)


def _seed_folder(stores: JobStores, parent_id: str, child_id: str, board: Storyboard, index: int) -> None:
    """Copy what the re-roll reuses into the child's folder, with manifest paths made the child's."""
    src, dst = JobLayout(parent_id), JobLayout(child_id)
    storage = stores.storage
    for key in storage.list(src.input_prefix):
        name = key[len(src.input_prefix) :]
        if name.startswith("song."):
            storage.copy(key, dst.input_song(name.removeprefix("song.")))
    storage.copy(src.analysis, dst.analysis)
    _write_board(stores, child_id, board)
    try:
        manifest = ShotManifest.model_validate_json(storage.read_bytes(src.manifest))
    except ObjectNotFound:
        manifest = ShotManifest()
    kept = []
    for result in manifest.shots:
        if (
            result.index == index
            or result.state not in ("done", "fallback")
            or not storage.exists(result.file)
        ):
            continue
        target = dst.shot(result.index, result.key)
        storage.copy(result.file, target)
        kept.append(result.model_copy(update={"file": target}))
    storage.write_bytes(
        dst.manifest,
        ShotManifest(shots=kept).model_dump_json(indent=2).encode(),
        content_type="application/json",
    )
