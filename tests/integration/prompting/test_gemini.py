"""The Gemini storyboard writer through the real google-genai client against the local fake server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kapsule.core.errors import ConfigError, GoogleRequestRefused
from kapsule.core.settings import Settings
from kapsule.infra import genai_client
from kapsule.job.artifacts import Analysis, EnergyCurve, Section
from kapsule.prompting import make_prompt_writer
from kapsule.prompting.base import ShotBrief
from kapsule.prompting.gemini import GeminiPromptWriter
from kapsule.storyboard.plan import plan_storyboard
from tests.support.contexts import job_context
from tests.support.fake_google import FakeGoogle
from tests.support.settings import replace

MODEL = "gemini-2.5-flash"


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(genai_client, "RETRY_BASE_S", 0.01)


def _analysis() -> Analysis:
    times = [i * 0.5 for i in range(40)]
    beats = [i * 0.5 for i in range(40)]
    return Analysis(
        duration=20.0,
        tempo=120.0,
        beats=beats,
        downbeats=beats[::4],
        sections=[Section(start=0.0, end=10.0, label="verse"), Section(start=10.0, end=20.0, label="chorus")],
        energy=EnergyCurve(times=times, values=[min(1.0, t / 20) for t in times]),
    )


def _briefs(n: int = 4) -> list[ShotBrief]:
    return [
        ShotBrief(index=i, start=i * 5.0, end=(i + 1) * 5.0, section="verse", energy=0.2 * i, tempo=120.0)
        for i in range(n)
    ]


def _write(settings: Settings, n: int = 4):
    writer = make_prompt_writer(job_context(settings, prompt_model=MODEL))
    return writer.write(_briefs(n), prompt="a violinist", style="35 mm film", analysis=_analysis())


def test_vertex_storyboard_uses_structured_output_and_the_shot_list(
    vertex_settings: Settings, fake_google: FakeGoogle
) -> None:
    plan = _write(vertex_settings)
    assert plan.prompts == [f"Gemini shot {i}: the violinist under streetlights" for i in range(4)]
    assert plan.negative_prompt == "text, watermark"
    assert "teal and amber" in plan.style_bible and "yellow raincoat" in plan.style_bible
    assert plan.note == ""
    (call,) = fake_google.requests("generate")
    vertex_prefix = "/v1beta1/projects/fake-project/locations/global/publishers/google"  # Gemini's location
    assert call.path == f"{vertex_prefix}/models/{MODEL}:generateContent"
    assert call.headers.get("Authorization") == "Bearer fake-access-token"
    config = call.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert "shots" in json.dumps(config["responseSchema"])
    text = call.body["contents"][0]["parts"][0]["text"]
    assert "a violinist" in text and '"section": "verse"' in text


def test_malformed_json_is_asked_again(api_key_settings: Settings, fake_google: FakeGoogle) -> None:
    fake_google.gemini_replies = ['{"style_bible": {"palette": ', json.dumps({"shots": []})]
    plan = _write(api_key_settings)
    assert plan.prompts[0].startswith("Gemini shot 0"), plan.note and plan.note == ""
    calls = fake_google.requests("generate")
    assert len(calls) == 3
    assert all(c.path == f"/v1beta/models/{MODEL}:generateContent" for c in calls)
    assert "previous answer was unusable" in calls[1].body["contents"][0]["parts"][0]["text"]


def test_always_malformed_falls_back_to_the_local_writer_with_the_reason(
    api_key_settings: Settings, fake_google: FakeGoogle
) -> None:
    fake_google.gemini_replies = ["not json"] * 3
    plan = _write(api_key_settings, n=3)
    assert len(plan.prompts) == 3 and not plan.prompts[0].startswith("Gemini")
    assert "fell back to the local writer" in plan.note and "3 tries" in plan.note


def test_server_errors_are_retried_then_a_dead_service_falls_back(
    api_key_settings: Settings, fake_google: FakeGoogle, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_google.fail_next = {"generate": [500, 429]}
    assert _write(api_key_settings).prompts[0].startswith("Gemini shot 0")
    assert len(fake_google.requests("generate")) == 3

    monkeypatch.setattr(genai_client, "RETRY_ATTEMPTS", 2)
    fake_google.fail_next = {"generate": [503, 503]}
    plan = _write(api_key_settings)
    assert "unavailable" in plan.note and "still failing after 2 attempts" in plan.note
    assert not plan.prompts[0].startswith("Gemini")


def test_storyboard_records_gemini_as_prompt_model(
    vertex_settings: Settings, fake_google: FakeGoogle
) -> None:
    board = plan_storyboard(
        _analysis(),
        prompt="a violinist",
        writer=make_prompt_writer(job_context(vertex_settings, prompt_model=MODEL)),
        max_shots=4,
    )
    assert board.prompt_model == MODEL
    assert all(s.prompt.startswith(f"Gemini shot {s.index}") for s in board.shots)
    assert all(s.negative_prompt == "text, watermark" for s in board.shots)


def test_rephrase_returns_gemini_text(api_key_settings: Settings, fake_google: FakeGoogle) -> None:
    fake_google.gemini_replies = ["A calm street, lanterns glowing"]
    writer = GeminiPromptWriter(MODEL, api_key_settings)
    assert writer.rephrase("a street on fire", ["violence"]) == "A calm street, lanterns glowing"
    assert "a street on fire" in json.dumps(fake_google.requests("generate")[0].body)


def test_vertex_without_project_is_a_config_error(
    vertex_settings: Settings, fake_google: FakeGoogle, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)  # nor may google-auth find one
    sa = json.loads(Path(os.environ["GOOGLE_APPLICATION_CREDENTIALS"]).read_text())
    sa.pop("project_id")
    (tmp_path / "noproj.json").write_text(json.dumps(sa))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "noproj.json"))
    with pytest.raises(ConfigError, match="GOOGLE_CLOUD_PROJECT"):
        _write(replace(vertex_settings, google_cloud_project=None))


def _live_settings() -> Settings | None:
    settings = Settings()  # this machine's own environment: a developer opts in there
    if settings.genai_base_url or not os.environ.get("KAPSULE_LIVE_GOOGLE"):
        return None
    try:
        genai_client.genai_mode(settings)
    except ConfigError:
        return None
    return settings


@pytest.mark.skipif(
    _live_settings() is None, reason="live Gemini test: set KAPSULE_LIVE_GOOGLE=1 and credentials"
)
def test_live_gemini_storyboard() -> None:  # pragma: no cover - opt-in, needs a real account
    settings = _live_settings()
    assert settings is not None
    plan = GeminiPromptWriter(MODEL, settings).write(
        _briefs(3), prompt="a violinist", style="35 mm film", analysis=_analysis()
    )
    assert len(plan.prompts) == 3 and plan.note == ""


def test_gemini_hears_the_song_only_when_asked(
    api_key_settings: Settings,
    fake_google: FakeGoogle,
    demo_song_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kapsule import media
    from tests.support.fake_google import sent_audio

    writer = make_prompt_writer(job_context(api_key_settings, prompt_model=MODEL))
    writer.write(_briefs(), prompt="a violinist", style="", analysis=_analysis())
    assert sent_audio(fake_google.requests("generate")[-1]) == [], "audio is off by default"

    ctx = job_context(replace(api_key_settings, gemini_send_audio=True), prompt_model=MODEL)
    ctx.storage.upload_from(demo_song_file, ctx.layout.input_song("wav"))  # the job's own song is sent
    writer = make_prompt_writer(ctx)
    plan = writer.write(_briefs(), prompt="a violinist", style="", analysis=_analysis())
    assert plan.prompts[0].startswith("Gemini shot 0"), plan.note
    [(mime, data)] = sent_audio(fake_google.requests("generate")[-1])
    assert mime == "audio/mpeg"
    excerpt = tmp_path / "sent.mp3"
    excerpt.write_bytes(data)
    probe = media.probe(excerpt)
    assert probe.audio and probe.audio[0].codec == "mp3"
    assert probe.duration == pytest.approx(media.probe(demo_song_file).duration, abs=0.2)
    assert len(data) < demo_song_file.stat().st_size / 10  # low bitrate: a fraction of the WAV


@pytest.mark.parametrize(
    ("status", "needle"),
    [
        (403, "roles/aiplatform.user"),
        (401, "credentials were rejected"),
        (400, "request is invalid"),
    ],
)
def test_a_refusal_no_retry_can_fix_fails_the_stage_instead_of_falling_back(
    vertex_settings: Settings, fake_google: FakeGoogle, status: int, needle: str
) -> None:
    fake_google.fail_next = {"generate": [status]}
    with pytest.raises(GoogleRequestRefused, match=needle) as info:
        _write(vertex_settings)
    assert info.value.code == "google_refused" and not info.value.retryable
    assert f"{MODEL} storyboard: Google answered {status}" in info.value.message
    assert len(fake_google.requests("generate")) == 1, "a refusal is not retried"


def test_a_retired_model_is_a_404_that_names_the_fix(
    vertex_settings: Settings, fake_google: FakeGoogle
) -> None:
    fake_google.gemini_models.discard(MODEL)  # as if Google had retired it
    with pytest.raises(GoogleRequestRefused, match=r"404 NOT_FOUND.*retired.*KAPSULE_GEMINI_LOCATION"):
        _write(vertex_settings)


def test_a_rephrasing_refused_by_google_is_not_softened_silently(
    api_key_settings: Settings, fake_google: FakeGoogle
) -> None:
    from kapsule.generation.veo import VeoGenerator

    writer = GeminiPromptWriter(MODEL, api_key_settings)
    veo = VeoGenerator("veo-3.0-generate-001", job_context(api_key_settings), rephraser=writer.rephrase)
    fake_google.fail_next = {"generate": [403]}
    with pytest.raises(GoogleRequestRefused, match="403"):
        veo._rephrase("a street on fire", ["violence"])


def test_the_temperature_follows_googles_advice_for_the_models_family(
    api_key_settings: Settings, fake_google: FakeGoogle
) -> None:
    """Google's Gemini 3 prompting guide: keep 1.0 (lower values can loop); 2.5 keeps our 0.8."""
    for model in ("gemini-2.5-flash", "gemini-3-flash-preview", "gemini-3.6-flash"):
        writer = GeminiPromptWriter(model, api_key_settings)
        writer.write(_briefs(2), prompt="a violinist", style="", analysis=_analysis())
    sent = {
        call.model: call.body["generationConfig"]["temperature"] for call in fake_google.requests("generate")
    }
    assert sent == {"gemini-2.5-flash": 0.8, "gemini-3-flash-preview": 1.0, "gemini-3.6-flash": 1.0}
