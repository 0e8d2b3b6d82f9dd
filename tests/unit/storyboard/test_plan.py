"""Storyboard: cuts land on the music, cover the song frame-exactly, and every shot gets a prompt."""

from __future__ import annotations

import itertools

import pytest

from kapsule.core.errors import GenerationError, InvalidParameter, UnknownModel
from kapsule.core.settings import Settings
from kapsule.job.artifacts import Analysis
from kapsule.prompting import LocalPromptWriter, PromptPlan, ShotBrief, make_prompt_writer
from kapsule.storyboard.plan import clip_frames_wanted, plan_cuts, plan_storyboard, request_seconds_for
from tests.support.analyses import FPS, LOCAL, song
from tests.support.contexts import job_context


def assert_covers_song(cuts: list[tuple[int, int]], analysis: Analysis) -> None:
    assert cuts[0][0] == 0
    assert cuts[-1][1] == round(analysis.duration * FPS)
    for (_, end), (start, _) in itertools.pairwise(cuts):
        assert end == start
    for start, end in cuts:
        assert FPS <= end - start <= 8 * FPS, f"shot of {(end - start) / FPS:.2f} s"


def downbeat_frames(analysis: Analysis) -> set[int]:
    return {round(t * FPS) for t in analysis.downbeats}


@pytest.mark.parametrize(
    ("tempo", "beats_per_bar"),
    [(120.0, 4), (90.0, 4), (170.0, 4), (120.0, 3)],
    ids=["120", "90", "170", "3-4"],
)
def test_cuts_fall_on_downbeats_and_shots_last_4_to_8_seconds(tempo: float, beats_per_bar: int) -> None:
    analysis = song(tempo=tempo, beats_per_bar=beats_per_bar, duration=61.37)
    cuts = plan_cuts(analysis, fps=FPS)
    assert_covers_song(cuts, analysis)
    internal = [start for start, _ in cuts[1:]]
    assert set(internal) <= downbeat_frames(analysis)
    for start, end in cuts[:-1]:  # the last shot runs to wherever the song ends
        assert 4 * FPS <= end - start <= 8 * FPS


def test_cut_times_are_snapped_from_absolute_times_so_no_error_accumulates() -> None:
    # 170 bpm: a beat every 0.3529… s, never on the 24 fps grid; three minutes of it.
    analysis = song(tempo=170.0, duration=180.0, first_beat=0.23)
    board = plan_storyboard(analysis, fps=FPS, writer=LOCAL)
    assert board.total_frames == round(180.0 * FPS)
    for shot in board.shots:
        assert shot.start == shot.start_frame / FPS and shot.end == shot.end_frame / FPS
        if shot.index:
            nearest = min(analysis.downbeats, key=lambda t: abs(t - shot.start))
            assert abs(nearest - shot.start) <= 0.5 / FPS + 1e-9
    assert [s.end_frame for s in board.shots[:-1]] == [s.start_frame for s in board.shots[1:]]


def test_calm_parts_get_longer_shots_than_energetic_ones() -> None:
    analysis = song(duration=96.0, energy=lambda t: 0.15 if t < 48 else 0.9)
    cuts = plan_cuts(analysis, fps=FPS)
    calm = [(e - s) / FPS for s, e in cuts if e <= 48 * FPS]
    loud = [(e - s) / FPS for s, e in cuts[:-1] if s >= 48 * FPS]
    assert sum(calm) / len(calm) > sum(loud) / len(loud) + 1.5


def test_a_downbeat_that_starts_a_section_is_always_a_cut() -> None:
    analysis = song(
        duration=70.0, sections=[(0.0, "intro"), (20.5, "verse"), (36.5, "chorus"), (52.5, "outro")]
    )
    starts = {start for start, _ in plan_cuts(analysis, fps=FPS)}
    assert {round(t * FPS) for t in (20.5, 36.5, 52.5)} <= starts


def test_a_short_calm_outro_still_starts_on_its_own_cut() -> None:
    analysis = song(
        duration=60.0,
        energy=lambda t: 0.05 if t >= 56.5 or t < 20 else 0.8,
        sections=[(0.0, "verse"), (56.5, "outro")],
    )
    cuts = plan_cuts(analysis, fps=FPS)
    assert cuts[-1] == (round(56.5 * FPS), 60 * FPS)


def test_a_long_silent_intro_is_split_on_the_frame_grid_and_the_music_starts_on_a_cut() -> None:
    analysis = song(
        duration=40.0,
        first_beat=14.0,
        energy=lambda t: 0.0 if t < 14 else 0.7,
        sections=[(0.0, "intro"), (14.0, "verse")],
    )
    cuts = plan_cuts(analysis, fps=FPS)
    assert_covers_song(cuts, analysis)
    starts = [start for start, _ in cuts]
    assert 14 * FPS in starts
    intro_cuts = [s for s in starts if 0 < s < 14 * FPS]
    assert intro_cuts, "a 14 s intro cannot be one shot of at most 8 s"
    assert set(starts[starts.index(14 * FPS) :]) <= downbeat_frames(analysis)


def test_short_songs_and_songs_without_beats_degrade_gracefully() -> None:
    assert plan_cuts(song(duration=5.0), fps=FPS) == [(0, 120)]
    two = plan_cuts(song(duration=9.0), fps=FPS)
    assert len(two) == 2 and two[-1][1] == 216
    beatless = song(duration=30.0)
    beatless.beats, beatless.downbeats = [], []
    assert_covers_song(plan_cuts(beatless, fps=FPS), beatless)


def test_max_shots_merges_shots_and_refuses_an_impossible_count() -> None:
    analysis = song(duration=60.0)  # ~6 s shots unless limited
    assert len(plan_cuts(analysis, fps=FPS)) == 10
    merged = plan_cuts(analysis, fps=FPS, max_shots=8)
    assert len(merged) == 8
    assert_covers_song(merged, analysis)
    assert {s for s, _ in merged[1:]} <= downbeat_frames(analysis)
    with pytest.raises(
        InvalidParameter, match=r"60\.0 s song cannot be cut into 3 shot\(s\).*at least 8 shots"
    ):
        plan_cuts(analysis, fps=FPS, max_shots=3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"aspect_ratio": "4:3"}, "aspect_ratio must be one of 16:9, 1:1, 9:16"),
        ({"resolution": "8k"}, "resolution must be one of 1080p, 4k, 720p"),  # 4k: see video_models
        ({"max_shots": 0}, "max_shots must be at least 1"),
    ],
)
def test_bad_parameters_are_refused_with_a_precise_message(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message) as info:
        plan_storyboard(song(duration=20.0), writer=LOCAL, **kwargs)
    assert info.value.code == "invalid_parameter"


def test_request_seconds_is_the_smallest_clip_length_that_covers_the_shot() -> None:
    assert [request_seconds_for(d) for d in (1.0, 4.0, 4.0417, 6.0, 6.5, 8.0)] == [4, 4, 6, 6, 8, 8]
    assert request_seconds_for(5.0, allowed=(8,)) == 8
    with pytest.raises(InvalidParameter, match="longer than the longest clip"):
        request_seconds_for(8.5)


def test_storyboard_has_one_prompt_and_a_stable_seed_per_shot() -> None:
    analysis = song(duration=45.0, sections=[(0.0, "intro"), (16.5, "chorus")])
    idea = {"prompt": "a paper boat in a storm", "style": "watercolour"}
    board = plan_storyboard(analysis, writer=LOCAL, **idea, seed=7)
    again = plan_storyboard(analysis, writer=LOCAL, **idea, seed=7)
    other = plan_storyboard(analysis, writer=LOCAL, **idea, seed=8)
    assert board == again
    assert board.prompt_model == "local" and board.duration == 45.0
    seeds = [s.seed for s in board.shots]
    assert len(set(seeds)) == len(seeds) and all(0 <= s < 2**32 for s in seeds)
    assert seeds != [s.seed for s in other.shots]
    for shot in board.shots:
        assert shot.request_seconds >= shot.duration
        assert "a paper boat in a storm" in shot.prompt and "watercolour" in shot.prompt
        assert shot.negative_prompt
    assert board.shots[0].section == "intro" and board.shots[-1].section == "chorus"


def test_local_writer_keeps_the_subject_varies_the_detail_and_follows_energy() -> None:
    analysis = song(duration=30.0)
    briefs = [
        ShotBrief(index=i, start=i * 6.0, end=(i + 1) * 6.0, section="verse", energy=e, tempo=120.0)
        for i, e in enumerate([0.05, 0.05, 0.95, 0.95])
    ]
    plan = LocalPromptWriter().write(briefs, prompt="", style="", analysis=analysis)
    assert plan == LocalPromptWriter().write(briefs, prompt="", style="", analysis=analysis)
    assert len(plan.prompts) == 4 and len(set(plan.prompts)) == 4
    subject = plan.style_bible.split("Subject: ")[1].split(".")[0]
    assert subject and all(subject in p for p in plan.prompts)  # an empty prompt still gets a concept
    assert "unhurried" in plan.prompts[0] and "frenetic" in plan.prompts[2]
    assert plan.note  # says the default concept was used


def test_prompt_writer_factory_and_a_writer_that_miscounts(settings: Settings) -> None:
    assert isinstance(make_prompt_writer(job_context(settings, prompt_model="local")), LocalPromptWriter)
    with pytest.raises(UnknownModel, match="not one Kapsule knows"):
        make_prompt_writer(job_context(settings, prompt_model="gpt-4o"))

    class OnePromptWriter:
        name = "one"
        prompt_tokens = 0

        def write(
            self, briefs: list[ShotBrief], *, prompt: str, style: str, analysis: Analysis
        ) -> PromptPlan:
            return PromptPlan(prompts=["just one"])

    with pytest.raises(GenerationError, match="returned 1 prompts for"):
        plan_storyboard(song(duration=30.0), writer=OnePromptWriter())


def test_at_120_bpm_shots_are_whole_bars_and_ask_exactly_for_4_6_or_8_seconds() -> None:
    energy = lambda t: 0.1 if t < 30 else 0.95  # noqa: E731  # calm first half, loud second
    analysis = song(tempo=120.0, duration=60.5, energy=energy, sections=[(0.5, "verse"), (30.5, "chorus")])
    board = plan_storyboard(analysis, writer=LOCAL)
    bar = 4 * 60 / 120
    for shot in board.shots[1:-1]:  # the first holds the pickup before beat 1, the last the song's end
        bars = shot.duration / bar
        assert bars == pytest.approx(round(bars)) and 2 <= round(bars) <= 4
        assert shot.request_seconds == pytest.approx(shot.duration)
    assert any(shot.start == pytest.approx(30.5) for shot in board.shots)  # the chorus starts on a cut
    calm = [s.duration for s in board.shots[1:-1] if s.end <= 30.5]
    loud = [s.duration for s in board.shots[1:-1] if s.start >= 30.5]
    assert sum(calm) / len(calm) > sum(loud) / len(loud)


def test_transition_is_a_storyboard_option_checked_up_front() -> None:
    analysis = song(duration=20.0)
    assert plan_storyboard(analysis, writer=LOCAL).transition == "cut"
    board = plan_storyboard(analysis, transition="crossfade", writer=LOCAL)
    assert (board.transition, board.crossfade_seconds) == ("crossfade", 0.5)
    with pytest.raises(InvalidParameter, match="transition must be one of cut, crossfade"):
        plan_storyboard(analysis, transition="wipe", writer=LOCAL)


def test_with_crossfades_each_clip_is_asked_to_cover_its_dissolve_handles_where_a_length_allows() -> None:
    analysis = song(tempo=120.0, duration=60.5, sections=[(0.5, "verse"), (30.5, "chorus")])
    cut = plan_storyboard(analysis, writer=LOCAL)
    dissolve = plan_storyboard(analysis, transition="crossfade", crossfade_seconds=0.5, writer=LOCAL)
    assert [s.start_frame for s in dissolve.shots] == [s.start_frame for s in cut.shots]  # same cuts
    wanted = clip_frames_wanted(dissolve)
    last = len(dissolve.shots) - 1
    for shot, frames in zip(dissolve.shots, wanted, strict=True):
        handles = 6 if shot.index in (0, last) else 12  # 0.25 s each side of a cut at 24 fps
        assert frames == shot.frames + handles
        if frames / 24 <= 8:
            assert shot.request_seconds * 24 >= frames  # the clip covers the dissolves too
        else:
            assert shot.request_seconds == 8  # the longest clip; assembly holds its last frame
    assert any(d.request_seconds > c.request_seconds for d, c in zip(dissolve.shots, cut.shots, strict=True))
    assert clip_frames_wanted(cut) == [s.frames for s in cut.shots]
