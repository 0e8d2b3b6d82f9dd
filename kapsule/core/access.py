"""Who may use this server: the one place that decides "open mode", for the CLI, the container and the app.

Open mode (no API keys) exists for one person on one machine: ``kapsule serve`` on loopback. It must
never be reached by accident, so:
- ``KAPSULE_API_KEYS`` unset or blank is open; anything else must parse to at least one owner, or it
  is a configuration error (``','`` once passed the "keys are set" check and then served open);
- an open server may only listen on a loopback address (``check_bind``), which ``kapsule serve`` and
  the container entrypoint (``python -m kapsule.api.serve``) both call before they start;
- an open server only answers requests whose ``Host`` is a loopback name (``is_loopback_host``), so a
  web page that rebinds its own DNS name to 127.0.0.1 cannot drive it from the reviewer's browser.
"""

from __future__ import annotations

import ipaddress

from kapsule.core.errors import ConfigError, OpenServerRefused
from kapsule.core.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
# The machine's own user: the CLI, and the API in open mode. It is the operator, so the model
# allow-list and the daily spending cap do not apply to it.
LOCAL_OWNER = "local"
# Owner names an API key may not carry: ``local`` would see the CLI's jobs and skip the allow-list and
# the cap; ``*`` is the allow-list's "everyone else"; the rest read as someone they are not.
RESERVED_OWNERS = frozenset({LOCAL_OWNER, "*", "admin", "anonymous", "default", "root", "system"})
# The shortest API key a server starts with: a short key is guessed (``openssl rand -hex 24`` is 48).
MIN_KEY_CHARS = 16


def parse_api_keys(raw: str | None) -> dict[str, str]:
    """``owner=key,owner2=key2`` → {owner: key}; {} (open) only when unset or blank.

    A value that is set but names no owner (``','``), a malformed item, a reserved owner name
    (``RESERVED_OWNERS``), an owner named twice or one key shared by two owners is a ``ConfigError``:
    the server must not guess what was meant.
    """
    if raw is None or not raw.strip():
        return {}
    keys: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        owner, sep, key = item.partition("=")
        owner, key = owner.strip(), key.strip()
        if not sep or not owner or not key:
            raise ConfigError("KAPSULE_API_KEYS must look like owner=key,owner2=key2")
        if owner.lower() in RESERVED_OWNERS:
            raise ConfigError(
                f"KAPSULE_API_KEYS may not name the owner {owner!r}: it is reserved "
                f"({', '.join(sorted(RESERVED_OWNERS))}); choose another name"
            )
        if owner in keys:
            raise ConfigError(f"KAPSULE_API_KEYS names the owner {owner!r} twice")
        if key in keys.values():
            raise ConfigError("KAPSULE_API_KEYS gives two owners the same key")
        keys[owner] = key
    if not keys:
        raise ConfigError(
            "KAPSULE_API_KEYS is set but names no owner (owner=key,…); unset it for open loopback mode"
        )
    return keys


def is_open(settings: Settings) -> bool:
    """True when no API keys are configured (raises ``ConfigError`` for a set-but-empty value)."""
    return not parse_api_keys(settings.api_keys)


def is_loopback_host(host: str) -> bool:
    """``host`` (a bind address or a ``Host`` header without its port) names this machine only."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_header_name(value: str) -> str:
    """The name part of a ``Host`` header: ``127.0.0.1:8080`` → ``127.0.0.1``, ``[::1]:80`` → ``[::1]``."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end > 0 else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def check_bind(settings: Settings, host: str) -> bool:
    """Refuse to serve open on a non-loopback address, or keyed with a key shorter than
    ``MIN_KEY_CHARS``; returns whether the server is open."""
    open_mode = is_open(settings)
    short = sorted(
        owner for owner, key in parse_api_keys(settings.api_keys).items() if len(key) < MIN_KEY_CHARS
    )
    if short:
        raise ConfigError(
            f"KAPSULE_API_KEYS gives {', '.join(repr(o) for o in short)} a key shorter than {MIN_KEY_CHARS} "
            "characters, which can be guessed; make one with `openssl rand -hex 24`"
        )
    check_upload_secret(settings)
    if open_mode and not is_loopback_host(host):
        raise OpenServerRefused(
            f"refusing to serve on {host} with no API keys: anyone on the network could use it. "
            "Set KAPSULE_API_KEYS=owner=key (or serve on 127.0.0.1)"
        )
    return open_mode


MIN_SECRET_CHARS = 16


def needs_upload_secret(settings: Settings) -> bool:
    """Keyed, or in the cloud: signed URLs, sessions and Idempotency-Keys must outlive one process."""
    cloud = settings.storage_url.startswith("gs://") or settings.launcher.startswith("cloudrun://")
    return cloud or not is_open(settings)


def check_upload_secret(settings: Settings) -> None:
    """Refuse to serve keyed or cloud mode without ``KAPSULE_UPLOAD_SECRET``.

    Without it each process invents its own key: an upload URL, a session or an Idempotency-Key
    retry that reaches another replica (or comes after a restart) is refused or makes a second job.
    """
    if not needs_upload_secret(settings):
        return
    secret = settings.upload_secret.get_secret_value() if settings.upload_secret else ""
    if len(secret) < MIN_SECRET_CHARS:
        raise ConfigError(
            "KAPSULE_UPLOAD_SECRET must be set (at least 16 characters; `openssl rand -hex 32`) when API "
            "keys are configured or the storage or launcher is Google Cloud: upload URLs, sessions and "
            "Idempotency-Keys must mean the same thing on every replica and after a restart"
        )
