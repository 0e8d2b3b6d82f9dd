"""``GET /v1/jobs/{id}/events``: server-sent events, one ``job`` event (the record as JSON) per change.

A stream ends (``event: end``) when its job finishes or pauses for approval (nothing moves until a
person acts; the page follows again after approving), and after ``event_stream_max_s`` in any case
(``event: reconnect``; an ``EventSource`` reconnects by itself and sends ``Last-Event-ID``, so the
record it already has is not sent again). One owner holds at most ``max_event_streams_per_owner``
streams at once in this process: the next one is a 429.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from kapsule.api.deps import OwnerDep, ServiceDep, SettingsDep
from kapsule.core.errors import TooManyStreams
from kapsule.infra.status import StatusStore
from kapsule.job.record import JobRecord, JobState

router = APIRouter(prefix="/jobs", tags=["jobs"])

EVENTS_POLL_S = 0.5  # the first wait between reads, and the wait again after every change
EVENTS_MAX_POLL_S = 5.0  # a job that says nothing is read less and less often, up to this
EVENTS_KEEPALIVE_S = 15.0
RETRY_MS = 2000

_open: dict[str, int] = {}
_open_lock = threading.Lock()


@contextmanager
def stream_slot(owner: str, cap: int) -> Iterator[None]:
    """Count one open stream of ``owner`` while the block runs; ``TooManyStreams`` past ``cap``."""
    with _open_lock:
        if _open.get(owner, 0) >= cap:
            raise TooManyStreams(
                f"you already follow {cap} jobs at once; close a tab or wait for a job to finish"
            )
        _open[owner] = _open.get(owner, 0) + 1
    try:
        yield
    finally:
        with _open_lock:
            _open[owner] -= 1
            if not _open[owner]:
                del _open[owner]


def open_streams(owner: str) -> int:
    with _open_lock:
        return _open.get(owner, 0)


def _event(record: JobRecord) -> str:
    return f"event: job\nid: {record.updated_at.isoformat()}\ndata: {record.model_dump_json()}\n\n"


def _settled(record: JobRecord) -> bool:
    return record.finished or record.state == JobState.awaiting_approval


async def _events(
    job_id: str, status: StatusStore, last_event_id: str | None, deadline: float
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    last = last_event_id
    idle = 0.0
    wait = EVENTS_POLL_S
    while True:
        record = await run_in_threadpool(status.get, job_id)
        if record.updated_at.isoformat() != last:
            last = record.updated_at.isoformat()
            idle = 0.0
            wait = EVENTS_POLL_S  # a job that moves is followed closely
            yield _event(record)
        else:  # back off: a quiet job (a long Veo shot) costs a few reads a minute per viewer, not 120
            wait = min(EVENTS_MAX_POLL_S, wait * 1.5)
        if _settled(record):
            yield "event: end\ndata: {}\n\n"
            return
        if time.monotonic() >= deadline:
            yield "event: reconnect\ndata: {}\n\n"
            return
        if idle >= EVENTS_KEEPALIVE_S:
            idle = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(wait)
        idle += wait


@router.get("/{job_id}/events")
async def job_events(
    job_id: str,
    owner: OwnerDep,
    settings: SettingsDep,
    service: ServiceDep,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> StreamingResponse:
    """Server-sent events of the job until it finishes or pauses (see the module docstring)."""
    await run_in_threadpool(service.get, owner, job_id)  # the same 404 for a missing and a foreign job
    status = service.stores.status
    cap = settings.max_event_streams_per_owner
    if open_streams(owner) >= cap:  # checked here too, so the answer is a 429 and not an empty stream
        raise TooManyStreams(
            f"you already follow {cap} jobs at once; close a tab or wait for a job to finish"
        )
    deadline = time.monotonic() + settings.event_stream_max_s

    async def stream() -> AsyncIterator[str]:
        try:
            with stream_slot(owner, cap):  # held only while the stream runs: nothing leaks if it never starts
                async for event in _events(job_id, status, last_event_id, deadline):
                    yield event
        except TooManyStreams:  # lost a race for the last slot
            yield "event: end\ndata: {}\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
