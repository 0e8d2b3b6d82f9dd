"""Notebook 02's stage: cut points on the music and a prompt per shot."""

from __future__ import annotations

import logging

from kapsule.generation import video_model_of
from kapsule.infra.context import JobContext
from kapsule.job.artifacts import Storyboard
from kapsule.job.update import CostDelta, JobUpdate
from kapsule.prompting import make_prompt_writer
from kapsule.stages.files import load_analysis, load_lyrics_lines
from kapsule.storyboard.plan import plan_storyboard

log = logging.getLogger(__name__)


def run_storyboard(ctx: JobContext) -> Storyboard:
    """Plan the shots on the music and write ``work/storyboard.json``."""
    ctx.report("storyboard", 0.0, "planning the shots")
    analysis = load_analysis(ctx)
    writer = make_prompt_writer(ctx)
    params = ctx.params
    board = plan_storyboard(
        analysis,
        prompt=params.prompt,
        style=params.style,
        aspect_ratio=params.aspect_ratio,
        resolution=params.resolution,
        max_shots=params.max_shots or None,
        seed=params.seed,
        fps=ctx.settings.fps,
        video_model=video_model_of(ctx),
        writer=writer,
        transition=params.transition,
        lyrics=load_lyrics_lines(ctx),
    )
    ctx.write_model(ctx.layout.storyboard, board)
    # Gemini bills per token; the writer counts what it sent (0 for the local writer).
    tokens = int(getattr(writer, "prompt_tokens", 0) or 0)
    if tokens:
        ctx.update(JobUpdate(add_cost=CostDelta(prompt_tokens=tokens)))
    if board.prompt_writer_note:
        log.warning("storyboard: %s", board.prompt_writer_note)
    ctx.report("storyboard", 1.0, f"{len(board.shots)} shots")
    return board
