"""Doctor's model checks: the video and prompt models exist, and are served where they are called.

Each service is checked with its own client, in its own location (``genai_client``): Veo in
``veo_location``, Gemini in ``gemini_location``. Veo's location is checked against the regions the
capability table documents (in Vertex mode google-genai asks ``models.get`` for a base model at the
regional host, with no location in the path, so a 200 there proves nothing about the region); a
Gemini model is also asked ``countTokens`` (free of charge) at its location, the same path a
``generateContent`` takes, so a preview model asked for outside ``global`` is named before any job.

The video model's lifecycle is read from the table: retired by ``today`` (a date Google documents)
is a problem whose fix names Google's replacement, and it is not asked for (it would answer 404); a
Google date still ahead is a warning; a date only a third party gives is a note on the ok line.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from kapsule.catalog import video_models
from kapsule.control.checks import Finding, fail, ok, warn
from kapsule.core.errors import ConfigError, GoogleRequestRefused, KapsuleError
from kapsule.core.settings import Settings
from kapsule.infra.genai_client import (
    Service,
    api_endpoint,
    api_key_veo_problem,
    location_for,
    make_genai_client,
    with_retries,
)


def models_target(settings: Settings) -> str:
    """What the model checks talk to, named if they do not answer in time."""
    veo, gemini = api_endpoint(settings, "veo"), api_endpoint(settings, "gemini")
    hosts = veo if veo == gemini else f"{veo} (Veo) and {gemini} (Gemini)"
    return f"Google's model API at {hosts}"


def check_models(settings: Settings, *, remote: bool = True, today: date | None = None) -> list[Finding]:
    """The video model, then the prompt model (one after the other: one deadline bounds both).

    ``remote=False`` (the API's identity, which has no Vertex AI role) checks only against the table
    and the documented Veo regions, asking Google nothing.
    """
    findings = check_video_model(settings, remote=remote, today=today)
    findings += check_prompt_model(settings, remote=remote)
    return findings


def _where(settings: Settings, service: Service) -> str:
    if not settings.genai_use_vertexai:
        return "the Gemini API"
    return f"Vertex AI location {location_for(settings, service)}"


def check_video_model(settings: Settings, *, remote: bool, today: date | None = None) -> list[Finding]:
    video = settings.video_model
    if video in video_models.LOCAL_MODELS:
        return [ok("video model (local renderer)")]
    mode = video_models.mode_of(settings)
    label = f"video model {video}"
    try:
        video_models.capabilities(video, mode)
    except KapsuleError as exc:
        known = ", ".join(video_models.usable_models(mode, today=today))
        return [fail("video model", exc.message, f"set KAPSULE_VIDEO_MODEL to one of: {known}")]
    gone = video_models.retired(video, mode, today=today)
    if gone is not None:
        instead = gone.replacement or " or ".join(video_models.usable_models(mode, today=today))
        return [
            fail(
                label,
                video_models.retired_message(video, mode, gone),
                f"set KAPSULE_VIDEO_MODEL to {instead} (on Cloud Run: run deploy/deploy.sh again "
                "with it set)",
            )
        ]
    findings: list[Finding] = []
    warning = video_models.lifecycle_warning(video, mode, today=today)
    if warning is not None:
        findings.append(warn(f"{label} lifecycle", *warning))
    note = video_models.lifecycle_note(video, mode, today=today)
    location = settings.veo_location
    if mode == "vertex" and location not in video_models.VEO_VERTEX_LOCATIONS:
        findings.append(
            fail(
                f"Veo location {location}",
                f"{location} is not a region Google documents for Veo (a Veo start request there answers "
                "404; Veo is not served on the global endpoint)",
                f"set KAPSULE_VEO_LOCATION to {' or '.join(video_models.VEO_VERTEX_LOCATIONS)} (it need "
                "not be the Cloud Run region, nor Gemini's KAPSULE_GEMINI_LOCATION)",
            )
        )
    sdk = api_key_veo_problem(settings)
    if sdk:
        findings.append(fail(f"{label} with a Gemini API key", sdk, "see docs/cloud-settings.md, Gemini"))
    if any(not f.ok for f in findings):
        return findings
    if not remote:
        return [ok(f"{label} (against the capability table; models.get not asked)", note), *findings]
    return [*_ask(settings, "veo", label, video, note, count_tokens=False), *findings]


def check_prompt_model(settings: Settings, *, remote: bool) -> list[Finding]:
    model = settings.prompt_model
    if model == "local":
        return [ok("prompt model (local writer)")]
    label = f"prompt model {model}"
    if not remote:
        return [ok(f"{label} (models.get not asked)")]
    return _ask(settings, "gemini", label, model, "", count_tokens=settings.genai_use_vertexai)


def _ask(
    settings: Settings, service: Service, label: str, model: str, note: str, *, count_tokens: bool
) -> list[Finding]:
    """``models.get`` (and, for Gemini on Vertex, ``countTokens`` at its location) with the client
    the service itself uses."""
    check = f"{label} in {_where(settings, service)}"
    try:
        client = make_genai_client(settings, service)
    except ConfigError as exc:
        return [fail("Google credentials", exc.message, "see docs/cloud-settings.md")]
    try:
        with_retries(lambda: client.models.get(model=model), f"models.get {model}")
        if count_tokens:
            _count_tokens(client, model)
    except GoogleRequestRefused as exc:
        return [fail(check, exc.message, _model_fix(exc.message, model, settings, service))]
    except KapsuleError as exc:
        return [fail(check, exc.message, "check the network, then run doctor again")]
    return [ok(check, note)]


def _count_tokens(client: Any, model: str) -> None:
    with_retries(
        lambda: client.models.count_tokens(model=model, contents="kapsule doctor"), f"countTokens {model}"
    )


def _model_fix(message: str, model: str, settings: Settings, service: Service) -> str:
    if " 404 " in message:
        if not settings.genai_use_vertexai:
            return f"{model} is retired or unknown to the Gemini API: pick a current model id"
        if service == "gemini":
            return (
                f"{model} is retired or not served in {settings.gemini_location}: pick a current model id, "
                "or set KAPSULE_GEMINI_LOCATION=global (the only location serving Gemini previews)"
            )
        return (
            f"{model} is retired or not served in {settings.veo_location}: pick a current model id, or set "
            "KAPSULE_VEO_LOCATION to a region that serves it (docs/cloud-settings.md lists them)"
        )
    if " 403 " in message or " 401 " in message:
        return (
            "grant the service account roles/aiplatform.user and enable aiplatform.googleapis.com "
            "(deploy/deploy.sh does both), or check GEMINI_API_KEY"
        )
    return "see the message"
