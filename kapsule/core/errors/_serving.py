"""Errors the API answers about its own requests: uploads, keys, sessions, signed links, limits."""

from __future__ import annotations

from kapsule.core.errors._base import KapsuleError

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


class UploadInterrupted(UploadError):
    """The client went away before it had sent the whole body: the client's doing, not the server's."""

    code = "upload_interrupted"
    http_status = 400


class UploadAlreadyUsed(UploadError):
    """An upload URL is good for one PUT: a second one would replace the song under a ticket."""

    code = "upload_used"
    http_status = 409


class TooManyStreams(KapsuleError):
    """The owner already follows as many jobs as the server allows at once (server-sent events)."""

    code = "too_many_streams"
    http_status = 429


class TooManyKeyAttempts(KapsuleError):
    """This client sent too many wrong API keys in a short time; it may try again after a pause."""

    code = "too_many_key_attempts"
    http_status = 429
