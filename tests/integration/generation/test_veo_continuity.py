"""Continuity (last frame seeds the next shot), reference images, the quota limiter and poll schedule.

Veo runs through the real google-genai client against the local fake server; assertions read the
server's request log (what was really sent), and the clips and frames are real media.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from kapsule.core.errors import InvalidParameter, JobCancelled
from kapsule.core.settings import Settings
from kapsule.generation import make_video_generator
from kapsule.generation.references import (
    ReferenceImage,
    note_ignored_images,
    read_reference_image,
    store_reference_images,
)
from kapsule.generation.runner import generate_shots
from kapsule.generation.veo import PollSchedule
from kapsule.infra.context import JobContext, Stores
from kapsule.infra.storage import open_storage
from kapsule.job.artifacts import ShotManifest, ShotResult, Storyboard
from kapsule.job.layout import JobLayout
from kapsule.job.params import JobParams
from kapsule.job.record import new_job_id
from tests.support.api import (
    RecordingLauncher,
)
from tests.support.contexts import job_context
from tests.support.fake_google import FakeGoogle, sent_images
from tests.support.settings import replace
from tests.support.veo import veo_analysis, veo_board


def settings_for_job(settings: Settings, job: str, params: dict[str, object]) -> JobContext:
    """The context of a job ``job`` with these params (its record made running, for the ledger)."""
    return job_context(settings, job, **params)


def _generate(board: Storyboard, model: str, ctx: JobContext | Settings, job: str, tmp_path: Path, **kw):
    if isinstance(ctx, Settings):
        ctx = settings_for_job(ctx, job, {})
    generator = make_video_generator(ctx, model)
    return generate_shots(
        board=board,
        analysis=veo_analysis(board.duration),
        generator=generator,
        storage=ctx.storage,
        layout=JobLayout(job),
        workdir=tmp_path / "work",
        **kw,
    ), generator


def _png(color: tuple[int, int, int], path: Path) -> Path:
    Image.new("RGB", (64, 48), color).save(path)
    return path


def test_last_frame_continuity_seeds_each_shot_with_the_previous_ones_last_frame(
    vertex_settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    job = new_job_id()
    settings = settings_for_job(vertex_settings, job, {"continuity": "last_frame"})
    board = veo_board(["a violinist on a rooftop", "the violinist in the rain", "the violinist at dawn"])
    manifest, generator = _generate(board, "veo-3.0-generate-001", settings, job, tmp_path)

    assert generator.max_workers == 1  # continuity chains the shots: one at a time
    assert [s.state for s in manifest.shots] == ["done"] * 3
    starts = fake_google.requests("predict")
    assert [r.body["instances"][0]["prompt"] for r in starts] == [s.prompt for s in board.shots]
    seeds = [sent_images(r)[0] for r in starts]
    assert seeds[0] is None, "the first shot has nothing before it"
    for seed in seeds[1:]:
        assert seed is not None
        frame = Image.open(io.BytesIO(seed))
        assert frame.format == "JPEG" and frame.size == (320, 180)  # a real frame of the server's clip
    # shot N+1's key names shot N's clip: a changed shot N re-bills the shots after it
    requests = [generator.request_for(s, board) for s in board.shots]
    assert requests[1].image.startswith(f"last_frame:0-{requests[0].key()}@")
    assert requests[2].image.startswith(f"last_frame:1-{requests[1].key()}@")

    before = len(fake_google.requests("predict"))
    _generate(board, "veo-3.0-generate-001", settings, job, tmp_path)
    assert len(fake_google.requests("predict")) == before, "a re-run must not request anything"

    changed = board.model_copy(deep=True)
    changed.shots[0].prompt = "a cellist on a rooftop"
    _generate(changed, "veo-3.0-generate-001", settings, job, tmp_path)
    assert len(fake_google.requests("predict")) == before + 3  # the change flows down the chain


def test_without_continuity_no_image_is_sent_and_keys_are_unchanged(
    vertex_settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    job = new_job_id()
    board = veo_board(["a", "b"])
    plain = make_video_generator(settings_for_job(vertex_settings, new_job_id(), {}), "veo-3.0-generate-001")
    settings = settings_for_job(vertex_settings, job, {})
    manifest, generator = _generate(board, "veo-3.0-generate-001", settings, job, tmp_path)
    assert [s.state for s in manifest.shots] == ["done"] * 2
    assert all(sent_images(r) == (None, []) for r in fake_google.requests("predict"))
    assert [generator.request_for(s, board).key() for s in board.shots] == [
        plain.request_for(s, board).key() for s in board.shots
    ]


def test_reference_images_go_to_veo_3_1_and_a_changed_image_re_bills(
    api_key_settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    job = new_job_id()
    storage = open_storage(api_key_settings.storage_url)
    images = [_png((200, 30, 30), tmp_path / "face.png"), _png((30, 30, 200), tmp_path / "cover.png")]
    keys = store_reference_images([read_reference_image(p) for p in images], storage, JobLayout(job))
    assert keys == (f"jobs/{job}/input/refs/00.png", f"jobs/{job}/input/refs/01.png")
    names = tuple(p.name for p in images)
    settings = settings_for_job(api_key_settings, job, {"reference_images": names})
    board = veo_board(["the singer walks", "the singer turns"])

    manifest, _ = _generate(board, "veo-3.1-generate-preview", settings, job, tmp_path)
    assert [s.state for s in manifest.shots] == ["done"] * 2
    starts = fake_google.requests("predict")
    assert len(starts) == 2
    for request in starts:
        _, refs = sent_images(request)
        assert refs == [p.read_bytes() for p in images]
        sent = request.body["instances"][0]["referenceImages"]
        assert {r["referenceType"].lower() for r in sent} == {"asset"}

    _generate(board, "veo-3.1-generate-preview", settings, job, tmp_path)
    assert len(fake_google.requests("predict")) == 2, "unchanged references: nothing is paid again"

    storage.write_bytes(keys[1], _png((30, 200, 30), tmp_path / "new-cover.png").read_bytes())
    fresh = settings_for_job(api_key_settings, job, {"reference_images": names})
    _generate(board, "veo-3.1-generate-preview", fresh, job, tmp_path)
    assert len(fake_google.requests("predict")) == 4, "a changed reference re-bills the shots using it"


def test_models_without_reference_images_do_not_send_them_and_say_so(
    vertex_settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    job = new_job_id()
    keys = store_reference_images(
        [read_reference_image(_png((10, 10, 10), tmp_path / "a.png"))],
        open_storage(vertex_settings.storage_url),
        JobLayout(job),
    )
    assert keys == (f"jobs/{job}/input/refs/00.png",)
    settings = settings_for_job(vertex_settings, job, {"reference_images": ("a.png",)})
    manifest, _ = _generate(veo_board(["x"]), "veo-3.0-generate-001", settings, job, tmp_path)
    assert sent_images(fake_google.requests("predict")[0]) == (None, [])
    assert "not used: veo-3.0-generate-001 does not take reference images" in manifest.shots[0].note


def test_the_fake_server_refuses_reference_images_on_other_models_like_veo(
    vertex_settings: Settings, fake_google: FakeGoogle
) -> None:
    from google.genai import errors, types

    from kapsule.infra.genai_client import make_genai_client

    ref = types.VideoGenerationReferenceImage(
        image=types.Image(image_bytes=b"\x89PNG\r\n\x1a\nxx", mime_type="image/png"), reference_type="asset"
    )
    client = make_genai_client(vertex_settings, "veo")  # kept: a dropped client closes its connection pool
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_videos(
            model="veo-3.0-generate-001",
            source=types.GenerateVideosSource(prompt="x"),
            config=types.GenerateVideosConfig(reference_images=[ref]),
        )
    assert caught.value.code == 400


def test_a_shot_waiting_for_a_slot_is_not_requested_after_cancel(
    vertex_settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    fake_google.hold_s = 0.3
    job = new_job_id()
    with pytest.raises(JobCancelled):
        _generate(
            veo_board(["a", "b", "c"]),
            "veo-3.0-generate-001",
            replace(vertex_settings, veo_concurrency=1),
            job,
            tmp_path,
            should_stop=lambda: bool(fake_google.requests("predict")),
        )
    assert len(fake_google.requests("predict")) == 1


def test_reference_images_are_checked_by_content(tmp_path: Path, settings: Settings) -> None:
    storage, layout = open_storage(settings.storage_url), JobLayout(new_job_id())
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    with pytest.raises(InvalidParameter, match="not a PNG, JPEG or WebP"):
        store_reference_images([read_reference_image(fake)], storage, layout)
    gif = tmp_path / "x.gif"
    gif.write_bytes(b"GIF89a")
    with pytest.raises(InvalidParameter, match="PNG, JPEG or WebP"):
        store_reference_images([read_reference_image(gif)], storage, layout)
    disguised = ReferenceImage("face.jpg", _png((1, 1, 1), tmp_path / "real.png").read_bytes())
    assert store_reference_images([disguised], storage, layout) == (f"{layout.input_prefix}refs/00.png",)
    many = [read_reference_image(_png((i, i, i), tmp_path / f"{i}.png")) for i in range(4)]
    with pytest.raises(InvalidParameter, match="at most 3"):
        store_reference_images(many, storage, layout)
    with pytest.raises(ValidationError, match="continuity"):
        JobParams(continuity="first_frame")  # type: ignore[arg-type]


def test_the_local_renderer_notes_what_it_ignored(settings: Settings) -> None:
    params = JobParams(continuity="last_frame", reference_images=("k.png",))
    manifest = ShotManifest(shots=[ShotResult(index=0, key="abc", file="f", state="done")])
    noted = note_ignored_images(manifest, "local", params)
    assert noted is not None
    assert noted.shots[0].note == "local renderer ignored continuity 'last_frame' and 1 reference image(s)"
    assert note_ignored_images(noted, "local", params) is None  # not twice
    assert note_ignored_images(manifest, "local", JobParams()) is None


def test_poll_schedule_sleeps_until_the_typical_duration_then_polls_tightly() -> None:
    polls = PollSchedule(first=10.0, longest=30.0)
    assert [polls.delay(0, None), polls.delay(10, 10.0), polls.delay(25, 15.0), polls.delay(60, 30.0)] == [
        10.0,
        15.0,
        22.5,
        30.0,
    ]
    for seconds in (88.0, 90.0, 95.0):
        polls.observe(seconds)
    assert polls.delay(0, None) == pytest.approx(90 * 0.95)  # one long sleep instead of 4 polls
    assert polls.delay(86, 85.5) == 10.0  # around the expected time: every `first` seconds
    assert polls.delay(140, 10.0) == 15.0  # far past it: back off again


def test_make_stores_reference_images_in_the_job_and_records_their_names(
    settings: Settings, demo_song_file: Path, tmp_path: Path
) -> None:
    from kapsule.control.service import JobService, Submission
    from kapsule.song.intake import LocalSong

    face = _png((1, 2, 3), tmp_path / "face.png")
    launcher = RecordingLauncher()
    service = JobService(Stores.open(settings), launcher)
    params = JobParams(continuity="last_frame", video_model="local", prompt_model="local")
    submission = Submission(params, LocalSong(demo_song_file), references=[read_reference_image(face)])
    record, replayed = service.submit(submission)
    assert not replayed and launcher.launched == [record.id]
    assert record.params.reference_images == ("face.png",)  # what the user gave, for people to read
    key = f"jobs/{record.id}/input/refs/00.png"  # named by position and type, never by the user
    assert open_storage(settings.storage_url).read_bytes(key) == face.read_bytes()
    ctx = JobContext.for_job(service.stores, record.id)
    assert (ctx.params.continuity, ctx.reference_image_keys(), ctx.job_id) == ("last_frame", [key], record.id)
