"""Preflight checks: does this deployment's configuration work against the real services?

Each check returns a ``Finding`` saying what is wrong and exactly how to fix it (or that it is
fine), so ``kapsule doctor``, the API's start-up in cloud mode and the job submission can all show
the same sentences. Nothing here changes the deployment except a probe object written to and
deleted from each bucket (``doctor/``), which proves write access end to end. The checks are a
list (``doctor_checks``) run at once by ``checks.run_checks``, each bounded by a deadline: a service
that never answers is named within seconds instead of after the client library's own retries.

Checks: the video and prompt models exist where each is called (``model_checks``: Veo in its
location, Gemini in its own; the video model also against the capability table and its lifecycle
column), both buckets and the job record store answer, the upload secret is set, the private
bucket's CORS admits the studio's origin (browsers PUT uploads straight to it) and the service
account can sign URLs.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import date

from kapsule.control.checks import Check, Finding, run_checks
from kapsule.control.checks import fail as _fail
from kapsule.control.checks import ok as _ok
from kapsule.control.checks import warn as _warn
from kapsule.control.model_checks import check_models, models_target
from kapsule.core.errors import JobNotFound, KapsuleError
from kapsule.core.settings import Settings
from kapsule.infra.status import StatusStore, open_status_store
from kapsule.infra.storage import CorsRule, Storage, open_storage
from kapsule.infra.storage.signing import UPLOAD_HEADERS

__all__ = [
    "UPLOAD_HEADERS",
    "Check",
    "Finding",
    "blocking",
    "cors_problem",
    "doctor_checks",
    "is_cloud",
    "problems",
    "run_doctor",
    "warnings",
]


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
    on_finding: Callable[[Finding], None] | None = None,
) -> list[Finding]:
    """Every check of ``doctor_checks``, all at once, each bounded by its deadline (``run_checks``);
    ``on_finding`` sees each line as it is known (``kapsule doctor`` prints it), the list returned
    keeps the checks' order."""
    checks = doctor_checks(
        settings, origins=origins, storage=storage, delivery=delivery, status=status, api=api, today=today
    )
    return run_checks(checks, on_finding=on_finding)


def doctor_checks(
    settings: Settings,
    *,
    origins: Sequence[str] = (),
    storage: Storage | None = None,
    delivery: Storage | None = None,
    status: StatusStore | None = None,
    api: bool = False,
    today: date | None = None,
) -> list[Check]:
    """The checks, in order; ``origins`` are the browser origins that upload (default: the
    ``cors_origins`` setting). The stores are opened from ``settings`` unless given (opening asks
    nothing of the network: each check's first call does); model retirement dates are compared with
    ``today`` (default: now, UTC).

    ``api=True`` checks what the API's own identity needs (its start-up preflight): deploy.sh gives
    the API's service account no Vertex AI role (the job calls Google) and only read access to the
    delivery bucket, so the models are checked against the table and the Veo regions (no
    ``models.get``) and the delivery bucket by a read, not a probe write.
    """
    wanted = list(origins) or [o.strip() for o in (settings.cors_origins or "").split(",") if o.strip()]
    opened: list[Finding] = []
    private = _open("private storage", settings.storage_url, storage, opened)
    public = _open("delivery storage", settings.effective_delivery_url, delivery, opened)
    checks = [
        Check("models", models_target(settings), lambda: check_models(settings, remote=not api, today=today))
    ]
    checks += [_known(finding) for finding in opened]
    if private is not None:
        checks.append(
            Check(
                "private storage",
                _target(settings.storage_url),
                lambda: [check_storage("private storage", private)],
            )
        )
    if public is not None:
        url = settings.effective_delivery_url
        read = check_readable if api else check_storage
        checks.append(Check("delivery storage", _target(url), lambda: [read("delivery storage", public)]))
    checks.append(
        Check(
            f"job records ({settings.status_url})",
            _target(settings.status_url),
            lambda: [check_status(settings, status)],
        )
    )
    if settings.video_model.startswith("veo-"):
        checks.append(
            Check("Veo quota", _target(settings.status_url), lambda: [check_quota(settings, status)])
        )
    checks.append(Check("upload secret", "the settings", lambda: [check_upload_secret(settings)]))
    if private is not None and settings.storage_url.startswith("gs://"):
        where = _target(settings.storage_url)
        checks.append(Check("private bucket CORS", where, lambda: [check_cors(private, wanted)]))
        checks.append(Check("URL signing", f"{where} and IAM Credentials", lambda: [check_signing(private)]))
    return checks


def _known(finding: Finding) -> Check:
    """A check whose finding is already known (a store that could not even be opened)."""
    return Check(finding.check, "the settings", lambda: [finding])


def _target(url: str) -> str:
    """What a store at ``url`` talks to, as named when it does not answer in time."""
    if url.startswith("gs://"):
        from kapsule.infra.storage.gcs import api_endpoint as storage_endpoint

        return f"Cloud Storage at {storage_endpoint()} ({url})"
    if url.startswith("firestore://"):
        from kapsule.infra.status.firestore import api_endpoint as firestore_endpoint

        return f"Firestore at {firestore_endpoint()} ({url})"
    return url


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
    key = quota_key(model, settings.veo_location if settings.genai_use_vertexai else "global")
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
