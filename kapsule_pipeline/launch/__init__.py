"""Launchers, picked once from ``KAPSULE_LAUNCHER`` (``local`` or ``cloudrun://``)."""

from __future__ import annotations

from kapsule_pipeline.errors import ConfigError
from kapsule_pipeline.launch.base import Launcher, settings_env
from kapsule_pipeline.settings import Settings


def make_launcher(url: str, settings: Settings | None = None) -> Launcher:
    """The launcher for ``url``: ``local`` (a subprocess) or ``cloudrun://projects/P/locations/L/jobs/J``."""
    if url == "local":
        from kapsule_pipeline.launch.local import LocalLauncher

        return LocalLauncher(settings)
    if url.startswith("cloudrun://"):
        from kapsule_pipeline.launch.cloudrun import CloudRunLauncher

        return CloudRunLauncher(url, settings)
    raise ConfigError(
        f"unsupported launcher {url!r}: use 'local' or cloudrun://projects/P/locations/L/jobs/J"
    )


__all__ = ["Launcher", "make_launcher", "settings_env"]
