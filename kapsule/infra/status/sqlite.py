"""SQLite status store: the embedded default, a real database with real transactions.

WAL mode lets readers (the API, ``kapsule jobs``) read while the job writes. Each update is a
``BEGIN IMMEDIATE`` transaction (read, ``apply_update``, write), which serializes writers the way
a Firestore transaction does, so the same contract tests pass on both. The spend ledger
(``kapsule.job.ledger``) is two more tables written in the same kind of transaction as the job's row.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kapsule.core.errors import BadCursor, ConfigError, JobExists, JobNotFound
from kapsule.infra.quota import QuotaChange, QuotaGrant, QuotaState, apply_quota
from kapsule.job import ledger
from kapsule.job.ledger import Charge, LedgerEntry, Settlement
from kapsule.job.record import JobRecord, utcnow
from kapsule.job.update import JobUpdate, apply_update

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_owner_created ON jobs (owner, created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS revoked_sessions (
    id TEXT PRIMARY KEY,
    expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    job_id TEXT NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (job_id, key)
);
CREATE TABLE IF NOT EXISTS quotas (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_days (
    owner TEXT NOT NULL,
    day TEXT NOT NULL,
    committed_usd REAL NOT NULL,
    PRIMARY KEY (owner, day)
);
"""


def _path_from_url(url: str) -> Path:
    parsed = urlparse(url)
    if parsed.scheme != "sqlite":
        raise ConfigError(f"not a sqlite:// URL: {url}")
    # sqlite:///./rel.db → "/./rel.db"; sqlite:////abs.db → "//abs.db"
    raw = parsed.path
    if raw.startswith("//"):
        return Path(raw[1:])
    return Path(raw.lstrip("/") or "jobs.db").expanduser().resolve()


def _parse_cursor(cursor: str) -> tuple[str, str]:
    """A cursor this store made: a JSON pair of strings, else ``BadCursor`` (never a binding error)."""
    try:
        value = json.loads(cursor)
    except ValueError:
        value = None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise BadCursor("that page cursor is not one this server handed out; list again without a cursor")
    return value[0], value[1]


class SqliteStatusStore:
    """Job records as JSON documents in one SQLite table."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = _path_from_url(url)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def create(self, record: JobRecord) -> JobRecord:
        conn = self._connect()
        try:
            conn.execute(
                "INSERT INTO jobs (id, owner, created_at, body) VALUES (?, ?, ?, ?)",
                (record.id, record.owner, record.created_at.isoformat(), record.model_dump_json()),
            )
        except sqlite3.IntegrityError as exc:
            raise JobExists(f"job {record.id} already exists") from exc
        return record

    def get(self, job_id: str) -> JobRecord:
        row = self._connect().execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"no job {job_id}")
        return JobRecord.model_validate_json(row[0])

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` (writers take turns), committed if the block returns, else rolled back."""
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _read(conn: sqlite3.Connection, job_id: str) -> JobRecord:
        row = conn.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"no job {job_id}")
        return JobRecord.model_validate_json(row[0])

    @staticmethod
    def _write(conn: sqlite3.Connection, record: JobRecord) -> None:
        conn.execute("UPDATE jobs SET body = ? WHERE id = ?", (record.model_dump_json(), record.id))

    def update(self, job_id: str, change: JobUpdate) -> JobRecord:
        with self._transaction() as conn:
            record = apply_update(self._read(conn, job_id), change)
            self._write(conn, record)
        return record

    # ---------------------------------------------------------------------------- the ledger

    def reserve(self, job_id: str, charge: Charge) -> LedgerEntry:
        return self._ledger_write(job_id, charge.key, ledger.reserving(charge), new_day=True)

    def settle(self, job_id: str, key: str, settlement: Settlement) -> LedgerEntry:
        return self._ledger_write(job_id, key, ledger.settling(job_id, key, settlement), new_day=False)

    def _ledger_write(
        self,
        job_id: str,
        key: str,
        rule: ledger.LedgerRule,
        *,
        new_day: bool,
    ) -> LedgerEntry:
        """Read the job, its entry and the owner's day; apply ``rule``; write all three at once."""
        with self._transaction() as conn:
            record = self._read(conn, job_id)
            row = conn.execute(
                "SELECT body FROM ledger WHERE job_id = ? AND key = ?", (job_id, key)
            ).fetchone()
            entry = LedgerEntry.model_validate_json(row[0]) if row else None
            day = ledger.day_of(utcnow()) if new_day or entry is None else entry.day
            total = self._day(conn, record.owner, day)
            record, entry, total = rule(record, total, entry)
            self._write(conn, record)
            conn.execute(
                "INSERT OR REPLACE INTO ledger (job_id, key, body) VALUES (?, ?, ?)",
                (job_id, key, entry.model_dump_json()),
            )
            conn.execute(
                "INSERT OR REPLACE INTO ledger_days (owner, day, committed_usd) VALUES (?, ?, ?)",
                (record.owner, entry.day, total),
            )
        return entry

    @staticmethod
    def _day(conn: sqlite3.Connection, owner: str, day: str) -> float:
        row = conn.execute(
            "SELECT committed_usd FROM ledger_days WHERE owner = ? AND day = ?", (owner, day)
        ).fetchone()
        return float(row[0]) if row else 0.0

    def quota(self, key: str, change: QuotaChange) -> QuotaGrant:
        with self._transaction() as conn:
            row = conn.execute("SELECT body FROM quotas WHERE key = ?", (key,)).fetchone()
            state, grant = apply_quota(QuotaState.model_validate_json(row[0]) if row else None, change)
            conn.execute(
                "INSERT OR REPLACE INTO quotas (key, body) VALUES (?, ?)", (key, state.model_dump_json())
            )
        return grant

    def quota_state(self, key: str) -> QuotaState | None:
        row = self._connect().execute("SELECT body FROM quotas WHERE key = ?", (key,)).fetchone()
        return QuotaState.model_validate_json(row[0]) if row else None

    def ledger(self, job_id: str) -> list[LedgerEntry]:
        rows = self._connect().execute("SELECT body FROM ledger WHERE job_id = ?", (job_id,)).fetchall()
        entries = [LedgerEntry.model_validate_json(body) for (body,) in rows]
        return sorted(entries, key=lambda e: (e.created_at, e.key))

    def day_total(self, owner: str, day: str) -> float:
        return self._day(self._connect(), owner, day)

    def list(
        self, owner: str, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[JobRecord], str | None]:
        limit = max(1, min(limit, 100))
        query = "SELECT created_at, id, body FROM jobs WHERE owner = ?"
        args: list[Any] = [owner]
        if cursor:
            created, last_id = _parse_cursor(cursor)
            query += " AND (created_at < ? OR (created_at = ? AND id < ?))"
            args += [created, created, last_id]
        query += " ORDER BY created_at DESC, id DESC LIMIT ?"
        rows = self._connect().execute(query, [*args, limit + 1]).fetchall()
        records = [JobRecord.model_validate_json(body) for _, _, body in rows[:limit]]
        next_cursor = json.dumps([rows[limit - 1][0], rows[limit - 1][1]]) if len(rows) > limit else None
        return records, next_cursor

    def revoke_session(self, session_id: str, expires: int) -> None:
        conn = self._connect()
        conn.execute("DELETE FROM revoked_sessions WHERE expires < ?", (int(time.time()),))  # no growth
        conn.execute(
            "INSERT OR REPLACE INTO revoked_sessions (id, expires) VALUES (?, ?)", (session_id, expires)
        )

    def session_revoked(self, session_id: str) -> bool:
        row = self._connect().execute("SELECT 1 FROM revoked_sessions WHERE id = ?", (session_id,)).fetchone()
        return row is not None
