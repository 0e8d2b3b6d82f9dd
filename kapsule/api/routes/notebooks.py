"""A job's executed stage notebooks as HTML, shown so that nothing in them can reach the studio.

A notebook is the job's own output, and its outputs may carry HTML a prompt put there. So:
- the studio never opens one as a ``blob:`` URL of its own origin (which drops every header below);
  it asks ``GET /v1/jobs/{id}/notebooks/{name}/link`` for a short-lived signed URL
  (``/v1/notebooks/{id}/{name}?expires=…&signature=…``, HMAC with the server's secret, no key or
  cookie needed) and shows it in an ``<iframe sandbox>`` without ``allow-same-origin`` or scripts;
- every notebook response carries ``Content-Security-Policy: sandbox`` (an opaque origin even when
  opened directly) with ``default-src 'none'``: no script runs and nothing loads from a CDN (the
  HTML is rendered without require.js or MathJax anyway, ``pipeline._save_notebook``); images are
  inline ``data:`` URLs and styles inline, so plots and tables still show.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from kapsule.api.deps import OwnerDep, SecretDep, ServiceDep, SettingsDep, StorageDep, public_base
from kapsule.core import links
from kapsule.core.errors import JobNotFound, ObjectNotFound
from kapsule.infra.storage import Storage
from kapsule.job.layout import NOTEBOOK_NAMES, JobLayout
from kapsule.job.record import is_valid_job_id

router = APIRouter(tags=["jobs"])

PURPOSE = "notebook"
NOTEBOOK_CSP = (
    "sandbox; default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


class NotebookLink(BaseModel):
    url: str
    expires_at: datetime


def _check_name(name: str) -> None:
    if name not in NOTEBOOK_NAMES:
        raise ObjectNotFound(
            f"there is no notebook {name[:40]!r}; the notebooks are {', '.join(NOTEBOOK_NAMES)}"
        )


def _html(storage: Storage, job_id: str, name: str) -> HTMLResponse:
    try:
        body = storage.read_bytes(JobLayout(job_id).notebook(name, "html"))
    except ObjectNotFound:
        raise ObjectNotFound(f"notebook {name} of job {job_id} has not run yet") from None
    headers = {"Content-Security-Policy": NOTEBOOK_CSP, "Cache-Control": "private, no-store"}
    return HTMLResponse(body, headers=headers)


@router.get("/jobs/{job_id}/notebooks/{name}", response_class=HTMLResponse)
def job_notebook(
    job_id: str, name: str, owner: OwnerDep, service: ServiceDep, storage: StorageDep
) -> HTMLResponse:
    """One executed stage notebook as HTML (its cells, outputs, timings and any error), sandboxed."""
    service.get(owner, job_id)
    _check_name(name)
    return _html(storage, job_id, name)


@router.get("/jobs/{job_id}/notebooks/{name}/link", response_model=NotebookLink)
def notebook_link(
    job_id: str,
    name: str,
    request: Request,
    owner: OwnerDep,
    settings: SettingsDep,
    service: ServiceDep,
    secret: SecretDep,
) -> NotebookLink:
    """A short-lived signed URL of the notebook, for a sandboxed frame (no key or cookie in it)."""
    service.get(owner, job_id)
    _check_name(name)
    expires = int(time.time()) + settings.notebook_link_expiry_s
    query = urlencode({"expires": expires, "signature": links.sign(secret, PURPOSE, (job_id, name), expires)})
    return NotebookLink(
        url=f"{public_base(request, settings)}/v1/notebooks/{job_id}/{name}?{query}",
        expires_at=datetime.fromtimestamp(expires, UTC),
    )


@router.get("/notebooks/{job_id}/{name}", response_class=HTMLResponse, name="signed_notebook")
def signed_notebook(
    job_id: str,
    name: str,
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(max_length=128)],
    storage: StorageDep,
    secret: SecretDep,
) -> HTMLResponse:
    """The notebook behind a signed link: the signature, not a key, is the permission."""
    if not is_valid_job_id(job_id):
        raise JobNotFound(f"there is no job {job_id[:40]!r}")
    _check_name(name)
    links.verify(secret, PURPOSE, (job_id, name), expires, signature)
    return _html(storage, job_id, name)
