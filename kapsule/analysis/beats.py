"""Which phase: our dynamic-programming tracker on the chosen tempo, the better of the two half-beat
phases, and beat times smoothed on a local line (step 2)."""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from kapsule.analysis import dsp
from kapsule.analysis.common import HOP, N_FFT, around, unit
from kapsule.analysis.tempo import (
    TEMPO_MAX,
    TEMPO_MIN,
    TEMPO_PRIOR_BPM,
    local_periods,
    pulse_envelope,
    tempo_estimate,
)

PHASE_MARGIN = 1.15  # the half-shifted grid must carry 15 % more beat activation to win
TEMPO_AGREEMENT = 0.04  # tracked and estimated tempo this close: report the (more precise) estimate
TIGHTNESS = 100.0  # the tracker's penalty for an interval off the beat period (librosa: 100)
STRONG_ONSET = 2.0  # an onset twice the mean pulse strength is a played note, not a held chord's noise
MAX_TAIL_BEATS = 8  # at most this many beats continued through a final held chord
STEADY_HALF_BEATS = 4  # beats each side in the local straight-line fit of the beat times
# A song whose whole-song autocorrelation peaks sit on one exact period (a click, a sequencer, a MIDI
# render) has no tempo to follow: the tracker then holds that period, much more tightly, and the beat
# times are put on one line (``rigid``), so syncopation cannot pull them off.
CLOCKED_TIGHTNESS = 400.0


def track_beats(
    activation: np.ndarray,
    sounding: np.ndarray,
    sr: int,
    hint_bpm: float | None = None,
    beat_at: int | None = None,
    downbeat: np.ndarray | None = None,
) -> tuple[np.ndarray, float, bool]:
    """Beat frames, tempo and whether the song is clocked, from the network's beat ``activation``:
    our tempo, our dynamic-programming tracker (rigid on a clocked song), then the better of the two
    phases.

    ``hint_bpm`` fixes the metrical level (the tracker still follows the local timing);
    ``beat_at`` (a frame the musician says is a bar line) chooses the phase: of the grid and its
    half-shifted twin, the one with a beat nearer to it. With a hint, the ``downbeat`` activation
    counts in that choice too: at a hinted half tempo every beat of the song is lit, and the slow
    beats are the ones on the bar lines.
    """
    env = pulse_envelope(activation, sounding)
    bpm, clocked = tempo_estimate(env, sr, hint_bpm)
    if bpm <= 0:
        return (*steady_grid(activation, sounding, sr), False)
    # The tracker ends its chain on the last strong point of the envelope and backtracks from there;
    # a final chord's long release would pull that point, and with it the last bars, off the beat.
    # (The last frames' windows run past the end of the file: an abrupt end is not an onset.)
    edge = N_FFT // (2 * HOP)
    strong = np.flatnonzero(unit(env, sounding)[: max(1, env.size - edge)] > STRONG_ONSET)
    end = int(strong[-1]) + 2 if strong.size else env.size
    if clocked:  # one exact period for the whole song: nothing to follow, only syncopation to resist
        periods = np.full(env.size, 60.0 * sr / HOP / bpm)
    else:
        periods = local_periods(env, 60.0 * sr / HOP / bpm, sr)
    frames = _track(env[:end], periods[:end], CLOCKED_TIGHTNESS if clocked else TIGHTNESS)
    frames = _continue_pulse(np.asarray(frames, dtype=int), sounding, end)
    if frames.size:
        # The tracker keeps its grid running through a long silent intro or break; nothing beats there.
        near_sound = scipy.ndimage.maximum_filter1d(sounding.astype(np.uint8), size=9) > 0
        frames = frames[near_sound[frames]]
    if frames.size < 4 and sounding.any():
        return (*steady_grid(activation, sounding, sr), False)
    if frames.size < 2:
        return frames, 0.0, False
    if beat_at is None:
        support = env + pulse_envelope(downbeat, sounding) if hint_bpm and downbeat is not None else env
        frames = _best_phase(frames, support)
    else:
        shifted = _half_shifted(frames, env.size)
        if shifted.size and np.min(np.abs(shifted - beat_at)) < np.min(np.abs(frames - beat_at)):
            frames = shifted
    tracked = beat_tempo(refine(frames, activation, sr))
    # The autocorrelation measures the period over the whole song; the beat intervals carry the
    # tracker's jitter and the odd short interval. Report the former whenever the two agree.
    if hint_bpm and abs(tracked / hint_bpm - 1.0) >= TEMPO_AGREEMENT:
        return hint_grid(env, sounding, 60.0 * sr / HOP / hint_bpm, beat_at), float(hint_bpm), True
    return frames, bpm if abs(tracked / bpm - 1.0) < TEMPO_AGREEMENT else tracked, clocked


def hint_grid(env: np.ndarray, sounding: np.ndarray, period: float, beat_at: int | None) -> np.ndarray:
    """An even grid at the musician's ``period`` (frames) over the sounding part, through ``beat_at``
    when given, else at the phase with the most beat activation on it.

    WHY: a BPM the audio does not show (not an octave of its pulse, e.g. 84 for a 120 BPM song) makes
    the tracker hop between beats and off-beats at some other mean period (80 there); the grid must
    still be the musician's tempo (issue 21: hints are law), and a steady one is the honest answer.
    """
    first, last = int(np.argmax(sounding)), int(sounding.size - 1 - np.argmax(sounding[::-1]))
    if beat_at is not None:
        start = beat_at - period * np.floor((beat_at - first) / period)
    else:
        offsets = np.arange(first, first + period)
        score = [around(env, _even(o, last, period, env.size)).mean() for o in offsets]
        start = float(offsets[int(np.argmax(score))])
    return _even(start, last, period, env.size)


def _even(start: float, last: int, period: float, length: int) -> np.ndarray:
    frames = np.round(np.arange(start, last + 1, period)).astype(int)
    return frames[(frames >= 0) & (frames < length)]


def _track(env: np.ndarray, periods: np.ndarray, tightness: float) -> np.ndarray:
    """Beat frames by dynamic programming (Ellis 2007) with a fractional, slowly varying period.

    WHY our own: librosa's tracker rounds the period to whole frames (23 ms), which at 148 BPM is a
    tempo 2.7 % off, and holds it for the whole song; it then spends its tightness fighting its own
    period, drifting off the beat wherever the onsets are weak (a soft intro, a held chord). Same
    recursion, but the period is exact and may follow the music (``periods``, one per frame): each
    frame's score is its smoothed onset strength plus the best earlier beat 0.5-2 periods back,
    penalised by ``tightness`` × (log of the interval's ratio to the local period)².
    """
    n = env.size
    period = float(np.median(periods)) if periods.size else 0.0
    if n < 2 or period < 2:
        return np.zeros(0, dtype=int)
    norm = env / (float(env.std(ddof=1)) + 1e-12)
    reach = round(period)
    window = np.exp(-0.5 * (np.arange(-reach, reach + 1) * 32.0 / period) ** 2)
    local = np.convolve(norm, window, mode="same")
    d_min, d_max = max(1, round(float(periods.min()) / 2)), round(2 * float(periods.max()))
    log_offsets = np.log(np.arange(d_min, d_max + 1))
    log_periods = np.log(periods)
    cumscore = np.empty(n)
    backlink = np.full(n, -1, dtype=int)
    threshold = 0.01 * float(local.max())
    started = False
    for i in range(n):
        best, link = 0.0, -1
        if i >= d_min:
            lo = max(0, i - d_max)
            count = i - d_min + 1 - lo
            penalty = tightness * (log_offsets[:count] - log_periods[i]) ** 2
            candidates = cumscore[lo : i - d_min + 1][::-1] - penalty
            k = int(np.argmax(candidates))
            best, link = float(candidates[k]), i - d_min - k
        cumscore[i] = local[i] + (best if link >= 0 else 0.0)
        if started or local[i] >= threshold:
            backlink[i] = link
            started = True
    peaks = np.flatnonzero((cumscore[1:-1] > cumscore[:-2]) & (cumscore[1:-1] >= cumscore[2:])) + 1
    if peaks.size == 0:
        return np.zeros(0, dtype=int)
    limit = 0.5 * float(np.median(cumscore[peaks]))
    tail = int(peaks[cumscore[peaks] >= limit][-1]) if np.any(cumscore[peaks] >= limit) else int(peaks[-1])
    beats = []
    while tail >= 0:
        beats.append(tail)
        tail = int(backlink[tail])
    return np.asarray(beats[::-1], dtype=int)


def _continue_pulse(frames: np.ndarray, sounding: np.ndarray, end: int) -> np.ndarray:
    """The beats, continued at their last period through a final held chord (while it sounds).

    WHY: the tracker only ran up to the last strong onset; the pulse goes on while the last chord
    rings, and a cut there belongs on the beat as much as any other.
    """
    if frames.size < 2:
        return frames
    period = float(np.median(np.diff(frames[-8:])))
    still = np.flatnonzero(sounding[end:])
    last = end + int(still[-1]) if still.size else 0
    extra = np.arange(frames[-1] + period, last - N_FFT // (2 * HOP) + 1, period)
    extra = extra[:MAX_TAIL_BEATS]
    return np.concatenate([frames, np.round(extra).astype(int)]) if extra.size else frames


def _best_phase(frames: np.ndarray, env: np.ndarray) -> np.ndarray:
    """The beats, or the beats moved half a beat, whichever the beat activation supports more.

    WHY: a tracker can lock onto the off-beats where they are as regular as the beats (a rag's
    chords, busy hi-hats). The shift must win by PHASE_MARGIN, so a song with as much between the
    beats as on them keeps its grid.
    """
    shifted = _half_shifted(frames, env.size)
    if shifted.size < 2:
        return frames
    return shifted if around(env, shifted).mean() > PHASE_MARGIN * around(env, frames).mean() else frames


def _half_shifted(frames: np.ndarray, length: int) -> np.ndarray:
    """Each beat moved to the midpoint of its interval (the last by the previous interval)."""
    gaps = np.diff(frames)
    mids = frames + np.append(gaps, gaps[-1]) / 2.0
    mids = np.round(mids).astype(int)
    return mids[mids < length]


def steady_grid(onset: np.ndarray, sounding: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """Beats for music with no pulse the tracker can follow (a drone, a pad): an even grid at the
    tempo estimate over the sounding part, so the storyboard still has places to cut."""
    tempo = _fallback_tempo(onset, sr)
    step = 60.0 / tempo * sr / HOP
    first, last = int(np.argmax(sounding)), int(sounding.size - 1 - np.argmax(sounding[::-1]))
    frames = np.round(np.arange(first, last + 1, step)).astype(int)
    return frames, tempo


def beat_tempo(beat_times: np.ndarray) -> float:
    """BPM from the mean of the regular beat intervals (not the median: frame rounding would bias it)."""
    intervals = np.diff(beat_times)
    typical = float(np.median(intervals))
    regular = intervals[np.abs(intervals - typical) < 0.25 * typical]
    return 60.0 / float(regular.mean()) if regular.size else 60.0 / typical


def refine(frames: np.ndarray, onset: np.ndarray, sr: int) -> np.ndarray:
    """Frame indices to seconds, moved to the onset peak between frames (parabolic interpolation)."""
    if frames.size == 0:
        return np.zeros(0)
    padded = np.pad(onset, 1, mode="edge")
    a, b, c = padded[frames], padded[frames + 1], padded[frames + 2]
    curvature = a - 2 * b + c
    is_peak = (b >= a) & (b >= c) & (curvature < 0)
    shift = np.zeros(frames.size)
    shift[is_peak] = np.clip(0.5 * (a - c)[is_peak] / curvature[is_peak], -0.5, 0.5)
    return (frames + shift) * HOP / sr


def steady(times: np.ndarray, half: int = STEADY_HALF_BEATS) -> np.ndarray:
    """Each beat moved onto a straight line fitted to its neighbours (±``half`` beats, tapered).

    WHY: the tracker places every beat on the strongest onset near its prediction, and where the
    attacks are soft (a choir, bowed strings) that onset wanders by tens of milliseconds from beat to
    beat. A musician's pulse changes slowly; a local linear fit keeps tempo changes over a few beats
    and drops the jitter. A gap (a break where no beats were kept) starts a new run.
    """
    if times.size < 3:
        return times
    gaps = np.diff(times)
    typical = float(np.median(gaps))
    breaks = np.flatnonzero(gaps > 1.5 * typical) + 1
    out = times.astype(float).copy()
    for run in np.split(np.arange(times.size), breaks):
        if run.size < 3:
            continue
        t = times[run]
        idx = np.arange(run.size, dtype=float)
        for i in range(run.size):
            lo, hi = max(0, i - half), min(run.size, i + half + 1)
            j = idx[lo:hi]
            w = 1.0 - np.abs(j - i) / (half + 1)
            coef = np.polyfit(j - i, t[lo:hi], 1, w=np.sqrt(w))
            out[run[i]] = coef[1]
    return out


def _fallback_tempo(onset: np.ndarray, sr: int) -> float:
    """The strongest autocorrelation lag between 40 and 240 BPM, leaning to 120 BPM; 120 if none."""
    fps = sr / HOP
    if onset.size < 4 or not np.any(onset > 0):
        return TEMPO_PRIOR_BPM
    ac = dsp.autocorrelate(onset - onset.mean())
    lags = np.arange(max(1, int(60 * fps / TEMPO_MAX)), min(ac.size, int(60 * fps / TEMPO_MIN) + 1))
    if lags.size == 0:
        return TEMPO_PRIOR_BPM
    bpm = 60 * fps / lags
    score = np.maximum(ac[lags], 0) * np.exp(-0.5 * np.log2(bpm / TEMPO_PRIOR_BPM) ** 2)
    return float(bpm[int(np.argmax(score))]) if score.max() > 0 else TEMPO_PRIOR_BPM


RIGID_OUTLIER_S = 0.04  # beats further than this from the first line are left out of the second fit


def rigid(times: np.ndarray) -> np.ndarray:
    """The beat times of a clocked song on one straight line per run (a gap starts a new run).

    WHY: a clocked song (a sequencer, a click, a MIDI render) has one exact period, so every beat
    lies on one line; the tracker's beats can still be pulled towards accents that move off the beat
    for a few bars (syncopation), and a local fit follows them. A line through the whole run, fitted
    again without the beats more than RIGID_OUTLIER_S off the first fit, puts those bars back.
    """
    if times.size < 3:
        return times
    gaps = np.diff(times)
    breaks = np.flatnonzero(gaps > 1.5 * float(np.median(gaps))) + 1
    out = times.astype(float).copy()
    for run in np.split(np.arange(times.size), breaks):
        if run.size < 3:
            continue
        idx = np.arange(run.size, dtype=float)
        keep = np.ones(run.size, dtype=bool)
        for _ in range(2):
            slope, intercept = np.polyfit(idx[keep], times[run][keep], 1)
            fitted = intercept + slope * idx
            inliers = np.abs(times[run] - fitted) <= RIGID_OUTLIER_S
            if inliers.sum() < max(3, run.size // 2):
                break
            keep = inliers
        out[run] = fitted
    return out
