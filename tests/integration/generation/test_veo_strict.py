"""The fake is as strict as Google, and the Veo generator never sends what Google would refuse.

Veo runs through the real google-genai client against the local fake server, whose limits
(``tests/support/fake_veo_rules.py``) are written from Google's documentation independently of the product's
table (``video_models``): a wrong table entry would show up here as a 400 in the request log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kapsule.core.errors import UnknownModel
from kapsule.core.settings import Settings
from kapsule.generation import make_video_generator
from kapsule.generation.references import read_reference_image, store_reference_images
from kapsule.generation.runner import generate_shots
from kapsule.infra.genai_client import make_genai_client
from kapsule.infra.storage import open_storage
from kapsule.job.artifacts import ShotManifest, Storyboard
from kapsule.job.layout import JobLayout
from kapsule.job.record import new_job_id
from tests.support.contexts import job_context
from tests.support.fake_google import FakeGoogle
from tests.support.veo import veo_analysis, veo_board


def _generate(
    board: Storyboard,
    model: str,
    settings: Settings,
    tmp_path: Path,
    job: str = "",
    reference_images: tuple[str, ...] = (),
) -> ShotManifest:
    job = job or new_job_id()
    ctx = job_context(settings, job, reference_images=reference_images)
    return generate_shots(
        board=board,
        analysis=veo_analysis(board.duration),
        generator=make_video_generator(ctx, model),
        storage=open_storage(settings.storage_url),
        layout=JobLayout(job),
        workdir=tmp_path / "work",
    )


def _start(settings: Settings, model: str, **config: Any) -> Any:
    """A Veo start request sent straight through google-genai, bypassing Kapsule's table."""
    from google.genai import errors, types

    client = make_genai_client(settings, "veo")
    try:
        client.models.generate_videos(
            model=model,
            source=types.GenerateVideosSource(prompt="x"),
            config=types.GenerateVideosConfig(**config),
        )
    except errors.ClientError as exc:
        return exc
    return None


def _ref() -> Any:
    from google.genai import types

    image = types.Image(image_bytes=b"\x89PNG\r\n\x1a\nxx", mime_type="image/png")
    return types.VideoGenerationReferenceImage(image=image, reference_type="asset")


@pytest.mark.parametrize(
    ("model", "config", "needle"),
    [
        ("veo-3.1-generate-preview", {"duration_seconds": 6, "resolution": "1080p"}, "8 seconds"),
        ("veo-3.0-generate-001", {"resolution": "1080p", "aspect_ratio": "9:16"}, "16:9"),
        ("veo-2.0-generate-001", {"duration_seconds": 7}, "Unsupported duration 7s"),
        ("veo-3.1-generate-preview", {"duration_seconds": 6, "reference_images": "ref"}, "8 seconds"),
        (
            "veo-3.1-fast-generate-preview",
            {"duration_seconds": 8, "reference_images": "ref"},
            "not supported",
        ),
    ],
)
def test_the_fake_answers_googles_own_400_in_gemini_api_mode(
    api_key_settings: Settings, fake_google: FakeGoogle, model: str, config: dict[str, Any], needle: str
) -> None:
    if config.get("reference_images") == "ref":
        config["reference_images"] = [_ref()]
    exc = _start(api_key_settings, model, **config)
    assert exc is not None and (exc.code, exc.status) == (400, "INVALID_ARGUMENT"), exc
    assert needle in exc.message


def test_the_fake_refuses_reference_shapes_and_unknown_models_in_vertex_mode(
    vertex_settings: Settings, fake_google: FakeGoogle
) -> None:
    exc = _start(
        vertex_settings,
        "veo-3.1-generate-preview",
        duration_seconds=8,
        aspect_ratio="9:16",
        reference_images=[_ref()],
    )
    assert exc is not None and exc.code == 400 and "16:9" in exc.message
    exc = _start(vertex_settings, "veo-2.0-generate-001", duration_seconds=8, generate_audio=False)
    assert exc is not None and exc.code == 400 and "generateAudio" in exc.message
    exc = _start(vertex_settings, "veo-3.1-lite-generate-preview", duration_seconds=8)
    assert exc is not None and (exc.code, exc.status) == (404, "NOT_FOUND")
    assert (
        "Publisher Model `projects/fake-project/locations/us-central1/publishers/google/models/"
        in exc.message
    )
    assert (
        _start(vertex_settings, "veo-2.0-generate-001", duration_seconds=7) is None
    )  # 7 s is fine on Vertex


def test_an_unknown_model_is_refused_before_any_request(
    vertex_settings: Settings, fake_google: FakeGoogle
) -> None:
    with pytest.raises(UnknownModel, match=r"veo-3\.1-lite-generate-preview"):
        make_video_generator(job_context(vertex_settings), "veo-3.1-lite-generate-preview")
    assert fake_google.log == []


def test_a_blocked_prompt_is_rephrased_once(
    vertex_settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    fake_google.block_words = ("explosion",)
    manifest = _generate(
        veo_board(["a car explosion on a rooftop"]), "veo-3.0-generate-001", vertex_settings, tmp_path
    )
    (shot,) = manifest.shots
    assert shot.state == "done" and shot.generator == "veo-3.0-generate-001"
    assert (
        len(shot.refusals) == 1
        and "Responsible AI" in shot.refusals[0]
        and "prompt blocked" in shot.refusals[0]
    )
    assert "re-phrased" in shot.note
    assert len(fake_google.requests("predict")) == 2


def test_a_prompt_blocked_twice_is_filled_locally_and_reported(
    api_key_settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    fake_google.block_words = ("rooftop",)  # survives the softening: blocked again
    manifest = _generate(
        veo_board(["a dancer on a rooftop", "an empty street"]),
        "veo-3.0-generate-001",
        api_key_settings,
        tmp_path,
    )
    blocked, fine = manifest.shots
    assert fine.state == "done"
    assert blocked.state == "fallback" and blocked.generator == "local-fallback" and blocked.cost_usd == 0.0
    assert len(blocked.refusals) == 2 and all("prompt blocked" in r for r in blocked.refusals)
    assert "refused the shot twice" in blocked.note


@pytest.mark.parametrize("mode", ["api_key_settings", "vertex_settings"])
def test_a_job_never_sends_a_request_the_table_forbids(
    mode: str, fake_google: FakeGoogle, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Storyboards that asked for what Veo refuses (the old code sent these): every request is planned
    to fit, the fake accepted every one, and its oracle finds nothing forbidden in the log."""
    settings: Settings = request.getfixturevalue(mode)
    vertex = mode == "vertex_settings"
    portrait_1080 = veo_board(["a", "b"]).model_copy(update={"aspect_ratio": "9:16", "resolution": "1080p"})
    seven = veo_board(["c"], seconds=6.5)
    seven.shots[0].request_seconds = 7  # a 6.5 s shot: Veo 2 makes 7 s clips on Vertex only
    models = (
        "veo-3.1-generate-preview",
        "veo-3.0-generate-001",
        "veo-2.0-generate-001",
        "veo-3.1-fast-generate-001",
    )
    for model in models:
        for board in (portrait_1080, seven):
            _generate(board, model, settings, tmp_path)
    job = new_job_id()
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "ref.png")
    store_reference_images(
        [read_reference_image(tmp_path / "ref.png")], open_storage(settings.storage_url), JobLayout(job)
    )
    board = veo_board(["d", "e"])
    manifest = _generate(
        board, "veo-3.1-generate-preview", settings, tmp_path, job, reference_images=("ref.png",)
    )
    assert all(s.state == "done" for s in manifest.shots)

    starts = fake_google.requests("predict")
    assert len(starts) == len(models) * 3 + 2
    assert {r.status for r in starts} == {200}
    assert {r.vertex for r in starts} == {vertex}
    assert fake_google.forbidden_video_requests() == []
    veo2 = {r.body["parameters"]["durationSeconds"] for r in starts if r.model == "veo-2.0-generate-001"}
    assert veo2 == ({5, 7} if vertex else {5, 8})  # 7 s only where Veo 2 makes it
    refs = [r for r in starts if r.body["instances"][0].get("referenceImages")]
    assert len(refs) == 2 and {r.body["parameters"]["durationSeconds"] for r in refs} == {8}

    # The log assertion can fail: a request sent around the table is caught.
    _start(
        settings,
        "veo-3.1-generate-preview",
        duration_seconds=6,
        aspect_ratio="9:16",
        reference_images=[_ref()],
    )
    assert [r.body["parameters"]["aspectRatio"] for r in fake_google.forbidden_video_requests()] == ["9:16"]


@pytest.mark.parametrize("status", [400, 403, 404])
def test_a_refused_start_fails_the_job_at_once_with_the_cause(
    status: int, vertex_settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    from kapsule.core.errors import GoogleRequestRefused

    fake_google.fail_next = {"predict": [status]}
    with pytest.raises(
        GoogleRequestRefused, match=f"veo-3.0-generate-001 start: Google answered {status}"
    ) as info:
        _generate(veo_board(["a"]), "veo-3.0-generate-001", vertex_settings, tmp_path)
    assert not info.value.retryable
    assert len(fake_google.requests("predict")) == 1, "a refusal is not retried"


def test_4k_portrait_references_and_lite_as_googles_2026_sample_says(
    vertex_settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    """Veo 3.1 and 3.1 Fast (-001) make 4k and take reference images in 9:16 on Vertex; Lite makes
    720p/1080p. Each is sent as asked, and the fake (written from Google's sources) accepts it."""
    from PIL import Image

    job = new_job_id()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "ref.png")
    store_reference_images(
        [read_reference_image(tmp_path / "ref.png")],
        open_storage(vertex_settings.storage_url),
        JobLayout(job),
    )
    portrait_4k = veo_board(["a"]).model_copy(update={"aspect_ratio": "9:16", "resolution": "4k"})
    for model in ("veo-3.1-generate-001", "veo-3.1-fast-generate-001"):
        manifest = _generate(
            portrait_4k, model, vertex_settings, tmp_path, job, reference_images=("ref.png",)
        )
        assert [s.state for s in manifest.shots] == ["done"]
    lite = veo_board(["b"]).model_copy(update={"resolution": "1080p"})
    _generate(lite, "veo-3.1-lite-generate-001", vertex_settings, tmp_path)

    starts = fake_google.requests("predict")
    assert {r.status for r in starts} == {200} and fake_google.forbidden_video_requests() == []
    sent = [
        (r.model, r.body["parameters"]["resolution"], r.body["parameters"]["aspectRatio"]) for r in starts
    ]
    assert sent == [
        ("veo-3.1-generate-001", "4k", "9:16"),
        ("veo-3.1-fast-generate-001", "4k", "9:16"),
        ("veo-3.1-lite-generate-001", "1080p", "16:9"),
    ]
    assert all(r.body["instances"][0].get("referenceImages") for r in starts[:2])
