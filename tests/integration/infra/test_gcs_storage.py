"""gs:// specifics the contract suite does not cover: big resumable uploads, content types, prefixes,
and how Google's errors reach our callers. Runs against the real GCS emulator, and against a small
local HTTP server for the error answers the emulator never gives."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kapsule.core.errors import ObjectNotFound, StorageError
from kapsule.infra.storage import open_storage
from kapsule.infra.storage.gcs import GcsStorage
from tests.support.emulators import GcsEmulator


@pytest.fixture
def bucket(gcs_emulator: GcsEmulator) -> str:
    return gcs_emulator.new_bucket()


def _stored_object(bucket: str, name: str):  # type: ignore[no-untyped-def]
    """The object's metadata as GCS reports it, read with a separate plain client."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="t", credentials=AnonymousCredentials()).bucket(bucket).get_blob(name)


def test_resumable_upload_of_a_large_file_round_trips(
    bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """20 MiB is above the 8 MiB single-request limit, so it goes as a chunked resumable upload."""
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    payload = os.urandom(20 * 1024 * 1024 + 12345)
    src = tmp_path / "video.mp4"
    src.write_bytes(payload)
    storage = open_storage(f"gs://{bucket}")
    storage.upload_from(src, "jobs/j1/output/video.mp4")
    chunks = [r for r in caplog.messages if '"PUT /upload/' in r and "uploadType=resumable" in r]
    assert len(chunks) == 3  # 8 + 8 + 4 MiB, each its own request (and retry unit)
    blob = _stored_object(bucket, "jobs/j1/output/video.mp4")
    assert blob.size == len(payload)
    assert blob.content_type == "video/mp4"
    out = storage.download_to("jobs/j1/output/video.mp4", tmp_path / "dl" / "video.mp4")
    assert out.read_bytes() == payload
    streamed = b"".join(storage.open_read("jobs/j1/output/video.mp4", chunk_size=3 * 1024 * 1024))
    assert streamed == payload
    assert sorted(p.name for p in out.parent.iterdir()) == ["video.mp4"]  # no temporary file left


@pytest.mark.parametrize(
    ("key", "given", "served"),
    [
        ("jobs/j/work/analysis.json", None, "application/json"),
        ("jobs/j/notebooks/01_analyze.ipynb", None, "application/x-ipynb+json"),
        ("jobs/j/notebooks/01_analyze.html", None, "text/html"),
        ("jobs/j/output/poster.jpg", None, "image/jpeg"),
        ("jobs/j/input/song.mp3", None, "audio/mpeg"),
        ("jobs/j/input/song", None, "application/octet-stream"),
        ("jobs/j/input/song.bin", "audio/wav", "audio/wav"),
    ],
)
def test_content_types_are_set(bucket: str, key: str, given: str | None, served: str) -> None:
    open_storage(f"gs://{bucket}").write_bytes(key, b"{}", given)
    assert _stored_object(bucket, key).content_type == served


def test_a_prefix_url_keeps_keys_below_it(bucket: str) -> None:
    storage = open_storage(f"gs://{bucket}/env/staging")
    storage.write_bytes("jobs/a/x.json", b"1")
    storage.copy("jobs/a/x.json", "jobs/b/x.json")
    assert storage.list("jobs/") == ["jobs/a/x.json", "jobs/b/x.json"]
    assert _stored_object(bucket, "env/staging/jobs/a/x.json") is not None
    assert open_storage(f"gs://{bucket}").list("") == [
        "env/staging/jobs/a/x.json",
        "env/staging/jobs/b/x.json",
    ]


def test_missing_objects_are_object_not_found(bucket: str, tmp_path: Path) -> None:
    storage = open_storage(f"gs://{bucket}")
    with pytest.raises(ObjectNotFound, match=re.escape(f"gs://{bucket}/jobs/j/none.json")):
        storage.read_bytes("jobs/j/none.json")
    with pytest.raises(ObjectNotFound):
        storage.copy("jobs/j/none.json", "jobs/j/other.json")
    dest = tmp_path / "dl" / "none.json"
    with pytest.raises(ObjectNotFound):
        storage.download_to("jobs/j/none.json", dest)
    assert list(dest.parent.iterdir()) == []  # neither the file nor a temporary one


def test_a_missing_bucket_is_a_storage_error_that_names_it(gcs_emulator: GcsEmulator) -> None:
    storage = open_storage("gs://no-such-bucket-kapsule")
    with pytest.raises(StorageError, match="no-such-bucket-kapsule") as info:
        storage.write_bytes("jobs/j/x.json", b"{}")
    assert info.value.code == "no_bucket"
    assert not isinstance(info.value, ObjectNotFound)


class _ErrorServer(BaseHTTPRequestHandler):
    """Answers every JSON-API call the way GCS does when it refuses: a JSON error body."""

    status = 403
    message = "kapsule-job@p.iam.gserviceaccount.com does not have storage.objects.get access"

    def _answer(self) -> None:
        body = json.dumps({"error": {"code": self.status, "message": self.message}}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def error_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_ErrorServer]]:
    handler = type("Handler", (_ErrorServer,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_address[1]}")
    yield handler
    server.shutdown()
    server.server_close()


def test_a_refusal_is_a_storage_error_with_googles_message(error_server: type[_ErrorServer]) -> None:
    storage = open_storage("gs://private-bucket")
    with pytest.raises(StorageError, match=r"does not have storage\.objects\.get access") as info:
        storage.read_bytes("jobs/j/x.json")
    assert not isinstance(info.value, ObjectNotFound)
    assert info.value.code == "storage_failed"


def test_a_server_that_stays_unavailable_gives_up_as_a_retryable_storage_error(
    error_server: type[_ErrorServer],
) -> None:
    error_server.status = 503
    error_server.message = "backend unavailable"
    storage = GcsStorage("gs://private-bucket", retry_deadline_s=1.0)
    with pytest.raises(StorageError) as info:
        storage.write_bytes("jobs/j/x.json", b"{}")
    assert info.value.retryable
    assert "jobs/j/x.json" in info.value.message


def test_an_unreachable_server_is_a_storage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    storage = GcsStorage("gs://any-bucket", retry_deadline_s=1.0)
    with pytest.raises(StorageError, match=re.escape("gs://any-bucket/jobs/j/x.json")):
        storage.exists("jobs/j/x.json")
