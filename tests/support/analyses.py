"""Analyses with a known answer: a synthetic click-track analysis for storyboard tests, and the
beat F-measure the analysis tests score against the demo song's ground truth."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from kapsule.job.artifacts import Analysis, EnergyCurve, Section
from kapsule.prompting.local import LocalPromptWriter

FPS = 24


LOCAL = LocalPromptWriter()


def song(
    *,
    tempo: float = 120.0,
    beats_per_bar: int = 4,
    duration: float = 60.0,
    first_beat: float = 0.5,
    energy: Callable[[float], float] = lambda t: 0.5,
    sections: list[tuple[float, str]] | None = None,
) -> Analysis:
    """A synthetic analysis: a click track at ``tempo`` from ``first_beat``; beat k at an absolute time."""
    period = 60.0 / tempo
    beats = []
    k = 0
    while first_beat + k * period < duration:
        beats.append(first_beat + k * period)
        k += 1
    starts = sections or [(0.0, "verse")]
    parts = [
        Section(start=start, end=(starts[i + 1][0] if i + 1 < len(starts) else duration), label=label)
        for i, (start, label) in enumerate(starts)
    ]
    times = [i * 0.1 for i in range(int(duration * 10))]
    return Analysis(
        duration=duration,
        tempo=tempo,
        beats=beats,
        downbeats=beats[::beats_per_bar],
        sections=parts,
        energy=EnergyCurve(times=times, values=[energy(t) for t in times]),
        beats_per_bar=beats_per_bar,
    )


TOLERANCE = 0.07  # s; the customary beat-tracking window


def f_measure(estimated: Sequence[float], reference: Sequence[float], tolerance: float = TOLERANCE) -> float:
    """Beat F-measure: each reference beat may be matched by at most one estimate within tolerance."""
    est, ref = np.asarray(estimated, float), np.asarray(reference, float)
    if est.size == 0 or ref.size == 0:
        return 0.0
    used: set[int] = set()
    hits = 0
    for beat in ref:
        gaps = np.abs(est - beat)
        for i in np.argsort(gaps):
            if gaps[i] > tolerance:
                break
            if int(i) not in used:
                used.add(int(i))
                hits += 1
                break
    if hits == 0:
        return 0.0
    precision, recall = hits / est.size, hits / ref.size
    return 2 * precision * recall / (precision + recall)
