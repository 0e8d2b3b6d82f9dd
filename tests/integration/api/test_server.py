"""A real ``kapsule serve`` on a loopback port: bodies refused before they are read, access logs without
signatures, a cap on each owner's open event streams."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from kapsule.infra.status import open_status_store
from kapsule.job.record import JobRecord
from tests.support.api import (
    expect_error,
    sine_wav,
)
from tests.support.servers import kapsule_serve, server_env


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sine_wav(tmp_path_factory.mktemp("songs") / "song.wav", 6.0)


# ---------------------------------------------------------------------- a real server: body, logs


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``kapsule serve`` on a free loopback port (open mode); yields its URL and its log file."""
    log = tmp_path / "server.log"
    api_settings = server_env(tmp_path / "kapsule", KAPSULE_MAX_EVENT_STREAMS_PER_OWNER="1")
    with kapsule_serve(api_settings, log) as base:
        yield base, log


def _raw(base: str, head: str, body: bytes) -> bytes:
    """Send ``head`` and ``body`` (less than the head announces) and return what the server answers."""
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)  # a server waiting for the rest of the body times out here
            if not chunk:
                break
            answer += chunk
        return answer


def test_a_50_mb_json_body_is_refused_before_it_is_read(server: tuple[str, Path]) -> None:
    base, _ = server
    head = (
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {50 * 1024 * 1024}\r\n"
    )
    assert _raw(base, head, b'{"upload_id": "' + b"x" * 1000).startswith(b"HTTP/1.1 413")
    chunk = b"x" * 65536
    chunked = "POST /v1/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20))  # 1.25 MiB, no end chunk
    assert _raw(base, chunked + "Transfer-Encoding: chunked\r\n", body).startswith(b"HTTP/1.1 413")


def test_access_logs_carry_no_signatures(server: tuple[str, Path], song: Path) -> None:
    base, log_path = server
    data = song.read_bytes()
    ticket = httpx.post(
        f"{base}/v1/uploads", json={"filename": "s.wav", "content_type": "audio/wav", "size": len(data)}
    ).json()
    assert httpx.put(ticket["url"], content=data, headers=ticket["headers"]).status_code == 200
    signature = parse_qs(urlsplit(ticket["url"]).query)["signature"][0]
    time.sleep(0.5)  # the access line is written after the response
    log = log_path.read_text()
    assert f"PUT /v1/uploads/{ticket['upload_id']}?" in log
    assert signature not in log and "signature=[redacted]" in log
    assert json.dumps(signature) not in log


def test_each_owner_has_a_cap_on_open_streams(server: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = server
    job = open_status_store(f"sqlite:///{tmp_path / 'kapsule' / 'jobs.db'}").create(JobRecord())
    with httpx.stream("GET", f"{base}/v1/jobs/{job.id}/events", timeout=10) as held:
        lines = held.iter_lines()  # kept: a dropped line iterator closes the response
        assert next(lines).startswith("retry:")  # the stream runs and holds the owner's one slot (cap 1)
        second = httpx.get(f"{base}/v1/jobs/{job.id}/events", timeout=10)
        expect_error(second, 429, "too_many_streams")
    for _ in range(100):  # the client went away: the server ends its stream and frees the slot
        with httpx.stream("GET", f"{base}/v1/jobs/{job.id}/events", timeout=10) as again:
            if again.status_code == 200:
                break
        time.sleep(0.05)
    assert again.status_code == 200


def test_a_client_that_drops_mid_put_is_one_4xx_line_not_a_traceback(
    server: tuple[str, Path], song: Path
) -> None:
    """Issue 22, probe 10: a dropped PUT was logged as a 500 with a full traceback."""
    base, log_path = server
    data = song.read_bytes()
    ticket = httpx.post(
        f"{base}/v1/uploads", json={"filename": "s.wav", "content_type": "audio/wav", "size": len(data)}
    ).json()
    target = ticket["url"].removeprefix(base)
    head = (
        f"PUT {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(head.encode() + data[: len(data) // 2])
        time.sleep(0.5)
    deadline = time.monotonic() + 10
    while "upload_interrupted" not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    log = log_path.read_text()
    assert "upload_interrupted" in log and "Traceback" not in log and " 500" not in log, log[-3000:]
    retry = httpx.put(ticket["url"], content=data, headers=ticket["headers"])  # the URL still works
    assert retry.status_code == 200, retry.text
