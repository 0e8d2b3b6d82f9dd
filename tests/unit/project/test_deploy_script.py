"""deploy/deploy.sh in --dry-run: it prints every command and runs none (a gcloud guard proves it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO

SCRIPT = REPO / "deploy" / "deploy.sh"
DEFAULT_VIDEO_MODEL = "veo-3.1-generate-001"


NO_POLICY = "{}"  # what `describe --effective` prints where no organisation policy is set


def _dry_run(
    tmp_path: Path, *args: str, policies: dict[str, str | None] | None = None, **env: str
) -> list[str]:
    """The printed commands (lines starting with '+'), with a `gcloud` on PATH that records any call.

    The only calls it answers are the read-only organisation policy lookups a dry run makes (``policies``:
    constraint -> the JSON `gcloud resource-manager org-policies describe --effective` prints, or
    ``None`` for a read that fails); any other call is recorded and fails.
    """
    guard = tmp_path / "bin"
    guard.mkdir(exist_ok=True)
    calls = tmp_path / "gcloud-calls"
    answers = tmp_path / "policies"
    answers.mkdir(exist_ok=True)
    wanted = {"iam.allowedPolicyMemberDomains": NO_POLICY, "storage.publicAccessPrevention": NO_POLICY}
    for constraint, policy in (wanted | (policies or {})).items():
        (answers / constraint).unlink(missing_ok=True)
        if policy is not None:
            (answers / constraint).write_text(policy)
    (guard / "gcloud").write_text(
        "#!/bin/sh\n"
        'if [ "$1 $2 $3" = "resource-manager org-policies describe" ]; then\n'
        f'  if [ -f "{answers}/$4" ]; then cat "{answers}/$4"; exit 0; fi\n'
        "  echo 'PERMISSION_DENIED' >&2; exit 1\n"
        "fi\n"
        f'echo "$@" >> {calls}\nexit 99\n'
    )
    (guard / "gcloud").chmod(0o755)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAPSULE_", "GEMINI_"))}
    full_env = base | {"PATH": f"{guard}:{os.environ['PATH']}"} | env
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args], env=full_env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert not calls.exists(), f"a dry run called gcloud: {calls.read_text()}"
    (tmp_path / "stdout").write_text(proc.stdout)
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
    # The default Veo model is Google's replacement for the retired veo-3.0-generate-001, on both.
    for deployed in (job, service):
        assert f"KAPSULE_VIDEO_MODEL={DEFAULT_VIDEO_MODEL}," in deployed


def test_the_default_video_model_is_one_google_has_not_retired() -> None:
    """A first deployment must not get 404 from Veo: the default passes the submission check today
    (Vertex mode, what deploy.sh configures without a Gemini key)."""
    from kapsule.catalog import video_models

    assert f'VIDEO_MODEL="${{KAPSULE_VIDEO_MODEL:-{DEFAULT_VIDEO_MODEL}}}"' in SCRIPT.read_text()
    video_models.check_job(DEFAULT_VIDEO_MODEL, "vertex", aspect_ratio="16:9")
    assert video_models.retired(DEFAULT_VIDEO_MODEL, "vertex") is None
    for old in ("veo-3.0-generate-001", "veo-2.0-generate-001"):  # the old default and Veo 2: replaced by it
        life = video_models.retired(old, "vertex")
        assert life is not None and life.replacement == DEFAULT_VIDEO_MODEL


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


def test_dry_run_prints_cors_secret_location_build_account_and_retry_steps(tmp_path: Path) -> None:
    commands = _dry_run(
        tmp_path, "--project=demo-proj", "--region=europe-west4", "--dry-run",
        KAPSULE_PROMPT_MODEL="gemini-x", KAPSULE_STUDIO_ORIGINS="https://studio.example.com",
        KAPSULE_VERTEX_LOCATION="us-central1", KAPSULE_JOB_MAX_RETRIES="3",
    )  # fmt: skip
    # CORS for the service's real URL (read from Cloud Run) and any extra studio origin
    _one(commands, "run services describe kapsule-api", "--format=json")
    _one(commands, "storage buckets update gs://demo-proj-kapsule-private", "--cors-file=")
    update = _one(commands, "run services update kapsule-api", "KAPSULE_CORS_ORIGINS=")
    assert "https://kapsule-api-" in update and "https://studio.example.com" in update
    # the upload secret: created, a value added only while it has none, mounted into the API
    _one(commands, "secrets create kapsule-upload-secret")
    _one(commands, "secrets versions add kapsule-upload-secret", "--data-file=-")
    _one(commands, "secrets add-iam-policy-binding kapsule-upload-secret", "kapsule-api@")
    service = _one(commands, "run deploy kapsule-api")
    assert "KAPSULE_UPLOAD_SECRET=kapsule-upload-secret:latest" in service
    # Veo's and Gemini's locations are settings of their own, not the Cloud Run region (the old single
    # KAPSULE_VERTEX_LOCATION still sets Veo's)
    job = _one(commands, "run jobs deploy kapsule-job")
    assert "KAPSULE_VEO_LOCATION=us-central1" in job and "KAPSULE_GEMINI_LOCATION=global" in job
    assert "GOOGLE_CLOUD_LOCATION" not in job and "KAPSULE_VERTEX_LOCATION" not in job
    assert "--region=europe-west4" in job
    # one retry setting: --max-retries and the job's env
    assert "--max-retries=3" in job and "KAPSULE_JOB_MAX_RETRIES=3" in job
    # a build service account, used by the build
    _one(commands, "iam service-accounts create kapsule-build")
    submit = _one(commands, "builds submit")
    assert "--service-account=projects/demo-proj/serviceAccounts/kapsule-build@demo-proj.iam" in submit
    _one(commands, "kapsule-build@", "roles/artifactregistry.writer")
    # IAM bindings retry on propagation delay
    bindings = [c for c in commands if "add-iam-policy-binding" in c and "allUsers" not in c]
    assert len(bindings) >= 10 and all("retried up to 6 times" in c for c in bindings)


FAKE_GCLOUD = r"""#!/bin/bash
echo "$*" >> "$CALLS"
case "$*" in
  *"indexes composite create"*) echo "$INDEX_ERROR" >&2; exit 1 ;;
  *"secrets versions list"*) echo "projects/p/secrets/s/versions/1" ;;
  *"run services describe"*) echo '{"status": {"url": "https://kapsule-api-abc-ew.a.run.app"},
    "metadata": {"annotations": {"run.googleapis.com/urls":
    "[\"https://kapsule-api-123.europe-west4.run.app\"]"}}}' ;;
esac
exit 0
"""


def _second_run(tmp_path: Path, index_error: str) -> subprocess.CompletedProcess[str]:
    """A real (not dry) run against a gcloud that says everything exists already."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "gcloud").write_text(FAKE_GCLOUD)
    (bin_dir / "gcloud").chmod(0o755)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAPSULE_", "GEMINI_"))}
    env = base | {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CALLS": str(tmp_path / "calls"),
        "INDEX_ERROR": index_error,
        "KAPSULE_PROMPT_MODEL": "gemini-x",
        "KAPSULE_IMAGE_TAG": "t1",
    }
    return subprocess.run(
        ["bash", str(SCRIPT), "--project=p", "--region=europe-west4"],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip


def test_a_second_run_keeps_what_exists_and_says_so_for_the_index(tmp_path: Path) -> None:
    proc = _second_run(
        tmp_path, "ERROR: (gcloud.firestore.indexes.composite.create) ALREADY_EXISTS: index already exists"
    )
    assert proc.returncode == 0, proc.stderr
    assert "# (index exists)" in proc.stdout
    calls = (tmp_path / "calls").read_text()
    assert " create " not in calls.replace("indexes composite create", ""), (
        "nothing that exists is created again"
    )
    assert "secrets versions add" not in calls, "the upload secret keeps its value on a second run"
    cors = [line for line in proc.stdout.splitlines() if line.startswith("# cors: ")]
    assert (
        "https://kapsule-api-abc-ew.a.run.app" in cors[0]
        and "https://kapsule-api-123.europe-west4.run.app" in cors[0]
    )


def test_an_index_error_other_than_exists_is_shown_and_stops(tmp_path: Path) -> None:
    proc = _second_run(tmp_path, "ERROR: PERMISSION_DENIED: the caller may not create indexes")
    assert proc.returncode == 1
    assert "PERMISSION_DENIED" in proc.stderr and "(index exists)" not in proc.stdout
    assert "run jobs deploy" not in (tmp_path / "calls").read_text()


def test_a_real_run_needs_a_prompt_model(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPSULE_")}
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--project=p"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "KAPSULE_PROMPT_MODEL" in proc.stderr


DRS = json.dumps(
    {
        "constraint": "constraints/iam.allowedPolicyMemberDomains",
        "listPolicy": {"allowedValues": ["C03abc12"]},
    }
)
PAP = '{"constraint": "constraints/storage.publicAccessPrevention", "booleanPolicy": {"enforced": true}}'


@pytest.mark.parametrize(
    ("policies", "env", "why"),
    [
        ({"iam.allowedPolicyMemberDomains": DRS}, {}, "iam.allowedPolicyMemberDomains is enforced"),
        ({"storage.publicAccessPrevention": PAP}, {}, "storage.publicAccessPrevention is enforced"),
        ({}, {"KAPSULE_PUBLIC_ACCESS": "private"}, "private deployment"),
    ],
    ids=["domain-restricted-sharing", "public-access-prevention", "asked-for"],
)
def test_where_public_access_is_not_allowed_delivery_is_signed_and_the_studio_iam_authenticated(
    tmp_path: Path, policies: dict[str, str | None], env: dict[str, str], why: str
) -> None:
    commands = _dry_run(
        tmp_path, "--project=demo-proj", "--region=europe-west4", "--dry-run", policies=policies,
        KAPSULE_INVOKERS="group:video-team@example.com,user:ana@example.com", **env,
    )  # fmt: skip
    out = (tmp_path / "stdout").read_text()
    assert why in out and "signed download URL" in out
    assert not [c for c in commands if "allUsers" in c]  # nothing the organisation refuses is asked
    delivery = _one(commands, "buckets create gs://demo-proj-kapsule-videos")
    assert "--public-access-prevention" in delivery
    service = _one(commands, "run deploy kapsule-api")
    assert "--no-allow-unauthenticated" in service and "--allow-unauthenticated " not in service
    for member in ("group:video-team@example.com", "user:ana@example.com"):
        _one(
            commands,
            "run services add-iam-policy-binding kapsule-api",
            f"--member={member}",
            "roles/run.invoker",
        )
    # the studio is opened through `gcloud run services proxy`, whose origin uploads to the bucket
    update = _one(commands, "run services update kapsule-api", "KAPSULE_CORS_ORIGINS=")
    assert "http://localhost:8080" in update
    assert "gcloud run services proxy kapsule-api --region=europe-west4 --port=8080" in out
    # the API still signs URLs (signBlob on itself) and reads the delivery bucket
    _one(commands, "kapsule-api@", "roles/iam.serviceAccountTokenCreator")
    _one(commands, "gs://demo-proj-kapsule-videos", "kapsule-api@", "roles/storage.objectViewer")


def test_where_policies_allow_it_or_cannot_be_read_the_deployment_stays_public(tmp_path: Path) -> None:
    allowed = (
        '{"constraint": "constraints/iam.allowedPolicyMemberDomains", "listPolicy": {"allValues": "ALLOW"}}'
    )
    for policies in ({"iam.allowedPolicyMemberDomains": allowed}, {"storage.publicAccessPrevention": None}):
        commands = _dry_run(tmp_path, "--project=p", "--dry-run", policies=policies)
        _one(commands, "gs://p-kapsule-videos", "--member=allUsers", "roles/storage.objectViewer")
        assert "--allow-unauthenticated" in _one(commands, "run deploy kapsule-api")
        assert not [c for c in commands if "roles/run.invoker" in c]
    out = (tmp_path / "stdout").read_text()
    assert "could not read storage.publicAccessPrevention" in out and "KAPSULE_PUBLIC_ACCESS=private" in out


def test_the_manual_setup_doc_matches_what_deploy_does() -> None:
    """docs/cloud-settings.md's by-hand CORS lists the headers a signed upload carries, as deploy.sh
    sets them, and its roles are deploy.sh's (objectUser, never objectAdmin)."""
    import re

    from kapsule.infra.storage.signing import UPLOAD_HEADERS

    doc = (REPO / "docs" / "cloud-settings.md").read_text()
    manual = json.loads(re.search(r"echo '(\[\{\"origin\".*?\])' > cors\.json", doc).group(1))  # type: ignore[union-attr]
    deployed = re.search(r'"responseHeader": (\[[^\]]*\])', SCRIPT.read_text())
    assert deployed is not None
    assert set(manual[0]["responseHeader"]) == set(json.loads(deployed.group(1)))
    assert {h.lower() for h in manual[0]["responseHeader"]} >= set(UPLOAD_HEADERS)
    assert "x-goog-if-generation-match" in manual[0]["responseHeader"]
    granted = set(re.findall(r"--role=(roles/storage\.\w+)", SCRIPT.read_text()))
    assert "roles/storage.objectAdmin" not in granted and "roles/storage.objectUser" in granted
    assert "`roles/storage.objectUser` on both" in doc and "`roles/storage.objectAdmin` on" not in doc
