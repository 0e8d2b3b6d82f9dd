"""Storage key validation, shared by every backend so a key is accepted or refused the same way.

Keys come from ``layout.JobLayout`` and are relative '/'-separated paths. A key that could climb out
of its folder on disk (``..``), address the root (``/x``), or mean two different objects on two
backends (``a//b`` is one file locally but its own object name in GCS) is refused everywhere.
"""

from __future__ import annotations

from kapsule.core.errors import BadStorageKey


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a safe relative key, else raise ``InvalidParameter(bad_key)``."""
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or "\x00" in key
        or any(part in ("", ".", "..") for part in key.split("/"))
    ):
        raise BadStorageKey(f"bad storage key {key!r}")
    return key
