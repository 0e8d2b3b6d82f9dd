"""Settings for the two ways Kapsule reaches Google, both pointed at the fake server (``fake_google``):
Vertex AI with Application Default Credentials, and the Gemini API with a key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kapsule.core.settings import Settings
from tests.support.fake_google import FakeGoogle, write_service_account
from tests.support.settings import replace


def vertex_fields(fake: FakeGoogle) -> dict[str, Any]:
    """The settings of Vertex AI mode against ``fake``."""
    return {
        "genai_use_vertexai": True,
        "google_cloud_project": "fake-project",
        "veo_location": "us-central1",
        "gemini_location": "global",
        "gemini_api_key": None,
        "genai_base_url": fake.url,
    }


@pytest.fixture
def vertex_settings(
    fake_google: FakeGoogle, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Vertex AI mode against the fake server, with real offline ADC (a service-account file, which
    google-auth finds through GOOGLE_APPLICATION_CREDENTIALS itself)."""
    creds = write_service_account(tmp_path / "sa.json", f"{fake_google.url}/token")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(creds))
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):  # google-genai's own fallbacks
        monkeypatch.delenv(name, raising=False)
    return replace(settings, **vertex_fields(fake_google))


@pytest.fixture
def api_key_settings(
    fake_google: FakeGoogle, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Gemini API-key mode against the fake server."""
    for name in ("GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)  # what google-genai and google-auth would find alone
    return replace(
        settings, genai_use_vertexai=False, gemini_api_key="fake-api-key", genai_base_url=fake_google.url
    )
