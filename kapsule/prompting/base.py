"""The prompt-writer seam: what a writer is told about each shot, and what it hands back.

The storyboard decides *where* the cuts fall; a writer only decides *what each shot shows*. Keeping
that split means the local writer, Gemini, or a human editing ``storyboard.json`` can all be swapped
without touching the cut logic, and a writer can never move a cut off the beat.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from kapsule.job.artifacts import Analysis


class ShotBrief(BaseModel):
    """What a writer knows about one shot: where it sits in the song and how loud that part is."""

    index: int
    start: float
    end: float
    section: str
    energy: float  # 0..1, mean over the shot
    tempo: float  # bpm of the song
    lyrics: list[str] = Field(default_factory=list)  # lines sung during the shot (empty: none, or no lyrics)


class PromptPlan(BaseModel):
    """A writer's answer: exactly one prompt per brief, in order, plus what applies to every shot."""

    prompts: list[str]
    negative_prompt: str = ""
    style_bible: str = ""  # the look every shot shares, so the clips feel like one video
    note: str = ""  # e.g. why a remote writer fell back to the local one


class PromptWriter(Protocol):
    """Writes one video prompt per shot. ``name`` is recorded as the storyboard's ``prompt_model``."""

    name: str

    prompt_tokens: int
    """Input tokens this writer has sent so far, summed over its calls: what a remote model bills
    (the job record's ``cost.prompt_tokens``); 0 for a writer that calls no model."""

    def write(
        self, briefs: list[ShotBrief], *, prompt: str, style: str, analysis: Analysis
    ) -> PromptPlan: ...
