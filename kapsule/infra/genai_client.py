"""The one place that builds a google-genai ``Client`` from settings.

Two modes, picked by settings (never by a test-only branch):
- Vertex AI (``GOOGLE_GENAI_USE_VERTEXAI=true``): credentials come from Application Default
  Credentials (``google.auth.default()``), i.e. the Cloud Run job's service account; no API key at
  all. Tests make ADC real and offline with a service-account file whose ``token_uri`` is a local
  server.
- Gemini API key (``GEMINI_API_KEY``): for a creative technologist's laptop.

``KAPSULE_GENAI_BASE_URL`` overrides the endpoint in both modes (the local test server, a proxy).
The client is built on first use by each generator, never at import.

One client per service and so per location (Vertex AI): Gemini is called in ``gemini_location``
(default ``global``, the only location serving the Gemini 3 previews), Veo in ``veo_location`` (a
region Google documents for Veo; Veo is not on the global endpoint). In Gemini API mode there is no
location. The Gemini API key path to Veo needs google-genai 2.x: 3.x refuses ``generate_videos``
there before sending anything, so the Veo client refuses such an SDK up front, with the way out.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, TypeVar

from kapsule.core.errors import ConfigError, GenerationError, GoogleRequestRefused, StartOutcomeUnknown
from kapsule.core.settings import Settings

if TYPE_CHECKING:
    from google import genai

log = logging.getLogger(__name__)

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"

# Retries of one HTTP call for named transient failures (429, 5xx, network timeouts). Module
# constants so tests can shrink them; the library's own retries are switched off below.
RETRY_ATTEMPTS = 6
RETRY_BASE_S = 2.0  # first backoff; doubles each attempt
RETRY_MAX_S = 60.0
RETRY_JITTER = 0.5  # +- this fraction of the backoff, so throttled workers do not retry in lockstep
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})

T = TypeVar("T")

# Google's Gemini 3 prompting guide: keep the temperature at its default of 1.0 ("lower values can
# cause looping or degraded performance"). Earlier families have no such advice: there the caller's
# choice stands (docs/cloud-settings.md, "Gemini").
GEMINI_3_TEMPERATURE = 1.0
_FAMILY = re.compile(r"gemini-(\d+)")


def temperature_for(model: str, preferred: float) -> float:
    """The temperature to send ``model``: Google's 1.0 for Gemini 3 and later, else ``preferred``."""
    family = _FAMILY.match(model)
    if family is not None and int(family.group(1)) >= 3:
        return GEMINI_3_TEMPERATURE
    return preferred


def is_transient(exc: BaseException) -> bool:
    """True for failures a later attempt can fix: throttling, server errors, network timeouts."""
    import httpx
    from google.genai import errors as genai_errors

    if isinstance(exc, genai_errors.APIError):
        return exc.code in TRANSIENT_STATUS
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError)


# What to change when Google refuses a call in a way no retry can fix (status -> the usual causes).
REFUSAL_HINTS = {
    400: "the request is invalid (a parameter outside the model's limits, see video_models)",
    401: "the credentials were rejected: check GEMINI_API_KEY, or the service account's Application "
    "Default Credentials",
    403: "permission denied: the service account needs roles/aiplatform.user and the project needs the "
    "Vertex AI API (aiplatform.googleapis.com) enabled; an API key must be allowed to call this API",
    404: "not found: the model id does not exist, is retired, or is not served in this location; pick a "
    "current model, or set the location that serves it (KAPSULE_GEMINI_LOCATION for Gemini, global for the "
    "previews; KAPSULE_VEO_LOCATION for Veo)",
}


def refusal(exc: BaseException, what: str) -> GoogleRequestRefused | None:
    """``exc`` as a ``GoogleRequestRefused`` naming ``what`` and what to fix, if Google refused the call."""
    from google.genai import errors as genai_errors

    if not isinstance(exc, genai_errors.APIError) or exc.code not in REFUSAL_HINTS:
        return None
    return GoogleRequestRefused(
        f"{what}: Google answered {exc.code} {exc.status or ''}: {exc.message or exc}; "
        f"{REFUSAL_HINTS[exc.code]}"
    )


def with_retries(
    call: Callable[[], T], what: str, *, retry: Callable[[BaseException], bool] = is_transient
) -> T:
    """Run ``call``, retrying the failures ``retry`` accepts (default: transient ones) with exponential
    backoff and jitter.

    A refusal no retry can fix (400/401/403/404) becomes ``GoogleRequestRefused`` at once, with the
    likely cause; other errors ``retry`` refuses propagate unchanged; one that outlives
    ``RETRY_ATTEMPTS`` becomes a ``GenerationError`` naming ``what``.
    """
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return call()
        except Exception as exc:
            refused = refusal(exc, what)
            if refused is not None:
                raise refused from exc
            if not retry(exc):
                raise
            if attempt == RETRY_ATTEMPTS:
                raise GenerationError(f"{what} still failing after {attempt} attempts: {exc}") from exc
            delay = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (attempt - 1))
            delay *= 1 + random.uniform(-RETRY_JITTER, RETRY_JITTER)  # noqa: S311 - jitter, not crypto
            log.info("%s: transient %s, retry %d in %.2f s", what, exc, attempt, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def never_started(exc: BaseException) -> bool:
    """True when a request certainly started nothing: throttled (429) or never connected."""
    import httpx
    from google.genai import errors as genai_errors

    if isinstance(exc, genai_errors.APIError):
        return exc.code == 429
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def send_once(call: Callable[[], T], what: str) -> T:
    """Run a call that starts paid work (a Veo ``generate_videos``), which has no idempotency key.

    It is retried only when it certainly started nothing (``never_started``). Any other failure (a
    5xx, a timeout or a dropped connection after the request went out) leaves its outcome unknown:
    Google may have started an operation that bills, so it is never sent again blindly, and
    ``StartOutcomeUnknown`` is raised for the caller to record and report.
    """
    import httpx
    from google.genai import errors as genai_errors

    try:
        return with_retries(call, what, retry=never_started)
    except (GoogleRequestRefused, GenerationError):
        raise
    except Exception as exc:
        server = isinstance(exc, genai_errors.APIError) and (exc.code >= 500 or exc.code == 408)
        if server or isinstance(exc, httpx.TransportError):  # sent; the answer failed or never came
            raise StartOutcomeUnknown(
                f"{what}: the answer was lost ({type(exc).__name__}: {exc}); Google may have started the "
                "operation, so it is not sent again (it would bill twice)"
            ) from exc
        raise


def genai_mode(settings: Settings) -> str:
    """``"vertex"`` or ``"api_key"``; raises ``ConfigError`` when neither is configured."""
    if settings.genai_use_vertexai:
        return "vertex"
    if settings.gemini_api_key is not None and settings.gemini_api_key.get_secret_value():
        return "api_key"
    raise ConfigError(
        "Gemini/Veo need credentials: set GOOGLE_GENAI_USE_VERTEXAI=true with GOOGLE_CLOUD_PROJECT "
        "(Application Default Credentials), or GEMINI_API_KEY; or use KAPSULE_VIDEO_MODEL=local and "
        "KAPSULE_PROMPT_MODEL=local"
    )


Service = Literal["gemini", "veo"]

# The first google-genai major version whose ``generate_videos`` refuses Gemini API (key) mode with a
# ValueError before any request ("only supported in Gemini Enterprise Agent Platform mode"; read in
# the SDK's source, 3.0 to 3.6). Google's Gemini API video guide still documents Veo with a key, so
# the path is kept on 2.x (pyproject pins google-genai<3) and refused clearly on anything newer.
API_KEY_VEO_SDK_MAJOR = 3


def location_for(settings: Settings, service: Service) -> str:
    """The Vertex AI location ``service`` is called in."""
    return settings.veo_location if service == "veo" else settings.gemini_location


def api_endpoint(settings: Settings, service: Service) -> str:
    """The base URL the client for ``service`` calls (google-genai's own choice of host)."""
    if settings.genai_base_url:
        return settings.genai_base_url
    if not settings.genai_use_vertexai:
        return "https://generativelanguage.googleapis.com/"
    location = location_for(settings, service)
    if location == "global":
        return "https://aiplatform.googleapis.com/"
    return f"https://{location}-aiplatform.googleapis.com/"


def api_key_veo_problem(settings: Settings, sdk_version: str | None = None) -> str:
    """Why Veo cannot be called with these settings' credentials and this SDK ("" if it can):
    a Gemini API key with google-genai 3 or later, which refuses ``generate_videos`` in that mode."""
    if settings.genai_use_vertexai:
        return ""
    if sdk_version is None:
        from importlib.metadata import version

        sdk_version = version("google-genai")
    major = int(sdk_version.split(".", 1)[0])
    if major < API_KEY_VEO_SDK_MAJOR:
        return ""
    return (
        f"google-genai {sdk_version} refuses Veo (generate_videos) with a Gemini API key: it allows it "
        "only in Vertex AI mode. Use Vertex AI (GOOGLE_GENAI_USE_VERTEXAI=true with a project), or install "
        "google-genai<3 as Kapsule's pyproject pins it"
    )


def make_genai_client(settings: Settings, service: Service) -> genai.Client:
    """A client for the configured mode, calling ``service`` in its own location; ``ConfigError`` with
    a precise message when it can't be built (or, for Veo, when this SDK would refuse every call)."""
    from google import genai
    from google.genai import types

    mode = genai_mode(settings)
    if service == "veo" and (problem := api_key_veo_problem(settings)):
        raise ConfigError(problem)
    # Retries are ours (named transient errors, limits as module constants): the library's own are off
    # so one 429 is never retried by two layers at once.
    http_options = types.HttpOptions(
        base_url=settings.genai_base_url or None, retry_options=types.HttpRetryOptions(attempts=1)
    )
    if mode == "api_key":
        assert settings.gemini_api_key is not None
        return genai.Client(api_key=settings.gemini_api_key.get_secret_value(), http_options=http_options)

    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, adc_project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    except DefaultCredentialsError as exc:
        raise ConfigError(
            "Vertex AI mode needs Application Default Credentials: run `gcloud auth application-default "
            f"login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service-account file ({exc})"
        ) from exc
    project = settings.google_cloud_project or adc_project
    if not project:
        raise ConfigError("Vertex AI mode needs GOOGLE_CLOUD_PROJECT (the project that pays for Veo/Gemini)")
    return genai.Client(
        vertexai=True,
        project=project,
        location=location_for(settings, service),
        credentials=credentials,
        http_options=http_options,
    )
