"""``cloudrun://`` launcher: one Cloud Run Job execution per Kapsule job (google-cloud-run, Admin API v2).

``launch`` asks Cloud Run to run the configured job with overrides (``KAPSULE_JOB_ID`` and the task
timeout) and returns the execution's full name, read from the long-running operation's *metadata*:
the operation only completes when the execution has finished, so waiting for it would block the API
for the whole render. Cancel goes through ``ExecutionsClient.cancel_execution`` (again not waited).

``reconcile`` is the safety net for what the job itself cannot report: a task killed by the platform
(out of memory, timeout, retries exhausted) or an execution deleted. It marks such a job failed, so no
job stays ``running`` forever; it never touches a job that has already said how it ended.

Clients are built on first use. An ``http://`` endpoint (``KAPSULE_CLOUDRUN_ENDPOINT``, the local
test server) is spoken to over plain REST with anonymous credentials; otherwise Application Default
Credentials are used (the API's service account in Cloud Run).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from kapsule.core.errors import (
    BadExecutionName,
    ConfigError,
    InvalidTransition,
    LaunchError,
)
from kapsule.core.settings import Settings
from kapsule.infra.status import StatusStore
from kapsule.job.record import JobError, JobRecord, JobState
from kapsule.job.update import JobUpdate

URL_RE = re.compile(r"^cloudrun://(projects/[^/\s]+/locations/[^/\s]+/jobs/[^/\s]+)/?$")
EXECUTION_RE = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/jobs/(?P<job>[^/]+)/executions/(?P<execution>[^/]+)$"
)
# What ``poll`` returns for an execution that no longer exists (its exit code is unknowable).
VANISHED = -1


@dataclass(frozen=True)
class ExecutionStatus:
    """What Cloud Run says about one execution, reduced to what Kapsule decides on."""

    name: str
    done: bool
    succeeded: bool
    cancelled: bool
    message: str = ""


@runtime_checkable
class StatusLauncher(Protocol):
    """A launcher that can tell how an execution ended (Cloud Run, and the local subprocess one)."""

    def status(self, execution: str) -> ExecutionStatus | None:
        """The execution's state, or ``None`` if it no longer exists (its ending is unknowable)."""


def parse_job_url(url: str) -> str:
    """``cloudrun://projects/P/locations/L/jobs/J`` → the job's resource name ``projects/P/…/jobs/J``."""
    match = URL_RE.match(url)
    if not match:
        raise ConfigError(
            f"bad launcher URL {url!r}: expected cloudrun://projects/PROJECT/locations/REGION/jobs/JOB"
        )
    return match.group(1)


def _api_error(action: str, exc: Exception) -> LaunchError:
    return LaunchError(f"Cloud Run could not {action}: {exc}")


class CloudRunLauncher:
    """Starts, polls and cancels executions of one Cloud Run Job."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.settings = settings
        self.job_name = parse_job_url(url)
        self._jobs: Any = None
        self._executions: Any = None

    # -- clients (lazy: importing this module or building the launcher makes no network call) ----------
    def _client_kwargs(self) -> dict[str, Any]:
        endpoint = self.settings.cloudrun_endpoint
        if not endpoint:
            return {}
        kwargs: dict[str, Any] = {"transport": "rest", "client_options": {"api_endpoint": endpoint}}
        if endpoint.startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            kwargs["credentials"] = AnonymousCredentials()  # type: ignore[no-untyped-call]  # local: no token
        return kwargs

    @property
    def jobs_client(self) -> Any:
        if self._jobs is None:
            from google.cloud import run_v2

            self._jobs = run_v2.JobsClient(**self._client_kwargs())
        return self._jobs

    @property
    def executions_client(self) -> Any:
        if self._executions is None:
            from google.cloud import run_v2

            self._executions = run_v2.ExecutionsClient(**self._client_kwargs())
        return self._executions

    # -- the Launcher protocol ----------------------------------------------------------------------
    def run_request(self, job_id: str) -> Any:
        """The ``RunJobRequest`` for one Kapsule job (overrides are not a flattened keyword)."""
        from google.cloud import run_v2
        from google.protobuf import duration_pb2

        overrides = run_v2.RunJobRequest.Overrides(
            container_overrides=[
                run_v2.RunJobRequest.Overrides.ContainerOverride(
                    env=[run_v2.EnvVar(name="KAPSULE_JOB_ID", value=job_id)]
                )
            ],
            task_count=1,
            timeout=duration_pb2.Duration(seconds=round(self.settings.cloudrun_task_timeout_s)),
        )
        return run_v2.RunJobRequest(name=self.job_name, overrides=overrides)

    def launch(self, job_id: str, *, genai: bool = False) -> str:
        """Start an execution for ``job_id``; return its full name without waiting for it to run.

        ``genai`` changes nothing here: the Cloud Run job's secrets come from its definition.
        """
        from google.api_core import exceptions

        try:
            operation = self.jobs_client.run_job(request=self.run_request(job_id))
        except exceptions.GoogleAPICallError as exc:
            raise _api_error(f"start job {self.job_name}", exc) from exc
        metadata = operation.metadata
        name = getattr(metadata, "name", "") if metadata is not None else ""
        if not name:
            raise LaunchError(f"Cloud Run started job {self.job_name} but did not name the execution")
        return str(name)

    def full_name(self, execution: str) -> str:
        """An execution's resource name; the job itself only knows the short ``CLOUD_RUN_EXECUTION``.

        Cloud Run may name the project by its number where the launcher URL has its id, so a full
        name must match the job's location and name; its project segment is not compared (the
        number cannot be told from the id offline) and the name is returned in the launcher's form.
        """
        if execution.startswith("projects/"):
            match = EXECUTION_RE.match(execution)
            _, location, job = self.job_name.split("/")[1::2]
            if match is None or match.group("location", "job") != (location, job):
                raise BadExecutionName(f"execution {execution!r} does not belong to {self.job_name}")
            return f"{self.job_name}/executions/{match.group('execution')}"
        if not execution or "/" in execution:
            raise BadExecutionName(f"not a Cloud Run execution name: {execution!r}")
        return f"{self.job_name}/executions/{execution}"

    def status(self, execution: str) -> ExecutionStatus | None:
        """The execution's state, or ``None`` if Cloud Run no longer knows it (deleted or never existed)."""
        from google.api_core import exceptions

        name = self.full_name(execution)
        try:
            found = self.executions_client.get_execution(name=name)
        except exceptions.NotFound:
            return None
        except exceptions.GoogleAPICallError as exc:
            raise _api_error(f"read execution {name}", exc) from exc
        completed = [c for c in found.conditions if c.type_ == "Completed"]
        done = bool(found.completion_time) or any(
            c.state.name in ("CONDITION_SUCCEEDED", "CONDITION_FAILED") for c in completed
        )
        succeeded = done and found.succeeded_count >= max(found.task_count, 1) and not found.failed_count
        message = completed[0].message if completed else ""
        return ExecutionStatus(name, done, succeeded, found.cancelled_count > 0, message)

    def poll(self, execution: str) -> int | None:
        """0 once the execution succeeded, 1 once it failed or was cancelled, ``VANISHED`` if gone."""
        found = self.status(execution)
        if found is None:
            return VANISHED
        if not found.done:
            return None
        return 0 if found.succeeded else 1

    def cancel(self, execution: str) -> None:
        """Ask Cloud Run to stop the execution (its task gets SIGTERM); a finished or gone one is fine."""
        from google.api_core import exceptions

        name = self.full_name(execution)
        try:
            self.executions_client.cancel_execution(name=name)
        except (exceptions.NotFound, exceptions.FailedPrecondition):
            return
        except exceptions.GoogleAPICallError as exc:
            raise _api_error(f"cancel execution {name}", exc) from exc


def reconcile(store: StatusStore, launcher: StatusLauncher, job: JobRecord | str) -> JobRecord:
    """Mark ``job`` failed if its execution ended (or vanished) while the record still says it runs.

    The job entrypoint records every ending it can see itself; this covers the ones it cannot (the
    task killed for memory or time, retries exhausted, the execution deleted). A finished record, or
    one without an execution yet, is returned as is. Safe to call from many places at once: the write
    is conditional, so a job that finishes meanwhile keeps its own ending.
    """
    record = store.get(job) if isinstance(job, str) else store.get(job.id)
    if record.finished or not record.execution:
        return record
    found = launcher.status(record.execution)
    if found is None:
        error = JobError(
            code="execution_lost",
            message=f"the execution {record.execution} no longer exists",
            stage=record.stage,
        )
    elif not found.done:
        return record
    else:
        how = "was cancelled" if found.cancelled else ("ended" if found.succeeded else "failed")
        detail = f": {found.message}" if found.message else ""
        error = JobError(
            code="job_crashed",
            message=f"the execution {how} without finishing the job{detail}",
            stage=record.stage,
        )
    with contextlib.suppress(InvalidTransition):  # the job finished meanwhile: its word wins
        return store.update(record.id, JobUpdate(state=JobState.failed, error=error, message=error.message))
    return store.get(record.id)
