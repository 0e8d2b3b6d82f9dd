"""``POST /v1/uploads`` hands out a signed PUT URL; ``PUT /v1/uploads/{id}`` is that URL locally.

With ``gs://`` storage the URL is a GCS V4 signed URL and the browser uploads to Cloud Storage
directly; with ``file://`` storage it points back at this API, which checks the HMAC signature,
expiry, Content-Type and byte limit (``kapsule.control.uploads``) exactly as GCS would, and takes
one PUT per URL. Locally, handing out a URL now and then also sweeps away old unused uploads.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from kapsule.api.deps import OwnerDep, SecretDep, SettingsDep, StorageDep, public_base
from kapsule.api.schemas import ApiModel
from kapsule.control import uploads
from kapsule.control.uploads import UploadSink
from kapsule.core.errors import KapsuleError, UploadInterrupted, UploadTooLarge, UploadTypeRefused
from kapsule.core.settings import Settings
from kapsule.infra.storage import Storage

router = APIRouter(prefix="/uploads", tags=["uploads"])
log = logging.getLogger("kapsule.api")

SWEEP_EVERY_S = 600.0
_last_sweep = 0.0
_sweep_lock = threading.Lock()


def _sweep(storage: Storage, ttl_s: int) -> None:
    try:
        gone = uploads.sweep_uploads(storage, ttl_s)
    except KapsuleError as exc:
        log.warning("upload sweep failed: [%s] %s", exc.code, exc.message)
        return
    if gone:
        log.info("deleted %d unused upload(s) older than their TTL", len(gone))


def maybe_sweep(storage: Storage, settings: Settings) -> None:
    """At most every ``SWEEP_EVERY_S``, sweep old uploads in the background (local storage only:
    a bucket's lifecycle rule does it in the cloud)."""
    global _last_sweep
    if not storage.url.startswith("file://"):
        return
    with _sweep_lock:
        if time.monotonic() - _last_sweep < SWEEP_EVERY_S and _last_sweep:
            return
        _last_sweep = time.monotonic()
    threading.Thread(target=_sweep, args=(storage, settings.upload_ttl_s), daemon=True).start()


class UploadCreate(ApiModel):
    filename: str = Field(..., min_length=1, max_length=500)
    content_type: str = Field(..., max_length=200)
    size: int = Field(..., description="Bytes the client will PUT.")
    purpose: uploads.UploadPurpose = Field(
        "song",
        description="A song for a job, a reference image (PNG, JPEG, WebP) for its shots, or a lyrics "
        "file (LRC, SRT, VTT, plain text).",
    )


RESUMABLE_FROM_BYTES = 8 * 1024 * 1024
"""Songs larger than this get a resumable session too (on Cloud Storage), sent in 8 MiB chunks."""


class UploadOut(BaseModel):
    upload_id: str
    url: str
    method: str = "PUT"
    headers: dict[str, str]
    expires_at: datetime
    # A large song on Cloud Storage: also a resumable session to PUT it to in chunks (Content-Range).
    resumable_url: str | None = Field(None, exclude_if=lambda v: v is None)


class UploadDone(BaseModel):
    upload_id: str
    size: int


@router.post("", response_model=UploadOut, status_code=201)
def create_upload(
    body: UploadCreate,
    request: Request,
    owner: OwnerDep,
    settings: SettingsDep,
    storage: StorageDep,
    secret: SecretDep,
) -> UploadOut:
    """A short-lived URL to PUT one song of ``size`` bytes and ``content_type`` to."""
    maybe_sweep(storage, settings)
    ticket = uploads.create_ticket(
        storage,
        owner=owner,
        filename=body.filename,
        content_type=body.content_type,
        size=body.size,
        max_bytes=settings.max_upload_bytes,
        expiry_s=settings.upload_url_expiry_s,
        purpose=body.purpose,
    )
    expires_at = datetime.fromtimestamp(ticket.expires_at, UTC)
    direct = storage.direct_access
    if direct is not None:  # gs://: straight to Cloud Storage
        signed = direct.signed_upload_url(
            uploads.upload_key(ticket.upload_id),
            content_type=ticket.content_type,
            max_bytes=ticket.max_bytes,
            expires=timedelta(seconds=settings.upload_url_expiry_s),
        )
        resumable = None
        if body.purpose == "song" and body.size > RESUMABLE_FROM_BYTES:
            resumable = direct.resumable_upload_session(
                uploads.upload_key(ticket.upload_id),
                content_type=ticket.content_type,
                size=body.size,
                origin=request.headers.get("origin"),
            )
        return UploadOut(
            upload_id=ticket.upload_id,
            url=signed.url,
            headers=signed.headers,
            expires_at=signed.expires_at,
            resumable_url=resumable,
        )
    query = urlencode(
        {"expires": ticket.expires_at, "signature": uploads.sign(secret, ticket, ticket.expires_at)}
    )
    url = f"{public_base(request, settings)}/v1/uploads/{ticket.upload_id}?{query}"
    return UploadOut(
        upload_id=ticket.upload_id,
        url=url,
        headers={"Content-Type": ticket.content_type},
        expires_at=expires_at,
    )


@router.put("/{upload_id}", response_model=UploadDone, name="put_upload")
async def put_upload(
    upload_id: str,
    request: Request,
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(max_length=128)],
    storage: StorageDep,
    secret: SecretDep,
) -> UploadDone:
    """The local signed upload URL: the signature, not an API key, is the permission."""
    ticket = uploads.load_ticket(storage, upload_id)
    uploads.verify(secret, ticket, expires, signature)
    sent_type = request.headers.get("content-type", "")
    if sent_type.split(";")[0].strip().lower() != ticket.content_type.split(";")[0].strip().lower():
        raise UploadTypeRefused(
            f"the upload must be sent with Content-Type {ticket.content_type!r} (it was {sent_type[:60]!r})"
        )
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > ticket.max_bytes:
        raise UploadTooLarge(f"the body is {length} bytes; this URL accepts at most {ticket.max_bytes}")
    with uploads.single_put(storage, upload_id):
        sink = UploadSink(ticket)
        try:
            async for chunk in request.stream():
                sink.write(chunk)
            size = await run_in_threadpool(sink.commit, storage)
        except ClientDisconnect as exc:  # nobody is left to answer: one line in the log, no traceback
            log.warning(
                "upload %s: the client went away after %d bytes (400 upload_interrupted)",
                upload_id,
                sink.size,
            )
            raise UploadInterrupted(
                f"the upload stopped after {sink.size} bytes; PUT the whole file again"
            ) from exc
        finally:
            sink.close()
    return UploadDone(upload_id=upload_id, size=size)
