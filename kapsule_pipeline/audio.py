"""The song: intake (probe, validate, decode), and the entry points of its analysis.

Intake answers one question before any money or minutes are spent: can this file be a song for a
music video? Every refusal is an ``AudioError`` whose ``code`` is one of ``not_audio``,
``undecodable``, ``silent``, ``too_short`` or ``too_long`` and whose message says what was found and
what Kapsule accepts. All FFmpeg work goes through ``kapsule_pipeline.media`` (``probe`` and
``decode_audio``); the only bytes read here directly are a file's first few kilobytes, to name what a
non-audio file is and to spot headers that promise more audio than the file holds.

Analysis (tempo, beats, meter, downbeats, sections, energy) lives in ``kapsule_pipeline.analysis``;
``analyze_song`` and ``analyze_samples`` stay importable from here, where callers have always found them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from kapsule_pipeline import media
from kapsule_pipeline.analysis import ANALYSIS_RATE, analyze_samples
from kapsule_pipeline.errors import AudioError, MediaError
from kapsule_pipeline.models import Analysis, AnalysisHints
from kapsule_pipeline.settings import Settings, get_settings

ACCEPTED = "MP3, WAV, FLAC, OGG (Vorbis or Opus), M4A/AAC, AIFF, or a video (MP4, MOV, MKV, WebM) with sound"

# The validation decode: 8 kHz float32 is 32 kB per second per channel (a 10-minute stereo song is
# 38 MB, 5.1 is 115 MB, a second or two of FFmpeg time), yet it exposes every decode error and the
# true length. Channels are kept, not mixed down: a 5.1 downmix can peak above 0 dBFS and a stereo
# one cancels out-of-phase content, and either would mislead the peak and silence checks.
CHECK_RATE = 8000
# A decode this much shorter than the header promised means the file was cut off.
TRUNCATION_TOLERANCE_S = 0.5
TRUNCATION_TOLERANCE_FRACTION = 0.02
SNIFF_BYTES = 4096


class SongInfo(BaseModel):
    """What intake learned about an accepted song (the upload is stored as ``song.{ext}``)."""

    format_name: str
    codec: str
    duration: float  # seconds of decodable audio
    sample_rate: int
    channels: int
    ext: str  # chosen by us from the probed container and codec, never from the file name
    content_type: str
    peak_dbfs: float  # highest sample of any channel, measured on the 8 kHz validation decode
    has_cover_art: bool
    from_video: bool


# ------------------------------------------------------------------------------------------- intake


def inspect_song(path: Path, settings: Settings | None = None) -> SongInfo:
    """Probe and fully decode ``path`` (cheaply), returning its facts or raising ``AudioError``."""
    settings = settings or get_settings()
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"There is no song file at {path.name!r}.", code="undecodable")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(
            f"The file is empty (0 bytes), so there is no song in it. Accepted: {ACCEPTED}.",
            code="undecodable",
        )
    head = _read_head(path)

    try:
        probed = media.probe(path)
    except MediaError as exc:
        kind = _sniff_non_media(head)
        if kind:
            raise AudioError(
                f"This file is {kind}, not audio. Kapsule needs a song: {ACCEPTED}.", code="not_audio"
            ) from exc
        raise AudioError(
            f"This file could not be read as audio or video (ffprobe: {_reason(exc)}). It may be damaged, "
            f"or in a format Kapsule does not know. Accepted: {ACCEPTED}.",
            code="undecodable",
        ) from exc

    if not probed.has_audio:
        raise AudioError(_no_audio_message(probed, head), code="not_audio")
    stream = probed.audio[0]
    ext, content_type = _container(probed, head)

    if probed.format_name == "wav":
        _check_wav_complete(path, head, size, stream)

    promised = stream.duration if stream.duration is not None else probed.duration
    if promised is not None and promised > settings.max_song_seconds:
        raise AudioError(_too_long_message(promised, settings), code="too_long")
    if promised is not None and promised < settings.min_song_seconds:
        raise AudioError(_too_short_message(promised, settings), code="too_short")

    try:
        samples = media.decode_audio(
            path, sample_rate=CHECK_RATE, mono=stream.channels <= 1, timeout=settings.ffmpeg_timeout_s
        )
    except MediaError as exc:
        raise AudioError(
            f"The audio could not be decoded: FFmpeg stopped with {_reason(exc)}. The file is probably "
            "damaged or incomplete; export it again (MP3, WAV or FLAC are safest) and retry.",
            code="undecodable",
        ) from exc
    decoded = samples.size / max(stream.channels, 1) / CHECK_RATE  # interleaved frames
    if samples.size == 0:
        raise AudioError(
            f"The file has a {stream.codec} audio stream but not one sample of it could be decoded. "
            f"Accepted: {ACCEPTED}.",
            code="undecodable",
        )

    expected = _trustworthy_duration(probed, head, path)
    if expected is not None and decoded < expected - max(
        TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * expected
    ):
        raise AudioError(
            f"The file is cut short: its header promises {expected:.1f} s of audio but only {decoded:.1f} s "
            "could be decoded. Was the upload or export interrupted? Please upload the complete file.",
            code="undecodable",
        )

    peak = float(np.max(np.abs(samples)))
    peak_dbfs = 20.0 * math.log10(peak) if peak > 1e-10 else -200.0
    if peak_dbfs < settings.silence_dbfs:
        found = "only digital silence" if peak <= 1e-10 else f"nothing louder than {peak_dbfs:.1f} dBFS"
        raise AudioError(
            f"The song is silent: its {decoded:.1f} s contain {found}, and Kapsule needs a peak above "
            f"{settings.silence_dbfs:.0f} dBFS to hear any music. Check that the right file was exported.",
            code="silent",
        )
    if decoded > settings.max_song_seconds:
        raise AudioError(_too_long_message(decoded, settings), code="too_long")
    if decoded < settings.min_song_seconds:
        raise AudioError(_too_short_message(decoded, settings), code="too_short")

    return SongInfo(
        format_name=probed.format_name,
        codec=stream.codec,
        duration=round(decoded, 3),
        sample_rate=stream.sample_rate,
        channels=stream.channels,
        ext=ext,
        content_type=content_type,
        peak_dbfs=round(peak_dbfs, 2),
        has_cover_art=any(v.attached_pic for v in probed.video),
        from_video=bool(probed.real_video),
    )


def load_audio(path: Path, sample_rate: int = 22050) -> np.ndarray:
    """The song's first audio stream as mono float32 in [-1, 1] at ``sample_rate`` (for analysis)."""
    try:
        samples = media.decode_audio(Path(path), sample_rate=sample_rate, mono=True)
    except MediaError as exc:
        raise AudioError(
            f"The audio could not be decoded: FFmpeg stopped with {_reason(exc)}.", code="undecodable"
        ) from exc
    if samples.size == 0:
        raise AudioError("The file holds no decodable audio samples.", code="undecodable")
    peak = float(np.max(np.abs(samples)))
    if peak > 1.0:  # FFmpeg's 5.1-to-mono mix sums channels and can exceed full scale
        samples = samples / np.float32(peak)
    return samples


def _reason(exc: MediaError) -> str:
    """FFmpeg's last stderr line, quoted, or the MediaError's own summary."""
    lines = [line.strip() for line in exc.stderr.strip().splitlines() if line.strip()]
    text = lines[-1] if lines else exc.message
    text = re.sub(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*", "", text)  # "[mp3 @ 0x55…] " adds nothing for a human
    text = text.replace(str(exc.command[-1]) if exc.command else "\0", "the file")
    return f'"{text[:160]}"'


def _format_time(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _too_long_message(seconds: float, settings: Settings) -> str:
    limit = settings.max_song_seconds
    return (
        f"The song is {_format_time(seconds)} long ({seconds:.0f} s); Kapsule accepts songs up to "
        f"{_format_time(limit)} ({limit:.0f} s). Trim it and upload it again."
    )


def _too_short_message(seconds: float, settings: Settings) -> str:
    return f"The song is {seconds:.1f} s long; Kapsule needs at least {settings.min_song_seconds:g} s."


# ------------------------------------------------------------------------- what is this file, really

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


def _read_head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(SNIFF_BYTES)


def _sniff_non_media(head: bytes) -> str | None:
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


def _no_audio_message(probed: media.ProbeResult, head: bytes) -> str:
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
    kind = _sniff_non_media(head)
    if kind:
        return f"This file is {kind}, not audio. Kapsule needs a song: {ACCEPTED}."
    return f"This {probed.format_name or 'file'} file has no audio stream. Kapsule needs a song: {ACCEPTED}."


def _container(probed: media.ProbeResult, head: bytes) -> tuple[str, str]:
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
    raise AudioError(
        f"This is a {fmt} file with a {codec} audio stream; Kapsule does not take that container. "
        f"Convert it to one of: {ACCEPTED}.",
        code="not_audio",
    )


# -------------------------------------------------------------------------------- truncation checks


def _trustworthy_duration(probed: media.ProbeResult, head: bytes, path: Path) -> float | None:
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


def _check_wav_complete(path: Path, head: bytes, size: int, stream: media.AudioStream) -> None:
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
    raise AudioError(
        f"This WAV file is cut short: its header {found}. Was the upload or export interrupted? "
        "Please upload the complete file.",
        code="undecodable",
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


def analyze_song(path: Path, hints: AnalysisHints | None = None) -> Analysis:
    """Load the song at 22050 Hz mono and analyse it; ``hints`` (BPM, beats per bar, a bar line's
    time) are kept as the musician gave them, and only the local timing is taken from the audio."""
    return analyze_samples(load_audio(path, ANALYSIS_RATE), ANALYSIS_RATE, hints)


__all__ = [
    "ACCEPTED",
    "AnalysisHints",
    "SongInfo",
    "analyze_samples",
    "analyze_song",
    "inspect_song",
    "load_audio",
]
