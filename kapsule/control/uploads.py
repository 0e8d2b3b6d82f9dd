"""Uploads: a song goes straight to storage through a short-lived, signed, size-bounded PUT URL.

In the cloud the URL is a GCS V4 signed URL (``storage.signing``). Locally the API itself accepts the
PUT, and this module is what makes that safe: the API stores a small *ticket* (owner, announced
content type, byte limit, expiry) under ``uploads/{upload_id}/ticket.json`` and hands out a URL whose
``signature`` is an HMAC over the ticket and the expiry. A PUT is accepted only with an untampered
signature, before the expiry, with the signed Content-Type and at most the signed number of bytes,
exactly what GCS enforces for its own signed URLs, so the studio page does not care which one it got.

Nothing here trusts the file's name or announced type beyond the first sanity check: the song is
judged by its content (``audio.inspect_song``) when a job is created from it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from kapsule.core.errors import (
    BadIdempotencyKey,
    ObjectNotFound,
    UploadAlreadyUsed,
    UploadError,
    UploadExpired,
    UploadNotFound,
    UploadSignatureInvalid,
    UploadTooLarge,
    UploadTypeRefused,
)
from kapsule.core.links import signature_matches
from kapsule.infra.storage import Storage
from kapsule.job.params import MAX_LYRICS_BYTES

UPLOAD_PREFIX = "uploads/"
MAX_IDEMPOTENCY_KEY = 200
_UPLOAD_ID = re.compile(r"^u[0-9a-f]{24}$")
_CONTENT_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")
# Browsers label some songs oddly (.ogg → application/ogg, unknown → octet-stream); the content check
# at job creation is what decides, this only turns away what is plainly not a song (image/png…).
_GENERIC_TYPES = frozenset({"application/ogg", "application/octet-stream"})


def new_upload_id() -> str:
    """Unguessable and a safe single path segment, like job ids."""
    return "u" + secrets.token_hex(12)


def is_valid_upload_id(upload_id: str) -> bool:
    return bool(_UPLOAD_ID.match(upload_id))


def upload_key(upload_id: str) -> str:
    """Where the uploaded bytes live (private storage)."""
    _check_id(upload_id)
    return f"{UPLOAD_PREFIX}{upload_id}/data"


def ticket_key(upload_id: str) -> str:
    _check_id(upload_id)
    return f"{UPLOAD_PREFIX}{upload_id}/ticket.json"


def _check_id(upload_id: str) -> None:
    if not is_valid_upload_id(upload_id):
        raise UploadNotFound(f"there is no upload {upload_id[:40]!r}")


# What an upload is for: checked when its URL is asked for, and again when a job uses the upload.
UploadPurpose = Literal["song", "reference_image", "lyrics"]


@dataclass(frozen=True)
class UploadTicket:
    """What was promised when the upload URL was handed out; the signature covers all of it."""

    upload_id: str
    owner: str
    filename: str
    content_type: str
    max_bytes: int
    expires_at: int  # Unix seconds
    purpose: UploadPurpose = "song"

    def payload(self, expires: int) -> bytes:
        fields = (self.upload_id, self.owner, self.content_type, str(self.max_bytes), str(expires))
        return "\n".join(("kapsule-upload-v1", *fields)).encode()


def human_bytes(n: int) -> str:
    """A byte count as people read limits: ``300 MiB`` for 300 × 2**20 (not "315 MB"), else decimal MB."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    return f"{n / (1 << 20):.1f} MiB" if n % 1_000_000 else f"{n // 1_000_000} MB"


IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})


def check_upload_request(
    filename: str, content_type: str, size: int, max_bytes: int, purpose: UploadPurpose = "song"
) -> None:
    """Refuse, before any URL is issued, an upload that is too big, empty, or plainly not a song
    (or, for a reference image, not a PNG, JPEG or WebP image; its bytes are checked at job creation)."""
    if purpose == "reference_image":
        from kapsule.generation.references import MAX_REFERENCE_BYTES

        if content_type.split(";")[0].strip().lower() not in IMAGE_TYPES:
            raise UploadTypeRefused(
                f"{filename[:80]!r} is {content_type[:60]!r}, not a PNG, JPEG or WebP image"
            )
        max_bytes = min(max_bytes, MAX_REFERENCE_BYTES)
    if purpose == "lyrics":  # any text type: the job service reads the bytes and names a bad line
        max_bytes = min(max_bytes, MAX_LYRICS_BYTES)
    what = {"reference_image": "reference images", "lyrics": "lyrics files"}.get(purpose, "songs")
    if size <= 0:
        raise UploadError(f"the file {filename[:80]!r} is empty (0 bytes); choose the song file itself")
    if size > max_bytes:
        raise UploadTooLarge(
            f"the file is {human_bytes(size)}; Kapsule accepts {what} up to {human_bytes(max_bytes)}"
        )
    kind = content_type.split(";")[0].strip().lower()
    if purpose != "song":
        return
    if not _CONTENT_TYPE.match(kind) or not (kind.startswith(("audio/", "video/")) or kind in _GENERIC_TYPES):
        raise UploadTypeRefused(
            f"{filename[:80]!r} is {content_type[:60] or 'of no type'}, not a song: upload an audio file "
            "(MP3, WAV, FLAC, OGG, M4A, AIFF) or a video with sound"
        )


def sign(secret: bytes, ticket: UploadTicket, expires: int) -> str:
    return hmac.new(secret, ticket.payload(expires), hashlib.sha256).hexdigest()


def verify(
    secret: bytes, ticket: UploadTicket, expires: int, signature: str, now: float | None = None
) -> None:
    """Raise unless ``signature`` was made by us for this ticket and ``expires`` has not passed.

    The signature is checked first, so a URL whose expiry was edited is "tampered", not "expired".
    """
    if not signature_matches(sign(secret, ticket, expires), signature):
        raise UploadSignatureInvalid("the upload URL's signature does not match; ask for a new upload URL")
    if (time.time() if now is None else now) > expires:
        raise UploadExpired("the upload URL has expired; ask for a new upload URL and upload again")


def create_ticket(
    storage: Storage,
    *,
    owner: str,
    filename: str,
    content_type: str,
    size: int,
    max_bytes: int,
    expiry_s: int,
    now: float | None = None,
    purpose: UploadPurpose = "song",
) -> UploadTicket:
    """Check the request, then record the ticket of a new upload (the URL is signed from it)."""
    check_upload_request(filename, content_type, size, max_bytes, purpose)
    ticket = UploadTicket(
        upload_id=new_upload_id(),
        owner=owner,
        filename=filename[:200],
        content_type=content_type,
        max_bytes=size,  # what was announced, not the global limit: no bait-and-switch to a bigger file
        expires_at=int((time.time() if now is None else now) + expiry_s),
        purpose=purpose,
    )
    storage.write_bytes(ticket_key(ticket.upload_id), json.dumps(asdict(ticket)).encode(), "application/json")
    return ticket


def load_ticket(storage: Storage, upload_id: str, owner: str | None = None) -> UploadTicket:
    """The ticket of ``upload_id``; ``UploadNotFound`` if absent or (when given) another owner's."""
    try:
        ticket = UploadTicket(**json.loads(storage.read_bytes(ticket_key(upload_id))))
    except ObjectNotFound:
        raise UploadNotFound(f"there is no upload {upload_id!r}; upload the song again") from None
    if owner is not None and ticket.owner != owner:
        raise UploadNotFound(f"there is no upload {upload_id!r}; upload the song again")
    return ticket


class UploadSink:
    """Receives an upload body chunk by chunk into a temporary file, refusing a byte past the limit.

    The body lands in storage only once it is complete (``commit``), so a dropped connection never
    leaves half a song under the upload's key.
    """

    def __init__(self, ticket: UploadTicket, tmp_dir: Path | None = None) -> None:
        self.ticket = ticket
        self.size = 0
        if tmp_dir is not None:
            tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=tmp_dir)
        self.path = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.ticket.max_bytes:
            raise UploadTooLarge(
                f"the upload is larger than the {self.ticket.max_bytes} bytes announced; "
                "ask for a new upload URL with the file's real size"
            )
        self._file.write(chunk)

    def commit(self, storage: Storage) -> int:
        """Store the complete body under the upload's key; returns its size."""
        self._file.close()
        if self.size == 0:
            raise UploadError("the upload was empty; send the song file as the request body")
        storage.upload_from(
            self.path, upload_key(self.ticket.upload_id), content_type=self.ticket.content_type
        )
        return self.size

    def close(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


_putting: set[str] = set()
_putting_lock = threading.Lock()


@contextmanager
def single_put(storage: Storage, upload_id: str) -> Iterator[None]:
    """Hold the one PUT an upload URL allows: refused once a song is stored or while one is arriving.

    GCS signed URLs get the same rule from the ``x-goog-if-generation-match: 0`` header signed into
    them (``storage.signing``); this is the local API's half.
    """
    key = upload_key(upload_id)
    with _putting_lock:
        if upload_id in _putting or storage.exists(key):
            raise UploadAlreadyUsed(
                f"upload {upload_id} already has its song; an upload URL works once (ask for a new one)"
            )
        _putting.add(upload_id)
    try:
        yield
    finally:
        with _putting_lock:
            _putting.discard(upload_id)


def sweep_uploads(storage: Storage, ttl_s: float, now: float | None = None) -> list[str]:
    """Delete uploads whose URL expired more than ``ttl_s`` ago (unused, refused, or already copied).

    A job keeps its own copy of the song (``input/``), so an upload is only needed until its job is
    created. Locally the API runs this now and then; in the cloud the private bucket's lifecycle rule
    on ``uploads/`` does the same job (``deploy/deploy.sh``). Returns the upload ids deleted.
    """
    now = time.time() if now is None else now
    by_id: dict[str, list[str]] = {}
    for key in storage.list(UPLOAD_PREFIX):
        upload_id = key[len(UPLOAD_PREFIX) :].split("/", 1)[0]
        if is_valid_upload_id(upload_id):
            by_id.setdefault(upload_id, []).append(key)
    deleted = []
    for upload_id, keys in by_id.items():
        try:
            expires_at = int(json.loads(storage.read_bytes(ticket_key(upload_id)))["expires_at"])
        except (ObjectNotFound, ValueError, KeyError, TypeError):
            expires_at = 0  # no readable ticket: nothing can use these bytes
        if expires_at + ttl_s < now:
            for key in keys:
                storage.delete(key)
            deleted.append(upload_id)
    return deleted


def idempotent_job_id(secret: bytes, owner: str, key: str) -> str:
    """The job id an ``Idempotency-Key`` maps to: the same owner and key give the same job.

    A keyed hash rather than a lookup table: the id is as unguessable as a random one, and no extra
    index is needed in either status store.
    """
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise BadIdempotencyKey(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters",
        )
    digest = hmac.new(secret, f"job\0{owner}\0{key}".encode(), hashlib.sha256).hexdigest()
    return "j" + digest[:20]
