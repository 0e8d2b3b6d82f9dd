"""Structured logs: one JSON object per line on stdout, in the shape Cloud Logging parses unaided.

Each line has ``severity``, ``message``, ``job_id`` and ``stage`` (null when not known), plus
``logging.googleapis.com/trace`` when the request that started the job carried a trace, so Cloud
Logging groups a job's lines under the API request that created it. No client library is needed:
Cloud Run ships stdout to Cloud Logging and reads these keys.

Nothing secret is ever written: every line passes through a ``Redactor`` that knows the secret values
of the settings (``SecretStr`` fields such as the Gemini key, and each key in ``KAPSULE_API_KEYS``)
and replaces them, wherever they appear (message, extra fields, a traceback), with ``[redacted]``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from pydantic import SecretStr

from kapsule.core.settings import Settings

TRACE_KEY = "logging.googleapis.com/trace"
REDACTED = "[redacted]"
MIN_SECRET_LEN = 4  # shorter "secrets" would redact ordinary words
# Credentials that may appear in text a library puts in an error, whatever their value.
_CREDENTIAL_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)([?&](?:api[_-]?key|access_token|key)=)[^&\s\"']+"),
)
_TRACE_HEADER_RE = re.compile(r"^([0-9a-fA-F]{32})(?:/|$)")


def secret_values(settings: Settings) -> list[str]:
    """Every secret value these settings hold: ``SecretStr`` fields and the API keys' keys."""
    found: list[str] = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
    if settings.api_keys:
        found.append(settings.api_keys)
        for pair in settings.api_keys.split(","):
            _, _, key = pair.partition("=")
            found.append(key.strip())
    return sorted({s for s in found if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)


class Redactor:
    """Replaces known secret values (and bearer tokens, ``key=`` parameters) in any JSON-able value."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        for pattern in _CREDENTIAL_PATTERNS:
            value = pattern.sub(lambda m: m.group(1) + REDACTED, value)
        return value

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        return self.text(str(value))


def trace_name(project: str | None, header: str | None) -> str | None:
    """``projects/P/traces/T`` from an ``X-Cloud-Trace-Context`` header (``T/SPAN;o=1``), if both known."""
    if not project or not header:
        return None
    match = _TRACE_HEADER_RE.match(header.strip())
    return f"projects/{project}/traces/{match.group(1).lower()}" if match else None


class EventLog:
    """Writes the JSON lines of one process; ``job_id``, ``stage`` and ``trace`` fill in defaults."""

    def __init__(
        self,
        redactor: Redactor | None = None,
        *,
        job_id: str | None = None,
        trace: str | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.redactor = redactor or Redactor()
        self.job_id, self.trace, self.stage = job_id, trace, None
        self.stream = stream

    def event(
        self,
        severity: str,
        message: str,
        job_id: str | None = None,
        stage: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Write one line and return what was written (already redacted)."""
        entry: dict[str, Any] = {
            "severity": severity.upper(),
            "message": message,
            "job_id": job_id or self.job_id,
            "stage": stage or self.stage,
            **extra,
        }
        if self.trace:
            entry[TRACE_KEY] = self.trace
        entry = self.redactor(entry)
        print(json.dumps(entry, default=str), file=self.stream or sys.stdout, flush=True)
        return entry


class JsonLogHandler(logging.Handler):
    """Routes library log records (papermill, nbclient, google-*) into the same redacted JSON lines."""

    def __init__(self, log: EventLog, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            extra: dict[str, Any] = {"logger": record.name}
            if record.exc_info:
                extra["traceback"] = logging.Formatter().formatException(record.exc_info)
            self.log.event(record.levelname, record.getMessage(), **extra)
        except Exception:  # a log line must never take the job down
            self.handleError(record)


def event_log(settings: Settings, job_id: str | None = None, trace: str | None = None) -> EventLog:
    """The event log of a process running with ``settings`` (it redacts their secrets)."""
    return EventLog(Redactor(secret_values(settings)), job_id=job_id, trace=trace)
