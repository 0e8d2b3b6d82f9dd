"""Lyrics steer the storyboard: cuts prefer line starts on the bar grid; shots and prompts know the words."""

from __future__ import annotations

import json

from kapsule.core.settings import Settings
from kapsule.job.artifacts import Storyboard
from kapsule.lyrics import TimedLine
from kapsule.prompting.gemini import GeminiPromptWriter
from kapsule.storyboard.plan import plan_cuts, plan_storyboard, sung_during
from tests.support.analyses import FPS, LOCAL, song
from tests.support.fake_google import FakeGoogle


def _cut_times(cuts: list[tuple[int, int]]) -> list[float]:
    return [end / FPS for _, end in cuts[:-1]]


def test_cuts_move_to_line_starts_that_sit_on_downbeats() -> None:
    analysis = song(duration=40.0)  # downbeats at 0.5, 2.5, 4.5, ...; steady energy: ~6 s shots
    assert _cut_times(plan_cuts(analysis, fps=FPS)) == [4.5, 10.5, 16.5, 22.5, 28.5, 34.5]
    sung = [6.6, 12.4, 18.55, 24.5, 30.5]  # lines starting on (or a little off) other downbeats
    assert _cut_times(plan_cuts(analysis, fps=FPS, line_starts=sung))[:5] == [6.5, 12.5, 18.5, 24.5, 30.5]


def test_line_starts_off_the_bar_grid_do_not_pull_cuts_off_the_downbeats() -> None:
    analysis = song(duration=40.0)
    between = [6.0, 12.0, 18.0, 24.0, 30.0]  # on a beat, but mid-bar
    assert _cut_times(plan_cuts(analysis, fps=FPS, line_starts=between)) == [
        4.5,
        10.5,
        16.5,
        22.5,
        28.5,
        34.5,
    ]


LINES = [
    TimedLine(start=6.6, end=9.0, text="paper boats on silver streams"),
    TimedLine(start=12.4, end=15.5, text="carry all our little dreams"),
    TimedLine(start=16.4, end=16.6, text="hey"),
    TimedLine(start=18.55, end=22.0, text="夜空の星"),
]


def test_each_shot_knows_the_lines_sung_during_it_and_the_local_prompts_use_them() -> None:
    board = plan_storyboard(song(duration=40.0), prompt="a lighthouse keeper", lyrics=LINES, writer=LOCAL)
    for shot in board.shots:
        assert shot.lyrics == sung_during(LINES, shot.start, shot.end)
    assert [s.lyrics for s in board.shots[:4]] == [
        [],
        ["paper boats on silver streams"],
        ["carry all our little dreams", "hey"],
        ["夜空の星"],
    ]
    assert (
        '"paper boats on silver streams"' in board.shots[1].prompt
        and "without showing any text" in board.shots[1].prompt
    )
    assert "sung here" not in board.shots[0].prompt, "no words, no lyric cue"
    again = Storyboard.model_validate_json(board.model_dump_json())
    assert again.shots[3].lyrics == ["夜空の星"]


def test_a_line_spilling_over_a_cut_belongs_to_one_shot() -> None:
    assert sung_during(LINES, 0.0, 6.65) == []
    assert sung_during(LINES, 6.65, 12.0) == ["paper boats on silver streams"]
    assert sung_during(LINES, 16.5, 17.0) == ["hey"], "a short line needs half its length inside"


def test_without_lyrics_the_storyboard_is_unchanged() -> None:
    analysis = song(duration=40.0)
    board = plan_storyboard(analysis, prompt="a lighthouse keeper", writer=LOCAL)
    assert all(shot.lyrics == [] for shot in board.shots)
    assert "sung here" not in json.dumps([s.prompt for s in board.shots])
    assert "lyrics" in board.shots[0].model_dump()


def test_gemini_writer_is_told_the_lyrics_of_each_shot(
    api_key_settings: Settings, fake_google: FakeGoogle
) -> None:
    board = plan_storyboard(
        song(duration=40.0), prompt="a lighthouse keeper", lyrics=LINES,
        writer=GeminiPromptWriter("gemini-2.5-flash", api_key_settings),
    )  # fmt: skip
    assert board.prompt_model == "gemini-2.5-flash" and board.shots[1].prompt.startswith("Gemini shot 1")
    (call,) = fake_google.requests("generate")
    text = call.body["contents"][0]["parts"][0]["text"]
    shots = json.loads(text[text.index("[", text.index("Shots (")) :])  # the request ends with the shot list
    assert shots[1]["lyrics"] == ["paper boats on silver streams"] and "lyrics" not in shots[0]
    assert "夜空の星" in text, "non-Latin lyrics are sent as written"
    assert "lyrics sung during it" in json.dumps(call.body["systemInstruction"])
