"""Which tempo: the metrical level of the beat, its exact period, and how it moves (step 1)."""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage

from kapsule.analysis import dsp
from kapsule.analysis.common import HOP

TEMPO_MIN, TEMPO_MAX = 40.0, 240.0  # BPM range searched for the beat
TEMPO_PRIOR_BPM = 120.0  # where listeners' tapping tempi centre
TEMPO_PRIOR_OCTAVES = 0.6  # the prior's spread (standard deviation, in octaves)
TEMPOGRAM_FRAMES = 384  # ~9 s windows for the Fourier tempogram
PERIOD_SEARCH = 0.04  # the refined period may lie up to 4 % from the coarse estimate (a smooth-curve peak)
COMB_MULTIPLES = 8  # autocorrelation peaks (multiples of the beat period) fitted in that search
STEADY_PEAK_FRAMES = 0.5  # a steady pulse puts every one of them within half a frame of the fit
CLOCKED_MIN_PEAKS = COMB_MULTIPLES // 2  # multiples that must show a peak on the fitted line
LOCAL_RANGE = 0.12  # how far the local beat period may stray from the song's
LOCAL_SMOOTH_S = 4.0  # seconds over which the local period is smoothed


def pulse_envelope(activation: np.ndarray, sounding: np.ndarray) -> np.ndarray:
    """The beat activation (``beat_net``) scaled to a mean of 1 over the sounding frames.

    (Squaring it first, to widen the gap between the beats and the subdivisions the network is
    half-sure of, put one more tuning piece at the right tempo octave, but also declared a ballad
    that speeds up steady and tracked its first bars 0.2 s late: not kept.)
    """
    env = np.asarray(activation, dtype=float)
    weight = sounding if sounding.any() else np.ones_like(sounding)
    level = float(env[weight].mean())
    return env / level if level > 1e-9 else np.zeros_like(env)


def tempo_estimate(env: np.ndarray, sr: int, hint_bpm: float | None = None) -> tuple[float, bool]:
    """The beat tempo (BPM): autocorrelation × Fourier tempogram × a prior centred on 120 BPM, and
    whether the song keeps that exact tempo throughout (see ``refine_period``).

    WHY the product: the autocorrelation of a pulse train peaks at its period and at every multiple
    of it (half, third of the tempo), the Fourier spectrum at its frequency and every harmonic (twice,
    three times the tempo); only the true tempo is strong in both (Peeters 2007). The log-normal
    prior (σ = 0.6 octave) settles what evidence cannot: music with running notes at twice the beat
    (a rag's left hand, a polonaise) still reads as double tempo, the price of not halving a
    170 BPM rock song whose kick is much louder than its snare.

    With ``hint_bpm`` (the musician's tempo) the metrical level is not searched: the hint is only
    measured more finely on the autocorrelation (within PERIOD_SEARCH), never replaced.
    """
    fps = sr / HOP
    scored = tempo_scores(env, sr)
    if scored is None:
        return (float(hint_bpm), False) if hint_bpm else (0.0, False)
    bpm, score, full_ac = scored
    if hint_bpm:
        return refine_period(full_ac, 60.0 * fps / hint_bpm, fps)
    if score.max() <= 0:
        return 0.0, False
    return refine_period(full_ac, 60.0 * fps / float(bpm[np.argmax(score)]), fps)


def tempo_scores(env: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(BPM grid, evidence for each, the normalized whole-song autocorrelation), or None when the
    envelope is flat. The evidence is what ``tempo_estimate`` maximizes; ``octave_plausibility``
    reads the runner-up levels from it."""
    fps = sr / HOP
    detrended = np.maximum(env - scipy.ndimage.uniform_filter1d(env, max(1, round(fps))), 0.0)
    if not np.any(detrended > 0):
        return None
    bpm = np.geomspace(TEMPO_MIN, TEMPO_MAX, 400)
    full_ac = dsp.autocorrelate(detrended - detrended.mean())
    full_ac = full_ac / (full_ac[0] + 1e-12)
    ac = np.maximum(np.interp(60.0 * fps / bpm, np.arange(full_ac.size), full_ac), 0.0)
    win = min(TEMPOGRAM_FRAMES, detrended.size)
    ft = dsp.fourier_tempogram(detrended, win)
    freqs = dsp.fourier_tempo_frequencies(fps, win)
    ft_bpm = np.interp(bpm, freqs, ft.mean(axis=1))
    prior = np.exp(-0.5 * (np.log2(bpm / TEMPO_PRIOR_BPM) / TEMPO_PRIOR_OCTAVES) ** 2)
    return bpm, ac * ft_bpm * prior, full_ac


def octave_plausibility(env: np.ndarray, sr: int, tempo: float, factor: float) -> float:
    """How plausible ``factor`` × ``tempo`` is as the beat, against ``tempo`` itself (0 … 1): the
    ratio of their evidence (best within ±4 % of each), 0 outside the searched range."""
    scored = tempo_scores(env, sr)
    if scored is None or tempo <= 0:
        return 0.0
    bpm, score, _ = scored
    other = tempo * factor
    if not TEMPO_MIN <= other <= TEMPO_MAX:
        return 0.0

    def near(value: float) -> float:
        mask = np.abs(np.log(bpm / value)) <= PERIOD_SEARCH
        return float(score[mask].max()) if mask.any() else 0.0

    here = near(tempo)
    return float(np.clip(near(other) / here, 0.0, 1.0)) if here > 0 else 0.0


def refine_period(ac: np.ndarray, period: float, fps: float) -> tuple[float, bool]:
    """The tempo (BPM) near ``period`` (frames) that the autocorrelation peaks at its multiples agree
    on, and whether the song is clocked: at least CLOCKED_MIN_PEAKS of those peaks lie within half a
    frame of one line, which a tempo that drifts or is played with rubato does not achieve.

    WHY: the tempo grid above is 0.45 % coarse, and a tracker held to a period 0.5 % wrong slides a
    whole beat in a minute or two. The autocorrelation peaks near k × period (k = 1 … COMB_MULTIPLES)
    are located to a fraction of a frame (parabolic interpolation) and a line through the origin is
    fitted to them: the k-th peak measures the period k times as finely as the first.
    """
    ks, positions = [], []
    for k in range(1, COMB_MULTIPLES + 1):
        centre = k * period
        lo, hi = max(1, int(centre - period / 4)), min(ac.size - 1, int(centre + period / 4) + 1)
        if hi - lo < 3:
            break
        i = lo + int(np.argmax(ac[lo:hi]))
        if i <= lo or i >= hi - 1 or ac[i] <= 0:
            continue  # no peak inside the window (an edge maximum): this multiple says nothing
        a, b, c = ac[i - 1], ac[i], ac[i + 1]
        curvature = a - 2 * b + c
        offset = 0.5 * (a - c) / curvature if curvature < 0 else 0.0
        ks.append(k)
        positions.append(i + float(np.clip(offset, -0.5, 0.5)))
    if not ks:
        return float(60.0 * fps / period), False
    k_arr, x_arr = np.asarray(ks, float), np.asarray(positions)
    refined = float(np.dot(k_arr, x_arr) / np.dot(k_arr, k_arr))
    clocked = len(ks) >= CLOCKED_MIN_PEAKS
    if float(np.max(np.abs(x_arr - k_arr * refined))) > STEADY_PEAK_FRAMES:
        refined, clocked = period, False  # the peaks do not line up on one period: the tempo moves
    if abs(refined / period - 1.0) > PERIOD_SEARCH:
        refined, clocked = period, False  # the peaks belong to another period; keep the coarse estimate
    return float(60.0 * fps / refined), clocked


def local_periods(env: np.ndarray, period: float, sr: int) -> np.ndarray:
    """The beat period (frames) at every frame: ``period`` followed where the music speeds up or slows.

    WHY: one period for the whole song is exact for a sequenced track and wrong for a performance
    that drifts a few percent (a ballad pushing into its chorus). The autocorrelation of ~9 s of
    onsets around each frame is searched within ±LOCAL_RANGE of the song's period, at one and two
    periods (the second peak halves the error), and the result is smoothed over a few seconds, so
    the tracker may follow tempo changes but not the beat-to-beat noise.
    """
    fps = sr / HOP
    win = min(TEMPOGRAM_FRAMES, env.size)
    if 2 * period * (1 + LOCAL_RANGE) + 2 >= win:
        return np.full(env.size, period)
    tempogram = dsp.autocorrelation_tempogram(env, win)
    estimates, weights = [], []
    for k in (1, 2):
        lo = int(k * period * (1 - LOCAL_RANGE))
        hi = math.ceil(k * period * (1 + LOCAL_RANGE)) + 1
        band = tempogram[lo : hi + 1]
        i = np.argmax(band, axis=0)
        inner = (i > 0) & (i < band.shape[0] - 1)
        cols = np.arange(band.shape[1])
        a = band[np.clip(i - 1, 0, None), cols]
        b = band[i, cols]
        c = band[np.clip(i + 1, None, band.shape[0] - 1), cols]
        curvature = a - 2 * b + c
        offset = np.where(
            inner & (curvature < 0), 0.5 * (a - c) / np.where(curvature < 0, curvature, -1.0), 0.0
        )
        estimates.append((lo + i + np.clip(offset, -0.5, 0.5)) / k)
        weights.append(np.where(inner, np.maximum(b, 0.0) * k, 0.0))
    total = weights[0] + weights[1]
    local = np.where(
        total > 0, (estimates[0] * weights[0] + estimates[1] * weights[1]) / np.maximum(total, 1e-12), period
    )
    local = scipy.ndimage.median_filter(local, size=max(1, round(LOCAL_SMOOTH_S * fps)), mode="nearest")
    local = scipy.ndimage.uniform_filter1d(local, size=max(1, round(LOCAL_SMOOTH_S * fps)), mode="nearest")
    return np.clip(local, period * (1 - LOCAL_RANGE), period * (1 + LOCAL_RANGE))
