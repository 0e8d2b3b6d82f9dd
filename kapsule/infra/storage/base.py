"""The Storage protocol: the one seam through which every job file is read and written.

Keys are relative '/'-separated paths from ``layout.JobLayout``. Backends (``file://``, ``gs://``)
implement the same few methods, in the spirit of papermill's I/O handlers; media work needs local
files, so ``download_to``/``upload_from`` move whole files between a backend and the job's local
workspace.

What only some backends can do is declared here too, as a member that is ``None`` where the backend
cannot (as httpx's ``_transports/base.py`` declares its whole interface), so no caller probes an
object with ``getattr`` and mypy sees every ``None`` case: ``Storage.direct_access`` is how a
browser reaches objects without the API in between (signed URLs, and the CORS rules that admit
the browser's page), which ``gs://`` offers and ``file://`` does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

from kapsule.infra.storage.signing import DEFAULT_DOWNLOAD_EXPIRY, DEFAULT_UPLOAD_EXPIRY, SignedUrl


@dataclass(frozen=True)
class CorsRule:
    """One CORS rule of a bucket: which pages (``origins``) may use which ``methods``, and the
    headers a cross-origin request may carry (``response_headers``, GCS's ``responseHeader``)."""

    origins: tuple[str, ...]
    methods: tuple[str, ...]
    response_headers: tuple[str, ...]


class DirectAccess(Protocol):
    """URLs a browser uses to reach a store's objects itself: uploads go straight to the bucket and
    finished videos download from it, without passing through the API."""

    @property
    def bucket_url(self) -> str:
        """``gs://BUCKET``: what holds the CORS rules (a storage URL's prefix has none of its own)."""

    def signed_upload_url(
        self, key: str, *, content_type: str, max_bytes: int, expires: timedelta = DEFAULT_UPLOAD_EXPIRY
    ) -> SignedUrl:
        """A URL to PUT one object of ``content_type`` and at most ``max_bytes`` to ``key``, once."""

    def resumable_upload_session(self, key: str, *, content_type: str, size: int, origin: str | None) -> str:
        """A session URL a browser PUTs one object of exactly ``size`` bytes to in chunks (each with
        its ``Content-Range``), which can be resumed where it stopped. ``origin`` is
        the page's, which the session then answers with CORS headers."""

    def signed_download_url(
        self, key: str, *, expires: timedelta = DEFAULT_DOWNLOAD_EXPIRY, filename: str | None = None
    ) -> SignedUrl:
        """A URL to GET ``key`` (``filename`` makes browsers save it under that name)."""

    def cors_rules(self) -> tuple[CorsRule, ...]:
        """The bucket's CORS rules as they are now: a browser's PUT is cross-origin and preflighted."""


@runtime_checkable
class Storage(Protocol):
    url: str

    def read_bytes(self, key: str) -> bytes:
        """The object's content; ``ObjectNotFound`` if absent."""

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Write atomically: a reader sees the old object or the new one, never half of one."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""

    def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are not an error."""

    def copy(self, src: str, dst: str) -> None: ...

    def download_to(self, key: str, dest: Path) -> Path:
        """Copy the object to a local file (atomically) and return its path."""

    def upload_from(self, src: Path, key: str, content_type: str | None = None) -> None: ...

    def open_read(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream the object in chunks (for downloads of the final video)."""

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from offset ``start`` (fewer at the end): one ranged read, so a
        process can look at a large object's head without holding or downloading all of it."""

    def size(self, key: str) -> int:
        """The object's size in bytes; ``ObjectNotFound`` if absent."""

    def local_path(self, key: str) -> Path | None:
        """A local path to the object if the backend is the local file system, else ``None``."""

    @property
    def direct_access(self) -> DirectAccess | None:
        """How browsers reach objects without the API, or ``None`` when they cannot: then the API
        receives the uploads and serves the downloads itself."""
