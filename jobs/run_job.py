"""The job entrypoint: ``python -m jobs.run_job`` runs the job named by ``KAPSULE_JOB_ID``.

The same process runs locally (started by ``LocalLauncher``) and as a Cloud Run Job task. Its exit
code is the retry contract: 0 when the job succeeded, was cancelled, paused for review
(``awaiting_approval``: the process exits, an approval launches a new one), or failed in a way a retry
cannot fix (recorded in the job first); 1 when a retry could help (a storage blip, a dead kernel),
so Cloud Run starts another attempt, which skips the stages already done. On the last attempt a
retryable failure is recorded too, so no job is left ``running`` forever.

Logs are one JSON object per line on stdout with a ``severity`` key, which Cloud Logging parses
without a client library; a ``KapsuleError`` is logged as its code and message, never a traceback.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from datetime import timedelta
from types import FrameType
from typing import Any

from kapsule_pipeline.errors import InvalidTransition, JobCancelled, KapsuleError
from kapsule_pipeline.jobs import JobRecord, JobState, utcnow
from kapsule_pipeline.launch.reconcile import STALE_HEARTBEAT_S  # silent this long: a new attempt takes over
from kapsule_pipeline.logs import EventLog, JsonLogHandler, event_log, trace_name
from kapsule_pipeline.settings import Settings, get_settings
from kapsule_pipeline.status import StatusStore, open_status_store

HEARTBEAT_S = 10.0
MAX_ATTEMPTS = 3  # Cloud Run task attempts (max retries + 1); the last one records any failure

EXIT_OK = 0
EXIT_RETRY = 1
EXIT_MISCONFIGURED = 2


_LOG = EventLog()  # replaced in main() by one that knows the settings' secrets


def log_event(
    severity: str, message: str, job_id: str | None = None, stage: str | None = None, **extra: Any
) -> None:
    """One structured, redacted log line on stdout (Cloud Logging's format; see ``kapsule_pipeline.logs``)."""
    _LOG.event(severity, message, job_id, stage, **extra)


class Heartbeat(threading.Thread):
    """Writes ``heartbeat_at`` every ``interval`` seconds so a crashed runner can be told from a slow one."""

    def __init__(self, status: StatusStore, job_id: str, interval: float = HEARTBEAT_S) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.status, self.job_id, self.interval = status, job_id, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.status.update(self.job_id, {"heartbeat_at": utcnow()})
            except InvalidTransition:
                return  # the job finished (or was cancelled): nothing left to keep alive
            except KapsuleError as exc:
                log_event("WARNING", f"heartbeat not written: {exc.message}", self.job_id)

    def stop(self) -> None:
        self.stopped.set()


def _unchanged(field: str, seen: Any, then: Callable[[Any], Any] | Any) -> Callable[[Any], Any]:
    """A change for ``field`` that applies only if the field still holds ``seen`` (compare-and-set).

    It runs inside the store's transaction (see ``jobs.apply_update``); if another runner wrote the
    field since we read it, the whole update is refused with ``InvalidTransition``.
    """

    def check(current: Any) -> Any:
        if current != seen:
            raise InvalidTransition(
                f"{field} changed from {seen!r} to {current!r}: another runner took the job"
            )
        return then(current) if callable(then) else then

    return check


def take_job(status: StatusStore, job_id: str, settings: Settings) -> JobRecord | None:
    """Move the job to running for this attempt, or return None if it is not ours to run.

    A queued job is taken. A running one is taken only by a retry (Cloud Run task attempt > 0), when
    its heartbeat is stale (the runner died), or when it was just approved after review (no
    heartbeat yet); a finished one, or one awaiting approval, never. The decision is made on the
    record as read, and the write is a compare-and-set on ``state``, ``attempt`` and ``heartbeat_at``
    inside the store's transaction: of two runners racing for the same job exactly one takes it.
    """
    record = status.get(job_id)
    if record.finished:
        return None
    if record.state == JobState.running:
        beat = record.heartbeat_at or record.updated_at
        stale = utcnow() - beat > timedelta(seconds=STALE_HEARTBEAT_S)
        # An approved review (``review.approve``) is running with no heartbeat: waiting for us.
        approved = bool(record.params.get("approved")) and record.heartbeat_at is None
        if settings.cloud_run_task_attempt == 0 and not stale and not approved:
            return None
    elif record.state != JobState.queued:
        return None
    seen = record.model_dump(mode="json")
    changes: dict[str, Any] = {
        "state": _unchanged("state", seen["state"], JobState.running.value),
        "attempt": _unchanged("attempt", seen["attempt"], lambda n: n + 1),
        "heartbeat_at": _unchanged("heartbeat_at", seen["heartbeat_at"], utcnow()),
        "message": "starting",
    }
    short = settings.cloud_run_execution
    if short and not (record.execution or "").endswith(f"/executions/{short}"):
        changes["execution"] = short  # keep the launcher's full name when it is this execution
    try:
        return status.update(job_id, changes)
    except InvalidTransition:
        return None  # another runner took it (or it was cancelled) between our read and our write


def _last_attempt(settings: Settings) -> bool:
    """Only Cloud Run retries a task; a local run, or Cloud Run's last attempt, gets no other chance."""
    return not settings.cloud_run_execution or settings.cloud_run_task_attempt + 1 >= MAX_ATTEMPTS


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Unwind through papermill so it shuts the notebook kernel (and its FFmpeg) down cleanly.
    raise JobCancelled("the job process was asked to stop (SIGTERM)")


def main(job_id: str | None = None, settings: Settings | None = None) -> int:
    """Run one job; return the process exit code (see the module docstring)."""
    global _LOG
    settings = settings or get_settings()
    job_id = job_id or settings.job_id
    _LOG = event_log(settings, job_id)
    logging.basicConfig(level=logging.WARNING, handlers=[JsonLogHandler(_LOG)], force=True)
    if not job_id:
        log_event("ERROR", "KAPSULE_JOB_ID is not set: nothing to run")
        return EXIT_MISCONFIGURED
    from kapsule_pipeline.pipeline import StageError, record_failure, run_job
    from kapsule_pipeline.stages import JobContext

    try:
        status = open_status_store(settings.status_url)
        record = take_job(status, job_id, settings)
    except KapsuleError as exc:
        log_event("ERROR", f"cannot take the job: [{exc.code}] {exc.message}", job_id, code=exc.code)
        return EXIT_RETRY if exc.retryable else EXIT_MISCONFIGURED
    if record is None:
        current = status.get(job_id)
        log_event("INFO", f"job is {current.state.value}; nothing to do", job_id, state=current.state.value)
        return EXIT_OK
    _LOG.trace = trace_name(settings.google_cloud_project, record.params.get("trace_header"))
    log_event("INFO", "job started", job_id, attempt=record.attempt, execution=record.execution)

    heartbeat = Heartbeat(status, job_id)
    heartbeat.start()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        final = run_job(job_id, settings)
    except KapsuleError as exc:
        stage = exc.stage if isinstance(exc, StageError) else status.get(job_id).stage
        if _last_attempt(settings) or not exc.retryable:
            record_failure(JobContext.open(job_id, settings=settings), exc, stage)
        log_event(
            "ERROR", f"[{exc.code}] {exc.message}", job_id, stage, code=exc.code, retryable=exc.retryable
        )
        return EXIT_RETRY if exc.retryable else EXIT_OK
    except (
        Exception
    ) as exc:  # a bug: record it, keep the traceback in the log, let the platform see a failure
        log_event(
            "CRITICAL", f"unexpected {type(exc).__name__}: {exc}", job_id, traceback=traceback.format_exc()
        )
        error = KapsuleError(f"internal error: {type(exc).__name__}: {exc}")
        record_failure(JobContext.open(job_id, settings=settings), error, status.get(job_id).stage)
        return EXIT_RETRY
    finally:
        heartbeat.stop()
        heartbeat.join(timeout=5)  # no late beat after a pause: an approval clears heartbeat_at
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    if final.state == JobState.succeeded:
        log_event(
            "INFO",
            "job succeeded",
            job_id,
            final.stage,
            outputs=final.outputs,
            timings=final.params.get("timings"),
        )
    elif final.state == JobState.failed and final.error is not None:
        log_event(
            "ERROR",
            f"[{final.error.code}] {final.error.message}",
            job_id,
            final.error.stage,
            code=final.error.code,
        )
    elif final.state == JobState.awaiting_approval:  # paused for review: nothing runs until approved
        log_event("INFO", "job awaiting approval; exiting until it is approved", job_id, final.stage)
    elif not final.finished:  # stopped (SIGTERM) without being cancelled: let the platform retry it
        log_event("WARNING", f"job stopped while {final.state.value}", job_id, final.stage)
        return EXIT_RETRY
    else:
        log_event("INFO", f"job {final.state.value}", job_id, final.stage)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
