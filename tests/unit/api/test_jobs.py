"""Jobs over the /v1 API through the real app: made from an upload (once per Idempotency-Key), listed,
cancelled; the app's own routes; and which jobs the launcher is told use a Google model.

Everything real (file:// storage, SQLite, ffprobe on real files) except the launcher, which only
records what it was asked to start (``app.dependency_overrides``): job processes are the integration
and e2e tiers' part. That is what lets every bad-input test assert "nothing was launched".
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kapsule.api.deps import get_launcher
from kapsule.api.main import create_app
from kapsule.core.settings import Settings
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.layout import JobLayout
from kapsule.job.record import JobRecord
from tests.support.api import (
    LOOPBACK,
    RecordingLauncher,
    api_client,
    expect_error,
    upload_file,
)
from tests.support.settings import replace

# ----------------------------------------------------------------------------------- the happy path


def test_upload_then_create_job_launches_it_with_the_song_stored(
    client: TestClient, launcher: RecordingLauncher, api_settings: Settings, song: Path
) -> None:
    upload_id = upload_file(client, song)
    response = client.post(
        "/v1/jobs",
        json={"upload_id": upload_id, "prompt": "neon city", "style": "film", "aspect_ratio": "9:16"},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] == "queued" and job["owner"] == "local"
    assert job["params"]["prompt"] == "neon city" and job["params"]["aspect_ratio"] == "9:16"
    assert job["song_seconds"] == pytest.approx(6.0, abs=0.05)
    assert job["execution"] == f"test-{job['id']}"
    assert launcher.launched == [job["id"]]
    stored = open_storage(api_settings.storage_url).read_bytes(JobLayout(job["id"]).input_song("wav"))
    assert stored == song.read_bytes()

    assert client.get(f"/v1/jobs/{job['id']}").json()["id"] == job["id"]
    listed = client.get("/v1/jobs").json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]] and listed["next_cursor"] is None


def test_idempotency_key_gives_the_same_job_and_launches_once(
    client: TestClient, launcher: RecordingLauncher, song: Path
) -> None:
    upload_id = upload_file(client, song)
    first = client.post("/v1/jobs", json={"upload_id": upload_id}, headers={"Idempotency-Key": "abc-1"})
    again = client.post("/v1/jobs", json={"upload_id": upload_id}, headers={"Idempotency-Key": "abc-1"})
    other = client.post("/v1/jobs", json={"upload_id": upload_id}, headers={"Idempotency-Key": "abc-2"})
    assert first.status_code == again.status_code == other.status_code == 202
    assert again.json()["id"] == first.json()["id"] != other.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert launcher.launched == [first.json()["id"], other.json()["id"]]


def test_an_idempotency_key_reused_for_another_job_is_a_409_not_a_replay(
    client: TestClient, launcher: RecordingLauncher, song: Path, api_settings: Settings
) -> None:
    upload_id = upload_file(client, song)
    key = {"Idempotency-Key": "same-key"}
    first = client.post("/v1/jobs", json={"upload_id": upload_id, "prompt": "rain"}, headers=key)
    assert first.status_code == 202
    changed = client.post("/v1/jobs", json={"upload_id": upload_id, "prompt": "snow"}, headers=key)
    expect_error(changed, 409, "idempotency_conflict")
    invalid = client.post("/v1/jobs", json={"upload_id": upload_id, "max_shots": -3}, headers=key)
    expect_error(invalid, 422, "invalid_parameter")  # a bad body is refused as bad, never replayed
    assert launcher.launched == [first.json()["id"]]
    assert client.get(f"/v1/jobs/{first.json()['id']}").json()["params"]["prompt"] == "rain"


def test_jobs_are_listed_newest_first_in_pages(client: TestClient, api_settings: Settings) -> None:
    status = open_status_store(api_settings.status_url)
    ids = []
    for _ in range(5):
        ids.append(status.create(JobRecord()).id)
        time.sleep(0.002)
    page1 = client.get("/v1/jobs", params={"limit": 3}).json()
    page2 = client.get("/v1/jobs", params={"limit": 3, "cursor": page1["next_cursor"]}).json()
    assert [j["id"] for j in page1["jobs"] + page2["jobs"]] == ids[::-1]
    assert page2["next_cursor"] is None
    expect_error(client.get("/v1/jobs", params={"cursor": "nonsense"}), 422, "bad_cursor")


def test_cancel_stops_the_job_once(client: TestClient, launcher: RecordingLauncher, song: Path) -> None:
    job = client.post("/v1/jobs", json={"upload_id": upload_file(client, song)}).json()
    cancelled = client.post(f"/v1/jobs/{job['id']}:cancel")
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    for _ in range(50):
        if launcher.cancelled:
            break
        time.sleep(0.02)
    assert launcher.cancelled == [job["execution"]]
    expect_error(client.post(f"/v1/jobs/{job['id']}:cancel"), 409, "invalid_transition")
    assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "cancelled"


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/v1/healthz").json()["auth"] == "open"
    assert "/v1/jobs" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


def test_unknown_routes_are_json_errors(client: TestClient) -> None:
    expect_error(client.get("/v1/nothing-here"), 404, "no_such_endpoint")
    expect_error(client.delete("/v1/jobs"), 404, "no_such_endpoint")
    expect_error(client.post("/v1/jobs/j0/../../x"), 404, "no_such_endpoint")


def test_cors_allows_only_the_configured_origins(api_settings: Settings, launcher: RecordingLauncher) -> None:
    with api_client(launcher, replace(api_settings, cors_origins="https://studio.example.com")) as c:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        }
        ok = c.options("/v1/jobs", headers={"Origin": "https://studio.example.com", **preflight})
        assert ok.headers["access-control-allow-origin"] == "https://studio.example.com"
        other = c.get("/v1/jobs", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers


def test_the_service_tells_the_launcher_which_jobs_use_a_google_model(
    api_settings: Settings, song: Path
) -> None:
    """The job's own model decides, not the deployment's default: a Veo job gets the key, a local one not."""
    launcher = RecordingLauncher()
    app = create_app(replace(api_settings, gemini_api_key="gemini-secret"))
    app.dependency_overrides[get_launcher] = lambda: launcher
    with TestClient(app, base_url=LOOPBACK) as client:
        for model in ("veo-3.0-fast-generate-001", "local"):
            body = {"upload_id": upload_file(client, song), "video_model": model}
            response = client.post("/v1/jobs", json=body)
            assert response.status_code == 202, response.text
    assert launcher.genai == [True, False]
