"""Where a submitted job's song comes from: a file on this machine (CLI) or an upload (API).

Both are judged by their content before any job exists, and copied into the job's
``input/song.{ext}`` only after its record is created, with the extension intake chose from what
ffprobe found (never from the user's file name). A local file is decoded whole
(``audio.inspect_song``). An upload is judged from one ranged read of its head
(``audio_head.inspect_song_head``): on Cloud Run ``/tmp`` is RAM and an upload may be 300 MB, so the
API never downloads it; when that head is the whole file (up to ``audio_head.HEAD_BYTES``) it is also
decoded whole, as the CLI does, since that costs no more memory. The job decodes the whole song
again before analysing it, so what the head cannot show (a silent song) still fails early.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kapsule.core.errors import InputFileMissing
from kapsule.core.settings import Settings
from kapsule.infra.storage import Storage
from kapsule.song.head import HEAD_BYTES, SongHead, inspect_song_head
from kapsule.song.probe import SongInfo, inspect_song


class SongFacts(Protocol):
    """What submission needs to know about a song (``audio.SongInfo`` and ``audio_head.SongHead`` are)."""

    @property
    def duration(self) -> float: ...

    @property
    def ext(self) -> str: ...

    @property
    def content_type(self) -> str: ...


class SongSource(Protocol):
    """A song handed to ``JobService.submit``."""

    @property
    def name(self) -> str: ...

    def inspect(self, settings: Settings) -> SongFacts:
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

    def inspect(self, settings: Settings) -> SongHead | SongInfo:
        """From the head (one ranged read); a song that fits in the head is also decoded whole."""
        head = inspect_song_head(self.storage, self.key, settings)
        if head.size > HEAD_BYTES:
            return head
        with tempfile.TemporaryDirectory(prefix="kapsule-check-") as tmp:
            whole = Path(tmp) / f"song.{head.ext}"
            whole.write_bytes(self.storage.read_range(self.key, 0, head.size))
            return inspect_song(whole, settings)

    def store(self, storage: Storage, key: str, content_type: str) -> None:
        storage.copy(self.key, key)
