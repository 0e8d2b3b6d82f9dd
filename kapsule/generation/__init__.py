"""Video generators, picked once per job from its video model (``local`` or a Veo model id)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kapsule.core.errors import UnknownModel
from kapsule.generation.base import VideoGenerator

if TYPE_CHECKING:
    from kapsule.core.settings import Settings
    from kapsule.generation.veo import Rephraser
    from kapsule.infra.context import JobContext


def video_model_of(ctx: JobContext) -> str:
    """The job's video model: its own, else the deployment's default."""
    return ctx.params.video_model or ctx.settings.video_model


def make_video_generator(ctx: JobContext, model: str | None = None) -> VideoGenerator:
    """The generator for ``model`` (default: the job's); imports it on first use."""
    model = model or video_model_of(ctx)
    if model == "local":
        from kapsule.generation.local import LocalRenderer

        return LocalRenderer(ctx.settings)
    if model.startswith("veo-"):
        from kapsule.generation.veo import VeoGenerator

        return VeoGenerator(model, ctx, rephraser=_rephraser(ctx.settings))
    raise UnknownModel(f"video model {model!r} is not one Kapsule knows: use 'local' or a Veo model id")


def _rephraser(settings: Settings) -> Rephraser | None:
    """Gemini re-phrases refused Veo prompts when it is the prompt model; else Veo softens locally."""
    if settings.prompt_model.startswith("gemini-"):
        from kapsule.prompting.gemini import GeminiPromptWriter

        return GeminiPromptWriter(settings.prompt_model, settings).rephrase
    return None


__all__ = ["VideoGenerator", "make_video_generator", "video_model_of"]
