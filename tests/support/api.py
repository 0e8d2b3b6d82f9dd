"""The API as tests drive it: a launcher that only records, an app client, songs and uploads.

The launcher is swapped in through ``app.dependency_overrides`` so that every bad-input test can
assert "nothing was launched"; job processes themselves are exercised by the integration and e2e tiers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from fastapi.testclient import TestClient

from kapsule.api.deps import get_launcher
from kapsule.api.main import create_app
from kapsule.core.settings import Settings
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.layout import JobLayout
from kapsule.job.params import JobParams
from kapsule.job.record import JobRecord, JobState
from kapsule.job.update import JobUpdate

SECRET = "test-upload-secret"


RATE = 22050


LOOPBACK = "http://127.0.0.1"


class RecordingLauncher:
    """Starts nothing; remembers what it was asked to launch and cancel."""

    def __init__(self) -> None:
        self.launched: list[str] = []
        self.cancelled: list[str] = []
        self.genai: list[bool] = []

    def launch(self, job_id: str, *, genai: bool = False) -> str:
        self.launched.append(job_id)
        self.genai.append(genai)
        return f"test-{job_id}"

    def cancel(self, execution: str) -> None:
        self.cancelled.append(execution)

    def poll(self, execution: str) -> int | None:
        return None


def api_client(launcher: RecordingLauncher, settings: Settings, base_url: str = LOOPBACK) -> TestClient:
    """The app made with ``settings``, its launcher swapped for ``launcher``."""
    app = create_app(settings)
    app.dependency_overrides[get_launcher] = lambda: launcher
    return TestClient(app, base_url=base_url)  # open mode answers loopback Host names only


def sine_wav(path: Path, seconds: float, amplitude: float = 0.5) -> Path:
    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(path, (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32), RATE, subtype="PCM_16")
    return path


def upload_file(
    client: TestClient, path: Path, content_type: str = "audio/wav", headers: dict[str, str] | None = None
) -> str:
    data = path.read_bytes()
    body = {"filename": path.name, "content_type": content_type, "size": len(data)}
    ticket = client.post("/v1/uploads", json=body, headers=headers)
    assert ticket.status_code == 201, ticket.text
    put = client.put(ticket.json()["url"], content=data, headers=ticket.json()["headers"])
    assert put.status_code == 200, put.text
    return ticket.json()["upload_id"]


def expect_error(response, status: int, code: str) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert len(error["message"]) > 15
    return error["message"]


def finished_job(settings: Settings, video: Path, owner: str = "local") -> JobRecord:
    status = open_status_store(settings.status_url)
    record = status.create(JobRecord(owner=owner, params=JobParams(song="My Song.wav")))
    storage = open_storage(settings.storage_url)
    layout = JobLayout(record.id)
    storage.upload_from(video, layout.video)
    storage.write_bytes(layout.notebook("01_analyze", "html"), b"<html><body>tempo 120</body></html>")
    status.update(record.id, JobUpdate(state=JobState.running, stage="analyze"))
    return status.update(record.id, JobUpdate(state=JobState.succeeded, progress=1.0))


def job_record(settings: Settings, owner: str = "local", state: JobState = JobState.running) -> JobRecord:
    status = open_status_store(settings.status_url)
    record = status.create(JobRecord(owner=owner, params=JobParams(song="s.wav")))
    if state != JobState.queued:
        record = status.update(record.id, JobUpdate(state=state))
    return record
