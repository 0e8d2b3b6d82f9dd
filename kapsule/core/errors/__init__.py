"""One exception family for the whole product, and the one registry of its error codes.

Every error a user can meet is a ``KapsuleError`` subclass declared in this package, with one fixed,
stable machine ``code`` per class (used by the API's JSON errors, the job record and the CLI's exit
line) and a message written for a human. A new kind of failure is a new subclass here, never a
free-form code string at a raise site: that is what lets ``ERRORS`` document every code (the API's
OpenAPI responses list them) and lets the pipeline turn an exception raised inside a notebook kernel,
of which papermill only reports the class name and text, back into the same class (``by_name``).

Only the CLI, the job entrypoint and the API turn these into exit codes or HTTP statuses; library
code raises. Backend errors are wrapped at the boundary (``raise StorageError(...) from exc``) so
callers never need to know which backend they talk to.

The classes sit in private modules by who meets them, and are imported from here
(``from kapsule.core.errors import ObjectNotFound``):
- ``_base``: ``KapsuleError``, the root;
- ``_inputs``: settings (``ConfigError``) and job parameters (``InvalidParameter`` and its kinds);
- ``_media``: the song (``AudioError``), FFmpeg (``MediaError``, ``ToolMissing``), lyrics (``LyricsError``);
- ``_jobs``: storage and the job record, a job's life, its stages, generation, budgets, launching;
- ``_serving``: uploads, API keys, sessions, signed links and the server's limits.
"""

from __future__ import annotations

from kapsule.core.errors._base import (
    KapsuleError,
)
from kapsule.core.errors._inputs import (
    BadCursor,
    BadExecutionName,
    BadIdempotencyKey,
    BadJobId,
    BadSigningRequest,
    BadStorageKey,
    ConfigError,
    EmptyPrompt,
    IdempotencyConflict,
    InputFileMissing,
    InvalidParameter,
    JobExists,
    NothingToReroll,
    OpenServerRefused,
    OutputExists,
    PromptTooLong,
    UnknownModel,
    UnknownNotebook,
    UnsupportedVideoRequest,
)
from kapsule.core.errors._jobs import (
    BucketNotFound,
    BudgetExceeded,
    DailyCapReached,
    DeploymentNotReady,
    GenerationError,
    GoogleRequestRefused,
    InvalidTransition,
    JobCancelled,
    JobCrashed,
    JobNotFound,
    KernelFailed,
    LaunchError,
    ModelNotAllowed,
    ObjectNotFound,
    ShotNotFound,
    ShotsMissing,
    StageFailed,
    StageInputMissing,
    StartOutcomeUnknown,
    StatusContention,
    StatusStoreError,
    StorageError,
    StoryboardNotReady,
    VideoNotReady,
)
from kapsule.core.errors._media import (
    AudioError,
    LyricsAlignmentFailed,
    LyricsEmpty,
    LyricsEncoding,
    LyricsError,
    LyricsMalformed,
    LyricsPastEnd,
    LyricsTooLong,
    MediaError,
    NotAudio,
    SilentSong,
    SongTooLong,
    SongTooShort,
    ToolMissing,
    Undecodable,
)
from kapsule.core.errors._serving import (
    CsrfRefused,
    EndpointNotFound,
    HostNotAllowed,
    LinkExpired,
    LinkSignatureInvalid,
    RequestTooLarge,
    SessionInvalid,
    TooManyKeyAttempts,
    TooManyStreams,
    Unauthorized,
    UploadAlreadyUsed,
    UploadError,
    UploadExpired,
    UploadIncomplete,
    UploadInterrupted,
    UploadNotFound,
    UploadSignatureInvalid,
    UploadTooLarge,
    UploadTypeRefused,
)


def _all_subclasses(cls: type[KapsuleError]) -> list[type[KapsuleError]]:
    found: list[type[KapsuleError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


def _registry() -> dict[str, type[KapsuleError]]:
    """Code → class, for every class of this package; a second class with a taken code is a bug."""
    registry: dict[str, type[KapsuleError]] = {}
    classes: list[type[KapsuleError]] = [KapsuleError, *_all_subclasses(KapsuleError)]
    for cls in classes:
        if cls.__module__.rpartition(".")[0] != __name__:
            continue  # tests may subclass; the product's classes all live in this package
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


__all__ = [
    "ERRORS",
    "AudioError",
    "BadCursor",
    "BadExecutionName",
    "BadIdempotencyKey",
    "BadJobId",
    "BadSigningRequest",
    "BadStorageKey",
    "BucketNotFound",
    "BudgetExceeded",
    "ConfigError",
    "CsrfRefused",
    "DailyCapReached",
    "DeploymentNotReady",
    "EmptyPrompt",
    "EndpointNotFound",
    "GenerationError",
    "GoogleRequestRefused",
    "HostNotAllowed",
    "IdempotencyConflict",
    "InputFileMissing",
    "InvalidParameter",
    "InvalidTransition",
    "JobCancelled",
    "JobCrashed",
    "JobExists",
    "JobNotFound",
    "KapsuleError",
    "KernelFailed",
    "LaunchError",
    "LinkExpired",
    "LinkSignatureInvalid",
    "LyricsAlignmentFailed",
    "LyricsEmpty",
    "LyricsEncoding",
    "LyricsError",
    "LyricsMalformed",
    "LyricsPastEnd",
    "LyricsTooLong",
    "MediaError",
    "ModelNotAllowed",
    "NotAudio",
    "NothingToReroll",
    "ObjectNotFound",
    "OpenServerRefused",
    "OutputExists",
    "PromptTooLong",
    "RequestTooLarge",
    "SessionInvalid",
    "ShotNotFound",
    "ShotsMissing",
    "SilentSong",
    "SongTooLong",
    "SongTooShort",
    "StageFailed",
    "StageInputMissing",
    "StartOutcomeUnknown",
    "StatusContention",
    "StatusStoreError",
    "StorageError",
    "StoryboardNotReady",
    "TooManyKeyAttempts",
    "TooManyStreams",
    "ToolMissing",
    "Unauthorized",
    "Undecodable",
    "UnknownModel",
    "UnknownNotebook",
    "UnsupportedVideoRequest",
    "UploadAlreadyUsed",
    "UploadError",
    "UploadExpired",
    "UploadIncomplete",
    "UploadInterrupted",
    "UploadNotFound",
    "UploadSignatureInvalid",
    "UploadTooLarge",
    "UploadTypeRefused",
    "VideoNotReady",
    "by_name",
    "codes_for_status",
]
