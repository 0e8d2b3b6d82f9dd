"""Firestore status store: one document per job in a collection, ``firestore://PROJECT/COLLECTION``.

Every write is a Firestore transaction (read, ``apply_update`` checks the state machine and the
update's guards, write), so a cancel from the API racing a progress beat from the job can neither be
lost nor reopen a finished job. Firestore's server SDKs lock the documents a transaction reads;
under contention a transaction is aborted and retried, and ``MAX_ATTEMPTS`` is far above the
client's default of 5. A retry applies the update again to the record it reads anew, so an increment
(``add_cost``) counts exactly once.

Threads of one process that update the same job take a local lock first (one of ``_STRIPES``,
chosen by job id). Contention between them is settled in memory instead of by aborted transactions:
the emulator (and Firestore's lock waits) turn two readers that both want to write into a ~2 s
lock timeout per round, and 20 threads beating on one job would otherwise take minutes. Across
processes the transaction alone keeps the guarantees.

Timestamps: ``updated_at`` is the server's commit time (``SERVER_TIMESTAMP``), read back from the
commit so the record a writer gets equals the one a reader sees. ``created_at`` is the record's own
(set by whoever creates the job), because callers order and page by the time they created it.
Listing by owner, newest first, needs the composite index in ``firestore.indexes.json``.

The spend ledger is two more collections beside the jobs': ``COLLECTION-ledger`` (one document per
paid request, ``JOB~KEY``) and ``COLLECTION-days`` (one per owner and UTC day). ``reserve`` and
``settle`` read the job, the entry and the day in one transaction and write all three, so a cap is
checked against every process's reservations. This process's writers of one owner's day take a
local lock first (then the job's), for the same reason as above.
"""

from __future__ import annotations

import hashlib
import json
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlparse

from kapsule.core.errors import (
    BadCursor,
    BadJobId,
    ConfigError,
    JobExists,
    JobNotFound,
    KapsuleError,
    StatusContention,
    StatusStoreError,
    StorageError,
)
from kapsule.infra.quota import QuotaChange, QuotaGrant, QuotaState, apply_quota
from kapsule.job import ledger
from kapsule.job.ledger import Charge, LedgerEntry, Settlement
from kapsule.job.record import JobRecord, utcnow
from kapsule.job.update import JobUpdate, apply_update

if TYPE_CHECKING:
    from google.cloud.firestore import Client, DocumentReference, Transaction

# Attempts per transaction before giving up (the client's default, 5, fails under contention).
MAX_ATTEMPTS = 50
# Local locks that serialize this process's writers per job (a fixed number: no per-job leak).
_STRIPES = 64
_TIMESTAMPS = ("created_at", "updated_at", "heartbeat_at")
# The order ``list`` pages in, after its equality filter on ``owner``; firestore.indexes.json
# declares the composite index (owner, then these) that Firestore needs to serve it.
LIST_ORDER = (("created_at", "DESCENDING"), ("__name__", "DESCENDING"))

T = TypeVar("T")
_BAD_CURSOR = "that page cursor is not one this server handed out; list again without a cursor"


def parse_firestore_url(url: str) -> tuple[str, str, str]:
    """``firestore://PROJECT/COLLECTION[?database=DB]`` → (project, collection, database)."""
    parsed = urlparse(url)
    collection = parsed.path.strip("/")
    if parsed.scheme != "firestore" or not parsed.netloc or not collection or "/" in collection:
        raise ConfigError(f"not a firestore://PROJECT/COLLECTION URL: {url!r}")
    database = parse_qs(parsed.query).get("database", ["(default)"])[0]
    return parsed.netloc, collection, database


def _plain_utc(value: datetime) -> datetime:
    """Firestore returns ``DatetimeWithNanoseconds``; records hold plain aware UTC datetimes."""
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return datetime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        tzinfo=UTC,
    )


def _to_document(record: JobRecord) -> dict[str, Any]:
    """The record as Firestore fields: timestamps as timestamps (sortable), ``updated_at`` by the server."""
    from google.cloud.firestore import SERVER_TIMESTAMP

    data = record.model_dump(mode="json")
    for name in _TIMESTAMPS:
        data[name] = getattr(record, name)
    data["updated_at"] = SERVER_TIMESTAMP
    return data


def _from_document(data: dict[str, Any] | None) -> JobRecord:
    if data is None:  # ``to_dict`` of a snapshot whose document does not exist
        raise JobNotFound("no such job document")
    for name in _TIMESTAMPS:
        if isinstance(data.get(name), datetime):
            data[name] = _plain_utc(data[name])
    return JobRecord.model_validate(data)


def _valid_document_id(job_id: str) -> bool:
    return bool(job_id) and "/" not in job_id and job_id not in (".", "..") and len(job_id) <= 1500


class FirestoreStatusStore:
    """Job records as documents of one Firestore collection. The client is built on first use."""

    def __init__(self, url: str, *, client: Client | None = None) -> None:
        self.url = url
        self.project, self.collection, self.database = parse_firestore_url(url)
        self._client = client
        self._client_lock = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]
        self._owner_stripes = [threading.Lock() for _ in range(_STRIPES)]  # taken before a job's, never after
        self._quota_lock = threading.Lock()  # this process's askers of the shared quota take turns

    def __repr__(self) -> str:
        return f"FirestoreStatusStore({self.project}/{self.collection})"

    @property
    def client(self) -> Client:
        with self._client_lock:
            if self._client is None:
                self._client = _make_client(self.project, self.database)
            return self._client

    def _document(self, job_id: str) -> DocumentReference:
        return self.client.collection(self.collection).document(job_id)

    @contextmanager
    def _writer(self, job_id: str) -> Iterator[Transaction]:
        """This process's turn to write ``job_id``, and a fresh transaction to write it with."""
        with self._stripes[zlib.crc32(job_id.encode()) % _STRIPES]:
            yield self.client.transaction(max_attempts=MAX_ATTEMPTS)

    def create(self, record: JobRecord) -> JobRecord:
        from google.cloud.firestore import transactional

        if not _valid_document_id(record.id):
            raise BadJobId(f"bad job id {record.id!r}")
        document = self._document(record.id)
        data = _to_document(record)

        @transactional
        def insert(transaction: Transaction) -> None:
            transaction.create(document, data)

        with self._writer(record.id) as transaction:
            self._call("create", record.id, lambda: insert(transaction))
        return record.model_copy(update={"updated_at": _server_time(transaction)})

    def get(self, job_id: str) -> JobRecord:
        if not _valid_document_id(job_id):
            raise JobNotFound(f"no job {job_id}")
        snapshot = self._call("read", job_id, lambda: self._document(job_id).get())
        if not snapshot.exists:
            raise JobNotFound(f"no job {job_id}")
        return _from_document(snapshot.to_dict())

    def update(self, job_id: str, change: JobUpdate) -> JobRecord:
        from google.cloud.firestore import transactional

        if not _valid_document_id(job_id):
            raise JobNotFound(f"no job {job_id}")
        document = self._document(job_id)

        @transactional
        def read_check_write(transaction: Transaction) -> JobRecord:
            snapshot = document.get(transaction=transaction)
            if not snapshot.exists:
                raise JobNotFound(f"no job {job_id}")
            record = apply_update(_from_document(snapshot.to_dict()), change)
            transaction.set(document, _to_document(record))
            return record

        with self._writer(job_id) as transaction:
            record: JobRecord = self._call("update", job_id, lambda: read_check_write(transaction))
        return record.model_copy(update={"updated_at": _server_time(transaction)})

    # ---------------------------------------------------------------------------- the ledger

    def _entry_document(self, job_id: str, key: str) -> DocumentReference:
        return self.client.collection(f"{self.collection}-ledger").document(f"{job_id}~{key}")

    def _day_document(self, owner: str, day: str) -> DocumentReference:
        name = hashlib.sha256(owner.encode()).hexdigest()[:32]  # any owner name is a safe document id
        return self.client.collection(f"{self.collection}-days").document(f"{name}~{day}")

    def reserve(self, job_id: str, charge: Charge) -> LedgerEntry:
        return self._ledger_write(job_id, charge.key, ledger.reserving(charge), new_day=True)

    def settle(self, job_id: str, key: str, settlement: Settlement) -> LedgerEntry:
        return self._ledger_write(job_id, key, ledger.settling(job_id, key, settlement), new_day=False)

    def _ledger_write(self, job_id: str, key: str, rule: ledger.LedgerRule, *, new_day: bool) -> LedgerEntry:
        from google.cloud.firestore import transactional

        if not _valid_document_id(job_id):
            raise JobNotFound(f"no job {job_id}")
        document, entry_document = self._document(job_id), self._entry_document(job_id, key)

        @transactional
        def read_check_write(transaction: Transaction) -> LedgerEntry:
            snapshot = document.get(transaction=transaction)
            if not snapshot.exists:
                raise JobNotFound(f"no job {job_id}")
            record = _from_document(snapshot.to_dict())
            entry_snapshot = entry_document.get(transaction=transaction)
            entry = LedgerEntry.model_validate(entry_snapshot.to_dict()) if entry_snapshot.exists else None
            day = ledger.day_of(utcnow()) if new_day or entry is None else entry.day
            day_document = self._day_document(record.owner, day)
            day_snapshot = day_document.get(transaction=transaction)
            total = (
                float((day_snapshot.to_dict() or {}).get("committed_usd", 0.0))
                if day_snapshot.exists
                else 0.0
            )
            record, entry, total = rule(record, total, entry)
            transaction.set(document, _to_document(record))
            transaction.set(entry_document, entry.model_dump(mode="json"))
            transaction.set(day_document, {"owner": record.owner, "day": entry.day, "committed_usd": total})
            return entry

        owner = self.get(job_id).owner  # the owner never changes: its lock is known before the transaction
        owner_lock = self._owner_stripes[zlib.crc32(owner.encode()) % _STRIPES]
        with owner_lock, self._writer(job_id) as transaction:
            entry: LedgerEntry = self._call(
                "update the ledger of", job_id, lambda: read_check_write(transaction)
            )
        return entry

    def _quota_document(self, key: str) -> DocumentReference:
        return self.client.collection(f"{self.collection}-quotas").document(key)

    def quota(self, key: str, change: QuotaChange) -> QuotaGrant:
        from google.cloud.firestore import transactional

        document = self._quota_document(key)

        @transactional
        def read_apply_write(transaction: Transaction) -> QuotaGrant:
            snapshot = document.get(transaction=transaction)
            current = QuotaState.model_validate(snapshot.to_dict()) if snapshot.exists else None
            state, grant = apply_quota(current, change)
            transaction.set(document, state.model_dump(mode="json"))
            return grant

        with self._quota_lock, self._writer(f"quota:{key}") as transaction:
            grant: QuotaGrant = self._call("take from the quota", key, lambda: read_apply_write(transaction))
        return grant

    def quota_state(self, key: str) -> QuotaState | None:
        snapshot = self._call("read the quota", key, lambda: self._quota_document(key).get())
        return QuotaState.model_validate(snapshot.to_dict()) if snapshot.exists else None

    def ledger(self, job_id: str) -> list[LedgerEntry]:
        from google.cloud.firestore import FieldFilter

        if not _valid_document_id(job_id):
            return []
        query = self.client.collection(f"{self.collection}-ledger").where(
            filter=FieldFilter("job_id", "==", job_id)
        )
        snapshots = self._call("read the ledger of", job_id, lambda: list(query.stream()))
        entries = [LedgerEntry.model_validate(snapshot.to_dict()) for snapshot in snapshots]
        return sorted(entries, key=lambda e: (e.created_at, e.key))

    def day_total(self, owner: str, day: str) -> float:
        snapshot = self._call("read the day total of", owner, lambda: self._day_document(owner, day).get())
        return float((snapshot.to_dict() or {}).get("committed_usd", 0.0)) if snapshot.exists else 0.0

    def list(
        self, owner: str, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[JobRecord], str | None]:
        from google.cloud.firestore import FieldFilter

        limit = max(1, min(limit, 100))
        query = self.client.collection(self.collection).where(filter=FieldFilter("owner", "==", owner))
        for field_path, direction in LIST_ORDER:
            query = query.order_by(field_path, direction=direction)
        if cursor:
            try:
                created, last_id = json.loads(cursor)
                after = {"created_at": datetime.fromisoformat(created), "__name__": str(last_id)}
            except (ValueError, TypeError) as exc:
                raise BadCursor(_BAD_CURSOR) from exc
            if not _valid_document_id(str(last_id)):
                raise BadCursor(_BAD_CURSOR)
            query = query.start_after(after)
        snapshots = self._call("list", owner, lambda: list(query.limit(limit + 1).stream()))
        records = [_from_document(snapshot.to_dict()) for snapshot in snapshots[:limit]]
        next_cursor = None
        if len(snapshots) > limit:
            last = records[-1]
            next_cursor = json.dumps([last.created_at.isoformat(), last.id])
        return records, next_cursor

    def _revocation(self, session_id: str) -> DocumentReference:
        """Signed-out sessions live beside the jobs, in ``{collection}_revoked_sessions``; their
        ``expires_at`` suits a Firestore TTL policy, which deletes them once they could not verify."""
        return self.client.collection(f"{self.collection}_revoked_sessions").document(session_id)

    def revoke_session(self, session_id: str, expires: int) -> None:
        if not _valid_document_id(session_id):
            return  # no token of ours carries such an id, so none can be presented
        data = {"expires_at": datetime.fromtimestamp(expires, UTC)}
        self._call("revoke a session in", session_id, lambda: self._revocation(session_id).set(data))

    def session_revoked(self, session_id: str) -> bool:
        if not _valid_document_id(session_id):
            return False
        snapshot = self._call("read a session in", session_id, lambda: self._revocation(session_id).get())
        return bool(snapshot.exists)

    def _call(self, action: str, job_id: str, fn: Callable[[], T]) -> T:
        """Run one Firestore call and translate its errors into ours (the only ``except`` here)."""
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc
        from pydantic import ValidationError

        where = f"firestore://{self.project}/{self.collection}/{job_id}"
        try:
            return fn()
        except (KapsuleError, ValidationError):
            raise
        except (gexc.AlreadyExists, gexc.Conflict) as exc:
            raise JobExists(f"job {job_id} already exists") from exc
        except gexc.FailedPrecondition as exc:
            hint = " (deploy firestore.indexes.json)" if "index" in str(exc.message).lower() else ""
            raise StatusStoreError(f"could not {action} {where}: {exc.message}{hint}") from exc
        except gexc.GoogleAPICallError as exc:
            raise StatusStoreError(f"could not {action} {where}: {exc.code} {exc.message}") from exc
        except (gexc.RetryError, auth_exc.GoogleAuthError) as exc:
            raise StatusStoreError(f"could not {action} {where}: {exc}") from exc
        except ValueError as exc:
            # The transaction wrapper's "Failed to commit transaction in N attempts".
            if "transaction" not in str(exc).lower():
                raise
            raise StatusContention(
                f"could not {action} {where}: too many concurrent writers ({exc})"
            ) from exc


def _server_time(transaction: Transaction) -> datetime:
    """The value ``SERVER_TIMESTAMP`` took in the committed write (its transform result)."""
    results = transaction.write_results
    if not results:
        raise StorageError("the committed write reported no result to read the server time from")
    result = results[0]
    return _plain_utc(result.transform_results[0].timestamp_value)


def _make_client(project: str, database: str) -> Client:
    """A client from Application Default Credentials (none needed under ``FIRESTORE_EMULATOR_HOST``)."""
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import firestore

    try:
        return firestore.Client(project=project, database=database)
    except DefaultCredentialsError as exc:
        raise ConfigError(
            "no Google credentials for the firestore:// status store: run `gcloud auth "
            "application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, or run on Cloud Run"
        ) from exc


def api_endpoint() -> str:
    """The host this process's Firestore clients talk to: the emulator named by the library's own
    ``FIRESTORE_EMULATOR_HOST`` when set, else Google's (``doctor`` names it when it does not answer)."""
    import os

    from google.cloud.firestore_v1 import base_client

    return os.environ.get(base_client._FIRESTORE_EMULATOR_HOST) or "firestore.googleapis.com"
