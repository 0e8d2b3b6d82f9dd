"""Errors as JSON: every failure the API returns is ``{"error": {"code", "message"}}``.

Library code raises ``KapsuleError``s carrying their own ``http_status``; this module is the one
place those, FastAPI's request validation errors and Starlette's HTTP errors (unknown path, wrong
method) become responses of that one shape, so the studio page and API clients parse one thing.
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path, PurePath
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from kapsule.core.errors import ERRORS, InvalidParameter, KapsuleError, codes_for_status

log = logging.getLogger("kapsule.api")

_HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    416: "range_not_satisfiable",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _server_roots(request: Request) -> list[str]:
    """Folders of this machine a message could name: temporary files, the work and storage folders."""
    settings = getattr(request.app.state, "settings", None)
    roots = [tempfile.gettempdir()]
    if settings is not None:
        roots.append(str(Path(settings.work_dir).resolve()))
        if settings.storage_url.startswith("file://"):
            roots.append(settings.storage_url.removeprefix("file://"))
    return sorted({root.rstrip("/") for root in roots if len(root.rstrip("/")) > 1}, key=len, reverse=True)


def without_server_paths(message: str, roots: list[str]) -> str:
    """``message`` with every path under ``roots`` cut to its file name: a client learns nothing of
    the server's folders (``/tmp/kapsule-check-…/song.wav`` becomes ``song.wav``)."""
    for root in roots:
        message = re.sub(re.escape(root) + r"/[^\s\"'<>:,;)]*", lambda m: PurePath(m.group()).name, message)
    return message


async def _kapsule_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KapsuleError)
    if exc.http_status >= 500:
        log.error("request failed: [%s] %s", exc.code, exc.message)
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    message = without_server_paths(exc.message, _server_roots(request))
    return error_response(exc.http_status, exc.code, message, headers)


def _field(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "the request body is not valid JSON")
    problems = "; ".join(f"{_field(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in errors[:5])
    # The code a bad value gets everywhere (CLI, job service): a client handles one code, not two.
    return error_response(422, InvalidParameter.code, problems or "the request is not valid")


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    if exc.status_code == 404 and message == "Not Found":
        message = "there is nothing at this address"
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal", "something went wrong on our side; the error has been logged")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error the API returns: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


def documented_responses() -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for every status a ``KapsuleError`` can answer with, listing its codes."""
    statuses = sorted({cls.http_status for cls in ERRORS.values()} | {400, 422})
    return {
        status: {
            "model": ErrorBody,
            "description": "Error codes: " + ", ".join(codes_for_status(status) or ["malformed_json"]),
        }
        for status in statuses
    }


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(KapsuleError, _kapsule_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
