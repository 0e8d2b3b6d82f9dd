"""The Kapsule API (``kapsule.api.main:app``): the ``/v1`` routes, JSON errors, and the studio page at ``/``.

``create_app`` builds the app from settings (CORS origins and open mode are decided once, at start);
``app`` is the instance uvicorn and Cloud Run serve (through ``python -m kapsule.api.serve``, which refuses to
listen open beyond loopback). ``kapsule.api.middleware.Guard`` wraps everything: loopback-only Host in open
mode, the body size limit, and the security headers. Routes stay thin: the library does the work,
``kapsule.api.deps`` supplies the stores and the caller, ``kapsule.api.errors`` turns every failure into
``{"error": {...}}``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from kapsule import __version__
from kapsule.api import sessions
from kapsule.api.errors import documented_responses, install_error_handlers
from kapsule.api.middleware import Guard, install_access_log_filter
from kapsule.api.preflight import Preflight
from kapsule.api.routes import events, health, jobs, notebooks, session, uploads
from kapsule.core.access import check_upload_secret, is_open, needs_upload_secret
from kapsule.core.errors import EndpointNotFound
from kapsule.core.settings import Settings, get_settings

STATIC_DIR = Path(__file__).resolve().parent / "static"
log = logging.getLogger("kapsule.api")


def _no_such_endpoint(request: Request) -> None:
    """Anything else under /v1 is a JSON 404 (not the studio's static files, which only answer GET)."""
    raise EndpointNotFound(f"there is no API endpoint {request.method} {request.url.path[:100]}")


def create_app(settings: Settings | None = None) -> FastAPI:
    """A fresh app on ``settings`` (the environment's when none are given: ``kapsule serve``)."""
    settings = settings or get_settings()
    preflight = Preflight(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # In cloud mode, check the deployment once at start-up (logged; jobs refused while blocked).
        await anyio.to_thread.run_sync(preflight.check)
        yield

    # /docs and /redoc load FastAPI's pages, whose scripts come from a CDN, into this origin: only on
    # the one-person loopback server unless the operator asks (the schema, /openapi.json, stays).
    docs = settings.api_docs if settings.api_docs is not None else not needs_upload_secret(settings)
    app = FastAPI(
        title="Kapsule",
        version=__version__,
        description="A song in, a music video cut to its beats out: upload a song, then make a job of it.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    app.state.preflight = preflight
    app.state.settings = settings
    app.state.key_throttle = sessions.KeyThrottle()  # wrong keys per client, for this process
    install_error_handlers(app)
    origins = [o.strip() for o in (settings.cors_origins or "").split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Idempotent-Replayed"],
        )
    open_mode = is_open(settings)  # a set-but-empty KAPSULE_API_KEYS stops here (ConfigError)
    check_upload_secret(settings)  # keyed or cloud: one secret for every replica, or no start
    if open_mode:
        log.warning("no KAPSULE_API_KEYS: open mode, answering loopback Host names only")
    app.add_middleware(Guard, open_mode=open_mode, max_body=settings.max_request_bytes)
    install_access_log_filter()
    app.include_router(health.router)
    for router in (
        health.v1_router,
        session.router,
        uploads.router,
        jobs.router,
        events.router,
        notebooks.router,
    ):
        app.include_router(router, prefix="/v1", responses=documented_responses())
    app.add_api_route(
        "/v1/{rest:path}",
        _no_such_endpoint,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="studio")
    return app


app = create_app()
