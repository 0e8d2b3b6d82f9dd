"""The container's entrypoint: ``python -m kapsule.api.serve --host 0.0.0.0 --port $PORT``.

It runs the same check as ``kapsule serve`` (``access.check_bind``) before uvicorn starts, so an
image deployed without API keys (or with ``KAPSULE_API_KEYS=','``) refuses to start on a public
address instead of serving open; then it serves ``kapsule.api.main:app`` behind the platform's proxy.
``run_server`` is how both start uvicorn: with a header timeout, and, behind a proxy, trusting the
forwarded client address and scheme only from ``settings.forwarded_allow_ips``.
"""

from __future__ import annotations

import argparse
import os
import sys

from kapsule.core.access import check_bind
from kapsule.core.errors import ConfigError
from kapsule.core.settings import Settings, get_settings

EXIT_MISCONFIGURED = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the Kapsule API (refuses open mode off loopback).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-* (behind a proxy)")
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        open_mode = check_bind(settings, args.host)
    except ConfigError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return EXIT_MISCONFIGURED
    if open_mode:
        print(f"no API keys configured: open mode, for this machine only (http://{args.host}:{args.port}/)")
    run_server(settings, args.host, args.port, proxy_headers=args.proxy_headers)
    return 0


def run_server(settings: Settings, host: str, port: int, *, proxy_headers: bool = False) -> None:
    """Serve the API with uvicorn until stopped (after ``check_bind``, which the caller runs)."""
    import uvicorn

    from kapsule.api.protocol import header_timeout_protocol

    uvicorn.run(
        "kapsule.api.main:app",
        host=host,
        port=port,
        http=header_timeout_protocol(settings.header_timeout_s),
        proxy_headers=proxy_headers,
        forwarded_allow_ips=settings.forwarded_allow_ips if proxy_headers else None,
    )


if __name__ == "__main__":
    sys.exit(main())
