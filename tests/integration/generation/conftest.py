"""Video-generation tests wait on a fake Veo: every wait here is shrunk to milliseconds."""

from __future__ import annotations

import pytest

from kapsule.core.settings import Settings
from kapsule.infra import genai_client
from tests.support.settings import replace


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries after ~10 ms (a module constant, not a setting)."""
    monkeypatch.setattr(genai_client, "RETRY_BASE_S", 0.01)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Polls every 50 ms, no rate-limit spacing to speak of (the Vertex and API-key settings build on it)."""
    return replace(
        settings, veo_poll_interval_s=0.05, veo_poll_max_interval_s=0.1, veo_requests_per_minute=60000
    )
