"""The API on gs:// storage: uploads go straight to Cloud Storage through V4 signed URLs, and the
video is a redirect to a signed GET URL. Real GCS emulator, URLs signed with a real (generated)
service-account key; the launcher is the recording one of test_api (jobs are not run here).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi.testclient import TestClient

from kapsule.core.settings import Settings
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.layout import JobLayout
from kapsule.job.params import JobParams
from kapsule.job.record import JobRecord, JobState
from kapsule.job.update import JobUpdate
from tests.support.api import (
    RecordingLauncher,
    sine_wav,
)


def test_upload_to_gcs_with_a_signed_url_then_create_the_job(
    gcs_client: tuple[TestClient, RecordingLauncher, Settings], tmp_path: Path
) -> None:
    client, launcher, settings = gcs_client
    song = sine_wav(tmp_path / "song.wav", 6.0)
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
    status.update(record.id, JobUpdate(state=JobState.running))
    status.update(record.id, JobUpdate(state=JobState.succeeded))

    response = client.get(f"/v1/jobs/{record.id}/video", follow_redirects=False)
    assert response.status_code == 307
    location = response.headers["location"]
    assert "X-Goog-Signature" in location
    assert httpx.get(location, timeout=30).content == b"mp4 bytes"


def test_a_gcs_upload_url_is_signed_for_one_put(
    gcs_client: tuple[TestClient, RecordingLauncher, Settings],
) -> None:
    """GCS answers a second PUT with 412 once the precondition "no object yet" is signed into the URL
    (the GCS emulator does not enforce preconditions, so this checks the URL and its headers)."""
    client, _, _ = gcs_client
    info = client.post(
        "/v1/uploads", json={"filename": "s.wav", "content_type": "audio/wav", "size": 10}
    ).json()
    assert info["headers"]["x-goog-if-generation-match"] == "0"
    signed = parse_qs(urlsplit(info["url"]).query)["X-Goog-SignedHeaders"][0].split(";")
    assert "x-goog-if-generation-match" in signed and "x-goog-content-length-range" in signed


def test_a_large_song_goes_up_in_chunks_through_a_resumable_session(
    gcs_client: tuple[TestClient, RecordingLauncher, Settings], tmp_path: Path
) -> None:
    """What the studio does with a song over 8 MiB: 8 MiB chunks with Content-Range, then the job."""
    client, launcher, settings = gcs_client
    song = sine_wav(tmp_path / "long.wav", 200.0)  # 8.8 MB at 22.05 kHz
    data = song.read_bytes()
    assert len(data) > 8 * 1024 * 1024
    small = client.post("/v1/uploads", json={"filename": "s.wav", "content_type": "audio/wav", "size": 1000})
    assert "resumable_url" not in small.json()  # a small song goes up in one PUT
    ticket = client.post(
        "/v1/uploads",
        json={"filename": "long.wav", "content_type": "audio/wav", "size": len(data)},
        headers={"Origin": "http://127.0.0.1:8080"},
    )
    assert ticket.status_code == 201, ticket.text
    session = ticket.json()["resumable_url"]
    chunk = 8 * 1024 * 1024
    statuses = []
    for start in range(0, len(data), chunk):
        end = min(len(data), start + chunk)
        put = httpx.put(
            session,
            content=data[start:end],
            headers={"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"},
            timeout=60,
        )
        statuses.append(put.status_code)
    assert statuses[:-1] == [308] * (len(statuses) - 1) and statuses[-1] in (200, 201), statuses
    job = client.post("/v1/jobs", json={"upload_id": ticket.json()["upload_id"]})
    assert job.status_code == 202, job.text
    assert launcher.launched == [job.json()["id"]]
    storage = open_storage(settings.storage_url)
    assert storage.read_bytes(JobLayout(job.json()["id"]).input_song("wav")) == data
