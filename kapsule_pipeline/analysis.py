"""Song analysis: tempo, beats, meter, downbeats, sections and an energy curve from mono samples.

The pulse is found in three steps, because each common tracker failure is a different question:

1. **Which tempo** (the metrical level). The onset autocorrelation is strong at the beat period and
   at every multiple of it (half tempo, a third), the Fourier tempogram at the beat frequency and
   every harmonic (double tempo); their product, times a prior centred on 120 BPM, is strong only
   at the beat, so a 170 BPM rock song is not read as 85 nor a 70 BPM ballad as 140.
2. **Which phase.** librosa's dynamic-programming tracker follows the chosen tempo; it can lock
   half a beat off (on hi-hats, on off-beat chords). The grid and the half-shifted grid are scored
   on low-band (kick, bass) and broadband onsets, and the one that explains them better is kept.
3. **Which bar.** Meter (3 or 4; 2/4 reads as pairs of bars) and the downbeat come from beat-level
   accents: low-band onsets, broadband onsets and harmonic change (chords change on the one).

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

from kapsule_pipeline.errors import AudioError
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
SILENCE_LABEL = "silence"  # a silent lead-in of a second or more is a section of its own


def analyze_samples(y: np.ndarray, sr: int) -> Analysis:
    """Tempo, beats, downbeats, sections and energy of mono samples ``y`` at rate ``sr``."""
    y = np.ascontiguousarray(np.asarray(y, dtype=np.float32).reshape(-1))
    duration = y.size / sr
    if y.size < N_FFT:
        raise AudioError(f"The song is {duration:.2f} s long; there is nothing to analyse.", code="too_short")
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

    beat_frames, tempo = _beats(onset, low_onset, sounding, sr)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, hop_length=HOP, tuning=0.0)
    beats_per_bar, phase = _bar_phase(beat_frames, onset, low_onset, chroma)
    downbeat_frames = beat_frames[phase::beats_per_bar] if beat_frames.size else beat_frames

    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=13)
    music_start = float(times[np.argmax(sounding)]) if sounding.any() else 0.0
    sections = _sections(downbeat_frames, chroma, mfcc, rms_db, times, duration, music_start)

    return Analysis(
        duration=round(duration, 4),
        tempo=round(tempo, 3),
        beats=[round(t, 4) for t in _refine(beat_frames, onset, sr)],
        downbeats=[round(t, 4) for t in _refine(downbeat_frames, onset, sr)],
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


def _tempo_estimate(env: np.ndarray, sr: int) -> float:
    """The beat tempo (BPM): autocorrelation × Fourier tempogram × a prior centred on 120 BPM.

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
        return 0.0
    bpm = np.geomspace(TEMPO_MIN, TEMPO_MAX, 400)
    ac = librosa.autocorrelate(detrended - detrended.mean())
    ac = np.maximum(np.interp(60.0 * fps / bpm, np.arange(ac.size), ac / (ac[0] + 1e-12)), 0.0)
    win = min(TEMPOGRAM_FRAMES, detrended.size)
    ft = np.abs(
        librosa.feature.fourier_tempogram(onset_envelope=detrended, sr=sr, hop_length=HOP, win_length=win)
    )
    freqs = librosa.fourier_tempo_frequencies(sr=sr, hop_length=HOP, win_length=win)
    ft_bpm = np.interp(bpm, freqs, ft.mean(axis=1))
    prior = np.exp(-0.5 * (np.log2(bpm / TEMPO_PRIOR_BPM) / TEMPO_PRIOR_OCTAVES) ** 2)
    score = ac * ft_bpm * prior
    return float(bpm[np.argmax(score)]) if score.max() > 0 else 0.0


def _beats(
    onset: np.ndarray, low_onset: np.ndarray, sounding: np.ndarray, sr: int
) -> tuple[np.ndarray, float]:
    """Beat frames: our tempo, librosa's dynamic-programming tracker, then the better of the two phases."""
    env = _pulse_envelope(onset, low_onset, sounding)
    bpm = _tempo_estimate(env, sr)
    if bpm <= 0:
        return _steady_grid(onset, sounding, sr)
    _, frames = librosa.beat.beat_track(
        onset_envelope=env, sr=sr, hop_length=HOP, bpm=bpm, trim=False, units="frames"
    )
    frames = np.asarray(frames, dtype=int)
    if frames.size:
        # The tracker keeps its grid running through a long silent intro or break; nothing beats there.
        near_sound = scipy.ndimage.maximum_filter1d(sounding.astype(np.uint8), size=9) > 0
        frames = frames[near_sound[frames]]
    if frames.size < 4 and sounding.any():
        return _steady_grid(onset, sounding, sr)
    if frames.size < 2:
        return frames, 0.0
    frames = _best_phase(frames, onset, low_onset, sounding)
    return frames, _tempo(_refine(frames, onset, sr))


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
    harmony changes there (chords change on the one). A meter of m beats is supported twice: the
    accents repeat every m and 2m beats (their autocorrelation at those lags), and one phase of
    every m beats is more accented than the rest (the contrast of its mean). 3/4 must beat 4/4 by
    METER_MARGIN, because 4/4 is far more common and a wrong 3 breaks every bar of the video.
    """
    if beat_frames.size < 8:
        return 4, 0
    beat_chroma = _interval_means(chroma, beat_frames, np.median)
    lead_in = chroma[:, : beat_frames[0]] if beat_frames[0] > 0 else chroma[:, :1]
    beat_chroma = np.hstack([np.median(lead_in, axis=1, keepdims=True), beat_chroma])  # [before, beat0, …]
    beat_chroma = beat_chroma / (np.linalg.norm(beat_chroma, axis=0, keepdims=True) + 1e-9)
    change = 1.0 - np.sum(beat_chroma[:, :-1] * beat_chroma[:, 1:], axis=0)  # before vs after each beat
    accent = (
        _zscore(_around(low_onset, beat_frames))
        + 0.5 * _zscore(_around(onset, beat_frames))
        + _zscore(change)
    )
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
        return evidence, int(np.argmax(scores))

    score4, phase4 = best(4)
    score3, phase3 = best(3)
    if score3 > score4 + METER_MARGIN:
        return 3, phase3
    return 4, phase4


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
