"""What each Veo model accepts, per mode (Vertex AI / Gemini API), and what a second of it costs.

Why one table: Veo answers 400 to a request outside its limits (a 6 s clip with reference images, a
9:16 shot from Veo 3 at 1080p in Gemini API mode, 7 s from Veo 2 there...), and a refused shot is a
failed job. Every limit and price Kapsule knows is written once, in the table ``video_models.toml``
beside this module (data, each row with its sources), which is read and checked into the typed
rows below (``ModeCaps``) when this module is imported; the Veo generator plans its requests
from it (``plan_request``), checks each one before sending it (``check_request``), the cost
estimate prices from it (``price_per_second``) and a job whose settings cannot work at all is
refused before it is accepted (``check_job``). Each row also says when Google retires the model in
that mode (``Lifecycle``): a model past a retirement date read on Google's own pages is refused
(``check_lifecycle``: Veo answers 404 for it), a date only a third party gives is a ``doctor``
note, not a warning (``lifecycle_note``). Sources and their dates are in ``docs/cloud-settings.md`` (facts
read only from documentation are marked there).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from kapsule.core.errors import UnknownModel, UnsupportedVideoRequest
from kapsule.core.settings import Settings

Mode = Literal["vertex", "gemini_api"]
MODES: tuple[Mode, ...] = ("vertex", "gemini_api")

# Reference-to-video ("ingredients"): Vertex model page for Veo 3.1 ("reference image to video only
# supports 8 seconds") and the Gemini API video guide. Which aspect ratios take references is per
# row (``reference_aspects``): the 2025 model page said 16:9 only, Google's 2026 sample adds 9:16 for
# the Veo 3.1 -001 ids.
REFERENCE_SECONDS = 8
REFERENCE_ASPECT = "16:9"  # the aspect every model with references takes
MAX_REFERENCE_IMAGES = 3
# The table itself: package data beside this module, every row with its sources (see its header).
TABLE_FILE = "video_models.toml"


@dataclass(frozen=True)
class ResolutionLimit:
    """Extra limits (and price) at one resolution: ``None`` means the model's own value applies."""

    seconds: tuple[int, ...] | None = None
    aspects: tuple[str, ...] | None = None
    usd_per_s: float | None = None  # Google prices some models per resolution (Fast: 720p < 1080p)
    usd_per_s_audio: float | None = None


@dataclass(frozen=True)
class Lifecycle:
    """When a model id stops being served in one mode, where that date was read, and what to use then.

    ``confirmed``: the date is on one of Google's own pages, and from that day on a job asking for
    the model is refused. Otherwise only a third party gives it: ``doctor`` warns, nothing is refused.
    ``replacement`` is the id the source names (``None``: it names none Kapsule can use).
    """

    retires: date
    source: str
    replacement: str | None = None
    confirmed: bool = True


@dataclass(frozen=True)
class ModeCaps:
    """One model in one mode: what a request may hold, and its list price per second of video."""

    seconds: tuple[int, ...]
    resolutions: dict[str, ResolutionLimit]
    aspects: tuple[str, ...] = ("16:9", "9:16")
    reference_images: bool = False  # asset references (up to MAX_REFERENCE_IMAGES), 8 s only
    reference_aspects: tuple[str, ...] = (REFERENCE_ASPECT,)  # aspect ratios that take references
    first_frame: bool = True  # image-to-video (continuity seeds a shot with a frame)
    last_frame: bool = False
    audio: bool = False  # the model makes sound
    audio_switch: bool = False  # generate_audio may be sent (google-genai: Vertex only)
    seed: bool = False  # seed may be sent (google-genai: Vertex only)
    resolution_param: bool = True  # send ``resolution`` (Veo 2 has one and is sent none)
    usd_per_s: float = 0.0  # as Kapsule sends it: Vertex with generate_audio=False, Gemini API as billed
    usd_per_s_audio: float | None = None  # with sound, where that differs
    note: str = ""
    lifecycle: Lifecycle | None = None  # no date known: none is enforced or warned about
    sources: tuple[str, ...] = ()  # where the row's limits and prices were read (keys of [sources])

    def limit(self, resolution: str) -> ResolutionLimit:
        return self.resolutions.get(resolution, ResolutionLimit())


class _TableFile(BaseModel):
    """``video_models.toml`` as written: each row names its lifecycle source and its note by key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: dict[str, str]
    notes: dict[str, str]
    models: dict[str, dict[Mode, ModeCaps]]

    @model_validator(mode="after")
    def _keys_exist(self) -> _TableFile:
        for model, modes in self.models.items():
            for mode, caps in modes.items():
                if caps.note and caps.note not in self.notes:
                    raise ValueError(f"{model} ({mode}): no note {caps.note!r} in [notes]")
                if caps.lifecycle is not None and caps.lifecycle.source not in self.sources:
                    raise ValueError(f"{model} ({mode}): no source {caps.lifecycle.source!r} in [sources]")
                if not caps.sources:
                    raise ValueError(f"{model} ({mode}): a row must name its sources")
                unknown = [key for key in caps.sources if key not in self.sources]
                if unknown:
                    raise ValueError(f"{model} ({mode}): no source {unknown[0]!r} in [sources]")
        return self

    def rows(self) -> dict[str, dict[Mode, ModeCaps]]:
        """The rows with their notes' and sources' texts in place of the keys."""
        return {
            model: {mode: self._resolved(caps) for mode, caps in modes.items()}
            for model, modes in self.models.items()
        }

    def _resolved(self, caps: ModeCaps) -> ModeCaps:
        life = caps.lifecycle
        return replace(
            caps,
            note=self.notes[caps.note] if caps.note else "",
            lifecycle=None if life is None else replace(life, source=self.sources[life.source]),
            sources=tuple(self.sources[key] for key in caps.sources),
        )


def parse_table(text: str) -> dict[str, dict[Mode, ModeCaps]]:
    """The rows of a table written as ``video_models.toml`` is; ``ValueError`` (a TOML or validation
    error naming the row and key) for a malformed one."""
    return _TableFile.model_validate(tomllib.loads(text)).rows()


# Model id -> mode -> capabilities, in the file's order. A model missing from a mode is not offered there.
# Read once, at import: a malformed table fails every process that prices or plans, never a job midway.
VIDEO_MODELS: dict[str, dict[Mode, ModeCaps]] = parse_table(
    resources.files("kapsule.catalog").joinpath(TABLE_FILE).read_text(encoding="utf-8")
)
LOCAL_MODELS = frozenset({"local"})
# Vertex AI regions known (from Google's documentation, see docs/cloud-settings.md) to serve these Veo
# models (not the global endpoint). KAPSULE_VEO_LOCATION defaults to the first; ``doctor`` flags any other.
VEO_VERTEX_LOCATIONS: tuple[str, ...] = ("us-central1",)


def mode_of(settings: Settings) -> Mode:
    """The mode google-genai will use with these settings."""
    return "vertex" if settings.genai_use_vertexai else "gemini_api"


def capabilities(model: str, mode: Mode) -> ModeCaps:
    """The table's row for ``model`` in ``mode``; ``UnknownModel`` names the models that exist."""
    modes = VIDEO_MODELS.get(model)
    if modes is None:
        known = ", ".join(sorted(VIDEO_MODELS))
        raise UnknownModel(f"unknown video model {model!r}: Kapsule knows local, {known}")
    caps = modes.get(mode)
    if caps is None:
        raise UnknownModel(f"video model {model!r} is not offered in {mode} mode (only {', '.join(modes)})")
    return caps


def today_utc() -> date:
    """The date a retirement is compared with (UTC, as Google's dates are given without a zone)."""
    return datetime.now(UTC).date()


def lifecycle(model: str, mode: Mode) -> Lifecycle | None:
    """The row's retirement date, source and replacement (``None``: none known, or the local renderer)."""
    if model in LOCAL_MODELS:
        return None
    return capabilities(model, mode).lifecycle


def retired(model: str, mode: Mode, *, today: date | None = None) -> Lifecycle | None:
    """The lifecycle of a model Google documents as retired in this mode by ``today`` (default: now)."""
    life = lifecycle(model, mode)
    if life is None or not life.confirmed or (today or today_utc()) < life.retires:
        return None
    return life


def retired_message(model: str, mode: Mode, life: Lifecycle) -> str:
    use = (
        f"use {life.replacement}, the replacement Google names"
        if life.replacement
        else "choose another model"
    )
    return (
        f"{model} was retired by Google on {life.retires.isoformat()} in {mode} mode (retirement date "
        f"on {life.source}); Veo answers 404 for it: {use}"
    )


def usable_models(mode: Mode, *, today: date | None = None) -> list[str]:
    """The table's models offered in ``mode`` and not retired by ``today``, sorted."""
    return sorted(
        m for m, modes in VIDEO_MODELS.items() if mode in modes and not retired(m, mode, today=today)
    )


def check_lifecycle(model: str, mode: Mode, *, today: date | None = None) -> None:
    """Raise ``UnknownModel`` for a model whose Google-documented retirement date (in ``mode``) is
    ``today`` or earlier. A date only a third party gives is never refused (``lifecycle_note``)."""
    life = retired(model, mode, today=today)
    if life is not None:
        raise UnknownModel(retired_message(model, mode, life))


def lifecycle_warning(model: str, mode: Mode, *, today: date | None = None) -> tuple[str, str] | None:
    """What to warn about (problem, fix) for a model that is still accepted: a retirement date Google
    documents, still ahead. ``None``: none known, or only a third party's (see ``lifecycle_note``)."""
    life = lifecycle(model, mode)
    if life is None or not life.confirmed or retired(model, mode, today=today) is not None:
        return None
    day = life.retires.isoformat()
    switch = f"move to {life.replacement}" if life.replacement else "choose another model"
    return (
        f"Google retires {model} in {mode} mode on {day} ({life.source}); from then on jobs "
        "asking for it are refused",
        f"{switch} before {day} (KAPSULE_VIDEO_MODEL)",
    )


def lifecycle_note(model: str, mode: Mode, *, today: date | None = None) -> str:
    """A remark, not a warning, for a date only a third party gives ("" if none): Google's own model
    pages still list these ids as supported, so nothing is to be done until Google dates them (a
    retired id would answer 404 to ``kapsule doctor``'s ``models.get``)."""
    life = lifecycle(model, mode)
    if life is None or life.confirmed:
        return ""
    when = "past" if (today or today_utc()) >= life.retires else "ahead"
    return (
        f"a third party ({life.source}) gives {model} in {mode} mode a deprecation date of "
        f"{life.retires.isoformat()} ({when}); no Google page dates it, so it is still accepted"
    )


def price_per_second(
    model: str, mode: Mode, *, audio: bool | None = None, resolution: str | None = None
) -> float:
    """USD per second of video: ``audio=None`` prices the request as Kapsule sends it in that mode.

    Some models cost more at 1080p than at 720p: ``resolution=None`` gives the highest price of the
    resolutions the model makes (an estimate that does not know the resolution never undercounts).
    """
    if model in LOCAL_MODELS:
        return 0.0
    caps = capabilities(model, mode)
    if resolution is None:
        return max(price_per_second(model, mode, audio=audio, resolution=r) for r in caps.resolutions)
    limit = caps.limit(resolution)
    if audio:
        for usd in (limit.usd_per_s_audio, caps.usd_per_s_audio):
            if usd is not None:
                return usd
    return caps.usd_per_s if limit.usd_per_s is None else limit.usd_per_s


@dataclass(frozen=True)
class RequestShape:
    """The parts of a Veo request the table constrains."""

    seconds: int
    resolution: str
    aspect_ratio: str
    reference_images: int = 0
    first_frame: bool = False
    last_frame: bool = False


def request_problems(model: str, mode: Mode, shape: RequestShape) -> list[str]:
    """Every limit ``shape`` breaks (empty: Google should accept it)."""
    caps = capabilities(model, mode)
    problems: list[str] = []
    if shape.resolution not in caps.resolutions:
        problems.append(f"{model} makes {'/'.join(caps.resolutions)} video, not {shape.resolution}")
    limit = caps.limit(shape.resolution)
    seconds = limit.seconds or caps.seconds
    aspects = limit.aspects or caps.aspects
    where = f" at {shape.resolution}" if limit.seconds or limit.aspects else ""
    if shape.seconds not in seconds:
        allowed = ", ".join(map(str, seconds))
        problems.append(f"{model} ({mode}){where} makes clips of {allowed} s, not {shape.seconds} s")
    if shape.aspect_ratio not in aspects:
        problems.append(f"{model} ({mode}){where} films {' or '.join(aspects)}, not {shape.aspect_ratio}")
    if shape.reference_images:
        if not caps.reference_images:
            problems.append(f"{model} does not take reference images")
        if shape.reference_images > MAX_REFERENCE_IMAGES:
            problems.append(f"at most {MAX_REFERENCE_IMAGES} reference images, not {shape.reference_images}")
        if shape.seconds != REFERENCE_SECONDS:
            problems.append(
                f"with reference images a clip must be {REFERENCE_SECONDS} s, not {shape.seconds} s"
            )
        if shape.aspect_ratio not in caps.reference_aspects:
            problems.append(
                f"with reference images the aspect ratio must be {' or '.join(caps.reference_aspects)}"
            )
        if shape.first_frame:
            problems.append("a first-frame image cannot be combined with reference images")
    if shape.first_frame and not caps.first_frame:
        problems.append(f"{model} does not take a first-frame image")
    if shape.last_frame and not caps.last_frame:
        problems.append(f"{model} ({mode}) does not take a last-frame image")
    return problems


def check_request(model: str, mode: Mode, shape: RequestShape) -> None:
    """Raise ``UnsupportedVideoRequest`` for a request Google would answer with 400."""
    problems = request_problems(model, mode, shape)
    if problems:
        raise UnsupportedVideoRequest(f"refusing to send a request Veo would reject: {'; '.join(problems)}")


@dataclass(frozen=True)
class PlannedRequest:
    """How one shot is asked of the model, and why it differs from the storyboard if it does."""

    seconds: int
    resolution: str
    aspect_ratio: str
    reference_images: bool
    notes: list[str] = field(default_factory=list)


def check_job(
    model: str,
    mode: Mode,
    *,
    aspect_ratio: str,
    reference_images: int = 0,
    continuity: str = "none",
    resolution: str = "720p",
    today: date | None = None,
) -> None:
    """Refuse, at submission, a job whose every shot Veo would reject; the message names the limit.

    A model Google documents as retired by ``today`` (default: now, UTC) is ``UnknownModel``. 4k is
    refused for a model whose row does not make it (and for the local renderer): planned down to
    720p it would be paid as a 4k job's worth of upscaling for nothing. Other resolution and duration
    limits are planned around (``plan_request``); the rest are not.
    """
    if model in LOCAL_MODELS:
        if resolution == "4k":
            raise UnsupportedVideoRequest(
                f"the local renderer makes 720p and 1080p, not 4k; {_makers_of_4k(mode)}"
            )
        return
    caps = capabilities(model, mode)
    check_lifecycle(model, mode, today=today)
    if resolution == "4k" and "4k" not in caps.resolutions:
        raise UnsupportedVideoRequest(f"{model} ({mode}) makes no 4k; {_makers_of_4k(mode)}")
    check_references(
        model, mode, aspect_ratio=aspect_ratio, reference_images=reference_images, continuity=continuity
    )


def check_references(
    model: str, mode: Mode, *, aspect_ratio: str, reference_images: int, continuity: str = "none"
) -> None:
    """Refuse reference images the model cannot take this way (no date is looked at)."""
    caps = capabilities(model, mode)
    if not reference_images:
        return
    if not caps.reference_images:
        with_refs = ", ".join(
            m for m, modes in VIDEO_MODELS.items() if mode in modes and modes[mode].reference_images
        )
        raise UnsupportedVideoRequest(f"{model} does not take reference images; models that do: {with_refs}")
    if reference_images > MAX_REFERENCE_IMAGES:
        raise UnsupportedVideoRequest(
            f"Veo takes at most {MAX_REFERENCE_IMAGES} reference images, not {reference_images}"
        )
    if aspect_ratio == "9:16" and aspect_ratio not in caps.reference_aspects:
        with_tall = ", ".join(
            m
            for m, modes in VIDEO_MODELS.items()
            if mode in modes and "9:16" in modes[mode].reference_aspects
        )
        raise UnsupportedVideoRequest(
            f"{model} ({mode}) takes reference images only for {REFERENCE_ASPECT} video: use aspect_ratio "
            f"16:9 (or 1:1, cropped from 16:9), no reference images, or a model that takes them for 9:16"
            + (f" ({with_tall})" if with_tall else "")
        )
    if continuity == "last_frame":
        raise UnsupportedVideoRequest(
            "Veo cannot combine a first-frame image (last-frame continuity) with reference images: "
            "choose one of continuity=last_frame or reference images"
        )


def _makers_of_4k(mode: Mode) -> str:
    makers = [m for m, modes in VIDEO_MODELS.items() if mode in modes and "4k" in modes[mode].resolutions]
    return (
        f"models that make 4k in {mode} mode: {', '.join(makers)}"
        if makers
        else f"no model makes 4k in {mode} mode"
    )


def plan_request(
    model: str,
    mode: Mode,
    *,
    wanted_seconds: float,
    resolution: str,
    aspect_ratio: str,
    reference_images: int = 0,
    first_frame: bool = False,
) -> PlannedRequest:
    """Fit one shot to the table: the shortest allowed clip covering it, at a shape Veo accepts.

    Veo films 16:9 and 9:16 only: a square video is asked as 16:9 and centre-cropped by assembly.
    A resolution the model does not make falls back to 720p (assembly scales); with reference images
    the clip is 8 s 16:9; limits that only hold at one resolution (Veo 3.1 at 1080p in Gemini API mode
    is 8 s only) are met by the clip length. What cannot be planned raises (see ``check_job``).
    """
    caps = capabilities(model, mode)
    notes: list[str] = []
    aspect = "16:9" if aspect_ratio == "1:1" else aspect_ratio
    res = resolution
    if res not in caps.resolutions:
        notes.append(f"{model} makes no {res}: asked for 720p")
        res = "720p"
    limit = caps.limit(res)
    if limit.aspects and aspect not in limit.aspects:
        notes.append(f"{model} ({mode}) films {aspect} only below {res}: asked for 720p")
        res = "720p"
        limit = caps.limit(res)
    use_refs = bool(reference_images) and caps.reference_images
    if use_refs:
        check_references(model, mode, aspect_ratio=aspect, reference_images=reference_images)
        if first_frame:
            raise UnsupportedVideoRequest("a first-frame image cannot be combined with reference images")
        lengths: tuple[int, ...] = (REFERENCE_SECONDS,)
    else:
        lengths = limit.seconds or caps.seconds
    seconds = next((s for s in sorted(lengths) if s + 1e-6 >= wanted_seconds), max(lengths))
    planned = PlannedRequest(seconds, res, aspect, use_refs, notes)
    shape = RequestShape(seconds, res, aspect, reference_images if use_refs else 0, first_frame)
    check_request(model, mode, shape)
    return planned
