"""Errors in what the user or the operator gave: settings and job parameters (mostly 422)."""

from __future__ import annotations

from kapsule.core.errors._base import KapsuleError

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


class OutputExists(InvalidParameter):
    """The file a command would write exists already: it is never overwritten without ``--force``."""

    code = "output_exists"


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
