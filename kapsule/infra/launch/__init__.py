"""Launchers, picked once from ``KAPSULE_LAUNCHER`` (``local`` or ``cloudrun://``)."""

from __future__ import annotations

from collections.abc import Sequence

from kapsule.core.errors import ConfigError
from kapsule.core.settings import Settings
from kapsule.infra.launch.base import Launcher, settings_env


def make_launcher(url: str, settings: Settings, command: Sequence[str] = ()) -> Launcher:
    """The launcher for ``url``: ``local`` (a subprocess) or ``cloudrun://projects/P/locations/L/jobs/J``.

    ``command`` is how a local launcher starts one job (``kapsule.worker.run_job.local_command()``): the entry
    point that knows its own module hands it over, so this library never names the layer above it.
    """
    if url == "local":
        from kapsule.infra.launch.local import LocalLauncher

        if not command:
            raise ConfigError("the local launcher needs the command that starts one job")
        return LocalLauncher(settings, command)
    if url.startswith("cloudrun://"):
        from kapsule.infra.launch.cloudrun import CloudRunLauncher

        return CloudRunLauncher(url, settings)
    raise ConfigError(
        f"unsupported launcher {url!r}: use 'local' or cloudrun://projects/P/locations/L/jobs/J"
    )


__all__ = ["Launcher", "make_launcher", "settings_env"]
