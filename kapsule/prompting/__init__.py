"""Prompt writers behind one protocol, picked once per job by ``make_prompt_writer`` from its model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kapsule.core.errors import UnknownModel
from kapsule.prompting.base import PromptPlan, PromptWriter, ShotBrief
from kapsule.prompting.local import LocalPromptWriter

if TYPE_CHECKING:
    from kapsule.infra.context import JobContext

__all__ = ["LocalPromptWriter", "PromptPlan", "PromptWriter", "ShotBrief", "make_prompt_writer"]


def prompt_model_of(ctx: JobContext) -> str:
    """The job's prompt model: its own, else the deployment's default."""
    return ctx.params.prompt_model or ctx.settings.prompt_model


def make_prompt_writer(ctx: JobContext) -> PromptWriter:
    """The writer of the job's prompt model: ``"local"`` needs nothing else; Gemini reads its endpoint
    and credentials from the deployment's settings, and hears the song with ``gemini_send_audio``."""
    name = prompt_model_of(ctx).strip()
    if name == "local":
        return LocalPromptWriter()
    if name.startswith("gemini-"):
        from kapsule.prompting.gemini import GeminiPromptWriter

        song = ctx.input_song() if ctx.settings.gemini_send_audio else None
        return GeminiPromptWriter(name, ctx.settings, song=song)
    raise UnknownModel(f"prompt model {name!r} is not one Kapsule knows: use 'local' or a Gemini model id")
