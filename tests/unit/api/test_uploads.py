"""Uploads and bad input over the API: songs checked by content, signed upload URLs used once, limits,
malformed requests; every refusal is a 4xx with a code, and nothing is launched."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi.testclient import TestClient
from PIL import Image

from kapsule.control import uploads
from kapsule.core.settings import Settings
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from tests.support.api import (
    SECRET,
    RecordingLauncher,
    api_client,
    expect_error,
    sine_wav,
    upload_file,
)
from tests.support.settings import replace


def _nothing_launched(launcher: RecordingLauncher, settings: Settings) -> None:
    assert launcher.launched == []
    assert open_status_store(settings.status_url).list("local")[0] == []


# ---------------------------------------------------------------------------------------- bad input


def test_non_audio_upload_is_refused_by_content(
    client: TestClient, launcher: RecordingLauncher, api_settings: Settings, tmp_path: Path
) -> None:
    png = tmp_path / "cover.mp3"  # the name and the announced type lie; the content decides
    Image.new("RGB", (64, 64), "red").save(png, format="PNG")
    upload_id = upload_file(client, png, "audio/mpeg")
    message = expect_error(client.post("/v1/jobs", json={"upload_id": upload_id}), 422, "not_audio")
    assert "PNG" in message or "image" in message
    _nothing_launched(launcher, api_settings)


def test_truncated_song_is_refused(
    client: TestClient, launcher: RecordingLauncher, api_settings: Settings, song: Path, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.wav"
    cut.write_bytes(song.read_bytes()[: song.stat().st_size // 2])
    message = expect_error(
        client.post("/v1/jobs", json={"upload_id": upload_file(client, cut)}), 422, "undecodable"
    )
    assert "cut short" in message or "incomplete" in message
    _nothing_launched(launcher, api_settings)


def test_no_server_path_in_an_error_body(
    client: TestClient, launcher: RecordingLauncher, api_settings: Settings, tmp_path: Path
) -> None:
    """Issue 22, probe 12: a damaged M4A's 422 quoted FFmpeg's line with ``/tmp/kapsule-check-…``."""
    from kapsule import media

    whole = tmp_path / "song.m4a"
    media.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=7", "-c:a", "aac",
               "-movflags", "+faststart", str(whole)])  # fmt: skip
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(whole.read_bytes()[:30_000])
    answer = client.post("/v1/jobs", json={"upload_id": upload_file(client, cut, "audio/mp4")})
    message = expect_error(answer, 422, "undecodable")
    assert "/" not in message and "kapsule-check" not in message, message
    _nothing_launched(launcher, api_settings)


def test_silent_song_is_refused(
    client: TestClient, launcher: RecordingLauncher, api_settings: Settings, tmp_path: Path
) -> None:
    silent = sine_wav(tmp_path / "silence.wav", 6.0, amplitude=0.0)
    message = expect_error(
        client.post("/v1/jobs", json={"upload_id": upload_file(client, silent)}), 422, "silent"
    )
    assert "silent" in message
    _nothing_launched(launcher, api_settings)


def test_oversized_upload_is_refused_before_and_during_the_put(client: TestClient, song: Path) -> None:
    message = expect_error(
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
    expect_error(
        client.put(ticket.json()["url"], content=body, headers=ticket.json()["headers"]),
        413,
        "upload_too_large",
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming too
        yield body[:800]
        yield body[800:1600]

    expect_error(
        client.put(ticket.json()["url"], content=chunks(), headers=ticket.json()["headers"]),
        413,
        "upload_too_large",
    )
    expect_error(
        client.post("/v1/jobs", json={"upload_id": ticket.json()["upload_id"]}), 409, "upload_incomplete"
    )


def test_wrongly_typed_upload_is_refused(client: TestClient, song: Path) -> None:
    for kind in ("image/png", "text/plain", "application/pdf", "not a type"):
        message = expect_error(
            client.post("/v1/uploads", json={"filename": "x.png", "content_type": kind, "size": 10}),
            415,
            "unsupported_media_type",
        )
        assert "not a song" in message
    ticket = client.post("/v1/uploads", json={"filename": "s.wav", "content_type": "audio/wav", "size": 100})
    expect_error(
        client.put(ticket.json()["url"], content=b"x" * 100, headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )


def _signed_parts(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}


def test_expired_and_tampered_signatures_are_refused(
    client: TestClient, api_settings: Settings, song: Path
) -> None:
    ticket = client.post("/v1/uploads", json={"filename": "s.wav", "content_type": "audio/wav", "size": 100})
    path, query = _signed_parts(ticket.json()["url"])
    headers = ticket.json()["headers"]
    body = b"x" * 100

    tampered_sig = {
        **query,
        "signature": query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1"),
    }
    expect_error(
        client.put(f"{path}?{urlencode(tampered_sig)}", content=body, headers=headers), 403, "bad_signature"
    )
    later = {**query, "expires": str(int(query["expires"]) + 3600)}
    expect_error(
        client.put(f"{path}?{urlencode(later)}", content=body, headers=headers), 403, "bad_signature"
    )
    other_id = client.post(
        "/v1/uploads", json={"filename": "t.wav", "content_type": "audio/wav", "size": 100}
    )
    other_path, _ = _signed_parts(other_id.json()["url"])
    expect_error(
        client.put(f"{other_path}?{urlencode(query)}", content=body, headers=headers), 403, "bad_signature"
    )

    # A correctly signed URL whose time is up (signed with the server's key, expiry in the past).
    stored = uploads.load_ticket(open_storage(api_settings.storage_url), ticket.json()["upload_id"])
    past = int(time.time()) - 5
    expired = {"expires": str(past), "signature": uploads.sign(SECRET.encode(), stored, past)}
    message = expect_error(
        client.put(f"{path}?{urlencode(expired)}", content=body, headers=headers), 403, "upload_expired"
    )
    assert "expired" in message
    assert not open_storage(api_settings.storage_url).exists(uploads.upload_key(stored.upload_id))


def test_unknown_upload_id_is_a_404(
    client: TestClient, launcher: RecordingLauncher, api_settings: Settings
) -> None:
    for upload_id in ("u" + "0" * 24, "../../jobs.db", "u123"):
        expect_error(client.post("/v1/jobs", json={"upload_id": upload_id}), 404, "upload_not_found")
    expect_error(
        client.put("/v1/uploads/u" + "0" * 24 + "?expires=1&signature=ab", content=b"x"),
        404,
        "upload_not_found",
    )
    _nothing_launched(launcher, api_settings)


def test_malformed_json_and_bad_fields(
    client: TestClient, launcher: RecordingLauncher, api_settings: Settings
) -> None:
    bad = client.post(
        "/v1/jobs", content=b'{"upload_id": "u1",', headers={"Content-Type": "application/json"}
    )
    expect_error(bad, 400, "malformed_json")
    message = expect_error(
        client.post("/v1/jobs", json={"upload_id": "u1", "aspect_ratio": "4:3"}), 422, "invalid_parameter"
    )
    assert "aspect_ratio" in message
    expect_error(client.post("/v1/jobs", json={"prompt": "no upload"}), 422, "invalid_parameter")
    expect_error(client.post("/v1/jobs", json={"upload_id": "u1", "max_shots": -1}), 422, "invalid_parameter")
    expect_error(
        client.post("/v1/uploads", content=b"[", headers={"Content-Type": "application/json"}),
        400,
        "malformed_json",
    )
    _nothing_launched(launcher, api_settings)


def test_huge_prompt_is_refused(
    client: TestClient, launcher: RecordingLauncher, api_settings: Settings, song: Path
) -> None:
    upload_id = upload_file(client, song)
    message = expect_error(
        client.post("/v1/jobs", json={"upload_id": upload_id, "prompt": "la " * 10_000}),
        422,
        "invalid_parameter",
    )
    assert "prompt" in message and "at most 2000 characters" in message
    expect_error(
        client.post("/v1/jobs", json={"upload_id": upload_id, "style": "x" * 2001}), 422, "invalid_parameter"
    )
    _nothing_launched(launcher, api_settings)


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


# ----------------------------------------------------------------------------- the 500s, now 4xx


def test_lone_surrogate_is_a_422_and_stores_nothing(
    client: TestClient, api_settings: Settings, song: Path
) -> None:
    upload_id = upload_file(client, song)
    for field in ("prompt", "style"):
        raw = f'{{"upload_id": "{upload_id}", "{field}": "\\ud800"}}'
        response = client.post("/v1/jobs", content=raw, headers={"Content-Type": "application/json"})
        assert "surrogate" in expect_error(response, 422, "invalid_parameter")
    storage = open_storage(api_settings.storage_url)
    assert storage.list("jobs/") == [] and open_status_store(api_settings.status_url).list("local")[0] == []
    assert [k for k in storage.list("") if not k.startswith("uploads/")] == []


def test_non_ascii_signature_and_nested_cursor_are_client_errors(client: TestClient) -> None:
    ticket = client.post("/v1/uploads", json={"filename": "s.wav", "content_type": "audio/wav", "size": 10})
    path = urlsplit(ticket.json()["url"]).path
    put = client.put(
        f"{path}?expires=9999999999&signature=%C3%A9",
        content=b"x" * 10,
        headers={"Content-Type": "audio/wav"},
    )
    expect_error(put, 403, "bad_signature")
    for cursor in ("[[1],2]", '[1, "j1"]', '{"a": 1}', "[]"):
        expect_error(client.get("/v1/jobs", params={"cursor": cursor}), 422, "bad_cursor")


def test_the_upload_limit_reads_300_mib(api_settings: Settings) -> None:
    with api_client(RecordingLauncher(), replace(api_settings, max_upload_bytes=300 * 1024 * 1024)) as c:
        assert c.get("/v1/healthz").json()["max_upload_bytes"] == 300 * 1024 * 1024
        body = {"filename": "big.wav", "content_type": "audio/wav", "size": 400 * 1024 * 1024}
        message = expect_error(c.post("/v1/uploads", json=body), 413, "upload_too_large")
    assert "up to 300 MiB" in message and "315" not in message


# ------------------------------------------------------------------------------ uploads, streams


def test_an_upload_url_works_once(client: TestClient, api_settings: Settings, song: Path) -> None:
    data = song.read_bytes()
    ticket = client.post(
        "/v1/uploads", json={"filename": "s.wav", "content_type": "audio/wav", "size": len(data)}
    )
    url, headers = ticket.json()["url"], ticket.json()["headers"]
    assert client.put(url, content=data, headers=headers).status_code == 200
    expect_error(client.put(url, content=data[:100], headers=headers), 409, "upload_used")
    stored = open_storage(api_settings.storage_url).read_bytes(uploads.upload_key(ticket.json()["upload_id"]))
    assert stored == data


def test_unused_uploads_are_swept_after_their_ttl(api_settings: Settings, song: Path) -> None:
    storage = open_storage(api_settings.storage_url)
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


def test_paths_under_the_server_folders_are_cut_to_their_names() -> None:
    from kapsule.api.errors import without_server_paths

    text = "FFmpeg: /tmp/kapsule-check-x1/song.wav: bad, see /srv/work/j1/a.json; /v1/jobs stays"
    assert (
        without_server_paths(text, ["/srv/work", "/tmp"])
        == "FFmpeg: song.wav: bad, see a.json; /v1/jobs stays"
    )
