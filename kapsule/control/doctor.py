"""Preflight checks: does this deployment's configuration work against the real services?

Each check returns a ``Finding`` saying what is wrong and exactly how to fix it (or that it is
fine), so ``kapsule doctor``, the API's start-up in cloud mode and the job submission can all show
the same sentences. Nothing here changes the deployment except a probe object written to and
deleted from each bucket (``doctor/``), which proves write access end to end.

Checks: the video and prompt models exist (google-genai ``models.get``; the video model also against
the capability table, including its lifecycle column: a model past a retirement date Google documents
is a blocking problem, a date only a third party gives, or a Google date still ahead, a warning that
fails nothing; and the Vertex location against the regions documented for Veo: in Vertex mode
google-genai asks ``models.get`` for a base model at the regional endpoint's host, not under a
location path, so the location is checked from the table), both buckets and the job
record store answer, the upload secret is set, the private bucket's CORS admits the studio's origin
(browsers PUT uploads straight to it) and the service account can sign URLs.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from kapsule.catalog import video_models
from kapsule.core.errors import ConfigError, GoogleRequestRefused, JobNotFound, KapsuleError
from kapsule.core.settings import Settings
from kapsule.infra.status import StatusStore, open_status_store
from kapsule.infra.storage import CorsRule, Storage, open_storage
from kapsule.infra.storage.signing import UPLOAD_HEADERS


@dataclass(frozen=True)
class Finding:
    """One check's verdict: ``ok``, or what is wrong (``problem``) and how to fix it (``fix``).

    A ``warning`` is ``ok`` (it fails nothing and blocks no job) but still says what may go wrong and
    what to do (``problem``, ``fix``): e.g. a model retirement date only a third party gives.
    """

    check: str
    ok: bool
    problem: str = ""
    fix: str = ""
    warning: bool = False

    def __str__(self) -> str:
        if self.ok and not self.warning:
            return f"ok    {self.check}"
        return f"{'WARN' if self.ok else 'FAIL'}  {self.check}: {self.problem}\n      fix: {self.fix}"


def _ok(check: str) -> Finding:
    return Finding(check, True)


def _fail(check: str, problem: str, fix: str) -> Finding:
    return Finding(check, False, problem, fix)


def _warn(check: str, problem: str, fix: str) -> Finding:
    return Finding(check, True, problem, fix, warning=True)


def is_cloud(settings: Settings) -> bool:
    """Cloud mode: files in Cloud Storage or jobs on Cloud Run (where the checks below matter)."""
    return settings.storage_url.startswith("gs://") or settings.launcher.startswith("cloudrun://")


def run_doctor(
    settings: Settings,
    *,
    origins: Sequence[str] = (),
    storage: Storage | None = None,
    delivery: Storage | None = None,
    status: StatusStore | None = None,
    api: bool = False,
    today: date | None = None,
) -> list[Finding]:
    """Every check, in order; ``origins`` are the browser origins that upload (default: the
    ``cors_origins`` setting). The stores are opened from ``settings`` unless given; model retirement
    dates are compared with ``today`` (default: now, UTC).

    ``api=True`` checks what the API's own identity needs (its start-up preflight): deploy.sh gives
    the API's service account no Vertex AI role (the job calls Google) and only read access to the
    delivery bucket, so the models are checked against the table and the Veo regions (no
    ``models.get``) and the delivery bucket by a read, not a probe write.
    """
    wanted = list(origins) or [o.strip() for o in (settings.cors_origins or "").split(",") if o.strip()]
    findings = check_models(settings, remote=not api, today=today)
    private = _open("private storage", settings.storage_url, storage, findings)
    public = _open("delivery storage", settings.effective_delivery_url, delivery, findings)
    if private is not None:
        findings.append(check_storage("private storage", private))
    if public is not None:
        findings.append(
            check_readable("delivery storage", public) if api else check_storage("delivery storage", public)
        )
    findings.append(check_status(settings, status))
    if settings.video_model.startswith("veo-"):
        findings.append(check_quota(settings, status))
    findings.append(check_upload_secret(settings))
    if private is not None and settings.storage_url.startswith("gs://"):
        findings.append(check_cors(private, wanted))
        findings.append(check_signing(private))
    return findings


def problems(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if not f.ok]


def warnings(findings: Sequence[Finding]) -> list[Finding]:
    """Findings that pass but say what may go wrong (never a problem, never blocking)."""
    return [f for f in findings if f.ok and f.warning]


# Problems that stop only the studio's browser uploads, not a job: the API still accepts jobs with them.
ADVISORY_CHECKS = frozenset({"private bucket CORS"})


def blocking(findings: Sequence[Finding]) -> list[Finding]:
    """The problems that would make a job fail (or bill wrongly): the API accepts no job while any exist."""
    return [f for f in problems(findings) if f.check not in ADVISORY_CHECKS]


def _open(name: str, url: str, given: Storage | None, findings: list[Finding]) -> Storage | None:
    if given is not None:
        return given
    try:
        return open_storage(url)
    except KapsuleError as exc:
        findings.append(_fail(name, f"cannot open {url}: {exc.message}", "fix the storage URL setting"))
        return None


# -- models -----------------------------------------------------------------------------------------


def check_models(
    settings: Settings,
    get_model: Callable[[str], Any] | None = None,
    *,
    remote: bool = True,
    today: date | None = None,
) -> list[Finding]:
    """The configured video and prompt models exist where they are asked for (``models.get``; with
    ``remote=False`` only the capability table and the Veo regions, no request).

    The video model's lifecycle is read from the table: retired by ``today`` (a date Google documents)
    is a problem whose fix names Google's replacement, and it is not asked for (it would answer 404);
    a date only a third party gives, or Google's still ahead, is a warning.
    """
    findings: list[Finding] = []
    mode = video_models.mode_of(settings)
    where = f"Vertex AI location {settings.vertex_location}" if mode == "vertex" else "the Gemini API"
    models: list[tuple[str, str]] = []
    video = settings.video_model
    if video not in video_models.LOCAL_MODELS:
        try:
            video_models.capabilities(video, mode)
            gone = video_models.retired(video, mode, today=today)
            if gone is not None:
                instead = gone.replacement or " or ".join(video_models.usable_models(mode, today=today))
                findings.append(
                    _fail(
                        f"video model {video}",
                        video_models.retired_message(video, mode, gone),
                        f"set KAPSULE_VIDEO_MODEL to {instead} (on Cloud Run: run deploy/deploy.sh again "
                        "with it set)",
                    )
                )
            else:
                models.append(("video model", video))
                warning = video_models.lifecycle_warning(video, mode, today=today)
                if warning is not None:
                    findings.append(_warn(f"video model {video} lifecycle", *warning))
            if mode == "vertex" and settings.vertex_location not in video_models.VEO_VERTEX_LOCATIONS:
                findings.append(
                    _fail(
                        f"Veo location {settings.vertex_location}",
                        f"{settings.vertex_location} is not a region Google documents for Veo "
                        "(a Veo start request there answers 404)",
                        f"set KAPSULE_VERTEX_LOCATION to {' or '.join(video_models.VEO_VERTEX_LOCATIONS)} "
                        "(it need not be the Cloud Run region)",
                    )
                )
        except KapsuleError as exc:
            known = ", ".join(video_models.usable_models(mode, today=today))
            findings.append(_fail("video model", exc.message, f"set KAPSULE_VIDEO_MODEL to one of: {known}"))
    if settings.prompt_model != "local":
        models.append(("prompt model", settings.prompt_model))
    if not models:
        return findings or [_ok("models (local renderer and writer)")]
    if not remote:  # a warning alone still passes
        if problems(findings):
            return findings
        return [_ok("models (against the capability table; models.get not asked)"), *findings]
    if get_model is None:
        try:
            from kapsule.infra.genai_client import make_genai_client

            client = make_genai_client(settings)
        except ConfigError as exc:
            return [*findings, _fail("Google credentials", exc.message, "see docs/cloud-settings.md")]
        get_model = _getter(client)
    for label, model in models:
        check = f"{label} {model} in {where}"
        try:
            get_model(model)
        except GoogleRequestRefused as exc:
            findings.append(_fail(check, exc.message, _model_fix(exc.message, model, mode)))
        except KapsuleError as exc:
            findings.append(_fail(check, exc.message, "check the network, then run doctor again"))
        else:
            findings.append(_ok(check))
    return findings


def _getter(client: Any) -> Callable[[str], Any]:
    from kapsule.infra.genai_client import with_retries

    return lambda model: with_retries(lambda: client.models.get(model=model), f"models.get {model}")


def _model_fix(message: str, model: str, mode: str) -> str:
    if " 404 " in message:
        if mode == "vertex":
            return (
                f"{model} is retired or not served in this location: pick a current model id, or set "
                "KAPSULE_VERTEX_LOCATION to a region that serves it (docs/cloud-settings.md lists them)"
            )
        return f"{model} is retired or unknown to the Gemini API: pick a current model id"
    if " 403 " in message or " 401 " in message:
        return (
            "grant the service account roles/aiplatform.user and enable aiplatform.googleapis.com "
            "(deploy/deploy.sh does both), or check GEMINI_API_KEY"
        )
    return "see the message"


# -- stores -----------------------------------------------------------------------------------------


def check_storage(name: str, storage: Storage) -> Finding:
    """Write, read back and delete a probe object: reachable, and writable by this identity."""
    key = f"doctor/probe-{secrets.token_hex(6)}"
    try:
        storage.write_bytes(key, b"kapsule doctor", content_type="text/plain")
        if storage.read_bytes(key) != b"kapsule doctor":
            return _fail(name, f"{storage!r} returned other bytes than were written", "check the bucket")
        storage.delete(key)
    except KapsuleError as exc:
        return _fail(
            name,
            f"{storage!r} is not usable: {exc.message}",
            "create the bucket (deploy/deploy.sh does) and grant this service account "
            "roles/storage.objectUser on it",
        )
    return _ok(name)


def check_readable(name: str, storage: Storage) -> Finding:
    """The bucket answers a read (the API only reads the delivery bucket: no probe write)."""
    try:
        storage.list("doctor/")  # a listing (not ``exists``): a missing bucket is an error, not False
    except KapsuleError as exc:
        return _fail(
            name,
            f"{storage!r} is not readable: {exc.message}",
            "create the bucket (deploy/deploy.sh does) and grant this service account "
            "roles/storage.objectViewer on it",
        )
    return _ok(name)


def check_status(settings: Settings, status: StatusStore | None = None) -> Finding:
    """The job record store answers (a read of a job that cannot exist must say 'not found')."""
    name = f"job records ({settings.status_url})"
    try:
        store = status or open_status_store(settings.status_url)
        store.get(f"doctor-{secrets.token_hex(6)}")
    except JobNotFound:
        return _ok(name)
    except KapsuleError as exc:
        return _fail(name, exc.message, "create the Firestore database and grant roles/datastore.user")
    except Exception as exc:  # the client library's own errors: unreachable, permission, no database
        return _fail(
            name,
            f"{type(exc).__name__}: {exc}",
            "create the Firestore database (native mode) and grant this service account roles/datastore.user",
        )
    return _fail(name, "a job that cannot exist was found", "check KAPSULE_STATUS_URL")


def check_quota(settings: Settings, status: StatusStore | None = None) -> Finding:
    """The shared Veo quota of the default video model: its size, its rate now and each job's share."""
    from kapsule.infra.quota import ceiling_rpm, describe_quota, quota_key

    model = settings.video_model
    key = quota_key(model, settings.vertex_location if settings.genai_use_vertexai else "global")
    ceiling = ceiling_rpm(model, settings.veo_requests_per_minute)
    try:
        state = (status or open_status_store(settings.status_url)).quota_state(key)
    except KapsuleError as exc:
        return _warn(f"Veo quota {key}", exc.message, "check KAPSULE_STATUS_URL")
    return _ok(f"Veo quota {describe_quota(key, state, ceiling)}")


def check_upload_secret(settings: Settings) -> Finding:
    """In cloud mode the upload secret must be shared by every API instance (Idempotency-Key mapping)."""
    secret = settings.upload_secret.get_secret_value() if settings.upload_secret is not None else ""
    if secret or not is_cloud(settings):
        return _ok("upload secret")
    return _fail(
        "upload secret",
        "KAPSULE_UPLOAD_SECRET is not set: each API instance invents its own, so a retried request that "
        "reaches another instance (or a new revision) creates a second job and a second Veo bill",
        "store a long random value in Secret Manager and mount it as KAPSULE_UPLOAD_SECRET "
        "(deploy/deploy.sh does)",
    )


# -- the private bucket: CORS and signing --------------------------------------------------------------


def cors_problem(rules: Sequence[CorsRule], origin: str) -> str:
    """Why a browser at ``origin`` cannot PUT a signed upload under these CORS rules ("" if it can)."""
    for rule in rules:
        if origin not in rule.origins and "*" not in rule.origins:
            continue
        methods = {m.upper() for m in rule.methods}
        headers = {h.lower() for h in rule.response_headers}
        missing = [h for h in UPLOAD_HEADERS if h not in headers]
        if "PUT" not in methods:
            return f"the CORS rule for {origin} does not allow PUT"
        if missing:
            return f"the CORS rule for {origin} does not list the header(s) {', '.join(missing)}"
        return ""
    return f"no CORS rule admits {origin}"


def check_cors(storage: Storage, origins: Sequence[str]) -> Finding:
    name = "private bucket CORS"
    if not origins:
        return _fail(
            name,
            "no browser origin is known to check the bucket's CORS against",
            "set KAPSULE_CORS_ORIGINS to the studio's origin (the API service's URL)",
        )
    direct = storage.direct_access
    if direct is None:  # browsers upload through the API: no bucket of theirs to reach
        return _ok(name)
    try:
        rules = direct.cors_rules()
    except KapsuleError as exc:  # a missing bucket is check_storage's finding
        return _fail(
            name, f"cannot read the bucket's CORS: {exc.message}", "grant roles/storage.admin to run doctor"
        )
    reasons = [p for p in (cors_problem(rules, o) for o in origins) if p]
    if not reasons:
        return _ok(name)
    return _fail(
        name,
        "; ".join(reasons) + ": browsers cannot upload (the PUT is a preflighted cross-origin request)",
        f"gcloud storage buckets update {direct.bucket_url} --cors-file=cors.json with origin "
        f"{list(origins)}, method PUT, responseHeader {list(UPLOAD_HEADERS)} (deploy/deploy.sh does)",
    )


def check_signing(storage: Storage) -> Finding:
    """The identity can sign V4 URLs (a key, or signBlob through IAM Credentials on itself)."""
    name = "URL signing"
    direct = storage.direct_access
    if direct is None:  # nothing is signed: the API serves the files itself
        return _ok(name)
    try:
        direct.signed_download_url("doctor/probe")
    except KapsuleError as exc:
        return _fail(
            name,
            exc.message,
            "grant the service account roles/iam.serviceAccountTokenCreator on itself and enable "
            "iamcredentials.googleapis.com (deploy/deploy.sh does)",
        )
    return _ok(name)
