"""The Kapsule API (``api.main:app``). For now only the health check; the /v1 routes come next."""

from __future__ import annotations

from fastapi import FastAPI

from kapsule_pipeline import __version__

app = FastAPI(
    title="Kapsule", version=__version__, description="A song in, a music video cut to its beats out."
)


@app.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    """Liveness: the process is up and serving."""
    return {"status": "ok", "version": __version__}
