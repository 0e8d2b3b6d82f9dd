"""Job start-up time and crash-recovery time, with the real job entrypoint.

Start-up: from the moment the job's process is asked for to the first stage recorded in the job
record (``stage == "analyze"``): Python start, imports, taking the job (a transaction), then the
pipeline's first progress write. Measured through the local subprocess launcher, and through the
real ``cloudrun://`` launcher talking to the local Cloud Run Admin API server
(tests/support/fake_cloudrun.py), which starts each execution as a real ``python -m kapsule.worker``
process. Each run is cancelled as soon as its first stage is recorded.

Crash recovery: a job whose attempt 0 is killed -9 mid-generation (process group and notebook
kernel, once a shot is stored) and whose attempt 1 (``CLOUD_RUN_TASK_ATTEMPT=1``) finishes it; the
retry's time to ``succeeded`` next to a clean run's. Local backends (file://, SQLite), a 10 s song.
Cloud Run's own delay before a retry (its backoff, a new container) is not modelled.

    .venv/bin/python benchmarks/cloudrun.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kapsule.core.settings import Settings
from kapsule.demo.song import synthesize_song, write_song
from kapsule.infra.launch import make_launcher, settings_env
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.layout import JobLayout
from kapsule.job.record import JobRecord, JobState
from kapsule.job.update import JobUpdate
from kapsule.worker.run_job import local_command
from tests.support.fake_cloudrun import FakeCloudRun, _make_handler
from tests.support.job_process import kill_tree, start_attempt, wait_for

STARTS = 3  # start-up runs per launcher
RECOVERIES = 2  # clean and crashed runs each
JOB = "projects/p/locations/l/jobs/kapsule"
PARAMS = {"prompt": "paper boats", "max_shots": 4, "aspect_ratio": "16:9", "resolution": "720p"}


def _settings(home: Path) -> Settings:
    return Settings(
        storage_url=f"file://{home / 'data'}",
        status_url=f"sqlite:///{home / 'jobs.db'}",
        work_dir=home / "work",
    )


def _new_job(settings: Settings, song: Path) -> JobRecord:
    record = JobRecord(params=dict(PARAMS))
    open_storage(settings.storage_url).write_bytes(JobLayout(record.id).input_song("wav"), song.read_bytes())
    return open_status_store(settings.status_url).create(record)


def _startup(
    settings: Settings, song: Path, launch: Callable[[str], str], stop: Callable[[str], None]
) -> float:
    """Seconds from asking for the process to the job record naming its first stage."""
    status = open_status_store(settings.status_url)
    job = _new_job(settings, song)
    started = time.perf_counter()
    execution = launch(job.id)
    wait_for(status, job.id, lambda r: r.stage is not None, poll_s=0.005, timeout=120)
    took = time.perf_counter() - started
    status.update(job.id, JobUpdate(state=JobState.cancelled))
    stop(execution)
    return took


def startup_rows(home: Path, song: Path) -> list[tuple[str, list[float]]]:
    rows = []
    local_settings = _settings(home / "local")
    local = make_launcher("local", local_settings, local_command())
    runs = [_startup(local_settings, song, local.launch, local.cancel) for _ in range(STARTS)]
    rows.append(("local subprocess launcher", runs))

    fake = FakeCloudRun(jobs={JOB})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = _settings(home / "cloudrun").model_copy(update={"cloudrun_endpoint": fake.url})
        fake.extra_env = settings_env(settings)[0]
        fake.command = [sys.executable, "-m", "kapsule.worker"]
        fake.max_retries = 0
        launcher = make_launcher(f"cloudrun://{JOB}", settings)

        def stop(execution: str) -> None:
            launcher.cancel(execution)
            fake.wait(execution, timeout=60)

        runs = [_startup(settings, song, launcher.launch, stop) for _ in range(STARTS)]
        rows.append(("cloudrun:// launcher + Admin API server", runs))
    finally:
        server.shutdown()
        server.server_close()
    return rows


def _clean_run(settings: Settings, song: Path, log: Path) -> float:
    job = _new_job(settings, song)
    started = time.perf_counter()
    proc = start_attempt(settings, job.id, log, attempt=0)
    assert proc.wait(timeout=600) == 0, log.read_text()[-2000:]
    took = time.perf_counter() - started
    assert open_status_store(settings.status_url).get(job.id).state == JobState.succeeded
    return took


def _crashed_run(settings: Settings, song: Path, log: Path) -> tuple[float, float, int]:
    """(seconds of the killed attempt, seconds of the retry to succeeded, shots kept)."""
    status = open_status_store(settings.status_url)
    storage = open_storage(settings.storage_url)
    job = _new_job(settings, song)
    layout = JobLayout(job.id)

    def a_shot_is_stored(r: JobRecord) -> bool:
        return r.stage == "generate" and any(k.endswith(".mp4") for k in storage.list(layout.shots_prefix))

    started = time.perf_counter()
    first = start_attempt(settings, job.id, log, attempt=0)
    try:
        wait_for(status, job.id, a_shot_is_stored, first)
    finally:
        kill_tree(first)
    killed_after = time.perf_counter() - started
    kept = len([k for k in storage.list(layout.shots_prefix) if k.endswith(".mp4")])
    retry_started = time.perf_counter()
    second = start_attempt(settings, job.id, log, attempt=1)
    assert second.wait(timeout=600) == 0, log.read_text()[-2000:]
    retry = time.perf_counter() - retry_started
    record = status.get(job.id)
    assert record.state == JobState.succeeded and record.attempt == 2
    return killed_after, retry, kept


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kapsule-bench-cloudrun-") as tmp:
        home = Path(tmp)
        song = write_song(
            synthesize_song(seed=23, structure=[("verse", 2), ("chorus", 3)]), home / "song.wav"
        )
        starts = startup_rows(home, song)
        settings = _settings(home / "recovery")
        clean = [_clean_run(settings, song, home / "clean.log") for _ in range(RECOVERIES)]
        crashed = [_crashed_run(settings, song, home / "crash.log") for _ in range(RECOVERIES)]

    print(f"Job start-up: launch → first stage in the job record, s (median of {STARTS}; min–max)")
    print("| launcher | median | min | max |\n|---|---|---|---|")
    for name, runs in starts:
        print(f"| {name} | {statistics.median(runs):.2f} | {min(runs):.2f} | {max(runs):.2f} |")
    clean_s = statistics.median(clean)
    retry_s = statistics.median(r for _, r, _ in crashed)
    killed_s = statistics.median(k for k, _, _ in crashed)
    kept = statistics.median(n for _, _, n in crashed)
    print(f"\nCrash recovery: 10 s song, {PARAMS['max_shots']} shots, median of {RECOVERIES}, s")
    print("| run | seconds |\n|---|---|")
    print(f"| clean run, start → succeeded | {clean_s:.1f} |")
    print(f"| crashed run: attempt 0 killed -9 after ({kept:.0f} shot(s) stored) | {killed_s:.1f} |")
    print(f"| retry (attempt 1) start → succeeded | {retry_s:.1f} |")
    print(f"| total crashed run (both attempts) | {killed_s + retry_s:.1f} |")
    local_start = statistics.median(starts[0][1])
    cloud_start = statistics.median(starts[-1][1])
    print(
        f"start-up {local_start:.2f} s local / {cloud_start:.2f} s via Cloud Run API; "
        f"retry after kill -9 mid-generation {retry_s:.1f} s = {retry_s / clean_s:.2f}× a clean run "
        f"({clean_s:.1f} s)"
    )


if __name__ == "__main__":
    main()
