"""The job entrypoint as the platform runs it: a subprocess whose exit code is the retry contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kapsule.core.settings import Settings
from kapsule.demo.song import synthesize_song, write_song
from kapsule.infra.launch import make_launcher, settings_env
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.layout import JobLayout
from kapsule.job.record import JobRecord, JobState
from kapsule.worker.run_job import local_command
from tests.support.paths import REPO


@pytest.fixture(scope="module")
def short_song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8 s song: enough music for two shots, short enough to run the whole pipeline quickly."""
    song = synthesize_song(seed=5, structure=[("verse", 2), ("chorus", 2)])
    return write_song(song, tmp_path_factory.mktemp("song") / "short.wav")


def _create_job(settings: Settings, song_bytes: bytes, ext: str = "wav") -> JobRecord:
    record = JobRecord(
        params={"prompt": "neon rain", "max_shots": 2, "aspect_ratio": "16:9", "resolution": "720p"}
    )
    open_storage(settings.storage_url).write_bytes(JobLayout(record.id).input_song(ext), song_bytes)
    return open_status_store(settings.status_url).create(record)


def _run_entrypoint(job_id: str | None, **env: str) -> tuple[int, list[dict]]:  # type: ignore[type-arg]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUD_RUN_")}
    full_env.pop("KAPSULE_JOB_ID", None)
    if job_id:
        full_env["KAPSULE_JOB_ID"] = job_id
    full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "kapsule.worker"],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in proc.stdout, proc.stdout
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert all({"severity", "message", "job_id", "stage"} <= set(e) for e in events), events
    return proc.returncode, events


def test_non_retryable_failure_is_recorded_and_exits_0(kapsule_env: Settings) -> None:
    job = _create_job(kapsule_env, b"just some text, certainly not a song\n" * 100)

    code, events = _run_entrypoint(job.id)

    assert code == 0
    record = open_status_store(kapsule_env.status_url).get(job.id)
    assert record.state == JobState.failed
    assert record.error is not None
    assert (record.error.code, record.error.stage) == ("not_audio", "analyze")
    assert record.error.message.startswith("01_analyze failed in cell [")
    assert "NotAudio: This file is a text file, not audio." in record.error.message
    assert record.attempt == 1
    assert events[-1]["severity"] == "ERROR" and events[-1]["code"] == "not_audio"

    # A finished job is never reopened: a late or duplicate attempt does nothing and succeeds.
    again, events = _run_entrypoint(job.id, CLOUD_RUN_EXECUTION="exec-1", CLOUD_RUN_TASK_ATTEMPT="1")
    assert again == 0
    assert "nothing to do" in events[-1]["message"]
    assert open_status_store(kapsule_env.status_url).get(job.id).attempt == 1


def test_retryable_failure_exits_1_and_the_retry_finishes_the_job(
    kapsule_env: Settings, short_song: Path, tmp_path: Path
) -> None:
    job = _create_job(kapsule_env, short_song.read_bytes())
    status = open_status_store(kapsule_env.status_url)
    storage = open_storage(kapsule_env.storage_url)
    layout = JobLayout(job.id)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the delivery folder should be")

    # Attempt 0: the delivery store cannot be written (a storage failure a retry may not see again).
    code, events = _run_entrypoint(
        job.id,
        CLOUD_RUN_EXECUTION="exec-1",
        CLOUD_RUN_TASK_ATTEMPT="0",
        KAPSULE_DELIVERY_URL=f"file://{blocked / 'delivery'}",
    )
    assert code == 1
    record = status.get(job.id)
    assert record.state == JobState.running and record.error is None and record.attempt == 1
    assert events[-1]["code"] == "storage_failed" and events[-1]["retryable"] is True
    assert events[-1]["stage"] == "assemble"
    shots = {key: storage.local_path(key).stat().st_mtime_ns for key in storage.list(layout.shots_prefix)}  # type: ignore[union-attr]
    assert any(key.endswith(".mp4") for key in shots) and layout.manifest in shots

    # Attempt 1: same execution, delivery fixed; the finished stages are skipped.
    delivery = tmp_path / "delivery"
    code, events = _run_entrypoint(
        job.id,
        CLOUD_RUN_EXECUTION="exec-1",
        CLOUD_RUN_TASK_ATTEMPT="1",
        KAPSULE_DELIVERY_URL=f"file://{delivery}",
    )
    assert code == 0, events
    record = status.get(job.id)
    assert record.state == JobState.succeeded and record.attempt == 2 and record.progress == 1.0
    timings = record.model_dump(mode="json")["timings"]
    assert [s for s, t in timings.items() if t["skipped"]] == ["analyze", "storyboard", "generate"]
    assert timings["assemble"]["skipped"] is False
    assert (delivery / layout.video).is_file()
    assert {
        key: storage.local_path(key).stat().st_mtime_ns for key in storage.list(layout.shots_prefix)
    } == shots  # type: ignore[union-attr]


def test_missing_job_id_exits_2(kapsule_env: Settings) -> None:
    code, events = _run_entrypoint(None)

    assert code == 2
    assert events == [
        {
            "severity": "ERROR",
            "message": "KAPSULE_JOB_ID is not set: nothing to run",
            "job_id": None,
            "stage": None,
        }
    ]


def test_settings_survive_the_trip_to_a_child_process(tmp_path: Path) -> None:
    """A job or kernel started with ``settings_env`` builds exactly the parent's settings."""
    settings = Settings(
        storage_url=f"file://{tmp_path / 'data'}", video_crf=31, work_dir=tmp_path / "work", fps=30
    )
    set_vars, unset = settings_env(settings)
    env = {k: v for k, v in os.environ.items() if k not in unset} | set_vars
    code = "from kapsule.core.settings import Settings; print(Settings().model_dump_json())"

    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)

    assert Settings.model_validate_json(proc.stdout).model_dump() == settings.model_dump()


def test_local_launcher_logs_to_the_job_log_and_reports_the_exit(kapsule_env: Settings) -> None:
    launcher = make_launcher("local", kapsule_env, local_command())
    job_id = "j" + "a" * 20  # no such job: the entrypoint says so and exits

    execution = launcher.launch(job_id)
    deadline = time.monotonic() + 60
    while launcher.poll(execution) is None and time.monotonic() < deadline:
        time.sleep(0.1)

    assert launcher.poll(execution) == 2
    log = (kapsule_env.work_dir / job_id / "job.log").read_text()
    (event,) = [json.loads(line) for line in log.splitlines()]
    assert event["severity"] == "ERROR" and event["code"] == "job_not_found"
    launcher.cancel(execution)  # cancelling a finished execution is harmless
