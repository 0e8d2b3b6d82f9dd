"""Errors in the song, the lyrics and the media tools (FFmpeg) that read them."""

from __future__ import annotations

from kapsule.core.errors._base import KapsuleError

# ------------------------------------------------------------------------------------- the song


class AudioError(KapsuleError):
    """The song cannot be used; the subclass says why."""

    code = "bad_audio"
    http_status = 422


class NotAudio(AudioError):
    code = "not_audio"


class Undecodable(AudioError):
    code = "undecodable"


class SilentSong(AudioError):
    code = "silent"


class SongTooShort(AudioError):
    code = "too_short"


class SongTooLong(AudioError):
    code = "too_long"


# ------------------------------------------------------------------------------ media and tools


class MediaError(KapsuleError):
    """FFmpeg or ffprobe failed. Holds the command and the tail of stderr (raised by ``media``)."""

    code = "media_failed"

    def __init__(self, message: str, *, command: list[str] | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.command = command or []
        self.stderr = stderr


class ToolMissing(KapsuleError):
    """A required program (ffmpeg, ffprobe) is not installed."""

    code = "tool_missing"


# ------------------------------------------------------------------------------------- lyrics


class LyricsError(KapsuleError):
    """Lyrics cannot be used. Each subclass names one reason; nothing is made from refused lyrics."""

    code = "bad_lyrics"
    http_status = 422


class LyricsEmpty(LyricsError):
    """The lyrics file or text holds no sung line."""

    code = "lyrics_empty"


class LyricsEncoding(LyricsError):
    """The lyrics are not UTF-8 or UTF-16 text (or not text at all)."""

    code = "lyrics_encoding"


class LyricsMalformed(LyricsError):
    """A line of an LRC, SRT or VTT file cannot be read; ``line`` is its 1-based number."""

    code = "lyrics_malformed"

    def __init__(self, message: str, *, line: int = 0) -> None:
        # ``line`` 0: rebuilt from a notebook kernel's report (``by_name``), the text already says it
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


class LyricsPastEnd(LyricsError):
    """A timed line starts after the song has ended (lyrics for another edit of the song?)."""

    code = "lyrics_past_end"


class LyricsTooLong(LyricsError):
    """More lyrics than the song can hold: more words or lines than anyone could sing in it."""

    code = "lyrics_too_long"


class LyricsAlignmentFailed(LyricsError):
    """Plain lyrics could not be placed on the song (no singing found, or an aligner's answer refused)."""

    code = "lyrics_alignment_failed"
