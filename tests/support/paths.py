"""Where the repository is, for tests that run its scripts, read its files or start its commands."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
