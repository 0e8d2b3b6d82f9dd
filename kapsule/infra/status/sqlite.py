"""SQLite status store: the embedded default, a real database with real transactions.

WAL mode lets readers (the API, ``kapsule jobs``) read while the job writes. Each update is a
``BEGIN IMMEDIATE`` transaction (read, ``apply_update``, write), which serializes writers the way
a Firestore transaction does, so the same contract tests pass on both.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kapsule.core.errors import BadCursor, ConfigError, JobExists, JobNotFound
from kapsule.job.record import JobRecord
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

    def update(self, job_id: str, change: JobUpdate) -> JobRecord:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(f"no job {job_id}")
            record = apply_update(JobRecord.model_validate_json(row[0]), change)
            conn.execute("UPDATE jobs SET body = ? WHERE id = ?", (record.model_dump_json(), job_id))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return record

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
