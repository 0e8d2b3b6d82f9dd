"""Structured logs: Cloud Logging's JSON shape, trace grouping, and no secret ever written."""

from __future__ import annotations

import io
import json
import logging

from pydantic import SecretStr

from kapsule.core.logs import TRACE_KEY, EventLog, JsonLogHandler, Redactor, event_log, trace_name
from kapsule.core.settings import Settings

GEMINI_KEY = "AIzaSyD-not-a-real-key-0123456789abcdef"


API_KEYS = "alice=ka_live_4f9c2e71b0,bob=kb_live_88d1e0aa27"


def _settings() -> Settings:
    return Settings(gemini_api_key=SecretStr(GEMINI_KEY), api_keys=API_KEYS, google_cloud_project="proj")


def _lines(stream: io.StringIO) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_an_event_is_one_json_line_with_cloud_loggings_keys() -> None:
    out = io.StringIO()
    trace = trace_name("proj", "105445aa7843bc8bf206b12000100000/1;o=1")
    log = EventLog(job_id="j1", trace=trace, stream=out)
    log.stage = "generate"

    log.event("warning", "shot 3 refused", shot=3)
    log.event("INFO", "done", stage="assemble")

    first, second = _lines(out)
    assert first == {
        "severity": "WARNING",
        "message": "shot 3 refused",
        "job_id": "j1",
        "stage": "generate",
        "shot": 3,
        TRACE_KEY: "projects/proj/traces/105445aa7843bc8bf206b12000100000",
    }
    assert second["stage"] == "assemble"
    assert trace_name(None, "105445aa7843bc8bf206b12000100000") is None
    assert trace_name("proj", "not-a-trace") is None


def test_no_secret_from_the_settings_reaches_a_log_line() -> None:
    out = io.StringIO()
    log = event_log(_settings(), job_id="j1")
    log.stream = out

    log.event(
        "ERROR",
        f"genai said: API key {GEMINI_KEY} not valid",
        keys=API_KEYS,
        headers={"x-goog-api-key": GEMINI_KEY, "authorization": "Bearer ya29.a0AfH6SMBxyz0123456789"},
        url="https://generativelanguage.googleapis.com/v1beta/models?key=AIzaOTHERKEY123&alt=json",
        traceback=f"Traceback ...\nValueError: bad key kb_live_88d1e0aa27 for {GEMINI_KEY[:10]}",
        owners=["alice", "ka_live_4f9c2e71b0"],
    )

    text = out.getvalue()
    for secret in (GEMINI_KEY, "ka_live_4f9c2e71b0", "kb_live_88d1e0aa27", "ya29.a0AfH6SMBxyz0123456789"):
        assert secret not in text
    assert "AIzaOTHERKEY123" not in text  # a key in a URL, even one we do not know
    (entry,) = _lines(out)
    assert entry["message"] == "genai said: API key [redacted] not valid"
    assert entry["owners"] == ["alice", "[redacted]"]
    assert entry["headers"]["authorization"] == "Bearer [redacted]"
    assert "alt=json" in entry["url"] and "?key=[redacted]" in entry["url"]


def test_short_or_ordinary_words_are_not_redacted() -> None:
    redact = Redactor(["abc", "s3cr3t-value"])
    assert redact("abc shot key=hash-1 s3cr3t-value") == "abc shot key=hash-1 [redacted]"


def test_library_log_records_go_through_the_same_redaction() -> None:
    out = io.StringIO()
    log = event_log(_settings(), job_id="j9")
    log.stream = out
    logger = logging.getLogger("kapsule.test.library")
    handler = JsonLogHandler(log)
    logger.addHandler(handler)
    try:
        logger.warning("retrying with key %s", GEMINI_KEY)
    finally:
        logger.removeHandler(handler)

    (entry,) = _lines(out)
    assert entry == {
        "severity": "WARNING",
        "message": "retrying with key [redacted]",
        "job_id": "j9",
        "stage": None,
        "logger": "kapsule.test.library",
    }
