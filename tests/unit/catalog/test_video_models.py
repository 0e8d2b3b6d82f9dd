"""The capability x mode table: what Veo accepts, how shots are planned to fit it, what it costs."""

from __future__ import annotations

from datetime import date

import pytest

from kapsule.catalog import video_models as vm
from kapsule.core.errors import UnknownModel, UnsupportedVideoRequest

V31 = "veo-3.1-generate-preview"
V31_FAST = "veo-3.1-fast-generate-preview"
V30 = "veo-3.0-generate-001"
V30_FAST = "veo-3.0-fast-generate-001"
V2 = "veo-2.0-generate-001"
# Google's retirement date for Veo 2 and Veo 3.0 on Vertex AI is 2026-06-30: the rows of those models
# are still facts worth testing (request_problems and plan_request do not look at dates).
RETIRED_ON = date(2026, 6, 30)
DAY_BEFORE = date(2026, 6, 29)
LATER = date(2026, 12, 2)


def _problems(
    model: str, mode: vm.Mode, seconds: int, res: str = "720p", aspect: str = "16:9", **kw: object
) -> str:
    return "; ".join(vm.request_problems(model, mode, vm.RequestShape(seconds, res, aspect, **kw)))  # type: ignore[arg-type]


def test_each_documented_limit_is_a_problem() -> None:
    assert (
        _problems(V31, "gemini_api", 6, "1080p") == f"{V31} (gemini_api) at 1080p makes clips of 8 s, not 6 s"
    )
    assert _problems(V31, "vertex", 6, "1080p") == ""  # Vertex makes 1080p at every length
    assert "films 16:9, not 9:16" in _problems(V30, "gemini_api", 8, "1080p", "9:16")
    assert _problems(V30, "vertex", 8, "1080p", "9:16") == ""
    assert "not 7 s" in _problems(V2, "gemini_api", 7)
    assert _problems(V2, "vertex", 7) == ""
    assert "makes 720p video, not 1080p" in _problems(V2, "vertex", 8, "1080p")
    assert "not 4 s" in _problems(V2, "vertex", 4)
    refs = _problems(V31, "vertex", 6, "720p", "9:16", reference_images=2, first_frame=True)
    assert "must be 8 s" in refs and "must be 16:9" in refs and "first-frame image cannot be combined" in refs
    assert _problems(V31, "vertex", 8, reference_images=3) == ""
    assert "at most 3" in _problems(V31, "vertex", 8, reference_images=4)
    for model in (V31_FAST, "veo-3.1-lite-generate-001", V30, V2):  # veo-3.1* is not enough: exact ids
        assert "does not take reference images" in _problems(model, "vertex", 8, reference_images=1)
    # Google's 2026 sample: 3.1 Fast takes references, and both -001 ids take them in 9:16 too (8 s)
    for model in ("veo-3.1-fast-generate-001", "veo-3.1-generate-001"):
        assert _problems(model, "vertex", 8, "720p", "9:16", reference_images=3) == ""
        assert "must be 8 s" in _problems(model, "vertex", 6, "720p", "9:16", reference_images=1)
    assert "does not take" in _problems("veo-3.1-fast-generate-001", "gemini_api", 8, reference_images=1)
    assert "last-frame" in _problems(V2, "gemini_api", 8, last_frame=True)


def test_check_request_refuses_with_every_reason() -> None:
    with pytest.raises(UnsupportedVideoRequest, match=r"Veo would reject: .*8 s.*16:9") as info:
        vm.check_request(V31, "gemini_api", vm.RequestShape(4, "1080p", "9:16", reference_images=1))
    assert (info.value.code, info.value.http_status) == ("unsupported_video_request", 422)
    vm.check_request(V31, "gemini_api", vm.RequestShape(8, "1080p", "16:9", reference_images=1))


def test_unknown_models_and_modes() -> None:
    with pytest.raises(UnknownModel, match=r"unknown video model 'veo-3.1-lite-x'.*veo-3.1-generate-preview"):
        vm.capabilities("veo-3.1-lite-x", "vertex")
    assert vm.price_per_second("local", "vertex") == 0.0


@pytest.mark.parametrize(
    ("model", "mode", "wanted", "res", "aspect", "refs", "expected"),
    [
        (V31, "vertex", 3.2, "720p", "16:9", 0, (4, "720p", "16:9", False)),
        (V31, "gemini_api", 3.2, "1080p", "9:16", 0, (8, "1080p", "9:16", False)),  # 1080p: 8 s only
        (V30, "gemini_api", 5.0, "1080p", "9:16", 0, (6, "720p", "9:16", False)),  # 1080p: 16:9 only
        (V30, "gemini_api", 5.0, "1080p", "1:1", 0, (6, "1080p", "16:9", False)),  # square: from 16:9
        (V2, "gemini_api", 6.5, "1080p", "16:9", 0, (8, "720p", "16:9", False)),  # 5, 6 or 8 there
        (V2, "vertex", 6.5, "720p", "16:9", 0, (7, "720p", "16:9", False)),
        (V2, "vertex", 2.0, "720p", "16:9", 0, (5, "720p", "16:9", False)),
        (V31, "vertex", 2.0, "720p", "16:9", 2, (8, "720p", "16:9", True)),  # references: 8 s 16:9
        (V31_FAST, "vertex", 2.0, "720p", "16:9", 2, (4, "720p", "16:9", False)),  # no references there
        (V31, "vertex", 11.0, "720p", "16:9", 0, (8, "720p", "16:9", False)),  # longest; assembly holds
    ],
)
def test_plan_request_fits_every_shot_to_the_table(
    model: str, mode: vm.Mode, wanted: float, res: str, aspect: str, refs: int, expected: tuple[object, ...]
) -> None:
    plan = vm.plan_request(
        model, mode, wanted_seconds=wanted, resolution=res, aspect_ratio=aspect, reference_images=refs
    )
    assert (plan.seconds, plan.resolution, plan.aspect_ratio, plan.reference_images) == expected
    vm.check_request(
        model,
        mode,
        vm.RequestShape(plan.seconds, plan.resolution, plan.aspect_ratio, 2 if plan.reference_images else 0),
    )


def test_jobs_that_cannot_work_are_refused_at_submission_naming_the_limit() -> None:
    v31 = "veo-3.1-generate-001"
    with pytest.raises(UnsupportedVideoRequest, match="only for 16:9 video"):
        vm.check_job(v31, "gemini_api", aspect_ratio="9:16", reference_images=1)
    vm.check_job(v31, "vertex", aspect_ratio="9:16", reference_images=1)  # Vertex: 9:16 references too
    with pytest.raises(UnsupportedVideoRequest, match="continuity=last_frame or reference images"):
        vm.check_job(v31, "vertex", aspect_ratio="16:9", reference_images=1, continuity="last_frame")
    with pytest.raises(
        UnsupportedVideoRequest, match=r"models that do: veo-3.1-generate-preview, veo-3.1-generate-001"
    ):
        vm.check_job(V31_FAST, "gemini_api", aspect_ratio="16:9", reference_images=1)
    with pytest.raises(UnknownModel):
        vm.check_job("veo-9", "vertex", aspect_ratio="16:9")
    with pytest.raises(UnknownModel, match="retired by Google on 2026-04-02"):  # the Vertex -preview ids
        vm.check_job(V31, "vertex", aspect_ratio="16:9")
    vm.check_job(v31, "vertex", aspect_ratio="1:1", reference_images=3)
    vm.check_job("local", "vertex", aspect_ratio="9:16", reference_images=3, continuity="last_frame")
    vm.check_job("veo-3.1-fast-generate-001", "vertex", aspect_ratio="9:16", continuity="last_frame")


def test_4k_only_where_the_table_makes_it() -> None:
    for model in ("veo-3.1-generate-001", "veo-3.1-fast-generate-001"):
        for mode in vm.MODES:
            vm.check_job(model, mode, aspect_ratio="9:16", resolution="4k")
    for model, mode in (("veo-3.1-lite-generate-001", "vertex"), (V30, "gemini_api"), ("local", "vertex")):
        with pytest.raises(
            UnsupportedVideoRequest, match=r"4k.*models that make 4k in \w+ mode: veo-3.1-generate-001"
        ):
            vm.check_job(model, mode, aspect_ratio="16:9", resolution="4k")  # type: ignore[arg-type]
    assert _problems("veo-3.1-fast-generate-001", "gemini_api", 6, "4k") != ""  # 8 s only there
    assert _problems("veo-3.1-fast-generate-001", "vertex", 6, "4k") == ""
    plan = vm.plan_request(
        "veo-3.1-generate-001", "gemini_api", wanted_seconds=3, resolution="4k", aspect_ratio="16:9"
    )
    assert (plan.seconds, plan.resolution) == (8, "4k")
    # Prices per resolution (third parties, unconfirmed): without one, the highest, 4k's
    fast, lite, std = "veo-3.1-fast-generate-001", "veo-3.1-lite-generate-001", "veo-3.1-generate-001"
    assert [vm.price_per_second(fast, "vertex", resolution=r) for r in ("720p", "1080p", "4k")] == [
        0.10,
        0.12,
        0.30,
    ]
    assert [vm.price_per_second(lite, "vertex", resolution=r) for r in ("720p", "1080p")] == [0.05, 0.08]
    assert vm.price_per_second(std, "gemini_api", resolution="1080p") == 0.40
    assert (
        vm.price_per_second(std, "gemini_api", resolution="4k")
        == vm.price_per_second(std, "gemini_api")
        == 0.60
    )


def test_every_row_cites_its_sources() -> None:
    for model, modes in vm.VIDEO_MODELS.items():
        for mode, caps in modes.items():
            assert caps.sources, (model, mode)
    lite = vm.capabilities("veo-3.1-lite-generate-001", "vertex")
    assert any("vertex-ai-creative-studio" in source for source in lite.sources)
    assert any("unconfirmed" in source for source in lite.sources)  # its prices: third parties only


def test_prices_differ_per_mode_and_audio() -> None:
    assert vm.price_per_second(V30, "vertex") == 0.20  # sent generate_audio=False
    assert vm.price_per_second(V30, "vertex", audio=True) == 0.40
    assert vm.price_per_second(V30, "gemini_api") == 0.40  # audio always on there
    assert vm.price_per_second(V2, "vertex", audio=True) == 0.50  # no audio to buy
    # The Fast models are priced per resolution (the same with or without audio); unknown: the higher.
    for mode in vm.MODES:
        assert vm.price_per_second(V31_FAST, mode, resolution="720p") == 0.10
        assert vm.price_per_second(V31_FAST, mode, resolution="1080p", audio=True) == 0.12
        assert vm.price_per_second(V31_FAST, mode) == 0.12
    assert vm.price_per_second("veo-3.0-fast-generate-001", "vertex", resolution="720p", audio=True) == 0.10
    assert vm.price_per_second(V31, "vertex", resolution="1080p") == 0.20  # one price at 720p and 1080p
    for model, modes in vm.VIDEO_MODELS.items():
        for mode, caps in modes.items():
            assert caps.usd_per_s > 0, (model, mode)
            assert caps.seed == (mode == "vertex")  # google-genai raises on seed in Gemini API mode
            assert caps.audio_switch == (mode == "vertex" and caps.audio)


@pytest.mark.parametrize(
    ("model", "replacement", "page"),
    [
        (V2, "veo-3.1-generate-001", "models/veo/2-0-generate"),
        (V30, "veo-3.1-generate-001", "models/veo/3-0-generate"),
        (V30_FAST, "veo-3.1-fast-generate-001", "models/veo/3-0-generate"),
    ],
)
def test_a_model_google_retired_is_refused_naming_the_date_the_source_and_the_replacement(
    model: str, replacement: str, page: str
) -> None:
    for today in (RETIRED_ON, LATER):
        with pytest.raises(UnknownModel) as info:
            vm.check_job(model, "vertex", aspect_ratio="16:9", today=today)
        message = info.value.message
        assert f"{model} was retired by Google on 2026-06-30 in vertex mode" in message
        assert page in message and "Google's" in message  # the page the date was read on
        assert f"use {replacement}, the replacement Google names" in message
        assert (info.value.code, info.value.http_status) == ("unknown_model", 422)
    vm.check_job(model, "vertex", aspect_ratio="16:9", today=DAY_BEFORE)  # still served the day before
    problem, fix = vm.lifecycle_warning(model, "vertex", today=DAY_BEFORE) or ("", "")
    assert "Google retires" in problem and "2026-06-30" in problem and replacement in fix
    assert vm.lifecycle_warning(model, "vertex", today=LATER) is None  # refused, not warned
    assert model not in vm.usable_models("vertex", today=LATER)
    assert model in vm.usable_models("vertex", today=DAY_BEFORE)
    # No Google date was found for the Gemini API: nothing is refused or warned there.
    vm.check_job(model, "gemini_api", aspect_ratio="16:9", today=LATER)
    assert vm.lifecycle_warning(model, "gemini_api", today=LATER) is None


@pytest.mark.parametrize(
    ("model", "mode", "day", "instead"),
    [
        ("veo-3.1-generate-001", "vertex", "2026-11-17", "choose a current model"),
        ("veo-3.1-fast-generate-001", "vertex", "2026-11-17", "choose a current model"),
        (V31, "gemini_api", "2026-10-22", "KAPSULE_VIDEO_MODEL to veo-3.1-generate-001"),
        (V31_FAST, "gemini_api", "2026-10-22", "KAPSULE_VIDEO_MODEL to veo-3.1-fast-generate-001"),
    ],
)
def test_a_date_only_a_third_party_gives_is_a_note_and_never_refuses(
    model: str, mode: vm.Mode, day: str, instead: str
) -> None:
    vm.check_job(model, mode, aspect_ratio="16:9", today=LATER)  # accepted although the date passed
    assert vm.lifecycle_warning(model, mode, today=LATER) is None  # Google dates nothing: no warning
    note = vm.lifecycle_note(model, mode, today=LATER)
    assert f"{model} in {mode} mode a deprecation date of {day} (past)" in note
    assert "a third party (litellm 1.110.2's model table, citing" in note
    assert "no Google page dates it" in note and "still accepted" in note
    assert "(ahead)" in vm.lifecycle_note(model, mode, today=date(2026, 10, 1))
    assert model in vm.usable_models(mode, today=LATER)
    life = vm.lifecycle(model, mode)
    assert life is not None and (life.replacement or "choose a current model") in instead


def test_the_lifecycle_column_holds_only_sourced_dates_and_live_replacements() -> None:
    confirmed = set()
    for model, modes in vm.VIDEO_MODELS.items():
        for mode, caps in modes.items():
            life = caps.lifecycle
            if life is None:
                continue
            assert life.source.startswith("Google's" if life.confirmed else "litellm"), (model, mode)
            if life.confirmed:
                confirmed.add((model, mode, life.retires))
            if life.replacement is not None:  # offered in the same mode, and not retired itself
                assert mode in vm.VIDEO_MODELS[life.replacement], (model, life.replacement)
                assert vm.retired(life.replacement, mode, today=LATER) is None
    previews_gone = date(2026, 4, 2)  # Google's Veo 2 page: the Vertex -preview video ids retired
    assert confirmed == {(m, "vertex", RETIRED_ON) for m in (V2, V30, V30_FAST)} | {
        (m, "vertex", previews_gone) for m in (V31, V31_FAST)
    }
    assert vm.lifecycle("local", "vertex") is None
    vm.check_lifecycle("local", "vertex", today=LATER)


def test_the_job_form_takes_as_many_reference_images_as_the_catalog_allows() -> None:
    """The job's input schema (a lower layer that cannot import the catalog) bounds the same fact."""
    from kapsule.job.params import MAX_REFERENCE_IMAGES

    assert MAX_REFERENCE_IMAGES == vm.MAX_REFERENCE_IMAGES
