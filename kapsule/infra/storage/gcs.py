"""``gs://`` storage: Google Cloud Storage through google-cloud-storage.

Why google-cloud-storage and not gcsfs: it is Google's own client, it signs V4 URLs (with a key or
through the IAM Credentials API), does resumable uploads with retries, honours
``STORAGE_EMULATOR_HOST`` by itself (anonymous credentials, so the same code runs against the
emulator), and it needs no event loop or fsspec cache semantics; gcsfs adds those and stalls
against the emulator unless told about HNS buckets.

``gs://BUCKET`` or ``gs://BUCKET/PREFIX``: keys are object names below the optional prefix. An
object is written in one request (≤ 8 MiB) or as a resumable upload in ``CHUNK_SIZE`` chunks, and
only becomes visible when complete, so GCS gives the same "old or new, never half" guarantee as
the local backend's ``os.replace``. Every Google error is translated at this boundary:
a missing object is ``ObjectNotFound``, anything else ``StorageError`` with the API's message.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload
from urllib.parse import urlparse

from kapsule.core.errors import (
    BucketNotFound,
    ConfigError,
    InvalidParameter,
    KapsuleError,
    ObjectNotFound,
    StorageError,
)
from kapsule.infra.storage.base import CorsRule
from kapsule.infra.storage.keys import validate_key
from kapsule.infra.storage.signing import (
    DEFAULT_DOWNLOAD_EXPIRY,
    DEFAULT_UPLOAD_EXPIRY,
    SignedUrl,
    UrlSigner,
    signed_get_url,
    signed_put_url,
)

if TYPE_CHECKING:
    from google.cloud.storage import Blob, Bucket, Client

# Resumable uploads move data in chunks of this size (a multiple of 256 KiB, as GCS requires); a
# failed chunk is retried alone instead of restarting a 300 MB upload.
CHUNK_SIZE = 8 * 1024 * 1024
# How long one call may keep retrying transient errors (429, 5xx, connection resets) in total.
RETRY_DEADLINE_S = 120.0
# Seconds to connect / to wait for each response of one HTTP request.
REQUEST_TIMEOUT_S: tuple[float, float] = (10.0, 120.0)

# Content types mimetypes does not know but our files have.
_EXTRA_TYPES = {".ipynb": "application/x-ipynb+json", ".json": "application/json"}

T = TypeVar("T")


def parse_gs_url(url: str) -> tuple[str, str]:
    """``gs://bucket/some/prefix`` → (``bucket``, ``some/prefix/``); the prefix may be empty."""
    parsed = urlparse(url)
    if parsed.scheme != "gs" or not parsed.netloc:
        raise ConfigError(f"not a gs://BUCKET URL: {url!r}")
    if parsed.query or parsed.fragment:
        raise ConfigError(f"a gs:// storage URL takes no query or fragment: {url!r}")
    prefix = parsed.path.strip("/")
    if prefix:
        validate_key(prefix)
        prefix += "/"
    return parsed.netloc, prefix


def guess_content_type(key: str) -> str:
    """The Content-Type GCS serves the object with, from its extension (browsers rely on it)."""
    suffix = Path(key).suffix.lower()
    return _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


class GcsStorage:
    """Storage in a GCS bucket (optionally below a prefix). The client is built on first use."""

    def __init__(
        self,
        url: str,
        *,
        client: Client | None = None,
        signer: UrlSigner | None = None,
        retry_deadline_s: float = RETRY_DEADLINE_S,
    ) -> None:
        self.url = url
        self.bucket_name, self.prefix = parse_gs_url(url)
        self._client = client
        self._signer = signer
        self._retry_deadline_s = retry_deadline_s
        self._lock = threading.Lock()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"GcsStorage(gs://{self.bucket_name}/{self.prefix})"

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """This thread's client: it sits on a ``requests`` session, which threads should not share
        (shot generation uploads from several threads at once)."""
        if self._client is not None:
            return self._client
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = _make_client()
        return client

    @property
    def bucket(self) -> Bucket:
        return self.client.bucket(self.bucket_name)

    @property
    def _retry(self) -> Any:
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_timeout(self._retry_deadline_s)

    def _name(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _blob(self, key: str) -> Blob:
        return self.bucket.blob(self._name(key), chunk_size=CHUNK_SIZE)

    @overload
    def _call(
        self, action: str, key: str, fn: Callable[[], T], *, not_found: Literal["object", "bucket"] = "object"
    ) -> T: ...
    @overload
    def _call(
        self, action: str, key: str, fn: Callable[[], object], *, not_found: Literal["ignore"]
    ) -> None: ...
    def _call(self, action: str, key: str, fn: Callable[[], T], *, not_found: str = "object") -> T | None:
        """Run one Google call and translate its errors into ours (the only ``except`` for GCS).

        A 404 means a missing object when reading (``ObjectNotFound``), is fine when deleting
        (``not_found="ignore"``), and can only mean a missing bucket when writing or listing
        (``not_found="bucket"``): a misconfiguration, so a ``StorageError`` that names the bucket.
        """
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc
        from requests import exceptions as req_exc

        where = f"gs://{self.bucket_name}/{self.prefix}{key}"
        try:
            return fn()
        except KapsuleError:
            raise
        except gexc.NotFound as exc:
            if not_found == "ignore":
                return None
            if not_found == "bucket":
                raise BucketNotFound(
                    f"could not {action} {where}: bucket {self.bucket_name!r} does not exist",
                ) from exc
            raise ObjectNotFound(f"no such object in storage: {where}") from exc
        except gexc.GoogleAPICallError as exc:
            raise StorageError(f"could not {action} {where}: {exc.code} {exc.message}") from exc
        except gexc.RetryError as exc:
            raise StorageError(f"could not {action} {where}: gave up retrying ({exc.cause})") from exc
        except (auth_exc.GoogleAuthError, req_exc.RequestException, OSError) as exc:
            raise StorageError(f"could not {action} {where}: {exc}") from exc

    # -- the Storage protocol ---------------------------------------------------------------------

    def read_bytes(self, key: str) -> bytes:
        blob = self._blob(key)
        data: bytes = self._call(
            "read", key, lambda: blob.download_as_bytes(timeout=REQUEST_TIMEOUT_S, retry=self._retry)
        )
        return data

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        blob = self._blob(key)
        self._call(
            "write",
            key,
            lambda: blob.upload_from_string(
                data,
                content_type=content_type or guess_content_type(key),
                timeout=REQUEST_TIMEOUT_S,
                retry=self._retry,
            ),
            not_found="bucket",
        )

    def exists(self, key: str) -> bool:
        blob = self._blob(key)
        found: bool = self._call(
            "check", key, lambda: blob.exists(timeout=REQUEST_TIMEOUT_S, retry=self._retry)
        )
        return found

    def list(self, prefix: str) -> list[str]:
        def names() -> list[str]:
            blobs = self.client.list_blobs(
                self.bucket_name, prefix=self.prefix + prefix, timeout=REQUEST_TIMEOUT_S, retry=self._retry
            )
            return sorted(blob.name[len(self.prefix) :] for blob in blobs)

        return self._call("list", prefix, names, not_found="bucket")

    def delete(self, key: str) -> None:
        blob = self._blob(key)
        self._call(
            "delete",
            key,
            lambda: blob.delete(timeout=REQUEST_TIMEOUT_S, retry=self._retry),
            not_found="ignore",
        )

    def copy(self, src: str, dst: str) -> None:
        """Server-side copy (``rewrite``), looping for objects GCS copies in several calls."""
        source, target = self._blob(src), self._blob(dst)

        def rewrite() -> None:
            token, _, _ = target.rewrite(source, timeout=REQUEST_TIMEOUT_S, retry=self._retry)
            while token is not None:
                token, _, _ = target.rewrite(
                    source, token=token, timeout=REQUEST_TIMEOUT_S, retry=self._retry
                )

        self._call("copy", src, rewrite)

    def download_to(self, key: str, dest: Path) -> Path:
        blob = self._blob(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{dest.name}-", dir=dest.parent)
        os.close(fd)
        try:
            self._call(
                "download",
                key,
                lambda: blob.download_to_filename(tmp, timeout=REQUEST_TIMEOUT_S, retry=self._retry),
            )
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return dest

    def upload_from(self, src: Path, key: str, content_type: str | None = None) -> None:
        """Files over 8 MiB go as a resumable upload in ``CHUNK_SIZE`` chunks (each retried alone)."""
        blob = self._blob(key)
        self._call(
            "upload",
            key,
            lambda: blob.upload_from_filename(
                str(src),
                content_type=content_type or guess_content_type(key),
                timeout=REQUEST_TIMEOUT_S,
                retry=self._retry,
            ),
            not_found="bucket",
        )

    def open_read(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream the object in ranged requests of ``chunk_size`` bytes (the final video's download)."""
        blob = self._blob(key)
        reader = self._call("open", key, lambda: blob.open("rb", chunk_size=chunk_size, retry=self._retry))
        try:
            while chunk := self._call("read", key, lambda: reader.read(chunk_size)):
                yield chunk
        finally:
            reader.close()

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """One ranged GET (``Range: bytes=start-end``): the API inspects an upload from its head."""
        if start < 0 or length < 0:
            raise InvalidParameter(f"bad range {start}+{length} for {key}")
        if length == 0:
            return b""
        blob = self._blob(key)
        end = start + length - 1  # inclusive, as HTTP ranges are
        data: bytes = self._call(
            "read",
            key,
            lambda: blob.download_as_bytes(
                start=start, end=end, timeout=REQUEST_TIMEOUT_S, retry=self._retry
            ),
        )
        return data

    def size(self, key: str) -> int:
        blob = self._blob(key)
        self._call("stat", key, lambda: blob.reload(timeout=REQUEST_TIMEOUT_S, retry=self._retry))
        return int(blob.size or 0)

    def local_path(self, key: str) -> Path | None:
        return None

    @property
    def direct_access(self) -> GcsStorage:
        """Browsers reach the bucket itself through V4 signed URLs (this object is the ``DirectAccess``)."""
        return self

    # -- DirectAccess: URLs a browser can use directly --------------------------------------------

    @property
    def bucket_url(self) -> str:
        return f"gs://{self.bucket_name}"

    @property
    def signer(self) -> UrlSigner:
        with self._lock:
            if self._signer is None:
                self._signer = UrlSigner()
            return self._signer

    def signed_upload_url(
        self, key: str, *, content_type: str, max_bytes: int, expires: timedelta = DEFAULT_UPLOAD_EXPIRY
    ) -> SignedUrl:
        """A V4 PUT URL for one upload straight from the browser; type and size limit are signed."""
        blob = self._blob(key)
        return self._call(
            "sign",
            key,
            lambda: signed_put_url(
                blob, content_type=content_type, max_bytes=max_bytes, expires=expires, signer=self.signer
            ),
        )

    def resumable_upload_session(self, key: str, *, content_type: str, size: int, origin: str | None) -> str:
        """Started by this service with its own credentials; the session URL is the browser's only
        capability, bound to this object, type and exact size (Cloud Storage refuses more bytes)."""
        blob = self._blob(key)
        session: str = self._call(
            "start a resumable upload of",
            key,
            lambda: blob.create_resumable_upload_session(
                content_type=content_type, size=size, origin=origin, timeout=REQUEST_TIMEOUT_S
            ),
            not_found="bucket",
        )
        return session

    def signed_download_url(
        self, key: str, *, expires: timedelta = DEFAULT_DOWNLOAD_EXPIRY, filename: str | None = None
    ) -> SignedUrl:
        """A V4 GET URL for a private object (``filename`` makes browsers save it under that name)."""
        blob = self._blob(key)
        return self._call(
            "sign", key, lambda: signed_get_url(blob, expires=expires, filename=filename, signer=self.signer)
        )

    def cors_rules(self) -> tuple[CorsRule, ...]:
        """Read fresh from the bucket (reading them needs ``storage.buckets.get``)."""
        bucket = self.bucket
        self._call(
            "read the CORS rules of",
            "",
            lambda: bucket.reload(timeout=REQUEST_TIMEOUT_S, retry=self._retry),
            not_found="bucket",
        )
        return tuple(
            CorsRule(
                origins=tuple(rule.get("origin", ())),
                methods=tuple(rule.get("method", ())),
                response_headers=tuple(rule.get("responseHeader", ())),
            )
            for rule in bucket.cors or []
        )

    def public_url(self, key: str) -> str:
        """The unsigned URL of an object in a public bucket (only the delivery bucket is public)."""
        url: str = self._blob(key).public_url
        return url


def _make_client() -> Client:
    """A client from Application Default Credentials (anonymous under ``STORAGE_EMULATOR_HOST``)."""
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import storage

    try:
        return storage.Client()
    except DefaultCredentialsError as exc:
        raise ConfigError(
            "no Google credentials for gs:// storage: run `gcloud auth application-default login`, "
            "set GOOGLE_APPLICATION_CREDENTIALS, or run on Cloud Run with a service account"
        ) from exc


def api_endpoint() -> str:
    """The host this process's storage clients talk to: the emulator named by the library's own
    ``STORAGE_EMULATOR_HOST`` when set, else Google's (``doctor`` names it when it does not answer)."""
    from google.cloud.storage import _helpers

    return _helpers._get_storage_emulator_override() or f"https://{_helpers._TRUE_DEFAULT_STORAGE_HOST}"
