"""Veo through the real google-genai client against the local fake server (Vertex and API-key modes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kapsule import media
from kapsule.catalog.pricing import price_per_second
from kapsule.core.errors import BudgetExceeded, ConfigError, UnknownModel
from kapsule.core.settings import Settings
from kapsule.generation import make_video_generator
from kapsule.generation.runner import generate_shots
from kapsule.generation.veo import VeoGenerator, soften_prompt
from kapsule.infra import genai_client
from kapsule.infra.storage import open_storage
from kapsule.job.artifacts import Storyboard
from kapsule.job.layout import JobLayout
from kapsule.job.record import new_job_id
from kapsule.storyboard.cost import check_budget, estimate_storyboard
from tests.support.contexts import job_context
from tests.support.fake_google import FakeGoogle
from tests.support.settings import replace
from tests.support.veo import MODEL, veo_analysis, veo_board

JOB = new_job_id()


def _run(board: Storyboard, settings: Settings, tmp_path: Path):
    storage = open_storage(settings.storage_url)
    layout = JobLayout(JOB)
    generator = make_video_generator(job_context(settings), MODEL)
    manifest = generate_shots(
        board=board,
        analysis=veo_analysis(board.duration),
        generator=generator,
        storage=storage,
        layout=layout,
        workdir=tmp_path / "work",
    )
    return manifest, storage, layout


def test_vertex_mode_generates_every_shot_with_adc_and_never_pays_twice(
    vertex_settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    fake_google.hold_s = 0.2
    board = veo_board(["a violinist on a rooftop", "the violinist in the rain", "the violinist at dawn"])
    manifest, storage, _ = _run(board, vertex_settings, tmp_path)

    assert [s.state for s in manifest.shots] == ["done"] * 3
    assert {s.generator for s in manifest.shots} == {MODEL}
    # Vertex, sent without audio: veo-3.0-generate-001 at the table's silent price
    assert sum(s.cost_usd for s in manifest.shots) == pytest.approx(3 * 4 * 0.20)
    for shot in manifest.shots:
        clip = storage.local_path(shot.file)
        assert clip is not None and clip.exists()
        probe = media.probe(clip)
        assert probe.real_video and probe.real_video[0].codec == "h264"
        assert shot.seconds == pytest.approx(8.0, abs=0.1)  # the server's clip, trimmed later by assembly

    starts = fake_google.requests("predict")
    assert len(starts) == 3
    assert all(r.path.startswith("/v1beta1/projects/fake-project/locations/us-central1/") for r in starts)
    assert all(r.headers.get("Authorization") == "Bearer fake-access-token" for r in starts)
    assert fake_google.requests("token"), "ADC must have fetched a token from the service-account token_uri"
    sent = sorted((r.body["instances"][0]["prompt"], r.body["parameters"]["seed"]) for r in starts)
    assert sent == sorted((s.prompt, s.seed) for s in board.shots)
    assert {r.body["parameters"]["durationSeconds"] for r in starts} == {4}
    assert len(fake_google.requests("poll")) >= 3  # the operation was held, so it was polled

    before = len(fake_google.log)
    again, _, _ = _run(board, vertex_settings, tmp_path)
    assert [s.state for s in again.shots] == ["done"] * 3
    assert fake_google.log[before:] == []  # a re-run asks nothing of the server

    reroll = board.model_copy(deep=True)
    reroll.shots[1].seed = 999
    _run(reroll, vertex_settings, tmp_path)
    assert len(fake_google.requests("predict")) == 4  # only the re-rolled shot was requested


def test_api_key_mode_retries_429s_and_poll_errors_and_downloads_file_uris(
    api_key_settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    fake_google.video_delivery = "uri"
    fake_google.fail_next = {"predict": [429, 429], "poll": [503]}
    board = veo_board(["neon koi swimming through the air", "koi circling a lantern"])
    manifest, _, _ = _run(board, api_key_settings, tmp_path)

    assert [s.state for s in manifest.shots] == ["done", "done"]
    starts = fake_google.requests("predict")
    assert len(starts) == 4  # 2 shots + two 429s retried (a throttled start started nothing)
    assert len(fake_google.operations()) == 2
    assert all(r.path == f"/v1beta/models/{MODEL}:predictLongRunning" for r in starts)
    assert all(r.headers.get("x-goog-api-key") == "fake-api-key" for r in starts)
    assert all("seed" not in r.body["parameters"] for r in starts)  # Vertex-only in google-genai
    assert len(fake_google.requests("download")) == 2


def test_a_transient_error_that_never_ends_fails_the_shot_with_a_clear_error(
    api_key_settings: Settings, fake_google: FakeGoogle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(genai_client, "RETRY_ATTEMPTS", 3)
    fake_google.fail_next = {"predict": [429, 429, 429]}
    with pytest.raises(Exception, match="still failing after 3 attempts") as info:
        _run(veo_board(["a quiet lake"]), api_key_settings, tmp_path)
    assert getattr(info.value, "code", "") == "generation_failed"
    assert len(fake_google.requests("predict")) == 3


def test_a_refused_prompt_is_softened_once_and_then_succeeds(
    vertex_settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    fake_google.refuse_words = ("explosion",)
    board = veo_board(["a car explosion lights up the street"])
    manifest, _, _ = _run(board, vertex_settings, tmp_path)

    shot = manifest.shots[0]
    assert shot.state == "done" and shot.generator == MODEL
    assert len(shot.refusals) == 1 and "policies" in shot.refusals[0]
    assert "re-phrased" in shot.note
    prompts = [r.body["instances"][0]["prompt"] for r in fake_google.requests("predict")]
    assert prompts == [board.shots[0].prompt, soften_prompt(board.shots[0].prompt, [])]


def test_a_shot_refused_twice_is_filled_by_the_local_renderer_and_reported(
    vertex_settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    fake_google.refuse_words = ("dancer",)
    board = veo_board(["a dancer in a red coat", "an empty street at night"])
    manifest, storage, _ = _run(board, vertex_settings, tmp_path)

    refused, fine = manifest.shots
    assert fine.state == "done" and fine.generator == MODEL
    assert refused.state == "fallback" and refused.generator == "local-fallback"
    assert len(refused.refusals) == 2 and refused.cost_usd == 0.0
    assert "refused" in refused.note
    clip = storage.local_path(refused.file)
    assert clip is not None
    assert media.probe(clip).real_video[0].frames == board.shots[0].frames
    assert len(fake_google.requests("predict")) == 3

    before = len(fake_google.log)
    again, _, _ = _run(board, vertex_settings, tmp_path)
    assert again.shots[0].state == "fallback" and fake_google.log[before:] == []


def test_budget_counts_only_clips_not_yet_stored(vertex_settings: Settings, tmp_path: Path) -> None:
    board = veo_board(["one", "two", "three"])
    generator = make_video_generator(job_context(vertex_settings), MODEL)
    estimate = estimate_storyboard(board, generator)
    assert estimate.total_usd == pytest.approx(2.40) and estimate.new_usd == pytest.approx(2.40)
    check_budget(estimate, 2.5)
    with pytest.raises(BudgetExceeded, match=r"\$2\.40.*budget of \$2\.00"):
        check_budget(estimate, 2.0)

    storage = open_storage(vertex_settings.storage_url)
    layout = JobLayout(JOB)
    first = board.shots[0]
    storage.write_bytes(layout.shot(0, generator.request_for(first, board).key()), b"clip")
    partial = estimate_storyboard(board, generator, exists=storage.exists, layout=layout)
    assert partial.to_generate == 2 and partial.new_usd == pytest.approx(1.60)
    check_budget(partial, 2.0)
    with pytest.raises(BudgetExceeded, match="already spent"):
        check_budget(partial, 2.0, spent_usd=0.80)


def test_prices_follow_the_mode_and_the_override_wins(
    settings: Settings,
) -> None:
    """Gemini API bills Veo 3.x with sound; Vertex is sent generate_audio=False and bills less; Veo 2
    costs more on Vertex than the Gemini API sheet said (the budget let spending through); the Fast
    models cost more at 1080p, and without a resolution the higher price is the one given."""
    api = settings.model_copy(update={"genai_use_vertexai": False})
    vertex = settings.model_copy(update={"genai_use_vertexai": True})
    assert price_per_second("veo-3.0-generate-001", api) == 0.40
    assert price_per_second("veo-3.0-generate-001", vertex) == 0.20
    fast = "veo-3.1-fast-generate-preview"
    for mode in (api, vertex):
        assert price_per_second(fast, mode, resolution="720p") == 0.10
        assert price_per_second(fast, mode, resolution="1080p") == 0.12
        assert price_per_second(fast, mode) == 0.12
    assert price_per_second("veo-2.0-generate-001", api) == 0.35
    assert price_per_second("veo-2.0-generate-001", vertex) == 0.50
    assert price_per_second("local", vertex) == 0.0
    with pytest.raises(UnknownModel, match="unknown video model 'veo-9-unknown'") as info:
        price_per_second("veo-9-unknown", vertex)
    assert (info.value.code, info.value.http_status) == ("unknown_model", 422)
    negotiated = vertex.model_copy(
        update={"video_prices_usd_per_s": {"veo-3.0*": 0.3, "veo-3.0-fast*": 0.05}}
    )
    assert price_per_second("veo-3.0-fast-generate-001", negotiated) == 0.05
    assert price_per_second("veo-3.0-generate-001", negotiated) == 0.3


def test_veo_2_asks_for_its_own_lengths_and_720p(settings: Settings) -> None:
    board = veo_board(["x"]).model_copy(update={"resolution": "1080p"})
    request = VeoGenerator("veo-2.0-generate-001", job_context(settings)).request_for(board.shots[0], board)
    assert (request.seconds, request.resolution) == (5, "720p")


def test_a_square_video_asks_veo_for_landscape_shots(settings: Settings) -> None:
    """Veo films 16:9 or 9:16 only; assembly centre-crops a square out of the landscape clip."""
    board = veo_board(["x"]).model_copy(update={"aspect_ratio": "1:1"})
    request = VeoGenerator(MODEL, job_context(settings)).request_for(board.shots[0], board)
    assert request.aspect_ratio == "16:9"


def test_missing_credentials_is_a_config_error(
    settings: Settings, fake_google: FakeGoogle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    no_account = replace(settings, gemini_api_key=None, genai_use_vertexai=False)
    with pytest.raises(ConfigError, match="GEMINI_API_KEY"):
        _run(veo_board(["x"]), no_account, tmp_path)
    assert fake_google.log == []


@pytest.mark.parametrize("lost", ["500", "drop"])
def test_a_start_whose_answer_is_lost_is_paid_once_and_never_sent_again(
    vertex_settings: Settings, fake_google: FakeGoogle, tmp_path: Path, lost: str
) -> None:
    """Google began the operation (it bills) but the answer failed: one operation, not two, and it stays
    counted in the job's ledger; running the job again does not send it again either."""
    from kapsule.core.errors import StartOutcomeUnknown
    from kapsule.job.ledger import ChargeState

    fake_google.lose_starts = [lost]
    ctx = job_context(vertex_settings)
    board = veo_board(["a lighthouse in a storm"])

    def run() -> None:
        generate_shots(
            board=board,
            analysis=veo_analysis(board.duration),
            generator=make_video_generator(ctx, MODEL),
            storage=ctx.storage,
            layout=ctx.layout,
            workdir=tmp_path / "work",
        )

    with pytest.raises(StartOutcomeUnknown, match="not sent again"):
        run()
    assert len(fake_google.operations()) == 1
    assert len(fake_google.requests("predict")) == 1
    [entry] = ctx.status.ledger(ctx.job_id)
    assert entry.state == ChargeState.unknown and entry.reserved_usd == pytest.approx(4 * 0.20)
    assert ctx.record().cost.reserved_usd == pytest.approx(4 * 0.20)

    with pytest.raises(StartOutcomeUnknown):  # a retried job looks the shot up first
        run()
    assert len(fake_google.requests("predict")) == 1


def test_a_retried_job_follows_the_operation_it_started_instead_of_paying_again(
    vertex_settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    """The worker died while its operation ran: the next attempt polls that operation, sends nothing."""
    from kapsule.job.ledger import Charge, ChargeState, Settlement

    ctx = job_context(vertex_settings)
    board = veo_board(["a fox in the snow"])
    generator = make_video_generator(ctx, MODEL)
    request = generator.request_for(board.shots[0], board)
    # What the dead attempt left: the start reserved and sent, and the operation Google named.
    key = f"shot-0-{request.key()}-0"
    ctx.status.reserve(ctx.job_id, Charge(key=key, usd=0.8))
    operation = fake_google.start(
        MODEL, {"instances": [{"prompt": "a fox in the snow"}]}, "fake-project", "us-central1"
    )
    ctx.status.settle(ctx.job_id, key, Settlement(state=ChargeState.started, operation=operation["name"]))

    manifest = generate_shots(
        board=board,
        analysis=veo_analysis(board.duration),
        generator=generator,
        storage=ctx.storage,
        layout=ctx.layout,
        workdir=tmp_path / "work",
    )
    assert [s.state for s in manifest.shots] == ["done"]
    assert fake_google.requests("predict") == []
    assert len(fake_google.operations()) == 1
    [entry] = ctx.status.ledger(ctx.job_id)
    assert entry.state == ChargeState.spent
    assert ctx.record().cost.actual_usd == pytest.approx(0.8) and ctx.record().cost.reserved_usd == 0
