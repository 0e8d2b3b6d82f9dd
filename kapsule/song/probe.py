"""The song: intake (probe, validate, decode), and the entry points of its analysis.

Intake answers one question before any money or minutes are spent: can this file be a song for a
music video? Every refusal is an ``AudioError`` whose ``code`` is one of ``not_audio``,
``undecodable``, ``silent``, ``too_short`` or ``too_long`` and whose message says what was found and
what Kapsule accepts. All FFmpeg work goes through ``kapsule.media`` (``probe`` and ``scan_audio``,
a decode that keeps only a count and a peak and stops at the longest song accepted); the only bytes
read directly are a file's first few kilobytes and its chunk headers, in ``audio_formats``, to name
what a non-audio file is, choose the stored extension and spot headers that promise more audio than
the file holds.

Analysis (tempo, beats, meter, downbeats, sections, energy) lives in ``kapsule.analysis``;
``analyze_song`` joins the two for a file on disk.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from kapsule import media
from kapsule.analysis.common import ANALYSIS_RATE
from kapsule.core.errors import (
    MediaError,
    NotAudio,
    SilentSong,
    SongTooLong,
    SongTooShort,
    Undecodable,
)
from kapsule.core.settings import Settings
from kapsule.job.artifacts import Analysis, AnalysisHints
from kapsule.song.formats import (
    ACCEPTED,
    check_wav_complete,
    container_type,
    no_audio_message,
    read_head,
    sniff_non_media,
    trustworthy_duration,
)

# The validation decode: 8 kHz float32 (a second or two of FFmpeg time for a 10-minute song) exposes
# every decode error and the true length; it is streamed, so its memory does not grow with the song.
# Channels are kept, not mixed down: a 5.1 downmix can peak above 0 dBFS and a stereo one cancels
# out-of-phase content, and either would mislead the peak and silence checks.
CHECK_RATE = 8000
# A decode this much shorter than the header promised means the file was cut off.
TRUNCATION_TOLERANCE_S = 0.5
TRUNCATION_TOLERANCE_FRACTION = 0.02


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


def inspect_song(path: Path, settings: Settings) -> SongInfo:
    """Probe ``path`` and decode it (at a low rate, streamed, never past the longest song accepted),
    returning its facts or raising ``AudioError``."""
    path = Path(path)
    if not path.is_file():
        raise Undecodable(f"There is no song file at {path.name!r}.")
    size = path.stat().st_size
    if size == 0:
        raise Undecodable(
            f"The file is empty (0 bytes), so there is no song in it. Accepted: {ACCEPTED}.",
        )
    head = read_head(path)

    try:
        probed = media.probe(path)
    except MediaError as exc:
        kind = sniff_non_media(head)
        if kind:
            raise NotAudio(f"This file is {kind}, not audio. Kapsule needs a song: {ACCEPTED}.") from exc
        raise Undecodable(
            f"This file could not be read as audio or video (ffprobe: {_reason(exc)}). It may be damaged, "
            f"or in a format Kapsule does not know. Accepted: {ACCEPTED}.",
        ) from exc

    if not probed.has_audio:
        raise NotAudio(no_audio_message(probed, head))
    stream = probed.audio[0]
    ext, content_type = container_type(probed, head)

    if probed.format_name == "wav":
        check_wav_complete(path, head, size, stream)

    promised = stream.duration if stream.duration is not None else probed.duration
    if promised is not None:
        check_length(promised, settings)

    try:
        scan = media.scan_audio(
            path,
            sample_rate=CHECK_RATE,
            channels=max(stream.channels, 1),
            max_seconds=settings.max_song_seconds,
            timeout=settings.ffmpeg_timeout_s,
        )
    except MediaError as exc:
        raise undecodable(exc) from exc
    decoded, peak_dbfs = judge_scan(scan, stream.codec, trustworthy_duration(probed, head, path), settings)

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


def undecodable(exc: MediaError) -> Undecodable:
    """The refusal of a song FFmpeg could not decode to its end."""
    return Undecodable(
        f"The audio could not be decoded: FFmpeg stopped with {_reason(exc)}. The file is probably "
        "damaged or incomplete; export it again (MP3, WAV or FLAC are safest) and retry.",
    )


def judge_scan(
    scan: media.AudioScan, codec: str, expected: float | None, settings: Settings
) -> tuple[float, float]:
    """(seconds, peak dBFS) of a song whose bounded decode is ``scan``, or the ``AudioError`` that
    refuses it: longer than accepted (decoding stopped at the limit), nothing decoded, cut short of
    the ``expected`` length its header promised, silent, or shorter than accepted."""
    if not scan.complete:
        raise SongTooLong(_too_long_message(scan.seconds, settings, at_least=True))
    decoded = scan.seconds
    if scan.samples == 0:
        raise Undecodable(
            f"The file has a {codec} audio stream but not one sample of it could be decoded. "
            f"Accepted: {ACCEPTED}.",
        )
    if expected is not None and decoded < expected - max(
        TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * expected
    ):
        raise Undecodable(
            f"The file is cut short: its header promises {expected:.1f} s of audio but only {decoded:.1f} s "
            "could be decoded. Was the upload or export interrupted? Please upload the complete file.",
        )
    peak = scan.peak
    peak_dbfs = 20.0 * math.log10(peak) if peak > 1e-10 else -200.0
    if peak_dbfs < settings.silence_dbfs:
        found = "only digital silence" if peak <= 1e-10 else f"nothing louder than {peak_dbfs:.1f} dBFS"
        raise SilentSong(
            f"The song is silent: its {decoded:.1f} s contain {found}, and Kapsule needs a peak above "
            f"{settings.silence_dbfs:.0f} dBFS to hear any music. Check that the right file was exported.",
        )
    check_length(decoded, settings)
    return decoded, peak_dbfs


def load_audio(path: Path, sample_rate: int = 22050) -> np.ndarray:
    """The song's first audio stream as mono float32 in [-1, 1] at ``sample_rate`` (for analysis)."""
    try:
        samples = media.decode_audio(Path(path), sample_rate=sample_rate, mono=True)
    except MediaError as exc:
        raise Undecodable(f"The audio could not be decoded: FFmpeg stopped with {_reason(exc)}.") from exc
    if samples.size == 0:
        raise Undecodable("The file holds no decodable audio samples.")
    peak = float(np.max(np.abs(samples)))
    if peak > 1.0:  # FFmpeg's 5.1-to-mono mix sums channels and can exceed full scale
        samples = samples / np.float32(peak)
    return samples


def _reason(exc: MediaError) -> str:
    """FFmpeg's last stderr line, quoted, or the MediaError's own summary."""
    lines = [line.strip() for line in exc.stderr.strip().splitlines() if line.strip()]
    text = lines[-1] if lines else exc.message
    text = re.sub(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*", "", text)  # "[mp3 @ 0x55…] " adds nothing for a human
    for arg in (exc.command or [])[1:]:  # the server's paths (the input, a temporary copy) are none of theirs
        if "/" in arg or "\\" in arg:
            text = text.replace(arg, "the file")
    return f'"{text[:160]}"'


def _format_time(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def check_length(seconds: float, settings: Settings) -> None:
    """Refuse a song longer or shorter than the deployment accepts (what its header promises, what
    decodes, or what the head of an upload says: one rule and one wording for all three)."""
    if seconds > settings.max_song_seconds:
        raise SongTooLong(_too_long_message(seconds, settings))
    if seconds < settings.min_song_seconds:
        raise SongTooShort(_too_short_message(seconds, settings))


def _too_long_message(seconds: float, settings: Settings, *, at_least: bool = False) -> str:
    limit = settings.max_song_seconds
    if at_least:  # decoding stopped at the limit: the true length is unknown, and not needed
        return (
            f"The song is longer than {_format_time(limit)} ({limit:.0f} s), the longest Kapsule accepts: "
            "decoding stopped there. Trim it and upload it again."
        )
    return (
        f"The song is {_format_time(seconds)} long ({seconds:.0f} s); Kapsule accepts songs up to "
        f"{_format_time(limit)} ({limit:.0f} s). Trim it and upload it again."
    )


def _too_short_message(seconds: float, settings: Settings) -> str:
    return f"The song is {seconds:.1f} s long; Kapsule needs at least {settings.min_song_seconds:g} s."


def analyze_song(path: Path, hints: AnalysisHints | None = None) -> Analysis:
    """Load the song at 22050 Hz mono and analyse it; ``hints`` (BPM, beats per bar, a bar line's
    time) are kept as the musician gave them, and only the local timing is taken from the audio."""
    from kapsule.analysis import analyze_samples  # the analysis's imports only where a song is analysed

    return analyze_samples(load_audio(path, ANALYSIS_RATE), ANALYSIS_RATE, hints)


__all__ = [
    "ACCEPTED",
    "AnalysisHints",
    "SongInfo",
    "analyze_song",
    "inspect_song",
    "load_audio",
]
