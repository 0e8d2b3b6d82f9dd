"""Shared fixtures: an isolated Kapsule home per test and the synthesized demo song (made once)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kapsule.core.settings import Settings, get_settings

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

# Session fixtures `gcs_emulator` and `firestore_emulator` (real emulators, started on demand).
pytest_plugins = ["tests.support.emulators", "tests.support.fake_google", "tests.support.fake_cloudrun"]


@pytest.fixture
def kapsule_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Point every backend at a fresh folder under tmp_path and return the resulting settings."""
    home = tmp_path / "kapsule"
    monkeypatch.setenv("KAPSULE_STORAGE_URL", f"file://{home / 'data'}")
    monkeypatch.setenv("KAPSULE_STATUS_URL", f"sqlite:///{home / 'jobs.db'}")
    monkeypatch.setenv("KAPSULE_WORK_DIR", str(home / "work"))
    monkeypatch.delenv("KAPSULE_DELIVERY_URL", raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


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


@pytest.fixture
def env(kapsule_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for API tests: a fixed upload secret and small limits."""
    monkeypatch.setenv("KAPSULE_UPLOAD_SECRET", "test-upload-secret")
    monkeypatch.setenv("KAPSULE_MAX_UPLOAD_BYTES", str(5_000_000))
    monkeypatch.delenv("KAPSULE_API_KEYS", raising=False)
    get_settings.cache_clear()
    return get_settings()
