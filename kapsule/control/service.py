"""The job service: the one way a job is submitted, controlled, claimed and kept honest.

The CLI, the API and the job entrypoint (``kapsule/worker/run_job.py``) used to each write their own job
creation, checks and state changes, and they drifted (the API skipped the model checks). Now they
only translate (options, HTTP, exit codes) into calls of this class:

- ``submit`` validates the whole ``JobParams`` (field limits, then the models against this
  deployment) and the song by its content, creates the record *before* any file is written under
  the job's id, stores the song and the reference images, and launches the job. A bad job is
  refused at once with the same error code from every entry point.
- ``cancel``, ``approve``, ``edit_prompt``, ``review`` and ``reroll`` act on one owner's job; a job
  of another owner is the same ``JobNotFound`` as a missing one.
- ``claim`` (a compare-and-set take of the record), ``heartbeat`` and ``reconcile`` are what one
  execution and the watchers of dead executions need.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path

from kapsule.control.submission import (
    GridChange,
    Precheck,
    Submission,
    check_allowed,
    check_daily_cap,
    check_models,
    request_hash,
    with_budget,
)
from kapsule.core.errors import (
    IdempotencyConflict,
    InvalidTransition,
    JobExists,
    JobNotFound,
    KapsuleError,
)
from kapsule.core.settings import Settings, TaskEnv
from kapsule.generation.references import check_reference_images, reference_keys
from kapsule.infra.context import JobContext, Stores
from kapsule.infra.launch import Launcher
from kapsule.infra.launch.base import uses_genai_models
from kapsule.infra.launch.cloudrun import StatusLauncher
from kapsule.infra.launch.local import LocalLauncher
from kapsule.infra.launch.reconcile import STALE_HEARTBEAT_S, reconcile_if_stale, reconcile_stale
from kapsule.job.artifacts import AnalysisHints
from kapsule.job.layout import JobLayout
from kapsule.job.params import JobOptions, JobParams, parse_params
from kapsule.job.record import JobRecord, JobState, is_valid_job_id, utcnow
from kapsule.job.update import ApprovalChange, InState, JobUpdate, ReplanHeld, Unchanged
from kapsule.storyboard import review as reviews
from kapsule.storyboard.plan import check_max_shots

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0


class JobService:
    """Submit, control, claim and reconcile jobs on one deployment's stores and launcher."""

    def __init__(self, stores: Stores, launcher: Launcher | None = None) -> None:
        self.stores = stores
        self._launcher = launcher

    @property
    def settings(self) -> Settings:
        return self.stores.settings

    @property
    def launcher(self) -> Launcher:
        if self._launcher is None:
            raise InvalidTransition("this job service was opened without a launcher")
        return self._launcher

    # ------------------------------------------------------------------------------ reading

    def get(self, owner: str, job_id: str) -> JobRecord:
        """The caller's job, or a ``JobNotFound`` that does not reveal whether someone else's exists."""
        if not is_valid_job_id(job_id):
            raise JobNotFound(f"there is no job {job_id[:40]!r}")
        try:
            record = self.stores.status.get(job_id)
        except JobNotFound:
            raise JobNotFound(f"there is no job {job_id!r}") from None
        if record.owner != owner:
            raise JobNotFound(f"there is no job {job_id!r}")
        return record

    def context(self, owner: str, job_id: str) -> JobContext:
        return JobContext.for_record(self.stores, self.get(owner, job_id))

    def list_jobs(
        self, owner: str, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[JobRecord], str | None]:
        return self.stores.status.list(owner, limit=limit, cursor=cursor)

    def observe(self, owner: str, job_id: str) -> JobRecord:
        """The caller's job, after asking the launcher how a silent running job ended, if it can."""
        record = self.get(owner, job_id)
        with contextlib.suppress(KapsuleError):  # the launcher's API down: show the record as it is
            record = reconcile_if_stale(self.stores.status, self._launcher, record)
        if record.state == JobState.queued and record.execution and isinstance(self._launcher, LocalLauncher):
            place = self._launcher.place(record.execution)
            if place is not None:  # waiting for a free slot on this machine: say where in line
                ahead = f"{place} job{'s' if place != 1 else ''} ahead" if place else "next in line"
                record = record.model_copy(update={"message": f"queued: {ahead}"})
        return record

    # ----------------------------------------------------------------------------- submitting

    def params_for(self, submission: Submission) -> JobParams:
        """The job's params, built once: the user's options with this deployment's default models, and
        the names of the files they gave (the files are stored under the job's ``input/``); the models
        are checked against this deployment before any job exists."""
        return self._params(
            submission.owner,
            submission.options,
            submission.song.name,
            [image.name for image in submission.references],
            submission.lyrics.name if submission.lyrics is not None else "",
        )

    def _params(
        self, owner: str, options: JobOptions, song: str, references: list[str], lyrics: str
    ) -> JobParams:
        params = parse_params(
            {
                **options.model_dump(include=set(JobOptions.model_fields)),
                "video_model": options.video_model or self.settings.video_model,
                "prompt_model": options.prompt_model or self.settings.prompt_model,
                "song": song,
                "reference_images": references,
                "lyrics": lyrics,
            }
        )
        check_allowed(owner, params, self.settings)  # "not for you" before "not here"
        check_models(params, self.settings)
        return params

    def check(self, owner: str, check: Precheck) -> JobParams:
        """What ``submit`` checks that needs no song file: the options, the models and the owner's
        allowance, the lyrics, and with the song's length as the client read it, that length, the
        lyrics against it and the budget. A client calls this before uploading, so a bad lyrics file
        or option costs no upload; ``submit`` checks everything again against the real song."""
        from kapsule.song.probe import check_length

        lyrics = check.lyrics.name if check.lyrics is not None else ""
        params = self._params(owner, check.options, check.song_name, list(check.reference_names), lyrics)
        seconds = check.song_seconds
        if seconds is not None:
            check_length(seconds, self.settings)
            params = with_budget(params, self.settings, seconds)
        if check.lyrics is not None:
            from kapsule.lyrics import check_lyrics

            check_lyrics(check.lyrics.data, song_seconds=seconds or self.settings.max_song_seconds)
        return params

    def submit(self, submission: Submission) -> tuple[JobRecord, bool]:
        """Create and launch a job; returns its record and whether it was an idempotent replay.

        Everything is checked before anything exists (params, models, reference images, lyrics, the
        song's content); then the record is created, and only then are files written under its id, so
        two racing requests with one Idempotency-Key never mix their files. A launch failure is
        recorded in the job, then raised.
        """
        if submission.job_id is not None:
            replay = self._replay(submission)
            if replay is not None:
                return replay, True
        params = self.params_for(submission)
        mimes = check_reference_images(submission.references)
        info = submission.song.inspect(self.settings)
        lyrics_ext = None
        if submission.lyrics is not None:  # malformed, empty, too long: refused before the job exists
            from kapsule.lyrics import check_lyrics

            lyrics_ext = check_lyrics(submission.lyrics.data, song_seconds=info.duration)
        check_max_shots(info.duration, params.max_shots or None, fps=self.settings.fps)
        params = with_budget(params, self.settings, info.duration)
        check_daily_cap(self.stores.status, submission.owner, params, self.settings)
        record = JobRecord(
            owner=submission.owner,
            params=params,
            song_seconds=info.duration,
            upload_id=submission.upload_id,
            request_hash=submission.request_hash,
            trace_header=submission.trace_header,
            **({"id": submission.job_id} if submission.job_id is not None else {}),
        )
        try:
            record = self.stores.status.create(record)
        except JobExists:  # the same Idempotency-Key raced us; theirs wins (or is a different job)
            replay = self._replay(submission)
            if replay is None:
                raise
            return replay, True
        layout, storage = JobLayout(record.id), self.stores.storage
        try:
            submission.song.store(storage, layout.input_song(info.ext), info.content_type)
            keys = reference_keys(mimes, layout)
            for key, image, mime in zip(keys, submission.references, mimes, strict=True):
                storage.write_bytes(key, image.data, content_type=mime)
            if submission.lyrics is not None and lyrics_ext:
                storage.write_bytes(
                    layout.input_lyrics(lyrics_ext),
                    submission.lyrics.data,
                    content_type="text/plain; charset=utf-8",
                )
        except KapsuleError as exc:
            self.record_failure(record.id, exc, None)
            raise
        return self._launch(record), False

    def check_spending(self, owner: str, params: JobParams, *, job_id: str | None = None) -> None:
        """The checks every path that can start paid work passes, as a new job does: the models
        against this deployment, the owner's allow-list, and the daily cap (``job_id``'s own budget is
        the one checked, not counted twice). Re-rolls, approvals and regrids call it before they act;
        the ledger checks the budget and the cap again before each paid request is sent."""
        params = params.model_copy(  # a record made without the service may leave them to the deployment
            update={
                "video_model": params.video_model or self.settings.video_model,
                "prompt_model": params.prompt_model or self.settings.prompt_model,
            }
        )
        check_models(params, self.settings)
        check_allowed(owner, params, self.settings)
        check_daily_cap(self.stores.status, owner, params, self.settings, excluding=job_id)

    def _replay(self, submission: Submission) -> JobRecord | None:
        """The job an earlier request with the same Idempotency-Key made, if it is the same request."""
        assert submission.job_id is not None
        try:
            existing = self.get(submission.owner, submission.job_id)
        except JobNotFound:
            return None
        if existing.request_hash != submission.request_hash:
            raise IdempotencyConflict(
                "this Idempotency-Key was used for a different request; use a new key for a new job"
            )
        return existing

    def _launch(self, record: JobRecord) -> JobRecord:
        """Start an execution of ``record``; a launcher failure is recorded in the job, then raised."""
        try:
            models = (record.params.video_model, record.params.prompt_model)
            aligner = "gemini" if record.params.lyrics and record.params.lyrics_aligner == "gemini" else ""
            execution = self.launcher.launch(record.id, genai=uses_genai_models(*models, aligner))
        except KapsuleError as exc:
            self.record_failure(record.id, exc, None)
            raise
        try:
            return self.stores.status.update(record.id, JobUpdate(execution=execution))
        except InvalidTransition:  # it finished meanwhile; if a cancel won, nothing may run for it
            current = self.stores.status.get(record.id)
            if current.state == JobState.cancelled:
                self.launcher.cancel(execution)
            return current

    # ------------------------------------------------------------------------------ control

    def cancel(self, owner: str, job_id: str, message: str = "cancelled by the user") -> JobRecord:
        """Mark the job cancelled (a finished job is a 409), then stop its process in the background.

        A job awaiting approval has no process (it exited after the storyboard): nothing to stop, and
        its old execution name must not be signalled (a local pid may have been reused since).
        """
        before = self.get(owner, job_id)
        record = self.stores.status.update(job_id, JobUpdate(state=JobState.cancelled, message=message))
        # The execution a paused job had has ended; one an approval started meanwhile has not.
        stale = before.state == JobState.awaiting_approval and record.execution == before.execution
        if record.execution and not stale and self._launcher is not None:
            threading.Thread(target=self._launcher.cancel, args=(record.execution,), daemon=True).start()
        return record

    def review(self, owner: str, job_id: str) -> reviews.Review:
        ctx = self.context(owner, job_id)
        return reviews.review_summary(ctx)

    def edit_prompt(self, owner: str, job_id: str, shot: int, prompt: str) -> reviews.Review:
        """Change one shot's prompt while the job awaits approval (an ``InvalidTransition`` otherwise)."""
        ctx = self.context(owner, job_id)
        reviews.edit_shots(ctx, {shot: prompt})
        return reviews.review_summary(ctx)

    def regrid(self, owner: str, job_id: str, change: GridChange) -> reviews.Review:
        """Fix the beat grid of a job awaiting approval and re-plan its storyboard, paying nothing.

        Double, half, another meter or the bar line moved by some beats reread the analysis without
        touching the audio; a BPM analyses the song again with it as a hint. The click preview, the
        storyboard (and its prompts: shots change, so earlier prompt edits are dropped) and the cost
        estimate are all rewritten before the job waits for its approval again.

        It wins or loses cleanly against the other review actions: it first takes the review in a
        compare-and-set (``begin_replan``: refused with 409 if the job is no longer awaiting approval
        or another regrid holds it), and while it holds it an approval or an edit is refused (409).
        Its last write, the new estimate, is guarded by its hold, so a cancel meanwhile makes it a 409
        and never puts the job back to awaiting approval. Its files are made in a folder of its own.
        """
        ctx = self.context(owner, job_id)
        record = ctx.record()
        reviews.require_state(record, JobState.awaiting_approval, "re-planned")
        self.check_spending(owner, record.params, job_id=job_id)  # a new plan may call Gemini
        token = secrets.token_hex(8)
        self.stores.status.update(
            job_id,
            JobUpdate(
                guards=reviews.awaiting_approval("re-planned"),
                change_approval=ApprovalChange(begin_replan=token),
            ),
        )
        scratch = Path(tempfile.mkdtemp(prefix=f"regrid-{job_id}-", dir=self._scratch_root()))
        try:
            self._replan(dataclasses.replace(ctx, workdir=scratch), change, token)
        except BaseException:
            with contextlib.suppress(KapsuleError):  # let the next regrid in at once
                self.stores.status.update(
                    job_id,
                    JobUpdate(
                        guards=(ReplanHeld(token=token),), change_approval=ApprovalChange(end_replan=True)
                    ),
                )
            raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return reviews.review_summary(ctx)

    def _scratch_root(self) -> Path:
        root = Path(self.settings.work_dir)
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _replan(self, ctx: JobContext, change: GridChange, token: str) -> None:
        from kapsule import stages
        from kapsule.analysis.readings import reinterpret
        from kapsule.song.probe import analyze_song
        from kapsule.stages import files as job_files

        song = ctx.input_song()
        if change.bpm is not None:
            hints = AnalysisHints(bpm=change.bpm, beats_per_bar=change.beats_per_bar)
            analysis = analyze_song(song, hints)
        else:
            analysis = reinterpret(
                stages.load_analysis(ctx),
                tempo_factor=change.tempo_factor,
                shift_beats=change.shift_beats,
                beats_per_bar=change.beats_per_bar,
            )
        job_files.write_click_file(ctx, song, analysis)
        ctx.write_model(ctx.layout.analysis, analysis)
        stages.run_storyboard(ctx)
        reviews.pause_for_review(
            ctx,
            guards=(
                ReplanHeld(token=token),
                InState(states=(JobState.awaiting_approval,), action="re-planned"),
            ),
            approval=ApprovalChange(clear_prompt_edits=True, end_replan=True),
        )

    def approve(self, owner: str, job_id: str, prompts: dict[int, str] | None = None) -> JobRecord:
        """Approve the storyboard (with optional last edits) and launch the execution that resumes it.

        If a cancel lands between the approval and the launch, the new execution is cancelled too
        (``_launch`` cannot record it on a cancelled job and stops it; a cancel that sees it recorded
        stops it itself): the job record is the truth, and a cancelled job has nothing running.
        """
        ctx = self.context(owner, job_id)
        self.check_spending(owner, ctx.params, job_id=job_id)  # approving starts the paid shots
        record = reviews.approve(ctx, prompts)
        return self._launch(record)

    def reroll(
        self, owner: str, job_id: str, shot: int, *, prompt: str | None = None, seed: int | None = None
    ) -> JobRecord:
        """Make one shot of a finished job again, as a new launched job that pays only for that shot."""
        check = lambda params: self.check_spending(owner, params)  # noqa: E731 - the child's params
        child = reviews.reroll(self.context(owner, job_id), shot, prompt=prompt, seed=seed, check=check)
        return self._launch(child)

    def record_failure(self, job_id: str, error: KapsuleError, stage: str | None) -> JobRecord:
        """Mark the job failed with ``error`` (unless it already finished, e.g. was cancelled)."""
        return JobContext.for_job(self.stores, job_id).fail(error, stage)

    # ---------------------------------------------------------------------- one execution

    def claim(self, job_id: str, task: TaskEnv) -> JobRecord | None:
        """Move the job to running for this attempt, or return None if it is not ours to run.

        A queued job is taken. A running one is taken only by a retry (Cloud Run task attempt > 0),
        when its heartbeat is stale (the runner died), or when it was just approved after review (no
        heartbeat yet); a finished one, or one awaiting approval, never. The write is a
        compare-and-set on ``state``, ``attempt`` and ``heartbeat_at`` inside the store's
        transaction: of two runners racing for the same job exactly one takes it.
        """
        status = self.stores.status
        record = status.get(job_id)
        if record.finished:
            return None
        if record.state == JobState.running:
            beat = record.heartbeat_at or record.updated_at
            stale = utcnow() - beat > timedelta(seconds=STALE_HEARTBEAT_S)
            approved = record.approval.approved and record.heartbeat_at is None
            if task.cloud_run_task_attempt == 0 and not stale and not approved:
                return None
        elif record.state != JobState.queued:
            return None
        seen = Unchanged(state=record.state, attempt=record.attempt, heartbeat_at=record.heartbeat_at)
        attempt, now = record.attempt + 1, utcnow()
        short = task.cloud_run_execution
        if short and not (record.execution or "").endswith(f"/executions/{short}"):
            take = JobUpdate(
                guards=(seen,),
                state=JobState.running,
                attempt=attempt,
                heartbeat_at=now,
                message="starting",
                execution=short,
            )
        else:  # no execution name, or the launcher's full name of this one: keep what is recorded
            take = JobUpdate(
                guards=(seen,), state=JobState.running, attempt=attempt, heartbeat_at=now, message="starting"
            )
        try:
            return status.update(job_id, take)
        except InvalidTransition:
            return None  # another runner took it (or it was cancelled) between our read and our write

    def last_attempt(self, task: TaskEnv) -> bool:
        """Only Cloud Run retries a task; a local run, or Cloud Run's last attempt, gets no other chance."""
        return not task.cloud_run_execution or task.attempts >= self.settings.job_max_retries + 1

    @contextlib.contextmanager
    def heartbeat(self, job_id: str, interval: float = HEARTBEAT_S) -> Iterator[None]:
        """Write ``heartbeat_at`` every ``interval`` s while the block runs, so a crashed runner can be
        told from a slow one; no late beat once the block has left (an approval clears it)."""
        beat = Heartbeat(self.stores, job_id, interval)
        beat.start()
        try:
            yield
        finally:
            beat.stopped.set()
            beat.join(timeout=5)

    def reconcile(
        self, owners: Iterable[str], stale_after: float, job_ids: Iterable[str] = ()
    ) -> list[JobRecord]:
        """Mark failed the running jobs whose heartbeat is stale and whose execution ended or vanished."""
        if not isinstance(self._launcher, StatusLauncher):
            raise InvalidTransition("this launcher cannot report on its executions")
        return reconcile_stale(self.stores.status, self._launcher, owners, stale_after, job_ids)


class Heartbeat(threading.Thread):
    """Writes ``heartbeat_at`` every ``interval`` s; ends by itself once the job has finished."""

    def __init__(self, stores: Stores, job_id: str, interval: float) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.stores, self.job_id, self.interval = stores, job_id, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.stores.status.update(self.job_id, JobUpdate(heartbeat_at=utcnow()))
            except InvalidTransition:
                return  # the job finished (or was cancelled): nothing left to keep alive
            except KapsuleError as exc:
                log.warning("heartbeat of %s not written: %s", self.job_id, exc.message)


__all__ = ["GridChange", "Heartbeat", "JobService", "Submission", "check_models", "request_hash"]
