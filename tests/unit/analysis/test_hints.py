"""The musician in the loop: hints the analysis keeps, runner-up readings it reports, and rereading a
grid (double, half, move the bar line) that re-plans the storyboard without another look at the audio.

Ground truth comes from the synthesized demo song's plan (see tests/unit/analysis/test_analysis.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kapsule.analysis.readings import agreed_beats, reinterpret
from kapsule.demo.song import demo_song
from kapsule.job.artifacts import Analysis, AnalysisHints
from kapsule.song.probe import analyze_song
from kapsule.storyboard.plan import plan_cuts
from tests.support.analyses import TOLERANCE, f_measure

# One worker analyses the demo song once for the module (make test runs --dist loadgroup).
pytestmark = pytest.mark.xdist_group("demo-analysis")


@pytest.fixture(scope="module")
def plain(demo_song_file: Path) -> Analysis:
    return analyze_song(demo_song_file)


def on_grid(times: list[float], grid: list[float]) -> float:
    """Share of ``times`` within TOLERANCE of a time in ``grid``."""
    g = np.asarray(grid)
    return float(np.mean([np.min(np.abs(g - t)) <= TOLERANCE for t in times])) if times else 0.0


def test_a_half_tempo_hint_is_kept_and_its_beats_are_real_beats(demo_song_file: Path) -> None:
    truth = demo_song()
    analysis = analyze_song(demo_song_file, AnalysisHints(bpm=truth.tempo / 2))
    assert analysis.tempo == pytest.approx(truth.tempo / 2, rel=0.01)
    intervals = np.diff(analysis.beats)
    assert float(np.median(intervals)) == pytest.approx(120.0 / truth.tempo, rel=0.02)
    assert on_grid(analysis.beats, truth.beats) >= 0.95  # every other true beat, on time
    assert analysis.hints == AnalysisHints(bpm=truth.tempo / 2)
    assert {r.kind for r in analysis.alternatives} & {"half_tempo", "double_tempo"} == set()


def test_a_slightly_wrong_bpm_hint_still_lands_on_the_beats(demo_song_file: Path) -> None:
    """The hint fixes the level; the local timing comes from the audio."""
    truth = demo_song()
    analysis = analyze_song(demo_song_file, AnalysisHints(bpm=truth.tempo * 1.01))
    assert f_measure(analysis.beats, truth.beats) >= 0.95


def test_a_meter_hint_regroups_the_same_beats(plain: Analysis, demo_song_file: Path) -> None:
    analysis = analyze_song(demo_song_file, AnalysisHints(beats_per_bar=3))
    assert analysis.beats_per_bar == 3
    assert analysis.beats == plain.beats
    index = [analysis.beats.index(t) for t in analysis.downbeats]
    assert set(np.diff(index).tolist()) == {3}
    assert "other_meter" not in {r.kind for r in analysis.alternatives}


def test_a_downbeat_hint_moves_the_bar_lines_there(demo_song_file: Path) -> None:
    truth = demo_song()
    bar_line = truth.beats[9]  # beat 2 of the third bar: the musician hears the one there
    analysis = analyze_song(demo_song_file, AnalysisHints(downbeat=bar_line, beats_per_bar=4))
    assert min(abs(t - bar_line) for t in analysis.downbeats) <= TOLERANCE
    assert f_measure(analysis.downbeats, truth.beats[1::4]) >= 0.95
    assert f_measure(analysis.beats, truth.beats) >= 0.95
    assert analysis.alternatives == [] or all(
        r.kind in ("half_tempo", "double_tempo") for r in analysis.alternatives
    )


def test_hints_are_validated() -> None:
    with pytest.raises(ValueError):
        AnalysisHints(bpm=10.0)
    with pytest.raises(ValueError):
        AnalysisHints(beats_per_bar=1)
    with pytest.raises(ValueError):
        AnalysisHints(downbeat=-1.0)
    assert not AnalysisHints().given()


def test_runner_up_readings_are_complete_grids(plain: Analysis) -> None:
    kinds = {r.kind: r for r in plain.alternatives}
    assert set(kinds) == {"half_tempo", "double_tempo", "other_meter", "shifted_downbeat"}
    assert 0.0 < plain.confidence <= 1.0
    assert all(0.0 <= r.plausibility <= 1.0 for r in plain.alternatives)
    half, double = kinds["half_tempo"], kinds["double_tempo"]
    assert half.beats == plain.beats[plain.beats.index(plain.downbeats[0]) % 2 :: 2]
    assert len(double.beats) == 2 * len(plain.beats) - 1
    assert set(plain.downbeats) <= set(half.downbeats) | set(double.downbeats)
    assert kinds["other_meter"].beats_per_bar == 3
    shifted = kinds["shifted_downbeat"]
    assert shifted.downbeats[0] == plain.beats[plain.beats.index(plain.downbeats[0]) + 1]


def test_agreed_beats_are_shared_by_every_plausible_reading(plain: Analysis) -> None:
    unsure = plain.model_copy(
        update={
            "alternatives": [
                r.model_copy(
                    update={"plausibility": 0.9 if r.kind in ("half_tempo", "shifted_downbeat") else 0.0}
                )
                for r in plain.alternatives
            ]
        }
    )
    beats, downbeats = agreed_beats(unsure)
    half = next(r for r in plain.alternatives if r.kind == "half_tempo")
    assert beats == half.beats  # every other beat: on the beat at either tempo
    assert downbeats == []  # the bar line could be either of two beats: no downbeat is sure
    assert agreed_beats(plain, min_plausibility=1.01) == (plain.beats, plain.downbeats)
    # the storyboard then cuts only on those beats
    cuts = [a / 24 for a, _ in plan_cuts(unsure, fps=24)[1:]]
    assert on_grid(cuts, half.beats) == 1.0


def test_reinterpret_doubles_halves_and_moves_the_bar_line(plain: Analysis) -> None:
    double = reinterpret(plain, tempo_factor=2.0)
    assert double.tempo == pytest.approx(2 * plain.tempo, rel=1e-3)
    assert len(double.beats) == 2 * len(plain.beats) - 1 and double.downbeats[0] == plain.downbeats[0]
    half = reinterpret(plain, tempo_factor=0.5)
    assert half.tempo == pytest.approx(plain.tempo / 2, rel=1e-3)
    assert set(half.beats) <= set(plain.beats) and half.downbeats[0] == plain.downbeats[0]
    moved = reinterpret(plain, shift_beats=1)
    first = plain.beats.index(plain.downbeats[0])
    assert moved.downbeats[:3] == plain.beats[first + 1 :: 4][:3]
    assert moved.confidence == 1.0 and moved.alternatives == []
    # re-planning is free: the storyboard's cuts follow the moved bar lines
    cuts = [a / 24 for a, _ in plan_cuts(moved, fps=24)[1:]]
    assert on_grid(cuts, moved.downbeats) >= 0.8
    with pytest.raises(ValueError):
        reinterpret(plain, tempo_factor=3.0)


def test_an_old_analysis_json_still_loads(plain: Analysis) -> None:
    old = json.loads(plain.model_dump_json())
    for key in ("confidence", "alternatives", "hints"):
        old.pop(key)
    loaded = Analysis.model_validate(old)
    assert loaded.confidence == 1.0 and loaded.alternatives == [] and loaded.hints is None
    assert agreed_beats(loaded) == (plain.beats, plain.downbeats)
