"""Song analysis: tempo, beats, meter, downbeats, sections and an energy curve from mono samples.

The pulse is found in three steps, because each common tracker failure is a different question:

1. **Which tempo** (the metrical level). The onset autocorrelation is strong at the beat period and
   at every multiple of it (half tempo, a third), the Fourier tempogram at the beat frequency and
   every harmonic (double tempo); their product, times a prior centred on 120 BPM, is strong only
   at the beat, so a 170 BPM rock song is not read as 85 nor a 70 BPM ballad as 140. The period
   is then measured to a fraction of a frame on the autocorrelation peaks at its first multiples,
   and followed through slow tempo changes with a local (~9 s) autocorrelation, unless those peaks
   show a clocked song (a sequencer, a click, a MIDI render: one exact period for the whole song),
   which is tracked on that one period, rigidly, so syncopated bars cannot pull the beat off.
2. **Which phase.** A dynamic-programming tracker (Ellis 2007, with that fractional, local period)
   follows the chosen tempo; it can lock half a beat off (on hi-hats, on off-beat chords). The
   grid and the half-shifted grid are scored on low-band (kick, bass) and broadband onsets, and
   the one that explains them better is kept.
   The beat times are then moved onto a local straight line through their neighbours, which keeps
   slow tempo changes and drops the jitter of soft attacks (a choir, bowed strings).
3. **Which bar.** Meter (3 or 4; 2/4 reads as pairs of bars) and the downbeat come from beat-level
   accents: low-band onsets, broadband onsets and harmonic change, both from one beat to the next
   and between the two beats before and the two after (chords that last start on the one).

Sections come from novelty on a bar-level self-similarity matrix, labelled from repetition and energy.
"""

from __future__ import annotations

import os
from pathlib import Path

# WHY: librosa's beat tracker and peak pickers are numba functions compiled with ``cache=True``. By
# default numba caches beside the installed package, which is read-only in container images, so
# every fresh process (each notebook kernel, each Cloud Run task) would compile them again: ~25 s on
# a 2-core machine, against ~3 s once cached. Numba reads NUMBA_CACHE_DIR once, when it is first
# imported, hence this line before ``import librosa``; a value already set wins, and a folder numba
# cannot write only means no caching, never a failure. The one place the library touches the
# environment.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(".kapsule/numba-cache").resolve()))

import itertools
import math
from collections.abc import Callable

import librosa
import numpy as np
import scipy.ndimage

from kapsule_pipeline.errors import SongTooShort
from kapsule_pipeline.models import Analysis, EnergyCurve, Section

ANALYSIS_RATE = 22050
HOP = 512  # 23 ms frames at 22050 Hz: fine enough for beats, coarse enough to stay fast
N_FFT = 2048
ENERGY_RATE = 10  # energy curve values per second
LOW_HZ = 150.0  # kick and bass live below this; downbeats tend to carry them
SILENCE_BELOW_PEAK_DB = 50.0  # frames this far under the song's loudest are "silence" (no beats there)
SILENCE_FLOOR_DB = -70.0  # and so is anything below this RMS level, however quiet the song
# Sections are found on a bar grid; their scales are set in seconds so slow and fast songs match.
NOVELTY_HALF_WIDTH_S = 8.0  # the checkerboard kernel compares ~8 s before a bar line with ~8 s after
MIN_SECTION_S = 6.0  # no section (but the last) shorter than this; real sections rarely are
NOVELTY_FLOOR_STD = 0.25  # a boundary's novelty must beat the mean by this many standard deviations
# Chroma, MFCC and loudness in the bar features. Loudness counts double: chords change every bar
# inside a section, while a chorus is louder and fuller than a verse for its whole length.
FEATURE_WEIGHTS = (1.0, 1.0, 2.0)
TEMPO_MIN, TEMPO_MAX = 40.0, 240.0  # BPM range searched for the beat
TEMPO_PRIOR_BPM = 120.0  # where listeners' tapping tempi centre
TEMPO_PRIOR_OCTAVES = 0.6  # the prior's spread (standard deviation, in octaves)
TEMPOGRAM_FRAMES = 384  # ~9 s windows for the Fourier tempogram
PHASE_MARGIN = 1.15  # the half-shifted grid must explain 15 % more low-band/onset strength to win
METER_MARGIN = 0.3  # how much more evidence 3/4 needs than 4/4 (see _bar_phase)
PERIOD_SEARCH = 0.04  # the refined period may lie up to 4 % from the coarse estimate (a smooth-curve peak)
COMB_MULTIPLES = 8  # autocorrelation peaks (multiples of the beat period) fitted in that search
STEADY_PEAK_FRAMES = 0.5  # a steady pulse puts every one of them within half a frame of the fit
TEMPO_AGREEMENT = 0.04  # tracked and estimated tempo this close: report the (more precise) estimate
ANACRUSIS_PRIOR = 0.5  # accent contrast (in z-score units) credited to a start on beat 1 or an upbeat
HARMONY_BEATS = 2  # beats each side compared by the harmonic novelty that marks bar lines
TIGHTNESS = 100.0  # the tracker's penalty for an interval off the beat period (librosa: 100)
LOCAL_RANGE = 0.12  # how far the local beat period may stray from the song's
LOCAL_SMOOTH_S = 4.0  # seconds over which the local period is smoothed
STRONG_ONSET = 2.0  # an onset twice the mean pulse strength is a played note, not a held chord's noise
MAX_TAIL_BEATS = 8  # at most this many beats continued through a final held chord
STEADY_HALF_BEATS = 4  # beats each side in the local straight-line fit of the beat times
# A song whose whole-song autocorrelation peaks sit on one exact period (a click, a sequencer, a MIDI
# render) has no tempo to follow: the tracker then holds that period, much more tightly, and the beat
# times are fitted on a longer line (two 4/4 bars each side), so syncopation cannot pull it off.
CLOCKED_TIGHTNESS = 400.0
CLOCKED_HALF_BEATS = 8
CLOCKED_MIN_PEAKS = COMB_MULTIPLES // 2  # multiples that must show a peak on the fitted line
SILENCE_LABEL = "silence"  # a silent lead-in of a second or more is a section of its own


def analyze_samples(y: np.ndarray, sr: int) -> Analysis:
    """Tempo, beats, downbeats, sections and energy of mono samples ``y`` at rate ``sr``."""
    y = np.ascontiguousarray(np.asarray(y, dtype=np.float32).reshape(-1))
    duration = y.size / sr
    if y.size < N_FFT:
        raise SongTooShort(f"The song is {duration:.2f} s long; there is nothing to analyse.")
    spectrum = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    power = spectrum**2
    frames = spectrum.shape[1]
    times = librosa.frames_to_time(np.arange(frames), sr=sr, hop_length=HOP)

    rms_db = librosa.amplitude_to_db(librosa.feature.rms(S=spectrum, frame_length=N_FFT)[0], ref=1.0)
    sounding = rms_db > max(float(rms_db.max()) - SILENCE_BELOW_PEAK_DB, SILENCE_FLOOR_DB)

    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=96, fmax=sr / 2)
    mel_db = librosa.power_to_db(mel, ref=np.max)
    # center=False: our STFT frames are already centred on their times; librosa's default would shift
    # the envelope by another n_fft/2 and every beat would land ~45 ms late.
    onset = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=HOP, center=False)
    low_bands = librosa.mel_frequencies(n_mels=96, fmax=sr / 2) < LOW_HZ
    low_onset = librosa.onset.onset_strength(S=mel_db[low_bands], sr=sr, hop_length=HOP, center=False)

    beat_frames, tempo, clocked = _beats(onset, low_onset, sounding, sr)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, hop_length=HOP, tuning=0.0)
    beats_per_bar, phase = _bar_phase(beat_frames, onset, low_onset, chroma)
    downbeat_frames = beat_frames[phase::beats_per_bar] if beat_frames.size else beat_frames

    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=13)
    music_start = float(times[np.argmax(sounding)]) if sounding.any() else 0.0
    sections = _sections(downbeat_frames, chroma, mfcc, rms_db, times, duration, music_start)

    half = CLOCKED_HALF_BEATS if clocked else STEADY_HALF_BEATS
    beat_times = np.clip(_steady(_refine(beat_frames, onset, sr), half), 0.0, duration)
    downbeat_times = beat_times[phase::beats_per_bar] if beat_times.size else beat_times
    return Analysis(
        duration=round(duration, 4),
        tempo=round(tempo, 3),
        beats=[round(float(t), 4) for t in beat_times],
        downbeats=[round(float(t), 4) for t in downbeat_times],
        sections=sections,
        energy=_energy_curve(y, sr),
        beats_per_bar=beats_per_bar,
        sample_rate=sr,
    )


def _around(env: np.ndarray, frames: np.ndarray, before: int = 1, after: int = 2) -> np.ndarray:
    """The largest value of ``env`` near each frame (beats land within a frame or two of the hit)."""
    padded = np.pad(env, (before, after))
    windows = np.lib.stride_tricks.sliding_window_view(padded, before + after + 1)
    return windows[frames].max(axis=1)


def _pulse_envelope(onset: np.ndarray, low_onset: np.ndarray, sounding: np.ndarray) -> np.ndarray:
    """Broadband plus low-band onsets, each scaled to a mean of 1 over the sounding frames.

    WHY both: broadband flux sees every note (and hi-hats, and off-beat chords); the low band sees the
    kick and the bass, which mark the beat in most music. Equal weights let neither drown the other.
    """
    weight = sounding if sounding.any() else np.ones_like(sounding)

    def unit(env: np.ndarray) -> np.ndarray:
        level = float(env[weight].mean())
        return env / level if level > 1e-9 else np.zeros_like(env)

    return unit(onset) + unit(low_onset)


def _tempo_estimate(env: np.ndarray, sr: int) -> tuple[float, bool]:
    """The beat tempo (BPM): autocorrelation × Fourier tempogram × a prior centred on 120 BPM, and
    whether the song keeps that exact tempo throughout (see ``_refine_period``).

    WHY the product: the autocorrelation of a pulse train peaks at its period and at every multiple
    of it (half, third of the tempo), the Fourier spectrum at its frequency and every harmonic (twice,
    three times the tempo); only the true tempo is strong in both (Peeters 2007). The log-normal
    prior (σ = 0.6 octave) settles what evidence cannot: music with running notes at twice the beat
    (a rag's left hand, a polonaise) still reads as double tempo, the price of not halving a
    170 BPM rock song whose kick is much louder than its snare.
    """
    fps = sr / HOP
    detrended = np.maximum(env - scipy.ndimage.uniform_filter1d(env, max(1, round(fps))), 0.0)
    if not np.any(detrended > 0):
        return 0.0, False
    bpm = np.geomspace(TEMPO_MIN, TEMPO_MAX, 400)
    full_ac = librosa.autocorrelate(detrended - detrended.mean())
    full_ac = full_ac / (full_ac[0] + 1e-12)
    ac = np.maximum(np.interp(60.0 * fps / bpm, np.arange(full_ac.size), full_ac), 0.0)
    win = min(TEMPOGRAM_FRAMES, detrended.size)
    ft = np.abs(
        librosa.feature.fourier_tempogram(onset_envelope=detrended, sr=sr, hop_length=HOP, win_length=win)
    )
    freqs = librosa.fourier_tempo_frequencies(sr=sr, hop_length=HOP, win_length=win)
    ft_bpm = np.interp(bpm, freqs, ft.mean(axis=1))
    prior = np.exp(-0.5 * (np.log2(bpm / TEMPO_PRIOR_BPM) / TEMPO_PRIOR_OCTAVES) ** 2)
    score = ac * ft_bpm * prior
    if score.max() <= 0:
        return 0.0, False
    return _refine_period(full_ac, 60.0 * fps / float(bpm[np.argmax(score)]), fps)


def _refine_period(ac: np.ndarray, period: float, fps: float) -> tuple[float, bool]:
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


def _beats(
    onset: np.ndarray, low_onset: np.ndarray, sounding: np.ndarray, sr: int
) -> tuple[np.ndarray, float, bool]:
    """Beat frames, tempo and whether the song is clocked: our tempo, our dynamic-programming
    tracker (rigid on a clocked song), then the better of the two phases."""
    env = _pulse_envelope(onset, low_onset, sounding)
    bpm, clocked = _tempo_estimate(env, sr)
    if bpm <= 0:
        return (*_steady_grid(onset, sounding, sr), False)
    # The tracker ends its chain on the last strong point of the envelope and backtracks from there;
    # a final chord's long release would pull that point, and with it the last bars, off the beat.
    # (The last frames' windows run past the end of the file: an abrupt end is not an onset.)
    edge = N_FFT // (2 * HOP)
    strong = np.flatnonzero(_unit(env, sounding)[: max(1, env.size - edge)] > STRONG_ONSET)
    end = int(strong[-1]) + 2 if strong.size else env.size
    if clocked:  # one exact period for the whole song: nothing to follow, only syncopation to resist
        periods = np.full(env.size, 60.0 * sr / HOP / bpm)
    else:
        periods = _local_periods(env, 60.0 * sr / HOP / bpm, sr)
    frames = _track(env[:end], periods[:end], CLOCKED_TIGHTNESS if clocked else TIGHTNESS)
    frames = _continue_pulse(np.asarray(frames, dtype=int), sounding, end)
    if frames.size:
        # The tracker keeps its grid running through a long silent intro or break; nothing beats there.
        near_sound = scipy.ndimage.maximum_filter1d(sounding.astype(np.uint8), size=9) > 0
        frames = frames[near_sound[frames]]
    if frames.size < 4 and sounding.any():
        return (*_steady_grid(onset, sounding, sr), False)
    if frames.size < 2:
        return frames, 0.0, False
    frames = _best_phase(frames, onset, low_onset, sounding)
    tracked = _tempo(_refine(frames, onset, sr))
    # The autocorrelation measures the period over the whole song; the beat intervals carry the
    # tracker's jitter and the odd short interval. Report the former whenever the two agree.
    return frames, bpm if abs(tracked / bpm - 1.0) < TEMPO_AGREEMENT else tracked, clocked


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


def _local_periods(env: np.ndarray, period: float, sr: int) -> np.ndarray:
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
    tempogram = librosa.feature.tempogram(onset_envelope=env, sr=sr, hop_length=HOP, win_length=win)
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


def _best_phase(
    frames: np.ndarray, onset: np.ndarray, low_onset: np.ndarray, sounding: np.ndarray
) -> np.ndarray:
    """The beats, or the beats moved half a beat, whichever the kick/bass and onsets support more.

    WHY: a tracker locks onto the strongest periodic onsets, and in a rag (bass on the beat, chords
    between) or over busy hi-hats those can be the off-beats. The beat is where the low band hits:
    each grid is scored by the low-band onset at its points plus half the broadband onset, and the
    shift must win by PHASE_MARGIN, so a song with as much between the beats as on them keeps its grid.
    """
    shifted = _half_shifted(frames, onset.size)
    if shifted.size < 2:
        return frames
    low, broad = _unit(low_onset, sounding), _unit(onset, sounding)

    def support(grid: np.ndarray) -> float:
        return float(_around(low, grid).mean() + 0.5 * _around(broad, grid).mean())

    return shifted if support(shifted) > PHASE_MARGIN * support(frames) else frames


def _unit(env: np.ndarray, sounding: np.ndarray) -> np.ndarray:
    level = float(env[sounding].mean()) if sounding.any() else float(env.mean())
    return env / level if level > 1e-9 else np.zeros_like(env)


def _half_shifted(frames: np.ndarray, length: int) -> np.ndarray:
    """Each beat moved to the midpoint of its interval (the last by the previous interval)."""
    gaps = np.diff(frames)
    mids = frames + np.append(gaps, gaps[-1]) / 2.0
    mids = np.round(mids).astype(int)
    return mids[mids < length]


def _steady_grid(onset: np.ndarray, sounding: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """Beats for music with no pulse the tracker can follow (a drone, a pad): an even grid at the
    tempo estimate over the sounding part, so the storyboard still has places to cut."""
    tempo = float(librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=HOP)[0]) or 120.0
    step = 60.0 / tempo * sr / HOP
    first, last = int(np.argmax(sounding)), int(sounding.size - 1 - np.argmax(sounding[::-1]))
    frames = np.round(np.arange(first, last + 1, step)).astype(int)
    return frames, tempo


def _tempo(beat_times: np.ndarray) -> float:
    """BPM from the mean of the regular beat intervals (not the median: frame rounding would bias it)."""
    intervals = np.diff(beat_times)
    typical = float(np.median(intervals))
    regular = intervals[np.abs(intervals - typical) < 0.25 * typical]
    return 60.0 / float(regular.mean()) if regular.size else 60.0 / typical


def _refine(frames: np.ndarray, onset: np.ndarray, sr: int) -> np.ndarray:
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


def _steady(times: np.ndarray, half: int = STEADY_HALF_BEATS) -> np.ndarray:
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


def _interval_means(
    data: np.ndarray, starts: np.ndarray, aggregate: Callable[..., np.ndarray] = np.mean
) -> np.ndarray:
    """One column per interval [starts[k], starts[k+1]) (the last runs to the end) of ``data``."""
    ends = np.append(starts[1:], data.shape[1])
    return np.stack(
        [aggregate(data[:, a : max(b, a + 1)], axis=1) for a, b in zip(starts, ends, strict=True)], axis=1
    )


def _zscore(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / spread if spread > 1e-9 else np.zeros_like(values)


def _bar_phase(
    beat_frames: np.ndarray, onset: np.ndarray, low_onset: np.ndarray, chroma: np.ndarray
) -> tuple[int, int]:
    """(beats per bar, index of the first downbeat among the beats).

    Each beat gets an accent: its low-frequency hit (kick, bass), its overall onset, and how much the
    harmony changes there, beat to beat and over two beats each side (chords change on the one). A
    meter of m beats is supported twice: the accents repeat every m and 2m beats (their
    autocorrelation at those lags), and one phase of every m beats is more accented than the rest
    (the contrast of its mean). 3/4 must beat 4/4 by METER_MARGIN, because 4/4 is far more common
    and a wrong 3 breaks every bar of the video.
    """
    if beat_frames.size < 8:
        return 4, 0
    beat_chroma = _interval_means(chroma, beat_frames, np.median)
    lead_in = chroma[:, : beat_frames[0]] if beat_frames[0] > 0 else chroma[:, :1]
    beat_chroma = np.hstack([np.median(lead_in, axis=1, keepdims=True), beat_chroma])  # [before, beat0, …]
    beat_chroma = beat_chroma / (np.linalg.norm(beat_chroma, axis=0, keepdims=True) + 1e-9)
    change = 1.0 - np.sum(beat_chroma[:, :-1] * beat_chroma[:, 1:], axis=0)  # before vs after each beat
    change = _zscore(change) + _zscore(_harmonic_novelty(beat_chroma[:, 1:], HARMONY_BEATS))
    accent = _zscore(_around(low_onset, beat_frames)) + 0.5 * _zscore(_around(onset, beat_frames)) + change
    centred = accent - accent.mean()
    energy = float(np.dot(centred, centred)) + 1e-9

    def periodicity(lag: int) -> float:
        return float(np.dot(centred[:-lag], centred[lag:])) / energy if lag < centred.size else 0.0

    def best(meter: int) -> tuple[float, int]:
        scores = []
        for phase in range(meter):
            mask = np.zeros(accent.size, dtype=bool)
            mask[phase::meter] = True
            scores.append(float(accent[mask].mean() - accent[~mask].mean()))
        evidence = periodicity(meter) + periodicity(2 * meter) + max(scores)
        # Music starts on the one or with a short upbeat: the first beat is bar 1 (phase 0) or its
        # last beat (phase 1). Longer upbeats exist, so this only settles near ties (beats 1 and 3
        # of a chorale, whose chords change on every beat).
        prior = [ANACRUSIS_PRIOR if phase in (0, 1) else 0.0 for phase in range(meter)]
        return evidence, int(np.argmax(np.add(scores, prior)))

    score4, phase4 = best(4)
    score3, phase3 = best(3)
    if score3 > score4 + METER_MARGIN:
        return 3, phase3
    return 4, phase4


def _harmonic_novelty(beat_chroma: np.ndarray, width: int) -> np.ndarray:
    """How much the harmony of the ``width`` beats from each beat on differs from the ``width`` before.

    WHY: a one-beat comparison sees every passing chord; chords that *last* start on strong beats,
    so comparing the mean chroma of the next beats with that of the previous ones lights up the bar
    line and not the passing notes (a chorale changes chord on every beat, but not equally).
    """
    n = beat_chroma.shape[1]
    cumulative = np.concatenate([np.zeros((beat_chroma.shape[0], 1)), np.cumsum(beat_chroma, axis=1)], axis=1)
    idx = np.arange(n)
    lo, hi = np.maximum(idx - width, 0), np.minimum(idx + width, n)
    before = (cumulative[:, idx] - cumulative[:, lo]) / np.maximum(idx - lo, 1)
    after = (cumulative[:, hi] - cumulative[:, idx]) / np.maximum(hi - idx, 1)
    cos = np.sum(before * after, axis=0) / (
        np.linalg.norm(before, axis=0) * np.linalg.norm(after, axis=0) + 1e-9
    )
    novelty = 1.0 - cos
    novelty[0] = float(np.median(novelty[1:])) if n > 1 else 0.0  # nothing before the first beat
    return novelty


def _energy_curve(y: np.ndarray, sr: int) -> EnergyCurve:
    """RMS loudness in 0.1 s blocks, lightly smoothed, scaled so the loud parts of the song are 1."""
    block = max(1, sr // ENERGY_RATE)
    count = math.ceil(y.size / block)
    padded = np.zeros(count * block, dtype=np.float64)
    padded[: y.size] = y
    rms = np.sqrt(np.mean(padded.reshape(count, block) ** 2, axis=1))
    if count >= 3:
        rms = np.convolve(np.pad(rms, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    reference = float(np.percentile(rms, 99)) if count else 0.0
    values = np.clip(rms / reference, 0.0, 1.0) if reference > 0 else np.zeros(count)
    times = (np.arange(count) + 0.5) * block / sr
    return EnergyCurve(times=[round(float(t), 3) for t in times], values=[round(float(v), 4) for v in values])


def _sections(
    downbeat_frames: np.ndarray,
    chroma: np.ndarray,
    mfcc: np.ndarray,
    rms_db: np.ndarray,
    times: np.ndarray,
    duration: float,
    music_start: float,
) -> list[Section]:
    """Contiguous sections covering [0, duration], boundaries on downbeats, labelled by repetition.

    A silent stretch of a second or more before the music gets its own ``silence`` section, so the
    intro starts where the sound does.
    """
    sections = (
        [Section(start=0.0, end=round(music_start, 4), label=SILENCE_LABEL)] if music_start >= 1.0 else []
    )
    begin = sections[0].end if sections else 0.0
    bar_starts = downbeat_frames
    bar_seconds = float(np.median(np.diff(times[bar_starts]))) if bar_starts.size > 1 else duration
    min_bars = max(2, round(MIN_SECTION_S / bar_seconds))
    if bar_starts.size < 2 * min_bars or duration - begin < 2 * MIN_SECTION_S:
        return [*sections, Section(start=begin, end=round(duration, 4), label="verse")]
    features = _bar_features(bar_starts, chroma, mfcc, rms_db)
    cuts = _boundaries(_similarity(features), max(2, round(NOVELTY_HALF_WIDTH_S / bar_seconds)), min_bars)
    edges = [0, *cuts, bar_starts.size]
    spans = list(itertools.pairwise(edges))
    labels = _labels(spans, features, _interval_means(rms_db[None, :], bar_starts)[0])

    for k, ((first, _), label) in enumerate(zip(spans, labels, strict=True)):
        start = begin if k == 0 else round(float(times[bar_starts[first]]), 4)
        if k > 0 and sections[-1].label == label:
            continue  # two adjacent parts that sound alike are one section
        if sections:
            sections[-1].end = start
        sections.append(Section(start=start, end=round(duration, 4), label=label))
    return sections


def _bar_features(
    bar_starts: np.ndarray, chroma: np.ndarray, mfcc: np.ndarray, rms_db: np.ndarray
) -> np.ndarray:
    """One row per bar: harmony (chroma), timbre (MFCC) and loudness, weighted by FEATURE_WEIGHTS."""
    bar_chroma = _interval_means(chroma, bar_starts)
    bar_chroma = bar_chroma / (np.linalg.norm(bar_chroma, axis=0, keepdims=True) + 1e-9)
    bar_mfcc = _interval_means(mfcc, bar_starts)
    bar_mfcc = (bar_mfcc - bar_mfcc.mean(axis=1, keepdims=True)) / (
        bar_mfcc.std(axis=1, keepdims=True) + 1e-9
    )
    bar_loud = _zscore(_interval_means(rms_db[None, :], bar_starts)[0])
    return np.vstack(
        [
            bar_chroma * FEATURE_WEIGHTS[0],
            bar_mfcc / math.sqrt(bar_mfcc.shape[0]) * FEATURE_WEIGHTS[1],
            bar_loud[None, :] * FEATURE_WEIGHTS[2],
        ]
    ).T  # (bars, dims)


def _similarity(features: np.ndarray) -> np.ndarray:
    distance = np.linalg.norm(features[:, None, :] - features[None, :, :], axis=-1)
    scale = float(np.median(distance[distance > 0])) if np.any(distance > 0) else 1.0
    return np.exp(-((distance / scale) ** 2))


def _boundaries(similarity: np.ndarray, half: int, min_bars: int) -> list[int]:
    """Bar indices where a new section starts: peaks of checkerboard novelty on the bar SSM."""
    bars = similarity.shape[0]
    offsets = np.arange(-half, half) + 0.5
    taper = np.exp(-((offsets / half) ** 2))
    kernel = np.outer(np.sign(offsets) * taper, np.sign(offsets) * taper)  # +1 same side, -1 across
    padded = np.pad(similarity, half)
    # novelty[i]: how much bar i starts something new (i = 0 is the song's start, never a candidate)
    novelty = np.array([np.sum(kernel * padded[i : i + 2 * half, i : i + 2 * half]) for i in range(bars)])
    edged = np.concatenate([[-np.inf], novelty[1:], [-np.inf]])  # edged[i] is novelty[i] for i >= 1
    candidates = [i for i in range(1, bars) if edged[i] >= edged[i - 1] and edged[i] >= edged[i + 1]]
    floor = float(np.mean(novelty[1:]) + NOVELTY_FLOOR_STD * np.std(novelty[1:]))
    chosen: list[int] = []
    for i in sorted(candidates, key=lambda j: -novelty[j]):
        if novelty[i] < floor:
            break
        if i < min_bars or bars - i < max(1, min_bars // 2):
            continue  # the first section is a full one too; the last may be half (a short tag)
        if all(abs(i - j) >= min_bars for j in chosen):
            chosen.append(i)
    return sorted(chosen)


def _repeat_threshold(distances: np.ndarray) -> float:
    """The distance under which two spans count as the same part played again.

    Repeats sit far closer to each other than to anything else, so the sorted pairwise distances
    show a jump; the threshold goes in the largest (ratio) jump among the smaller distances, and is
    never above 0.6 of the median distance (a song with no repeats gets no groups).
    """
    ordered = np.sort(distances) + 1e-6
    cap = 0.6 * float(np.median(ordered))
    small = int(np.searchsorted(ordered, cap))
    if small == 0:
        return 0.0
    upper = ordered[1 : small + 1] if small < ordered.size else np.append(ordered[1:], cap)
    ratios = upper / ordered[: upper.size]
    k = int(np.argmax(ratios))
    return min(float(np.sqrt(ordered[k] * upper[k])), cap)


def _labels(spans: list[tuple[int, int]], features: np.ndarray, loudness: np.ndarray) -> list[str]:
    """intro/verse/chorus/bridge/outro from which spans repeat and how loud they are.

    Spans whose mean features are close form a group; the loudest group that occurs at least twice is
    the chorus, other repeated groups are verses, one-off spans in the middle are bridges, and a quiet
    first span is the intro, a non-chorus last span the outro.
    """
    count = len(spans)
    means = np.array([features[a:b].mean(axis=0) for a, b in spans])
    level = np.array([loudness[a:b].mean() for a, b in spans])
    if count == 1:
        return ["verse"]
    distance = np.linalg.norm(means[:, None, :] - means[None, :, :], axis=-1)
    threshold = _repeat_threshold(distance[np.triu_indices(count, 1)])
    group = list(range(count))  # single-link: spans closer than the threshold are one group
    for i in range(count):
        for j in range(i + 1, count):
            if distance[i, j] < threshold:
                old, new = group[j], group[i]
                group = [new if g == old else g for g in group]
    members: dict[int, list[int]] = {}
    for index, g in enumerate(group):
        members.setdefault(g, []).append(index)
    repeated = [g for g, idx in members.items() if len(idx) >= 2]
    if repeated:
        chorus = max(repeated, key=lambda g: float(level[members[g]].mean()))
    else:
        chorus = group[int(np.argmax(level))]

    labels = []
    for g in group:
        if g == chorus:
            labels.append("chorus")
        elif g in repeated:
            labels.append("verse")
        else:
            labels.append("bridge")
    median_level = float(np.median(level))
    if labels[0] != "chorus" and (level[0] <= median_level or labels[0] == "bridge"):
        labels[0] = "intro"
    if labels[-1] != "chorus":
        labels[-1] = "outro"
    return labels
