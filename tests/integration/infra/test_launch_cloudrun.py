"""The cloudrun:// launcher, through the real google-cloud-run client, against a local Admin API v2 server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kapsule.core.errors import ConfigError, InvalidParameter, LaunchError
from kapsule.core.settings import Settings
from kapsule.infra.launch import make_launcher
from kapsule.infra.launch.cloudrun import VANISHED, CloudRunLauncher, reconcile
from kapsule.infra.status import StatusStore, open_status_store
from kapsule.job.record import JobRecord, JobState
from kapsule.job.update import JobUpdate
from tests.support.fake_cloudrun import FakeCloudRun

JOB = "projects/p/locations/l/jobs/kapsule"
URL = f"cloudrun://{JOB}"


@pytest.fixture
def settings(kapsule_env: Settings, fake_cloudrun: FakeCloudRun) -> Settings:
    return kapsule_env.model_copy(
        update={"launcher": URL, "cloudrun_endpoint": fake_cloudrun.url, "cloudrun_task_timeout_s": 600}
    )


@pytest.fixture
def launcher(settings: Settings) -> CloudRunLauncher:
    made = make_launcher(URL, settings)
    assert isinstance(made, CloudRunLauncher)
    return made


@pytest.fixture
def store(settings: Settings) -> StatusStore:
    return open_status_store(settings.status_url)


def _running_job(store: StatusStore, execution: str, stage: str = "generate") -> JobRecord:
    record = store.create(JobRecord())
    return store.update(
        record.id, JobUpdate(state=JobState.running, stage=stage, execution=execution, attempt=1)
    )


@pytest.mark.parametrize(
    "url",
    ["cloudrun://", "cloudrun://projects/p/jobs/j", "cloudrun://projects/p/locations/l/jobs/j/extra"],
)
def test_a_malformed_launcher_url_is_a_config_error(url: str, settings: Settings) -> None:
    with pytest.raises(ConfigError, match="cloudrun://projects/PROJECT/locations/REGION/jobs/JOB"):
        make_launcher(url, settings)


def test_launch_runs_the_job_with_overrides_and_returns_the_execution_without_waiting(
    launcher: CloudRunLauncher, fake_cloudrun: FakeCloudRun
) -> None:
    execution = launcher.launch("j" + "1" * 20)

    assert execution.startswith(f"{JOB}/executions/kapsule-")
    (run,) = fake_cloudrun.requests("POST", ":run")
    assert run.path == f"/v2/{JOB}:run"
    overrides = run.body["overrides"]
    assert overrides["containerOverrides"] == [{"env": [{"name": "KAPSULE_JOB_ID", "value": "j" + "1" * 20}]}]
    assert overrides["timeout"] == "600s" and overrides["taskCount"] == 1
    # The execution is still running and nobody polled the operation: the API was not blocked.
    assert fake_cloudrun.executions[execution].completion_time is None
    assert not fake_cloudrun.requests("GET", "")
    assert launcher.poll(execution) is None


def test_poll_reports_success_failure_and_a_vanished_execution(
    launcher: CloudRunLauncher, fake_cloudrun: FakeCloudRun
) -> None:
    ok, bad, gone = (launcher.launch(f"j{n}" + "0" * 19) for n in range(3))
    fake_cloudrun.finish(ok, succeeded=True)
    fake_cloudrun.finish(bad, succeeded=False, message="Task was killed: out of memory")
    fake_cloudrun.forget(gone)

    assert (launcher.poll(ok), launcher.poll(bad), launcher.poll(gone)) == (0, 1, VANISHED)
    # The short name Cloud Run gives the task (CLOUD_RUN_EXECUTION) finds the same execution.
    assert launcher.poll(bad.rsplit("/", 1)[1]) == 1


def test_cancel_asks_cloud_run_and_tolerates_a_gone_execution(
    launcher: CloudRunLauncher, fake_cloudrun: FakeCloudRun
) -> None:
    execution = launcher.launch("j" + "2" * 20)

    launcher.cancel(execution)

    assert [r.path for r in fake_cloudrun.requests("POST", ":cancel")] == [f"/v2/{execution}:cancel"]
    assert fake_cloudrun.executions[execution].cancelled == 1
    assert launcher.poll(execution) == 1
    fake_cloudrun.forget(execution)
    launcher.cancel(execution)  # nothing to stop: no error


def test_an_execution_of_another_job_is_refused(launcher: CloudRunLauncher) -> None:
    with pytest.raises(Exception, match="does not belong to"):
        launcher.poll("projects/p/locations/l/jobs/other/executions/x-1")


def test_api_errors_become_launch_errors(settings: Settings, fake_cloudrun: FakeCloudRun) -> None:
    missing = make_launcher("cloudrun://projects/p/locations/l/jobs/nope", settings)
    with pytest.raises(LaunchError, match=r"could not start job projects/p/locations/l/jobs/nope"):
        missing.launch("j" + "3" * 20)

    launcher = make_launcher(URL, settings)
    fake_cloudrun.fail_next = [403]
    with pytest.raises(LaunchError, match="injected failure 403") as caught:
        launcher.launch("j" + "3" * 20)
    assert caught.value.code == "launch_failed" and caught.value.retryable


def test_reconcile_fails_a_job_whose_execution_failed(
    launcher: CloudRunLauncher, fake_cloudrun: FakeCloudRun, store: StatusStore
) -> None:
    execution = launcher.launch("jx")
    job = _running_job(store, execution)
    assert reconcile(store, launcher, job).state == JobState.running  # still running: untouched

    fake_cloudrun.finish(execution, succeeded=False, message="Task was killed: out of memory")
    record = reconcile(store, launcher, job)

    assert record.state == JobState.failed and record.error is not None
    assert (record.error.code, record.error.stage) == ("job_crashed", "generate")
    assert "failed without finishing the job: Task was killed: out of memory" in record.error.message
    assert store.get(job.id).state == JobState.failed


def test_reconcile_fails_a_job_whose_execution_vanished_even_by_its_short_name(
    launcher: CloudRunLauncher, fake_cloudrun: FakeCloudRun, store: StatusStore
) -> None:
    execution = launcher.launch("jy")
    job = _running_job(store, execution.rsplit("/", 1)[1], stage="assemble")  # as the task records it
    fake_cloudrun.forget(execution)

    record = reconcile(store, launcher, job.id)

    assert record.state == JobState.failed and record.error is not None
    assert record.error.code == "execution_lost" and record.error.stage == "assemble"


def test_reconcile_never_overrides_what_the_job_said(
    launcher: CloudRunLauncher, fake_cloudrun: FakeCloudRun, store: StatusStore
) -> None:
    execution = launcher.launch("jz")
    job = _running_job(store, execution)
    store.update(job.id, JobUpdate(state=JobState.succeeded, progress=1.0))
    fake_cloudrun.forget(execution)
    queued = store.create(JobRecord())  # not launched yet: nothing to reconcile

    assert reconcile(store, launcher, job).state == JobState.succeeded
    assert reconcile(store, launcher, queued).state == JobState.queued
    assert not [r for r in fake_cloudrun.log if r.method == "GET" and queued.id in r.path]


def test_an_execution_retries_failed_attempts_as_cloud_run_does(
    launcher: CloudRunLauncher, fake_cloudrun: FakeCloudRun, tmp_path: Path
) -> None:
    """Process-backed executions: each attempt sees the override env and its attempt number."""
    seen = tmp_path / "seen.jsonl"
    script = (
        "import json, os, sys\n"
        f"open({str(seen)!r}, 'a').write(json.dumps({{k: os.environ.get(k) for k in "
        "('KAPSULE_JOB_ID', 'CLOUD_RUN_EXECUTION', 'CLOUD_RUN_TASK_ATTEMPT')}) + '\\n')\n"
        "sys.exit(0 if os.environ['CLOUD_RUN_TASK_ATTEMPT'] == '1' else 1)\n"
    )
    fake_cloudrun.command = [sys.executable, "-c", script]

    execution = launcher.launch("j" + "4" * 20)
    ended = fake_cloudrun.wait(execution)

    assert ended.exit_codes == [1, 0] and ended.retried == 1
    attempts = [json.loads(line) for line in seen.read_text().splitlines()]
    short = execution.rsplit("/", 1)[1]
    assert attempts == [
        {"KAPSULE_JOB_ID": "j" + "4" * 20, "CLOUD_RUN_EXECUTION": short, "CLOUD_RUN_TASK_ATTEMPT": "0"},
        {"KAPSULE_JOB_ID": "j" + "4" * 20, "CLOUD_RUN_EXECUTION": short, "CLOUD_RUN_TASK_ATTEMPT": "1"},
    ]
    assert launcher.poll(execution) == 0


def test_the_real_entrypoint_under_cloud_run_records_its_execution_and_a_final_failure(
    launcher: CloudRunLauncher, fake_cloudrun: FakeCloudRun, settings: Settings, store: StatusStore
) -> None:
    """A job whose song is not audio: recorded as failed, exit 0, so Cloud Run does not retry it."""
    from kapsule.infra.launch import settings_env
    from kapsule.infra.storage import open_storage
    from kapsule.job.layout import JobLayout

    job = store.create(JobRecord(params={"max_shots": 2}))
    open_storage(settings.storage_url).write_bytes(JobLayout(job.id).input_song("wav"), b"not audio\n" * 50)
    set_vars, _ = settings_env(settings)
    fake_cloudrun.extra_env = set_vars
    fake_cloudrun.command = [sys.executable, "-m", "kapsule.worker"]

    execution = launcher.launch(job.id)
    store.update(job.id, JobUpdate(execution=execution))
    ended = fake_cloudrun.wait(execution, timeout=120)

    assert ended.exit_codes == [0]
    record = reconcile(store, launcher, job.id)
    assert record.state == JobState.failed and record.error is not None
    assert record.error.code == "not_audio"  # the job's own word, not the reconciler's
    assert record.attempt == 1 and record.execution == execution


def test_full_name_accepts_the_project_number_cloud_run_may_use(launcher: CloudRunLauncher) -> None:
    """Cloud Run answers with the project *number* in resource names; the launcher URL has the id."""
    _, project, _, location, _, job = JOB.split("/")
    by_number = f"projects/123456789012/locations/{location}/jobs/{job}/executions/{job}-abc12"
    assert launcher.full_name(by_number) == f"{JOB}/executions/{job}-abc12"
    assert launcher.full_name(f"{JOB}/executions/e1") == f"{JOB}/executions/e1"
    assert launcher.full_name("e2") == f"{JOB}/executions/e2"
    for foreign in (
        f"projects/{project}/locations/elsewhere-1/jobs/{job}/executions/e",
        f"projects/{project}/locations/{location}/jobs/other-job/executions/e",
        f"projects/{project}/locations/{location}/jobs/{job}/executions/e/extra",
    ):
        with pytest.raises(InvalidParameter, match="does not belong"):
            launcher.full_name(foreign)
