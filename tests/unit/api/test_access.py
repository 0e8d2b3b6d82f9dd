"""Who may call the API: open mode answers loopback only, API keys (exchanged for a strict HttpOnly
session cookie, which ends on logout, rotation and forgery), owners isolated, and a keyed or cloud
server refuses to start without one shared upload secret. The browser side (a notebook opened from the
studio cannot read the session) is tests/e2e/test_security_browser.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kapsule.api import deps
from kapsule.api.main import create_app
from kapsule.core.access import check_bind, is_loopback_host, parse_api_keys
from kapsule.core.errors import ConfigError, OpenServerRefused
from kapsule.core.settings import Settings
from tests.support.api import (
    LOOPBACK,
    RecordingLauncher,
    api_client,
    expect_error,
    finished_job,
    upload_file,
)
from tests.support.paths import REPO
from tests.support.settings import replace

ORIGIN = {"Origin": LOOPBACK}


ALICE = {"Authorization": "Bearer key-a"}


BOB = {"Authorization": "Bearer key-b"}


def test_api_keys_are_required_when_configured(keyed: TestClient) -> None:
    expect_error(keyed.get("/v1/jobs"), 401, "unauthorized")
    expect_error(keyed.get("/v1/jobs", headers={"Authorization": "Bearer nope"}), 401, "unauthorized")
    expect_error(keyed.get("/v1/jobs", headers={"Authorization": "Basic a2V5LWE="}), 401, "unauthorized")
    assert keyed.get("/v1/jobs").headers["www-authenticate"] == "Bearer"
    assert keyed.get("/v1/jobs", headers=ALICE).status_code == 200
    assert keyed.get("/v1/healthz").json()["auth"] == "api-keys"
    assert keyed.get("/healthz").status_code == 200  # liveness needs no key


def test_another_owners_job_and_upload_are_404(
    keyed: TestClient, launcher: RecordingLauncher, api_settings: Settings, song: Path, small_mp4: Path
) -> None:
    alice_upload = upload_file(keyed, song, headers=ALICE)
    expect_error(
        keyed.post("/v1/jobs", json={"upload_id": alice_upload}, headers=BOB), 404, "upload_not_found"
    )
    assert launcher.launched == []
    job = keyed.post("/v1/jobs", json={"upload_id": alice_upload}, headers=ALICE).json()
    assert job["owner"] == "alice"
    finished = finished_job(api_settings, small_mp4, owner="alice")
    for path in (f"/v1/jobs/{job['id']}", f"/v1/jobs/{finished.id}/video", f"/v1/jobs/{finished.id}/events",
                 f"/v1/jobs/{finished.id}/notebooks/01_analyze"):  # fmt: skip
        message = expect_error(keyed.get(path, headers=BOB), 404, "job_not_found")
        assert "no job" in message
        assert keyed.get(path, headers=ALICE).status_code == 200
    expect_error(keyed.post(f"/v1/jobs/{job['id']}:cancel", headers=BOB), 404, "job_not_found")
    assert keyed.get(f"/v1/jobs/{job['id']}", headers=ALICE).json()["state"] == "queued"
    assert keyed.get("/v1/jobs", headers=BOB).json()["jobs"] == []


def test_keyed_or_cloud_servers_refuse_to_start_without_an_upload_secret(settings: Settings) -> None:
    """Issue 13/14: without one shared secret each replica signs with its own key, so a retried
    Idempotency-Key on another instance made a second job (and a second Veo bill)."""
    from kapsule.core.errors import ConfigError

    keyed = replace(settings, upload_secret=None, api_keys="ana=key-of-ana")
    with pytest.raises(ConfigError, match="KAPSULE_UPLOAD_SECRET"):
        create_app(keyed)
    cloud = replace(settings, upload_secret=None, launcher="cloudrun://projects/p/locations/l/jobs/j")
    with pytest.raises(ConfigError, match="KAPSULE_UPLOAD_SECRET"):
        create_app(cloud)
    create_app(replace(cloud, upload_secret="x" * 32))  # configured: it starts


# ------------------------------------------------------------------------------------ open mode


def test_one_decision_for_open_mode_and_a_set_but_empty_key_list_is_an_error(api_settings: Settings) -> None:
    assert parse_api_keys(None) == {} and parse_api_keys(" ") == {}
    assert parse_api_keys("a=1, b=2") == {"a": "1", "b": "2"}
    for bad in (",", " , ,", "a", "a=1,a=2", "a=1,b=1"):
        with pytest.raises(ConfigError):
            parse_api_keys(bad)
    with pytest.raises(ConfigError):
        create_app(api_settings.model_copy(update={"api_keys": ","}))
    with pytest.raises(OpenServerRefused):
        check_bind(api_settings, "0.0.0.0")
    with pytest.raises(ConfigError):  # ',' used to pass "keys are set" and then serve open
        check_bind(api_settings.model_copy(update={"api_keys": ","}), "0.0.0.0")
    assert check_bind(api_settings, "127.0.0.1") and not check_bind(
        api_settings.model_copy(update={"api_keys": "a=k-0123456789abcdef"}), "0.0.0.0"
    )
    assert [is_loopback_host(h) for h in ("localhost", "[::1]", "127.0.0.2", "evil.example", "0.0.0.0")] == [
        True,
        True,
        True,
        False,
        False,
    ]


def test_reserved_owners_and_short_keys_stop_the_server_at_start_up(api_settings: Settings) -> None:
    """Issue 22, probes 7 and 13: an owner named ``local`` saw the CLI's jobs and skipped the cap and
    the allow-list; a key of any length was accepted."""
    long_key = "0123456789abcdef0123"
    for owner in ("local", "LOCAL", "*", "admin"):
        keys = f"alice={long_key},{owner}={long_key[::-1]}"
        with pytest.raises(ConfigError, match="reserved"):
            parse_api_keys(keys)
        with pytest.raises(ConfigError, match="reserved"):
            create_app(api_settings.model_copy(update={"api_keys": keys}))
        with pytest.raises(ConfigError, match="reserved"):
            check_bind(api_settings.model_copy(update={"api_keys": keys}), "0.0.0.0")
    short = api_settings.model_copy(update={"api_keys": f"alice={long_key},bob=short-key"})
    with pytest.raises(ConfigError, match="'bob' a key shorter than 16"):
        check_bind(short, "127.0.0.1")
    assert not check_bind(api_settings.model_copy(update={"api_keys": f"alice={long_key}"}), "0.0.0.0")


def test_wrong_keys_are_throttled_per_client(keyed: TestClient) -> None:
    """300 wrong keys in a row were all answered 401: a key could be guessed at request speed."""
    answers = [
        keyed.get("/v1/jobs", headers={"Authorization": f"Bearer guess-{n}"}).status_code for n in range(30)
    ]
    assert answers[:10] == [401] * 10 and set(answers[10:]) == {429}
    paused = keyed.get("/v1/jobs", headers={"Authorization": "Bearer key-a"})  # even the right key, for now
    assert "try again in" in expect_error(paused, 429, "too_many_key_attempts")
    expect_error(
        keyed.post("/v1/session", json={"key": "key-a"}, headers=ORIGIN), 429, "too_many_key_attempts"
    )


def test_the_container_entrypoint_refuses_open_mode_off_loopback(api_settings: Settings) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KAPSULE_")}
    for keys in (None, ","):
        run_env = {**environment, "KAPSULE_API_KEYS": keys} if keys else environment
        done = subprocess.run(
            [sys.executable, "-m", "kapsule.api.serve", "--host", "0.0.0.0", "--port", "1"],
            cwd=REPO,
            env={**run_env, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert "bad_config" in done.stderr or "open_server" in done.stderr
    assert "kapsule.api.serve" in (REPO / "Dockerfile").read_text().split("CMD", 1)[1]


def test_open_mode_answers_only_loopback_hosts_and_links_use_a_trusted_base(
    client: TestClient, api_settings: Settings
) -> None:
    for host in ("evil.example", "evil.example:8080", "127.0.0.1.nip.io"):
        expect_error(client.get("/v1/jobs", headers={"Host": host}), 421, "host_not_allowed")
    for host in ("localhost:8080", "127.0.0.1", "[::1]:9"):
        assert client.get("/v1/jobs", headers={"Host": host}).status_code == 200
    ticket = client.post(
        "/v1/uploads",
        json={"filename": "s.wav", "content_type": "audio/wav", "size": 10},
        headers={"Host": "localhost:8080"},
    )
    assert ticket.json()["url"].startswith("http://localhost:8080/v1/uploads/")
    with api_client(
        RecordingLauncher(), replace(api_settings, public_url="https://kapsule.example.com/")
    ) as c:
        body = {"filename": "s.wav", "content_type": "audio/wav", "size": 10}
        assert c.post("/v1/uploads", json=body).json()["url"].startswith("https://kapsule.example.com/v1/")


# ------------------------------------------------------------------------------------- sessions


def test_the_key_is_exchanged_for_an_httponly_strict_session_cookie(keyed: TestClient) -> None:
    made_with: Settings = keyed.app.state.settings  # type: ignore[attr-defined]
    expect_error(keyed.post("/v1/session", json={"key": "nope"}, headers=ORIGIN), 401, "unauthorized")
    expect_error(keyed.post("/v1/session", json={"key": "key-a"}), 403, "csrf_refused")  # no Origin
    response = keyed.post("/v1/session", json={"key": "key-a"}, headers=ORIGIN)
    assert response.status_code == 200 and response.json()["owner"] == "alice"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    assert "key-a" not in cookie
    assert keyed.get("/v1/jobs").status_code == 200 and keyed.get("/v1/session").json()["owner"] == "alice"
    with api_client(RecordingLauncher(), made_with, base_url="https://127.0.0.1") as secure:
        exchanged = secure.post("/v1/session", json={"key": "key-a"}, headers={"Origin": "https://127.0.0.1"})
        assert "Secure" in exchanged.headers["set-cookie"]


def test_cookie_requests_that_change_things_must_come_from_our_origin(keyed: TestClient) -> None:
    keyed.post("/v1/session", json={"key": "key-a"}, headers=ORIGIN)
    body = {"filename": "s.wav", "content_type": "audio/wav", "size": 10}
    expect_error(keyed.post("/v1/uploads", json=body), 403, "csrf_refused")
    expect_error(
        keyed.post("/v1/uploads", json=body, headers={"Origin": "https://evil.example"}), 403, "csrf_refused"
    )
    assert keyed.post("/v1/uploads", json=body, headers=ORIGIN).status_code == 201
    # A Bearer key needs no Origin (API clients), and is checked before the cookie.
    assert keyed.post("/v1/uploads", json=body, headers={"Authorization": "Bearer key-b"}).status_code == 201


def test_sessions_end_on_logout_key_rotation_and_forgery(keyed: TestClient, api_settings: Settings) -> None:
    keyed.post("/v1/session", json={"key": "key-a"}, headers=ORIGIN)
    token = keyed.cookies["kapsule_session"]
    forged = token.replace(token.split(".")[1], "Ym9i")  # "bob", same signature
    keyed.cookies.clear()
    keyed.cookies.set("kapsule_session", forged)
    expect_error(keyed.get("/v1/jobs"), 401, "session_invalid")
    keyed.cookies.clear()
    keyed.cookies.set("kapsule_session", token)
    assert keyed.delete("/v1/session").status_code == 204
    keyed.cookies.clear()
    keyed.cookies.set("kapsule_session", token)  # a copy kept by someone is ended on the server too
    expect_error(keyed.get("/v1/jobs"), 401, "session_invalid")

    keyed.cookies.clear()
    keyed.post("/v1/session", json={"key": "key-a"}, headers=ORIGIN)
    assert keyed.get("/v1/jobs").status_code == 200
    rotated = replace(api_settings, api_keys="alice=key-a2,bob=key-b")  # alice's key rotated
    keyed.app.dependency_overrides[deps.settings] = lambda: rotated  # type: ignore[attr-defined]
    expect_error(keyed.get("/v1/jobs"), 401, "session_invalid")


def test_the_studio_page_keeps_no_key_and_is_framed_by_nobody(client: TestClient) -> None:
    js = client.get("/app.js").text
    assert "localStorage.setItem" not in js and "Authorization" not in js and "createObjectURL" not in js
    page = client.get("/")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    for path in ("/", "/app.js", "/healthz", "/v1/healthz", "/v1/nothing", "/v1/jobs"):
        assert client.get(path).headers["x-content-type-options"] == "nosniff", path


def test_docs_pages_are_off_by_default_in_keyed_mode(keyed: TestClient, api_settings: Settings) -> None:
    """Issue 22, probe 8: /docs loaded swagger-ui from a CDN (floating @5, no integrity) in the API's
    origin. Keyed and cloud servers do not serve the pages unless asked; the schema stays."""
    for path in ("/docs", "/redoc"):
        assert keyed.get(path).status_code == 404, path
    assert "/v1/jobs" in keyed.get("/openapi.json").json()["paths"]
    asked = replace(api_settings, api_keys="alice=key-a", api_docs=True)
    with TestClient(create_app(asked), base_url="http://127.0.0.1") as client:
        assert client.get("/docs").status_code == 200
