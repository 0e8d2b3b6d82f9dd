"""The job entrypoint's control of its job: taking it once, beating, stopping on cancel, failing loudly.

Taking a job is a compare-and-set inside the status store's transaction: two runners that both read
the job as free (the racers here are made to read before either writes) cannot both take it, on
SQLite and on the Firestore emulator. A cancel written to the record (what the API does before it
signals the process) is seen between stages and between shots: the job ends ``cancelled``, never
``failed``, and the process exits 0 so Cloud Run does not retry it.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import nbformat
import pytest

from kapsule.control.service import Heartbeat, JobService
from kapsule.core.settings import Settings, TaskEnv
from kapsule.demo.song import synthesize_song, write_song
from kapsule.infra.context import Stores
from kapsule.infra.status import StatusStore, open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.artifacts import Storyboard
from kapsule.job.layout import JobLayout
from kapsule.job.record import JobRecord, JobState, utcnow
from kapsule.job.update import JobUpdate
from tests.support.job_process import start_attempt, wait_for

# ------------------------------------------------------------------------------ taking the job


@pytest.fixture(params=["sqlite", "firestore"])
def status_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    emulator = request.getfixturevalue("firestore_emulator")
    emulator.reset()
    return f"firestore://{emulator.project}/jobs"


def _stores(store: StatusStore, settings: Settings) -> Stores:
    storage = open_storage(settings.storage_url)
    return Stores(settings, storage, storage, store)


def take_job(
    store: StatusStore, job_id: str, settings: Settings, task: TaskEnv | None = None
) -> JobRecord | None:
    """The job service's claim, on ``store`` (a real store, or one that makes racers read together)."""
    return JobService(_stores(store, settings)).claim(job_id, task or TaskEnv())


class ReadTogether:
    """A real status store whose ``get`` returns only once every racer has read: all decide alike.

    This makes the worst interleaving certain instead of lucky: each runner sees the job free, so
    only the store's transaction can stop the second one.
    """

    def __init__(self, store: StatusStore, barrier: threading.Barrier) -> None:
        self.store, self.barrier, self.url = store, barrier, store.url

    def get(self, job_id: str) -> JobRecord:
        record = self.store.get(job_id)
        self.barrier.wait(timeout=30)
        return record

    def update(self, job_id: str, change: JobUpdate) -> JobRecord:
        return self.store.update(job_id, change)


# (state of the job before the race, the Cloud Run task attempt of both racers)
SCENARIOS = {
    "queued": (None, 0),
    "retry of a running job": (JobUpdate(state=JobState.running, attempt=1, heartbeat_at=utcnow()), 1),
    "running with a stale heartbeat": (
        JobUpdate(state=JobState.running, attempt=1, heartbeat_at=utcnow() - timedelta(minutes=10)),
        0,
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_two_runners_racing_for_a_job_take_it_exactly_once(
    scenario: str, status_url: str, kapsule_env: Settings
) -> None:
    before, attempt = SCENARIOS[scenario]
    store = open_status_store(status_url)
    job = store.create(JobRecord())
    if before is not None:
        job = store.update(job.id, before)
    task = TaskEnv(cloud_run_task_attempt=attempt, cloud_run_execution="exec-1")
    barrier = threading.Barrier(2)
    taken: list[JobRecord | None] = [None, None]
    errors: list[BaseException] = []

    def runner(i: int) -> None:
        try:  # each runner has its own client, as two processes would
            racer = ReadTogether(open_status_store(status_url), barrier)
            taken[i] = take_job(racer, job.id, kapsule_env, task)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert not errors, errors
    winners = [r for r in taken if r is not None]
    assert len(winners) == 1, taken
    final = store.get(job.id)
    assert final.state == JobState.running and final.attempt == job.attempt + 1
    assert final.execution == "exec-1" and winners[0].attempt == final.attempt


def test_a_running_job_with_a_live_heartbeat_is_not_taken_by_a_first_attempt(
    status_url: str, kapsule_env: Settings
) -> None:
    store = open_status_store(status_url)
    job = store.create(JobRecord())
    store.update(job.id, JobUpdate(state=JobState.running, attempt=1, heartbeat_at=utcnow()))

    assert take_job(store, job.id, kapsule_env) is None
    assert store.get(job.id).attempt == 1


def test_the_heartbeat_beats_while_the_job_runs_and_stops_when_it_finishes(kapsule_env: Settings) -> None:
    store = open_status_store(kapsule_env.status_url)
    job = store.create(JobRecord())
    taken = take_job(store, job.id, kapsule_env)
    assert taken is not None and taken.heartbeat_at is not None
    beats = [taken.heartbeat_at]
    heartbeat = Heartbeat(_stores(store, kapsule_env), job.id, interval=0.05)
    heartbeat.start()
    try:
        deadline = time.monotonic() + 20
        while len(set(beats)) < 3 and time.monotonic() < deadline:
            beats.append(store.get(job.id).heartbeat_at)
            time.sleep(0.02)
        assert len(set(beats)) >= 3 and beats == sorted(beats)  # type: ignore[type-var]

        store.update(job.id, JobUpdate(state=JobState.cancelled))
        heartbeat.join(timeout=10)  # a finished job refuses the beat: the thread ends by itself
        assert not heartbeat.is_alive()
    finally:
        heartbeat.stopped.set()
    assert store.get(job.id).state == JobState.cancelled


# ---------------------------------------------------------------------------------- cancelling


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 s at 120 BPM: at least four shots (none is longer than 8 s), so two in flight (the local
    renderer's workers) leave at least one to skip."""
    tune = synthesize_song(seed=31, structure=[("verse", 4), ("chorus", 4), ("verse", 4), ("chorus", 4)])
    return write_song(tune, tmp_path_factory.mktemp("control") / "song.wav")


def _new_job(settings: Settings, song_bytes: bytes, max_shots: int = 5) -> JobRecord:
    record = JobRecord(
        params={
            "prompt": "tin soldiers",
            "max_shots": max_shots,
            "aspect_ratio": "16:9",
            "resolution": "720p",
        }
    )
    open_storage(settings.storage_url).write_bytes(JobLayout(record.id).input_song("wav"), song_bytes)
    return open_status_store(settings.status_url).create(record)


def _events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_a_cancel_during_generation_stops_between_shots_and_the_job_ends_cancelled(
    kapsule_env: Settings, song: Path, tmp_path: Path
) -> None:
    job = _new_job(kapsule_env, song.read_bytes(), max_shots=6)
    status = open_status_store(kapsule_env.status_url)
    storage = open_storage(kapsule_env.storage_url)
    layout = JobLayout(job.id)
    log = tmp_path / "job.log"
    proc = start_attempt(kapsule_env, job.id, log)

    def a_shot_is_stored(r: JobRecord) -> bool:
        return r.stage == "generate" and any(k.endswith(".mp4") for k in storage.list(layout.shots_prefix))

    wait_for(status, job.id, a_shot_is_stored, proc)
    # The record alone says cancelled: no signal is sent to the job's process.
    status.update(job.id, JobUpdate(state=JobState.cancelled, message="cancelled by the test"))

    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    record = status.get(job.id)
    assert record.state == JobState.cancelled and record.error is None and record.stage == "generate"
    board = Storyboard.model_validate_json(storage.read_bytes(layout.storyboard))
    shots = [k for k in storage.list(layout.shots_prefix) if k.endswith(".mp4")]
    assert 0 < len(shots) < len(board.shots), "generation should stop before the last shot"
    assert not storage.exists(layout.notebook("04_assemble"))
    assert not open_storage(kapsule_env.effective_delivery_url).exists(layout.video)
    notebook = nbformat.reads(storage.read_bytes(layout.notebook("03_generate")).decode(), as_version=4)
    assert "JobCancelled" in json.dumps(notebook)  # the executed notebook says why it stopped
    assert _events(log)[-1]["message"] == "job cancelled"


def test_a_cancel_during_a_stage_is_seen_before_the_next_stage(
    kapsule_env: Settings, song: Path, tmp_path: Path
) -> None:
    job = _new_job(kapsule_env, song.read_bytes())
    status = open_status_store(kapsule_env.status_url)
    storage = open_storage(kapsule_env.storage_url)
    layout = JobLayout(job.id)
    log = tmp_path / "job.log"
    proc = start_attempt(kapsule_env, job.id, log)

    wait_for(status, job.id, lambda r: r.stage == "storyboard", proc)
    status.update(job.id, JobUpdate(state=JobState.cancelled))

    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    record = status.get(job.id)
    assert record.state == JobState.cancelled and record.error is None and record.stage == "storyboard"
    assert storage.exists(layout.notebook("01_analyze"))
    assert not storage.exists(layout.notebook("03_generate"))
    assert not [k for k in storage.list(layout.shots_prefix) if k.endswith(".mp4")]
    assert _events(log)[-1]["message"] == "job cancelled"


# ------------------------------------------------------------------ a failing cell, on the cloud


def test_a_failing_cell_leaves_its_executed_notebook_in_the_bucket_and_is_named(
    cloud_settings: Settings, song: Path, tmp_path: Path
) -> None:
    whole = song.read_bytes()
    job = _new_job(cloud_settings, whole[: len(whole) // 3])  # a WAV cut off: the analyze cell raises
    log = tmp_path / "job.log"

    proc = start_attempt(cloud_settings, job.id, log, attempt=0)

    assert proc.wait(timeout=180) == 0, log.read_text()[-3000:]  # not retryable: recorded, exit 0
    record = open_status_store(cloud_settings.status_url).get(job.id)
    assert record.state == JobState.failed and record.error is not None
    assert (record.error.code, record.error.stage) == ("undecodable", "analyze")
    storage = open_storage(cloud_settings.storage_url)
    layout = JobLayout(job.id)
    assert storage.local_path(layout.notebook("01_analyze")) is None  # in the bucket, not on disk
    nb = nbformat.reads(storage.read_bytes(layout.notebook("01_analyze")).decode(), as_version=4)
    assert nb.metadata.papermill.exception is True
    (failed,) = [c for c in nb.cells if c.cell_type == "code" and c.metadata.papermill.status == "failed"]
    assert record.error.message.startswith(f"01_analyze failed in cell [{failed.execution_count}]")
    assert b"Undecodable" in storage.read_bytes(layout.notebook("01_analyze", "html"))
    assert not storage.exists(layout.notebook("02_storyboard"))
