"""V4 signed URLs, checked the way GCS checks them: the canonical request is rebuilt here from the
URL and headers (GCS's documented V4 rules, not the library's code) and the signature verified with
the signer's public key by google-auth's RSA verifier. The GCS emulator ignores signatures, so it
is only used to show that the URLs address the right object.

On Cloud Run signing goes through the IAM Credentials ``signBlob`` API. That path runs for real
here too: requests reach a local IAM server through an HTTPS proxy with a test CA, exactly as
google-auth's transport would reach Google.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from kapsule.core.errors import ConfigError, InvalidParameter
from kapsule.infra.storage import open_storage
from kapsule.infra.storage.gcs import GcsStorage
from kapsule.infra.storage.signing import UrlSigner
from tests.support.emulators import GcsEmulator
from tests.support.gcs import SERVICE_ACCOUNT, ServiceAccountKey

KEY = "jobs/j0123456789abcdef0123/input/song.mp3"


def _quote(text: str) -> str:
    return quote(text, safe="-_.~")


def verify_v4(url: str, method: str, headers: dict[str, str], public_pem: bytes) -> bool:
    """Rebuild the V4 string-to-sign from the URL and the headers a client sends, check the signature."""
    from google.auth.crypt import RSAVerifier

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(query)
    signature = bytes.fromhex(params.pop("X-Goog-Signature"))
    canonical_query = "&".join(sorted(f"{_quote(k)}={_quote(v)}" for k, v in params.items()))
    signed = params["X-Goog-SignedHeaders"].split(";")
    sent = {"host": parts.netloc} | {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    canonical_headers = "".join(f"{name}:{sent.get(name, '')}\n" for name in signed)
    canonical_request = "\n".join(
        [method, parts.path, canonical_query, canonical_headers, ";".join(signed), "UNSIGNED-PAYLOAD"]
    )
    scope = params["X-Goog-Credential"].split("/", 1)[1]
    string_to_sign = "\n".join(
        [
            "GOOG4-RSA-SHA256",
            params["X-Goog-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    return RSAVerifier.from_string(public_pem).verify(string_to_sign.encode(), signature)


@pytest.fixture
def key_file_storage(
    gcs_emulator: GcsEmulator, sa_key: ServiceAccountKey, monkeypatch: pytest.MonkeyPatch
) -> GcsStorage:
    """gs:// storage whose URLs are signed with the key file of Application Default Credentials."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(sa_key.file))
    storage = open_storage(f"gs://{gcs_emulator.new_bucket()}")
    assert isinstance(storage, GcsStorage)
    return storage


def test_signed_put_binds_type_size_and_expiry(
    key_file_storage: GcsStorage, sa_key: ServiceAccountKey
) -> None:
    before = dt.datetime.now(dt.UTC)
    signed = key_file_storage.signed_upload_url(
        KEY, content_type="audio/mpeg", max_bytes=300_000_000, expires=dt.timedelta(minutes=10)
    )
    params = dict(parse_qsl(urlsplit(signed.url).query))
    assert signed.method == "PUT"
    assert signed.headers == {
        "Content-Type": "audio/mpeg",
        "x-goog-content-length-range": "0,300000000",
        "x-goog-if-generation-match": "0",  # the URL works once: a second PUT fails its precondition
    }
    assert (
        params["X-Goog-SignedHeaders"]
        == "content-type;host;x-goog-content-length-range;x-goog-if-generation-match"
    )
    assert params["X-Goog-Expires"] == "600"
    assert params["X-Goog-Credential"].startswith(SERVICE_ACCOUNT + "/")
    assert before + dt.timedelta(minutes=10) <= signed.expires_at <= before + dt.timedelta(minutes=11)
    assert urlsplit(signed.url).path.endswith("/" + KEY)

    assert verify_v4(signed.url, "PUT", signed.headers, sa_key.public_pem)
    # Another type, a larger size limit, another method or another key all break the signature.
    assert not verify_v4(
        signed.url, "PUT", {**signed.headers, "Content-Type": "text/html"}, sa_key.public_pem
    )
    bigger = {**signed.headers, "x-goog-content-length-range": "0,999999999999"}
    assert not verify_v4(signed.url, "PUT", bigger, sa_key.public_pem)
    assert not verify_v4(signed.url, "GET", signed.headers, sa_key.public_pem)
    assert not verify_v4(signed.url.replace("song.mp3", "evil.mp3"), "PUT", signed.headers, sa_key.public_pem)


def test_a_browser_style_put_and_get_through_signed_urls(key_file_storage: GcsStorage) -> None:
    """The URLs address the right object: upload with the PUT URL, fetch with the GET URL."""
    signed_put = key_file_storage.signed_upload_url(KEY, content_type="audio/mpeg", max_bytes=1000)
    response = httpx.put(signed_put.url, content=b"ID3 fake mp3", headers=signed_put.headers)
    assert response.status_code == 200
    assert key_file_storage.read_bytes(KEY) == b"ID3 fake mp3"

    signed_get = key_file_storage.signed_download_url(KEY, filename="my song.mp3")
    response = httpx.get(signed_get.url)
    assert response.status_code == 200
    assert response.content == b"ID3 fake mp3"
    assert response.headers["content-type"] == "audio/mpeg"


def test_signed_get_is_verifiable_and_names_the_download(
    key_file_storage: GcsStorage, sa_key: ServiceAccountKey
) -> None:
    signed = key_file_storage.signed_download_url("jobs/j/output/video.mp4", filename='clip"; x=1.mp4')
    params = dict(parse_qsl(urlsplit(signed.url).query))
    assert signed.method == "GET"
    assert params["X-Goog-Expires"] == "3600"
    assert params["response-content-disposition"] == 'attachment; filename="clip__ x_1.mp4"'
    assert verify_v4(signed.url, "GET", {}, sa_key.public_pem)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        (
            {"content_type": "audio/mpeg", "max_bytes": 10, "expires": dt.timedelta(days=8)},
            "bad_signing_request",
        ),
        ({"content_type": "text/html\r\nX-Evil: 1", "max_bytes": 10}, "bad_signing_request"),
        ({"content_type": "audio/mpeg", "max_bytes": 0}, "bad_signing_request"),
    ],
)
def test_bad_signing_requests_are_refused(key_file_storage: GcsStorage, kwargs: dict, code: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        key_file_storage.signed_upload_url(KEY, **kwargs)
    assert info.value.code == code


def test_credentials_that_cannot_sign_give_a_config_error(gcs_emulator: GcsEmulator) -> None:
    """A developer's own login (authorized_user) has no key and no service account to sign as."""
    from google.oauth2.credentials import Credentials

    storage = GcsStorage(
        f"gs://{gcs_emulator.new_bucket()}", signer=UrlSigner(Credentials(token="user-token"))
    )
    with pytest.raises(ConfigError, match="cannot sign URLs"):
        storage.signed_download_url("jobs/j/output/video.mp4")


# --- Cloud Run: no key file, sign through the IAM Credentials API --------------------------------


@dataclass
class IamServer:
    """A local IAM Credentials API (signBlob), reached through an HTTPS proxy with a test CA."""

    private_key: rsa.RSAPrivateKey
    requests: list[dict[str, str]] = field(default_factory=list)


def _certificate(
    subject: str, key: rsa.RSAPrivateKey, issuer: x509.Certificate | None, issuer_key: rsa.RSAPrivateKey
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def iam_server(
    sa_key: ServiceAccountKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[IamServer]:
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _certificate("Kapsule test CA", ca_key, None, ca_key)
    host_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    host_cert = _certificate("iamcredentials.googleapis.com", host_key, ca, ca_key)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "host.pem").write_bytes(
        host_cert.public_bytes(serialization.Encoding.PEM)
        + host_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "host.pem")
    state = IamServer(private_key=sa_key.private_key)

    class SignBlob(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append({"path": self.path, "authorization": self.headers["Authorization"]})
            payload = base64.b64decode(body["payload"])
            signature = state.private_key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
            answer = json.dumps({"keyId": "test-key-1", "signedBlob": base64.b64encode(signature).decode()})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer.encode())

        def log_message(self, *args: object) -> None:
            pass

    class Proxy(BaseHTTPRequestHandler):
        def do_CONNECT(self) -> None:
            if self.path != "iamcredentials.googleapis.com:443":
                self.send_error(403)
                return
            self.send_response(200, "Connection established")
            self.end_headers()
            connection = tls.wrap_socket(self.connection, server_side=True)
            SignBlob(connection, self.client_address, self.server)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy = f"http://127.0.0.1:{server.server_address[1]}"
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    yield state
    server.shutdown()
    server.server_close()


def test_on_cloud_run_urls_are_signed_by_the_iam_api(
    gcs_emulator: GcsEmulator, sa_key: ServiceAccountKey, iam_server: IamServer
) -> None:
    """Metadata-server credentials have a token and an e-mail but no key: signBlob signs for them."""
    from google.auth import compute_engine

    credentials = compute_engine.Credentials(service_account_email=SERVICE_ACCOUNT)
    credentials.token = "metadata-access-token"
    credentials.expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)
    storage = GcsStorage(f"gs://{gcs_emulator.new_bucket()}", signer=UrlSigner(credentials))

    signed = storage.signed_upload_url(KEY, content_type="audio/wav", max_bytes=5_000_000)

    assert iam_server.requests == [
        {
            "path": f"/v1/projects/-/serviceAccounts/{SERVICE_ACCOUNT}:signBlob?alt=json",
            "authorization": "Bearer metadata-access-token",
        }
    ]
    assert dict(parse_qsl(urlsplit(signed.url).query))["X-Goog-Credential"].startswith(SERVICE_ACCOUNT + "/")
    assert verify_v4(signed.url, "PUT", signed.headers, sa_key.public_pem)
    assert not verify_v4(
        signed.url, "PUT", {**signed.headers, "Content-Type": "audio/mpeg"}, sa_key.public_pem
    )
