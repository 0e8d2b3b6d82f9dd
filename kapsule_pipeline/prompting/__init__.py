"""Prompt writers behind one protocol, picked once by ``make_prompt_writer`` from a model name."""

from __future__ import annotations

from kapsule_pipeline.errors import ConfigError
from kapsule_pipeline.prompting.base import PromptPlan, PromptWriter, ShotBrief
from kapsule_pipeline.prompting.local import LocalPromptWriter
from kapsule_pipeline.settings import Settings

__all__ = ["LocalPromptWriter", "PromptPlan", "PromptWriter", "ShotBrief", "make_prompt_writer"]


def make_prompt_writer(model: str, settings: Settings | None = None) -> PromptWriter:
    """The writer for ``model`` (``KAPSULE_PROMPT_MODEL``): ``"local"`` needs nothing else.

    ``settings`` is taken now so remote writers (Gemini) can read their endpoint and credentials
    from the one settings object without changing this signature.
    """
    name = (model or "").strip()
    if name == "local":
        return LocalPromptWriter()
    if name.startswith("gemini-"):
        from kapsule_pipeline.prompting.gemini import GeminiPromptWriter

        return GeminiPromptWriter(name, settings)
    raise ConfigError(f"prompt model {model!r} is not available yet; set KAPSULE_PROMPT_MODEL=local")
