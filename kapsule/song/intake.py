"""Where a submitted job's song comes from: a file on this machine (CLI) or an upload (API).

Both are judged by their content before any job exists, and copied into the job's
``input/song.{ext}`` only after its record is created, with the extension intake chose from what
ffprobe found (never from the user's file name). A local file is decoded (``probe.inspect_song``:
streamed, and stopped at the longest song accepted). An upload is first judged from one ranged read of
its head (``head.inspect_song_head``). A header's length is a claim, not a fact: an 18 KB FLAC can
state a minute and hold three hours. Only PCM WAV's is exact (its data chunk's size / its byte rate),
so every other upload is also decoded the same bounded way before a job exists: one that fits in
``head.WHOLE_FILE_LIMIT`` from a temporary copy of that size (seekable, as an MP4 with its index at
the end needs), a larger one streamed from storage into FFmpeg, chunk by chunk (on Cloud Run ``/tmp`` is
RAM and an upload may be 300 MB, so the API never stores it). The job decodes the song again before
analysing it, so what a WAV's head cannot show (a silent song) still fails early.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kapsule import media
from kapsule.core.errors import InputFileMissing, MediaError
from kapsule.core.settings import Settings
from kapsule.infra.storage import Storage
from kapsule.song.head import HEAD_BYTES, WHOLE_FILE_LIMIT, SongHead, inspect_song_head
from kapsule.song.probe import CHECK_RATE, SongInfo, inspect_song, judge_scan, undecodable


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
        """From the head (one ranged read); unless it is a PCM WAV larger than the head, also decoded
        (bounded: never past the longest song accepted, never stored whole)."""
        head = inspect_song_head(self.storage, self.key, settings)
        if head.size > HEAD_BYTES and head.format_name == "wav" and head.codec.startswith("pcm_"):
            return head  # PCM: its data chunk's size is its length, and the head checked it
        if head.size <= WHOLE_FILE_LIMIT:
            with tempfile.TemporaryDirectory(prefix="kapsule-check-") as tmp:
                whole = Path(tmp) / f"song.{head.ext}"
                whole.write_bytes(self.storage.read_range(self.key, 0, head.size))
                return inspect_song(whole, settings)
        try:
            scan = media.scan_audio(
                self.storage.open_read(self.key),
                sample_rate=CHECK_RATE,
                channels=max(head.channels, 1),
                max_seconds=settings.max_song_seconds,
                timeout=settings.ffmpeg_timeout_s,
            )
        except MediaError as exc:
            raise undecodable(exc) from exc
        expected = head.duration if head.duration_exact else None
        decoded, _ = judge_scan(scan, head.codec, expected, settings)
        return dataclasses.replace(head, duration=round(decoded, 3), duration_exact=True)

    def store(self, storage: Storage, key: str, content_type: str) -> None:
        storage.copy(self.key, key)
