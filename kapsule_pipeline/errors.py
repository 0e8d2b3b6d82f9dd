"""One exception family for the whole product.

Every error a user can meet is a ``KapsuleError`` with a stable machine ``code`` (used by the API's
JSON errors, the job record and the CLI's exit line) and a message written for a human. Only the
CLI, the job entrypoint and the API turn these into exit codes or HTTP statuses; library code raises.
Backend errors are wrapped at the boundary (``raise StorageError(...) from exc``) so callers never
need to know which backend they talk to.
"""

from __future__ import annotations


class KapsuleError(Exception):
    """Root of every error Kapsule raises on purpose.

    ``retryable`` tells the job entrypoint whether a new attempt could succeed (a network blip) or
    not (a corrupt song): the exit code of a Cloud Run task depends on it.
    """

    code: str = "internal"
    http_status: int = 500
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ConfigError(KapsuleError):
    """A setting is missing or malformed (raised by settings and backend factories)."""

    code = "bad_config"


class InvalidParameter(KapsuleError):
    """A user-supplied parameter (aspect ratio, max shots, budget…) is out of range."""

    code = "invalid_parameter"
    http_status = 422


class AudioError(KapsuleError):
    """The song cannot be used. ``code`` says why: not_audio, undecodable, silent, too_short, too_long."""

    code = "bad_audio"
    http_status = 422


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


class StorageError(KapsuleError):
    """A storage backend failed (raised by ``storage``)."""

    code = "storage_failed"
    retryable = True


class ObjectNotFound(StorageError):
    """A key does not exist in storage."""

    code = "not_found"
    http_status = 404
    retryable = False


class JobNotFound(KapsuleError):
    """No job with that id (or not one the caller may see)."""

    code = "job_not_found"
    http_status = 404


class InvalidTransition(KapsuleError):
    """A job record write would break the state machine (e.g. reopen a finished job)."""

    code = "invalid_transition"
    http_status = 409


class JobCancelled(KapsuleError):
    """The job was cancelled while it ran; the runner stops between stages or shots."""

    code = "cancelled"


class StageFailed(KapsuleError):
    """A notebook stage failed; the message names the notebook and the failing cell."""

    code = "stage_failed"


class GenerationError(KapsuleError):
    """A video or prompt generator failed for a reason a retry will not fix."""

    code = "generation_failed"


class BudgetExceeded(KapsuleError):
    """Generating the shots would cost more than the job's ``budget_usd``."""

    code = "budget_exceeded"
    http_status = 402


class LaunchError(KapsuleError):
    """The launcher could not start, find or cancel a job execution (raised by ``launch``)."""

    code = "launch_failed"
    http_status = 503
    retryable = True


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

    def __init__(self, message: str, *, line: int) -> None:
        super().__init__(f"line {line}: {message}")
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
