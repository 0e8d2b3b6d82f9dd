"""Filter graphs for assembly and the frame arithmetic behind them: cuts, dissolves, concat cut-offs.

Everything here is pure (numbers in, filter strings or frame counts out), so the planning is tested
without running FFmpeg; ``commands`` puts the graphs into command lines.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

from kapsule.media.probing import Packet

# ------------------------------------------------------------------------------------------ assembly
# Builders for assemble.py. Two ways to join:
# * exact clips (the local renderer's: each has its shot's frames and the shared H.264 setup) are
#   joined by the concat demuxer with stream copy: a remux, an order of magnitude under the floor;
# * any other clips (a Veo 8 s clip for a 6.3 s shot) go through ONE encode pass
#   (``assembly_cmd``): the concat demuxer feeds every clip, in order, through one decoder, and the
#   filter graph keeps each shot's frames *by frame number after decoding* (``select`` on ``n``).
#   Frame numbers are exact where timestamps are not: the concat demuxer's output timestamps carry
#   each file's audio priming offset (23 ms for AAC at 44.1 kHz), half a frame of uncertainty per cut.
#   Opening every clip as its own input with ``-ss/-t`` is exact too, but keeps ~25 decoders alive
#   (~1 GB RSS at 720p); one decoder stays near a plain encode's ~200 MB.
# Decoding frames only to drop them costs ~10 % of a pass, so each clip gets an ``outpoint`` where
# the demuxer stops reading it (``concat_cutoff``). The demuxer stops at the first packet of *any*
# stream whose *decoding* timestamp reaches the outpoint, so with B-frames (and an audio track read
# in between) a few frames past it still come out. ``concat_cutoff`` replays that rule on the clip's
# own packet list, so it knows exactly how many frames the decoder will output for the clip.
# Frame numbering only holds while the decoder's output never changes shape (a change re-creates
# the filter graph and restarts ``n``), so a clip of another size, rate or pixel format is first
# normalized to the others' shape (``normalize_clip_cmd``); that is rare (a fallback clip).

MICROSECONDS = 1_000_000  # the concat demuxer's outpoint resolution (AV_TIME_BASE)


@dataclass(frozen=True)
class ConcatCutoff:
    """Where the concat demuxer should stop reading a clip, and what the decoder then outputs.

    ``outpoint`` is None when the whole clip has to be read; ``decoded`` is the number of frames the
    clip contributes to the decoded stream (its first ``keep`` frames in display order, then the
    few extra frames read before the demuxer stopped).
    """

    outpoint: float | None
    decoded: int


def concat_cutoff(packets: Sequence[Packet], video_stream: int, keep: int) -> ConcatCutoff:
    """The earliest outpoint that still lets the decoder output a clip's first ``keep`` frames.

    Pure: a replay of the concat demuxer's rule on the packets in read order (it ends a file at the
    first packet, of any stream, whose decoding timestamp is at or past the outpoint). The needed
    frames are the ``keep`` earliest presentation timestamps; the demuxer must read up to the last
    of their packets, so the outpoint goes one microsecond past every decoding timestamp read up to
    there. Any packet without timestamps, or ``keep`` reaching the end, means the whole clip is read.
    """
    video = [(at, p) for at, p in enumerate(packets) if p.stream == video_stream]
    timed = [(at, p.pts) for at, p in video if p.pts is not None and p.dts is not None]
    if keep >= len(video) or len(timed) < len(video):
        return ConcatCutoff(None, len(video))
    needed = sorted(timed, key=lambda item: item[1])[:keep]  # stable: ties keep read order
    last = max(at for at, _ in needed)
    read = [p.dts for p in packets[: last + 1] if p.dts is not None]
    limit = Fraction(math.floor(max(read) * MICROSECONDS) + 1, MICROSECONDS)
    after = range(last + 1, len(packets))
    stop = next((at for at in after if (dts := packets[at].dts) is not None and dts >= limit), len(packets))
    return ConcatCutoff(float(limit), sum(1 for at, _ in video if at < stop))


def fit_filters(width: int, height: int) -> list[str]:
    """Scale a picture of any shape to cover width×height, then crop the centre: no bars, no stretch.

    A music video fills the screen; a 9:16 clip in a 16:9 video keeps its middle band, and a Veo
    16:9 clip in a 1:1 video keeps its middle square. Sizes are kept even for yuv420p.
    """
    return [
        f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=bicubic",
        f"crop={width}:{height}",
        "setsar=1",
    ]


@dataclass(frozen=True)
class ShotSpan:
    """Where one shot's frames are in the decoded clip stream (frames counted from 0, decode output).

    ``first`` is the clip's first frame, ``frames`` the shot's length, ``tail`` how many usable
    frames the clip has after the shot (a dissolve takes its outgoing frames from there).
    """

    first: int
    frames: int
    tail: int = 0


def _between(spans: Sequence[tuple[int, int]]) -> str:
    return "+".join(f"between(n,{a},{b - 1})" for a, b in spans if b > a)


def _steps(var: str, offsets: Sequence[tuple[int, int]]) -> str:
    """``var`` plus a piecewise-constant offset: offsets[i] = (from_value, offset) in increasing order."""
    expr = f"{var}{offsets[0][1]:+d}"
    for (_, before), (start, after) in itertools.pairwise(offsets):
        if after != before:
            expr += f"{after - before:+d}*gte({var},{start})"
    return expr


def hard_cut_filter(spans: Sequence[ShotSpan], *, fps: int, fit: Sequence[str] = ()) -> str:
    """Keep each shot's frames of the concatenated stream, renumbered onto the frame grid."""
    keep = _between([(s.first, s.first + s.frames) for s in spans])
    return ",".join([f"select='{keep}'", f"setpts=N/({fps}*TB)", *fit])


def dissolve_half_frames(seconds: float, fps: int, lengths: Sequence[int]) -> int:
    """Frames a dissolve spends on each side of a cut: half its length, never more than half a shot."""
    if len(lengths) < 2:
        return 0
    return max(0, min(round(seconds * fps / 2), min(lengths) // 2))


def dissolve_frames_needed(lengths: Sequence[int], half_frames: int) -> list[int]:
    """Frames each clip must supply for dissolves of ``2 * half_frames`` centred on the cuts.

    A dissolve shows the incoming clip from ``half_frames`` before the cut and the outgoing one until
    ``half_frames`` after it, so an inner clip plays its shot plus both halves; the first and last
    one half. A clip that is shorter holds its last frame (``crossfade_filter``).
    """
    if len(lengths) < 2 or half_frames < 1:
        return list(lengths)
    last = len(lengths) - 1
    return [n + half_frames * (1 if i in (0, last) else 2) for i, n in enumerate(lengths)]


def transition_half_frames(lengths: Sequence[int], fps: int, transition: str, crossfade_s: float) -> int:
    """``dissolve_half_frames`` for a storyboard's transition: 0 for hard cuts."""
    return dissolve_half_frames(crossfade_s, fps, lengths) if transition == "crossfade" else 0


def transition_clip_frames(
    lengths: Sequence[int], fps: int, transition: str, crossfade_s: float
) -> list[int]:
    """Frames each clip should have: its shot, plus the handles a dissolve takes on either side."""
    return dissolve_frames_needed(lengths, transition_half_frames(lengths, fps, transition, crossfade_s))


class _ShotFrames(Protocol):
    @property
    def frames(self) -> int: ...


class DissolveBoard(Protocol):
    """What the dissolve planning reads of a storyboard (``models.Storyboard`` is one).

    A protocol, not the model: this base module stays free of the job's data models, and the
    storyboard, the assembly and the local renderer (a backend) all plan clips by the same rule.
    """

    @property
    def fps(self) -> int: ...
    @property
    def transition(self) -> str: ...
    @property
    def crossfade_seconds(self) -> float: ...
    @property
    def shots(self) -> Sequence[_ShotFrames]: ...


def crossfade_half_frames(board: DissolveBoard) -> int:
    """Frames a dissolve of ``board`` spends on each side of a cut (0 for hard cuts)."""
    lengths = [shot.frames for shot in board.shots]
    return transition_half_frames(lengths, board.fps, board.transition, board.crossfade_seconds)


def clip_frames_wanted(board: DissolveBoard) -> list[int]:
    """Frames each shot's clip should have: the shot, plus the dissolves' handles around it."""
    lengths = [shot.frames for shot in board.shots]
    return transition_clip_frames(lengths, board.fps, board.transition, board.crossfade_seconds)


def dissolve_can_hold(have: int, need: int, half_frames: int) -> bool:
    """Whether a clip with ``have`` of its ``need`` frames can still dissolve by holding its last frame.

    It can while it has a frame of its own after the incoming dissolve (more than ``2 * half_frames``):
    its last frame is then held to the end of its outgoing half (or of the video, for the last clip).
    A shorter one the caller re-encodes to its full length first.
    """
    return have >= need or have > 2 * half_frames


def crossfade_filter(
    spans: Sequence[ShotSpan], *, fps: int, half_frames: int, fit: Sequence[str] = ()
) -> str:
    """Dissolves of ``2 * half_frames`` frames centred on every cut, with memory independent of the cuts.

    Two lanes leave the one decoder: across each cut, lane X carries the outgoing clip and lane Y
    the incoming one; everywhere else both carry the same frame of the same shot. Y's alpha ramps
    up over each dissolve (a ``fade`` per cut, each switched on for its own frames only) and Y is
    laid over X. Outside the dissolves X and Y are identical, so the overlay, a frame-synced filter
    whose ``enable`` is evaluated at the last frame it consumed, is switched on a few frames wider
    than each dissolve. Frames flow in decode order: only one dissolve's outgoing frames wait for
    the incoming ones (~2 * half_frames frames), unlike a chain of ``xfade``s (one frame pool per
    cut, ~870 MB for 25 clips at 720p). Each clip starts ``half_frames`` before its cut; a clip with
    too few frames for its half after the cut holds its last frame there (``fps`` fills the gap; a
    ``tpad`` at the end of both lanes for the last clip), as long as ``dissolve_can_hold``.
    """
    if len(spans) < 2 or half_frames < 1:
        return hard_cut_filter(spans, fps=fps, fit=fit)
    h, last = half_frames, len(spans) - 1
    cuts = list(itertools.accumulate(s.frames for s in spans))
    total = cuts[-1]
    need = dissolve_frames_needed([s.frames for s in spans], h)
    union: list[tuple[int, int]] = []  # decode-stream frames kept, per clip
    offsets: list[tuple[int, int]] = []  # (first kept index, pts offset) per clip
    lanes: dict[str, list[tuple[int, int]]] = {"x": [], "y": []}
    kept = shortfall = 0
    for i, span in enumerate(spans):
        start = 0 if i == 0 else cuts[i - 1] - h  # output frame where the clip's frame 0 plays
        have = min(need[i], span.frames + span.tail)
        if not dissolve_can_hold(have, need[i], h):
            raise ValueError(f"clip {i} has {have} of the {need[i]} frames its dissolves need")
        union.append((span.first, span.first + have))
        offsets.append((kept, start - kept))
        x_from = 0 if i == 0 else cuts[i - 1] + h
        x_to = cuts[i] + h if i < last else total
        y_to = cuts[i] - h if i < last else total
        lanes["x"].append((kept + x_from - start, kept + min(x_to - start, have)))
        lanes["y"].append((kept, kept + min(y_to - start, have)))
        if i == last:
            shortfall = max(0, total - start - have)  # the last clip's last frame, held to the end
        kept += have
    stamp = f"settb=1/{fps},setpts='{_steps('N', offsets)}'"
    parts = [f"[0:v:0]select='{_between(union)}',{stamp},{','.join([*fit, 'null'])},split=2[xs][ys]"]
    hold = [f"tpad=stop_mode=clone:stop={shortfall}"] if shortfall else []
    ramps = ["format=yuva420p"]  # lane Y only: its alpha ramps up over each dissolve
    for cut in cuts[:-1]:
        first, end = cut - h, cut + h  # the dissolve's frames: first .. end - 1
        ramps.append(
            f"fade=t=in:alpha=1:st={(first - 0.5) / fps:.6f}:d={2 * h / fps:.6f}"
            f":enable='between(t,{(first - 0.25) / fps:.6f},{(end - 0.75) / fps:.6f})'"
        )
    for lane, extra in (("x", []), ("y", ramps)):
        chain = [f"select='{_between(lanes[lane])}'", f"fps={fps}", *hold, *extra]
        parts.append(f"[{lane}s]{','.join(chain)}[{lane}f]")
    margin = 3  # frames: see the docstring; X == Y there, so a wider window changes nothing
    windows = "+".join(
        f"between(t,{(cut - h - margin) / fps:.6f},{(cut + h + margin) / fps:.6f})" for cut in cuts[:-1]
    )
    parts.append(f"[xf][yf]overlay=format=yuv420:eof_action=pass:enable='{windows}'[vout]")
    return ";".join(parts)


# ----------------------------------------------------------------------------------------- captions
# Burned captions are libass's ``subtitles`` filter at the end of the one encode pass's graph (after
# the cut, the dissolves and the fit, so they sit on the final frame size and never dissolve with a
# shot).


def filter_value(text: str) -> str:
    """``text`` escaped to stand as one option value inside a filtergraph (both escaping levels).

    FFmpeg reads a graph twice: the graph parser (``\\ ' [ ] , ;`` are special) and then the
    filter's option parser (``\\ ' :``); a path with a colon or a comma must survive both.
    """
    level1 = "".join("\\" + ch if ch in "\\':" else ch for ch in text)
    return "".join("\\" + ch if ch in "\\'[],;" else ch for ch in level1)


def subtitles_filter(ass: Path) -> str:
    """libass rendering of an ASS file onto the frames (fonts found by fontconfig)."""
    return f"subtitles=filename={filter_value(str(ass))}"


def with_burned_captions(graph: str, complex_graph: bool, ass: Path) -> str:
    """``graph`` with the captions drawn last: a ``-vf`` chain gets one more filter; a complex graph's
    ``[vout]`` is renamed and the captions filter produces the new ``[vout]``."""
    if not complex_graph:
        return f"{graph},{subtitles_filter(ass)}"
    if not graph.endswith("[vout]"):
        raise ValueError("a complex assembly graph must end in [vout]")
    return f"{graph[: -len('[vout]')]}[precap];[precap]{subtitles_filter(ass)}[vout]"
