"""What an uploaded file is, read from its own bytes and ffprobe's view of it (song intake's forensics).

``audio.inspect_song`` runs the intake; this module answers its narrower questions: what a file that
is not audio is (so the refusal can name it), which extension and content type an accepted file is
stored under (never the uploaded name's), and whether the headers promise more audio than the file
holds (a cut-off upload). Only the first few kilobytes and the chunk headers are read here; decoding
stays in ``media``.
"""

from __future__ import annotations

from pathlib import Path

from kapsule import media
from kapsule.core.errors import NotAudio, Undecodable

ACCEPTED = "MP3, WAV, FLAC, OGG (Vorbis or Opus), M4A/AAC, AIFF, or a video (MP4, MOV, MKV, WebM) with sound"
SNIFF_BYTES = 4096

_IMAGE_CODECS = {
    "png": "a PNG image",
    "mjpeg": "a JPEG image",
    "jpeg2000": "a JPEG 2000 image",
    "gif": "a GIF image",
    "webp": "a WebP image",
    "bmp": "a BMP image",
    "tiff": "a TIFF image",
    "svg": "an SVG image",
    "ico": "an icon image",
}

_MAGIC = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
)


_VIDEO_CODECS = {
    "h264": "H.264",
    "hevc": "H.265",
    "vp8": "VP8",
    "vp9": "VP9",
    "av1": "AV1",
    "mpeg4": "MPEG-4",
}


def _codec_name(codec: str) -> str:
    return _VIDEO_CODECS.get(codec, codec)


def read_head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(SNIFF_BYTES)


def sniff_non_media(head: bytes) -> str | None:
    """Name a file ffprobe could not open, when its first bytes say what it is (else None)."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if b"\0" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut by the 4 KB window is still text
            return None
        text = head[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    if text and printable / len(text) > 0.95:
        start = text.lstrip().lower()
        if start.startswith(("<!doctype html", "<html")):
            return "a web page (HTML text)"
        return "a text file"
    return None


def no_audio_message(probed: media.ProbeResult, head: bytes) -> str:
    """Say what a file without an audio stream is: an image, a silent video, or something else."""
    videos = probed.video
    if videos:
        first = videos[0]
        single_frame = probed.format_name.endswith("_pipe") or probed.format_name in {"image2", "gif", "webp"}
        if first.codec in _IMAGE_CODECS and (single_frame or (first.frames or 0) <= 1):
            return f"This file is {_IMAGE_CODECS[first.codec]}, not audio. Kapsule needs a song: {ACCEPTED}."
        if first.codec == "ansi" or probed.format_name == "tty":
            return f"This file is a text file, not audio. Kapsule needs a song: {ACCEPTED}."
        length = f", {probed.duration:.1f} s" if probed.duration else ""
        what = f"{_codec_name(first.codec)}, {first.width}×{first.height}{length}"
        return (
            f"This file is a video ({what}) with no sound track, so there is no song to use. "
            f"Upload a video that has sound, or the song itself: {ACCEPTED}."
        )
    kind = sniff_non_media(head)
    if kind:
        return f"This file is {kind}, not audio. Kapsule needs a song: {ACCEPTED}."
    return f"This {probed.format_name or 'file'} file has no audio stream. Kapsule needs a song: {ACCEPTED}."


def container_type(probed: media.ProbeResult, head: bytes) -> tuple[str, str]:
    """(extension, content type) chosen from what ffprobe found, never from the uploaded name."""
    fmt = probed.format_name
    codec = probed.audio[0].codec
    video = bool(probed.real_video)
    if fmt == "mp3":
        return "mp3", "audio/mpeg"
    if fmt == "wav":
        return "wav", "audio/wav"
    if fmt == "flac":
        return "flac", "audio/flac"
    if fmt == "aiff":
        return "aiff", "audio/aiff"
    if fmt == "aac":
        return "aac", "audio/aac"
    if fmt == "ogg":
        return ("opus", "audio/ogg; codecs=opus") if codec == "opus" else ("ogg", "audio/ogg")
    if fmt.startswith("mov,mp4"):
        if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] == b"qt  ":
            return "mov", "video/quicktime" if video else "audio/quicktime"
        return ("mp4", "video/mp4") if video else ("m4a", "audio/mp4")
    if fmt.startswith("matroska"):
        if b"webm" in head[:64]:  # the EBML DocType
            return "webm", "video/webm" if video else "audio/webm"
        return "mkv", "video/x-matroska" if video else "audio/x-matroska"
    raise NotAudio(
        f"This is a {fmt} file with a {codec} audio stream; Kapsule does not take that container. "
        f"Convert it to one of: {ACCEPTED}.",
    )


# -------------------------------------------------------------------------------- truncation checks


def trustworthy_duration(probed: media.ProbeResult, head: bytes, path: Path) -> float | None:
    """The length the file's headers promise, when they state it rather than guess it from the size.

    FLAC (STREAMINFO), Ogg (last granule), MP4/MOV (sample tables) and MP3 with a Xing/Info/VBRI
    header state it; raw ADTS AAC and header-less MP3 are estimated from the bitrate, and a WAV's
    size-derived length always matches what is left, so those are checked in other ways. Matroska
    gives only the container's length, which a longer video track can stretch.
    """
    fmt = probed.format_name
    stream = probed.audio[0]
    if fmt in {"aac", "wav"}:
        return None
    if fmt == "mp3" and not _mp3_has_length_header(path, head):
        return None
    if stream.duration is not None:
        return stream.duration
    if probed.real_video:
        return None
    return probed.duration


def _mp3_has_length_header(path: Path, head: bytes) -> bool:
    """True if the first MP3 frame carries a Xing, Info or VBRI header (it states the frame count)."""
    offset = 0
    if head[:3] == b"ID3" and len(head) >= 10:
        tag_size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
        offset = 10 + tag_size + (10 if head[5] & 0x10 else 0)
    with path.open("rb") as handle:
        handle.seek(offset)
        block = handle.read(SNIFF_BYTES)
    sync = next((i for i in range(len(block) - 1) if block[i] == 0xFF and block[i + 1] & 0xE0 == 0xE0), None)
    if sync is None:
        return False
    frame_start = block[sync : sync + 200]
    return any(tag in frame_start for tag in (b"Xing", b"Info", b"VBRI"))


def check_wav_complete(path: Path, head: bytes, size: int, stream: media.AudioStream) -> None:
    """Refuse a WAV whose RIFF header promises more sample data than the file holds.

    A WAV cut on a sample boundary decodes without a single FFmpeg error and ffprobe derives its
    length from the file size, so only the ``data`` chunk's declared size betrays it.
    """
    declared, available = _wav_data_sizes(path, head, size)
    if declared <= available:
        return
    bytes_per_second = stream.sample_rate * stream.channels * max(stream.bits_per_sample, 8) / 8
    if bytes_per_second > 0:
        promised, held = declared / bytes_per_second, available / bytes_per_second
        found = f"promises {promised:.1f} s of audio but holds only {held:.1f} s"
    else:
        found = f"promises {declared:,} bytes of audio but holds only {available:,}"
    raise Undecodable(
        f"This WAV file is cut short: its header {found}. Was the upload or export interrupted? "
        "Please upload the complete file.",
    )


def _wav_data_sizes(path: Path, head: bytes, size: int) -> tuple[int, int]:
    """(bytes the ``data`` chunk declares, bytes actually present); (0, 0) when unknown."""
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0, 0  # RF64 / RIFX / odd files: rely on the decoder
    offset = 12
    with path.open("rb") as handle:
        for _ in range(64):
            handle.seek(offset)
            header = handle.read(8)
            if len(header) < 8:
                return 0, 0
            chunk_id, chunk_size = header[:4], int.from_bytes(header[4:], "little")
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):  # streamed WAVs leave the size unset
                    return 0, 0
                return chunk_size, size - offset - 8
            offset += 8 + chunk_size + (chunk_size & 1)
    return 0, 0
