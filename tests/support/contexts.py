"""A ``JobContext`` for tests that exercise one job's code without creating its record first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kapsule.core.settings import Settings
from kapsule.infra.context import JobContext, Stores
from kapsule.job.params import JobParams
from kapsule.job.record import new_job_id


def job_context(settings: Settings, job_id: str | None = None, **params: Any) -> JobContext:
    return JobContext(
        job_id=job_id or new_job_id(),
        params=JobParams(**params),
        stores=Stores.open(settings),
        workdir=Path(settings.work_dir),
    )
