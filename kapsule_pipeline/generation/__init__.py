"""Video generators, picked once from the model name (``local`` now; Veo model ids plug in here)."""

from __future__ import annotations

from kapsule_pipeline.errors import ConfigError
from kapsule_pipeline.generation.base import VideoGenerator
from kapsule_pipeline.settings import Settings, get_settings


def make_video_generator(model: str, settings: Settings | None = None) -> VideoGenerator:
    """Return the generator for ``model`` (e.g. ``settings.video_model``); imports it on first use."""
    settings = settings or get_settings()
    if model == "local":
        from kapsule_pipeline.generation.local import LocalRenderer

        return LocalRenderer(settings)
    if model.startswith("veo-"):
        from kapsule_pipeline.generation.veo import VeoGenerator

        return VeoGenerator(model, settings, rephraser=_rephraser(settings))
    raise ConfigError(
        f"video model {model!r} is not available yet; set KAPSULE_VIDEO_MODEL=local to use the local renderer"
    )


def _rephraser(settings: Settings):  # type: ignore[no-untyped-def]
    """Gemini re-phrases refused Veo prompts when it is the prompt model; else Veo softens locally."""
    if settings.prompt_model.startswith("gemini-"):
        from kapsule_pipeline.prompting.gemini import GeminiPromptWriter

        return GeminiPromptWriter(settings.prompt_model, settings).rephrase
    return None


__all__ = ["VideoGenerator", "make_video_generator"]
