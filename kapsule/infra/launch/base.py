"""The Launcher protocol: how a queued job gets a process (a local subprocess, or a Cloud Run Job).

The CLI and the API only ever call ``launch`` and ``cancel``; which backend runs the job is decided
once, from ``KAPSULE_LAUNCHER``, by ``make_launcher``. A launcher starts the job entrypoint (the
command the calling entry point hands over, with ``KAPSULE_JOB_ID``) and returns an execution name
that is stored in the job record, so whoever cancels later can find the process again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo

from kapsule.core.settings import Settings

# Secrets only the API uses (callers' keys, the signing key): a job or a kernel never receives them,
# so a prompt that talks a notebook into printing its environment has nothing of the server's to show.
_API_ONLY_FIELDS = frozenset({"api_keys", "upload_secret"})
# The google-genai key, only for a process that may call Gemini or Veo; GOOGLE_API_KEY is the
# library's own fallback name, withheld with it.
_GENAI_KEY_FIELDS = frozenset({"gemini_api_key"})
_GENAI_EXTRA_NAMES = ("GOOGLE_API_KEY",)


@runtime_checkable
class Launcher(Protocol):
    def launch(self, job_id: str, *, genai: bool = False) -> str:
        """Start the job's entrypoint; return the execution name (stored in the job record).

        ``genai``: the job's own models are Google ones, so its process needs the google-genai key
        even when the deployment's default models are ``local`` (the local launcher withholds the key
        otherwise; a Cloud Run job gets its secrets from its job definition).
        """

    def cancel(self, execution: str) -> None:
        """Stop the execution if it still runs (the job record's state is the caller's business)."""

    def poll(self, execution: str) -> int | None:
        """The execution's exit code once it has ended, ``None`` while it runs (or if unknown)."""


def _env_names(name: str, field: FieldInfo) -> list[str]:
    """The variables pydantic-settings reads a field from, in its order of preference."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, str):
        return [alias]
    return [f"{Settings.model_config.get('env_prefix', '')}{name}".upper()]


def _env_value(name: str, value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path) or name.endswith("_dir"):
        return str(Path(value).resolve())
    if isinstance(value, (dict, list, bool)):
        return json.dumps(value)  # how pydantic-settings reads complex values back
    return str(value)


def uses_genai_models(*models: str) -> bool:
    """Whether any of these video or prompt models is a Google one (anything other than ``local``)."""
    return any(model.strip().lower() not in ("", "local") for model in models)


def uses_genai(settings: Settings) -> bool:
    """Whether a job of these settings may call Gemini or Veo (any model other than ``local``)."""
    return uses_genai_models(settings.video_model, settings.prompt_model)


def settings_env(settings: Settings, *, genai: bool | None = None) -> tuple[dict[str, str], list[str]]:
    """The environment that makes a child process (job, notebook kernel) build these same settings.

    Returns the variables to set and the names to remove (settings that are unset here, and secrets
    the child must not have), so a child sees this object, minus the secrets, even when it was built
    in code rather than from the environment. Relative paths are made absolute: the child may not
    share our working directory. A child gets the Gemini key only when a Google model is configured
    (``genai``, when given, says so instead: a notebook kernel goes by its job's own models).
    """
    set_vars: dict[str, str] = {}
    unset: list[str] = []
    if genai is None:
        genai = uses_genai(settings)
    withheld = _API_ONLY_FIELDS if genai else _API_ONLY_FIELDS | _GENAI_KEY_FIELDS
    if not genai:
        unset += _GENAI_EXTRA_NAMES
    for name, field in Settings.model_fields.items():
        names = _env_names(name, field)
        value = getattr(settings, name)
        if value is None or name in withheld:
            unset += names
        else:
            set_vars[names[0]] = _env_value(name, value)
    return set_vars, unset
