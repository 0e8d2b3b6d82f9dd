"""The google-genai client factory's choices: where each service is called, at which temperature,
and whether the installed SDK can reach Veo with a Gemini API key at all."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from kapsule.core.settings import Settings
from kapsule.infra.genai_client import api_endpoint, api_key_veo_problem, location_for, temperature_for
from tests.support.settings import make_settings


def test_gemini_and_veo_each_have_their_own_location_and_host() -> None:
    vertex = make_settings(genai_use_vertexai=True, google_cloud_project="p")
    assert (location_for(vertex, "gemini"), location_for(vertex, "veo")) == ("global", "us-central1")
    assert api_endpoint(vertex, "gemini") == "https://aiplatform.googleapis.com/"
    assert api_endpoint(vertex, "veo") == "https://us-central1-aiplatform.googleapis.com/"
    moved = make_settings(genai_use_vertexai=True, gemini_location="europe-west4", veo_location="us-east4")
    assert api_endpoint(moved, "gemini") == "https://europe-west4-aiplatform.googleapis.com/"
    assert api_endpoint(moved, "veo") == "https://us-east4-aiplatform.googleapis.com/"
    keyed = make_settings(gemini_api_key="k")
    assert (
        api_endpoint(keyed, "veo")
        == api_endpoint(keyed, "gemini")
        == "https://generativelanguage.googleapis.com/"
    )


def test_the_old_single_location_setting_still_places_veo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPSULE_VERTEX_LOCATION", "us-east4")
    settings = Settings()
    assert (settings.veo_location, settings.gemini_location) == ("us-east4", "global")


def test_temperature_follows_the_model_family() -> None:
    assert temperature_for("gemini-2.5-flash", 0.0) == 0.0
    assert temperature_for("gemini-3-flash-preview", 0.0) == 1.0
    assert temperature_for("gemini-3.6-flash", 0.8) == 1.0
    assert temperature_for("gemini-4-argon", 0.4) == 1.0


def test_veo_with_an_api_key_needs_google_genai_2() -> None:
    keyed = make_settings(gemini_api_key="k")
    problem = api_key_veo_problem(keyed, "3.6.1")
    assert "google-genai 3.6.1 refuses Veo (generate_videos) with a Gemini API key" in problem
    assert "GOOGLE_GENAI_USE_VERTEXAI=true" in problem and "google-genai<3" in problem
    assert api_key_veo_problem(keyed, "2.34.0") == ""
    assert api_key_veo_problem(make_settings(genai_use_vertexai=True), "3.6.1") == ""  # Vertex: allowed
    assert api_key_veo_problem(keyed) == ""  # the SDK pyproject pins (google-genai<3) is installed
    assert int(version("google-genai").split(".")[0]) < 3
