"""Lyrics reach a job from the CLI and the API alike, and bad lyrics are refused before a job exists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kapsule.cli.main import app as cli_app
from kapsule.core.settings import Settings
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.layout import JobLayout
from tests.support.api import (
    expect_error,
    sine_wav,
    upload_file,
)

LRC = (
    "[00:00.50]first line here\n"
    "[00:02.00]<00:02.00>second <00:02.40>line <00:02.80>here\n"
    "[00:04.00]third line\n"
)
BAD_LRC = "[00:00.50]first line\n[00:0x.00]broken\n"


def test_pasted_lyrics_are_stored_in_the_job_and_named_in_its_params(
    api: Any, api_settings: Settings, tmp_path: Path
) -> None:
    client, launcher = api
    song = sine_wav(tmp_path / "song.wav", 6.0)
    body = {"upload_id": upload_file(client, song), "lyrics_text": LRC, "captions": "soft"}
    created = client.post("/v1/jobs", json=body)
    assert created.status_code == 202, created.text
    record = created.json()
    layout = JobLayout(record["id"])
    assert record["params"]["lyrics"] == "pasted"  # what the user gave; the file is the job's own
    assert record["params"]["captions"] == "soft" and record["params"]["lyrics_aligner"] == "auto"
    assert open_storage(api_settings.storage_url).read_bytes(layout.input_lyrics("lrc")) == LRC.encode()
    assert launcher.launched == [record["id"]]


def test_plain_lyrics_upload_is_stored_as_text(api: Any, api_settings: Settings, tmp_path: Path) -> None:
    client, _ = api
    song = sine_wav(tmp_path / "song.wav", 6.0)
    words = tmp_path / "words.txt"
    words.write_text("one two three\nfour five six\n\nseven eight\n", encoding="utf-16")  # with a BOM
    ticket = client.post(
        "/v1/uploads",
        json={"filename": "words.txt", "content_type": "text/plain", "size": words.stat().st_size,
              "purpose": "lyrics"},
    )  # fmt: skip
    assert ticket.status_code == 201, ticket.text
    put = client.put(ticket.json()["url"], content=words.read_bytes(), headers=ticket.json()["headers"])
    assert put.status_code == 200, put.text
    created = client.post(
        "/v1/jobs",
        json={"upload_id": upload_file(client, song), "lyrics_upload_id": ticket.json()["upload_id"]},
    )
    assert created.status_code == 202, created.text
    assert created.json()["params"]["lyrics"] == "words.txt"
    stored = open_storage(api_settings.storage_url).read_bytes(
        JobLayout(created.json()["id"]).input_lyrics("txt")
    )
    assert stored == words.read_bytes()


BAD_LYRICS = [
    pytest.param(BAD_LRC, "lyrics_malformed", "line 2", id="malformed-lrc"),
    pytest.param(
        "1\n00:00:01,000 --> 00:00:02,000\nhi\n\n2\n00:00:03,000 -> nope\nho\n",
        "lyrics_malformed",
        "line 6",
        id="malformed-srt",
    ),
    pytest.param("\n\n   \n", "lyrics_empty", "", id="empty"),
    pytest.param("[09:00.00]long after the end\n", "lyrics_past_end", "", id="past-end"),
    pytest.param("la " * 400 + "\n", "lyrics_too_long", "", id="too-long"),
]


@pytest.mark.parametrize(("text", "code", "says"), BAD_LYRICS)
def test_bad_lyrics_are_refused_by_the_cli_and_the_api_with_the_same_code(
    api: Any, kapsule_env: Settings, tmp_path: Path, text: str, code: str, says: str
) -> None:
    client, launcher = api
    song = sine_wav(tmp_path / "song.wav", 6.0)
    message = expect_error(
        client.post("/v1/jobs", json={"upload_id": upload_file(client, song), "lyrics_text": text}), 422, code
    )
    assert says in message

    lyrics = tmp_path / "lyrics.lrc"
    lyrics.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli_app, ["make", str(song), "--lyrics", str(lyrics)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error [{code}]: "), result.output
    assert says in result.output

    assert launcher.launched == []
    assert open_status_store(kapsule_env.status_url).list("local") == ([], None)


def test_a_missing_lyrics_file_is_refused_by_the_cli(kapsule_env: Settings, tmp_path: Path) -> None:
    song = sine_wav(tmp_path / "song.wav", 6.0)
    result = CliRunner().invoke(cli_app, ["make", str(song), "--lyrics", str(tmp_path / "nope.lrc")])
    assert result.exit_code == 2 and result.output.startswith("error [file_not_found]: "), result.output


def test_kapsule_lyrics_prints_the_timed_lines_as_json(kapsule_env: Settings, tmp_path: Path) -> None:
    song = sine_wav(tmp_path / "song.wav", 6.0)
    lyrics = tmp_path / "song.lrc"
    lyrics.write_text(LRC, encoding="utf-8")
    result = CliRunner().invoke(cli_app, ["lyrics", str(song), "--lyrics", str(lyrics), "--json"])
    assert result.exit_code == 0, result.output
    lines = json.loads(result.output)
    assert [line["text"] for line in lines] == ["first line here", "second line here", "third line"]
    assert lines[0]["start"] == pytest.approx(0.5) and lines[1]["start"] == pytest.approx(2.0)
    assert [w["text"] for w in lines[1]["words"]][:2] == ["second", "line"]
    assert lines[1]["words"][1]["start"] == pytest.approx(2.4)
    assert set(lines[0]) == {"start", "end", "text", "words", "confidence", "sure"}
    assert all(line["sure"] for line in lines)  # times the user gave are not second-guessed


def test_the_captions_route_serves_the_jobs_webvtt_once_delivered(
    api: Any, api_settings: Settings, tmp_path: Path
) -> None:
    client, _ = api
    song = sine_wav(tmp_path / "song.wav", 6.0)
    created = client.post("/v1/jobs", json={"upload_id": upload_file(client, song), "lyrics_text": LRC})
    job_id = created.json()["id"]
    expect_error(client.get(f"/v1/jobs/{job_id}/captions.vtt"), 404, "not_found")
    vtt = "WEBVTT\n\n00:00:00.500 --> 00:00:02.000\nfirst line here\n"
    open_storage(api_settings.effective_delivery_url).write_bytes(
        JobLayout(job_id).captions("vtt"), vtt.encode()
    )
    response = client.get(f"/v1/jobs/{job_id}/captions.vtt")
    assert response.status_code == 200 and response.text == vtt
    assert response.headers["content-type"].startswith("text/vtt")
    expect_error(client.get("/v1/jobs/j00000000000000000099/captions.vtt"), 404, "job_not_found")
