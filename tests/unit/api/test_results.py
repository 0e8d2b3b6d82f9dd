"""What a job leaves, over the API: its video (with ranges) and its notebooks (sandboxed, through short-lived
signed links, loading nothing from a CDN)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient

from kapsule.control.pipeline import notebook_html
from kapsule.core.settings import Settings
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.layout import JobLayout
from kapsule.job.record import JobRecord, JobState
from tests.support.api import (
    SECRET,
    expect_error,
    finished_job,
    job_record,
)


def test_video_is_served_with_range_support(
    client: TestClient, api_settings: Settings, small_mp4: Path
) -> None:
    job = finished_job(api_settings, small_mp4)
    whole = client.get(f"/v1/jobs/{job.id}/video")
    assert whole.status_code == 200 and whole.content == small_mp4.read_bytes()
    assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"
    assert "My%20Song.mp4" in whole.headers["content-disposition"]
    part = client.get(f"/v1/jobs/{job.id}/video", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == small_mp4.read_bytes()[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{small_mp4.stat().st_size}"


def test_video_of_an_unfinished_job_is_a_409(client: TestClient, api_settings: Settings) -> None:
    job = open_status_store(api_settings.status_url).create(JobRecord())
    assert "queued" in expect_error(client.get(f"/v1/jobs/{job.id}/video"), 409, "video_not_ready")


def test_notebook_html_is_served_sandboxed(
    client: TestClient, api_settings: Settings, small_mp4: Path
) -> None:
    job = finished_job(api_settings, small_mp4)
    page = client.get(f"/v1/jobs/{job.id}/notebooks/01_analyze")
    assert page.status_code == 200 and "tempo 120" in page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("sandbox;")
    expect_error(client.get(f"/v1/jobs/{job.id}/notebooks/04_assemble"), 404, "not_found")
    expect_error(client.get(f"/v1/jobs/{job.id}/notebooks/..%2F..%2Fjobs.db"), 404, "no_such_endpoint")
    expect_error(client.get(f"/v1/jobs/{job.id}/notebooks/99_secret"), 404, "not_found")


# -------------------------------------------------------------------------------------- notebooks


def _job_with_notebook(api_settings: Settings, html: bytes, owner: str = "local") -> JobRecord:
    record = job_record(api_settings, owner, JobState.running)
    open_storage(api_settings.storage_url).write_bytes(
        JobLayout(record.id).notebook("01_analyze", "html"), html
    )
    return record


def test_notebooks_open_through_short_lived_signed_links_in_a_sandbox(
    keyed: TestClient, api_settings: Settings
) -> None:
    job = _job_with_notebook(
        api_settings, b"<html><body>tempo 120<script>alert(1)</script></body></html>", "alice"
    )
    alice = {"Authorization": "Bearer key-a"}
    expect_error(
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
    expect_error(other, 403, "bad_link_signature")
    expect_error(keyed.get(parts.path, params={**query, "signature": "%C3%A9"}), 403, "bad_link_signature")
    past = int(time.time()) - 5
    from kapsule.core import links

    signed = {
        "expires": past,
        "signature": links.sign(SECRET.encode(), "notebook", (job.id, "01_analyze"), past),
    }
    expect_error(keyed.get(parts.path, params=signed), 403, "link_expired")


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
