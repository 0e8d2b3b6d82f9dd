"""Review before paying, and re-rolls of one shot: the library logic the API and the CLI share.

A job created with ``params.review`` pauses after its storyboard (``running → awaiting_approval``,
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

import secrets
from collections.abc import Callable

from pydantic import BaseModel

from kapsule.core.errors import (
    EmptyPrompt,
    InvalidParameter,
    NothingToReroll,
    ObjectNotFound,
    PromptTooLong,
    ShotNotFound,
    StoryboardNotReady,
)
from kapsule.infra.context import JobContext
from kapsule.job.artifacts import FINISHED_SHOT_STATES, MAX_SHOT_SEED, ShotManifest, Storyboard
from kapsule.job.layout import JobLayout
from kapsule.job.params import MAX_PROMPT_CHARS, JobParams
from kapsule.job.record import JobRecord, JobState, RerollOf, new_job_id, utcnow
from kapsule.job.update import ApprovalChange, CostEstimate, Guard, InState, JobUpdate, NotReplanning


class ReviewShot(BaseModel):
    index: int  # the storyboard's index, from 0: what the API's paths and edits take
    number: int  # index + 1: the shot's number as people read it (CLI, studio, contact sheet)
    start: float
    end: float
    seconds: float  # the shot's length in the video
    request_seconds: int  # the clip length asked of the video model (what is billed)
    prompt: str
    seed: int
    cost_usd: float


class ReviewLine(BaseModel):
    """A timed lyric line as the reviewer sees it; ``sure: false`` asks them to listen to it."""

    start: float
    end: float
    text: str
    confidence: float
    sure: bool


class Review(BaseModel):
    """What a reviewer sees before paying: every shot, what the whole storyboard will cost, and the
    timed lyric lines (unsure ones marked) that the captions and cuts will follow."""

    job_id: str
    state: str
    video_model: str
    shots: list[ReviewShot]
    video_seconds: float
    total_usd: float
    to_generate: int
    new_usd: float
    budget_usd: float | None
    lyrics: list[ReviewLine] = []


# -------------------------------------------------------------------------------------- reading


def needs_review(record: JobRecord) -> bool:
    """A job asked to be reviewed that has not been approved yet stops after its storyboard."""
    return record.params.review and not record.approval.approved


def with_prompt_edits(board: Storyboard, record: JobRecord) -> Storyboard:
    """``board`` with the prompt edits recorded in the job's ``approval`` applied (pure).

    Only ``approve`` writes the edited storyboard back, after it has won the compare-and-set (see
    ``kapsule.job.record.Approval`` for why the edits live in the record).
    """
    edits = record.approval.prompt_edits
    if not edits:
        return board
    shots = [
        shot.model_copy(update={"prompt": edits[shot.index]}) if shot.index in edits else shot
        for shot in board.shots
    ]
    return board.model_copy(update={"shots": shots})


def _stored_board(ctx: JobContext) -> Storyboard:
    try:
        return ctx.read_model(ctx.layout.storyboard, Storyboard)
    except ObjectNotFound:
        raise StoryboardNotReady(f"job {ctx.job_id} has no storyboard yet") from None


def load_board(ctx: JobContext, record: JobRecord | None = None) -> Storyboard:
    """The job's storyboard as its owner sees it: ``storyboard.json`` with the pending prompt edits."""
    return with_prompt_edits(_stored_board(ctx), record or ctx.record())


def review_summary(ctx: JobContext, record: JobRecord | None = None) -> Review:
    """Each shot's prompt, length and price, and the storyboard's total (clips in storage cost 0)."""
    from kapsule.generation import make_video_generator
    from kapsule.storyboard.cost import estimate_storyboard

    record = record or ctx.record()
    board = load_board(ctx, record)
    generator = make_video_generator(ctx, ctx.params.video_model or board.video_model)
    total = estimate_storyboard(board, generator)
    new = estimate_storyboard(board, generator, exists=ctx.storage.exists, layout=ctx.layout)
    shots = []
    for shot in board.shots:
        request = generator.request_for(shot, board)
        shots.append(
            ReviewShot(
                index=shot.index,
                number=shot.number,
                start=shot.start,
                end=shot.end,
                seconds=round(shot.duration, 3),
                request_seconds=request.seconds,
                prompt=shot.prompt,
                seed=shot.seed,
                cost_usd=generator.estimate_cost_usd(request),
            )
        )
    budget = record.params.budget_usd
    lyrics = []
    if ctx.storage.exists(ctx.layout.lyrics):
        from kapsule.lyrics import lines_from_json

        lyrics = [
            ReviewLine(start=ln.start, end=ln.end, text=ln.text, confidence=ln.confidence, sure=ln.sure)
            for ln in lines_from_json(ctx.storage.read_bytes(ctx.layout.lyrics))
        ]
    return Review(
        job_id=record.id,
        state=record.state.value,
        video_model=generator.name,
        shots=shots,
        video_seconds=total.video_seconds,
        total_usd=total.total_usd,
        to_generate=new.to_generate,
        new_usd=new.new_usd,
        budget_usd=float(budget) if budget else None,
        lyrics=lyrics,
    )


# ------------------------------------------------------------------------------------ the pause


def pause_for_review(
    ctx: JobContext, *, guards: tuple[Guard, ...] = (), approval: ApprovalChange | None = None
) -> JobRecord:
    """Record the estimate and move ``running → awaiting_approval`` (called by the pipeline).

    A regrid, whose job is already awaiting approval, passes ``guards`` (it must still hold the
    review) and the ``approval`` change that ends its hold and drops the old plan's prompt edits.
    """
    review = review_summary(ctx)
    return ctx.status.update(
        ctx.job_id,
        JobUpdate(
            guards=guards,
            change_approval=approval,
            state=JobState.awaiting_approval,
            stage="storyboard",
            message=(
                f"{len(review.shots)} shots, estimated ${review.total_usd:.2f} with {review.video_model}: "
                "review the prompts, then approve to generate"
            ),
            set_estimate=CostEstimate(
                estimated_usd=review.total_usd, video_seconds=round(review.video_seconds, 3)
            ),
        ),
    )


def awaiting_approval(action: str) -> tuple[Guard, ...]:
    """The guards of a review action (``action``: "approved", "edited", "re-planned"): checked again
    inside the store's transaction, so an action racing the approval, a regrid or a cancel is refused
    (409) and never half-applies."""
    return (InState(states=(JobState.awaiting_approval,), action=action), NotReplanning(action=action))


def require_state(record: JobRecord, state: JobState, action: str) -> None:
    """Refuse early, before any work, what the transaction's guard would refuse (same message)."""
    InState(states=(state,), action=action).check(record)


def check_prompt(prompt: str) -> str:
    """A shot prompt as given by a reviewer, stripped; empty or over the limit is refused."""
    text = prompt.strip()
    if not text:
        raise EmptyPrompt("a shot's prompt cannot be empty")
    if len(text) > MAX_PROMPT_CHARS:
        raise PromptTooLong(f"the prompt is {len(text)} characters; keep it under {MAX_PROMPT_CHARS}")
    return text


def _shot_position(board: Storyboard, index: int) -> int:
    for position, shot in enumerate(board.shots):
        if shot.index == index:
            return position
    # Said in shot numbers (from 1), as the CLI, the studio and the contact sheet count.
    raise ShotNotFound(
        f"there is no shot {index + 1}; this storyboard has shots 1 to {len(board.shots)}"
        if board.shots
        else f"there is no shot {index + 1}; this storyboard has no shots"
    )


def _checked_edits(ctx: JobContext, prompts: dict[int, str]) -> tuple[Storyboard, dict[int, str]]:
    """The stored storyboard, and every edit checked against it (shot exists, prompt fits) before any
    is recorded: a bad one changes nothing."""
    board = _stored_board(ctx)
    checked = {}
    for index, text in prompts.items():
        _shot_position(board, index)
        checked[index] = check_prompt(text)
    return board, checked


def edit_shots(ctx: JobContext, prompts: dict[int, str]) -> Storyboard:
    """Record new prompts for shots of a job awaiting approval; returns the storyboard as edited.

    The edits go into the job record in one transaction that also checks the state, so concurrent
    edits of different shots all survive and none lands after the approval.
    """
    require_state(ctx.record(), JobState.awaiting_approval, "edited")
    stored, edits = _checked_edits(ctx, prompts)
    record = ctx.status.update(
        ctx.job_id,
        JobUpdate(guards=awaiting_approval("edited"), change_approval=ApprovalChange(add_prompt_edits=edits)),
    )
    # The file follows for anyone who reads it (a late write may lag another edit; the approval and
    # the generate stage both apply the record's edits again, so nothing generated ever lags).
    board = with_prompt_edits(stored, record)
    ctx.write_model(ctx.layout.storyboard, board)
    return board


# ------------------------------------------------------------------------------------- approval


def approve(ctx: JobContext, prompts: dict[int, str] | None = None) -> JobRecord:
    """Apply ``prompts`` edits and set the job running again; the caller launches its execution.

    The state change is a compare-and-set inside the store's transaction (only from
    ``awaiting_approval``), so of two approvals racing one wins and the other gets a 409.
    ``heartbeat_at`` is cleared: that is how the new execution's claim tells an approved job
    waiting for its process from one another process is running.
    """
    require_state(ctx.record(), JobState.awaiting_approval, "approved")
    stored, edits = _checked_edits(ctx, prompts or {})
    record = ctx.status.update(
        ctx.job_id,
        JobUpdate(
            guards=awaiting_approval("approved"),
            state=JobState.running,
            heartbeat_at=None,
            message="approved: generating the shots",
            change_approval=ApprovalChange(add_prompt_edits=edits, approve_at=utcnow()),
        ),
    )
    # This call won the compare-and-set, and no edit is accepted after it: it alone writes the
    # storyboard the generation will read, with every edit the record holds.
    ctx.write_model(ctx.layout.storyboard, with_prompt_edits(stored, record))
    return record


# --------------------------------------------------------------------------------------- re-roll


def new_seed(old: int) -> int:
    """A fresh random seed, never the shot's current one (a re-roll must change the request)."""
    while True:
        seed = secrets.randbelow(MAX_SHOT_SEED) + 1
        if seed != old:
            return seed


def reroll(
    ctx: JobContext,
    index: int,
    *,
    prompt: str | None = None,
    seed: int | None = None,
    check: Callable[[JobParams], None] | None = None,
) -> JobRecord:
    """Create (not launch) a new job that regenerates shot ``index`` of the succeeded job ``ctx``.

    ``check`` is handed the new job's params before anything exists (the job service checks the
    models, the allow-list and the daily cap there, as for a new job). With a paid model the new job's
    budget is what the shot may cost: its price twice (one re-phrase after a refusal), at most the
    parent's budget, so a re-roll reserves against the owner's cap only what it can spend.

    The new job's folder is seeded from the parent's: its song, analysis, storyboard (shot ``index``
    with the new prompt and/or seed; a new random seed by default), every other shot's clip and
    their manifest entries. Only the changed shot's request key is new, so only it is generated and
    billed. The new record names its parent and the shot re-rolled (``reroll``).
    """
    parent = ctx.record()
    require_state(parent, JobState.succeeded, "re-rolled")
    if seed is not None and not 0 <= seed <= MAX_SHOT_SEED:
        raise InvalidParameter(f"the seed must be between 0 and {MAX_SHOT_SEED}, got {seed}")
    text = check_prompt(prompt) if prompt is not None else None
    board = load_board(ctx, parent)
    position = _shot_position(board, index)
    shot = board.shots[position]
    if seed is None:
        seed = shot.seed if text is not None and text != shot.prompt else new_seed(shot.seed)
    if (text is None or text == shot.prompt) and seed == shot.seed:
        raise NothingToReroll(
            f"shot {index + 1} already has that prompt and seed {seed}: change one of them to re-roll it"
        )
    board.shots[position] = shot.model_copy(update={"prompt": text or shot.prompt, "seed": seed})
    params = parent.params.model_copy(
        update={"review": False, "budget_usd": _reroll_budget(ctx, board, index)}
    )
    if check is not None:
        check(params)
    child = JobRecord(
        id=new_job_id(),
        owner=parent.owner,
        # The same inputs; its files (song, lyrics, reference images) are copied into its own folder.
        params=params,
        song_seconds=parent.song_seconds,
        reroll=RerollOf(parent_job=parent.id, shot=index, seed=seed, prompt_changed=text is not None),
        message=f"re-roll of shot {index + 1} of {parent.id}",
    )
    _seed_folder(ctx, child.id, board, index)
    return ctx.status.create(child)


def _reroll_budget(ctx: JobContext, board: Storyboard, position: int) -> float:
    """The budget of a re-roll of the shot at ``position``: twice what it makes again (with continuity,
    every shot after it too), at most the parent's budget (0: none)."""
    from kapsule.generation import make_video_generator

    parent_budget = ctx.params.budget_usd
    model = ctx.params.video_model or board.video_model
    if model == "local":
        return parent_budget
    generator = make_video_generator(ctx, model)
    again = board.shots[position:] if ctx.params.continuity == "last_frame" else [board.shots[position]]
    price = 2 * sum(generator.estimate_cost_usd(generator.request_for(shot, board)) for shot in again)
    return round(min(price, parent_budget) if parent_budget else price, 4)


def _seed_folder(ctx: JobContext, child_id: str, board: Storyboard, index: int) -> None:
    """Copy what the re-roll reuses into the child's folder, with manifest paths made the child's."""
    src, dst = ctx.layout, JobLayout(child_id)
    storage = ctx.storage
    for key in storage.list(src.input_prefix):
        name = key[len(src.input_prefix) :]
        if name.startswith(("song.", "refs/", "lyrics.")):
            storage.copy(key, dst.input_prefix + name)
    storage.copy(src.analysis, dst.analysis)
    if storage.exists(src.lyrics):  # the timed lines: the captions are made again from them
        storage.copy(src.lyrics, dst.lyrics)
    ctx.write_model(dst.storyboard, board)
    try:
        manifest = ctx.read_model(src.manifest, ShotManifest)
    except ObjectNotFound:
        manifest = ShotManifest()
    kept = []
    for result in manifest.shots:
        if (
            result.index == index
            or result.state not in FINISHED_SHOT_STATES
            or not storage.exists(result.file)
        ):
            continue
        target = dst.shot(result.index, result.key)
        storage.copy(result.file, target)
        kept.append(result.model_copy(update={"file": target}))
    ctx.write_model(dst.manifest, ShotManifest(shots=kept))
