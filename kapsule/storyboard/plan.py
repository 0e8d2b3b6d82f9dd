"""The storyboard: where the cuts fall on the music, and a prompt per shot.

Cuts are chosen by a shortest-path search over candidate cut points rather than greedily, because a
greedy "next downbeat after 6 s" walk paints itself into corners (a 1 s leftover before a section
change, a 9 s gap it can no longer split). Candidates are the beats, scored so the search prefers
downbeats, then section boundaries, and most of all downbeats that start a section. A shot's cost
grows with its distance from a target length that follows the music's energy (long in calm parts,
short in loud ones), so cut points and pacing are traded off over the whole song at once.

Hard rules: shots cover the song contiguously from frame 0 to ``round(duration * fps)``; no shot is
longer than ``max_seconds`` (where no beat allows that, the frame grid is used instead) or shorter
than ``SHORTEST_SHOT_S``. Every boundary is ``round(t * fps)`` of an absolute time, so rounding
never accumulates along the song.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np

from kapsule.analysis import readings
from kapsule.core.errors import GenerationError, InvalidParameter
from kapsule.job.artifacts import (
    CROSSFADE_SECONDS,
    FRAME_SIZES,
    Analysis,
    AspectRatio,
    Resolution,
    Shot,
    Storyboard,
    Transition,
)

# The clip planning lives with the dissolve arithmetic in the media package (a base module, so the
# local renderer can use it too); re-exported here for the callers that know it as storyboard's.
from kapsule.media import clip_frames_wanted as clip_frames_wanted
from kapsule.media import crossfade_half_frames as crossfade_half_frames
from kapsule.media import transition_clip_frames
from kapsule.prompting.base import PromptWriter, ShotBrief

SHORTEST_SHOT_S = 1.0  # never cut shorter than this, whatever the music does
GRID_STEP_S = 0.5  # spacing of fallback cut points where no beat can be used
CLIP_SECONDS = (4, 6, 8)  # clip lengths a video model is asked for
TRANSITIONS = ("cut", "crossfade")

# Rewards for ending a shot on a candidate (higher = better cut) and the length-cost weights.
REWARD_BEAT = 0.0
REWARD_SECTION = 0.6
REWARD_DOWNBEAT = 1.0
REWARD_DOWNBEAT_SECTION = 4.0
REWARD_GRID = -1.5  # a cut off the beat is a last resort
REWARD_LINE = 0.75  # a beat where a sung line starts: a cut there lands with the words
LINE_MIN_OVERLAP_S = 0.1  # a line counts as sung during a shot if it overlaps it this much
WEIGHT_LENGTH = 0.25  # per second² away from the energy-based target length
WEIGHT_SHORT = 2.0  # per second² below min_seconds


@dataclass(frozen=True)
class _Problem:
    """Everything the search needs, in frames."""

    fps: int
    total: int
    shortest: int
    longest: int
    min_seconds: float
    max_seconds: float
    energy: Callable[[int, int], float]  # relative energy (0..1) between two frames


class SungLine(Protocol):
    """A timed lyric line as the storyboard needs it (``lyrics.TimedLine`` is one)."""

    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def text(self) -> str: ...


def sung_during(lines: Sequence[SungLine], start: float, end: float) -> list[str]:
    """Texts of the lines sung during [start, end): overlapping it by 0.1 s (or half the line, if shorter),
    so a line spilling a few frames over a cut is not credited to both shots."""
    return [
        line.text
        for line in lines
        if min(line.end, end) - max(line.start, start)
        >= max(1e-6, min(LINE_MIN_OVERLAP_S, (line.end - line.start) / 2))
    ]


def request_seconds_for(duration: float, allowed: Sequence[int] = CLIP_SECONDS) -> int:
    """The shortest clip length in ``allowed`` that covers ``duration`` s: what the model is asked for."""
    if not allowed:
        raise InvalidParameter("no clip lengths are allowed for this video model")
    if not duration > 0:
        raise InvalidParameter(f"a shot must last more than 0 s, got {duration} s")
    for seconds in sorted(allowed):
        if seconds + 1e-6 >= duration:
            return seconds
    raise InvalidParameter(
        f"a {duration:.2f} s shot is longer than the longest clip the video model makes ({max(allowed)} s)"
    )


def _request_seconds(wanted_frames: int, shot_frames: int, fps: int) -> int:
    """Ask for a clip that covers the shot and its dissolve handles; if none is that long, the shot alone
    (assembly then holds the clip's last frame through the outgoing half of the dissolve)."""
    try:
        return request_seconds_for(wanted_frames / fps)
    except InvalidParameter:
        return request_seconds_for(shot_frames / fps)


def shot_seed(seed: int, index: int) -> int:
    """A shot's seed: a stable function of the job seed and the shot index, 0..``MAX_SHOT_SEED``
    (the first 32 bits of a SHA-256)."""
    digest = hashlib.sha256(f"kapsule-shot:{seed}:{index}".encode()).hexdigest()
    return int(digest[:8], 16)


# ------------------------------------------------------------------------------------------ cuts


def check_max_shots(
    duration: float, max_shots: int | None, *, fps: int = 24, max_seconds: float = 8.0
) -> None:
    """Refuse a ``max_shots`` too small for a song of ``duration`` s (shots last at most ``max_seconds``).

    Submission calls it with the song's measured length, so the job is refused before it exists
    instead of failing in its storyboard; ``plan_cuts`` calls it again with the analysed length.
    """
    if max_shots is not None and max_shots < 1:
        raise InvalidParameter(f"max_shots must be at least 1, got {max_shots}")
    total = round(duration * fps)
    if total < 1:
        raise InvalidParameter(f"the song is too short to hold a single frame ({duration} s)")
    longest = max(1, math.floor(max_seconds * fps + 1e-9))
    if max_shots is not None and max_shots * longest < total:
        needed = math.ceil(total / longest)
        raise InvalidParameter(
            f"a {duration:.1f} s song cannot be cut into {max_shots} shot(s) of at most "
            f"{max_seconds:g} s; it needs at least {needed} shots (max_shots >= {needed})"
        )


def plan_cuts(
    analysis: Analysis,
    *,
    fps: int = 24,
    max_shots: int | None = None,
    min_seconds: float = 4.0,
    max_seconds: float = 8.0,
    line_starts: Sequence[float] = (),
) -> list[tuple[int, int]]:
    """(start_frame, end_frame) of every shot: contiguous from 0 to ``round(duration * fps)``.

    ``line_starts`` (times sung lines start) add ``REWARD_LINE`` to the beat nearest each one, if it
    is close enough: a cut prefers a line's start only where that agrees with the beat grid.
    """
    if fps < 1:
        raise InvalidParameter(f"fps must be at least 1, got {fps}")
    if not 0 < min_seconds <= max_seconds:
        raise InvalidParameter(
            f"shot lengths must satisfy 0 < min_seconds <= max_seconds, got {min_seconds} and {max_seconds}"
        )
    check_max_shots(analysis.duration, max_shots, fps=fps, max_seconds=max_seconds)
    total = round(analysis.duration * fps)
    longest = max(1, math.floor(max_seconds * fps + 1e-9))
    problem = _Problem(
        fps=fps,
        total=total,
        shortest=min(total, max(1, round(SHORTEST_SHOT_S * fps))),
        longest=longest,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        energy=_energy_lookup(analysis, fps),
    )
    beats = _beat_candidates(analysis, fps, total)
    _reward_line_starts(beats, analysis, fps, line_starts)
    for nodes in (_with_gap_grid(beats, analysis, problem), _with_full_grid(beats, problem)):
        path = _search(nodes, problem, max_shots)
        if path is not None:
            return list(itertools.pairwise(path))
    # Unreachable in practice (the full grid always has a path); an even split is always valid.
    count = max(math.ceil(total / longest), 1)
    edges = [round(i * total / count) for i in range(count + 1)]
    return list(itertools.pairwise(edges))


def _energy_lookup(analysis: Analysis, fps: int) -> Callable[[int, int], float]:
    """Mean energy between two frames, rescaled so the song's quiet parts are ~0 and loud ones ~1.

    Energy is normalized over the song already, but most songs sit in a narrow band; stretching the
    10th..90th percentile to 0..1 lets "calm" and "energetic" mean calm and energetic *for this song*.
    """
    times = list(analysis.energy.times)
    values = np.asarray(analysis.energy.values, dtype=float)
    if not times or len(values) != len(times):
        return lambda start, end: 0.5
    low, high = (float(v) for v in np.percentile(values, [10, 90]))
    spread = high - low
    prefix = np.concatenate([[0.0], np.cumsum(values)])

    def mean_between(start: int, end: int) -> float:
        i = bisect.bisect_left(times, start / fps)
        j = bisect.bisect_left(times, end / fps)
        # A shot shorter than the energy hop has no sample inside: use the nearest one.
        mean = float(values[min(i, len(values) - 1)] if j <= i else (prefix[j] - prefix[i]) / (j - i))
        if spread < 0.05:
            return 0.5
        return min(1.0, max(0.0, (mean - low) / spread))

    return mean_between


def _beat_candidates(analysis: Analysis, fps: int, total: int) -> dict[int, float]:
    """Frame → reward for every beat strictly inside the song that every plausible reading of the
    grid shares (``readings.agreed_beats``): where the tempo level or the bar line is uncertain,
    cuts go only where they are on the beat (or the bar line) whichever reading is true."""
    agreed_beats, agreed_downbeats = readings.agreed_beats(analysis)
    downbeats = {f for f in (round(t * fps) for t in agreed_downbeats) if 0 < f < total}
    # A beat tracker's beat and downbeat for the same moment may round to adjacent frames: keep one.
    beats = {f for f in (round(t * fps) for t in agreed_beats) if 0 < f < total}
    beats = {f for f in beats if not {f - 1, f, f + 1} & downbeats}
    frames = sorted(downbeats | beats)
    # A section boundary is marked on the beat nearest to it, if that beat is close enough.
    tolerance = _beat_tolerance(analysis, fps)
    boundaries: set[int] = set()
    for section in analysis.sections[1:]:
        target = round(section.start * fps)
        near = min(frames, key=lambda f: abs(f - target), default=None)
        if near is not None and abs(near - target) <= tolerance:
            boundaries.add(near)
    rewards = {}
    for frame in frames:
        on_downbeat = frame in downbeats
        on_boundary = frame in boundaries
        if on_downbeat and on_boundary:
            rewards[frame] = REWARD_DOWNBEAT_SECTION
        elif on_downbeat:
            rewards[frame] = REWARD_DOWNBEAT
        elif on_boundary:
            rewards[frame] = REWARD_SECTION
        else:
            rewards[frame] = REWARD_BEAT
    return rewards


def _beat_tolerance(analysis: Analysis, fps: int) -> int:
    """Frames within which a moment (a section change, a sung line) is taken to be on a beat."""
    period = 60.0 / analysis.tempo if analysis.tempo > 0 else 0.5
    return max(1, round(min(0.35, period / 2) * fps))


def _reward_line_starts(
    beats: dict[int, float], analysis: Analysis, fps: int, line_starts: Sequence[float]
) -> None:
    """Add ``REWARD_LINE`` to the beat nearest each line start within the beat tolerance (once per beat)."""
    frames = sorted(beats)
    tolerance = _beat_tolerance(analysis, fps)
    rewarded: set[int] = set()
    for start in line_starts:
        target = round(start * fps)
        near = min(frames, key=lambda f: abs(f - target), default=None)
        if near is not None and abs(near - target) <= tolerance and near not in rewarded:
            beats[near] += REWARD_LINE
            rewarded.add(near)


def _with_gap_grid(beats: dict[int, float], analysis: Analysis, problem: _Problem) -> dict[int, float]:
    """Beats, plus grid points (and section starts) inside every beat-free stretch longer than a shot."""
    nodes = dict(beats)
    edges = [0, *sorted(beats), problem.total]
    step = max(1, round(GRID_STEP_S * problem.fps))
    sections = [round(s.start * problem.fps) for s in analysis.sections[1:]]
    for a, b in itertools.pairwise(edges):
        if b - a <= problem.longest:
            continue
        for frame in range(a + step, b, step):
            nodes.setdefault(frame, REWARD_GRID)
        for frame in sections:
            if a < frame < b:
                nodes[frame] = REWARD_GRID / 2  # a section change is a better off-beat cut than none
    return nodes


def _with_full_grid(beats: dict[int, float], problem: _Problem) -> dict[int, float]:
    """Beats plus a grid over the whole song: always has a valid path, still prefers beats."""
    nodes = dict(beats)
    step = max(1, round(GRID_STEP_S * problem.fps))
    for frame in range(step, problem.total, step):
        nodes.setdefault(frame, REWARD_GRID)
    return nodes


def _shot_cost(problem: _Problem, start: int, end: int) -> float:
    """How far a shot is from the length the music asks for (calm → max_seconds, loud → min_seconds).

    The last shot only has to be long enough: it runs to wherever the song ends, and charging it for
    its length would trade away a cut on the final section's first downbeat.
    """
    seconds = (end - start) / problem.fps
    cost = 0.0
    if end != problem.total:
        energy = problem.energy(start, end)
        target = problem.max_seconds - (problem.max_seconds - problem.min_seconds) * energy
        cost = WEIGHT_LENGTH * (seconds - target) ** 2
    if seconds < problem.min_seconds:
        cost += WEIGHT_SHORT * (problem.min_seconds - seconds) ** 2
    return cost


def _search(nodes: dict[int, float], problem: _Problem, max_shots: int | None) -> list[int] | None:
    """Cheapest chain of cut frames from 0 to the end (at most ``max_shots`` shots), or None."""
    frames = [0, *sorted(f for f in nodes if 0 < f < problem.total), problem.total]
    rewards = [0.0, *(nodes[f] for f in frames[1:-1]), 0.0]
    n = len(frames)
    # Column k holds the best chain of exactly k shots; without a limit one column holds any count.
    limit = 1 if max_shots is None else min(max_shots, math.ceil(problem.total / problem.shortest))
    best = np.full((n, limit + 1), np.inf)
    back = np.full((n, limit + 1), -1, dtype=int)
    best[0, 0] = 0.0
    for j in range(1, n):
        lo = bisect.bisect_left(frames, frames[j] - problem.longest)
        hi = bisect.bisect_right(frames, frames[j] - problem.shortest)
        for i in range(lo, min(hi, j)):
            step = _shot_cost(problem, frames[i], frames[j]) - rewards[j]
            if max_shots is None:
                total = min(best[i, 0], best[i, 1]) + step
                if total < best[j, 1]:
                    best[j, 1], back[j, 1] = total, i
            else:
                totals = best[i, :-1] + step
                better = totals < best[j, 1:]
                best[j, 1:][better] = totals[better]
                back[j, 1:][better] = i
    end = n - 1
    column = int(np.argmin(best[end, 1:])) + 1
    if not np.isfinite(best[end, column]):
        return None
    path = [end]
    while path[-1] != 0:
        node = path[-1]
        previous = int(back[node, column])
        path.append(previous)
        if max_shots is not None:
            column -= 1
    return [frames[i] for i in reversed(path)]


# ------------------------------------------------------------------------------------ storyboard


def plan_storyboard(
    analysis: Analysis,
    *,
    prompt: str = "",
    style: str = "",
    aspect_ratio: str = "16:9",
    resolution: str = "720p",
    max_shots: int | None = None,
    seed: int = 0,
    fps: int = 24,
    video_model: str = "local",
    writer: PromptWriter,
    transition: str = "cut",
    crossfade_seconds: float = CROSSFADE_SECONDS,
    lyrics: Sequence[SungLine] = (),
) -> Storyboard:
    """Cut the song into shots and ask ``writer`` for one prompt per shot.

    ``transition`` is how shots meet in the video: ``cut`` (hard cuts on the planned frames) or
    ``crossfade`` (dissolves of ``crossfade_seconds`` centred on them); the cuts are planned the same.
    ``lyrics`` (timed lines, e.g. ``lyrics.load_lyrics``): cuts prefer line starts that fall on a
    beat, and each shot (and its brief to the writer) gets the lines sung during it.
    """
    ratios = sorted({ratio for ratio, _ in FRAME_SIZES})
    resolutions = sorted({res for _, res in FRAME_SIZES})
    if aspect_ratio not in ratios:
        raise InvalidParameter(f"aspect_ratio must be one of {', '.join(ratios)}, got {aspect_ratio!r}")
    if resolution not in resolutions:
        raise InvalidParameter(f"resolution must be one of {', '.join(resolutions)}, got {resolution!r}")
    if transition not in TRANSITIONS:
        raise InvalidParameter(f"transition must be one of {', '.join(TRANSITIONS)}, got {transition!r}")
    if not 0 < crossfade_seconds <= 2.0:
        raise InvalidParameter(f"crossfade_seconds must be above 0 and at most 2, got {crossfade_seconds}")
    cuts = plan_cuts(analysis, fps=fps, max_shots=max_shots, line_starts=[line.start for line in lyrics])
    briefs = []
    for index, (start_frame, end_frame) in enumerate(cuts):
        start, end = start_frame / fps, end_frame / fps
        section = analysis.section_at((start + end) / 2).label if analysis.sections else "song"
        energy = analysis.energy_between(start, end)
        briefs.append(
            ShotBrief(
                index=index,
                start=start,
                end=end,
                section=section,
                energy=energy,
                tempo=analysis.tempo,
                lyrics=sung_during(lyrics, start, end),
            )
        )
    plan = writer.write(briefs, prompt=prompt, style=style, analysis=analysis)
    if len(plan.prompts) != len(briefs):
        raise GenerationError(
            f"prompt writer {writer.name!r} returned {len(plan.prompts)} prompts for {len(briefs)} shots"
        )
    lengths = [end - start for start, end in cuts]
    wanted_frames = transition_clip_frames(lengths, fps, transition, crossfade_seconds)
    shots = [
        Shot(
            index=brief.index,
            start=brief.start,
            end=brief.end,
            start_frame=start_frame,
            end_frame=end_frame,
            request_seconds=_request_seconds(wanted, end_frame - start_frame, fps),
            section=brief.section,
            energy=brief.energy,
            prompt=text,
            negative_prompt=plan.negative_prompt,
            seed=shot_seed(seed, brief.index),
            lyrics=brief.lyrics,
        )
        for brief, (start_frame, end_frame), text, wanted in zip(
            briefs,
            cuts,
            plan.prompts,
            wanted_frames,
            strict=True,
        )
    ]
    return Storyboard(
        fps=fps,
        aspect_ratio=cast(AspectRatio, aspect_ratio),  # checked above
        resolution=cast(Resolution, resolution),  # checked above
        video_model=video_model,
        prompt_model=writer.name,
        prompt=prompt,
        style=style,
        duration=analysis.duration,
        total_frames=cuts[-1][1],
        shots=shots,
        prompt_writer_note=plan.note,
        transition=cast(Transition, transition),  # checked above
        crossfade_seconds=crossfade_seconds,
    )
