"""The StatusStore protocol: where job records live (SQLite locally, Firestore in the cloud).

Writers never overwrite a record blindly: ``update`` applies a typed ``JobUpdate`` with
``kapsule.job.update.apply_update`` inside the backend's transaction, on the record that transaction
read. Its guards (compare-and-set) and computed changes (cost added, prompt edits merged) therefore
see what is committed over, so concurrent progress beats and a racing cancel never lose an update
and a finished job is never reopened.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from kapsule.job.record import JobRecord
from kapsule.job.update import JobUpdate


@runtime_checkable
class StatusStore(Protocol):
    url: str

    def create(self, record: JobRecord) -> JobRecord:
        """Insert a new record; its id must be new."""

    def get(self, job_id: str) -> JobRecord:
        """The record, or ``JobNotFound``."""

    def update(self, job_id: str, change: JobUpdate) -> JobRecord:
        """Apply ``change`` in one transaction (``InvalidTransition`` if a rule or guard refuses it);
        returns the new record."""

    def list(
        self, owner: str, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[JobRecord], str | None]:
        """The owner's jobs, newest first; returns a page and the cursor of the next page (or None)."""

    def revoke_session(self, session_id: str, expires: int) -> None:
        """Remember that the studio session ``session_id`` was signed out (until ``expires``, epoch
        seconds, after which its token is refused anyway), so every replica refuses it."""

    def session_revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` was signed out (on any replica)."""
