"""Other readings of a beat grid: half or double tempo, another meter, the bar line a beat later;
the beats they all agree on; and a grid reread by the musician ("double", "half", "move the bar
line by one beat") without analysing the audio again.

WHY: the analysis can be sure of the pulse and unsure of its level or of the bar line (a swung
150 BPM song reads as well at 75, a backbeat kick on 2 and 4 pulls the bar line a beat off). A cut
on a beat that every plausible reading shares is on the beat whichever reading is true.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kapsule.analysis.common import around
from kapsule.analysis.meter import METER_MARGIN, METERS_HEARD, downbeat_contrasts
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


@dataclass(frozen=True)
class HalfGrid:
    """Which half of the beats is the beat at half tempo, and its bars: ``offset`` 0 keeps beats
    0, 2, 4 …, 1 keeps 1, 3, 5 …; ``beats_per_bar`` and ``first`` (the index, in the half grid, of a
    bar line) group them."""

    offset: int
    beats_per_bar: int
    first: int


def half_grid(
    analysis: Analysis, beat_frames: np.ndarray, beat_act: np.ndarray, down_act: np.ndarray
) -> HalfGrid | None:
    """The half-tempo grid the audio supports: the half of the beats with more beat and bar-line
    activation on it, grouped into the bars the downbeat activation reads on that half.

    WHY from the audio and not from the chosen bar lines: when the analysis doubled the tempo its
    bar lines are as likely on the off-beats as on the beats, and every other beat from a bar line
    on the off-beat is the wrong half (issue 21: beat F 0.0 on two real recordings, where the right
    half scored 0.96 and 1.00). Its bars are read on that half as the analysis reads its own
    (``meter.downbeat_contrasts``, 2, 3 or 4 slow beats); where every bar line heard there is one
    of the chosen bar lines, the chosen ones are kept, all of them (an even bar halves: 4 → 2).
    """
    if beat_frames.size < 8 or beat_frames.size != len(analysis.beats):
        return None  # too few beats to read: ``half_reading`` keeps the half with the bar lines
    per_bar = analysis.beats_per_bar
    first = first_downbeat_index(analysis)
    support = around(beat_act + down_act, beat_frames, before=1, after=1)
    offset = int(support[1::2].mean() > support[0::2].mean())
    frames = beat_frames[offset::2]
    heard = {m: downbeat_contrasts(frames, down_act, m) / METER_MARGIN[m] for m in METERS_HEARD}
    meter = max(heard, key=lambda m: float(heard[m].max()))
    phase = int(np.argmax(heard[meter]))
    slow = per_bar // 2
    on_chosen = slow >= 2 and meter % slow == 0 and (phase - first // 2) % slow == 0
    if per_bar % 2 == 0 and first % 2 == offset and on_chosen:
        # the bars heard on this half start on the chosen bar lines: keep all of those
        return HalfGrid(offset, slow, (first // 2) % slow)
    return HalfGrid(offset, meter, phase)


def half_reading(
    analysis: Analysis, grid: HalfGrid | None = None
) -> tuple[float, int, list[float], list[float]]:
    """(tempo, beats per bar, beats, downbeats) at half tempo: every other beat, the half ``grid``
    names (from the audio: ``half_grid``); without one, the half that carries the bar lines, an even
    bar halved (4 → 2 slow beats) and an odd one keeping its count."""
    if grid is None:
        first = first_downbeat_index(analysis)
        per_bar = analysis.beats_per_bar
        grid = HalfGrid(first % 2, max(per_bar // 2 if per_bar % 2 == 0 else per_bar, 1), first // 2)
    beats = analysis.beats[grid.offset :: 2]
    return analysis.tempo / 2, grid.beats_per_bar, beats, downbeats_of(beats, grid.beats_per_bar, grid.first)


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
    analysis: Analysis,
    kind: str,
    plausibility: float,
    other_meter: int = 0,
    phase: int = 0,
    half: HalfGrid | None = None,
) -> Reading:
    """One runner-up reading of ``analysis`` as a complete grid (``half``: which half of the beats
    the half-tempo reading keeps, see ``half_grid``)."""
    if kind == "half_tempo":
        tempo, per_bar, beats, downbeats = half_reading(analysis, half)
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


def close_call(alternatives: list[Reading]) -> Reading | None:
    """The runner-up the musician should hear beside the chosen grid: the most plausible one, when it
    is at least PLAUSIBLE (the same bar the storyboard hedges at: where the product would not cut
    on a guess, it asks)."""
    best = max(alternatives, key=lambda r: r.plausibility, default=None)
    return best if best is not None and best.plausibility >= PLAUSIBLE else None


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
    kind = {2.0: "double_tempo", 0.5: "half_tempo"}.get(tempo_factor)
    heard = next((r for r in analysis.alternatives if r.kind == kind), None)
    if heard is not None:  # the analysis heard this reading in the audio: it is the grid offered
        tempo, per_bar, beats, downbeats = heard.tempo, heard.beats_per_bar, heard.beats, heard.downbeats
    elif tempo_factor == 2.0:
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
            "close_call": None,
        }
    )
