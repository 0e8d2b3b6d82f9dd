"""Crash recovery as Cloud Run runs it: the task is killed -9 mid-generation, and the retry finishes.

The launcher is the real cloudrun:// launcher; the local Admin API server starts each attempt as a
real ``python -m kapsule.worker`` process and retries a non-zero exit, as Cloud Run does. Storage and
status are the local backends (files, SQLite).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from kapsule import media
from kapsule.core.settings import Settings
from kapsule.demo.song import synthesize_song, write_song
from kapsule.infra.launch import make_launcher, settings_env
from kapsule.infra.launch.cloudrun import reconcile
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.layout import JobLayout
from kapsule.job.record import JobRecord, JobState
from kapsule.job.update import JobUpdate
from tests.support.fake_cloudrun import FakeCloudRun
from tests.support.fake_google import FakeGoogle

JOB = "projects/p/locations/l/jobs/kapsule"


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tune = synthesize_song(seed=11, structure=[("verse", 2), ("chorus", 2), ("verse", 2)])
    return write_song(tune, tmp_path_factory.mktemp("crash") / "song.wav")


def test_a_task_killed_mid_generation_is_retried_and_no_finished_shot_is_made_again(
    kapsule_env: Settings, fake_cloudrun: FakeCloudRun, song: Path
) -> None:
    settings = kapsule_env.model_copy(update={"cloudrun_endpoint": fake_cloudrun.url})
    status = open_status_store(settings.status_url)
    storage = open_storage(settings.storage_url)
    job = status.create(
        JobRecord(
            params={"prompt": "paper boats", "max_shots": 5, "aspect_ratio": "16:9", "resolution": "720p"}
        )
    )
    layout = JobLayout(job.id)
    storage.write_bytes(layout.input_song("wav"), song.read_bytes())
    fake_cloudrun.extra_env = settings_env(settings)[0]
    fake_cloudrun.command = [sys.executable, "-m", "kapsule.worker"]
    launcher = make_launcher(f"cloudrun://{JOB}", settings)

    execution = launcher.launch(job.id)
    status.update(job.id, JobUpdate(execution=execution))
    ex = fake_cloudrun.executions[execution]

    # Kill attempt 0 with SIGKILL as soon as the first shot is on disk (no cleanup can run).
    deadline = time.monotonic() + 240
    finished_before: dict[str, int] = {}
    while time.monotonic() < deadline and not finished_before:
        shots = [k for k in storage.list(layout.shots_prefix) if k.endswith(".mp4")]
        if shots and ex.proc is not None and not ex.exit_codes:
            ex.proc.send_signal(signal.SIGKILL)
            finished_before = {k: storage.local_path(k).stat().st_mtime_ns for k in shots}  # type: ignore[union-attr]
        time.sleep(0.05)
    assert finished_before, "no shot appeared before the deadline"

    ended = fake_cloudrun.wait(execution, timeout=300)

    assert ended.exit_codes == [-signal.SIGKILL, 0]
    record = reconcile(status, launcher, job.id)
    assert record.state == JobState.succeeded, record.error
    assert record.attempt == 2 and record.execution == execution
    timings = record.model_dump(mode="json")["timings"]
    assert timings["analyze"]["skipped"] and timings["storyboard"]["skipped"]
    # Every shot finished before the kill was kept as it was, not requested again.
    for key, mtime in finished_before.items():
        assert storage.local_path(key).stat().st_mtime_ns == mtime, key  # type: ignore[union-attr]
    video = Path(settings.effective_delivery_url.removeprefix("file://")) / layout.video
    probed = media.probe(video)
    assert abs(probed.duration - 12.0) < 0.5


def test_a_task_killed_mid_veo_generation_never_pays_twice_for_a_finished_shot(
    vertex_settings: Settings, fake_google: FakeGoogle, fake_cloudrun: FakeCloudRun, song: Path
) -> None:
    """The same crash with Veo behind a local server that counts requests: finished shots are not re-asked."""
    from kapsule.job.artifacts import ShotManifest, Storyboard

    settings = vertex_settings.model_copy(
        update={
            "cloudrun_endpoint": fake_cloudrun.url,
            "video_model": "veo-3.0-fast-generate-001",
            "prompt_model": "gemini-2.5-flash",
            "veo_concurrency": 1,  # one shot at a time: the kill lands between finished and pending shots
            "veo_poll_interval_s": 0.05,
            "veo_poll_max_interval_s": 0.1,
            "veo_requests_per_minute": 60000.0,
        }
    )
    fake_google.hold_s = 0.3
    status = open_status_store(settings.status_url)
    storage = open_storage(settings.storage_url)
    job = status.create(
        JobRecord(
            params={"prompt": "a violinist", "max_shots": 5, "aspect_ratio": "16:9", "budget_usd": 50.0}
        )
    )
    layout = JobLayout(job.id)
    storage.write_bytes(layout.input_song("wav"), song.read_bytes())
    fake_cloudrun.extra_env = settings_env(settings)[0]
    fake_cloudrun.command = [sys.executable, "-m", "kapsule.worker"]
    launcher = make_launcher(f"cloudrun://{JOB}", settings)

    execution = launcher.launch(job.id)
    ex = fake_cloudrun.executions[execution]
    deadline = time.monotonic() + 240
    done_before: set[str] = set()
    while time.monotonic() < deadline and not done_before:
        shots = {k for k in storage.list(layout.shots_prefix) if k.endswith(".mp4")}
        if shots and ex.proc is not None and not ex.exit_codes:
            ex.proc.send_signal(signal.SIGKILL)
            done_before = shots
        time.sleep(0.05)
    assert done_before, "no shot appeared before the deadline"

    ended = fake_cloudrun.wait(execution, timeout=300)

    assert ended.exit_codes == [-signal.SIGKILL, 0]
    record = status.get(job.id)
    assert record.state == JobState.succeeded, record.error
    assert record.attempt == 2
    manifest = ShotManifest.model_validate_json(storage.read_bytes(layout.manifest))
    prompts = {
        s.index: s.prompt for s in Storyboard.model_validate_json(storage.read_bytes(layout.storyboard)).shots
    }
    assert len(set(prompts.values())) == len(prompts)  # one prompt per shot: requests can be told apart
    asked = [r.body["instances"][0]["prompt"] for r in fake_google.requests("predict")]
    finished = [prompts[r.index] for r in manifest.shots if r.file in done_before]
    assert finished and len(finished) < len(manifest.shots)
    for prompt in finished:
        assert asked.count(prompt) == 1, prompt  # paid once, before the crash
    assert all(
        r.generator == settings.video_model and asked.count(prompts[r.index]) >= 1 for r in manifest.shots
    )
    # At most the one shot in flight at the kill is asked for twice.
    assert len(asked) <= len(manifest.shots) + 1
