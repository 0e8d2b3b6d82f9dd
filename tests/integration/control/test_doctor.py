"""``run_doctor`` against the fake Google server and the storage/Firestore emulators: a healthy
deployment passes every check, and each misconfiguration is reported with its fix."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from kapsule.control.doctor import (
    UPLOAD_HEADERS,
    Finding,
    blocking,
    cors_problem,
    problems,
    run_doctor,
    warnings,
)
from kapsule.core.settings import Settings
from kapsule.infra.storage import CorsRule
from kapsule.infra.storage.gcs import GcsStorage
from kapsule.infra.storage.signing import UrlSigner
from tests.support.deployed import GOOD_CORS, ORIGIN, set_cors
from tests.support.fake_google import FakeGoogle
from tests.support.settings import replace


def _failed(findings: list[Finding], check: str) -> Finding:
    found = [f for f in problems(findings) if check in f.check]
    assert len(found) == 1, [str(f) for f in findings]
    return found[0]


def test_a_healthy_deployment_passes_every_check(deployed: Settings, fake_google: FakeGoogle) -> None:
    findings = run_doctor(deployed)
    assert problems(findings) == [], "\n".join(map(str, findings))
    checks = " | ".join(f.check for f in findings)
    for part in ("video model", "prompt model", "private storage", "delivery storage", "job records",
                 "upload secret", "CORS", "URL signing"):  # fmt: skip
        assert part in checks
    gets = fake_google.requests("get_model")
    assert {r.model for r in gets} == {"veo-3.1-fast-generate-001", "gemini-2.5-flash"}
    assert all(r.vertex and r.path.endswith(f"/publishers/google/models/{r.model}") for r in gets)


def test_models_missing_from_the_location_retired_or_forbidden(
    deployed: Settings, fake_google: FakeGoogle
) -> None:
    elsewhere = replace(deployed, veo_location="europe-west9")
    found = _failed(run_doctor(elsewhere), "Veo location")
    assert "europe-west9" in found.problem and "KAPSULE_VEO_LOCATION to us-central1" in found.fix

    fake_google.gemini_models.discard("gemini-2.5-flash")  # retired
    found = _failed(run_doctor(deployed), "prompt model")
    assert "404" in found.problem and "pick a current model id" in found.fix

    fake_google.gemini_models.add("gemini-2.5-flash")
    fake_google.fail_next = {"get_model": [403]}
    found = _failed(run_doctor(deployed), "video model")
    assert "403" in found.problem and "roles/aiplatform.user" in found.fix


def test_a_video_model_outside_the_table(deployed: Settings) -> None:
    found = _failed(run_doctor(replace(deployed, video_model="veo-9-ultra")), "video model")
    assert "unknown video model 'veo-9-ultra'" in found.problem and "veo-3.1-generate-001" in found.fix


def test_a_video_model_google_retired_blocks_and_names_the_replacement(
    deployed: Settings, fake_google: FakeGoogle
) -> None:
    """Google's retirement date for veo-3.0-generate-001 on Vertex AI is 2026-06-30: from then on it
    is a blocking problem (not asked for: it would answer 404); the day before, a warning."""
    settings = replace(deployed, video_model="veo-3.0-generate-001")
    for today in (None, date(2026, 6, 30)):  # None: the real date, later than 2026-06-30
        findings = run_doctor(settings, today=today)
        found = _failed(findings, "video model")
        assert found.check == "video model veo-3.0-generate-001" and found in blocking(findings)
        assert "retired by Google on 2026-06-30 in vertex mode" in found.problem
        assert (
            "docs.cloud.google.com/gemini-enterprise-agent-platform/models/veo/3-0-generate" in found.problem
        )
        assert "set KAPSULE_VIDEO_MODEL to veo-3.1-generate-001" in found.fix
    assert "veo-3.0-generate-001" not in {r.model for r in fake_google.requests("get_model")}
    assert blocking(run_doctor(settings, api=True))  # the API's preflight too (no models.get there)

    before = run_doctor(settings, today=date(2026, 6, 29))
    assert problems(before) == [], "\n".join(map(str, before))
    (warned,) = warnings(before)
    assert "Google retires veo-3.0-generate-001 in vertex mode on 2026-06-30" in warned.problem
    assert "move to veo-3.1-generate-001 before 2026-06-30" in warned.fix


def test_a_retirement_date_only_a_third_party_gives_is_a_note_that_warns_of_nothing(
    deployed: Settings, fake_google: FakeGoogle
) -> None:
    """litellm dates veo-3.1-fast-generate-001 (Vertex) 2026-11-17; Google's pages still list it as
    supported and date nothing: the ok line carries a note, no warning is counted."""
    for api in (False, True):
        findings = run_doctor(deployed, today=date(2026, 12, 2), api=api)
        assert problems(findings) == [] and warnings(findings) == [], "\n".join(map(str, findings))
        (video,) = [f for f in findings if f.check.startswith("video model veo-3.1-fast-generate-001")]
        assert "deprecation date of 2026-11-17 (past); no Google page dates it" in video.note
        assert "litellm" in video.note and str(video).startswith("ok    video model")
    assert "veo-3.1-fast-generate-001" in {r.model for r in fake_google.requests("get_model")}  # still asked


def test_each_service_is_checked_in_its_own_location(deployed: Settings, fake_google: FakeGoogle) -> None:
    """Gemini previews are served only on the global endpoint, Veo only in a few regions: with one
    location for both, one of them cannot be reached; with one each, both are."""
    preview = replace(deployed, prompt_model="gemini-3-flash-preview")
    findings = run_doctor(preview)
    assert problems(findings) == [], "\n".join(map(str, findings))
    checks = {f.check for f in findings}
    assert "prompt model gemini-3-flash-preview in Vertex AI location global" in checks
    assert "video model veo-3.1-fast-generate-001 in Vertex AI location us-central1" in checks
    (count,) = fake_google.requests("count")
    assert "/locations/global/publishers/google/models/gemini-3-flash-preview:countTokens" in count.path

    found = _failed(run_doctor(replace(preview, gemini_location="us-central1")), "prompt model")
    assert "404" in found.problem and "KAPSULE_GEMINI_LOCATION=global" in found.fix
    found = _failed(run_doctor(replace(preview, veo_location="global")), "Veo location")
    assert "not served on the global endpoint" in found.problem and "KAPSULE_VEO_LOCATION" in found.fix


def test_missing_bucket_and_broken_record_store(deployed: Settings) -> None:
    findings = run_doctor(replace(deployed, delivery_url="gs://no-such-bucket-kapsule"))
    found = _failed(findings, "delivery storage")
    assert "no-such-bucket-kapsule" in found.problem and "does not exist" in found.problem
    assert "roles/storage.objectUser" in found.fix

    found = _failed(run_doctor(replace(deployed, status_url="firestore://")), "job records")
    assert "Firestore" in found.fix


def test_the_upload_secret_must_be_set_in_cloud_mode(deployed: Settings) -> None:
    found = _failed(run_doctor(replace(deployed, upload_secret=None)), "upload secret")
    assert "second job" in found.problem and "Secret Manager" in found.fix


@pytest.mark.parametrize(
    ("rules", "reason"),
    [
        ([], "no CORS rule admits"),
        ([{**GOOD_CORS[0], "origin": ["https://studio.example.com"]}], "no CORS rule admits"),
        ([{**GOOD_CORS[0], "method": ["GET"]}], "does not allow PUT"),
        ([{**GOOD_CORS[0], "responseHeader": ["Content-Type"]}], "x-goog-content-length-range"),
    ],
)
def test_the_private_buckets_cors_must_admit_the_studio(
    deployed: Settings, rules: list[dict[str, Any]], reason: str
) -> None:
    set_cors(deployed, rules)
    found = _failed(run_doctor(deployed), "CORS")
    assert reason in found.problem and "--cors-file" in found.fix
    assert (
        cors_problem([CorsRule(origins=("*",), methods=("PUT",), response_headers=UPLOAD_HEADERS)], ORIGIN)
        == ""
    )


def test_no_origin_known_is_a_finding(deployed: Settings) -> None:
    unknown = replace(deployed, cors_origins=None)
    assert "KAPSULE_CORS_ORIGINS" in _failed(run_doctor(unknown), "CORS").fix
    assert not problems([f for f in run_doctor(unknown, origins=[ORIGIN]) if "CORS" in f.check])


def test_credentials_that_cannot_sign_urls(deployed: Settings) -> None:
    from google.oauth2.credentials import Credentials

    user = UrlSigner(Credentials(token="a-user-token"))  # type: ignore[no-untyped-call]  # no key, no SA email
    storage = GcsStorage(deployed.storage_url, signer=user)
    found = _failed(run_doctor(deployed, storage=storage), "URL signing")
    assert "cannot sign URLs" in found.problem and "serviceAccountTokenCreator" in found.fix
