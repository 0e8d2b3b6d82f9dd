"""What the fake Google server refuses, written out from Google's documentation on its own.

Deliberately *not* derived from ``kapsule.catalog.video_models``: this is the oracle the product's
table is tested against, so a wrong entry there shows up as a 400 here. Sources (and their dates)
are listed in ``docs/cloud-settings.md``. Error bodies copy Google's shape:
``{"error": {"code": 400, "message": …, "status": "INVALID_ARGUMENT"}}``; an unknown model is a 404
``NOT_FOUND``; a prompt blocked by the safety filters ends the *operation* with ``error.code`` 3.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VeoRule:
    vertex_seconds: tuple[int, ...]
    api_seconds: tuple[int, ...]
    resolutions: tuple[str, ...] = ("720p", "1080p")
    references: bool = False
    audio: bool = True
    api_1080p_seconds: tuple[int, ...] | None = None  # Veo 3.1 in Gemini API mode: 1080p only at 8 s
    api_1080p_aspects: tuple[str, ...] | None = None  # Veo 3 in Gemini API mode: 1080p only 16:9
    vertex_references: bool | None = None  # Vertex differs from the Gemini API (None: as ``references``)
    vertex_reference_aspects: tuple[str, ...] = ("16:9",)  # Google's 2026 sample: 9:16 too for 3.1 -001


_V31 = VeoRule((4, 6, 8), (4, 6, 8), api_1080p_seconds=(8,))
_V31_REFS = VeoRule((4, 6, 8), (4, 6, 8), references=True, api_1080p_seconds=(8,))
_V30 = VeoRule((4, 6, 8), (4, 6, 8), api_1080p_aspects=("16:9",))
# The -001 ids of Veo 3.1 per Google's sample (vertex-ai-creative-studio config/veo_models.py, 2026):
# 4k, and "r2v" at 8 s in 16:9 and 9:16 on Vertex, for the Fast model too; the Gemini API guide: 4k
# at 8 s, references (16:9) on the full model only. Lite: 720p/1080p, 4/6/8 s, no references.
_4K = ("720p", "1080p", "4k")
_V31_001 = VeoRule(
    (4, 6, 8), (4, 6, 8), resolutions=_4K, references=True, api_1080p_seconds=(8,),
    vertex_reference_aspects=("16:9", "9:16"),
)  # fmt: skip
_V31_FAST_001 = VeoRule(
    (4, 6, 8), (4, 6, 8), resolutions=_4K, api_1080p_seconds=(8,), vertex_references=True,
    vertex_reference_aspects=("16:9", "9:16"),
)  # fmt: skip
VEO_RULES: dict[str, VeoRule] = {
    "veo-2.0-generate-001": VeoRule((5, 6, 7, 8), (5, 6, 8), resolutions=("720p",), audio=False),
    "veo-3.0-generate-001": _V30,
    "veo-3.0-fast-generate-001": _V30,
    "veo-3.1-generate-preview": _V31_REFS,
    "veo-3.1-generate-001": _V31_001,
    "veo-3.1-fast-generate-preview": _V31,
    "veo-3.1-fast-generate-001": _V31_FAST_001,
    "veo-3.1-lite-generate-001": VeoRule((4, 6, 8), (), resolutions=("720p", "1080p")),
}
GEMINI_MODELS = frozenset(
    {
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "gemini-2.5-flash-lite",
        "gemini-3-flash-preview",
        "gemini-3.6-flash",
    }
)
VEO_LOCATIONS = frozenset({"us-central1"})  # where the fake serves Veo on Vertex (Google: a few regions)


def gemini_served(model: str, location: str | None, known: frozenset[str] | set[str] = GEMINI_MODELS) -> bool:
    """Whether Vertex serves ``model`` at ``location`` (``None``: the Gemini API, no location). Google's
    Vertex AI locations page and Firebase's ("global is required for Gemini preview models"): the
    preview Gemini models only on the global endpoint; Veo is never there."""
    if model not in known:
        return False
    return location is None or "-preview" not in model or location == "global"


# The message Veo puts in the operation's error when the prompt itself is blocked (google.rpc code 3).
PROMPT_BLOCK_MESSAGE = (
    "The prompt could not be submitted. This prompt contains sensitive words that violate Google's "
    "Responsible AI practices. Try rephrasing the prompt. If you think this was an error, send feedback. "
    "Support codes: 58061214"
)


def error_body(code: int, message: str) -> dict[str, Any]:
    status = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
    }.get(code, "UNKNOWN")
    return {"error": {"code": code, "message": message, "status": status}}


def model_not_found(model: str, project: str | None, location: str | None) -> dict[str, Any]:
    """Google's 404 for a model that does not exist (or is not served where it was asked for)."""
    if project is not None:
        name = f"projects/{project}/locations/{location}/publishers/google/models/{model}"
        return error_body(
            404, f"Publisher Model `{name}` was not found or your project does not have access to it."
        )
    return error_body(404, f"models/{model} is not found for API version v1beta, or is not supported.")


def veo_known(model: str, location: str | None) -> bool:
    return model in VEO_RULES and (location is None or location in VEO_LOCATIONS)


def veo_problem(model: str, body: dict[str, Any], *, vertex: bool) -> str:
    """What Veo would answer 400 for in this predictLongRunning body ("" when it would accept it)."""
    rule = VEO_RULES[model]
    instance = (body.get("instances") or [{}])[0]
    params = body.get("parameters") or {}
    seconds = params.get("durationSeconds", 8)
    aspect = params.get("aspectRatio", "16:9")
    resolution = params.get("resolution", "720p")
    refs = instance.get("referenceImages") or []
    allowed = rule.vertex_seconds if vertex else rule.api_seconds
    if aspect not in ("16:9", "9:16"):
        return f"Unsupported aspect ratio: {aspect}. Supported: 16:9, 9:16."
    if resolution not in rule.resolutions:
        return f"Unsupported resolution {resolution} for model {model}."
    if not vertex and resolution in ("1080p", "4k"):
        if rule.api_1080p_seconds and seconds not in rule.api_1080p_seconds:
            return f"{resolution} is only supported with a duration of 8 seconds for {model}."
        if rule.api_1080p_aspects and aspect not in rule.api_1080p_aspects:
            return f"1080p is only supported for 16:9 videos for {model}."
    if seconds not in allowed:
        return f"Unsupported duration {seconds}s for {model}. Supported: {', '.join(map(str, allowed))}."
    if refs:
        takes = rule.vertex_references if vertex and rule.vertex_references is not None else rule.references
        if not takes:
            return f"referenceImages is not supported by {model}"
        if seconds != 8:
            return "Duration must be 8 seconds when reference images are provided."
        if aspect not in (rule.vertex_reference_aspects if vertex else ("16:9",)):
            return "Aspect ratio must be 16:9 when reference images are provided."
        if "image" in instance:
            return "image and referenceImages cannot be used together."
    if "generateAudio" in params and not rule.audio:
        return f"generateAudio is not supported by {model}"
    if "seed" in params and not vertex:
        return "seed is not supported in the Gemini API."
    return ""


class QuotaWindow:
    """Veo's quota: start requests per project, region and model in any minute (a sliding 60 s)."""

    def __init__(self) -> None:
        self._starts: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float, per_minute: float) -> bool:
        """Count one start at ``now``; False (Google answers 429) when the last minute is already full."""
        with self._lock:
            starts = [t for t in self._starts.get(key, []) if now - t < 60.0]
            self._starts[key] = starts
            if len(starts) >= per_minute:
                return False
            starts.append(now)
            return True
