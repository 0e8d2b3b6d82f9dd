"""Status stores, picked once from a URL: ``sqlite://`` (embedded) or ``firestore://`` (cloud)."""

from __future__ import annotations

from kapsule.core.errors import ConfigError
from kapsule.infra.status.base import StatusStore


def open_status_store(url: str) -> StatusStore:
    if url.startswith("sqlite://"):
        from kapsule.infra.status.sqlite import SqliteStatusStore

        return SqliteStatusStore(url)
    if url.startswith("firestore://"):
        from kapsule.infra.status.firestore import FirestoreStatusStore

        return FirestoreStatusStore(url)
    raise ConfigError(f"unsupported status URL {url!r}: use sqlite:///PATH or firestore://PROJECT/COLLECTION")


__all__ = ["StatusStore", "open_status_store"]
