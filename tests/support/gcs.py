"""Fixtures for signed GCS URLs: a service-account key file, and the API on an emulated bucket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from kapsule.core.settings import Settings
from tests.support.api import RecordingLauncher, api_client
from tests.support.emulators import GcsEmulator
from tests.support.settings import replace

SERVICE_ACCOUNT = "kapsule-api@kapsule-test.iam.gserviceaccount.com"


@dataclass
class ServiceAccountKey:
    private_key: rsa.RSAPrivateKey
    public_pem: bytes
    file: Path


@pytest.fixture(scope="module")
def sa_key(tmp_path_factory: pytest.TempPathFactory) -> ServiceAccountKey:
    """A freshly generated service-account key file (what GOOGLE_APPLICATION_CREDENTIALS points at)."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "kapsule-test",
        "private_key_id": "test-key-1",
        "private_key": pem,
        "client_email": SERVICE_ACCOUNT,
        "client_id": "1",
        "token_uri": "http://127.0.0.1:9/token",  # never called: signing needs no token
    }
    path = tmp_path_factory.mktemp("sa") / "key.json"
    path.write_text(json.dumps(info))
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ServiceAccountKey(private_key, public_pem, path)


@pytest.fixture
def gcs_client(
    settings: Settings,
    gcs_emulator: GcsEmulator,
    sa_key: ServiceAccountKey,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[TestClient, RecordingLauncher, Settings]]:
    """The API on a fresh emulated bucket, signing with ``sa_key`` (Application Default Credentials)."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(sa_key.file))  # read by google-auth itself
    on_gcs = replace(
        settings,
        storage_url=f"gs://{gcs_emulator.new_bucket()}",
        upload_secret="a-test-secret-for-gcs-uploads",
        api_keys=None,
    )
    launcher = RecordingLauncher()
    with api_client(launcher, on_gcs) as client:
        yield client, launcher, on_gcs
