"""Liveness for Cloud Run (``/healthz``) and, under ``/v1``, what the studio page needs to know."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from kapsule import __version__
from kapsule.api.deps import SettingsDep
from kapsule.core.access import parse_api_keys

router = APIRouter(tags=["health"])
v1_router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str


class ApiHealth(Health):
    auth: str  # "api-keys" (send a Bearer key) or "open" (local mode, loopback only)
    max_upload_bytes: int  # the largest song the server takes (the page says so before uploading)
    video_model: str = "local"  # a job's video model unless it names one (the page says what 'local' makes)


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up and serving."""
    return Health(status="ok", version=__version__)


@v1_router.get("/healthz", response_model=ApiHealth)
def api_healthz(settings: SettingsDep) -> ApiHealth:
    """Up, and whether callers need an API key (the studio page asks for one only then)."""
    auth = "api-keys" if parse_api_keys(settings.api_keys) else "open"
    return ApiHealth(
        status="ok",
        version=__version__,
        auth=auth,
        max_upload_bytes=settings.max_upload_bytes,
        video_model=settings.video_model,
    )
