"""The StatusStore protocol: where job records live (SQLite locally, Firestore in the cloud).

Writers never overwrite a record blindly: ``update`` runs ``jobs.apply_update`` inside the
backend's transaction (compare-and-set), so concurrent progress beats and a racing cancel never lose
an update and a finished job is never reopened.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from kapsule.job.record import JobRecord


@runtime_checkable
class StatusStore(Protocol):
    url: str

    def create(self, record: JobRecord) -> JobRecord:
        """Insert a new record; its id must be new."""

    def get(self, job_id: str) -> JobRecord:
        """The record, or ``JobNotFound``."""

    def update(self, job_id: str, changes: dict[str, Any]) -> JobRecord:
        """Apply ``changes`` transactionally after checking the state machine; returns the new record."""

    def list(
        self, owner: str, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[JobRecord], str | None]:
        """The owner's jobs, newest first; returns a page and the cursor of the next page (or None)."""
