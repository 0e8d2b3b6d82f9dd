"""The data every stage hands to the next: analysis, storyboard, shot requests and the shot manifest.

These are the job's JSON files (``analysis.json``, ``storyboard.json``, ``manifest.json``; ARCHITECTURE.md)
as pydantic models, so a notebook, the CLI and the API read them the same way and a malformed file
fails loudly at the boundary. Times are seconds from the song's start, always absolute.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AspectRatio = Literal["16:9", "9:16", "1:1"]
Transition = Literal["cut", "crossfade"]
# A short dissolve centred on the cut: long enough to read, short enough to stay on the beat.
CROSSFADE_SECONDS = 0.5
# 4k only for the Veo models whose table row makes it (``video_models.check_job`` refuses it elsewhere).
Resolution = Literal["720p", "1080p", "4k"]

FRAME_SIZES: dict[tuple[str, str], tuple[int, int]] = {
    ("16:9", "720p"): (1280, 720),
    ("9:16", "720p"): (720, 1280),
    ("16:9", "1080p"): (1920, 1080),
    ("9:16", "1080p"): (1080, 1920),
    ("1:1", "720p"): (720, 720),
    ("1:1", "1080p"): (1080, 1080),
    ("16:9", "4k"): (3840, 2160),
    ("9:16", "4k"): (2160, 3840),
    ("1:1", "4k"): (2160, 2160),
}


def frame_size(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """(width, height) of a frame; the one table every stage uses."""
    return FRAME_SIZES[(aspect_ratio, resolution)]


class Section(BaseModel):
    start: float
    end: float
    label: str


class EnergyCurve(BaseModel):
    times: list[float]
    values: list[float]  # 0..1, normalized over the whole song


class AnalysisHints(BaseModel):
    """What the musician says about the song; the analysis keeps these and refines only local timing."""

    model_config = ConfigDict(frozen=True)

    bpm: float | None = Field(default=None, ge=30.0, le=300.0, description="Tempo of the beat, in BPM.")
    beats_per_bar: int | None = Field(default=None, ge=2, le=12, description="Beats in one bar.")
    downbeat: float | None = Field(default=None, ge=0.0, description="Time (s) of any bar line (a beat 1).")

    def given(self) -> bool:
        return self.bpm is not None or self.beats_per_bar is not None or self.downbeat is not None


ReadingKind = Literal["half_tempo", "double_tempo", "other_meter", "shifted_downbeat"]


class Reading(BaseModel):
    """A runner-up reading of the beat grid, complete, so it can replace the chosen one for free."""

    kind: ReadingKind
    plausibility: float = Field(ge=0.0, le=1.0)  # against the chosen reading: 1 = as likely, 0 = ruled out
    tempo: float
    beats_per_bar: int
    beats: list[float]
    downbeats: list[float]


class Analysis(BaseModel):
    """What ``analysis.json`` and ``kapsule analyze SONG --json`` hold."""

    duration: float
    tempo: float
    beats: list[float]
    downbeats: list[float]
    sections: list[Section]
    energy: EnergyCurve
    beats_per_bar: int = 4
    sample_rate: int = 22050
    # How sure the beat grid is: 1 / (1 + the runner-ups' plausibilities); 1.0 when none is plausible
    # or when the musician's hints fixed it. Older analysis.json files lack these and read as sure.
    confidence: float = 1.0
    alternatives: list[Reading] = Field(default_factory=list)
    # The runner-up reading (one of ``alternatives``) that is close enough to the chosen one that the
    # musician should choose between the two by ear (notebook 01 and the studio play both as clicks);
    # None when the analysis is sure, or the hints fixed the grid.
    close_call: ReadingKind | None = None
    hints: AnalysisHints | None = None

    @property
    def uncertain(self) -> bool:
        """Whether a runner-up reading is close: the grid is a guess until the musician chooses."""
        return self.close_call is not None

    def reading_grid(self, kind: ReadingKind | None) -> tuple[list[float], list[float]] | None:
        """(beats, downbeats) of the chosen grid (``kind`` None) or of the runner-up ``kind``; None
        when the analysis did not weigh that reading (a hint fixed it, or the song is too short)."""
        if kind is None:
            return self.beats, self.downbeats
        for reading in self.alternatives:
            if reading.kind == kind:
                return reading.beats, reading.downbeats
        return None

    def energy_between(self, start: float, end: float) -> float:
        """Mean energy (0..1) of the song between two times."""
        pairs = [v for t, v in zip(self.energy.times, self.energy.values, strict=True) if start <= t < end]
        return sum(pairs) / len(pairs) if pairs else 0.0

    def section_at(self, time: float) -> Section:
        for section in self.sections:
            if section.start <= time < section.end:
                return section
        return self.sections[-1]


# A shot's seed is a uint32 (what Veo takes): derived from the job's seed (storyboard.plan.shot_seed)
# or drawn anew when the shot is re-rolled.
MAX_SHOT_SEED = 2**32 - 1


class Shot(BaseModel):
    """One shot of the storyboard: where it sits on the music and what it shows."""

    index: int
    start: float  # absolute, on the frame grid
    end: float  # absolute, on the frame grid
    start_frame: int
    end_frame: int  # exclusive
    request_seconds: int  # the clip length asked of the video model (4, 6 or 8), >= end - start
    section: str
    energy: float
    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    lyrics: list[str] = Field(default_factory=list)  # the lines sung during the shot, in order

    @property
    def number(self) -> int:
        """The shot's number as people read it (CLI, studio, notebooks, contact sheet): from 1."""
        return self.index + 1

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def duration(self) -> float:
        return self.end - self.start


class Storyboard(BaseModel):
    """What ``storyboard.json`` holds."""

    fps: int = 24
    aspect_ratio: AspectRatio = "16:9"
    resolution: Resolution = "720p"
    video_model: str = "local"
    prompt_model: str = "local"
    prompt: str = ""
    style: str = ""
    duration: float
    total_frames: int
    shots: list[Shot]
    prompt_writer_note: str = ""  # e.g. why the Gemini writer fell back to the local one
    # How shots meet: a hard cut on the frame (default) or a dissolve centred on the cut frame.
    transition: Transition = "cut"
    crossfade_seconds: float = Field(default=CROSSFADE_SECONDS, gt=0, le=2.0)


class ShotRequest(BaseModel):
    """Everything that decides a shot's pixels; its hash is the shot's key (never pay twice)."""

    model: str
    prompt: str
    negative_prompt: str = ""
    seed: int
    aspect_ratio: AspectRatio
    resolution: Resolution
    seconds: int
    fps: int = 24
    # The local renderer cuts to the exact frame count and follows the music in this window;
    # both belong in the key, or a re-timed storyboard would reuse a clip of the wrong length.
    start: float = 0.0
    frames: int = 0
    # Images that seed the shot (Veo): with "last_frame" continuity, the previous clip's key and the
    # time of its frame; reference images by the sha256 of their bytes. Left out of the key while
    # empty, so keys made before these fields existed stay valid (no clip is paid for twice).
    image: str = ""
    reference_images: list[str] = Field(default_factory=list)

    def key(self) -> str:
        data = self.model_dump(mode="json")
        for name in ("image", "reference_images"):
            if not data[name]:
                del data[name]
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


ShotState = Literal["pending", "done", "fallback", "failed"]
# A shot in one of these has its clip in storage: made by the video model, or by the local renderer
# standing in for a shot the model refused.
FINISHED_SHOT_STATES: frozenset[ShotState] = frozenset({"done", "fallback"})


class ShotResult(BaseModel):
    index: int
    key: str
    file: str  # storage key of the clip
    state: ShotState = "pending"
    generator: str = "local"
    cost_usd: float = 0.0
    seconds: float = 0.0
    frames: int = 0
    exact_length: bool = False  # True when the clip already has exactly the shot's frames
    refusals: list[str] = Field(default_factory=list)
    note: str = ""


class ShotManifest(BaseModel):
    """What ``work/shots/manifest.json`` holds: per shot, its request, state, cost and refusals."""

    shots: list[ShotResult] = Field(default_factory=list)

    def by_index(self, index: int) -> ShotResult | None:
        return next((s for s in self.shots if s.index == index), None)
