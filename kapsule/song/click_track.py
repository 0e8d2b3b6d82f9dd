"""The click-track preview: the song with a click on every beat and an accented click on every
downbeat, so the musician can hear whether the grid is right before anything is paid for.

WHY a rendered file and not clicks in the browser: the same file plays in notebook 01, in the
studio and on a phone, and it is exactly what the storyboard will cut to. The clicks are rendered
here sample-exact with numpy and mixed and encoded by one FFmpeg command (``media.click_preview_cmd``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from kapsule import media
from kapsule.core.errors import ObjectNotFound
from kapsule.job.artifacts import Analysis, ReadingKind

CLICK_RATE = 44100
PREVIEW_NAME = "click_preview.m4a"  # "click" in the name: the studio and notebook 01 look for it
BEAT_CLICK = (1000.0, 0.030, 0.30)  # Hz, seconds, peak: a short wood-block-like tick
DOWNBEAT_CLICK = (1600.0, 0.040, 0.45)  # higher and louder: the one of the bar
CLICK_DECAY_S = 0.008


def _click(freq: float, seconds: float, peak: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (peak * np.sin(2 * np.pi * freq * t) * np.exp(-t / CLICK_DECAY_S)).astype(np.float32)


def click_samples(
    beats: list[float], downbeats: list[float], duration: float, rate: int = CLICK_RATE
) -> np.ndarray:
    """Mono float32 clicks: one starting exactly at each beat, the accented one at each downbeat."""
    out = np.zeros(max(1, round(duration * rate)), dtype=np.float32)
    strong = {round(t * rate) for t in downbeats}
    plain, accent = _click(*BEAT_CLICK, rate), _click(*DOWNBEAT_CLICK, rate)
    for t in beats:
        start = round(t * rate)
        # a downbeat and its beat may differ by a rounding sample: the accent wins
        sound = accent if {start - 1, start, start + 1} & strong else plain
        if 0 <= start < out.size:
            end = min(out.size, start + sound.size)
            out[start:end] = np.maximum(out[start:end], sound[: end - start])
    return out


def grid_of(analysis: Analysis, reading: ReadingKind | None) -> tuple[list[float], list[float]]:
    """(beats, downbeats) of the chosen grid or of a runner-up ``reading``; ``ObjectNotFound`` when the
    analysis did not weigh that reading (a hint fixed it, or the song is too short)."""
    grid = analysis.reading_grid(reading)
    if grid is None:
        raise ObjectNotFound(
            f"the analysis has no {reading} reading (a hint fixed it, or it was not weighed)"
        )
    return grid


def grid_key(beats: list[float], downbeats: list[float]) -> str:
    """A short hash of a grid: names a reading's preview, so a changed grid gets a new file."""
    digest = hashlib.sha256(json.dumps([beats, downbeats]).encode()).hexdigest()
    return digest[:16]


def preview_name(reading: ReadingKind | None = None) -> str:
    """The preview's file name: ``click_preview.m4a`` for the chosen grid, ``click_preview-<kind>.m4a``
    for a runner-up reading (``half_tempo``, ``double_tempo``, ``other_meter``, ``shifted_downbeat``)."""
    stem, suffix = Path(PREVIEW_NAME).stem, Path(PREVIEW_NAME).suffix
    return PREVIEW_NAME if reading is None else f"{stem}-{reading}{suffix}"


def write_click_preview(
    song: Path, analysis: Analysis, out_dir: Path, reading: ReadingKind | None = None
) -> Path:
    """Write ``out_dir/preview_name(reading)``: the song with the beats and downbeats of the chosen
    grid, or of the runner-up ``reading``, as clicks (so the musician can hear both and choose).

    A reading the analysis did not weigh (a hint fixed it) raises ``ObjectNotFound``.
    """
    beats, downbeats = grid_of(analysis, reading)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / preview_name(reading)
    tmp = out.with_name(f".{out.stem}.part{out.suffix}")
    clicks = click_samples(beats, downbeats, analysis.duration)
    media.run(
        media.click_preview_cmd(song, tmp, click_rate=CLICK_RATE),
        input_bytes=clicks.astype("<f4").tobytes(),
        what="writing the click-track preview",
    )
    os.replace(tmp, out)
    return out
