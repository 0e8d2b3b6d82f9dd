"""deploy/deploy.sh in --dry-run: it prints every command and runs none (a gcloud guard proves it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "deploy" / "deploy.sh"


def _dry_run(tmp_path: Path, *args: str, **env: str) -> list[str]:
    """The printed commands (lines starting with '+'), with a `gcloud` on PATH that records any call."""
    guard = tmp_path / "bin"
    guard.mkdir(exist_ok=True)
    calls = tmp_path / "gcloud-calls"
    (guard / "gcloud").write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 99\n')
    (guard / "gcloud").chmod(0o755)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAPSULE_", "GEMINI_"))}
    full_env = base | {"PATH": f"{guard}:{os.environ['PATH']}"} | env
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args], env=full_env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert not calls.exists(), f"a dry run called gcloud: {calls.read_text()}"
    return [line[2:] for line in proc.stdout.splitlines() if line.startswith("+ ")]


def _one(commands: list[str], *needles: str) -> str:
    found = [c for c in commands if all(n in c for n in needles)]
    assert len(found) == 1, (needles, found)
    return found[0]


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("python3") is None, reason="needs bash")
def test_dry_run_prints_the_whole_deployment(tmp_path: Path) -> None:
    commands = _dry_run(tmp_path, "--project", "demo-proj", "--region", "europe-west4", "--dry-run")

    assert all(c.startswith("gcloud --project=demo-proj --quiet ") for c in commands)
    enable = _one(commands, "services enable")
    for api in (
        "run",
        "firestore",
        "storage",
        "artifactregistry",
        "secretmanager",
        "aiplatform",
        "iamcredentials",
    ):
        assert f"{api}.googleapis.com" in enable

    private = _one(commands, "buckets create gs://demo-proj-kapsule-private")
    assert "--uniform-bucket-level-access" in private and "--public-access-prevention" in private
    assert "--location=europe-west4" in private
    _one(commands, "buckets update gs://demo-proj-kapsule-private", "--lifecycle-file=")
    delivery = _one(commands, "buckets create gs://demo-proj-kapsule-videos")
    assert "--uniform-bucket-level-access" in delivery and "--public-access-prevention" not in delivery
    _one(commands, "gs://demo-proj-kapsule-videos", "--member=allUsers", "roles/storage.objectViewer")

    _one(commands, "firestore databases create", "--type=firestore-native")
    index = _one(commands, "firestore indexes composite create")
    assert "--collection-group=jobs" in index
    assert "field-path=owner,order=ascending" in index and "field-path=created_at,order=descending" in index
    _one(commands, "artifacts repositories create kapsule", "--repository-format=docker")
    _one(commands, "builds submit", "--config=" + str(REPO / "deploy" / "cloudbuild.yaml"))

    api_sa = "serviceAccount:kapsule-api@demo-proj.iam.gserviceaccount.com"
    job_sa = "serviceAccount:kapsule-job@demo-proj.iam.gserviceaccount.com"
    role = _one(commands, "iam roles create kapsuleJobLauncher")
    assert "run.jobs.runWithOverrides" in role and "run.executions.cancel" in role
    _one(commands, "run jobs add-iam-policy-binding kapsule-job", api_sa, "roles/kapsuleJobLauncher")
    _one(commands, f"--member={api_sa}", "roles/iam.serviceAccountTokenCreator")
    _one(commands, f"--member={api_sa}", "roles/datastore.user")
    _one(commands, f"--member={job_sa}", "roles/datastore.user")
    _one(commands, f"--member={job_sa}", "roles/aiplatform.user")
    _one(commands, "gs://demo-proj-kapsule-videos", f"--member={job_sa}", "roles/storage.objectUser")
    _one(commands, "gs://demo-proj-kapsule-private", f"--member={job_sa}", "roles/storage.objectUser")
    # Least privilege: nobody gets an owner/editor/admin role.
    assert not [c for c in commands if any(r in c for r in ("roles/owner", "roles/editor", ".admin"))]

    job = _one(commands, "run jobs deploy kapsule-job")
    for flag in ("--tasks=1", "--max-retries=2", "--task-timeout=3600s", "--memory=4Gi", "--cpu=2"):
        assert flag in job
    assert f"--service-account={job_sa.split(':')[1]}" in job
    assert "KAPSULE_STATUS_URL=firestore://demo-proj/jobs" in job and "GOOGLE_GENAI_USE_VERTEXAI=true" in job
    service = _one(commands, "run deploy kapsule-api")
    assert "KAPSULE_LAUNCHER=cloudrun://projects/demo-proj/locations/europe-west4/jobs/kapsule-job" in service
    assert "--set-secrets=KAPSULE_API_KEYS=kapsule-api-keys:latest" in service


def test_secret_values_are_never_printed_and_are_mounted_with_set_secrets(tmp_path: Path) -> None:
    commands = _dry_run(
        tmp_path,
        "--project=p",
        "--dry-run",
        KAPSULE_API_KEYS="alice=sk-owner-1",
        GEMINI_API_KEY="AIza-secret-9",
    )
    text = "\n".join(commands)

    assert "sk-owner-1" not in text and "AIza-secret-9" not in text
    _one(commands, "secrets versions add kapsule-api-keys", "--data-file=-")
    _one(commands, "secrets versions add kapsule-gemini-api-key", "--data-file=-")
    job = _one(commands, "run jobs deploy kapsule-job")
    assert "--set-secrets=GEMINI_API_KEY=kapsule-gemini-api-key:latest" in job
    assert "GOOGLE_GENAI_USE_VERTEXAI" not in job  # API-key mode when a Gemini key is given


def test_a_missing_project_is_refused_with_a_hint(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAPSULE_PROJECT"}
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"], env=env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "--project PROJECT_ID" in proc.stderr
