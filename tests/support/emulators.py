"""The Google storage and Firestore emulators, started once per test run, for the integration tests.

Each emulator runs as a real server on a free port, in its own process group (``tests.support.servers``),
so that the Firestore wrapper script *and* the JVM it starts are stopped together. The fixtures point
the client libraries at them through the variables the libraries read themselves
(``STORAGE_EMULATOR_HOST``, ``FIRESTORE_EMULATOR_HOST``): product code has no test branch.

Under pytest-xdist the controller starts both emulators before it starts its workers (unless the run
is the unit tier alone) and hands their addresses down in ``KAPSULE_TEST_GCS_EMULATOR`` and
``KAPSULE_TEST_FIRESTORE_EMULATOR``: one JVM per run, not one per worker. Each worker uses a Firestore
project of its own, so one worker emptying its collection never touches another's. Without xdist the
first test that needs an emulator starts it for the session.

An absent emulator skips its tests with a message that says how to get it; under ``CI=true``
(``.ci/run``) it fails them instead, so a green CI always means all four backends ran.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from kapsule.core.settings import Settings
from tests.support.paths import REPO
from tests.support.servers import ServerStartError, free_port, running, start, stop, wait_until_ready
from tests.support.settings import replace

FIRESTORE_PROJECT = "kapsule-test"
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


def _gcs_command(port: int) -> list[str]:
    """``gcp-storage-emulator`` (PyPI), in memory."""
    executable = _find_gcs_emulator()
    if executable is None:
        raise EmulatorMissingError(
            "GCS emulator not installed: pip install gcp-storage-emulator (or pip install -e '.[dev]')"
        )
    return [executable, "start", "--host=127.0.0.1", f"--port={port}", "--in-memory"]


def _firestore_command(port: int) -> list[str]:
    """Google's Firestore emulator, from the Google Cloud CLI."""
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
    return [str(executable), "start", "--host=127.0.0.1", f"--port={port}"]


@contextlib.contextmanager
def run_gcs_emulator(log_dir: Path) -> Iterator[GcsEmulator]:
    """The GCS emulator on a free port, for the duration of the block."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(_gcs_command(port), url + "/", log_dir / "gcs-emulator.log", "GCS emulator"):
        yield GcsEmulator(url=url)


@contextlib.contextmanager
def run_firestore_emulator(log_dir: Path) -> Iterator[FirestoreEmulator]:
    """The Firestore emulator on a free port, for the duration of the block."""
    port = free_port()
    host = f"127.0.0.1:{port}"
    command = _firestore_command(port)
    with running(command, f"http://{host}/", log_dir / "firestore-emulator.log", "Firestore emulator"):
        yield FirestoreEmulator(host=host)


# ---------------------------------------------------------------- one pair of emulators per xdist run

GCS_VAR = "KAPSULE_TEST_GCS_EMULATOR"  # http://127.0.0.1:PORT, or MISSING + why
FIRESTORE_VAR = "KAPSULE_TEST_FIRESTORE_EMULATOR"  # 127.0.0.1:PORT, or MISSING + why
MISSING = "missing: "
LOGS_VAR = "KAPSULE_TEST_EMULATOR_LOGS"  # the folder of their logs
_STARTED = pytest.StashKey[list[subprocess.Popen[bytes]]]()


def _unit_tier_only(config: pytest.Config) -> bool:
    unit = REPO / "tests" / "unit"
    paths = [Path(config.invocation_params.dir, arg.split("::")[0]).resolve() for arg in config.args]
    return config.option.markexpr == "unit" or (bool(paths) and all(p.is_relative_to(unit) for p in paths))


def pytest_configure(config: pytest.Config) -> None:
    """On the xdist controller: start both emulators (without waiting) for the workers to share."""
    is_controller = config.getoption("dist", "no") != "no" and not hasattr(config, "workerinput")
    if not is_controller or config.option.collectonly or _unit_tier_only(config) or GCS_VAR in os.environ:
        return
    log_dir = Path(tempfile.mkdtemp(prefix="kapsule-emulators-"))
    os.environ[LOGS_VAR] = str(log_dir)
    started = config.stash.setdefault(_STARTED, [])
    for var, command, address in (
        (GCS_VAR, _gcs_command, "http://127.0.0.1:{port}"),
        (FIRESTORE_VAR, _firestore_command, "127.0.0.1:{port}"),
    ):
        port = free_port()
        try:
            started.append(start(command(port), log_dir / f"{var.lower()}.log"))
            os.environ[var] = address.format(port=port)
        except EmulatorMissingError as exc:
            os.environ[var] = MISSING + str(exc)


def pytest_unconfigure(config: pytest.Config) -> None:
    for process in config.stash.get(_STARTED, []):
        stop(process)


@contextlib.contextmanager
def _shared(var: str) -> Iterator[str]:
    """The address the controller exported in ``var``, once it answers."""
    value = os.environ[var]
    if value.startswith(MISSING):
        raise EmulatorMissingError(value[len(MISSING) :])
    url = value if value.startswith("http") else f"http://{value}"
    log = Path(os.environ.get(LOGS_VAR, "."), f"{var.lower()}.log")
    wait_until_ready(url + "/", log=log, name=f"emulator of {var}")
    yield value


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
    except ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)


@contextlib.contextmanager
def _gcs(log_dir: Path) -> Iterator[GcsEmulator]:
    if GCS_VAR in os.environ:
        with _shared(GCS_VAR) as url:
            yield GcsEmulator(url=url)
    else:
        with run_gcs_emulator(log_dir) as emulator:
            yield emulator


@contextlib.contextmanager
def _firestore(log_dir: Path) -> Iterator[FirestoreEmulator]:
    project = f"{FIRESTORE_PROJECT}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    if FIRESTORE_VAR in os.environ:
        with _shared(FIRESTORE_VAR) as host:
            yield FirestoreEmulator(host=host, project=project)
    else:
        with run_firestore_emulator(log_dir) as emulator:
            yield FirestoreEmulator(host=emulator.host, project=project)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    """The GCS emulator of this run, with STORAGE_EMULATOR_HOST pointing at it."""
    with (
        _as_fixture(_gcs(tmp_path_factory.mktemp("emulators"))) as emulator,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
        yield emulator


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirestoreEmulator]:
    """The Firestore emulator of this run (a project of this worker's own), FIRESTORE_EMULATOR_HOST set."""
    log_dir = tmp_path_factory.mktemp("emulators")
    with _as_fixture(_firestore(log_dir)) as emulator, pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
        yield emulator


@pytest.fixture
def cloud_settings(
    settings: Settings, gcs_emulator: GcsEmulator, firestore_emulator: FirestoreEmulator, tmp_path: Path
) -> Settings:
    """Kapsule pointed at the emulators: a fresh private and delivery bucket, an empty collection."""
    firestore_emulator.reset()
    return replace(
        settings,
        storage_url=f"gs://{gcs_emulator.new_bucket()}",
        delivery_url=f"gs://{gcs_emulator.new_bucket()}",
        status_url=f"firestore://{firestore_emulator.project}/jobs",
        work_dir=str(tmp_path / "work"),
    )
