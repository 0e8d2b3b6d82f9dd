"""The offline aligner: plain lyrics placed on the song with no speech model and no network.

Whisper-family models download weights at run time, which a job cannot do; ``pocketsphinx``'s wheel
ships an en-US model, but it is trained on speech, knows one language and scored worse on sung
lines over music (``benchmarks/lyrics.py``). What every language shares is that singing is the
part of a song that does not repeat: the band plays the same bars again and again, the voice does
not. So:

1. **Vocal activity.** A mel spectrogram; each frame's background is the median of the frames most
   like it elsewhere in the song (REPET-SIM, Rafii & Pardo 2012), and what sticks out of that
   background in the voice band (150 Hz - 5 kHz) is taken as voice. Its level in dB is split into
   singing / not singing by Otsu's threshold and turned into a 0..1 activity per frame.
2. **Line placement.** A dynamic programme over frames places every line, in order and without
   overlap, so that lines cover singing and gaps cover no singing, each line lasts about its
   syllables times the song's own seconds-per-syllable (measured as sung time / syllables), and
   lines start preferably on a voice onset.
3. **Words** share their line by syllables, each start snapped to a nearby voice onset.

``prefer_singing`` uses the same activity to overrule PocketSphinx on the lines where it slips.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kapsule import media
from kapsule.core.errors import LyricsAlignmentFailed
from kapsule.lyrics.models import TimedLine, TimedWord
from kapsule.lyrics.timing import spread_words, syllables

RATE = 22050
HOP = 512  # 23 ms frames
N_FFT = 2048
N_MELS = 96
NEIGHBOURS = 24  # frames whose median is a frame's background
NEIGHBOUR_MIN_GAP_S = 1.5  # ...taken at least this far from it (not the same note held)
VOICE_HZ = (150.0, 5000.0)
SILENT_DB = -90.0  # foreground level of digital silence (the floor is -100)
MIN_LINE_S = 0.6
MAX_LINE_S = 14.0
WEIGHT_INSIDE = 1.0  # per second of non-singing inside a line
WEIGHT_GAP = 1.0  # per second of singing between lines
WEIGHT_LENGTH = 1.5  # per (log of length / expected length)²
REWARD_ONSET = 0.0  # for a line starting on a voice onset
ONSET_SNAP_S = 0.25
PACE_SCALES = (0.5, 0.65, 0.8, 1.0, 1.2)
DISAGREE_S = 1.0  # ``prefer_singing``: aligners this far apart on a line's start disagree...
PREFER_MARGIN = 0.1  # ...and the one whose first second holds this much more singing wins,
ONSET_MARGIN = 0.1  # ...or whose start is this much more clearly where singing begins (``onset_at``)
ONSET_LOOK_S = 0.5


@dataclass(frozen=True)
class VocalActivity:
    """Per-frame singing activity (0..1) and voice onset strength, at ``fps`` frames per second."""

    activity: np.ndarray
    onsets: np.ndarray
    fps: float

    @property
    def duration(self) -> float:
        return len(self.activity) / self.fps

    def sung_seconds(self) -> float:
        return float(self.activity.sum()) / self.fps

    def mean_between(self, start: float, end: float) -> float:
        a, b = int(start * self.fps), max(int(start * self.fps) + 1, int(end * self.fps))
        return float(self.activity[a:b].mean()) if a < len(self.activity) else 0.0

    def onset_at(self, start: float) -> float:
        """0..1: singing in the ``ONSET_LOOK_S`` after ``start``, more so with less just before it."""
        after = self.mean_between(start, start + ONSET_LOOK_S)
        before = self.mean_between(max(0.0, start - ONSET_LOOK_S), start) if start > 0.05 else 0.0
        return max(0.0, min(1.0, 0.5 * after + 0.5 * (after - before)))


def vocal_activity_of(song: Path) -> VocalActivity:
    """Decode ``song`` and measure its vocal activity (see the module docstring)."""
    samples = media.decode_audio(song, sample_rate=RATE)
    return vocal_activity(samples, RATE)


def vocal_activity(samples: np.ndarray, sr: int) -> VocalActivity:
    mel, freqs = _mel_spectrogram(samples.astype(np.float64), sr)
    fps = sr / HOP
    background = _repeating_background(mel, fps)
    band = (freqs >= VOICE_HZ[0]) & (freqs <= VOICE_HZ[1])
    fore = np.maximum(mel[band] - background[band], 0.0)
    level = 10 * np.log10(np.sum(fore**2, axis=0) + 1e-10)
    level = np.convolve(level, np.ones(5) / 5, mode="same")  # ~0.1 s: syllables, not sample noise
    sounding = level > max(level.max() - 60, SILENT_DB)
    if sounding.sum() < 10:
        return VocalActivity(np.zeros(len(level)), np.zeros(len(level)), fps)
    threshold = _otsu(level[sounding])
    spread = max(1.0, float(np.std(level[sounding])) / 4)
    activity = 1 / (1 + np.exp(-(level - threshold) / spread))
    activity[~sounding] = 0.0
    onsets = np.maximum(np.diff(level, prepend=level[0]), 0.0)
    onsets = onsets / (np.percentile(onsets[onsets > 0], 99) + 1e-9) if (onsets > 0).any() else onsets
    return VocalActivity(activity.astype(np.float64), np.minimum(onsets, 1.0), fps)


def _mel_spectrogram(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude mel spectrogram (N_MELS x frames) and the bands' frequencies, numpy only.

    Centred frames (zero padding), a periodic Hann window and Slaney-normalised triangular filters
    on the Slaney mel scale: what ``librosa.feature.melspectrogram(power=1)`` computes, without
    making librosa a runtime dependency.
    """
    padded = np.pad(y, N_FFT // 2)
    count = 1 + max(0, len(padded) - N_FFT) // HOP
    window = np.hanning(N_FFT + 1)[:-1]
    bank, centres = _mel_bank(sr)
    out = np.empty((N_MELS, count))
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:count]
    for lo in range(0, count, 1024):  # bounded memory for a 10-minute song
        spectrum = np.abs(np.fft.rfft(frames[lo : lo + 1024] * window, axis=1))
        out[:, lo : lo + 1024] = bank @ spectrum.T
    return out, centres


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear to 1 kHz, logarithmic above."""
    mel = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    hz = mel * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, hz)


def _mel_bank(sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Triangular filters (N_MELS x N_FFT/2+1), each normalised to unit area, and their frequencies."""
    fft_hz = np.linspace(0, sr / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sr / 2)), N_MELS + 2))
    bank = np.zeros((N_MELS, len(fft_hz)))
    for m in range(N_MELS):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        rising = (fft_hz - left) / (centre - left)
        falling = (right - fft_hz) / (right - centre)
        bank[m] = np.maximum(0.0, np.minimum(rising, falling)) * 2.0 / (right - left)
    # The bands' nominal frequencies as librosa's ``mel_frequencies`` gives them (N_MELS points
    # from 0 to Nyquist), which the voice band and the benchmark figures were set with.
    nominal = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sr / 2)), N_MELS))
    return bank, nominal


def _repeating_background(mel: np.ndarray, fps: float) -> np.ndarray:
    """Per frame, the median of its most similar frames (cosine on log-mel), away from itself."""
    frames = mel.shape[1]
    logmel = np.log1p(mel * 100).T.astype(np.float32)
    unit = logmel / (np.linalg.norm(logmel, axis=1, keepdims=True) + 1e-9)
    gap = int(NEIGHBOUR_MIN_GAP_S * fps)
    k = min(NEIGHBOURS, max(1, frames - 2 * gap - 1))
    background = np.empty_like(mel)
    index = np.arange(frames)
    for lo in range(0, frames, 256):
        hi = min(frames, lo + 256)
        sim = unit[lo:hi] @ unit.T
        near = np.abs(index[None, :] - index[lo:hi, None]) < gap
        sim[near] = -np.inf
        best = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k < frames else np.tile(index, (hi - lo, 1))
        background[:, lo:hi] = np.median(mel[:, best], axis=2)
    floor: np.ndarray = np.minimum(background, mel)
    return floor


def _otsu(values: np.ndarray) -> float:
    hist, edges = np.histogram(values, bins=64)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist)
    mean = np.cumsum(hist * centres)
    total, grand = weight[-1], mean[-1]
    between = (grand * weight / total - mean) ** 2 / (weight * (total - weight) + 1e-9)
    return float(centres[int(np.argmax(between[:-1]))])


def align_offline(verses: list[list[str]], activity: VocalActivity) -> list[TimedLine]:
    """Timed lines for ``verses`` on a song with this ``activity`` (see the module docstring)."""
    texts = [line for verse in verses for line in verse]
    if not texts:
        return []
    sung = activity.sung_seconds()
    if sung < MIN_LINE_S:
        raise LyricsAlignmentFailed("no singing was found in the song to place the lyrics on")
    weights = [max(1, syllables(t)) for t in texts]
    per_syllable = sung / sum(weights)
    # The singing's pace is not known: sung time / syllables overestimates it wherever an
    # instrument is taken for the voice, so a few paces are tried and the best-fitting kept.
    _, spans = min(_place_lines(weights, per_syllable * scale, activity) for scale in PACE_SCALES)
    lines = []
    for text, (a, b) in zip(texts, spans, strict=True):
        start, end = a / activity.fps, b / activity.fps
        lines.append(TimedLine(start=start, end=end, text=text, words=_words(text, start, end, activity)))
    return lines


def _place_lines(
    weights: list[int], per_syllable: float, act: VocalActivity
) -> tuple[float, list[tuple[int, int]]]:
    """(start, end) frames per line: the DP of the module docstring, over frames of ``act``."""
    fps, frames, n = act.fps, len(act.activity), len(weights)
    cum = np.concatenate([[0.0], np.cumsum(act.activity)])
    onset = np.convolve(act.onsets, np.ones(3), mode="same")  # an onset a frame off still counts
    d_min = max(1, int(MIN_LINE_S * fps))
    d_max = max(d_min + 1, int(MAX_LINE_S * fps))
    durations = np.arange(d_min, d_max + 1)
    inf = np.inf
    end_cost = np.full(frames + 1, inf)  # best cost with the previous line ending at frame t
    end_cost[0] = 0.0
    choices: list[tuple[np.ndarray, np.ndarray]] = []
    t_all = np.arange(frames + 1)
    for i in range(n):
        # Gap before line i: singing there costs; start[t] = min over e <= t of end_cost[e] + gap(e, t).
        shifted = end_cost - WEIGHT_GAP * cum / fps
        run = np.minimum.accumulate(shifted)
        where = _argmin_accumulate(shifted)
        start_cost = run + WEIGHT_GAP * cum / fps - REWARD_ONSET * np.append(onset, 0.0)
        expected = max(MIN_LINE_S, weights[i] * per_syllable)
        length_cost = WEIGHT_LENGTH * np.log(durations / fps / expected) ** 2
        starts = t_all[:, None] - durations[None, :]  # [end frame, duration] -> start frame
        valid = starts >= 0
        s = np.clip(starts, 0, frames)
        sung_inside = cum[t_all][:, None] - cum[s]
        inside = WEIGHT_INSIDE * (durations[None, :] - sung_inside) / fps
        total = np.where(valid, start_cost[s] + inside + length_cost[None, :], inf)
        best = np.argmin(total, axis=1)
        end_cost = total[t_all, best]
        choices.append((s[t_all, best], where))
    # The song ends after the last line: singing after it is a gap too.
    tail = end_cost + WEIGHT_GAP * (cum[-1] - cum) / fps
    if not np.isfinite(tail).any():
        raise LyricsAlignmentFailed("the lyrics do not fit the song's length")
    t = int(np.argmin(tail))
    cost = float(tail[t])
    spans: list[tuple[int, int]] = []
    for i in range(n - 1, -1, -1):
        start_frames, where = choices[i]
        a = int(start_frames[t])
        spans.append((a, t))
        t = int(where[a])
    return cost, spans[::-1]


def _argmin_accumulate(values: np.ndarray) -> np.ndarray:
    """Index of the running minimum of ``values`` up to each position."""
    out = np.empty(len(values), dtype=int)
    best, at = np.inf, 0
    for i, v in enumerate(values.tolist()):
        if v < best:
            best, at = v, i
        out[i] = at
    return out


def _words(text: str, start: float, end: float, act: VocalActivity) -> list[TimedWord]:
    """Words by syllables, each inner start moved to the strongest voice onset within ONSET_SNAP_S."""
    words = spread_words(text, start, end)
    snap = int(ONSET_SNAP_S * act.fps)
    starts = [w.start for w in words]
    for i in range(1, len(words)):
        centre = int(starts[i] * act.fps)
        lo, hi = (
            max(centre - snap, int(starts[i - 1] * act.fps) + 1),
            min(centre + snap, int(end * act.fps) - 1),
        )
        if hi > lo:
            peak = lo + int(np.argmax(act.onsets[lo:hi]))
            if act.onsets[peak] > 0.2:
                starts[i] = peak / act.fps
    bounds = [*starts, end]
    return [
        TimedWord(start=bounds[i], end=max(bounds[i], bounds[i + 1]), text=w.text)
        for i, w in enumerate(words)
    ]


def prefer_singing(primary: list[TimedLine], other: list[TimedLine], act: VocalActivity) -> list[TimedLine]:
    """``primary`` (forced alignment), with a line replaced by ``other``'s where they disagree and only
    ``other``'s start is followed by singing.

    Forced alignment is precise where it is right, but now and then squeezes a line's first words
    into the instrumental gap before it; the vocal-activity aligner cannot do that (it places lines
    on singing), so on a disagreement of over ``DISAGREE_S`` the line whose first second holds
    clearly more singing (``PREFER_MARGIN``) wins, or the one whose start is clearly more where
    singing begins (``ONSET_MARGIN``: over a sustained backing, strings or a harp, both candidates
    sit on "singing" and only the onset tells them apart; set on the ``TUNE`` pieces of
    ``tests/support/sung.py``). A swap that would break the sung order is not made.
    """
    out: list[TimedLine] = []
    for mine, theirs in zip(primary, other, strict=True):
        pick = mine
        if abs(mine.start - theirs.start) > DISAGREE_S:
            sung_mine = act.mean_between(mine.start, mine.start + 1.0)
            sung_theirs = act.mean_between(theirs.start, theirs.start + 1.0)
            clearer = act.onset_at(theirs.start) - act.onset_at(mine.start) > ONSET_MARGIN
            if (sung_theirs - sung_mine >= PREFER_MARGIN or clearer) and (
                not out or theirs.start - out[-1].start > MIN_LINE_S
            ):
                pick = theirs
        if out and out[-1].end > pick.start:
            prev = out[-1]
            if pick.start - prev.start < MIN_LINE_S:
                pick = mine if mine.start - prev.start >= MIN_LINE_S else pick
            clipped = [
                w.model_copy(update={"start": min(w.start, pick.start), "end": min(w.end, pick.start)})
                for w in prev.words
            ]
            out[-1] = prev.model_copy(update={"end": max(prev.start, pick.start), "words": clipped})
        out.append(pick)
    return out
