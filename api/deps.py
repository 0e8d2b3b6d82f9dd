"""The API's dependencies, as ``Annotated`` aliases routes declare (tests swap them through
``app.dependency_overrides``): settings, the stores, the launcher, the upload secret and the caller.

Backends are opened once per URL and reused across requests: the SQLite store keeps a connection per
thread, and a launcher remembers the processes it started.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request

from api.preflight import Preflight
from jobs.run_job import local_command
from kapsule_pipeline.context import Stores
from kapsule_pipeline.errors import ConfigError, Unauthorized
from kapsule_pipeline.launch import Launcher, make_launcher
from kapsule_pipeline.service import JobService
from kapsule_pipeline.settings import Settings, get_settings
from kapsule_pipeline.status import StatusStore, open_status_store
from kapsule_pipeline.storage import Storage, open_storage

log = logging.getLogger("kapsule.api")

LOCAL_OWNER = "local"
_T = TypeVar("_T")

_lock = threading.Lock()
_storages: dict[str, Storage] = {}
_status_stores: dict[str, StatusStore] = {}
_launchers: dict[str, Launcher] = {}
_process_secret: bytes | None = None


async def settings() -> Settings:
    """``get_settings()`` (cached). The dependencies here are ``async`` only because they never block:
    FastAPI runs a plain ``def`` dependency in its thread pool, a hop per dependency per request."""
    return get_settings()


SettingsDep = Annotated[Settings, Depends(settings)]


def require_ready(request: Request) -> None:
    """Refuse a new job while the start-up preflight (cloud mode) has a blocking problem.

    A plain ``def``: while blocked it may run the checks again, which is network I/O.
    """
    preflight: Preflight | None = getattr(request.app.state, "preflight", None)
    if preflight is not None:
        preflight.require_ready()


def _cached(cache: dict[str, _T], key: str, make: Callable[[], _T]) -> _T:
    with _lock:
        if key not in cache:
            cache[key] = make()
        return cache[key]


async def get_storage(settings: SettingsDep) -> Storage:
    return _cached(_storages, settings.storage_url, lambda: open_storage(settings.storage_url))


async def get_delivery(settings: SettingsDep) -> Storage:
    url = settings.effective_delivery_url
    return _cached(_storages, url, lambda: open_storage(url))


async def get_status(settings: SettingsDep) -> StatusStore:
    return _cached(_status_stores, settings.status_url, lambda: open_status_store(settings.status_url))


async def get_launcher(settings: SettingsDep) -> Launcher:
    key = f"{settings.launcher}|{settings.storage_url}|{settings.status_url}|{settings.work_dir}"
    return _cached(_launchers, key, lambda: make_launcher(settings.launcher, settings, local_command()))


async def get_service(
    settings: SettingsDep,
    storage: Annotated[Storage, Depends(get_storage)],
    delivery: Annotated[Storage, Depends(get_delivery)],
    status: Annotated[StatusStore, Depends(get_status)],
    launcher: Annotated[Launcher, Depends(get_launcher)],
) -> JobService:
    """The job service over this process's stores and launcher (cheap: it only holds them)."""
    return JobService(Stores(settings, storage, delivery, status), launcher)


async def get_upload_secret(settings: SettingsDep) -> bytes:
    """The key that signs local upload URLs and Idempotency-Key job ids.

    Unset, a random one is made per process (and logged as such): safe, but upload URLs and
    idempotency keys do not survive a restart or reach another replica.
    """
    global _process_secret
    if settings.upload_secret is not None:
        return settings.upload_secret.get_secret_value().encode()
    with _lock:
        if _process_secret is None:
            _process_secret = secrets.token_bytes(32)
            log.warning(
                "KAPSULE_UPLOAD_SECRET is not set: upload URLs are signed with a random per-process key"
            )
        return _process_secret


def parse_api_keys(raw: str | None) -> dict[str, str]:
    """``owner=key,owner2=key2`` → {owner: key}; empty when unset (open local mode)."""
    keys: dict[str, str] = {}
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        owner, sep, key = item.partition("=")
        if not sep or not owner.strip() or not key.strip():
            raise ConfigError("KAPSULE_API_KEYS must look like owner=key,owner2=key2")
        keys[owner.strip()] = key.strip()
    return keys


async def current_owner(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> str:
    """The owner the request acts for: from its Bearer key, or "local" when no keys are configured."""
    keys = parse_api_keys(settings.api_keys)
    if not keys:
        return LOCAL_OWNER
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("this server needs an API key: send 'Authorization: Bearer YOUR_KEY'")
    owner = None
    for name, key in keys.items():
        if hmac.compare_digest(key.encode(), token.strip().encode()):
            owner = name
    if owner is None:
        raise Unauthorized("that API key is not valid for this server")
    return owner


StorageDep = Annotated[Storage, Depends(get_storage)]
DeliveryDep = Annotated[Storage, Depends(get_delivery)]
StatusDep = Annotated[StatusStore, Depends(get_status)]
LauncherDep = Annotated[Launcher, Depends(get_launcher)]
SecretDep = Annotated[bytes, Depends(get_upload_secret)]
OwnerDep = Annotated[str, Depends(current_owner)]
ServiceDep = Annotated[JobService, Depends(get_service)]
