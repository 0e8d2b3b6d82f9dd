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
    launcher = _ScriptLauncher(api_settings, "pass")
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
