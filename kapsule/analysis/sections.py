"""Sections (novelty on a bar-level self-similarity matrix, labelled from repetition and energy)
and the energy curve."""

from __future__ import annotations

import itertools
import math

import numpy as np

from kapsule.analysis.common import interval_means, zscore
from kapsule.job.artifacts import EnergyCurve, Section

ENERGY_RATE = 10  # energy curve values per second
# Sections are found on a bar grid; their scales are set in seconds so slow and fast songs match.
NOVELTY_HALF_WIDTH_S = 8.0  # the checkerboard kernel compares ~8 s before a bar line with ~8 s after
MIN_SECTION_S = 6.0  # no section (but the last) shorter than this; real sections rarely are
NOVELTY_FLOOR_STD = 0.25  # a boundary's novelty must beat the mean by this many standard deviations
# Chroma, MFCC and loudness in the bar features. Loudness counts double: chords change every bar
# inside a section, while a chorus is louder and fuller than a verse for its whole length.
FEATURE_WEIGHTS = (1.0, 1.0, 2.0)
SILENCE_LABEL = "silence"  # a silent lead-in of a second or more is a section of its own


def energy_curve(y: np.ndarray, sr: int) -> EnergyCurve:
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


def find_sections(
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
    labels = _labels(spans, features, interval_means(rms_db[None, :], bar_starts)[0])

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
    bar_chroma = interval_means(chroma, bar_starts)
    bar_chroma = bar_chroma / (np.linalg.norm(bar_chroma, axis=0, keepdims=True) + 1e-9)
    bar_mfcc = interval_means(mfcc, bar_starts)
    bar_mfcc = (bar_mfcc - bar_mfcc.mean(axis=1, keepdims=True)) / (
        bar_mfcc.std(axis=1, keepdims=True) + 1e-9
    )
    bar_loud = zscore(interval_means(rms_db[None, :], bar_starts)[0])
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
    return np.asarray(np.exp(-((distance / scale) ** 2)))


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
