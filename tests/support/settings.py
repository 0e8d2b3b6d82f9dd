"""Settings as tests build them: objects handed to the code under test, never looked up by it.

``make_settings`` validates like the environment would (a string becomes a ``SecretStr``, validators
run) but takes field names, including the fields read from Google's variable names
(``gemini_api_key``, ``genai_use_vertexai``, ...). ``use_environment`` is for the few tests whose code
reads the environment itself: an entry point run in this process (the CLI through ``CliRunner``), or
a child process that inherits ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices

from kapsule.core.settings import Settings, get_settings
from kapsule.infra.launch import settings_env


def make_settings(**fields: Any) -> Settings:
    """``Settings`` from field names (a misspelt name is a ``KeyError``, not a silently ignored extra)."""
    init: dict[str, Any] = {}
    for name, value in fields.items():
        alias = Settings.model_fields[name].validation_alias
        init[alias.choices[0] if isinstance(alias, AliasChoices) else name] = value
    return Settings(**init)


def home_settings(home: Path, **fields: Any) -> Settings:
    """Settings whose storage, job records and work folder all live under ``home``."""
    return make_settings(
        storage_url=f"file://{home / 'data'}",
        status_url=f"sqlite:///{home / 'jobs.db'}",
        work_dir=str(home / "work"),
        **fields,
    )


def replace(settings: Settings, **fields: Any) -> Settings:
    """``settings`` with ``fields`` changed, validated again."""
    return make_settings(**{**{name: getattr(settings, name) for name in Settings.model_fields}, **fields})


def use_environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Export ``settings`` to this process's environment (the way a launcher hands them to a child,
    secrets included) and drop the entry points' cached copy; returns what ``get_settings()`` now builds.
    """
    variables, unset = settings_env(settings, genai=True)
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    secret = settings.upload_secret
    if secret is not None:  # settings_env withholds these two from jobs; an API process needs them
        monkeypatch.setenv("KAPSULE_UPLOAD_SECRET", secret.get_secret_value())
    if settings.api_keys is not None:
        monkeypatch.setenv("KAPSULE_API_KEYS", settings.api_keys)
    get_settings.cache_clear()
    return get_settings()
