"""Headless Chromium (Debian's, driven by Playwright) for the e2e tier: absent skips, or fails under CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def need_chromium() -> None:
    if CHROMIUM.is_file():
        return
    message = f"{CHROMIUM} is missing: run scripts/install-system-deps.sh --test"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
