"""Decompression bombs against a real ``kapsule serve``: refused as too long before any job exists,
with the server's peak memory barely moved (probe 3 of issue 22: it rose from 423 MB to 1.13 GB)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import expect_error, sine_wav
from tests.support.bombs import decoded_seconds, flac_bomb
from tests.support.paths import REPO
from tests.support.servers import free_port, running, server_env

MAX_RISE_BYTES = 100 * 1024 * 1024

pytestmark = pytest.mark.xdist_group("memory")  # a worker of its own: no neighbour in the measure


def _peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc: this test needs Linux")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """``kapsule serve`` (open mode) on a free port; yields its URL and its process id."""
    port = free_port()
    command = [sys.executable, "-m", "kapsule.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    env = server_env(tmp_path / "kapsule")
    log = tmp_path / "server.log"
    with running(command, f"{base}/healthz", log, "kapsule serve", env=env, cwd=REPO) as process:
        yield base, process.pid


def _submit(client: httpx.Client, path: Path) -> httpx.Response:
    data = path.read_bytes()
    body = {"filename": path.name, "content_type": "audio/flac", "size": len(data)}
    ticket = client.post("/v1/uploads", json=body)
    assert ticket.status_code == 201, ticket.text
    put = client.put(ticket.json()["url"], content=data, headers=ticket.json()["headers"])
    assert put.status_code == 200, put.text
    return client.post("/v1/jobs", json={"upload_id": ticket.json()["upload_id"]})


def test_flac_bombs_are_refused_as_too_long_in_bounded_memory(
    server: tuple[str, int], tmp_path: Path
) -> None:
    base, pid = server
    small = flac_bomb(tmp_path / "bomb.flac", 18 * 1024)  # its header says 60 s
    large = flac_bomb(tmp_path / "bomb-large.flac", 4_400_000)  # past the 4 MiB head, "60 s" too
    assert decoded_seconds(small) > 2 * 3600 and decoded_seconds(large) > 500 * 3600
    with httpx.Client(base_url=base, timeout=120) as client:
        # Warm up on a song that is refused for another reason, so imports and caches are counted.
        expect_error(_submit(client, sine_wav(tmp_path / "short.wav", 2.0)), 422, "too_short")
        before = _peak_rss(pid)
        answers = [_submit(client, bomb) for bomb in (small, large)]
        rise = _peak_rss(pid) - before
        jobs = client.get("/v1/jobs").json()["jobs"]
    assert rise <= MAX_RISE_BYTES, f"the server's peak memory rose by {rise / 2**20:.0f} MB"
    for answer in answers:
        assert "longer than 10:00" in expect_error(answer, 422, "too_long")
    assert jobs == [], "no job may exist for a refused song"
