"""Find the running jobs whose runner went silent and let their launcher say how they ended.

A job records its own ending; what it cannot record is its own death (kill -9, out of memory, a
deleted execution). Its heartbeat then goes stale, and ``reconcile`` asks the launcher about the
execution: ended or gone → the job is marked failed; still running (Cloud Run retrying it, or a
slow stage) → left alone. ``kapsule reconcile`` and the API's ``GET /v1/jobs/{id}`` use this.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from kapsule.core.errors import KapsuleError
from kapsule.infra.launch.cloudrun import StatusLauncher, reconcile
from kapsule.infra.status import StatusStore
from kapsule.job.record import JobRecord, JobState, utcnow

log = logging.getLogger(__name__)

# The job writes a heartbeat every 10 s; a minute of silence is worth asking the launcher about.
RECONCILE_AFTER_S = 60.0
# A new attempt may take over a running job only after this much silence (see kapsule/worker/run_job.py).
STALE_HEARTBEAT_S = 120.0


def heartbeat_stale(
    record: JobRecord, after_s: float = RECONCILE_AFTER_S, now: datetime | None = None
) -> bool:
    """True for a running job whose last heartbeat (or write) is older than ``after_s`` seconds."""
    if record.state != JobState.running:
        return False
    beat = record.heartbeat_at or record.updated_at
    return (now or utcnow()) - beat > timedelta(seconds=after_s)


def reconcile_if_stale(
    store: StatusStore, launcher: object, record: JobRecord, after_s: float = RECONCILE_AFTER_S
) -> JobRecord:
    """``reconcile`` the job when its heartbeat is stale and the launcher can tell; else ``record``."""
    if not heartbeat_stale(record, after_s) or not isinstance(launcher, StatusLauncher):
        return record
    return reconcile(store, launcher, record)


def reconcile_stale(
    store: StatusStore,
    launcher: StatusLauncher,
    owners: Iterable[str],
    after_s: float = RECONCILE_AFTER_S,
    job_ids: Iterable[str] = (),
) -> list[JobRecord]:
    """Reconcile the stale running jobs of ``owners`` (every page) and of ``job_ids``; return them after."""
    candidates: dict[str, JobRecord] = {}
    for owner in owners:
        cursor: str | None = None
        while True:
            page, cursor = store.list(owner, limit=100, cursor=cursor)
            candidates.update({r.id: r for r in page if heartbeat_stale(r, after_s)})
            if cursor is None:
                break
    for job_id in job_ids:
        record = store.get(job_id)
        if heartbeat_stale(record, after_s):
            candidates[record.id] = record
    checked = []
    for record in candidates.values():
        try:
            checked.append(reconcile(store, launcher, record))
        except KapsuleError as exc:  # e.g. another launcher's execution name: say so, check the rest
            log.warning("job %s not reconciled: [%s] %s", record.id, exc.code, exc.message)
            checked.append(record)
    return checked
