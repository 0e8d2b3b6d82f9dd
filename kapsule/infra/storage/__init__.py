"""Storage backends, picked once from a URL: ``file://`` (local folder) or ``gs://`` (Cloud Storage)."""

from __future__ import annotations

from kapsule.core.errors import ConfigError
from kapsule.infra.storage.base import CorsRule, DirectAccess, Storage


def open_storage(url: str) -> Storage:
    """Return the backend for ``url``; clients are built lazily by the backend itself."""
    if url.startswith("file://"):
        from kapsule.infra.storage.local import LocalStorage

        return LocalStorage(url)
    if url.startswith("gs://"):
        from kapsule.infra.storage.gcs import GcsStorage

        return GcsStorage(url)
    raise ConfigError(f"unsupported storage URL {url!r}: use file://PATH or gs://BUCKET")


__all__ = ["CorsRule", "DirectAccess", "Storage", "open_storage"]
