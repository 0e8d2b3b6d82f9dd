"""Upload tickets and their HMAC signatures, without the API: what the local PUT URL promises."""

from __future__ import annotations

from pathlib import Path

import pytest

from kapsule.control import uploads
from kapsule.core.errors import BadIdempotencyKey
from kapsule.infra.storage import open_storage

SECRET = b"k" * 32


def _ticket(tmp_path: Path, **kw: object) -> tuple[uploads.UploadTicket, object]:
    storage = open_storage(f"file://{tmp_path / 'data'}")
    args = {"owner": "alice", "filename": "song.mp3", "content_type": "audio/mpeg", "size": 1000}
    args.update(kw)
    ticket = uploads.create_ticket(storage, max_bytes=10_000, expiry_s=60, now=1_000_000.0, **args)  # type: ignore[arg-type]
    return ticket, storage


def test_a_signature_verifies_only_for_its_ticket_secret_and_time(tmp_path: Path) -> None:
    ticket, _ = _ticket(tmp_path)
    sig = uploads.sign(SECRET, ticket, ticket.expires_at)
    uploads.verify(SECRET, ticket, ticket.expires_at, sig, now=1_000_030.0)
    with pytest.raises(uploads.UploadExpired):
        uploads.verify(SECRET, ticket, ticket.expires_at, sig, now=1_000_061.0)
    with pytest.raises(uploads.UploadSignatureInvalid):
        uploads.verify(b"other" * 8, ticket, ticket.expires_at, sig, now=1_000_030.0)
    with pytest.raises(uploads.UploadSignatureInvalid):  # a later expiry is tampering, not a new URL
        uploads.verify(SECRET, ticket, ticket.expires_at + 600, sig, now=1_000_030.0)
    bigger = uploads.UploadTicket(**{**ticket.__dict__, "max_bytes": 10_000})
    with pytest.raises(uploads.UploadSignatureInvalid):
        uploads.verify(SECRET, bigger, ticket.expires_at, sig, now=1_000_030.0)


def test_tickets_are_stored_per_owner(tmp_path: Path) -> None:
    ticket, storage = _ticket(tmp_path)
    assert uploads.load_ticket(storage, ticket.upload_id, "alice") == ticket  # type: ignore[arg-type]
    with pytest.raises(uploads.UploadNotFound):
        uploads.load_ticket(storage, ticket.upload_id, "bob")  # type: ignore[arg-type]
    for bad in ("../ticket", "u" + "0" * 24, ""):
        with pytest.raises(uploads.UploadNotFound):
            uploads.load_ticket(storage, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("size", "content_type", "error"),
    [
        (0, "audio/wav", uploads.UploadError),
        (10_001, "audio/wav", uploads.UploadTooLarge),
        (10, "image/png", uploads.UploadTypeRefused),
        (10, "text/plain; charset=utf-8", uploads.UploadTypeRefused),
        (10, "", uploads.UploadTypeRefused),
    ],
)
def test_requests_that_cannot_be_a_song_get_no_url(size: int, content_type: str, error: type) -> None:
    with pytest.raises(error):
        uploads.check_upload_request("x", content_type, size, 10_000)


def test_sink_refuses_a_byte_past_the_announced_size_and_stores_only_complete_bodies(tmp_path: Path) -> None:
    ticket, storage = _ticket(tmp_path, size=10)
    sink = uploads.UploadSink(ticket)
    sink.write(b"12345")
    with pytest.raises(uploads.UploadTooLarge):
        sink.write(b"678901")
    sink.close()
    assert not sink.path.exists()
    assert not storage.exists(uploads.upload_key(ticket.upload_id))  # type: ignore[attr-defined]
    sink = uploads.UploadSink(ticket)
    sink.write(b"0123456789")
    assert sink.commit(storage) == 10  # type: ignore[arg-type]
    sink.close()
    assert storage.read_bytes(uploads.upload_key(ticket.upload_id)) == b"0123456789"  # type: ignore[attr-defined]


def test_idempotent_job_ids_are_stable_per_owner_and_look_like_job_ids() -> None:
    from kapsule.job.record import is_valid_job_id

    a = uploads.idempotent_job_id(SECRET, "alice", "key-1")
    assert a == uploads.idempotent_job_id(SECRET, "alice", "key-1")
    assert a != uploads.idempotent_job_id(SECRET, "bob", "key-1")
    assert a != uploads.idempotent_job_id(SECRET, "alice", "key-2")
    assert is_valid_job_id(a)
    with pytest.raises(BadIdempotencyKey):
        uploads.idempotent_job_id(SECRET, "alice", "x" * 201)
