"""The job entrypoint: ``python -m kapsule.worker`` runs the job named by ``KAPSULE_JOB_ID``.

The same process runs locally (started by ``LocalLauncher``) and as a Cloud Run Job task. It only
translates: the job service claims the job and keeps its heartbeat, the pipeline runs it, and this
module turns the outcome into the exit code that is the retry contract. 0 when the job succeeded,
was cancelled, paused for review (``awaiting_approval``: the process exits, an approval launches a
new one), or failed in a way a retry cannot fix (recorded in the job first); 1 when a retry could
help (a storage blip, a dead kernel), so Cloud Run starts another attempt, which skips the stages
already done. On the last attempt (``KAPSULE_JOB_MAX_RETRIES`` + 1, the value deploy.sh also gives
Cloud Run) a retryable failure is recorded too, so no job is left ``running`` forever.

Logs are one JSON object per line on stdout with a ``severity`` key, which Cloud Logging parses
without a client library; a ``KapsuleError`` is logged as its code and message, never a traceback.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import Any

from kapsule.control.pipeline import run_job
from kapsule.control.service import JobService
from kapsule.core.errors import JobCancelled, KapsuleError
from kapsule.core.logs import EventLog, JsonLogHandler, event_log, trace_name
from kapsule.core.settings import Settings, TaskEnv, get_settings
from kapsule.infra.context import Stores
from kapsule.job.record import JobState

EXIT_OK = 0
EXIT_RETRY = 1
EXIT_MISCONFIGURED = 2

_LOG = EventLog()  # replaced in main() by one that knows the settings' secrets


def local_command() -> list[str]:
    """How a local launcher starts this entrypoint (the CLI and the API hand it to ``make_launcher``)."""
    return [sys.executable, "-m", "kapsule.worker"]


def log_event(
    severity: str, message: str, job_id: str | None = None, stage: str | None = None, **extra: Any
) -> None:
    """One structured, redacted log line on stdout (Cloud Logging's format; see ``kapsule.core.logs``)."""
    _LOG.event(severity, message, job_id, stage, **extra)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Unwind through papermill so it shuts the notebook kernel (and its FFmpeg) down cleanly.
    raise JobCancelled("the job process was asked to stop (SIGTERM)")


def main(job_id: str | None = None, settings: Settings | None = None, task: TaskEnv | None = None) -> int:
    """Run one job; return the process exit code (see the module docstring)."""
    global _LOG
    settings = settings or get_settings()
    task = task or TaskEnv()
    job_id = job_id or task.job_id
    _LOG = event_log(settings, job_id)
    logging.basicConfig(level=logging.WARNING, handlers=[JsonLogHandler(_LOG)], force=True)
    if not job_id:
        log_event("ERROR", "KAPSULE_JOB_ID is not set: nothing to run")
        return EXIT_MISCONFIGURED
    try:
        service = JobService(Stores.open(settings))
        record = service.claim(job_id, task)
    except KapsuleError as exc:
        log_event("ERROR", f"cannot take the job: [{exc.code}] {exc.message}", job_id, code=exc.code)
        return EXIT_RETRY if exc.retryable else EXIT_MISCONFIGURED
    status = service.stores.status
    if record is None:
        current = status.get(job_id)
        log_event("INFO", f"job is {current.state.value}; nothing to do", job_id, state=current.state.value)
        return EXIT_OK
    _LOG.trace = trace_name(settings.google_cloud_project, record.trace_header)
    log_event("INFO", "job started", job_id, attempt=record.attempt, execution=record.execution)

    on_main = threading.current_thread() is threading.main_thread()
    if on_main:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with service.heartbeat(job_id):
            final = run_job(job_id, settings)
    except KapsuleError as exc:
        stage = exc.stage or status.get(job_id).stage
        if service.last_attempt(task) or not exc.retryable:
            service.record_failure(job_id, exc, stage)
        log_event(
            "ERROR", f"[{exc.code}] {exc.message}", job_id, stage, code=exc.code, retryable=exc.retryable
        )
        return EXIT_RETRY if exc.retryable else EXIT_OK
    except Exception as exc:  # a bug: record it, keep the traceback in the log, let the platform see it
        log_event(
            "CRITICAL", f"unexpected {type(exc).__name__}: {exc}", job_id, traceback=traceback.format_exc()
        )
        error = KapsuleError(f"internal error: {type(exc).__name__}: {exc}")
        service.record_failure(job_id, error, status.get(job_id).stage)
        return EXIT_RETRY
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    if final.state == JobState.succeeded:
        timings = {k: v.model_dump() for k, v in final.timings.items()}
        outputs = final.outputs.model_dump()
        log_event("INFO", "job succeeded", job_id, final.stage, outputs=outputs, timings=timings)
    elif final.state == JobState.failed and final.error is not None:
        message = f"[{final.error.code}] {final.error.message}"
        log_event("ERROR", message, job_id, final.error.stage, code=final.error.code)
    elif final.state == JobState.awaiting_approval:  # paused for review: nothing runs until approved
        log_event("INFO", "job awaiting approval; exiting until it is approved", job_id, final.stage)
    elif not final.finished:  # stopped (SIGTERM) without being cancelled: let the platform retry it
        log_event("WARNING", f"job stopped while {final.state.value}", job_id, final.stage)
        return EXIT_RETRY
    else:
        log_event("INFO", f"job {final.state.value}", job_id, final.stage)
    return EXIT_OK
