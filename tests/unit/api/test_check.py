"""``POST /v1/jobs/check``: a job's options and lyrics refused before its song is uploaded (the studio
calls it before the PUT, so a bad lyrics file never costs an upload), with the codes ``POST /v1/jobs``
gives; nothing is created or stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kapsule.core.settings import Settings
from kapsule.infra.status import open_status_store
from tests.support.api import RecordingLauncher, expect_error


def _nothing_made(settings: Settings, launcher: RecordingLauncher) -> None:
    assert open_status_store(settings.status_url).list("local")[0] == []
    assert launcher.launched == []
    uploads = Path(settings.storage_url.removeprefix("file://")) / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_good_options_and_lyrics_pass_with_the_params_the_job_would_run_with(
    client: TestClient, api_settings: Settings, launcher: RecordingLauncher
) -> None:
    body = {"filename": "sung.mp3", "song_seconds": 30.0, "aspect_ratio": "9:16", "lyrics_text": "la la\n"}
    checked = client.post("/v1/jobs/check", json=body)
    assert checked.status_code == 200, checked.text
    assert checked.json()["aspect_ratio"] == "9:16" and checked.json()["song"] == "sung.mp3"
    _nothing_made(api_settings, launcher)


@pytest.mark.parametrize(
    ("body", "status", "code", "says"),
    [
        ({"lyrics_text": "[00:01.00]one\n[00:xx]two\n"}, 422, "lyrics_malformed", "line 2"),
        ({"lyrics_text": "[09:00.00]long after the end\n", "song_seconds": 30.0}, 422, "lyrics_past_end", ""),
        ({"lyrics_text": "\n  \n"}, 422, "lyrics_empty", ""),
        ({"song_seconds": 2.0}, 422, "too_short", "at least"),
        ({"aspect_ratio": "4:3"}, 422, "invalid_parameter", "aspect_ratio"),
    ],
    ids=["malformed", "past-the-end", "empty", "too-short", "bad-option"],
)
def test_bad_lyrics_and_options_are_refused_without_a_song(
    client: TestClient,
    api_settings: Settings,
    launcher: RecordingLauncher,
    body: dict[str, object],
    status: int,
    code: str,
    says: str,
) -> None:
    response = client.post("/v1/jobs/check", json={"filename": "sung.mp3", **body})
    message = expect_error(response, status, code)
    assert says in message
    _nothing_made(api_settings, launcher)
