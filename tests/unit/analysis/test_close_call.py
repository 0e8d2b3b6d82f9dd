"""Uncertainty the product acts on (issue 21): the half- and double-tempo readings are correct grids
of their own, the right half of the beats, and a close runner-up is named on the analysis
(``close_call``) so the musician is asked to choose by ear.

The activations are made by hand (a beat network's output for a known song), so the right answer is
known exactly: the analysis tracked a 70 BPM 4/4 song at 140 with its bar lines on the off-beats.
"""

from __future__ import annotations

import numpy as np
import pytest

from kapsule.analysis.readings import PLAUSIBLE, close_call, half_grid, reading, reinterpret
from kapsule.job.artifacts import Analysis, Reading
from tests.support.analyses import song

STEP = 20  # frames between the tracked (doubled) beats
N = 64  # tracked beats


@pytest.fixture
def doubled() -> tuple[Analysis, np.ndarray, np.ndarray, np.ndarray]:
    """(analysis at 140 BPM with bar lines on beats 1, 5, 9 … (the off-beats), its beat frames, the
    beat and downbeat activations of the true 70 BPM song: beats on the odd tracked beats, bar lines
    on every fourth of those, i.e. tracked beats 3, 11, 19 …)."""
    analysis = song(tempo=140.0, duration=N * 60 / 140 + 0.2)
    analysis = analysis.model_copy(update={"downbeats": analysis.beats[1::4], "beats_per_bar": 4})
    assert len(analysis.beats) == N
    frames = 10 + STEP * np.arange(N)
    beat, down = np.zeros(frames[-1] + 20), np.zeros(frames[-1] + 20)
    beat[frames] = 0.15  # the network is half-sure of the eighths
    beat[frames[1::2]] = 0.9
    down[frames[3::8]] = 0.8
    return analysis, frames, beat, down


def test_the_half_tempo_reading_keeps_the_half_the_audio_supports(
    doubled: tuple[Analysis, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    analysis, frames, beat, down = doubled
    grid = half_grid(analysis, frames, beat, down)
    half = reading(analysis, "half_tempo", 0.8, half=grid)
    assert half.beats == analysis.beats[1::2]  # the true beats, though the bar lines sat on beat 1
    assert half.tempo == pytest.approx(70.0)
    assert half.beats_per_bar == 4 and half.downbeats == analysis.beats[3::8]  # the true bar lines
    # without the audio (an old analysis.json) the half with the chosen bar lines is kept
    assert reading(analysis, "half_tempo", 0.8).beats == analysis.beats[1::2]


def test_the_half_reading_keeps_the_bar_lines_when_they_are_on_the_right_half(
    doubled: tuple[Analysis, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    analysis, frames, beat, down = doubled
    right = analysis.model_copy(update={"downbeats": analysis.beats[3::8], "beats_per_bar": 8})
    half = reading(right, "half_tempo", 0.8, half=half_grid(right, frames, beat, down))
    assert half.beats == right.beats[1::2] and half.downbeats[0] == right.downbeats[0]
    assert set(right.downbeats) <= set(half.downbeats)


def test_the_double_reading_is_every_beat_and_every_midpoint_with_the_same_bar_lines() -> None:
    analysis = song(tempo=70.0, duration=30.0)
    double = reading(analysis, "double_tempo", 0.6)
    assert double.tempo == pytest.approx(140.0) and double.beats_per_bar == 8
    assert double.beats[::2] == pytest.approx(analysis.beats, abs=1e-4)  # times are kept to 0.1 ms
    assert np.allclose(np.diff(double.beats), 60.0 / 140.0, atol=1e-4)
    assert double.downbeats == pytest.approx(analysis.downbeats, abs=1e-4)


def test_rereading_at_half_tempo_takes_the_grid_the_analysis_heard(
    doubled: tuple[Analysis, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    analysis, frames, beat, down = doubled
    half = reading(analysis, "half_tempo", 0.8, half=half_grid(analysis, frames, beat, down))
    chosen = reinterpret(analysis.model_copy(update={"alternatives": [half]}), tempo_factor=0.5)
    assert chosen.beats == half.beats and chosen.downbeats == half.downbeats
    assert chosen.close_call is None and chosen.alternatives == []


def _alt(kind: str, plausibility: float) -> Reading:
    return Reading.model_validate(
        {
            "kind": kind,
            "plausibility": plausibility,
            "tempo": 60.0,
            "beats_per_bar": 4,
            "beats": [],
            "downbeats": [],
        }
    )


def test_a_close_runner_up_is_named_and_a_distant_one_is_not() -> None:
    near = [_alt("double_tempo", 0.1), _alt("half_tempo", PLAUSIBLE + 0.3), _alt("other_meter", PLAUSIBLE)]
    picked = close_call(near)
    assert picked is not None and picked.kind == "half_tempo"
    assert close_call([_alt("half_tempo", PLAUSIBLE - 0.01), _alt("shifted_downbeat", 0.0)]) is None
    assert close_call([]) is None


def test_the_analysis_says_whether_it_is_unsure() -> None:
    sure = song()
    assert not sure.uncertain and sure.close_call is None
    unsure = sure.model_copy(update={"alternatives": [_alt("half_tempo", 0.9)], "close_call": "half_tempo"})
    assert unsure.uncertain
    assert unsure.reading_grid("half_tempo") == ([], [])
    assert unsure.reading_grid(None) == (sure.beats, sure.downbeats)
    assert unsure.reading_grid("other_meter") is None
    old = Analysis.model_validate({k: v for k, v in sure.model_dump().items() if k != "close_call"})
    assert old.close_call is None  # an analysis.json written before the field reads as sure
