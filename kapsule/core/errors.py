"""One exception family for the whole product, and the one registry of its error codes.

Every error a user can meet is a ``KapsuleError`` subclass declared in this module, with one fixed,
stable machine ``code`` per class (used by the API's JSON errors, the job record and the CLI's exit
line) and a message written for a human. A new kind of failure is a new subclass here, never a
free-form code string at a raise site: that is what lets ``ERRORS`` document every code (the API's
OpenAPI responses list them) and lets the pipeline turn an exception raised inside a notebook kernel,
of which papermill only reports the class name and text, back into the same class (``by_name``).

Only the CLI, the job entrypoint and the API turn these into exit codes or HTTP statuses; library
code raises. Backend errors are wrapped at the boundary (``raise StorageError(...) from exc``) so
callers never need to know which backend they talk to.
"""

from __future__ import annotations

from typing import ClassVar


class KapsuleError(Exception):
    """Root of every error Kapsule raises on purpose.

    ``retryable`` tells the job entrypoint whether a new attempt could succeed (a network blip) or
    not (a corrupt song): the exit code of a Cloud Run task depends on it. ``stage`` (and, for a
    failed notebook, ``notebook`` and ``cell``) say where in a job it happened, once known.
    """

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.stage: str | None = None
        self.notebook: str | None = None
        self.cell: int | None = None

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


# ------------------------------------------------------------------------------- configuration


class ConfigError(KapsuleError):
    """A setting is missing or malformed (raised by settings and backend factories)."""

    code = "bad_config"


class OpenServerRefused(ConfigError):
    """Serving with no API keys on an address other people can reach."""

    code = "open_server"


# ------------------------------------------------------------------------------- bad parameters


class InvalidParameter(KapsuleError):
    """A user-supplied parameter (aspect ratio, max shots, budget…) is out of range."""

    code = "invalid_parameter"
    http_status = 422


class UnknownModel(InvalidParameter):
    """A video or prompt model this deployment does not know, or may not use (for video: not in the
    capability table, ``video_models``, for this mode, or past a retirement date Google documents)."""

    code = "unknown_model"


class UnsupportedVideoRequest(InvalidParameter):
    """A video request (or a job's params) outside what the model accepts: Google would answer 400."""

    code = "unsupported_video_request"


class InputFileMissing(InvalidParameter):
    """A file named on the command line (the song, a reference image) does not exist."""

    code = "file_not_found"


class EmptyPrompt(InvalidParameter):
    code = "empty_prompt"


class PromptTooLong(InvalidParameter):
    code = "prompt_too_long"


class NothingToReroll(InvalidParameter):
    """A re-roll that would ask for exactly the shot that exists."""

    code = "nothing_to_reroll"


class BadIdempotencyKey(InvalidParameter):
    code = "bad_idempotency_key"


class BadStorageKey(InvalidParameter):
    """A storage key that would escape its folder or is not one we build."""

    code = "bad_key"


class BadJobId(InvalidParameter):
    code = "bad_job_id"


class UnknownNotebook(InvalidParameter):
    code = "bad_notebook"


class BadCursor(InvalidParameter):
    """A page cursor this server did not hand out."""

    code = "bad_cursor"


class BadExecutionName(InvalidParameter):
    """An execution name the configured launcher did not make."""

    code = "bad_execution"


class BadSigningRequest(InvalidParameter):
    """A signed URL asked for with an impossible expiry, size or content type (a caller's bug)."""

    code = "bad_signing_request"


class IdempotencyConflict(InvalidParameter):
    """An Idempotency-Key sent again with a different request: it would silently replay another job."""

    code = "idempotency_conflict"
    http_status = 409


class JobExists(InvalidParameter):
    """A record with this id exists already (two creators raced for one Idempotency-Key)."""

    code = "job_exists"
    http_status = 409


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


# ------------------------------------------------------------------------------ storage, status


class StorageError(KapsuleError):
    """A storage backend failed (raised by ``storage``)."""

    code = "storage_failed"
    retryable = True


class BucketNotFound(StorageError):
    code = "no_bucket"
    retryable = False


class ObjectNotFound(StorageError):
    """A key does not exist in storage."""

    code = "not_found"
    http_status = 404
    retryable = False


class StatusStoreError(StorageError):
    """The job-record store (Firestore) failed."""

    code = "status_failed"


class StatusContention(StatusStoreError):
    """Too many writers on one job record at once; a retry normally gets through."""

    code = "status_contention"


# -------------------------------------------------------------------------------- jobs, review


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


class JobCrashed(KapsuleError):
    """The job's process ended without recording how (killed, out of memory)."""

    code = "job_crashed"


class ShotNotFound(KapsuleError):
    """The shot number is not in the job's storyboard."""

    code = "shot_not_found"
    http_status = 404


class StoryboardNotReady(KapsuleError):
    """The job has no storyboard yet (it is still analysing the song, or failed before)."""

    code = "storyboard_not_ready"
    http_status = 409


class VideoNotReady(KapsuleError):
    """The job has not succeeded, so it has no video yet."""

    code = "video_not_ready"
    http_status = 409


# ---------------------------------------------------------------------------------- the stages


class StageFailed(KapsuleError):
    """A notebook stage failed; the message names the notebook and the failing cell."""

    code = "stage_failed"


class StageInputMissing(StageFailed):
    """A stage was run before the stage whose outputs it reads."""

    code = "missing_input"


class ShotsMissing(StageFailed):
    """A shot has no finished clip when the stage needs one."""

    code = "shots_missing"


class KernelFailed(StageFailed):
    """The notebook kernel died or never started: worth another attempt."""

    code = "kernel_failed"
    retryable = True


class GenerationError(KapsuleError):
    """A video or prompt generator failed for a reason a retry will not fix."""

    code = "generation_failed"


class GoogleRequestRefused(GenerationError):
    """Google answered 400/401/403/404: a retry cannot fix it; the message says what to change."""

    code = "google_refused"


class BudgetExceeded(KapsuleError):
    """Generating the shots would cost more than the job's ``budget_usd``."""

    code = "budget_exceeded"
    http_status = 402


class LaunchError(KapsuleError):
    """The launcher could not start, find or cancel a job execution (raised by ``launch``)."""

    code = "launch_failed"
    http_status = 503
    retryable = True


class ModelNotAllowed(KapsuleError):
    """A model this owner may not use on this deployment (``KAPSULE_ALLOWED_MODELS``)."""

    code = "model_not_allowed"
    http_status = 403


class DailyCapReached(BudgetExceeded):
    """The owner's jobs of today may already spend the daily cap (``KAPSULE_OWNER_DAILY_CAP_USD``)."""

    code = "daily_cap_reached"


class DeploymentNotReady(ConfigError):
    """The API's preflight (``doctor``) found a problem that would make every job fail: none is accepted."""

    code = "deployment_not_ready"
    http_status = 503


# ------------------------------------------------------------------------------------- uploads


class UploadError(KapsuleError):
    """An upload request or upload body is not acceptable (the message says why)."""

    code = "bad_upload"
    http_status = 400


class UploadNotFound(UploadError):
    """No such upload, or not one of the caller's (the two are indistinguishable on purpose)."""

    code = "upload_not_found"
    http_status = 404


class UploadSignatureInvalid(UploadError):
    code = "bad_signature"
    http_status = 403


class UploadExpired(UploadError):
    code = "upload_expired"
    http_status = 403


class UploadTooLarge(UploadError):
    code = "upload_too_large"
    http_status = 413


class UploadTypeRefused(UploadError):
    code = "unsupported_media_type"
    http_status = 415


class UploadIncomplete(UploadError):
    """The ticket exists but no file has been PUT yet."""

    code = "upload_incomplete"
    http_status = 409


# ------------------------------------------------------------------------------------ the API


class Unauthorized(KapsuleError):
    """No API key, or one we do not know (only raised when keys are configured)."""

    code = "unauthorized"
    http_status = 401


class EndpointNotFound(KapsuleError):
    """A path under /v1 that is no endpoint."""

    code = "no_such_endpoint"
    http_status = 404


# ------------------------------------------------------------------------ serving, access, limits


class HostNotAllowed(KapsuleError):
    """Open mode only answers loopback ``Host`` headers (a DNS-rebinding page sends its own name)."""

    code = "host_not_allowed"
    http_status = 421


class RequestTooLarge(KapsuleError):
    """A request body over the server's limit, refused before it is read whole."""

    code = "request_too_large"
    http_status = 413


class CsrfRefused(KapsuleError):
    """A state-changing request authenticated by the session cookie came from another origin."""

    code = "csrf_refused"
    http_status = 403


class SessionInvalid(KapsuleError):
    """A session cookie that is forged, expired, ended (logout) or whose key has been rotated."""

    code = "session_invalid"
    http_status = 401


class LinkSignatureInvalid(KapsuleError):
    """A signed link (notebook view) whose signature does not match what the server signs."""

    code = "bad_link_signature"
    http_status = 403


class LinkExpired(KapsuleError):
    """A correctly signed link whose time is up."""

    code = "link_expired"
    http_status = 403


class UploadAlreadyUsed(UploadError):
    """An upload URL is good for one PUT: a second one would replace the song under a ticket."""

    code = "upload_used"
    http_status = 409


class TooManyStreams(KapsuleError):
    """The owner already follows as many jobs as the server allows at once (server-sent events)."""

    code = "too_many_streams"
    http_status = 429


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


# ----------------------------------------------------------------------------------- registry


def _all_subclasses(cls: type[KapsuleError]) -> list[type[KapsuleError]]:
    found: list[type[KapsuleError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


def _registry() -> dict[str, type[KapsuleError]]:
    """Code → class, for every class in this module; a second class with a taken code is a bug."""
    registry: dict[str, type[KapsuleError]] = {}
    classes: list[type[KapsuleError]] = [KapsuleError, *_all_subclasses(KapsuleError)]
    for cls in classes:
        if cls.__module__ != __name__:
            continue  # tests may subclass; the product's classes all live here
        if cls.code in registry:
            raise AssertionError(f"error code {cls.code!r} is used by {registry[cls.code]} and {cls}")
        registry[cls.code] = cls
    return registry


ERRORS: dict[str, type[KapsuleError]] = _registry()
"""Every error code the product can report, and its class (the API documents these)."""

_BY_NAME: dict[str, type[KapsuleError]] = {cls.__name__: cls for cls in ERRORS.values()}


def by_name(name: str) -> type[KapsuleError] | None:
    """The class called ``name`` (what papermill reports as a kernel exception's ``ename``)."""
    return _BY_NAME.get(name)


def codes_for_status(status: int) -> list[str]:
    """The codes answered with HTTP ``status``, sorted (for the API's OpenAPI responses)."""
    return sorted(code for code, cls in ERRORS.items() if cls.http_status == status)
