"""The musician's bar line made law: the beat grid moved so that a ``--downbeat`` time is one of its
beats (within a sample), wherever that time falls.

WHY after the tracking and not only in it: the tracker chooses between its grid and the half-shifted
one by the hint, but its grid starts at the first strong beat and stops with the music, so a hint at
0.0 s or in the last second has no beat near it, and the nearest beat is a beat or half a beat away;
the bar lines then land a fraction of a beat off everywhere (issue 21: a rag's bar line at 0.0 s put
every bar line 0.25 s late). Here the grid is carried to the hint at its own period, put on the
hint's side of the beat (a hint between two beats means the beats were the off-beats), and the beat
at the hint is moved onto it, its neighbours by less (a hint a few tens of milliseconds from the
audio's beat is the musician's ear, not a new tempo).
"""

from __future__ import annotations

import numpy as np

OFF_BEAT = 0.25  # a hint more than this share of a beat from every beat says the beats are off-beats
TAPER_BEATS = 2  # the beats each side of the hinted one that share its correction (less and less)


def pin_bar_line(times: np.ndarray, at: float, duration: float) -> tuple[np.ndarray, int]:
    """(beat times with a beat exactly at ``at``, the index of that beat).

    The grid is extended at its first or last period until it reaches ``at`` (never before 0 or past
    ``duration``); if ``at`` lies more than OFF_BEAT of a beat from the nearest beat, every beat moves
    to the middle of its interval (the tracker had the off-beats); then the nearest beat moves onto
    ``at`` and the TAPER_BEATS beats each side of it by a linearly shrinking share of that step.
    """
    at = float(np.clip(at, 0.0, duration))
    t = np.asarray(times, dtype=float)
    if t.size < 2:
        return np.asarray([at]), 0
    t = _reach(t, at, duration)
    k = int(np.argmin(np.abs(t - at)))
    if abs(at - t[k]) > OFF_BEAT * _period_near(t, k):
        t = _reach(_midpoints(t, duration), at, duration)
        k = int(np.argmin(np.abs(t - at)))
    step = at - t[k]
    offsets = np.arange(t.size) - k
    share = np.clip(1.0 - np.abs(offsets) / (TAPER_BEATS + 1), 0.0, 1.0)
    t = t + share * step
    t[k] = at
    keep = (t >= 0.0) & (t <= duration)
    keep[k] = True
    return t[keep], int(np.count_nonzero(keep[:k]))


def _period_near(t: np.ndarray, k: int) -> float:
    """The median beat interval around beat ``k``."""
    gaps = np.diff(t[max(0, k - 4) : k + 5])
    return float(np.median(gaps)) if gaps.size else float(np.median(np.diff(t)))


def _reach(t: np.ndarray, at: float, duration: float) -> np.ndarray:
    """The grid continued at its first (last) period until a beat lies within half a beat of ``at``."""
    first = float(np.median(np.diff(t[:5])))
    last = float(np.median(np.diff(t[-5:])))
    before = []
    start = float(t[0])
    while start - at > first / 2 and start - first >= -first / 2:
        start -= first
        before.append(start)
    after = []
    end = float(t[-1])
    while at - end > last / 2 and end + last <= duration + last / 2:
        end += last
        after.append(end)
    return np.concatenate([before[::-1], t, after])


def _midpoints(t: np.ndarray, duration: float) -> np.ndarray:
    """The middle of every interval, and half a period before the first and after the last beat."""
    gaps = np.diff(t)
    mids = np.concatenate([[t[0] - gaps[0] / 2], t[:-1] + gaps / 2, [t[-1] + gaps[-1] / 2]])
    return np.asarray(mids[(mids >= 0.0) & (mids <= duration)])
