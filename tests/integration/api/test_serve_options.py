"""The server's own options, probed over real sockets: a header timeout (issue 22, probe 11) and
forwarded headers trusted only from the configured proxies (probe 14)."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import httpx

from tests.support.paths import REPO
from tests.support.servers import free_port, kapsule_serve, running, server_env


def test_half_sent_requests_are_closed_after_the_header_timeout(tmp_path: Path) -> None:
    env = server_env(tmp_path / "kapsule", KAPSULE_HEADER_TIMEOUT_S="2")
    with kapsule_serve(env, tmp_path / "server.log") as base:
        port = int(base.rsplit(":", 1)[1])
        sockets = []
        for _ in range(150):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never finished
            sockets.append(sock)
        started = time.monotonic()
        closed = 0
        for sock in sockets:
            sock.settimeout(max(0.1, 20.0 - (time.monotonic() - started)))
            try:
                closed += sock.recv(1024) == b""
            except TimeoutError:
                pass
            finally:
                sock.close()
        assert closed == 150, f"{150 - closed} half-sent requests still open after 20 s"
        assert time.monotonic() - started < 10.0
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200  # whole requests still served


def test_forwarded_headers_are_trusted_only_from_the_configured_proxy(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "kapsule.api.serve", "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    env = server_env(tmp_path / "kapsule", KAPSULE_FORWARDED_ALLOW_IPS="10.9.8.7")  # not this client
    with running([*command, "--proxy-headers"], f"{base}/healthz", log, "kapsule api", env=env, cwd=REPO):
        forged = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        assert httpx.get(f"{base}/healthz", headers=forged, timeout=10).status_code == 200
        time.sleep(0.5)  # the access line is written after the response
    lines = [line for line in log.read_text().splitlines() if "GET /healthz" in line]
    assert lines and all("203.0.113.9" not in line for line in lines), lines
    assert any("127.0.0.1:" in line for line in lines)
