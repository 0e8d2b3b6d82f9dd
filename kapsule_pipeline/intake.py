"""Where a submitted job's song comes from: a file on this machine (CLI) or an upload (API).

Both are judged by their content (``audio.inspect_song``) before any job exists, and copied into the
job's ``input/song.{ext}`` only after its record is created, with the extension intake chose from
what ffprobe found (never from the user's file name).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kapsule_pipeline.audio import SongInfo, inspect_song
from kapsule_pipeline.errors import InputFileMissing
from kapsule_pipeline.settings import Settings
from kapsule_pipeline.storage import Storage


class SongSource(Protocol):
    """A song handed to ``JobService.submit``."""

    @property
    def name(self) -> str: ...

    def inspect(self, settings: Settings) -> SongInfo:
        """Check the song by its content (an ``AudioError`` says why it cannot be used)."""
        ...

    def store(self, storage: Storage, key: str, content_type: str) -> None:
        """Copy the song to ``key`` of the job's storage."""
        ...


@dataclass(frozen=True)
class LocalSong:
    """A song file on this machine (the CLI)."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def inspect(self, settings: Settings) -> SongInfo:
        if not self.path.is_file():
            raise InputFileMissing(f"there is no file at {self.path}")
        return inspect_song(self.path, settings)

    def store(self, storage: Storage, key: str, content_type: str) -> None:
        storage.upload_from(self.path, key, content_type=content_type)


@dataclass(frozen=True)
class StoredSong:
    """A song already in our storage (an API upload at ``key``)."""

    storage: Storage
    key: str
    filename: str

    @property
    def name(self) -> str:
        return self.filename

    def inspect(self, settings: Settings) -> SongInfo:
        local = self.storage.local_path(self.key)
        if local is not None:
            return inspect_song(local, settings)
        with tempfile.TemporaryDirectory(prefix="kapsule-check-") as tmp:
            return inspect_song(self.storage.download_to(self.key, Path(tmp) / "song"), settings)

    def store(self, storage: Storage, key: str, content_type: str) -> None:
        storage.copy(self.key, key)
