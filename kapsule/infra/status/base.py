"""The StatusStore protocol: where job records live (SQLite locally, Firestore in the cloud).

Writers never overwrite a record blindly: ``update`` applies a typed ``JobUpdate`` with
``kapsule.job.update.apply_update`` inside the backend's transaction, on the record that transaction
read. Its guards (compare-and-set) and computed changes (cost added, prompt edits merged) therefore
see what is committed over, so concurrent progress beats and a racing cancel never lose an update
and a finished job is never reopened.

The spend ledger (``kapsule.job.ledger``) lives here too: ``reserve`` and ``settle`` read and write the
job record, the ledger entry and the owner's day total in one transaction, so a budget or a daily cap
is checked against everything committed, by every process of the deployment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from kapsule.infra.quota import QuotaChange, QuotaGrant, QuotaState
from kapsule.job.ledger import Charge, LedgerEntry, Settlement
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

    def reserve(self, job_id: str, charge: Charge) -> LedgerEntry:
        """Reserve ``charge`` for the running job ``job_id`` after checking its budget and the owner's
        daily cap (``ledger.reserve``), or raise and reserve nothing."""

    def settle(self, job_id: str, key: str, settlement: Settlement) -> LedgerEntry:
        """Record what became of the request reserved as ``key`` (allowed on a finished job)."""

    def ledger(self, job_id: str) -> Sequence[LedgerEntry]:
        """The job's ledger entries, oldest first."""

    def day_total(self, owner: str, day: str) -> float:
        """What ``owner``'s paid requests reserved on ``day`` (UTC, YYYY-MM-DD) count: spent plus open."""

    def quota(self, key: str, change: QuotaChange) -> QuotaGrant:
        """Apply ``change`` to the shared quota ``key`` in one transaction (``quota.apply_quota``)."""

    def quota_state(self, key: str) -> QuotaState | None:
        """The shared quota ``key`` as last written, or None if no start has asked for it yet."""
