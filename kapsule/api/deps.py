"""The API's dependencies, as ``Annotated`` aliases routes declare (tests swap them through
``app.dependency_overrides``): settings, the stores, the launcher, the upload secret and the caller.

The caller is known by a Bearer key (API clients) or by the studio's session cookie
(``kapsule.api.sessions``). A state-changing request carried by the cookie must also come from this
server's own origin (or a configured CORS origin): SameSite=Strict already keeps the cookie off
cross-site requests, the Origin check holds even where a browser is lax about it.

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
from starlette.concurrency import run_in_threadpool

from kapsule.api import sessions
from kapsule.api.preflight import Preflight
from kapsule.control.service import JobService
from kapsule.core.access import LOCAL_OWNER, parse_api_keys
from kapsule.core.errors import CsrfRefused, SessionInvalid, TooManyKeyAttempts, Unauthorized
from kapsule.core.settings import Settings
from kapsule.infra.context import Stores
from kapsule.infra.launch import Launcher, make_launcher
from kapsule.infra.status import StatusStore, open_status_store
from kapsule.infra.storage import Storage, open_storage
from kapsule.worker.run_job import local_command

log = logging.getLogger("kapsule.api")

_T = TypeVar("_T")

_lock = threading.Lock()
_storages: dict[str, Storage] = {}
_status_stores: dict[str, StatusStore] = {}
_launchers: dict[str, Launcher] = {}
_process_secret: bytes | None = None


async def settings(request: Request) -> Settings:
    """The settings the app was made with (``create_app(settings)``), so that the middleware and every
    route see one configuration. The dependencies here are ``async`` only because they never block:
    FastAPI runs a plain ``def`` dependency in its thread pool, a hop per dependency per request."""
    made_with: Settings = request.app.state.settings
    return made_with


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


def client_address(request: Request) -> str:
    """Who is knocking: the peer address (behind a proxy, the one its trusted X-Forwarded-For names)."""
    return request.client.host if request.client else "unknown"


def owner_of_key(request: Request, keys: dict[str, str], given: str) -> str:
    """The owner whose key ``given`` is (compared in constant time against every key); a wrong key is
    ``Unauthorized`` and counts against the request's client, whose attempts pause once it has made
    too many (the app's ``KeyThrottle``)."""
    throttle: sessions.KeyThrottle = request.app.state.key_throttle
    client = client_address(request)
    wait_s = throttle.retry_after(client)
    if wait_s:
        raise TooManyKeyAttempts(f"too many wrong API keys from this address; try again in {wait_s} s")
    owner = None
    for name, key in keys.items():
        if hmac.compare_digest(key.encode(), given.encode("utf-8", "surrogateescape")):
            owner = name
    if owner is None:
        throttle.failed(client)
        raise Unauthorized("that API key is not valid for this server")
    return owner


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def check_same_origin(request: Request, settings: Settings) -> None:
    """Refuse a state-changing cookie request whose Origin is not this server (or an allowed origin)."""
    if request.method in _SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    allowed = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
    allowed |= {o.strip() for o in (settings.cors_origins or "").split(",") if o.strip()}
    if origin not in allowed:
        raise CsrfRefused(
            "this request changes something but did not come from the studio's own page; "
            "API clients send 'Authorization: Bearer KEY' instead of the session cookie"
        )


async def current_owner(
    request: Request,
    settings: SettingsDep,
    secret: Annotated[bytes, Depends(get_upload_secret)],
    status: Annotated[StatusStore, Depends(get_status)],
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The owner the request acts for: its Bearer key, its session cookie, or "local" in open mode.

    Only a session cookie costs I/O (is it signed out? the status store says, in the thread pool).
    """
    keys = parse_api_keys(settings.api_keys)
    if not keys:
        return LOCAL_OWNER
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("this server needs an API key: send 'Authorization: Bearer YOUR_KEY'")
        return owner_of_key(request, keys, token.strip())
    cookie = request.cookies.get(sessions.COOKIE)
    if cookie is None:
        raise Unauthorized("this server needs an API key: send 'Authorization: Bearer YOUR_KEY'")
    session = sessions.verify(secret, cookie, keys, settings.session_ttl_s)
    if session is None or await run_in_threadpool(status.session_revoked, session.session_id):
        raise SessionInvalid(
            "your session has ended (signed out, expired or key changed); enter the key again"
        )
    check_same_origin(request, settings)
    return session.owner


StorageDep = Annotated[Storage, Depends(get_storage)]
DeliveryDep = Annotated[Storage, Depends(get_delivery)]
StatusDep = Annotated[StatusStore, Depends(get_status)]
LauncherDep = Annotated[Launcher, Depends(get_launcher)]
SecretDep = Annotated[bytes, Depends(get_upload_secret)]
OwnerDep = Annotated[str, Depends(current_owner)]
ServiceDep = Annotated[JobService, Depends(get_service)]


def public_base(request: Request, settings: Settings) -> str:
    """The base of links this API hands out (upload and notebook URLs), never an untrusted Host.

    ``KAPSULE_PUBLIC_URL`` when set; otherwise the request's own base, whose Host the guard has
    already restricted to loopback names in open mode (``kapsule.api.middleware``). Keyed servers behind a
    proxy should set the public URL so a forged Host cannot shape the links in their answers.
    """
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")
