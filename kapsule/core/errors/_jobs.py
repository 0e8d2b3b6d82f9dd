"""Errors while a job is stored, run, paid for and launched: storage, the job record, stages, generation."""

from __future__ import annotations

from kapsule.core.errors._base import KapsuleError
from kapsule.core.errors._inputs import ConfigError

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


class StartOutcomeUnknown(GenerationError):
    """A paid start's answer was lost (5xx, timeout): it may have started and bill, so it is not retried."""

    code = "start_outcome_unknown"


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
