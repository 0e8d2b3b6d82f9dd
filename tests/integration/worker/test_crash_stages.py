"""kill -9 during each stage, then the same job again as Cloud Run's next task attempt.

Each test starts ``python -m kapsule.worker`` as attempt 0 of an execution, waits until the job record
says the stage runs, SIGKILLs the process group and the notebook kernel (a dying container leaves no
chance to clean up), and starts attempt 1 with ``CLOUD_RUN_TASK_ATTEMPT=1``. What a user checks: the
job succeeded, the video is as long as the song and H.264 + AAC, no shot finished before the crash
was made again, the stages before the crash were skipped, and the record counts both attempts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kapsule import media
from kapsule.core.settings import Settings
from kapsule.demo.song import synthesize_song, write_song
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import Storage, open_storage
from kapsule.job.layout import JobLayout
from kapsule.job.record import STAGES, JobRecord, JobState
from tests.support.job_process import kill_tree, start_attempt, wait_for

PARAMS = {"prompt": "paper boats", "max_shots": 4, "aspect_ratio": "16:9", "resolution": "720p"}


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10 s song (120 bpm, five bars): four shots, the whole pipeline in a few seconds per stage."""
    tune = synthesize_song(seed=23, structure=[("verse", 2), ("chorus", 3)])
    return write_song(tune, tmp_path_factory.mktemp("crash-stages") / "song.wav")


def _shot_versions(settings: Settings, storage: Storage, layout: JobLayout) -> dict[str, object]:
    """Each finished shot file and a stamp that changes if it is written again (mtime, or GCS generation)."""
    keys = [k for k in storage.list(layout.shots_prefix) if k.endswith(".mp4")]
    if settings.storage_url.startswith("file://"):
        return {k: storage.local_path(k).stat().st_mtime_ns for k in keys}  # type: ignore[union-attr]
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs

    bucket = gcs.Client(project="t", credentials=AnonymousCredentials()).bucket(
        settings.storage_url.removeprefix("gs://")
    )
    return {k: bucket.get_blob(k).generation for k in keys}


def _crash_and_retry(settings: Settings, song: Path, stage: str, tmp_path: Path) -> None:
    status = open_status_store(settings.status_url)
    storage = open_storage(settings.storage_url)
    job = status.create(JobRecord(params=dict(PARAMS)))
    layout = JobLayout(job.id)
    storage.write_bytes(layout.input_song("wav"), song.read_bytes())
    log = tmp_path / "job.log"

    # Attempt 0, killed while the record says `stage` runs (mid-generation: once a shot is stored).
    first = start_attempt(settings, job.id, log, attempt=0)
    ready: Callable[[JobRecord], bool] = lambda r: r.stage == stage  # noqa: E731
    if stage == "generate":
        ready = lambda r: r.stage == stage and bool(_shot_versions(settings, storage, layout))  # noqa: E731
    try:
        wait_for(status, job.id, ready, first)
    finally:
        kill_tree(first)
    killed = status.get(job.id)
    assert killed.state == JobState.running and killed.attempt == 1 and killed.stage == stage
    before = _shot_versions(settings, storage, layout)
    if stage == "generate":
        assert 0 < len(before) < PARAMS["max_shots"], "the kill should land between shots"

    # Attempt 1 of the same execution, as Cloud Run retries a task that died.
    second = start_attempt(settings, job.id, log, attempt=1)
    assert second.wait(timeout=300) == 0, log.read_text()[-3000:]

    record = status.get(job.id)
    assert record.state == JobState.succeeded and record.error is None, record
    assert record.attempt == 2 and record.execution == "exec-crash" and record.progress == 1.0
    timings = record.model_dump(mode="json")["timings"]
    assert all(timings[s]["skipped"] for s in STAGES[: STAGES.index(stage)]), timings
    assert not timings["assemble"]["skipped"]  # the crash left no video: assembled by the retry
    after = _shot_versions(settings, storage, layout)
    assert {k: after.get(k) for k in before} == before  # no finished shot was made again

    video = tmp_path / "video.mp4"
    open_storage(settings.effective_delivery_url).download_to(layout.video, video)
    info = media.probe(video)
    song_s = media.probe(song).duration
    assert info.duration is not None and song_s is not None and abs(info.duration - song_s) <= 0.05
    assert [v.codec for v in info.real_video] == ["h264"] and [a.codec for a in info.audio] == ["aac"]
    for name in ("01_analyze", "02_storyboard", "03_generate", "04_assemble"):
        assert storage.exists(layout.notebook(name)), name


@pytest.mark.parametrize("stage", STAGES)
def test_kill_9_during_a_stage_then_the_retry_finishes(
    stage: str, kapsule_env: Settings, song: Path, tmp_path: Path
) -> None:
    _crash_and_retry(kapsule_env, song, stage, tmp_path)


def test_kill_9_mid_generation_on_gcs_and_firestore_then_the_retry_finishes(
    cloud_settings: Settings, song: Path, tmp_path: Path
) -> None:
    _crash_and_retry(cloud_settings, song, "generate", tmp_path)
