"""Issue 14's probes, replayed against the real app: each one got a wrong answer before its fix.

Most go through ``TestClient`` (the whole ASGI app, real SQLite and file storage); the ones whose
point is the server itself (a body refused before it arrives, the access log) talk to a real
``kapsule serve`` subprocess over a raw socket or httpx. The browser half (a notebook opened from the
studio cannot read the session) is in ``test_security_browser.py``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from kapsule.api.deps import get_launcher
from kapsule.api.main import create_app
from kapsule.control import uploads
from kapsule.control.pipeline import notebook_html
from kapsule.core.access import check_bind, is_loopback_host, parse_api_keys
from kapsule.core.errors import ConfigError, OpenServerRefused
from kapsule.core.settings import Settings, get_settings
from kapsule.infra.launch.local import LocalLauncher, job_log_path
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.layout import JobLayout
from kapsule.job.params import JobParams
from kapsule.job.record import JobRecord, JobState
from tests.integration.api.test_api_gcs import gcs_client  # noqa: F401 (a fixture)
from tests.integration.infra.test_gcs_signing import sa_key  # noqa: F401 (a fixture)
from tests.support.paths import REPO
from tests.unit.api.test_api import LOOPBACK, SECRET, RecordingLauncher, _error, _upload, _wav

ORIGIN = {"Origin": LOOPBACK}


@pytest.fixture
def env(kapsule_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("KAPSULE_UPLOAD_SECRET", SECRET)
    monkeypatch.setenv("KAPSULE_MAX_UPLOAD_BYTES", str(5_000_000))
    monkeypatch.delenv("KAPSULE_API_KEYS", raising=False)
    get_settings.cache_clear()
    return get_settings()


def _app_client(base_url: str = LOOPBACK) -> TestClient:
    app = create_app(get_settings())
    app.dependency_overrides[get_launcher] = RecordingLauncher
    return TestClient(app, base_url=base_url)


@pytest.fixture
def client(env: Settings) -> Iterator[TestClient]:
    with _app_client() as c:
        yield c


@pytest.fixture
def keyed(env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("KAPSULE_API_KEYS", "alice=key-a,bob=key-b")
    get_settings.cache_clear()
    with _app_client() as c:
        yield c


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _wav(tmp_path_factory.mktemp("songs") / "song.wav", 6.0)


def _record(env: Settings, owner: str = "local", state: JobState = JobState.running) -> JobRecord:
    status = open_status_store(env.status_url)
    record = status.create(JobRecord(owner=owner, params=JobParams(song="s.wav")))
    if state != JobState.queued:
        record = status.update(record.id, {"state": state.value})
    return record


# ------------------------------------------------------------------------------------ open mode


def test_one_decision_for_open_mode_and_a_set_but_empty_key_list_is_an_error(env: Settings) -> None:
    assert parse_api_keys(None) == {} and parse_api_keys(" ") == {}
    assert parse_api_keys("a=1, b=2") == {"a": "1", "b": "2"}
    for bad in (",", " , ,", "a", "a=1,a=2", "a=1,b=1"):
        with pytest.raises(ConfigError):
            parse_api_keys(bad)
    with pytest.raises(ConfigError):
        create_app(env.model_copy(update={"api_keys": ","}))
    with pytest.raises(OpenServerRefused):
        check_bind(env, "0.0.0.0")
    with pytest.raises(ConfigError):  # ',' used to pass "keys are set" and then serve open
        check_bind(env.model_copy(update={"api_keys": ","}), "0.0.0.0")
    assert check_bind(env, "127.0.0.1") and not check_bind(
        env.model_copy(update={"api_keys": "a=k"}), "0.0.0.0"
    )
    assert [is_loopback_host(h) for h in ("localhost", "[::1]", "127.0.0.2", "evil.example", "0.0.0.0")] == [
        True,
        True,
        True,
        False,
        False,
    ]


def test_the_container_entrypoint_refuses_open_mode_off_loopback(env: Settings) -> None:
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
    client: TestClient, env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for host in ("evil.example", "evil.example:8080", "127.0.0.1.nip.io"):
        _error(client.get("/v1/jobs", headers={"Host": host}), 421, "host_not_allowed")
    for host in ("localhost:8080", "127.0.0.1", "[::1]:9"):
        assert client.get("/v1/jobs", headers={"Host": host}).status_code == 200
    ticket = client.post(
        "/v1/uploads",
        json={"filename": "s.wav", "content_type": "audio/wav", "size": 10},
        headers={"Host": "localhost:8080"},
    )
    assert ticket.json()["url"].startswith("http://localhost:8080/v1/uploads/")
    monkeypatch.setenv("KAPSULE_PUBLIC_URL", "https://kapsule.example.com/")
    get_settings.cache_clear()
    with _app_client() as c:
        body = {"filename": "s.wav", "content_type": "audio/wav", "size": 10}
        assert c.post("/v1/uploads", json=body).json()["url"].startswith("https://kapsule.example.com/v1/")


# ------------------------------------------------------------------------------------- sessions


def test_the_key_is_exchanged_for_an_httponly_strict_session_cookie(keyed: TestClient) -> None:
    _error(keyed.post("/v1/session", json={"key": "nope"}, headers=ORIGIN), 401, "unauthorized")
    _error(keyed.post("/v1/session", json={"key": "key-a"}), 403, "csrf_refused")  # no Origin
    response = keyed.post("/v1/session", json={"key": "key-a"}, headers=ORIGIN)
    assert response.status_code == 200 and response.json()["owner"] == "alice"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    assert "key-a" not in cookie
    assert keyed.get("/v1/jobs").status_code == 200 and keyed.get("/v1/session").json()["owner"] == "alice"
    with _app_client("https://127.0.0.1") as secure:
        exchanged = secure.post("/v1/session", json={"key": "key-a"}, headers={"Origin": "https://127.0.0.1"})
        assert "Secure" in exchanged.headers["set-cookie"]


def test_cookie_requests_that_change_things_must_come_from_our_origin(keyed: TestClient) -> None:
    keyed.post("/v1/session", json={"key": "key-a"}, headers=ORIGIN)
    body = {"filename": "s.wav", "content_type": "audio/wav", "size": 10}
    _error(keyed.post("/v1/uploads", json=body), 403, "csrf_refused")
    _error(
        keyed.post("/v1/uploads", json=body, headers={"Origin": "https://evil.example"}), 403, "csrf_refused"
    )
    assert keyed.post("/v1/uploads", json=body, headers=ORIGIN).status_code == 201
    # A Bearer key needs no Origin (API clients), and is checked before the cookie.
    assert keyed.post("/v1/uploads", json=body, headers={"Authorization": "Bearer key-b"}).status_code == 201


def test_sessions_end_on_logout_key_rotation_and_forgery(
    keyed: TestClient, env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyed.post("/v1/session", json={"key": "key-a"}, headers=ORIGIN)
    token = keyed.cookies["kapsule_session"]
    forged = token.replace(token.split(".")[1], "Ym9i")  # "bob", same signature
    keyed.cookies.clear()
    keyed.cookies.set("kapsule_session", forged)
    _error(keyed.get("/v1/jobs"), 401, "session_invalid")
    keyed.cookies.clear()
    keyed.cookies.set("kapsule_session", token)
    assert keyed.delete("/v1/session").status_code == 204
    keyed.cookies.clear()
    keyed.cookies.set("kapsule_session", token)  # a copy kept by someone is ended on the server too
    _error(keyed.get("/v1/jobs"), 401, "session_invalid")

    keyed.cookies.clear()
    keyed.post("/v1/session", json={"key": "key-a"}, headers=ORIGIN)
    assert keyed.get("/v1/jobs").status_code == 200
    monkeypatch.setenv("KAPSULE_API_KEYS", "alice=key-a2,bob=key-b")  # alice's key rotated
    get_settings.cache_clear()
    _error(keyed.get("/v1/jobs"), 401, "session_invalid")


def test_the_studio_page_keeps_no_key_and_is_framed_by_nobody(client: TestClient) -> None:
    js = client.get("/app.js").text
    assert "localStorage.setItem" not in js and "Authorization" not in js and "createObjectURL" not in js
    page = client.get("/")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    for path in ("/", "/app.js", "/healthz", "/v1/healthz", "/v1/nothing", "/v1/jobs"):
        assert client.get(path).headers["x-content-type-options"] == "nosniff", path


# -------------------------------------------------------------------------------------- notebooks


def _job_with_notebook(env: Settings, html: bytes, owner: str = "local") -> JobRecord:
    record = _record(env, owner, JobState.running)
    open_storage(env.storage_url).write_bytes(JobLayout(record.id).notebook("01_analyze", "html"), html)
    return record


def test_notebooks_open_through_short_lived_signed_links_in_a_sandbox(
    keyed: TestClient, env: Settings
) -> None:
    job = _job_with_notebook(env, b"<html><body>tempo 120<script>alert(1)</script></body></html>", "alice")
    alice = {"Authorization": "Bearer key-a"}
    _error(
        keyed.get(f"/v1/jobs/{job.id}/notebooks/01_analyze/link", headers={"Authorization": "Bearer key-b"}),
        404,
        "job_not_found",
    )
    link = keyed.get(f"/v1/jobs/{job.id}/notebooks/01_analyze/link", headers=alice).json()
    parts = urlsplit(link["url"])
    page = keyed.get(f"{parts.path}?{parts.query}")  # no key, no cookie: the signature is the permission
    assert page.status_code == 200 and "tempo 120" in page.text
    csp = page.headers["content-security-policy"]
    assert csp.startswith("sandbox;") and "default-src 'none'" in csp and "script-src" not in csp
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    other = keyed.get(parts.path.replace("01_analyze", "02_storyboard"), params=query)
    _error(other, 403, "bad_link_signature")
    _error(keyed.get(parts.path, params={**query, "signature": "%C3%A9"}), 403, "bad_link_signature")
    past = int(time.time()) - 5
    from kapsule.core import links

    signed = {
        "expires": past,
        "signature": links.sign(SECRET.encode(), "notebook", (job.id, "01_analyze"), past),
    }
    _error(keyed.get(parts.path, params=signed), 403, "link_expired")


def test_rendered_notebooks_load_nothing_from_a_cdn_but_keep_plots_and_tables() -> None:
    import nbformat

    v4: Any = nbformat.v4  # an untyped library
    nb = v4.new_notebook()
    plot = v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="})
    table = v4.new_output("display_data", data={"text/html": "<table><tr><td>tempo</td></tr></table>"})
    code = v4.new_code_cell("x", outputs=[plot, table])
    nb.cells = [v4.new_markdown_cell("# Analysis $x^2$"), code]
    html = notebook_html(nb)
    assert "<script" not in html and "cdnjs" not in html and "require.js" not in html
    assert "data:image/png;base64,iVBORw0KGgo=" in html and "<td>tempo</td>" in html


# ----------------------------------------------------------------------------- the 500s, now 4xx


def test_lone_surrogate_is_a_422_and_stores_nothing(client: TestClient, env: Settings, song: Path) -> None:
    upload_id = _upload(client, song)
    for field in ("prompt", "style"):
        raw = f'{{"upload_id": "{upload_id}", "{field}": "\\ud800"}}'
        response = client.post("/v1/jobs", content=raw, headers={"Content-Type": "application/json"})
        assert "surrogate" in _error(response, 422, "invalid_parameter")
    storage = open_storage(env.storage_url)
    assert storage.list("jobs/") == [] and open_status_store(env.status_url).list("local")[0] == []
    assert [k for k in storage.list("") if not k.startswith("uploads/")] == []


def test_non_ascii_signature_and_nested_cursor_are_client_errors(client: TestClient) -> None:
    ticket = client.post("/v1/uploads", json={"filename": "s.wav", "content_type": "audio/wav", "size": 10})
    path = urlsplit(ticket.json()["url"]).path
    put = client.put(
        f"{path}?expires=9999999999&signature=%C3%A9",
        content=b"x" * 10,
        headers={"Content-Type": "audio/wav"},
    )
    _error(put, 403, "bad_signature")
    for cursor in ("[[1],2]", '[1, "j1"]', '{"a": 1}', "[]"):
        _error(client.get("/v1/jobs", params={"cursor": cursor}), 422, "bad_cursor")


def test_the_upload_limit_reads_300_mib(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPSULE_MAX_UPLOAD_BYTES", str(300 * 1024 * 1024))
    get_settings.cache_clear()
    with _app_client() as c:
        assert c.get("/v1/healthz").json()["max_upload_bytes"] == 300 * 1024 * 1024
        body = {"filename": "big.wav", "content_type": "audio/wav", "size": 400 * 1024 * 1024}
        message = _error(c.post("/v1/uploads", json=body), 413, "upload_too_large")
    assert "up to 300 MiB" in message and "315" not in message


# ------------------------------------------------------------------------------ uploads, streams


def test_an_upload_url_works_once(client: TestClient, env: Settings, song: Path) -> None:
    data = song.read_bytes()
    ticket = client.post(
        "/v1/uploads", json={"filename": "s.wav", "content_type": "audio/wav", "size": len(data)}
    )
    url, headers = ticket.json()["url"], ticket.json()["headers"]
    assert client.put(url, content=data, headers=headers).status_code == 200
    _error(client.put(url, content=data[:100], headers=headers), 409, "upload_used")
    stored = open_storage(env.storage_url).read_bytes(uploads.upload_key(ticket.json()["upload_id"]))
    assert stored == data


def test_unused_uploads_are_swept_after_their_ttl(env: Settings, song: Path) -> None:
    storage = open_storage(env.storage_url)
    now = time.time()
    kwargs = {
        "owner": "local",
        "filename": "s.wav",
        "content_type": "audio/wav",
        "size": 10,
        "max_bytes": 100,
    }
    old = uploads.create_ticket(storage, **kwargs, expiry_s=900, now=now - 3 * 3600)  # type: ignore[arg-type]
    fresh = uploads.create_ticket(storage, **kwargs, expiry_s=900, now=now)  # type: ignore[arg-type]
    storage.write_bytes(uploads.upload_key(old.upload_id), b"refused song")
    assert uploads.sweep_uploads(storage, ttl_s=3600, now=now) == [old.upload_id]
    assert storage.list(f"uploads/{old.upload_id}/") == []
    assert storage.exists(uploads.ticket_key(fresh.upload_id))


def _sse(client: TestClient, job_id: str, headers: dict[str, str] | None = None) -> str:
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as stream:
        return "".join(stream.iter_text())


def test_event_streams_end_at_a_pause_and_after_their_lifetime(
    env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAPSULE_EVENT_STREAM_MAX_S", "1")
    get_settings.cache_clear()
    with _app_client() as client:
        paused = _record(env, state=JobState.running)
        open_status_store(env.status_url).update(paused.id, {"state": JobState.awaiting_approval.value})
        text = _sse(client, paused.id)  # used to stream keep-alives forever
        assert '"state":"awaiting_approval"' in text and text.rstrip().endswith("event: end\ndata: {}")
        running = _record(env)
        first = _sse(client, running.id)
        assert "event: job" in first and first.rstrip().endswith("event: reconnect\ndata: {}")
        last_id = [line[4:] for line in first.splitlines() if line.startswith("id: ")][-1]
        again = _sse(client, running.id, {"Last-Event-ID": last_id})
        assert "event: job" not in again and "event: reconnect" in again


# ---------------------------------------------------------------------- a real server: body, logs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``kapsule serve`` on a free loopback port (open mode); yields its URL and its log file."""
    home = tmp_path / "kapsule"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPSULE_")}
    env.update(
        KAPSULE_STORAGE_URL=f"file://{home / 'data'}",
        KAPSULE_STATUS_URL=f"sqlite:///{home / 'jobs.db'}",
        KAPSULE_WORK_DIR=str(home / "work"),
        KAPSULE_MAX_EVENT_STREAMS_PER_OWNER="1",
        PYTHONPATH=str(REPO),
    )
    port = _free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kapsule.cli.main",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert proc.poll() is None, log_path.read_text()[-2000:]
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base, log_path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _raw(base: str, head: str, body: bytes) -> bytes:
    """Send ``head`` and ``body`` (less than the head announces) and return what the server answers."""
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)  # a server waiting for the rest of the body times out here
            if not chunk:
                break
            answer += chunk
        return answer


def test_a_50_mb_json_body_is_refused_before_it_is_read(server: tuple[str, Path]) -> None:
    base, _ = server
    head = (
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {50 * 1024 * 1024}\r\n"
    )
    assert _raw(base, head, b'{"upload_id": "' + b"x" * 1000).startswith(b"HTTP/1.1 413")
    chunk = b"x" * 65536
    chunked = "POST /v1/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20))  # 1.25 MiB, no end chunk
    assert _raw(base, chunked + "Transfer-Encoding: chunked\r\n", body).startswith(b"HTTP/1.1 413")


def test_access_logs_carry_no_signatures(server: tuple[str, Path], song: Path) -> None:
    base, log_path = server
    data = song.read_bytes()
    ticket = httpx.post(
        f"{base}/v1/uploads", json={"filename": "s.wav", "content_type": "audio/wav", "size": len(data)}
    ).json()
    assert httpx.put(ticket["url"], content=data, headers=ticket["headers"]).status_code == 200
    signature = parse_qs(urlsplit(ticket["url"]).query)["signature"][0]
    time.sleep(0.5)  # the access line is written after the response
    log = log_path.read_text()
    assert f"PUT /v1/uploads/{ticket['upload_id']}?" in log
    assert signature not in log and "signature=[redacted]" in log
    assert json.dumps(signature) not in log


def test_each_owner_has_a_cap_on_open_streams(server: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = server
    job = open_status_store(f"sqlite:///{tmp_path / 'kapsule' / 'jobs.db'}").create(JobRecord())
    with httpx.stream("GET", f"{base}/v1/jobs/{job.id}/events", timeout=10) as held:
        lines = held.iter_lines()  # kept: a dropped line iterator closes the response
        assert next(lines).startswith("retry:")  # the stream runs and holds the owner's one slot (cap 1)
        second = httpx.get(f"{base}/v1/jobs/{job.id}/events", timeout=10)
        _error(second, 429, "too_many_streams")
    for _ in range(100):  # the client went away: the server ends its stream and frees the slot
        with httpx.stream("GET", f"{base}/v1/jobs/{job.id}/events", timeout=10) as again:
            if again.status_code == 200:
                break
        time.sleep(0.05)
    assert again.status_code == 200


# ------------------------------------------------------------------------- processes and secrets


class _ScriptLauncher(LocalLauncher):
    """The real local launcher, handed a one-line Python script instead of the job entrypoint."""

    def __init__(self, settings: Settings, code: str) -> None:
        super().__init__(settings, [sys.executable, "-c", code])


def _wait_gone(pid: int) -> None:
    stat = Path(f"/proc/{pid}/stat")
    for _ in range(600):
        if not stat.exists():
            return
        time.sleep(0.05)
    pytest.fail(f"process {pid} is still in the process table: {stat.read_text()[:80]}")  # e.g. a zombie


def test_the_local_launcher_reaps_its_children(env: Settings) -> None:
    launcher = _ScriptLauncher(env, "pass")
    executions = [launcher.launch(f"reap-{i}") for i in range(5)]
    for execution in executions:
        _wait_gone(int(execution.removeprefix("local-")))
    assert launcher.running == 0
    for execution in executions:
        assert launcher.poll(execution) == 0
        done = launcher.status(execution)
        assert done is not None and done.done and done.succeeded


def _child_environment(settings: Settings, job_id: str, genai: bool = False) -> dict[str, str]:
    launcher = _ScriptLauncher(settings, "import json, os; print(json.dumps(dict(os.environ)))")
    _wait_gone(int(launcher.launch(job_id, genai=genai).removeprefix("local-")))
    child: dict[str, str] = json.loads(job_log_path(settings, job_id).read_text().splitlines()[-1])
    return child


SERVER_SECRETS = ("KAPSULE_API_KEYS", "KAPSULE_UPLOAD_SECRET")
GENAI_KEYS = ("KAPSULE_GEMINI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")


def test_jobs_and_kernels_get_only_the_secrets_they_use(
    env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAPSULE_API_KEYS", "alice=key-a")
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-secret")
    monkeypatch.setenv("GOOGLE_API_KEY", "google-secret")
    get_settings.cache_clear()
    local = get_settings()
    child = _child_environment(local, "env-local")
    assert child["KAPSULE_STORAGE_URL"] == local.storage_url
    assert not set(child) & {*SERVER_SECRETS, *GENAI_KEYS}
    assert not {"key-a", SECRET, "gemini-secret", "google-secret"} & set(child.values())

    veo = local.model_copy(update={"video_model": "veo-3.0-fast-generate-001"})
    child = _child_environment(veo, "env-veo")
    assert "gemini-secret" in child.values() and not set(child) & set(SERVER_SECRETS)

    # A Veo job on a deployment whose default models are local: its process and kernels need the key.
    child = _child_environment(local, "env-veo-job", genai=True)
    assert "gemini-secret" in child.values() and not set(child) & set(SERVER_SECRETS)

    from kapsule.control.pipeline import _kernel_environment

    with _kernel_environment(local):  # what a notebook kernel inherits
        assert not set(os.environ) & {*SERVER_SECRETS, *GENAI_KEYS}
    with _kernel_environment(local, genai=True):  # a kernel of a job whose own model is Veo
        assert os.environ["GEMINI_API_KEY"] == "gemini-secret"
        assert not set(os.environ) & set(SERVER_SECRETS)
    assert os.environ["KAPSULE_API_KEYS"] == "alice=key-a"  # ours again afterwards


def test_the_service_tells_the_launcher_which_jobs_use_a_google_model(
    env: Settings, song: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's own model decides, not the deployment's default: a Veo job gets the key, a local one not."""
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-secret")
    get_settings.cache_clear()
    launcher = RecordingLauncher()
    app = create_app(get_settings())
    app.dependency_overrides[get_launcher] = lambda: launcher
    with TestClient(app, base_url=LOOPBACK) as client:
        for model in ("veo-3.0-fast-generate-001", "local"):
            body = {"upload_id": _upload(client, song), "video_model": model}
            response = client.post("/v1/jobs", json=body)
            assert response.status_code == 202, response.text
    assert launcher.genai == [True, False]


def test_a_gcs_upload_url_is_signed_for_one_put(
    gcs_client: tuple[TestClient, RecordingLauncher, Settings],  # noqa: F811
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
