"""A ``JobContext`` for tests that exercise one job's code: its record is created running if it does not
exist yet (a paid request is reserved in the spend ledger against the job's record)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kapsule.core.errors import JobNotFound
from kapsule.core.settings import Settings
from kapsule.infra.context import JobContext, Stores
from kapsule.job.params import JobParams
from kapsule.job.record import JobRecord, JobState, new_job_id


def job_context(settings: Settings, job_id: str | None = None, **params: Any) -> JobContext:
    stores = Stores.open(settings)
    job_id = job_id or new_job_id()
    try:
        stores.status.get(job_id)
    except JobNotFound:
        stores.status.create(JobRecord(id=job_id, state=JobState.running, params=JobParams(**params)))
    return JobContext(
        job_id=job_id, params=JobParams(**params), stores=stores, workdir=Path(settings.work_dir)
    )
