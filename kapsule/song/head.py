"""Upload intake from the object's head: what the API can learn about a song without downloading it.

On Cloud Run ``/tmp`` is RAM, and an upload may be 300 MB: the API must not download it to check
it. ``inspect_song_head`` reads the first ``HEAD_BYTES`` with one ranged read, runs ffprobe on that
partial file and takes the length from the container's own header and the object's size:

- WAV: the ``data`` chunk's declared size / the byte rate (and a file shorter than it declares is
  refused as cut short, as ``inspect_song`` does);
- FLAC (STREAMINFO), MP4/M4A/MOV with the index at the front, MP3 with a Xing/Info/VBRI header:
  the length ffprobe reads from the header;
- MP3 without such a header, raw AAC (ADTS) and Ogg: the object's size x 8 / the bitrate ffprobe
  measured on the head (``duration_exact`` is False; the job's full decode checks it again);
- a container whose index is not in the head (an MP4 written without "fast start") is read whole
  only up to ``WHOLE_FILE_LIMIT`` bytes, else refused with a message saying how to re-export.

The job still decodes the whole song (``audio.inspect_song``) before analysing it: this is the
API's cheap, memory-bounded gate (peak: ``max(HEAD_BYTES, WHOLE_FILE_LIMIT)`` on disk, no decode).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from kapsule import media
from kapsule.core.errors import AudioError, MediaError, NotAudio, SongTooLong, Undecodable
from kapsule.core.settings import Settings
from kapsule.infra.storage import Storage
from kapsule.song.formats import (
    ACCEPTED,
    _mp3_has_length_header,
    _wav_data_sizes,
    container_type,
    no_audio_message,
    sniff_non_media,
)
from kapsule.song.probe import _reason, check_length

HEAD_BYTES = 4 * 1024 * 1024  # enough for any header, cover art and the first seconds of audio
WHOLE_FILE_LIMIT = 32 * 1024 * 1024  # a head that is not enough is read whole up to this size


@dataclass(frozen=True)
class SongHead:
    """What the head of an upload says (compare ``audio.SongInfo``, which needs the whole file)."""

    format_name: str
    codec: str
    duration: float  # seconds, from the header (or size / bitrate when not ``duration_exact``)
    duration_exact: bool
    sample_rate: int
    channels: int
    ext: str  # chosen from the probed container and codec, never from the file name
    content_type: str
    size: int  # bytes of the whole object
    has_cover_art: bool
    from_video: bool


def inspect_song_head(storage: Storage, key: str, settings: Settings) -> SongHead:
    """Inspect the upload at ``key`` from a ranged read of its head; ``AudioError`` says what is wrong."""
    size = storage.size(key)
    if size == 0:
        raise Undecodable(f"The file is empty (0 bytes), so there is no song in it. Accepted: {ACCEPTED}.")
    if size > settings.max_upload_bytes:
        raise SongTooLong(
            f"The file is {size / 1e6:.0f} MB; Kapsule accepts songs up to "
            f"{settings.max_upload_bytes / 1e6:.0f} MB."
        )
    with tempfile.TemporaryDirectory(prefix="kapsule-head-") as tmp:
        head_file = Path(tmp) / "head"
        head = storage.read_range(key, 0, HEAD_BYTES)
        head_file.write_bytes(head)
        whole = len(head) >= size
        try:
            probed = media.probe(head_file)
        except MediaError as exc:
            if whole or size > WHOLE_FILE_LIMIT:
                raise _unreadable(exc, head, whole) from exc
            head_file.write_bytes(storage.read_range(key, 0, size))  # small: read it whole, still bounded
            whole = True
            try:
                probed = media.probe(head_file)
            except MediaError as again:
                raise _unreadable(again, head, whole) from again
        return _facts(probed, head, head_file, size, whole, settings)


def _unreadable(exc: MediaError, head: bytes, whole: bool) -> AudioError:
    kind = sniff_non_media(head[:4096])
    if kind:
        return NotAudio(f"This file is {kind}, not audio. Kapsule needs a song: {ACCEPTED}.")
    if not whole:
        return Undecodable(
            "This file's format index is not at its start, so it cannot be checked without downloading "
            f"all of it (ffprobe: {_reason(exc)}). Export it again as MP3, WAV or FLAC, or as MP4/M4A with "
            "'fast start' (the index at the front)."
        )
    return Undecodable(
        f"This file could not be read as audio or video (ffprobe: {_reason(exc)}). It may be damaged, or in "
        f"a format Kapsule does not know. Accepted: {ACCEPTED}."
    )


def _facts(
    probed: media.ProbeResult, head: bytes, head_file: Path, size: int, whole: bool, settings: Settings
) -> SongHead:
    if not probed.has_audio:
        raise NotAudio(no_audio_message(probed, head))
    stream = probed.audio[0]
    ext, content_type = container_type(probed, head)
    duration, exact = _duration(probed, head, head_file, size, whole)
    if duration is None:
        raise Undecodable(
            f"The length of this {probed.format_name} file cannot be read from its header. Export it again "
            "as MP3, WAV or FLAC."
        )
    check_length(duration, settings)
    return SongHead(
        format_name=probed.format_name,
        codec=stream.codec,
        duration=round(duration, 3),
        duration_exact=exact,
        sample_rate=stream.sample_rate,
        channels=stream.channels,
        ext=ext,
        content_type=content_type,
        size=size,
        has_cover_art=any(v.attached_pic for v in probed.video),
        from_video=bool(probed.real_video),
    )


def _duration(
    probed: media.ProbeResult, head: bytes, head_file: Path, size: int, whole: bool
) -> tuple[float | None, bool]:
    """(seconds, exact): from the header where it states the length, else from size / bitrate."""
    fmt = probed.format_name
    stream = probed.audio[0]
    if fmt == "wav":
        declared, available = _wav_data_sizes(head_file, head, size)
        rate = stream.sample_rate * stream.channels * max(stream.bits_per_sample, 8) / 8
        if declared and rate:
            if declared > available:
                raise Undecodable(
                    f"This WAV file is cut short: its header promises {declared / rate:.1f} s of audio but "
                    f"holds only {available / rate:.1f} s. Was the upload or export interrupted? Please "
                    "upload the complete file."
                )
            return declared / rate, True
    if whole:
        seconds = stream.duration if stream.duration is not None else probed.duration
        return seconds, seconds is not None
    stated = fmt in {"flac"} or "mp4" in fmt or (fmt == "mp3" and _mp3_has_length_header(head_file, head))
    if stated and (stream.duration is not None or probed.duration is not None):
        return (stream.duration if stream.duration is not None else probed.duration), True
    if probed.bit_rate:  # measured on the head: the whole object at the same rate
        return size * 8 / probed.bit_rate, False
    return None, False
