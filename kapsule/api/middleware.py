"""The API's outer guard, one plain ASGI middleware (cheap on the hot path, no per-request task):

- open mode answers only loopback ``Host`` headers (DNS rebinding: a page on evil.example that
  resolves its name to 127.0.0.1 sends ``Host: evil.example``);
- request bodies are limited to ``max_request_bytes``, refused with 413 from the ``Content-Length``
  before a byte is read, or as soon as a streamed body passes the limit (the local upload ``PUT``
  has its own, per-ticket limit and is left to it);
- every response says ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer`` (a
  signed link in a page's address never leaks through a Referer), and the studio page gets a
  Content-Security-Policy that loads only its own files and cannot be framed.

Plus ``RedactSignatures``, the filter that keeps signed query strings out of uvicorn's access log.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kapsule.core.access import host_header_name, is_loopback_host
from kapsule.core.errors import HostNotAllowed, RequestTooLarge

# The studio: its own scripts and styles only; uploads and videos may go to Cloud Storage (signed
# URLs); notebooks are shown in a sandboxed frame of this origin; nobody may frame the studio.
STUDIO_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob: https://storage.googleapis.com; "
    "connect-src 'self' https://storage.googleapis.com; frame-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_API_PREFIXES = ("/v1/", "/v1", "/healthz", "/docs", "/redoc", "/openapi.json")
_UPLOAD_PUT_PREFIX = "/v1/uploads/"
_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
_STUDIO = [(b"content-security-policy", STUDIO_CSP.encode()), (b"x-frame-options", b"DENY")]


class _BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit: FastAPI's body reader lets an
    ``HTTPException`` through, so it becomes the JSON 413 of ``kapsule.api.errors``; one raised elsewhere
    (a route that streams its body) is answered here."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than this server accepts ({limit} bytes)")


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class Guard:
    """See the module docstring; ``open_mode`` is decided once, at app creation (``access.is_open``)."""

    def __init__(self, app: ASGIApp, *, open_mode: bool, max_body: int) -> None:
        self.app = app
        self.open_mode = open_mode
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = dict(scope["headers"])
        path: str = scope["path"]
        extra = _ALWAYS if path.startswith(_API_PREFIXES) else _ALWAYS + _STUDIO
        if self.open_mode:
            host = headers.get(b"host", b"").decode("latin-1")
            if not is_loopback_host(host_header_name(host)):
                await _refuse(send, HostNotAllowed.http_status, HostNotAllowed.code, _HOST_MESSAGE, extra)
                return
        limited = not (scope["method"] == "PUT" and path.startswith(_UPLOAD_PUT_PREFIX))
        if limited:
            length = headers.get(b"content-length", b"")
            if length.isdigit() and int(length) > self.max_body:
                await _refuse(send, 413, RequestTooLarge.code, self._too_large(), extra)
                return
            receive = self._counting(receive)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except _BodyTooLarge:
            if started:
                raise
            await _refuse(send, 413, RequestTooLarge.code, self._too_large(), extra)

    def _too_large(self) -> str:
        return f"the request body is larger than this server accepts ({self.max_body} bytes)"

    def _counting(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge(limit)
            return message

        return counted


_HOST_MESSAGE = (
    "this server runs in open mode (no API keys) and answers only requests addressed to localhost "
    "or 127.0.0.1; open it at http://127.0.0.1:PORT/"
)


async def _refuse(send: Send, status: int, code: str, message: str, extra: list[tuple[bytes, bytes]]) -> None:
    body = _error_body(code, message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(b"connection", b"close")] if status == 413 else []
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": body})


_SECRET_QUERY = re.compile(r"((?:^|[?&])(?:signature|x-goog-signature|token|key)=)[^&\s\"]*", re.IGNORECASE)


class RedactSignatures(logging.Filter):
    """Replaces signature values in uvicorn access-log lines: a signed URL in a log is a usable URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact(args[2]), *args[3:])
        return True


def redact(path_and_query: str) -> str:
    """``/v1/uploads/u1?expires=1&signature=ab`` → ``/v1/uploads/u1?expires=1&signature=[redacted]``."""
    return _SECRET_QUERY.sub(r"\1[redacted]", path_and_query)


def install_access_log_filter() -> None:
    """Add the filter to uvicorn's access logger once (every way of serving the app builds the app)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSignatures) for f in logger.filters):
        logger.addFilter(RedactSignatures())
