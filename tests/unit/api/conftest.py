"""What the API tests share: a recording launcher, the app on it (open and keyed), a song, a video."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kapsule.core.settings import Settings
from tests.support.api import (
    RecordingLauncher,
    api_client,
    sine_wav,
)
from tests.support.settings import replace


@pytest.fixture
def launcher() -> RecordingLauncher:
    return RecordingLauncher()


@pytest.fixture
def client(api_settings: Settings, launcher: RecordingLauncher) -> Iterator[TestClient]:
    with api_client(launcher, api_settings) as c:
        yield c


# --------------------------------------------------------------------------------- auth, isolation


@pytest.fixture
def keyed(api_settings: Settings, launcher: RecordingLauncher) -> Iterator[TestClient]:
    with api_client(launcher, replace(api_settings, api_keys="alice=key-a,bob=key-b")) as c:
        yield c


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sine_wav(tmp_path_factory.mktemp("songs") / "my song.wav", 6.0)


# ------------------------------------------------------------------------------- results of a job


@pytest.fixture(scope="module")
def small_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "v.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x90:rate=24:duration=1",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path
