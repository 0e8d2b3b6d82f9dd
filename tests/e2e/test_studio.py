"""The studio page in a real headless Chromium against a real ``kapsule serve``: a musician's path.

The server runs as a subprocess on a free loopback port with its own storage, status and work
folders; the job it launches is the real pipeline (local renderer). The test drops the demo song on
the page, waits for the finished video to load in the page's player, and checks the player reports
the song's duration: the whole chain (upload URL, content check, job, video with Range) works from
a browser. A screenshot of the finished page is kept in test-artifacts/ (docs/studio.png is a copy of one).

Debian's ``chromium`` package is the browser (Playwright never downloads one). Without it the test is
skipped on a laptop and fails in CI (``CI=true``), where ``scripts/install-system-deps.sh --test``
installs it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, need_chromium
from tests.support.servers import kapsule_serve, server_env

VIDEO_TIMEOUT_MS = 420_000  # the whole pipeline on a busy 2-core machine; normally 60-90 s


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``kapsule serve`` on a free loopback port, with a Kapsule home of its own."""
    need_chromium()
    with kapsule_serve(server_env(tmp_path / "kapsule"), tmp_path / "server.log") as base:
        try:
            yield base
        finally:
            _cancel_unfinished(base)


def _cancel_unfinished(base: str) -> None:
    """A job process runs in its own session and would outlive the server: cancel it through the API."""
    try:
        for job in httpx.get(f"{base}/v1/jobs", timeout=5).json()["jobs"]:
            if job["state"] in {"queued", "running", "awaiting_approval"}:
                httpx.post(f"{base}/v1/jobs/{job['id']}:cancel", timeout=5)
        time.sleep(0.5)  # the server signals the job's process group from a background thread
    except httpx.HTTPError:
        pass


def test_drop_a_song_and_watch_the_video(server: str, artifacts_dir: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from kapsule.demo.song import synthesize_song, write_song

    # 18 s (intro, verse, chorus at 120 BPM): room for both lyric lines, a third of the demo song's job.
    structure = [("intro", 2), ("verse", 3), ("chorus", 4)]
    song = write_song(synthesize_song(seed=3, structure=structure), tmp_path / "drop.wav")
    song_seconds = sf.info(str(song)).duration
    not_a_song = tmp_path / "notes.txt"
    not_a_song.write_text("these are lyrics, not a song")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1100})
            page.goto(server)
            assert page.get_by_label("What should the video show?").is_visible()

            # A wrong file gets a clear message on the page, and no job.
            page.set_input_files("#song", str(not_a_song))
            page.click("#make")
            page.wait_for_selector("#error:not([hidden])")
            assert "not a song" in page.inner_text("#error")

            page.set_input_files("#song", str(song))
            page.fill("#prompt", "a night drive through a neon city")
            page.fill("#style", "grainy film")
            page.fill(
                "#lyrics", "[00:09.00]paper boats on silver streams\n[00:13.00]we sail until the morning\n"
            )
            page.get_by_role("button", name="Make the video").click()
            page.wait_for_selector("#job:not([hidden])")
            assert page.inner_text("#error") == "" or page.is_hidden("#error")

            page.wait_for_function(
                "() => { const v = document.getElementById('video');"
                " return v && v.readyState >= 1 && isFinite(v.duration) && v.duration > 0; }",
                timeout=VIDEO_TIMEOUT_MS,
            )
            duration = page.evaluate("document.getElementById('video').duration")
            assert duration == pytest.approx(song_seconds, abs=0.1)
            assert page.inner_text("#job-state") == "succeeded"
            # The pasted lyrics come back as the player's captions track (the job's WebVTT).
            page.wait_for_function(
                "() => { const t = document.getElementById('video').textTracks[0];"
                " return t && t.kind === 'captions' && t.cues && t.cues.length > 0; }",
                timeout=30_000,
            )
            cues = page.evaluate(
                "Array.from(document.getElementById('video').textTracks[0].cues, c => c.text)"
            )
            assert cues == ["paper boats on silver streams", "we sail until the morning"]
            assert page.locator("#notebooks a").count() == 4
            assert page.get_attribute("#download", "download").endswith(".mp4")
            page.wait_for_function("() => document.querySelectorAll('#jobs li button').length === 1")

            assert page.is_hidden("#cancel")
            # A frame from the middle of the song rather than the first, for the screenshot.
            page.evaluate(
                "() => new Promise((done) => { const v = document.getElementById('video');"
                " v.addEventListener('seeked', done, { once: true }); v.currentTime = v.duration / 2; })"
            )
            shot = artifacts_dir / "studio.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


def test_review_the_storyboard_approve_then_reroll_a_shot(
    server: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    """Review before paying in the page: see prompts and cost, edit one, approve, then re-roll a shot."""
    from playwright.sync_api import sync_playwright

    from kapsule.demo.song import synthesize_song, write_song

    song = write_song(
        synthesize_song(seed=5, structure=[("intro", 2), ("verse", 2), ("chorus", 2)]), tmp_path / "short.wav"
    )
    song_seconds = sf.info(str(song)).duration
    has_video = (
        "(job) => { const v = document.getElementById('video');"
        " return v && v.dataset.job === job && v.readyState >= 1 && isFinite(v.duration) && v.duration > 0; }"
    )

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 420, "height": 1100})  # a phone's width
            page.goto(server)
            page.set_input_files("#song", str(song))
            page.get_by_label("Show me the storyboard and its cost before any shot is made").check()
            page.get_by_role("button", name="Make the video").click()

            first = page.get_by_label("Shot 0 prompt")
            first.wait_for(timeout=VIDEO_TIMEOUT_MS)
            assert page.inner_text("#job-state") == "awaiting approval"
            assert "estimated $0.00" in page.inner_text("#review-cost")
            assert page.locator("#review-shots textarea").count() >= 2
            assert page.is_visible("#cancel") and page.is_hidden("#result")

            # The beat grid: drawn, heard (the click track is the song's length), fixed for free.
            tempo = float(page.inner_text("#grid-summary").split(" BPM")[0])
            assert page.is_visible("#grid-canvas")
            page.eval_on_selector("#grid-click", "a => { a.preload = 'auto'; a.load(); }")
            page.wait_for_function(
                "() => { const a = document.getElementById('grid-click');"
                " return a.readyState >= 1 && a.duration > 0; }"
            )
            assert page.evaluate("document.getElementById('grid-click').duration") == pytest.approx(
                song_seconds, abs=0.3
            )
            bpm_now = "() => parseFloat(document.getElementById('grid-summary').textContent)"
            page.locator("#review").screenshot(path=str(artifacts_dir / "studio-beat-grid.png"))
            # Each change re-plans and the page rebuilds the shot list: wait for the rebuilt list, or an
            # edit typed into the old one is lost when it is replaced.
            old_list = "document.getElementById('shot-prompt-0').dataset.old = 'yes'"
            rebuilt = (
                "() => { const t = document.getElementById('shot-prompt-0'); return t && !t.dataset.old; }"
            )
            page.evaluate(old_list)
            page.get_by_role("button", name="Double").click()
            page.wait_for_function(f"(t) => ({bpm_now})() > t * 1.9", arg=tempo)
            page.wait_for_function(rebuilt)
            page.evaluate(old_list)
            page.get_by_role("button", name="Half").click()
            page.wait_for_function(f"(t) => Math.abs(({bpm_now})() - t) < 1", arg=tempo)
            page.wait_for_function(rebuilt)
            assert "estimated $0.00" in page.inner_text("#review-cost")  # re-planning paid nothing

            first = page.get_by_label("Shot 0 prompt")
            first.wait_for()
            first.fill("a paper boat on a puddle")
            page.get_by_role("button", name="Approve and make the video").click()
            job_id = page.evaluate("current.id")
            page.wait_for_function(has_video, arg=job_id, timeout=VIDEO_TIMEOUT_MS)
            assert page.evaluate("document.getElementById('video').duration") == pytest.approx(
                song_seconds, abs=0.1
            )
            first_shot = page.locator("#shots li").first
            first_shot.wait_for()
            assert "a paper boat on a puddle" in first_shot.inner_text()

            page.get_by_role("button", name="Re-roll shot 1").click()
            page.wait_for_function("(job) => current && current.id !== job", arg=job_id)
            child_id = page.evaluate("current.id")
            page.wait_for_function(has_video, arg=child_id, timeout=VIDEO_TIMEOUT_MS)
            assert page.inner_text("#job-state") == "succeeded"
            child = httpx.get(f"{server}/v1/jobs/{child_id}", timeout=5).json()
            assert child["reroll"]["parent_job"] == job_id and child["reroll"]["shot"] == 1
            links = [page.get_attribute(f"#notebooks li:nth-child({i}) a", "href") for i in (1, 3)]
            assert links == [
                f"/v1/jobs/{job_id}/notebooks/01_analyze",
                f"/v1/jobs/{child_id}/notebooks/03_generate",
            ]
        finally:
            browser.close()
