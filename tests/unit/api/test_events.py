"""A job's server-sent events: each change in order, until it finishes or pauses; quiet jobs are read less."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kapsule.api.deps import get_launcher, get_status
from kapsule.api.main import create_app
from kapsule.api.routes import events
from kapsule.core.settings import Settings
from kapsule.infra.status import open_status_store
from kapsule.job.record import JobRecord, JobState
from kapsule.job.update import JobUpdate
from tests.support.api import (
    RecordingLauncher,
    api_client,
    finished_job,
    job_record,
)
from tests.support.settings import replace


def test_events_stream_the_record_until_it_finishes(
    client: TestClient, api_settings: Settings, small_mp4: Path
) -> None:
    job = finished_job(api_settings, small_mp4)
    with client.stream("GET", f"/v1/jobs/{job.id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())
    assert "event: job" in text and '"state":"succeeded"' in text
    assert text.rstrip().endswith("event: end\ndata: {}")


def test_events_follow_a_running_job_in_order(
    client: TestClient, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job moves on only once the stream has sent its previous state: no sleep decides what is seen."""
    status = open_status_store(api_settings.status_url)
    job = status.create(JobRecord())
    sent = threading.Condition()
    sent_states: list[str] = []
    format_event = events._event

    def watched(record: JobRecord) -> str:  # the stream's own formatter; tells the writer what went out
        with sent:
            sent_states.append(record.updated_at.isoformat())
            sent.notify_all()
        return format_event(record)

    monkeypatch.setattr(events, "_event", watched)

    def advance() -> None:
        updates = [
            JobUpdate(state=JobState.running, stage=stage, progress=progress)
            for stage, progress in (("analyze", 0.05), ("storyboard", 0.12), ("generate", 0.5))
        ]
        for update in [*updates, JobUpdate(state=JobState.succeeded, progress=1.0)]:
            current = status.get(job.id).updated_at.isoformat()
            with sent:
                assert sent.wait_for(lambda c=current: c in sent_states, timeout=60)
            status.update(job.id, update)

    writer = threading.Thread(target=advance)
    writer.start()
    with client.stream("GET", f"/v1/jobs/{job.id}/events") as stream:
        text = "".join(stream.iter_text())
    writer.join()
    got = [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith('data: {"')]
    assert got[0]["state"] == "queued" and got[-1]["state"] == "succeeded"
    assert len(got) >= 3  # it streams as the job moves, not only the final state
    assert [e.get("stage") for e in got[1:4]] == ["analyze", "storyboard", "generate"]  # none skipped
    progress = [e["progress"] for e in got]
    assert progress == sorted(progress)


@pytest.mark.xdist_group("timing")  # its waits are measured
def test_a_quiet_job_is_read_less_and_less_often_by_its_event_stream(
    api_settings: Settings, launcher: RecordingLauncher
) -> None:
    """Issue 13: one viewer of a job waiting minutes on Veo must not read the store twice a second."""
    store = open_status_store(api_settings.status_url)
    job = store.create(JobRecord())
    store.update(job.id, JobUpdate(state=JobState.running, stage="generate", progress=0.3))
    reads: list[float] = []

    class CountingStore:  # the real store; only counts the reads the stream makes
        url = store.url

        def get(self, job_id: str) -> JobRecord:
            reads.append(time.monotonic())
            return store.get(job_id)

        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

    app = create_app(replace(api_settings, event_stream_max_s=8))
    app.dependency_overrides[get_launcher] = lambda: launcher
    app.dependency_overrides[get_status] = lambda: CountingStore()
    with (
        TestClient(app, base_url="http://127.0.0.1") as client,
        client.stream("GET", f"/v1/jobs/{job.id}/events") as stream,
    ):
        text = "".join(stream.iter_text())
    assert "event: reconnect" in text  # the stream's lifetime ended; the page reconnects
    span = reads[-1] - reads[0]
    assert span > 5.0 and len(reads) <= 10, (len(reads), span)  # a fixed 0.5 s poll would be ~16
    gaps = [b - a for a, b in itertools.pairwise(reads)]
    assert gaps[-1] > 2 * gaps[1]  # the waits grow while nothing changes


def _sse(client: TestClient, job_id: str, headers: dict[str, str] | None = None) -> str:
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as stream:
        return "".join(stream.iter_text())


@pytest.mark.xdist_group("timing")  # a 1 s stream lifetime
def test_event_streams_end_at_a_pause_and_after_their_lifetime(api_settings: Settings) -> None:
    with api_client(RecordingLauncher(), replace(api_settings, event_stream_max_s=1)) as client:
        paused = job_record(api_settings, state=JobState.running)
        open_status_store(api_settings.status_url).update(
            paused.id, JobUpdate(state=JobState.awaiting_approval)
        )
        text = _sse(client, paused.id)  # used to stream keep-alives forever
        assert '"state":"awaiting_approval"' in text and text.rstrip().endswith("event: end\ndata: {}")
        running = job_record(api_settings)
        first = _sse(client, running.id)
        assert "event: job" in first and first.rstrip().endswith("event: reconnect\ndata: {}")
        last_id = [line[4:] for line in first.splitlines() if line.startswith("id: ")][-1]
        again = _sse(client, running.id, {"Last-Event-ID": last_id})
        assert "event: job" not in again and "event: reconnect" in again
