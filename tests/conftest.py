"""The tiers, and shared fixtures: an isolated Kapsule home per test and the demo song (made once).

A test's tier is the first folder under ``tests/``: ``unit`` (in-process and quick), ``integration``
(emulators, local servers, notebook kernels, job subprocesses) or ``e2e`` (headless Chromium and whole
product runs). The tier becomes the test's marker here, so ``-m unit`` and a path select the same
tests; a test module outside the three folders is a collection error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kapsule.core.settings import Settings, get_settings
from tests.support.api import SECRET, RecordingLauncher, api_client
from tests.support.settings import home_settings, replace, use_environment

# librosa (a test-only dependency) compiles numba gufuncs with cache=True; two xdist workers compiling
# the same one at once can pair cache files of different processes, and the next process to load them
# segfaults (numba/numba#10128, librosa/librosa#1998). Each worker gets a cache folder of its own,
# set before any test module imports numba; a fresh clone's first run used to crash there.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
_NUMBA_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "numba" / _WORKER
os.environ["NUMBA_CACHE_DIR"] = str(_NUMBA_CACHE)  # not inherited: the controller set its own first

TESTS = Path(__file__).resolve().parent
ARTIFACTS = TESTS.parent / "test-artifacts"
TIERS = ("unit", "integration", "e2e")

# Session fixtures: the emulators (started once per run), the fake Google and Cloud Run APIs, a
# service-account key and the API on a GCS bucket, a deployment as deploy.sh leaves it.
pytest_plugins = [
    "tests.support.emulators",
    "tests.support.fake_google",
    "tests.support.google_modes",
    "tests.support.fake_cloudrun",
    "tests.support.gcs",
    "tests.support.deployed",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = item.path.relative_to(TESTS).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(
                f"{item.path}: a test module belongs under tests/unit, tests/integration or tests/e2e"
            )
        item.add_marker(tier)


@pytest.fixture(autouse=True)
def _no_cached_settings() -> Iterator[None]:
    """Entry points cache the environment's settings per process; no test may see another's."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Every backend in a fresh folder under tmp_path: what library code under test is handed."""
    return home_settings(tmp_path / "kapsule")


@pytest.fixture
def kapsule_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """``settings`` exported to the environment, for a test that drives an entry point in this
    process (the CLI through ``CliRunner``) or a child process that inherits the environment."""
    return use_environment(settings, monkeypatch)


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    """Settings for API tests (``create_app(api_settings)``): a fixed upload secret and small limits."""
    return replace(settings, upload_secret=SECRET, max_upload_bytes=5_000_000, api_keys=None)


@pytest.fixture
def api(api_settings: Settings) -> Iterator[tuple[TestClient, RecordingLauncher]]:
    """The app on ``api_settings`` with a launcher that records the jobs it was asked to start."""
    launcher = RecordingLauncher()
    with api_client(launcher, api_settings) as client:
        yield client, launcher


@pytest.fixture(scope="session")
def demo_song_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo song rendered to a WAV once per test session."""
    from kapsule.demo.song import write_demo_song

    return write_demo_song(tmp_path_factory.mktemp("demo") / "demo-song.wav")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave files a human may want to look at (screenshots, sample videos)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
