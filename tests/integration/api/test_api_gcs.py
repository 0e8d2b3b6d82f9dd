"""The API on gs:// storage: uploads go straight to Cloud Storage through V4 signed URLs, and the
video is a redirect to a signed GET URL. Real GCS emulator, URLs signed with a real (generated)
service-account key; the launcher is the recording one of test_api (jobs are not run here).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from kapsule.core.settings import Settings, get_settings
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.layout import JobLayout
from kapsule.job.params import JobParams
from kapsule.job.record import JobRecord, JobState
from tests.integration.infra.test_gcs_signing import ServiceAccountKey, sa_key  # noqa: F401 (a fixture)
from tests.support.emulators import GcsEmulator
from tests.unit.api.test_api import RecordingLauncher, _client, _wav

pytestmark = pytest.mark.integration


@pytest.fixture
def gcs_client(
    kapsule_env: Settings,
    gcs_emulator: GcsEmulator,
    sa_key: ServiceAccountKey,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[TestClient, RecordingLauncher, Settings]]:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(sa_key.file))
    monkeypatch.setenv("KAPSULE_STORAGE_URL", f"gs://{gcs_emulator.new_bucket()}")
    monkeypatch.setenv("KAPSULE_UPLOAD_SECRET", "a-test-secret-for-gcs-uploads")
    monkeypatch.delenv("KAPSULE_API_KEYS", raising=False)
    get_settings.cache_clear()
    launcher = RecordingLauncher()
    with _client(launcher) as client:
        yield client, launcher, get_settings()


def test_upload_to_gcs_with_a_signed_url_then_create_the_job(
    gcs_client: tuple[TestClient, RecordingLauncher, Settings], tmp_path: Path
) -> None:
    client, launcher, settings = gcs_client
    song = _wav(tmp_path / "song.wav", 6.0)
    ticket = client.post(
        "/v1/uploads", json={"filename": "song.wav", "content_type": "audio/wav", "size": song.stat().st_size}
    )
    assert ticket.status_code == 201, ticket.text
    info = ticket.json()
    query = parse_qs(urlsplit(info["url"]).query)
    assert "X-Goog-Signature" in query and query["X-Goog-Expires"] == [str(settings.upload_url_expiry_s)]
    assert info["headers"]["x-goog-content-length-range"] == f"0,{song.stat().st_size}"

    put = httpx.put(info["url"], content=song.read_bytes(), headers=info["headers"], timeout=30)
    assert put.status_code == 200, put.text
    job = client.post("/v1/jobs", json={"upload_id": info["upload_id"]})
    assert job.status_code == 202, job.text
    assert launcher.launched == [job.json()["id"]]
    storage = open_storage(settings.storage_url)
    assert storage.read_bytes(JobLayout(job.json()["id"]).input_song("wav")) == song.read_bytes()


def test_video_on_gcs_is_a_redirect_to_a_signed_url(
    gcs_client: tuple[TestClient, RecordingLauncher, Settings],
) -> None:
    client, _, settings = gcs_client
    status = open_status_store(settings.status_url)
    record = status.create(JobRecord(params=JobParams(song="Song.wav")))
    open_storage(settings.storage_url).write_bytes(JobLayout(record.id).video, b"mp4 bytes", "video/mp4")
    status.update(record.id, {"state": JobState.running.value})
    status.update(record.id, {"state": JobState.succeeded.value})

    response = client.get(f"/v1/jobs/{record.id}/video", follow_redirects=False)
    assert response.status_code == 307
    location = response.headers["location"]
    assert "X-Goog-Signature" in location
    assert httpx.get(location, timeout=30).content == b"mp4 bytes"
