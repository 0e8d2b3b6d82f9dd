"""V4 signed URLs: uploads straight from the browser to GCS, and downloads of private objects.

A signed PUT binds the Content-Type, an ``x-goog-content-length-range`` header and the precondition
``x-goog-if-generation-match: 0`` into the signature, so the browser can upload exactly one file of
the announced type and at most the allowed size to exactly one key, once, for a few minutes; GCS
refuses anything else. The API hands out the URL and the headers the browser must send.

Who signs depends on where we run:
- a service-account key (``GOOGLE_APPLICATION_CREDENTIALS`` pointing at a key file, the local
  fallback) or impersonated credentials sign locally (``credentials.Signing``);
- on Cloud Run there is no key: the metadata server's credentials give an access token and the
  service account's e-mail, and google-cloud-storage sends the string-to-sign to the IAM
  Credentials ``signBlob`` API (the account needs ``roles/iam.serviceAccountTokenCreator`` on itself).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from kapsule.core.errors import BadSigningRequest, ConfigError
from kapsule.job.record import utcnow

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud.storage import Blob

# Short-lived by default: an upload URL is used within seconds of being handed out.
DEFAULT_UPLOAD_EXPIRY = timedelta(minutes=15)
DEFAULT_DOWNLOAD_EXPIRY = timedelta(hours=1)
MAX_EXPIRY = timedelta(days=7)  # the V4 limit

_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
_LENGTH_RANGE = "x-goog-content-length-range"  # "0,max_bytes": GCS refuses a bigger body
_ONCE = "x-goog-if-generation-match"  # "0": only while no object exists, so the URL works once
# Every header a signed upload's PUT carries: a bucket's CORS rules must let the page send them all.
UPLOAD_HEADERS = ("content-type", _LENGTH_RANGE, _ONCE)
_CONTENT_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")


@dataclass(frozen=True)
class SignedUrl:
    """A URL plus the method and exact headers the client must use (they are part of the signature)."""

    url: str
    method: str
    headers: dict[str, str] = field(default_factory=dict)
    expires_at: datetime = field(default_factory=utcnow)


class UrlSigner:
    """Finds, once, how this process can sign, and refreshes the access token when it expires.

    ``credentials`` defaults to Application Default Credentials, read on first use (not at import,
    and not at all by processes that never sign).
    """

    def __init__(self, credentials: Credentials | None = None) -> None:
        self._credentials = credentials
        self._lock = threading.Lock()

    @classmethod
    def from_key_file(cls, path: str) -> UrlSigner:
        """Sign with a service-account key file (local development without ADC set to it)."""
        from google.oauth2 import service_account

        try:
            # google-auth leaves this classmethod unannotated (google-auth-stubs 0.3.0 does not help)
            load = service_account.Credentials.from_service_account_file
            return cls(load(path, scopes=_SCOPES))  # type: ignore[no-untyped-call]
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the service-account key file {path}: {exc}") from exc

    def signing_kwargs(self) -> dict[str, Any]:
        """The arguments ``Blob.generate_signed_url`` needs to sign with our identity."""
        from google.auth.credentials import Signing

        with self._lock:
            credentials = self._load()
            if isinstance(credentials, Signing):
                return {"credentials": credentials}
            if not credentials.valid:
                from google.auth.transport.requests import Request

                credentials.refresh(Request())  # type: ignore[no-untyped-call]  # unannotated in google-auth
            email = getattr(credentials, "service_account_email", None)
            if not email or email == "default" or not credentials.token:
                raise ConfigError(
                    "these Google credentials cannot sign URLs: use a service account (on Cloud Run the "
                    "job's service account; locally GOOGLE_APPLICATION_CREDENTIALS=<key file> or "
                    "`gcloud auth application-default login --impersonate-service-account=SA`)"
                )
            return {"service_account_email": email, "access_token": credentials.token}

    def _load(self) -> Credentials:
        if self._credentials is None:
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError

            try:
                self._credentials, _ = google.auth.default(scopes=list(_SCOPES))
            except DefaultCredentialsError as exc:
                raise ConfigError(
                    "no Google credentials to sign URLs with: set GOOGLE_APPLICATION_CREDENTIALS to a "
                    "service-account key file, or run on Cloud Run with a service account"
                ) from exc
        return self._credentials


def _check_expiry(expires: timedelta) -> None:
    if not timedelta(seconds=1) <= expires <= MAX_EXPIRY:
        raise BadSigningRequest(f"a signed URL must expire within 1 s to 7 days, not {expires}")


def signed_put_url(
    blob: Blob,
    *,
    content_type: str,
    max_bytes: int,
    signer: UrlSigner,
    expires: timedelta = DEFAULT_UPLOAD_EXPIRY,
) -> SignedUrl:
    """A V4 PUT URL for ``blob``; the upload must carry the returned headers verbatim."""
    _check_expiry(expires)
    if not _CONTENT_TYPE.match(content_type):
        raise BadSigningRequest(f"bad content type {content_type!r}")
    if max_bytes < 1:
        raise BadSigningRequest(f"max_bytes must be positive, not {max_bytes}")
    # The precondition "no object yet" makes the URL work once: a second PUT gets 412, the song stays.
    signed_headers = {_LENGTH_RANGE: f"0,{max_bytes}", _ONCE: "0"}
    issued = utcnow()
    url = blob.generate_signed_url(
        version="v4",
        method="PUT",
        expiration=expires,
        content_type=content_type,
        headers=dict(signed_headers),  # the library adds "Host" to the dict it is given
        **signer.signing_kwargs(),
    )
    return SignedUrl(
        url=url,
        method="PUT",
        headers={"Content-Type": content_type, **signed_headers},
        expires_at=issued + expires,
    )


def signed_get_url(
    blob: Blob,
    *,
    signer: UrlSigner,
    expires: timedelta = DEFAULT_DOWNLOAD_EXPIRY,
    filename: str | None = None,
) -> SignedUrl:
    """A V4 GET URL for ``blob``; ``filename`` asks the browser to save it (Content-Disposition)."""
    _check_expiry(expires)
    disposition = None
    if filename is not None:
        safe = re.sub(r"[^\w.\- ]", "_", filename) or "download"
        disposition = f'attachment; filename="{safe}"'
    issued = utcnow()
    url = blob.generate_signed_url(
        version="v4",
        method="GET",
        expiration=expires,
        response_disposition=disposition,
        **signer.signing_kwargs(),
    )
    return SignedUrl(url=url, method="GET", headers={}, expires_at=issued + expires)
