"""The one way tests (and benchmarks) start a server: a subprocess on a free loopback port.

``running`` starts a command in its own session (process group), waits until a URL answers 200, and
stops the whole group at the end, so a wrapper script *and* what it starts (the Firestore emulator's
JVM, a job a server launched) go together. ``kapsule_serve`` is ``kapsule serve`` with a Kapsule home
of its own. Nothing here imports pytest: ``benchmarks/api_load.py`` starts its server the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from tests.support.paths import REPO

START_TIMEOUT_S = 90.0  # a JVM or a cold Python start on a busy 2-core machine


class ServerStartError(Exception):
    """The server was started but exited or did not answer; the message holds the end of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_ready(
    url: str,
    *,
    timeout_s: float = START_TIMEOUT_S,
    alive: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    name: str = "server",
) -> None:
    """Return once ``url`` answers 200; ``ServerStartError`` if ``alive`` exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:
            break
        if _answers(url):
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
    state = "exited" if alive is not None and alive.poll() is not None else "did not answer"
    raise ServerStartError(f"the {name} {state} at {url}; its log ends:\n{tail}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the process's whole group: SIGTERM, then SIGKILL for whatever outlives it."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        with contextlib.suppress(ProcessLookupError):  # the leader is gone; no member may outlive it
            os.killpg(process.pid, signal.SIGKILL)
        return


def start(
    command: list[str], log: Path, *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session of its own (``stop`` ends the whole group), output to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=cwd
        )


@contextlib.contextmanager
def running(
    command: list[str],
    ready_url: str,
    log: Path,
    name: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in its own session until the block ends; enter once ``ready_url`` answers."""
    process = start(command, log, env=env, cwd=cwd)
    try:
        wait_until_ready(ready_url, timeout_s=timeout_s, alive=process, log=log, name=name)
        yield process
    finally:
        stop(process)


def server_env(home: Path, **settings: str) -> dict[str, str]:
    """This environment without any ``KAPSULE_*`` variable, pointed at a Kapsule home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPSULE_")}
    env.update(
        KAPSULE_STORAGE_URL=f"file://{home / 'data'}",
        KAPSULE_STATUS_URL=f"sqlite:///{home / 'jobs.db'}",
        KAPSULE_WORK_DIR=str(home / "work"),
        PYTHONPATH=str(REPO),
    )
    env.update(settings)
    return env


@contextlib.contextmanager
def kapsule_serve(env: Mapping[str, str], log: Path) -> Iterator[str]:
    """``kapsule serve`` on a free loopback port with ``env`` (see ``server_env``); yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "kapsule.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/healthz", log, "kapsule serve", env=env, cwd=REPO):
        yield base
