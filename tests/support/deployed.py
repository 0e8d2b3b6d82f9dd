"""A deployment as deploy.sh leaves it (Vertex models, buckets with CORS, a shared secret, an origin),
on the emulators and the fake Google APIs: what the doctor's checks and entry points are run against."""

from __future__ import annotations

from typing import Any

import pytest

from kapsule.control.doctor import UPLOAD_HEADERS
from kapsule.core.settings import Settings
from kapsule.infra.storage.gcs import GcsStorage
from tests.support.fake_google import FakeGoogle
from tests.support.google_modes import vertex_fields
from tests.support.settings import replace

ORIGIN = "https://kapsule-api-abc123-uc.a.run.app"


GOOD_CORS = [{"origin": [ORIGIN], "method": ["PUT", "GET"], "responseHeader": list(UPLOAD_HEADERS)}]


def set_cors(settings: Settings, rules: list[dict[str, Any]]) -> None:
    bucket = GcsStorage(settings.storage_url).bucket
    bucket.cors = rules
    bucket.patch()


@pytest.fixture
def deployed(vertex_settings: Settings, cloud_settings: Settings, fake_google: FakeGoogle) -> Settings:
    """A deployment as deploy.sh leaves it: Vertex models, buckets with CORS, records, secret, origin."""
    settings = replace(
        cloud_settings,
        **vertex_fields(fake_google),
        video_model="veo-3.1-fast-generate-001",
        prompt_model="gemini-2.5-flash",
        upload_secret="s3cret-shared-by-every-instance",
        cors_origins=ORIGIN,
    )
    set_cors(settings, GOOD_CORS)
    return settings
