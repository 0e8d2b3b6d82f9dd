"""Hints are law (issue 21): a bar line the musician gives is a bar line of the output within 20 ms
wherever it falls (the first instant, the last second, between two beats), and a BPM fixes the
grid's tempo even far from what the song suggests; with a number of beats per bar it fixes the meter.

The song is rendered from a plan, so its true beats are known; it is analysed from its samples
(no file, no FFmpeg).
"""

from __future__ import annotations

import numpy as np
import pytest

from kapsule.analysis import ANALYSIS_RATE, analyze_samples
from kapsule.analysis.beats import TEMPO_AGREEMENT
from kapsule.analysis.pinning import pin_bar_line
from kapsule.demo.song import DemoSong, synthesize_song
from kapsule.job.artifacts import Analysis, AnalysisHints
from tests.support.analyses import f_measure

pytestmark = pytest.mark.xdist_group("hint-law")

LAW_S = 0.020  # a hinted bar line is in the output this close


@pytest.fixture(scope="module")
def song() -> DemoSong:
    """A 2/4 song at 100 BPM whose first bar line is at 0.0 s (the issue's rag case)."""
    return synthesize_song(
        tempo=100.0,
        beats_per_bar=2,
        style="rock",
        structure=[("intro", 2), ("verse", 8), ("chorus", 8)],
        sample_rate=ANALYSIS_RATE,
    )


def analyze(song: DemoSong, hints: AnalysisHints) -> Analysis:
    return analyze_samples(song.samples.mean(axis=1), song.sample_rate, hints)


def nearest(times: list[float], t: float) -> float:
    return float(np.min(np.abs(np.asarray(times) - t)))


def test_a_bar_line_at_the_first_instant_is_kept(song: DemoSong) -> None:
    assert song.downbeats[0] == 0.0
    analysis = analyze(song, AnalysisHints(bpm=100.0, beats_per_bar=2, downbeat=0.0))
    assert analysis.downbeats[0] == pytest.approx(0.0, abs=LAW_S)
    # and so is every true bar line after it: the grid did not slide off the hint
    assert f_measure(analysis.downbeats, song.downbeats) >= 0.95
    assert analysis.beats_per_bar == 2 and analysis.tempo == pytest.approx(100.0, rel=0.01)


def test_a_bar_line_in_the_last_second_is_kept(song: DemoSong) -> None:
    at = song.duration - 0.4  # between the last two beats: no beat of the song is there
    assert nearest(song.beats, at) > 0.1
    analysis = analyze(song, AnalysisHints(downbeat=at))
    assert nearest(analysis.downbeats, at) <= LAW_S
    assert all(0.0 <= t <= analysis.duration for t in analysis.beats)


def test_a_bar_line_between_two_beats_moves_the_grid_onto_it(song: DemoSong) -> None:
    at = (song.beats[7] + song.beats[8]) / 2  # the off-beat: the musician hears the one there
    analysis = analyze(song, AnalysisHints(downbeat=at, beats_per_bar=2))
    assert nearest(analysis.downbeats, at) <= LAW_S
    offbeats = [b + 0.3 for b in song.beats[:-1]]
    assert f_measure(analysis.beats, offbeats) >= 0.9  # a steady grid through it, not one moved beat
    assert analysis.beats_per_bar == 2


@pytest.mark.parametrize("bpm", [70.0, 163.0])
def test_a_bpm_far_from_the_songs_is_the_grids_tempo(song: DemoSong, bpm: float) -> None:
    analysis = analyze(song, AnalysisHints(bpm=bpm))
    assert analysis.tempo == pytest.approx(bpm, rel=0.005)
    # the beats follow the audio's local timing, within the tracker's allowance of the hinted tempo
    assert 60.0 / float(np.median(np.diff(analysis.beats))) == pytest.approx(bpm, rel=TEMPO_AGREEMENT)
    assert {r.kind for r in analysis.alternatives} & {"half_tempo", "double_tempo"} == set()


def test_a_bpm_and_a_meter_fix_both(song: DemoSong) -> None:
    analysis = analyze(song, AnalysisHints(bpm=50.0, beats_per_bar=3))
    assert analysis.tempo == pytest.approx(50.0, rel=0.005) and analysis.beats_per_bar == 3
    assert f_measure(analysis.beats, song.downbeats) >= 0.9  # 50 BPM: the song's bar lines
    index = [analysis.beats.index(t) for t in analysis.downbeats]
    assert set(np.diff(index).tolist()) == {3}


def test_pinning_reaches_a_hint_outside_the_tracked_beats() -> None:
    beats = np.arange(1.0, 9.0, 0.5)  # the tracker's beats start at 1.0 s and stop at 8.5 s
    for at in (0.0, 0.25, 9.5, 4.25, 4.51):
        pinned, k = pin_bar_line(beats, at, duration=10.0)
        assert pinned[k] == pytest.approx(at, abs=1e-9)
        assert np.all(np.diff(pinned) > 0.3) and np.all(np.diff(pinned) < 0.7)
        assert pinned[0] >= 0.0 and pinned[-1] <= 10.0
    pinned, _ = pin_bar_line(beats, 4.51, duration=10.0)
    assert pinned[0] == pytest.approx(1.0) and pinned[-1] == pytest.approx(8.5)  # far beats stay
