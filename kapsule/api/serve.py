"""The container's entrypoint: ``python -m kapsule.api.serve --host 0.0.0.0 --port $PORT``.

It runs the same check as ``kapsule serve`` (``access.check_bind``) before uvicorn starts, so an
image deployed without API keys (or with ``KAPSULE_API_KEYS=','``) refuses to start on a public
address instead of serving open; then it serves ``kapsule.api.main:app`` behind the platform's proxy.
"""

from __future__ import annotations

import argparse
import os
import sys

from kapsule.core.access import check_bind
from kapsule.core.errors import ConfigError
from kapsule.core.settings import get_settings

EXIT_MISCONFIGURED = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the Kapsule API (refuses open mode off loopback).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-* (behind a proxy)")
    args = parser.parse_args(argv)
    try:
        open_mode = check_bind(get_settings(), args.host)
    except ConfigError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return EXIT_MISCONFIGURED
    if open_mode:
        print(f"no API keys configured: open mode, for this machine only (http://{args.host}:{args.port}/)")
    import uvicorn

    uvicorn.run(
        "kapsule.api.main:app",
        host=args.host,
        port=args.port,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips="*" if args.proxy_headers else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
