"""Which bar: meter (3 or 4, or the musician's) and the beat the bars start on, from beat-level accents
(step 3), and how plausible the runner-up readings are."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kapsule_pipeline.analysis.common import around, interval_means, zscore

METER_MARGIN = 0.3  # how much more evidence 3/4 needs than 4/4 (see bar_phase)
ANACRUSIS_PRIOR = 0.5  # accent contrast (in z-score units) credited to a start on beat 1 or an upbeat
HARMONY_BEATS = 2  # beats each side compared by the harmonic novelty that marks bar lines
PLAUSIBILITY_SCALE = 0.5  # an evidence gap this large (z-score units) makes a runner-up e⁻¹ as plausible


@dataclass(frozen=True)
class BarEvidence:
    """How well each grouping of the beats into bars explains their accents."""

    meter: int  # beats per bar
    evidence: float  # periodicity at 1 and 2 bars + the best phase's contrast
    phase_scores: tuple[float, ...]  # per phase: accent contrast plus the anacrusis prior

    @property
    def phase(self) -> int:
        return int(np.argmax(self.phase_scores))


def beat_accents(
    beat_frames: np.ndarray, onset: np.ndarray, low_onset: np.ndarray, chroma: np.ndarray
) -> np.ndarray:
    """Each beat's accent: its low-frequency hit (kick, bass), its overall onset, and how much the
    harmony changes there, beat to beat and over two beats each side (chords change on the one)."""
    beat_chroma = interval_means(chroma, beat_frames, np.median)
    lead_in = chroma[:, : beat_frames[0]] if beat_frames[0] > 0 else chroma[:, :1]
    beat_chroma = np.hstack([np.median(lead_in, axis=1, keepdims=True), beat_chroma])  # [before, beat0, …]
    beat_chroma = beat_chroma / (np.linalg.norm(beat_chroma, axis=0, keepdims=True) + 1e-9)
    change = 1.0 - np.sum(beat_chroma[:, :-1] * beat_chroma[:, 1:], axis=0)  # before vs after each beat
    change = zscore(change) + zscore(_harmonic_novelty(beat_chroma[:, 1:], HARMONY_BEATS))
    return np.asarray(
        zscore(around(low_onset, beat_frames)) + 0.5 * zscore(around(onset, beat_frames)) + change
    )


def bar_evidence(accent: np.ndarray, meter: int) -> BarEvidence:
    """A meter of m beats is supported twice: the accents repeat every m and 2m beats (their
    autocorrelation at those lags), and one phase of every m beats is more accented than the rest
    (the contrast of its mean)."""
    centred = accent - accent.mean()
    energy = float(np.dot(centred, centred)) + 1e-9

    def periodicity(lag: int) -> float:
        return float(np.dot(centred[:-lag], centred[lag:])) / energy if lag < centred.size else 0.0

    scores = []
    for phase in range(meter):
        mask = np.zeros(accent.size, dtype=bool)
        mask[phase::meter] = True
        scores.append(float(accent[mask].mean() - accent[~mask].mean()) if (~mask).any() else 0.0)
    evidence = periodicity(meter) + periodicity(2 * meter) + max(scores)
    # Music starts on the one or with a short upbeat: the first beat is bar 1 (phase 0) or its
    # last beat (phase 1). Longer upbeats exist, so this only settles near ties (beats 1 and 3
    # of a chorale, whose chords change on every beat).
    prior = [ANACRUSIS_PRIOR if phase in (0, 1) else 0.0 for phase in range(meter)]
    return BarEvidence(meter, evidence, tuple(float(x) for x in np.add(scores, prior)))


def bar_phase(
    beat_frames: np.ndarray,
    onset: np.ndarray,
    low_onset: np.ndarray,
    chroma: np.ndarray,
    meter: int | None = None,
    downbeat_index: int | None = None,
) -> tuple[int, int]:
    """(beats per bar, index of the first downbeat among the beats).

    3/4 must beat 4/4 by METER_MARGIN, because 4/4 is far more common and a wrong 3 breaks every bar
    of the video. A ``meter`` given by the musician (any number of beats) is kept, and so is the
    bar line at beat ``downbeat_index``.
    """
    if meter is not None and downbeat_index is not None:
        return meter, downbeat_index % meter
    if beat_frames.size < 8:
        return meter or 4, (downbeat_index or 0) % (meter or 4)
    accent = beat_accents(beat_frames, onset, low_onset, chroma)
    if meter is not None:
        return meter, bar_evidence(accent, meter).phase
    four, three = bar_evidence(accent, 4), bar_evidence(accent, 3)
    chosen = three if three.evidence > four.evidence + METER_MARGIN else four
    if downbeat_index is not None:
        return chosen.meter, downbeat_index % chosen.meter
    return chosen.meter, chosen.phase


def meter_plausibility(
    beat_frames: np.ndarray,
    onset: np.ndarray,
    low_onset: np.ndarray,
    chroma: np.ndarray,
    meter: int,
    phase: int,
) -> tuple[float, float]:
    """(plausibility of the other meter, of the bar line one beat later), each 0 … 1 against the
    chosen reading: exp(-gap / PLAUSIBILITY_SCALE) of the evidence gap (the margin 3/4 must win by
    counts in the gap), so a near tie reads ~1 and a clear win ~0."""
    if beat_frames.size < 8:
        return 1.0, 1.0
    accent = beat_accents(beat_frames, onset, low_onset, chroma)
    four, three = bar_evidence(accent, 4), bar_evidence(accent, 3)
    if meter == 4:
        meter_gap = four.evidence + METER_MARGIN - three.evidence
    elif meter == 3:
        meter_gap = three.evidence - (four.evidence + METER_MARGIN)
    else:
        meter_gap = 0.0
    scores = bar_evidence(accent, meter).phase_scores
    shift_gap = scores[phase % meter] - scores[(phase + 1) % meter]
    return (
        float(np.exp(-max(meter_gap, 0.0) / PLAUSIBILITY_SCALE)),
        float(np.exp(-max(shift_gap, 0.0) / PLAUSIBILITY_SCALE)),
    )


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
    return np.asarray(novelty)
