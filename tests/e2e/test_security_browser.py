"""A notebook opened from the studio cannot read the page's key or session (real Chromium, real server).

A keyed ``kapsule serve`` holds a finished job whose analysis notebook is hostile: an inline script
that tries to read the cookie, localStorage and the parent page and send them home, and an image from
a CDN. A reviewer signs in on the studio page with the key, opens the job and its notebook. The test
then checks what the hostile notebook could reach:
- the page stored no key (localStorage empty) and its session cookie is invisible to scripts;
- the notebook sits in an ``<iframe sandbox="">`` served from a signed link, with an opaque origin;
- its script never ran (no exfiltration request) and its CDN image was blocked by the CSP.

Debian's ``chromium`` is the browser (see ``test_studio_e2e``); without it the test is skipped locally.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.layout import JobLayout
from kapsule.job.params import JobParams
from kapsule.job.record import JobRecord, JobState
from kapsule.job.update import JobUpdate
from tests.support.browser import CHROMIUM_ARGS, need_chromium
from tests.support.servers import kapsule_serve, server_env

KEY = "key-alice-0123456789"
HOSTILE = b"""<!doctype html><html><body><h1>tempo 120</h1>
<img src="https://cdnjs.cloudflare.com/ajax/libs/leak.png">
<script>
  let loot = "cookie=" + document.cookie;
  try { loot += "|stored=" + localStorage.getItem("kapsule-key"); } catch (e) { loot += "|storage-blocked"; }
  try { loot += "|parent=" + window.parent.document.cookie; } catch (e) { loot += "|parent-blocked"; }
  fetch("/v1/leak?" + encodeURIComponent(loot));
  document.body.dataset.ran = "yes";
</script></body></html>"""


@pytest.fixture
def keyed_server(tmp_path: Path, small_video: Path) -> Iterator[tuple[str, str, str]]:
    """A keyed ``kapsule serve`` with one finished job of alice's (event streams live 2 s at most);
    yields the URL, the job id and the status store's URL."""
    need_chromium()
    home = tmp_path / "kapsule"
    storage_url, status_url = f"file://{home / 'data'}", f"sqlite:///{home / 'jobs.db'}"
    status = open_status_store(status_url)
    job = status.create(JobRecord(owner="alice", params=JobParams(song="song.wav")))
    storage = open_storage(storage_url)
    storage.upload_from(small_video, JobLayout(job.id).video)
    storage.write_bytes(JobLayout(job.id).notebook("01_analyze", "html"), HOSTILE)
    status.update(job.id, JobUpdate(state=JobState.running, stage="analyze"))
    status.update(job.id, JobUpdate(state=JobState.succeeded, progress=1.0))

    env = server_env(
        home,
        KAPSULE_API_KEYS=f"alice={KEY}",
        KAPSULE_UPLOAD_SECRET="browser-test-secret",
        KAPSULE_EVENT_STREAM_MAX_S="2",
    )
    with kapsule_serve(env, tmp_path / "server.log") as base:
        yield base, job.id, status_url


@pytest.fixture(scope="module")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "v.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=24:duration=1",
         "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


def test_a_notebook_opened_from_the_studio_cannot_read_the_key(keyed_server: tuple[str, str, str]) -> None:
    from playwright.sync_api import sync_playwright

    base, job_id, _ = keyed_server
    requests: list[str] = []
    failed: list[str] = []
    answered: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("requestfailed", lambda request: failed.append(f"{request.url} {request.failure}"))
            page.on("response", lambda response: answered.append(response.url))
            page.goto(base)
            page.get_by_label("This server needs an API key").fill(KEY)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("#jobs li button")
            assert page.get_by_label("This server needs an API key").input_value() == ""
            page.click("#jobs li button")
            page.wait_for_selector("#notebooks a")
            page.click("#notebooks li:first-child a")
            frame_element = page.wait_for_selector("#notebook-frame iframe")
            assert frame_element is not None
            assert frame_element.get_attribute("sandbox") == ""  # no scripts, no same-origin
            frame = frame_element.content_frame()
            assert frame is not None
            frame.wait_for_selector("h1")
            assert "tempo 120" in frame.inner_text("body")
            assert frame.url.startswith(f"{base}/v1/notebooks/{job_id}/01_analyze?")
            assert frame.get_attribute("body", "data-ran") is None  # its script never ran

            assert page.evaluate("() => localStorage.length") == 0
            assert "kapsule_session" not in page.evaluate("() => document.cookie")  # HttpOnly
            cookies = {c["name"]: c for c in page.context.cookies()}
            session = cookies["kapsule_session"]
            assert session["httpOnly"] and session["sameSite"] == "Strict" and KEY not in session["value"]
            time.sleep(1.0)  # give a script that did run the time to send its loot
        finally:
            browser.close()
    assert not [url for url in requests if "/v1/leak" in url], requests  # the script never sent its loot
    # The CDN image was refused inside the browser by the notebook's CSP: asked for, never fetched.
    assert not [url for url in answered if "cdnjs" in url]
    assert [entry for entry in failed if "cdnjs" in entry] == [
        "https://cdnjs.cloudflare.com/ajax/libs/leak.png csp"
    ]
    assert any(f"/v1/notebooks/{job_id}/01_analyze?" in url for url in requests)


def test_the_page_follows_a_job_across_event_stream_lifetimes(keyed_server: tuple[str, str, str]) -> None:
    """Each stream ends after 2 s; the page's EventSource reconnects with Last-Event-ID (no polling)."""
    from playwright.sync_api import Request, sync_playwright

    base, _, status_url = keyed_server
    status = open_status_store(status_url)
    job = status.create(JobRecord(owner="alice", params=JobParams(song="running.wav")))
    status.update(job.id, JobUpdate(state=JobState.running, stage="generate", progress=0.3))
    streams: list[Request] = []
    reads: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: streams.append(r) if r.url.endswith(f"{job.id}/events") else None)
            page.on(
                "request", lambda r: reads.append(r.url) if r.url.endswith(f"/v1/jobs/{job.id}") else None
            )
            page.goto(base)
            page.get_by_label("This server needs an API key").fill(KEY)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("button", name="running.wav", exact=False).click()
            page.wait_for_function("() => document.getElementById('job-state').textContent === 'running'")
            for _ in range(200):  # at least two reconnects (each stream lives 2 s)
                if len(streams) >= 3:
                    break
                page.wait_for_timeout(100)
            status.update(job.id, JobUpdate(state=JobState.succeeded, progress=1.0))
            page.wait_for_function(
                "() => document.getElementById('job-state').textContent === 'succeeded'", timeout=30_000
            )
            resumed_from = [r.header_value("last-event-id") for r in streams]  # asked while the browser runs
        finally:
            browser.close()
    assert len(streams) >= 3
    assert resumed_from[0] is None and resumed_from[1]  # a reconnect says which record it has
    assert len(reads) <= 1  # the click's one read; no fallback to polling every 1.5 s
