"""The root of the family: what every Kapsule error carries."""

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
