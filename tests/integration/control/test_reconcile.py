"""Reconciling jobs whose runner died silently: the local launcher, ``kapsule reconcile`` and the API.

A job killed -9 cannot record its own death; its heartbeat goes stale and its process is gone. The
launcher then says the execution vanished, and the job is marked failed, once, by whoever looks
first (the CLI command or ``GET /v1/jobs/{id}``). A job with a live process, or a fresh heartbeat,
is left alone. Processes here are real (``sleep``), killed for real.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kapsule.api.deps import get_launcher
from kapsule.api.main import create_app
from kapsule.cli.main import app as cli_app
from kapsule.core.settings import Settings
from kapsule.infra.launch import make_launcher
from kapsule.infra.launch.reconcile import heartbeat_stale
from kapsule.infra.status import StatusStore, open_status_store
from kapsule.job.record import JobRecord, JobState, utcnow
from kapsule.job.update import JobUpdate
from kapsule.worker.run_job import local_command
from tests.support.api import (
    SECRET,
    RecordingLauncher,
    sine_wav,
    upload_file,
)
from tests.support.settings import replace


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen(["sleep", "60"])
    proc.kill()
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


def _live_pid(processes: list[subprocess.Popen[bytes]]) -> int:
    proc = subprocess.Popen(["sleep", "60"])
    processes.append(proc)
    return proc.pid


def _running(store: StatusStore, pid: int, silent_s: float, owner: str = "local") -> JobRecord:
    job = store.create(JobRecord(owner=owner))
    beat = utcnow() - timedelta(seconds=silent_s)
    return store.update(
        job.id,
        JobUpdate(
            state=JobState.running,
            stage="generate",
            execution=f"local-{pid}",
            heartbeat_at=beat,
            attempt=1,
        ),
    )


def test_the_local_launcher_reports_a_live_a_finished_and_a_vanished_process(settings: Settings) -> None:
    launcher = make_launcher("local", settings, local_command())
    proc = subprocess.Popen(["sleep", "60"])
    try:
        running = launcher.status(f"local-{proc.pid}")  # type: ignore[attr-defined]
        assert running is not None and not running.done
    finally:
        proc.kill()
        proc.wait()
    assert launcher.status(f"local-{proc.pid}") is None  # type: ignore[attr-defined]

    execution = launcher.launch("j" + "b" * 20)  # no such job: the entrypoint exits 2
    deadline = time.monotonic() + 60
    while launcher.poll(execution) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    ended = launcher.status(execution)  # type: ignore[attr-defined]
    assert ended is not None and ended.done and not ended.succeeded and "exit code 2" in ended.message


def test_kapsule_reconcile_fails_only_the_stale_jobs_whose_process_is_gone(
    kapsule_env: Settings, processes: list[subprocess.Popen[bytes]]
) -> None:
    store = open_status_store(kapsule_env.status_url)
    dead = _running(store, _dead_pid(), silent_s=300)
    alive = _running(store, _live_pid(processes), silent_s=300)  # slow, not dead
    fresh = _running(store, _dead_pid(), silent_s=0)  # died a moment ago: not stale yet
    done = store.update(store.create(JobRecord()).id, JobUpdate(state=JobState.cancelled))
    foreign = store.update(_running(store, 1, silent_s=300).id, JobUpdate(execution="exec-1"))  # Cloud Run's

    result = CliRunner().invoke(cli_app, ["reconcile"])

    assert result.exit_code == 0, result.output
    assert dead.id in result.output and alive.id in result.output and fresh.id not in result.output
    record = store.get(dead.id)
    assert record.state == JobState.failed and record.error is not None
    assert (record.error.code, record.error.stage) == ("execution_lost", "generate")
    assert store.get(alive.id).state == JobState.running
    assert store.get(fresh.id).state == JobState.running
    assert store.get(done.id).state == JobState.cancelled
    assert store.get(foreign.id).state == JobState.running  # not this launcher's to judge

    # Named explicitly with a shorter tolerance, the fresh one is reconciled too.
    result = CliRunner().invoke(cli_app, ["reconcile", fresh.id, "--stale-after", "0"])
    assert result.exit_code == 0, result.output
    assert store.get(fresh.id).state == JobState.failed


def test_reading_a_silent_job_through_the_api_reconciles_it(settings: Settings) -> None:
    store = open_status_store(settings.status_url)
    dead = _running(store, _dead_pid(), silent_s=300)
    fresh = _running(store, _dead_pid(), silent_s=0)
    assert heartbeat_stale(dead) and not heartbeat_stale(fresh)

    with TestClient(
        create_app(settings), base_url="http://127.0.0.1"
    ) as client:  # the configured (local) launcher
        got = client.get(f"/v1/jobs/{dead.id}")
        untouched = client.get(f"/v1/jobs/{fresh.id}")

    assert got.status_code == 200
    assert got.json()["state"] == "failed" and got.json()["error"]["code"] == "execution_lost"
    assert store.get(dead.id).state == JobState.failed
    assert untouched.json()["state"] == "running"


def test_the_request_trace_header_is_kept_for_the_job_logs(settings: Settings, tmp_path: Path) -> None:
    launcher = RecordingLauncher()
    app = create_app(replace(settings, upload_secret=SECRET))
    app.dependency_overrides[get_launcher] = lambda: launcher
    header = "105445aa7843bc8bf206b12000100000/1;o=1"
    with TestClient(app, base_url="http://127.0.0.1") as client:
        upload = upload_file(client, sine_wav(tmp_path / "song.wav", 6.0))
        created = client.post(
            "/v1/jobs", json={"upload_id": upload}, headers={"X-Cloud-Trace-Context": header}
        )
        plain = client.post(
            "/v1/jobs", json={"upload_id": upload_file(client, sine_wav(tmp_path / "b.wav", 6.0))}
        )

    assert created.status_code == 202, created.text
    assert created.json()["trace_header"] == header
    assert plain.json()["trace_header"] is None
