"""``kapsule doctor`` and the API's start-up preflight, against the fake Google server and the
storage/Firestore emulators: the same findings, an exit code of 1, and no job accepted while a
blocking problem exists."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kapsule.api.main import create_app
from kapsule.api.preflight import RECHECK_S, Preflight, api_doctor
from kapsule.cli.main import app as cli_app
from kapsule.control.doctor import blocking, problems
from kapsule.core.errors import DeploymentNotReady
from kapsule.core.settings import Settings
from kapsule.infra.storage.gcs import GcsStorage
from tests.support.deployed import set_cors
from tests.support.fake_google import FakeGoogle
from tests.support.settings import replace, use_environment


def test_kapsule_doctor_prints_each_check_and_exits_0_when_healthy(
    deployed: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_environment(deployed, monkeypatch)  # what `kapsule doctor` reads
    result = CliRunner().invoke(cli_app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "ok    upload secret" in result.output and "ok    URL signing" in result.output
    # litellm's unconfirmed 2026-11-17 for the deployment's veo-3.1-fast-generate-001: a note, no warning
    text = " ".join(result.output.split())  # the console wraps long lines
    assert "ok video model veo-3.1-fast-generate-001 in Vertex AI location us-central1 (note: a third" in text
    assert "every check passed" in result.output and "warning" not in result.output


def test_kapsule_doctor_exits_1_for_a_retired_video_model(
    deployed: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_environment(replace(deployed, video_model="veo-2.0-generate-001"), monkeypatch)
    result = CliRunner().invoke(cli_app, ["doctor"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())  # the console wraps long lines
    assert (
        "FAIL video model veo-2.0-generate-001: veo-2.0-generate-001 was retired by Google on 2026-06-30"
        in text
    )
    assert "set KAPSULE_VIDEO_MODEL to veo-3.1-generate-001" in text and "1 problem(s) found" in text


def test_kapsule_doctor_exits_1_and_says_how_to_fix(
    deployed: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_environment(replace(deployed, upload_secret=None), monkeypatch)
    result = CliRunner().invoke(cli_app, ["doctor", "--origin", "https://studio.example.com"])
    assert result.exit_code == 1, result.output
    assert "FAIL  upload secret" in result.output and "Secret Manager" in result.output
    assert "FAIL  private bucket CORS" in result.output  # the origin given, not the configured one
    assert "2 problem(s) found" in result.output


def test_the_api_refuses_jobs_while_the_preflight_finds_a_blocking_problem(
    deployed: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = replace(deployed, video_model="veo-9-ultra")
    with (
        caplog.at_level("ERROR", logger="kapsule.api"),
        TestClient(create_app(settings), base_url="http://127.0.0.1") as client,
    ):
        assert client.get("/healthz").status_code == 200  # the service is up and says why it is not ready
        answer = client.post("/v1/jobs", json={"upload_id": "anything"})
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert error["code"] == "deployment_not_ready"
        assert "video model" in error["message"] and "KAPSULE_VIDEO_MODEL" in error["message"]
    assert any("preflight: video model" in r.getMessage() for r in caplog.records)


def test_a_healthy_deployment_accepts_jobs_and_cors_alone_does_not_block(
    deployed: Settings,
) -> None:
    set_cors(deployed, [])  # studio uploads would fail: logged, but API clients can still make jobs
    with TestClient(create_app(deployed), base_url="http://127.0.0.1") as client:
        preflight: Preflight = client.app.state.preflight  # type: ignore[attr-defined]
        assert [f.check for f in preflight.findings if not f.ok] == ["private bucket CORS"]
        answer = client.post("/v1/jobs", json={"upload_id": "u_nope"})
        assert answer.status_code != 503, answer.text  # on to the usual checks (no such upload)
        assert answer.json()["error"]["code"] != "deployment_not_ready"


def test_a_fixed_problem_heals_without_a_restart(
    deployed: Settings,
) -> None:
    missing = f"{deployed.effective_delivery_url}-later"
    settings = replace(deployed, delivery_url=missing)
    now = [0.0]
    preflight = Preflight(settings, clock=lambda: now[0])
    preflight.check()
    with pytest.raises(DeploymentNotReady, match="delivery storage"):
        preflight.require_ready()

    GcsStorage(missing).bucket.client.create_bucket(missing.removeprefix("gs://"))
    with pytest.raises(DeploymentNotReady):  # not re-checked on every request
        preflight.require_ready()
    now[0] += RECHECK_S
    preflight.require_ready()  # re-checked once the interval passed: ready


def test_local_mode_runs_no_preflight(settings: Settings) -> None:
    preflight = Preflight(settings)
    assert not preflight.enabled and preflight.check() == [] and preflight.blocking() == []


def test_the_api_checks_only_what_its_own_identity_can_pass(
    deployed: Settings,
    fake_google: FakeGoogle,
) -> None:
    """deploy.sh gives the API's account no Vertex AI role and only read access to the delivery
    bucket: its preflight asks no ``models.get`` and writes no probe there, yet still finds a
    missing bucket and a model outside the table."""
    findings = api_doctor(deployed)
    assert problems(findings) == [], "\n".join(map(str, findings))
    assert fake_google.requests("get_model") == []
    assert GcsStorage(deployed.effective_delivery_url).list("doctor/") == []

    broken = replace(deployed, delivery_url="gs://no-such-bucket-kapsule", video_model="veo-9")
    failed = {f.check for f in blocking(api_doctor(broken))}
    assert {"delivery storage", "video model"} <= failed
