"""The /v1 API through the real app: uploads with signed URLs, the content check, jobs, results, auth.

Everything real (file:// storage, SQLite, ffprobe on real WAV/PNG files) except the launcher: job
processes are exercised by the end-to-end test, so here the app's launcher dependency is swapped
(``app.dependency_overrides``) for one that records what it was asked to start. That is what lets
every bad-input test assert "nothing was launched".
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from PIL import Image

from kapsule.api.deps import get_launcher
from kapsule.api.main import create_app
from kapsule.control import uploads
from kapsule.core.settings import Settings, get_settings
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.layout import JobLayout
from kapsule.job.params import JobParams
from kapsule.job.record import JobRecord, JobState

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


@pytest.fixture
def launcher() -> RecordingLauncher:
    return RecordingLauncher()


def _client(launcher: RecordingLauncher) -> TestClient:
    app = create_app(get_settings())
    app.dependency_overrides[get_launcher] = lambda: launcher
    return TestClient(app, base_url=LOOPBACK)  # open mode answers loopback Host names only


@pytest.fixture
def client(env: Settings, launcher: RecordingLauncher) -> Iterator[TestClient]:
    with _client(launcher) as c:
        yield c


def _wav(path: Path, seconds: float, amplitude: float = 0.5) -> Path:
    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(path, (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32), RATE, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _wav(tmp_path_factory.mktemp("songs") / "my song.wav", 6.0)


def _upload(
    client: TestClient, path: Path, content_type: str = "audio/wav", headers: dict[str, str] | None = None
) -> str:
    data = path.read_bytes()
    body = {"filename": path.name, "content_type": content_type, "size": len(data)}
    ticket = client.post("/v1/uploads", json=body, headers=headers)
    assert ticket.status_code == 201, ticket.text
    put = client.put(ticket.json()["url"], content=data, headers=ticket.json()["headers"])
    assert put.status_code == 200, put.text
    return ticket.json()["upload_id"]


def _error(response, status: int, code: str) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert len(error["message"]) > 15
    return error["message"]


def _nothing_launched(launcher: RecordingLauncher, settings: Settings) -> None:
    assert launcher.launched == []
    assert open_status_store(settings.status_url).list("local")[0] == []


# ----------------------------------------------------------------------------------- the happy path


def test_upload_then_create_job_launches_it_with_the_song_stored(
    client: TestClient, launcher: RecordingLauncher, env: Settings, song: Path
) -> None:
    upload_id = _upload(client, song)
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
    stored = open_storage(env.storage_url).read_bytes(JobLayout(job["id"]).input_song("wav"))
    assert stored == song.read_bytes()

    assert client.get(f"/v1/jobs/{job['id']}").json()["id"] == job["id"]
    listed = client.get("/v1/jobs").json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]] and listed["next_cursor"] is None


def test_idempotency_key_gives_the_same_job_and_launches_once(
    client: TestClient, launcher: RecordingLauncher, song: Path
) -> None:
    upload_id = _upload(client, song)
    first = client.post("/v1/jobs", json={"upload_id": upload_id}, headers={"Idempotency-Key": "abc-1"})
    again = client.post("/v1/jobs", json={"upload_id": upload_id}, headers={"Idempotency-Key": "abc-1"})
    other = client.post("/v1/jobs", json={"upload_id": upload_id}, headers={"Idempotency-Key": "abc-2"})
    assert first.status_code == again.status_code == other.status_code == 202
    assert again.json()["id"] == first.json()["id"] != other.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert launcher.launched == [first.json()["id"], other.json()["id"]]


def test_an_idempotency_key_reused_for_another_job_is_a_409_not_a_replay(
    client: TestClient, launcher: RecordingLauncher, song: Path, env: Settings
) -> None:
    upload_id = _upload(client, song)
    key = {"Idempotency-Key": "same-key"}
    first = client.post("/v1/jobs", json={"upload_id": upload_id, "prompt": "rain"}, headers=key)
    assert first.status_code == 202
    changed = client.post("/v1/jobs", json={"upload_id": upload_id, "prompt": "snow"}, headers=key)
    _error(changed, 409, "idempotency_conflict")
    invalid = client.post("/v1/jobs", json={"upload_id": upload_id, "max_shots": -3}, headers=key)
    _error(invalid, 422, "invalid_parameter")  # a bad body is refused as bad, never replayed
    assert launcher.launched == [first.json()["id"]]
    assert client.get(f"/v1/jobs/{first.json()['id']}").json()["params"]["prompt"] == "rain"


def test_jobs_are_listed_newest_first_in_pages(client: TestClient, env: Settings) -> None:
    status = open_status_store(env.status_url)
    ids = []
    for _ in range(5):
        ids.append(status.create(JobRecord()).id)
        time.sleep(0.002)
    page1 = client.get("/v1/jobs", params={"limit": 3}).json()
    page2 = client.get("/v1/jobs", params={"limit": 3, "cursor": page1["next_cursor"]}).json()
    assert [j["id"] for j in page1["jobs"] + page2["jobs"]] == ids[::-1]
    assert page2["next_cursor"] is None
    _error(client.get("/v1/jobs", params={"cursor": "nonsense"}), 422, "bad_cursor")


def test_cancel_stops_the_job_once(client: TestClient, launcher: RecordingLauncher, song: Path) -> None:
    job = client.post("/v1/jobs", json={"upload_id": _upload(client, song)}).json()
    cancelled = client.post(f"/v1/jobs/{job['id']}:cancel")
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    for _ in range(50):
        if launcher.cancelled:
            break
        time.sleep(0.02)
    assert launcher.cancelled == [job["execution"]]
    _error(client.post(f"/v1/jobs/{job['id']}:cancel"), 409, "invalid_transition")
    assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "cancelled"


# ------------------------------------------------------------------------------- results of a job


@pytest.fixture(scope="module")
def small_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "v.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x90:rate=24:duration=1",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path


def _finished_job(env: Settings, video: Path, owner: str = "local") -> JobRecord:
    status = open_status_store(env.status_url)
    record = status.create(JobRecord(owner=owner, params=JobParams(song="My Song.wav")))
    storage = open_storage(env.storage_url)
    layout = JobLayout(record.id)
    storage.upload_from(video, layout.video)
    storage.write_bytes(layout.notebook("01_analyze", "html"), b"<html><body>tempo 120</body></html>")
    status.update(record.id, {"state": JobState.running.value, "stage": "analyze"})
    return status.update(record.id, {"state": JobState.succeeded.value, "progress": 1.0})


def test_video_is_served_with_range_support(client: TestClient, env: Settings, small_mp4: Path) -> None:
    job = _finished_job(env, small_mp4)
    whole = client.get(f"/v1/jobs/{job.id}/video")
    assert whole.status_code == 200 and whole.content == small_mp4.read_bytes()
    assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"
    assert "My%20Song.mp4" in whole.headers["content-disposition"]
    part = client.get(f"/v1/jobs/{job.id}/video", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == small_mp4.read_bytes()[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{small_mp4.stat().st_size}"


def test_video_of_an_unfinished_job_is_a_409(client: TestClient, env: Settings) -> None:
    job = open_status_store(env.status_url).create(JobRecord())
    assert "queued" in _error(client.get(f"/v1/jobs/{job.id}/video"), 409, "video_not_ready")


def test_notebook_html_is_served_sandboxed(client: TestClient, env: Settings, small_mp4: Path) -> None:
    job = _finished_job(env, small_mp4)
    page = client.get(f"/v1/jobs/{job.id}/notebooks/01_analyze")
    assert page.status_code == 200 and "tempo 120" in page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("sandbox;")
    _error(client.get(f"/v1/jobs/{job.id}/notebooks/04_assemble"), 404, "not_found")
    _error(client.get(f"/v1/jobs/{job.id}/notebooks/..%2F..%2Fjobs.db"), 404, "no_such_endpoint")
    _error(client.get(f"/v1/jobs/{job.id}/notebooks/99_secret"), 404, "not_found")


def test_events_stream_the_record_until_it_finishes(
    client: TestClient, env: Settings, small_mp4: Path
) -> None:
    job = _finished_job(env, small_mp4)
    with client.stream("GET", f"/v1/jobs/{job.id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())
    assert "event: job" in text and '"state":"succeeded"' in text
    assert text.rstrip().endswith("event: end\ndata: {}")


def test_events_follow_a_running_job_in_order(client: TestClient, env: Settings) -> None:
    status = open_status_store(env.status_url)
    job = status.create(JobRecord())

    def advance() -> None:
        for stage, progress in (("analyze", 0.05), ("storyboard", 0.12), ("generate", 0.5)):
            time.sleep(0.3)
            status.update(job.id, {"state": "running", "stage": stage, "progress": progress})
        time.sleep(0.3)
        status.update(job.id, {"state": "succeeded", "progress": 1.0})

    writer = threading.Thread(target=advance)
    writer.start()
    with client.stream("GET", f"/v1/jobs/{job.id}/events") as stream:
        text = "".join(stream.iter_text())
    writer.join()
    events = [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith('data: {"')]
    assert events[0]["state"] == "queued" and events[-1]["state"] == "succeeded"
    assert len(events) >= 3  # it streams as the job moves, not only the final state
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress)


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/v1/healthz").json()["auth"] == "open"
    assert "/v1/jobs" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


# ---------------------------------------------------------------------------------------- bad input


def test_non_audio_upload_is_refused_by_content(
    client: TestClient, launcher: RecordingLauncher, env: Settings, tmp_path: Path
) -> None:
    png = tmp_path / "cover.mp3"  # the name and the announced type lie; the content decides
    Image.new("RGB", (64, 64), "red").save(png, format="PNG")
    upload_id = _upload(client, png, "audio/mpeg")
    message = _error(client.post("/v1/jobs", json={"upload_id": upload_id}), 422, "not_audio")
    assert "PNG" in message or "image" in message
    _nothing_launched(launcher, env)


def test_truncated_song_is_refused(
    client: TestClient, launcher: RecordingLauncher, env: Settings, song: Path, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.wav"
    cut.write_bytes(song.read_bytes()[: song.stat().st_size // 2])
    message = _error(client.post("/v1/jobs", json={"upload_id": _upload(client, cut)}), 422, "undecodable")
    assert "cut short" in message or "incomplete" in message
    _nothing_launched(launcher, env)


def test_silent_song_is_refused(
    client: TestClient, launcher: RecordingLauncher, env: Settings, tmp_path: Path
) -> None:
    silent = _wav(tmp_path / "silence.wav", 6.0, amplitude=0.0)
    message = _error(client.post("/v1/jobs", json={"upload_id": _upload(client, silent)}), 422, "silent")
    assert "silent" in message
    _nothing_launched(launcher, env)


def test_oversized_upload_is_refused_before_and_during_the_put(client: TestClient, song: Path) -> None:
    message = _error(
        client.post(
            "/v1/uploads", json={"filename": "big.wav", "content_type": "audio/wav", "size": 6_000_000}
        ),
        413,
        "upload_too_large",
    )
    assert "5 MB" in message
    # A URL for a small file does not take a bigger one.
    ticket = client.post("/v1/uploads", json={"filename": "s.wav", "content_type": "audio/wav", "size": 1000})
    body = song.read_bytes()
    _error(
        client.put(ticket.json()["url"], content=body, headers=ticket.json()["headers"]),
        413,
        "upload_too_large",
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming too
        yield body[:800]
        yield body[800:1600]

    _error(
        client.put(ticket.json()["url"], content=chunks(), headers=ticket.json()["headers"]),
        413,
        "upload_too_large",
    )
    _error(client.post("/v1/jobs", json={"upload_id": ticket.json()["upload_id"]}), 409, "upload_incomplete")


def test_wrongly_typed_upload_is_refused(client: TestClient, song: Path) -> None:
    for kind in ("image/png", "text/plain", "application/pdf", "not a type"):
        message = _error(
            client.post("/v1/uploads", json={"filename": "x.png", "content_type": kind, "size": 10}),
            415,
            "unsupported_media_type",
        )
        assert "not a song" in message
    ticket = client.post("/v1/uploads", json={"filename": "s.wav", "content_type": "audio/wav", "size": 100})
    _error(
        client.put(ticket.json()["url"], content=b"x" * 100, headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )


def _signed_parts(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}


def test_expired_and_tampered_signatures_are_refused(client: TestClient, env: Settings, song: Path) -> None:
    ticket = client.post("/v1/uploads", json={"filename": "s.wav", "content_type": "audio/wav", "size": 100})
    path, query = _signed_parts(ticket.json()["url"])
    headers = ticket.json()["headers"]
    body = b"x" * 100

    tampered_sig = {
        **query,
        "signature": query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1"),
    }
    _error(
        client.put(f"{path}?{urlencode(tampered_sig)}", content=body, headers=headers), 403, "bad_signature"
    )
    later = {**query, "expires": str(int(query["expires"]) + 3600)}
    _error(client.put(f"{path}?{urlencode(later)}", content=body, headers=headers), 403, "bad_signature")
    other_id = client.post(
        "/v1/uploads", json={"filename": "t.wav", "content_type": "audio/wav", "size": 100}
    )
    other_path, _ = _signed_parts(other_id.json()["url"])
    _error(
        client.put(f"{other_path}?{urlencode(query)}", content=body, headers=headers), 403, "bad_signature"
    )

    # A correctly signed URL whose time is up (signed with the server's key, expiry in the past).
    stored = uploads.load_ticket(open_storage(env.storage_url), ticket.json()["upload_id"])
    past = int(time.time()) - 5
    expired = {"expires": str(past), "signature": uploads.sign(SECRET.encode(), stored, past)}
    message = _error(
        client.put(f"{path}?{urlencode(expired)}", content=body, headers=headers), 403, "upload_expired"
    )
    assert "expired" in message
    assert not open_storage(env.storage_url).exists(uploads.upload_key(stored.upload_id))


def test_unknown_upload_id_is_a_404(client: TestClient, launcher: RecordingLauncher, env: Settings) -> None:
    for upload_id in ("u" + "0" * 24, "../../jobs.db", "u123"):
        _error(client.post("/v1/jobs", json={"upload_id": upload_id}), 404, "upload_not_found")
    _error(
        client.put("/v1/uploads/u" + "0" * 24 + "?expires=1&signature=ab", content=b"x"),
        404,
        "upload_not_found",
    )
    _nothing_launched(launcher, env)


def test_malformed_json_and_bad_fields(
    client: TestClient, launcher: RecordingLauncher, env: Settings
) -> None:
    bad = client.post(
        "/v1/jobs", content=b'{"upload_id": "u1",', headers={"Content-Type": "application/json"}
    )
    _error(bad, 400, "malformed_json")
    message = _error(
        client.post("/v1/jobs", json={"upload_id": "u1", "aspect_ratio": "4:3"}), 422, "invalid_parameter"
    )
    assert "aspect_ratio" in message
    _error(client.post("/v1/jobs", json={"prompt": "no upload"}), 422, "invalid_parameter")
    _error(client.post("/v1/jobs", json={"upload_id": "u1", "max_shots": -1}), 422, "invalid_parameter")
    _error(
        client.post("/v1/uploads", content=b"[", headers={"Content-Type": "application/json"}),
        400,
        "malformed_json",
    )
    _nothing_launched(launcher, env)


def test_huge_prompt_is_refused(
    client: TestClient, launcher: RecordingLauncher, env: Settings, song: Path
) -> None:
    upload_id = _upload(client, song)
    message = _error(
        client.post("/v1/jobs", json={"upload_id": upload_id, "prompt": "la " * 10_000}),
        422,
        "invalid_parameter",
    )
    assert "prompt" in message and "at most 2000 characters" in message
    _error(
        client.post("/v1/jobs", json={"upload_id": upload_id, "style": "x" * 2001}), 422, "invalid_parameter"
    )
    _nothing_launched(launcher, env)


def test_path_traversal_and_malformed_job_ids_are_404(client: TestClient) -> None:
    for job_id in (
        "..%2F..%2Fjobs.db",
        "..",
        "j" + "0" * 19 + "%2F",
        "j..%5C..%5Cx",
        "J" + "A" * 20,
        "x" * 500,
    ):
        for suffix in ("", "/video", "/events", "/notebooks/01_analyze"):
            response = client.get(f"/v1/jobs/{job_id}{suffix}")
            assert response.status_code == 404, (job_id, suffix, response.text)
            assert response.json()["error"]["code"] in {"job_not_found", "not_found", "no_such_endpoint"}
        assert client.post(f"/v1/jobs/{job_id}:cancel").status_code == 404


# --------------------------------------------------------------------------------- auth, isolation


@pytest.fixture
def keyed(
    env: Settings, launcher: RecordingLauncher, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("KAPSULE_API_KEYS", "alice=key-a,bob=key-b")
    get_settings.cache_clear()
    with _client(launcher) as c:
        yield c


ALICE = {"Authorization": "Bearer key-a"}
BOB = {"Authorization": "Bearer key-b"}


def test_api_keys_are_required_when_configured(keyed: TestClient) -> None:
    _error(keyed.get("/v1/jobs"), 401, "unauthorized")
    _error(keyed.get("/v1/jobs", headers={"Authorization": "Bearer nope"}), 401, "unauthorized")
    _error(keyed.get("/v1/jobs", headers={"Authorization": "Basic a2V5LWE="}), 401, "unauthorized")
    assert keyed.get("/v1/jobs").headers["www-authenticate"] == "Bearer"
    assert keyed.get("/v1/jobs", headers=ALICE).status_code == 200
    assert keyed.get("/v1/healthz").json()["auth"] == "api-keys"
    assert keyed.get("/healthz").status_code == 200  # liveness needs no key


def test_another_owners_job_and_upload_are_404(
    keyed: TestClient, launcher: RecordingLauncher, env: Settings, song: Path, small_mp4: Path
) -> None:
    alice_upload = _upload(keyed, song, headers=ALICE)
    _error(keyed.post("/v1/jobs", json={"upload_id": alice_upload}, headers=BOB), 404, "upload_not_found")
    assert launcher.launched == []
    job = keyed.post("/v1/jobs", json={"upload_id": alice_upload}, headers=ALICE).json()
    assert job["owner"] == "alice"
    finished = _finished_job(env, small_mp4, owner="alice")
    for path in (f"/v1/jobs/{job['id']}", f"/v1/jobs/{finished.id}/video", f"/v1/jobs/{finished.id}/events",
                 f"/v1/jobs/{finished.id}/notebooks/01_analyze"):  # fmt: skip
        message = _error(keyed.get(path, headers=BOB), 404, "job_not_found")
        assert "no job" in message
        assert keyed.get(path, headers=ALICE).status_code == 200
    _error(keyed.post(f"/v1/jobs/{job['id']}:cancel", headers=BOB), 404, "job_not_found")
    assert keyed.get(f"/v1/jobs/{job['id']}", headers=ALICE).json()["state"] == "queued"
    assert keyed.get("/v1/jobs", headers=BOB).json()["jobs"] == []


def test_unknown_routes_are_json_errors(client: TestClient) -> None:
    _error(client.get("/v1/nothing-here"), 404, "no_such_endpoint")
    _error(client.delete("/v1/jobs"), 404, "no_such_endpoint")
    _error(client.post("/v1/jobs/j0/../../x"), 404, "no_such_endpoint")


def test_cors_allows_only_the_configured_origins(
    env: Settings, launcher: RecordingLauncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAPSULE_CORS_ORIGINS", "https://studio.example.com")
    get_settings.cache_clear()
    with _client(launcher) as c:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        }
        ok = c.options("/v1/jobs", headers={"Origin": "https://studio.example.com", **preflight})
        assert ok.headers["access-control-allow-origin"] == "https://studio.example.com"
        other = c.get("/v1/jobs", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers


def test_a_quiet_job_is_read_less_and_less_often_by_its_event_stream(
    env: Settings, launcher: RecordingLauncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: one viewer of a job waiting minutes on Veo must not read the store twice a second."""
    from kapsule.api.deps import get_status

    monkeypatch.setenv("KAPSULE_EVENT_STREAM_MAX_S", "8")
    get_settings.cache_clear()
    store = open_status_store(env.status_url)
    job = store.create(JobRecord())
    store.update(job.id, {"state": "running", "stage": "generate", "progress": 0.3})
    reads: list[float] = []

    class CountingStore:  # the real store; only counts the reads the stream makes
        url = store.url

        def get(self, job_id: str) -> JobRecord:
            reads.append(time.monotonic())
            return store.get(job_id)

        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

    app = create_app(get_settings())
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


def test_keyed_or_cloud_servers_refuse_to_start_without_an_upload_secret(
    kapsule_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13/14: without one shared secret each replica signs with its own key, so a retried
    Idempotency-Key on another instance made a second job (and a second Veo bill)."""
    from kapsule.core.errors import ConfigError

    monkeypatch.delenv("KAPSULE_UPLOAD_SECRET", raising=False)
    monkeypatch.setenv("KAPSULE_API_KEYS", "ana=key-of-ana")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="KAPSULE_UPLOAD_SECRET"):
        create_app(get_settings())
    monkeypatch.delenv("KAPSULE_API_KEYS")
    monkeypatch.setenv("KAPSULE_LAUNCHER", "cloudrun://projects/p/locations/l/jobs/j")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="KAPSULE_UPLOAD_SECRET"):
        create_app(get_settings())
    monkeypatch.setenv("KAPSULE_UPLOAD_SECRET", "x" * 32)
    get_settings.cache_clear()
    create_app(get_settings())  # configured: it starts
