"""Headless Chromium (Debian's, driven by Playwright) for the e2e tier: absent skips, or fails under CI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


AXE = Path(__file__).resolve().parents[2] / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
"""axe-core, pinned and installed by ``scripts/install-system-deps.sh --test`` (never by hand)."""


def need_axe() -> str:
    """axe-core's source, to inject into a page; absent skips, or fails under CI."""
    if AXE.is_file():
        return AXE.read_text()
    message = f"{AXE} is missing: run scripts/install-system-deps.sh --test"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def axe_violations(page: Any, source: str) -> list[str]:
    """axe-core's WCAG 2.0-2.2 A/AA (2.2's target size included) and best-practice violations on
    ``page`` as it is now, one line each (empty: none)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(source)  # through the DevTools protocol: the page's CSP does not apply
    found = page.evaluate(
        "async () => (await axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',"
        " 'wcag22aa', 'best-practice'] })).violations"
        ".map(v => `${v.id}: ${v.nodes.map(n => n.target.join(' ')).join(', ')}`)"
    )
    return list(found)
