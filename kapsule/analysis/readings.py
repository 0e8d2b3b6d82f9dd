"""Other readings of a beat grid: half or double tempo, another meter, the bar line a beat later;
the beats they all agree on; and a grid reread by the musician ("double", "half", "move the bar
line by one beat") without analysing the audio again.

WHY: the analysis can be sure of the pulse and unsure of its level or of the bar line (a swung
150 BPM song reads as well at 75, a backbeat kick on 2 and 4 pulls the bar line a beat off). A cut
on a beat that every plausible reading shares is on the beat whichever reading is true.
"""

from __future__ import annotations

import numpy as np

from kapsule.job.artifacts import Analysis, Reading

AGREEMENT_S = 0.07  # two readings' beats this close are the same beat (the beat-tracking window)
# A runner-up at least this plausible is one the storyboard must not contradict. Chosen on the corpus
# tuning part: 0.2 → 85 % / 73 %, 0.35 → 85 % / 76 %, 0.5 → 84 % / 75 % of cuts on a beat / downbeat.
PLAUSIBLE = 0.35


def downbeats_of(beats: list[float], beats_per_bar: int, first: int) -> list[float]:
    """Every ``beats_per_bar``-th beat from beat index ``first`` (taken modulo the bar)."""
    if not beats or beats_per_bar < 1:
        return []
    return beats[first % beats_per_bar :: beats_per_bar]


def double_grid(beats: list[float]) -> list[float]:
    """The beats and the midpoint of every interval between them."""
    if len(beats) < 2:
        return list(beats)
    b = np.asarray(beats, dtype=float)
    mids = (b[:-1] + b[1:]) / 2.0
    return [round(float(t), 4) for t in np.sort(np.concatenate([b, mids]))]


def first_downbeat_index(analysis: Analysis) -> int:
    """Index among the beats of the first downbeat (0 when there is none)."""
    if not analysis.downbeats or not analysis.beats:
        return 0
    b = np.asarray(analysis.beats)
    return int(np.argmin(np.abs(b - analysis.downbeats[0])))


def half_reading(analysis: Analysis) -> tuple[float, int, list[float], list[float]]:
    """(tempo, beats per bar, beats, downbeats) at half tempo: every other beat, those that carry
    the bar lines; an even bar halves (4 → 2 slow beats), an odd one keeps its count."""
    first = first_downbeat_index(analysis)
    beats = analysis.beats[first % 2 :: 2]
    per_bar = analysis.beats_per_bar // 2 if analysis.beats_per_bar % 2 == 0 else analysis.beats_per_bar
    per_bar = max(per_bar, 1)
    return analysis.tempo / 2, per_bar, beats, downbeats_of(beats, per_bar, first // 2)


def double_reading(analysis: Analysis) -> tuple[float, int, list[float], list[float]]:
    """(tempo, beats per bar, beats, downbeats) at double tempo: the bar lines stay where they are."""
    beats = double_grid(analysis.beats)
    per_bar = analysis.beats_per_bar * 2
    return (
        analysis.tempo * 2,
        per_bar,
        beats,
        downbeats_of(beats, per_bar, 2 * first_downbeat_index(analysis)),
    )


def reading(
    analysis: Analysis, kind: str, plausibility: float, other_meter: int = 0, phase: int = 0
) -> Reading:
    """One runner-up reading of ``analysis`` as a complete grid."""
    if kind == "half_tempo":
        tempo, per_bar, beats, downbeats = half_reading(analysis)
    elif kind == "double_tempo":
        tempo, per_bar, beats, downbeats = double_reading(analysis)
    elif kind == "other_meter":
        tempo, per_bar, beats = analysis.tempo, other_meter, analysis.beats
        downbeats = downbeats_of(beats, per_bar, phase)
    elif kind == "shifted_downbeat":
        tempo, per_bar, beats = analysis.tempo, analysis.beats_per_bar, analysis.beats
        downbeats = downbeats_of(beats, per_bar, first_downbeat_index(analysis) + 1)
    else:
        raise ValueError(f"unknown reading {kind!r}")
    return Reading(
        kind=kind,
        plausibility=round(float(np.clip(plausibility, 0.0, 1.0)), 3),
        tempo=round(tempo, 3),
        beats_per_bar=per_bar,
        beats=list(beats),
        downbeats=list(downbeats),
    )


def _shared(times: list[float], others: list[list[float]]) -> list[float]:
    """The times that every list in ``others`` also has (within AGREEMENT_S)."""
    kept = np.asarray(times, dtype=float)
    for other in others:
        if kept.size == 0:
            break
        o = np.asarray(other, dtype=float)
        if o.size == 0:
            return []
        idx = np.clip(np.searchsorted(o, kept), 1, max(o.size - 1, 1))
        gap = np.minimum(np.abs(kept - o[idx - 1]), np.abs(kept - o[np.minimum(idx, o.size - 1)]))
        kept = kept[gap <= AGREEMENT_S]
    return [float(t) for t in kept]


def agreed_beats(
    analysis: Analysis, min_plausibility: float | None = None
) -> tuple[list[float], list[float]]:
    """(beats, downbeats) that the chosen reading and every runner-up at least ``min_plausibility``
    (default PLAUSIBLE) plausible share. With no plausible runner-up these are the analysis's own
    beats and downbeats; with a plausible bar line one beat later, no downbeat is agreed (the
    storyboard then cuts on agreed beats only)."""
    floor = PLAUSIBLE if min_plausibility is None else min_plausibility
    plausible = [r for r in analysis.alternatives if r.plausibility >= floor]
    beats = _shared(analysis.beats, [r.beats for r in plausible])
    downbeats = _shared(analysis.downbeats, [r.downbeats for r in plausible])
    return beats, downbeats


def reinterpret(
    analysis: Analysis, *, tempo_factor: float = 1.0, shift_beats: int = 0, beats_per_bar: int | None = None
) -> Analysis:
    """The analysis reread by the musician, with no new look at the audio: ``tempo_factor`` 2
    (double) or 0.5 (half), the bar line moved by ``shift_beats`` beats, and/or another number of
    beats per bar. Sections and energy stay; the result is sure (confidence 1, no alternatives),
    because a person chose it. To set an exact BPM, analyse again with hints (``analyze_song``).
    """
    if tempo_factor == 2.0:
        tempo, per_bar, beats, downbeats = double_reading(analysis)
    elif tempo_factor == 0.5:
        tempo, per_bar, beats, downbeats = half_reading(analysis)
    elif tempo_factor == 1.0:
        tempo, per_bar, beats, downbeats = (
            analysis.tempo,
            analysis.beats_per_bar,
            analysis.beats,
            analysis.downbeats,
        )
    else:
        raise ValueError(f"tempo_factor must be 0.5, 1 or 2, got {tempo_factor}")
    first = int(np.argmin(np.abs(np.asarray(beats) - downbeats[0]))) if downbeats and beats else 0
    per_bar = beats_per_bar or per_bar
    downbeats = downbeats_of(beats, per_bar, first + shift_beats)
    return analysis.model_copy(
        update={
            "tempo": round(tempo, 3),
            "beats_per_bar": per_bar,
            "beats": list(beats),
            "downbeats": list(downbeats),
            "confidence": 1.0,
            "alternatives": [],
        }
    )
