"""The Storage protocol: the one seam through which every job file is read and written.

Keys are relative '/'-separated paths from ``layout.JobLayout``. Backends (``file://`` here,
``gs://`` later) implement the same few methods, in the spirit of papermill's I/O handlers; media
work needs local files, so ``download_to``/``upload_from`` move whole files between a backend and
the job's local workspace.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable


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
