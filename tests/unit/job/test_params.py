"""One definition of a job's inputs: the CLI and the API reach every field and refuse alike.

``JobParams`` is walked field by field: each must be an option of ``kapsule make`` (or its song
argument / ``--reference-image``) and a field of the API's request body (or its uploads). Then the
same bad job goes to both entry points, and both must refuse it with the same error code before
anything exists; and the same good job, made through both, must hold the same ``JobParams``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from kapsule.api.routes.jobs import JobCreate
from kapsule.cli.main import app as cli_app
from kapsule.cli.options import FILE_OPTIONS, flag_for
from kapsule.core.settings import Settings
from kapsule.infra.status import open_status_store
from kapsule.job.params import FILE_FIELDS, JobParams
from tests.support.api import (
    RecordingLauncher,
    api_client,
    expect_error,
    sine_wav,
    upload_file,
)
from tests.support.settings import replace, use_environment

API_FILE_FIELDS = {"song": "upload_id", "reference_images": "reference_upload_ids", "lyrics": "lyrics_text"}


def _make_options() -> dict[str, str]:
    """Every parameter of ``kapsule make``: option flags and the argument's name."""
    command = typer.main.get_command(cli_app).commands["make"]  # type: ignore[attr-defined]
    names: dict[str, str] = {}
    for param in command.params:
        for flag in [*param.opts, param.name.upper()]:
            names[flag] = param.name
    return names


def test_every_job_param_is_reachable_from_the_cli_and_the_api() -> None:
    options = _make_options()
    api_fields = set(JobCreate.model_fields)
    for name, field in JobParams.model_fields.items():
        flag = FILE_OPTIONS[name] if name in FILE_FIELDS else flag_for(name)
        assert flag in options, f"JobParams.{name} has no CLI option {flag}"
        api_name = API_FILE_FIELDS[name] if name in FILE_FIELDS else name
        assert api_name in api_fields, f"JobParams.{name} is not in the API's request body"
        if name not in FILE_FIELDS:  # the same limits and meaning, not a look-alike
            assert JobCreate.model_fields[name].annotation == field.annotation
            assert JobCreate.model_fields[name].metadata == field.metadata
            assert JobCreate.model_fields[name].default == field.default


BAD_JOBS = [
    pytest.param({"video_model": "does-not-exist"}, "unknown_model", id="unknown-video-model"),
    pytest.param({"prompt_model": "gpt-4o"}, "unknown_model", id="unknown-prompt-model"),
    # A paid model this deployment has no credentials for is refused before anything exists.
    pytest.param({"video_model": "veo-3.0-fast-generate-001"}, "unknown_model", id="veo-without-account"),
    pytest.param({"max_shots": 500}, "invalid_parameter", id="too-many-shots"),
    pytest.param({"aspect_ratio": "4:3"}, "invalid_parameter", id="bad-aspect"),
    pytest.param({"budget_usd": -1.0}, "invalid_parameter", id="negative-budget"),
    pytest.param({"continuity": "first_frame"}, "invalid_parameter", id="bad-continuity"),
    pytest.param({"captions": "sideways"}, "invalid_parameter", id="bad-captions"),
    pytest.param({"lyrics_aligner": "whisper"}, "invalid_parameter", id="bad-aligner"),
    # Gemini timing asked for by name on a deployment without Google credentials.
    pytest.param({"lyrics_aligner": "gemini"}, "unknown_model", id="gemini-aligner-without-account"),
]


@pytest.mark.parametrize(("values", "code"), BAD_JOBS)
def test_a_bad_job_is_refused_by_the_cli_and_the_api_with_the_same_code(
    api: Any,
    kapsule_env: Settings,
    tmp_path: Path,
    values: dict[str, Any],
    code: str,
) -> None:
    client, launcher = api
    song = sine_wav(tmp_path / "song.wav", 6.0)
    upload_id = upload_file(client, song)
    expect_error(client.post("/v1/jobs", json={"upload_id": upload_id, **values}), 422, code)

    args = ["make", str(song)]
    for name, value in values.items():
        args += [flag_for(name), str(value)]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error [{code}]: "), result.output

    assert launcher.launched == []
    assert open_status_store(kapsule_env.status_url).list("local") == ([], None)


@pytest.mark.parametrize("field", ["prompt", "style"])
def test_a_lone_surrogate_is_refused_by_the_cli_and_the_api_alike(
    api: Any, kapsule_env: Settings, tmp_path: Path, field: str
) -> None:
    """Text no UTF-8 encoder takes passes a length check and fails mid-write: both refuse it first."""
    client, launcher = api
    song = sine_wav(tmp_path / "song.wav", 6.0)
    upload_id = upload_file(client, song)
    raw = f'{{"upload_id": "{upload_id}", "{field}": "a\\ud800b"}}'  # JSON may spell one; httpx cannot
    response = client.post("/v1/jobs", content=raw, headers={"Content-Type": "application/json"})
    assert "surrogate" in expect_error(response, 422, "invalid_parameter")

    result = CliRunner().invoke(cli_app, ["make", str(song), flag_for(field), "a\ud800b"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error [invalid_parameter]: "), result.output
    assert "surrogate" in result.output

    assert launcher.launched == []
    assert open_status_store(kapsule_env.status_url).list("local") == ([], None)


REFUSED_BY_VEO = [
    pytest.param(
        {"video_model": "veo-3.1-generate-preview", "aspect_ratio": "9:16"}, id="references-in-9:16"
    ),
    pytest.param(
        {"video_model": "veo-3.1-generate-preview", "continuity": "last_frame"},
        id="references-with-last-frame",
    ),
    pytest.param({"video_model": "veo-3.0-generate-001"}, id="references-on-a-model-without-them"),
]


@pytest.mark.parametrize("values", REFUSED_BY_VEO)
def test_a_job_veo_would_refuse_is_refused_by_the_cli_and_the_api_with_the_same_code(
    api_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, values: dict[str, Any]
) -> None:
    """Reference images where Veo refuses them (``video_models.check_job``): 422 at submission from
    both entry points, before any job exists and without a request to Google (a fake key is enough)."""
    from PIL import Image

    settings = replace(api_settings, gemini_api_key="fake-key-never-sent")
    launcher = RecordingLauncher()
    song = sine_wav(tmp_path / "song.wav", 6.0)
    image = tmp_path / "face.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(image)
    with api_client(launcher, settings) as client:
        song_id = upload_file(client, song)
        data = image.read_bytes()
        body = {"filename": image.name, "content_type": "image/png", "size": len(data)}
        ticket = client.post("/v1/uploads", json={**body, "purpose": "reference_image"})
        assert ticket.status_code == 201, ticket.text
        put = client.put(ticket.json()["url"], content=data, headers=ticket.json()["headers"])
        assert put.status_code == 200, put.text
        job = {"upload_id": song_id, "reference_upload_ids": [ticket.json()["upload_id"]], **values}
        message = expect_error(client.post("/v1/jobs", json=job), 422, "unsupported_video_request")

    args = ["make", str(song), "--reference-image", str(image)]
    for name, value in values.items():
        args += [flag_for(name), str(value)]
    use_environment(settings, monkeypatch)  # what `kapsule make` reads
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error [unsupported_video_request]: "), result.output
    assert message in result.output  # the same limit named to both callers

    assert launcher.launched == []
    assert open_status_store(settings.status_url).list("local") == ([], None)


RETIRED = [  # Google's retirement date for these on Vertex AI is 2026-06-30 (video_models' lifecycle)
    pytest.param("veo-3.0-generate-001", "veo-3.1-generate-001", id="veo-3.0"),
    pytest.param("veo-3.0-fast-generate-001", "veo-3.1-fast-generate-001", id="veo-3.0-fast"),
    pytest.param("veo-2.0-generate-001", "veo-3.1-generate-001", id="veo-2.0"),
]


@pytest.mark.parametrize(("model", "replacement"), RETIRED)
def test_a_model_google_retired_is_refused_by_the_cli_and_the_api_naming_date_source_and_replacement(
    api_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model: str, replacement: str
) -> None:
    """Vertex mode (no request to Google is made at submission, so no credentials are needed): 422
    ``unknown_model`` and exit 2, before any job exists, with the same sentence to both callers."""
    vertex = replace(api_settings, genai_use_vertexai=True, google_cloud_project="fake-project")
    launcher = RecordingLauncher()
    song = sine_wav(tmp_path / "song.wav", 6.0)
    with api_client(launcher, vertex) as client:
        body = {"upload_id": upload_file(client, song), "video_model": model}
        message = expect_error(client.post("/v1/jobs", json=body), 422, "unknown_model")
    assert f"{model} was retired by Google on 2026-06-30 in vertex mode" in message
    assert "docs.cloud.google.com" in message and f"use {replacement}" in message

    use_environment(vertex, monkeypatch)  # what `kapsule make` reads
    result = CliRunner().invoke(cli_app, ["make", str(song), flag_for("video_model"), model])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error [unknown_model]: "), result.output
    assert " ".join(message.split()) in " ".join(result.output.split())  # the same sentence (wrapped)

    assert launcher.launched == []
    assert open_status_store(vertex.status_url).list("local") == ([], None)


def test_the_retirement_check_compares_with_an_injectable_today(
    settings: Settings,
) -> None:
    from kapsule.control.submission import check_models
    from kapsule.core.errors import UnknownModel

    vertex = replace(settings, genai_use_vertexai=True, google_cloud_project="fake-project")
    veo3 = JobParams(video_model="veo-3.0-generate-001", prompt_model="local")
    check_models(veo3, vertex, today=date(2026, 6, 29))  # the day before: still served
    with pytest.raises(UnknownModel, match="retired by Google on 2026-06-30"):
        check_models(veo3, vertex, today=date(2026, 6, 30))
    # litellm's 2026-11-17 for veo-3.1-generate-001 is unconfirmed: accepted after it too.
    check_models(
        veo3.model_copy(update={"video_model": "veo-3.1-generate-001"}), vertex, today=date(2026, 12, 2)
    )
