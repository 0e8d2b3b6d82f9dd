"""Veo through google-genai: one long-running operation per shot, within quota, resumable, refusal-safe.

Why it is shaped like this:
- Veo quotas are low (about 10 start requests a minute) and operations take minutes, so shots run
  concurrently (``settings.veo_concurrency`` in flight) while a shared rate limiter spaces the
  *start* requests to ``settings.veo_requests_per_minute``. Polls back off from
  ``veo_poll_interval_s`` to ``veo_poll_max_interval_s``.
- 429/5xx answers and network timeouts are transient: retried with exponential backoff and jitter,
  up to ``genai_client.RETRY_ATTEMPTS`` (module constants, so tests can shrink them). Anything else is a
  ``GenerationError`` a retry will not fix.
- Safety filtering does not fail the operation: it returns no video and ``rai_media_filtered_*``.
  The prompt is re-phrased once (by Gemini when that is the prompt model, else a deterministic
  softening); a second refusal fills the shot with the local renderer, recorded in the manifest as
  ``generator="local-fallback"`` with the refusal reasons, so the video is always complete.
- Clips are 4/6/8 s (Veo 2: 5–8 s) and longer than the shot: ``exact_length`` is False and assembly
  trims them. The request holds only what decides Veo's pixels (not the shot's start or frame
  count), so re-timing a storyboard reuses clips that are still long enough.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kapsule_pipeline import media
from kapsule_pipeline.cost import price_per_second
from kapsule_pipeline.errors import ConfigError, GenerationError, KapsuleError
from kapsule_pipeline.genai_client import make_genai_client, with_retries
from kapsule_pipeline.models import Analysis, Shot, ShotRequest, ShotResult, Storyboard
from kapsule_pipeline.settings import Settings, get_settings

if TYPE_CHECKING:
    from google import genai

log = logging.getLogger(__name__)

FALLBACK_GENERATOR = "local-fallback"
SOFTEN_SUFFIX = "Tasteful, family-friendly, non-violent, no real people, no brands."
_HARSH = re.compile(
    r"\b(blood\w*|gore|gory|violen\w*|weapon\w*|guns?|kill\w*|dead|death|naked|nude|explod\w*|explosion\w*|"
    r"fight\w*|crash\w*|burning|fire)\b",
    re.IGNORECASE,
)

Rephraser = Callable[[str, list[str]], str]


def soften_prompt(prompt: str, reasons: list[str]) -> str:
    """The deterministic re-phrasing used without Gemini: drop harsh words, ask for a safe rendition."""
    del reasons
    softened = _HARSH.sub("", prompt)
    softened = re.sub(r"\s{2,}", " ", softened).strip()
    return f"{softened} {SOFTEN_SUFFIX}".strip()


def allowed_seconds(model: str) -> tuple[int, ...]:
    """Clip lengths the model accepts: Veo 2 makes 5–8 s, Veo 3.x 4, 6 or 8 s."""
    return (5, 6, 7, 8) if model.startswith("veo-2") else (4, 6, 8)


class RateLimiter:
    """Spaces calls evenly to ``per_minute`` across threads (a quota is per project, not per worker)."""

    def __init__(self, per_minute: float) -> None:
        self.interval = 60.0 / per_minute
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class _RefusedError(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class VeoGenerator:
    """``VideoGenerator`` for any Veo model id (veo-2.0…, veo-3.0(-fast)…, veo-3.1(-fast)…)."""

    exact_length = False

    def __init__(
        self, model: str, settings: Settings | None = None, *, rephraser: Rephraser | None = None
    ) -> None:
        self.name = model
        self.settings = settings or get_settings()
        self.price = price_per_second(model, self.settings)  # fail at start-up, not after paying
        self.rephraser = rephraser or soften_prompt
        self.max_workers = self.settings.veo_concurrency
        self._limiter = RateLimiter(self.settings.veo_requests_per_minute)
        self._slots = threading.BoundedSemaphore(self.settings.veo_concurrency)
        self._client: genai.Client | None = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> genai.Client:
        with self._client_lock:
            if self._client is None:
                self._client = make_genai_client(self.settings)
            return self._client

    @property
    def vertex(self) -> bool:
        return self.settings.genai_use_vertexai

    # ----------------------------------------------------------------- protocol

    def request_for(self, shot: Shot, board: Storyboard) -> ShotRequest:
        lengths = allowed_seconds(self.name)
        seconds = next((s for s in lengths if s >= shot.request_seconds), lengths[-1])
        resolution = "720p" if self.name.startswith("veo-2") else board.resolution
        return ShotRequest(
            model=self.name,
            prompt=shot.prompt,
            negative_prompt=shot.negative_prompt,
            seed=shot.seed,
            aspect_ratio=board.aspect_ratio,
            resolution=resolution,  # type: ignore[arg-type]
            seconds=seconds,
            fps=board.fps,
        )

    def estimate_cost_usd(self, request: ShotRequest) -> float:
        return round(request.seconds * self.price, 4)

    def generate(self, request: ShotRequest, shot: Shot, analysis: Analysis, dest: Path) -> ShotResult:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        refusals: list[str] = []
        prompt = request.prompt
        with self._slots:
            for attempt in range(2):
                try:
                    data = self._run_operation(request, prompt)
                except _RefusedError as refused:
                    refusals.extend(refused.reasons or ["safety filter (no reason given)"])
                    log.warning("shot %d refused by %s: %s", shot.index, self.name, refused)
                    if attempt == 0:
                        prompt = self._rephrase(prompt, refused.reasons)
                    continue
                _write_atomically(dest, data)
                probe = media.probe(dest)
                if not probe.real_video:
                    dest.unlink(missing_ok=True)
                    raise GenerationError(
                        f"{self.name} returned a file with no video stream for shot {shot.index}"
                    )
                video = probe.real_video[0]
                seconds = video.duration or probe.duration or float(request.seconds)
                frames = video.frames or round(seconds * request.fps)
                note = "" if not refusals else f"re-phrased after a safety refusal: {prompt}"
                return ShotResult(
                    index=shot.index,
                    key=request.key(),
                    file=str(dest),
                    state="done",
                    generator=self.name,
                    cost_usd=self.estimate_cost_usd(request),
                    seconds=seconds,
                    frames=frames,
                    exact_length=False,
                    refusals=refusals,
                    note=note,
                )
        return self._fallback(request, shot, analysis, dest, refusals)

    # ----------------------------------------------------------------- internals

    def _rephrase(self, prompt: str, reasons: list[str]) -> str:
        try:
            return self.rephraser(prompt, reasons)
        except KapsuleError as exc:
            log.warning("re-phrasing failed (%s); softening locally", exc)
            return soften_prompt(prompt, reasons)

    def _fallback(
        self, request: ShotRequest, shot: Shot, analysis: Analysis, dest: Path, refusals: list[str]
    ) -> ShotResult:
        from kapsule_pipeline.generation.local import LocalRenderer

        local = LocalRenderer(self.settings)
        local_request = local.request_for(shot, _board_for(request))
        result = local.generate(local_request, shot, analysis, dest)
        return result.model_copy(
            update={
                "key": request.key(),
                "state": "fallback",
                "generator": FALLBACK_GENERATOR,
                "cost_usd": 0.0,
                "refusals": refusals,
                "note": f"{self.name} refused the shot twice (safety filter); filled by the local renderer",
            }
        )

    def _config(self, request: ShotRequest) -> Any:
        from google.genai import types

        config: dict[str, Any] = {
            "number_of_videos": 1,
            "duration_seconds": request.seconds,
            "aspect_ratio": request.aspect_ratio,
            "negative_prompt": request.negative_prompt or None,
        }
        if not self.name.startswith("veo-2"):
            config["resolution"] = request.resolution
        if self.vertex:  # seed, output_gcs_uri and generate_audio are Vertex-only in google-genai
            config["seed"] = request.seed
            config["generate_audio"] = False if not self.name.startswith("veo-2") else None
            if self.settings.veo_output_gcs_uri:
                config["output_gcs_uri"] = self.settings.veo_output_gcs_uri
        return types.GenerateVideosConfig(**{k: v for k, v in config.items() if v is not None})

    def _run_operation(self, request: ShotRequest, prompt: str) -> bytes:
        from google.genai import types

        client = self.client
        source = types.GenerateVideosSource(prompt=prompt)
        config = self._config(request)

        def start() -> types.GenerateVideosOperation:
            self._limiter.wait()
            return client.models.generate_videos(model=self.name, source=source, config=config)

        operation = with_retries(start, f"{self.name} start")
        deadline = time.monotonic() + self.settings.veo_timeout_s
        interval = self.settings.veo_poll_interval_s
        while not operation.done:
            if time.monotonic() > deadline:
                waited = self.settings.veo_timeout_s
                raise GenerationError(f"{self.name} operation {operation.name} not done after {waited:.0f} s")
            time.sleep(interval)
            interval = min(self.settings.veo_poll_max_interval_s, interval * 1.5)
            operation = with_retries(_poller(client, operation), f"{self.name} poll")
        if operation.error:
            raise GenerationError(
                f"{self.name} operation failed: {operation.error.get('message', operation.error)}"
            )
        result = operation.result or operation.response
        videos = (result.generated_videos or []) if result is not None else []
        if not videos or videos[0].video is None:
            reasons = list((result.rai_media_filtered_reasons or []) if result is not None else [])
            if result is not None and (result.rai_media_filtered_count or reasons):
                raise _RefusedError(reasons)
            raise GenerationError(f"{self.name} returned no video and no reason")
        return self._video_bytes(videos[0].video)

    def _video_bytes(self, video: Any) -> bytes:
        if video.video_bytes:
            return bytes(video.video_bytes)
        uri = video.uri or ""
        if uri.startswith("gs://"):
            return _read_gcs(uri)
        if uri:
            return bytes(
                with_retries(lambda: self.client.files.download(file=video), f"{self.name} download")
            )
        raise GenerationError(f"{self.name} returned a video with neither bytes nor a URI")


def _poller(client: genai.Client, operation: Any) -> Callable[[], Any]:
    return lambda: client.operations.get(operation)


def _read_gcs(uri: str) -> bytes:
    """A clip Veo wrote to ``output_gcs_uri``: read through our own gs:// storage backend."""
    from kapsule_pipeline.storage import open_storage

    bucket, _, key = uri[len("gs://") :].partition("/")
    if not bucket or not key:
        raise ConfigError(f"Veo returned a malformed Cloud Storage URI {uri!r}")
    return open_storage(f"gs://{bucket}").read_bytes(key)


def _board_for(request: ShotRequest) -> Storyboard:
    """The minimal storyboard the local renderer needs to build its own request for a fallback shot."""
    return Storyboard(
        fps=request.fps,
        aspect_ratio=request.aspect_ratio,
        resolution=request.resolution,
        duration=0.0,
        total_frames=0,
        shots=[],
    )


def _write_atomically(dest: Path, data: bytes) -> None:
    tmp = dest.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{dest.name}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
