"""Session fixtures that start Google's storage and Firestore emulators for the integration tests.

Each emulator runs as a real server on a free port, in its own session (process group), so that the
Firestore wrapper script *and* the Java process it starts are stopped together at the end. The
fixtures point the client libraries at them through the environment variables the libraries read
themselves (``STORAGE_EMULATOR_HOST``, ``FIRESTORE_EMULATOR_HOST``): product code has no test branch.

An absent emulator skips its tests with a message that says how to get it; under ``CI=true``
(``.ci/run``) it fails them instead, so a green CI always means all four backends ran.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from kapsule.core.settings import Settings, get_settings

FIRESTORE_PROJECT = "kapsule-test"
START_TIMEOUT_S = 90.0  # the JVM starts slowly on a busy 2-core machine
_FIRESTORE_IN_SDK = Path("platform/cloud-firestore-emulator/cloud_firestore_emulator")
T = TypeVar("T")
_SDK_ROOTS = (
    Path("/usr/lib/google-cloud-sdk"),
    Path("/usr/share/google-cloud-sdk"),
    Path("/opt/google-cloud-sdk"),
)


@dataclass
class GcsEmulator:
    url: str  # http://127.0.0.1:PORT, the value of STORAGE_EMULATOR_HOST

    def new_bucket(self) -> str:
        """Create an empty bucket with a fresh name (the emulator keeps buckets in memory)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(
            project="kapsule-test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )
        name = f"kapsule-test-{secrets.token_hex(6)}"
        client.create_bucket(name)
        return name


@dataclass
class FirestoreEmulator:
    host: str  # 127.0.0.1:PORT, the value of FIRESTORE_EMULATOR_HOST
    project: str = FIRESTORE_PROJECT

    def reset(self) -> None:
        """Delete every document of the project (the emulator's own reset endpoint)."""
        url = f"http://{self.host}/emulator/v1/projects/{self.project}/databases/(default)/documents"
        httpx.delete(url, timeout=30).raise_for_status()


class EmulatorMissingError(Exception):
    """The emulator is not installed here; the message says how to get it."""


class EmulatorStartError(Exception):
    """The emulator was started but did not answer; the message holds the end of its log."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _running(command: list[str], ready_url: str, log: Path, name: str) -> Iterator[None]:
    """Run ``command`` in its own session until the block ends; wait until ``ready_url`` answers."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            tail = log.read_text(errors="replace")[-2000:]
            raise EmulatorStartError(f"the {name} did not answer at {ready_url}; its log ends:\n{tail}")
        yield
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the emulator's whole process group (the Firestore wrapper's Java child included)."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        # The group leader is gone; make sure no member (the JVM) outlives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return


def _find_gcs_emulator() -> str | None:
    beside_python = Path(sys.executable).parent / "gcp-storage-emulator"
    return str(beside_python) if beside_python.is_file() else shutil.which("gcp-storage-emulator")


def _find_firestore_emulator() -> Path | None:
    roots = list(_SDK_ROOTS)
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.insert(0, Path(gcloud).resolve().parent.parent)
    for root in roots:
        if (root / _FIRESTORE_IN_SDK).is_file():
            return root / _FIRESTORE_IN_SDK
    return None


@contextlib.contextmanager
def run_gcs_emulator(log_dir: Path) -> Iterator[GcsEmulator]:
    """``gcp-storage-emulator`` (PyPI), in memory, on a free port, for the duration of the block."""
    executable = _find_gcs_emulator()
    if executable is None:
        raise EmulatorMissingError(
            "GCS emulator not installed: pip install gcp-storage-emulator (or pip install -e '.[dev]')"
        )
    url = f"http://127.0.0.1:{_free_port()}"
    port = url.rsplit(":", 1)[1]
    command = [executable, "start", "--host=127.0.0.1", f"--port={port}", "--in-memory"]
    with _running(command, url + "/", log_dir / "gcs-emulator.log", "GCS emulator"):
        yield GcsEmulator(url=url)


@contextlib.contextmanager
def run_firestore_emulator(log_dir: Path) -> Iterator[FirestoreEmulator]:
    """Google's Firestore emulator (from the Google Cloud CLI) on a free port, for the block."""
    executable = _find_firestore_emulator()
    if executable is None:
        raise EmulatorMissingError(
            "Firestore emulator not installed: install the Google Cloud CLI, then "
            "`gcloud components install cloud-firestore-emulator` "
            "(Debian/Ubuntu: apt-get install google-cloud-cli-firestore-emulator)"
        )
    if shutil.which("java") is None:
        raise EmulatorMissingError(
            "the Firestore emulator needs Java 17+: apt-get install openjdk-17-jre-headless"
        )
    host = f"127.0.0.1:{_free_port()}"
    command = [str(executable), "start", "--host=127.0.0.1", f"--port={host.rsplit(':', 1)[1]}"]
    with _running(command, f"http://{host}/", log_dir / "firestore-emulator.log", "Firestore emulator"):
        yield FirestoreEmulator(host=host)


@contextlib.contextmanager
def _as_fixture(emulator: contextlib.AbstractContextManager[T]) -> Iterator[T]:
    """Skip when absent (fail under CI=true, so `.ci/run` never passes without them); fail when broken."""
    try:
        with emulator as running:
            yield running
    except EmulatorMissingError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc} (CI=true: emulator tests may not be skipped)", pytrace=False)
        pytest.skip(str(exc))
    except EmulatorStartError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    """The GCS emulator for this test session, with STORAGE_EMULATOR_HOST pointing at it."""
    log_dir = tmp_path_factory.mktemp("emulators")
    with _as_fixture(run_gcs_emulator(log_dir)) as emulator, pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
        yield emulator


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirestoreEmulator]:
    """The Firestore emulator for this test session, with FIRESTORE_EMULATOR_HOST pointing at it."""
    log_dir = tmp_path_factory.mktemp("emulators")
    with _as_fixture(run_firestore_emulator(log_dir)) as emulator, pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
        yield emulator


@pytest.fixture
def cloud_env(
    gcs_emulator: GcsEmulator,
    firestore_emulator: FirestoreEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Settings]:
    """Kapsule pointed at the emulators: a fresh private and delivery bucket, an empty collection."""
    firestore_emulator.reset()
    monkeypatch.setenv("KAPSULE_STORAGE_URL", f"gs://{gcs_emulator.new_bucket()}")
    monkeypatch.setenv("KAPSULE_DELIVERY_URL", f"gs://{gcs_emulator.new_bucket()}")
    monkeypatch.setenv("KAPSULE_STATUS_URL", f"firestore://{firestore_emulator.project}/jobs")
    monkeypatch.setenv("KAPSULE_WORK_DIR", str(tmp_path / "work"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
