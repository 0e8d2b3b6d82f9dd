"""The local launcher: it reaps the processes it starts, and a job process or notebook kernel gets only
the secrets it uses (never the API's keys or upload secret; the Google key only for a Google model)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from kapsule.core.settings import Settings
from kapsule.infra.launch.local import LocalLauncher, job_log_path
from tests.support.api import (
    SECRET,
)
from tests.support.settings import replace, use_environment

# ------------------------------------------------------------------------- processes and secrets


class _ScriptLauncher(LocalLauncher):
    """The real local launcher, handed a one-line Python script instead of the job entrypoint."""

    def __init__(self, settings: Settings, code: str) -> None:
        super().__init__(settings, [sys.executable, "-c", code])


def _wait_gone(pid: int) -> None:
    stat = Path(f"/proc/{pid}/stat")
    for _ in range(600):
        if not stat.exists():
            return
        time.sleep(0.05)
    pytest.fail(f"process {pid} is still in the process table: {stat.read_text()[:80]}")  # e.g. a zombie


def test_the_local_launcher_reaps_its_children(api_settings: Settings) -> None:
    launcher = _ScriptLauncher(replace(api_settings, local_max_jobs=5), "pass")  # all five start at once
    executions = [launcher.launch(f"reap-{i}") for i in range(5)]
    for execution in executions:
        _wait_gone(int(execution.removeprefix("local-")))
    assert launcher.running == 0
    for execution in executions:
        assert launcher.poll(execution) == 0
        done = launcher.status(execution)
        assert done is not None and done.done and done.succeeded


def _child_environment(settings: Settings, job_id: str, genai: bool = False) -> dict[str, str]:
    launcher = _ScriptLauncher(settings, "import json, os; print(json.dumps(dict(os.environ)))")
    _wait_gone(int(launcher.launch(job_id, genai=genai).removeprefix("local-")))
    child: dict[str, str] = json.loads(job_log_path(settings, job_id).read_text().splitlines()[-1])
    return child


SERVER_SECRETS = ("KAPSULE_API_KEYS", "KAPSULE_UPLOAD_SECRET")


GENAI_KEYS = ("KAPSULE_GEMINI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")


def test_jobs_and_kernels_get_only_the_secrets_they_use(
    api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported = replace(api_settings, api_keys="alice=key-a", gemini_api_key="gemini-secret")
    local = use_environment(exported, monkeypatch)  # _kernel_environment works on this process's own
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-secret")  # the names google-genai itself reads
    monkeypatch.setenv("GOOGLE_API_KEY", "google-secret")
    child = _child_environment(local, "api_settings-local")
    assert child["KAPSULE_STORAGE_URL"] == local.storage_url
    assert not set(child) & {*SERVER_SECRETS, *GENAI_KEYS}
    assert not {"key-a", SECRET, "gemini-secret", "google-secret"} & set(child.values())

    veo = local.model_copy(update={"video_model": "veo-3.0-fast-generate-001"})
    child = _child_environment(veo, "api_settings-veo")
    assert "gemini-secret" in child.values() and not set(child) & set(SERVER_SECRETS)

    # A Veo job on a deployment whose default models are local: its process and kernels need the key.
    child = _child_environment(local, "api_settings-veo-job", genai=True)
    assert "gemini-secret" in child.values() and not set(child) & set(SERVER_SECRETS)

    from kapsule.control.pipeline import _kernel_environment

    with _kernel_environment(local):  # what a notebook kernel inherits
        assert not set(os.environ) & {*SERVER_SECRETS, *GENAI_KEYS}
    with _kernel_environment(local, genai=True):  # a kernel of a job whose own model is Veo
        assert os.environ["GEMINI_API_KEY"] == "gemini-secret"
        assert not set(os.environ) & set(SERVER_SECRETS)
    assert os.environ["KAPSULE_API_KEYS"] == "alice=key-a"  # ours again afterwards


def _until(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_jobs_beyond_the_limit_wait_in_a_queue_and_show_their_place(api_settings: Settings) -> None:
    """Issue 23: eight jobs at once on two cores starved each other's kernels. Now at most N run; the
    rest wait, show "queued" with their place, start as others end, and a queued one can be cancelled."""
    from kapsule.control.service import JobService
    from kapsule.infra.context import Stores
    from kapsule.job.record import JobRecord
    from kapsule.job.update import JobUpdate

    settings = replace(api_settings, local_max_jobs=1)
    launcher = _ScriptLauncher(settings, "import time; time.sleep(1.0)")
    service = JobService(Stores.open(settings), launcher)
    jobs = [service.stores.status.create(JobRecord()) for _ in range(3)]
    names = [launcher.launch(job.id) for job in jobs]
    for job, name in zip(jobs, names, strict=True):
        service.stores.status.update(job.id, JobUpdate(execution=name))
    assert names[0].startswith("local-") and names[1:] == [f"local-queued-{j.id}" for j in jobs[1:]]
    assert [launcher.place(n) for n in names] == [None, 0, 1]
    assert launcher.running == 1
    assert service.observe("local", jobs[1].id).message == "queued: next in line"
    assert service.observe("local", jobs[2].id).message == "queued: 1 job ahead"

    launcher.cancel(names[2])  # still queued: it leaves the queue and never runs
    assert launcher.place(names[2]) is None and launcher.poll(names[2]) == -1
    _until(lambda: launcher.poll(names[0]) == 0)
    _until(lambda: launcher.place(names[1]) is None)  # the first ended: the second started
    assert launcher.running == 1
    _until(lambda: launcher.poll(names[1]) == 0)
    assert launcher.running == 0
