"""Veo through google-genai: one long-running operation per shot, within quota, resumable, refusal-safe.

Why it is shaped like this:
- Veo quotas are low (50 start requests a minute per project and region for the ``-001`` ids, 10 for
  ``-preview``) and operations take minutes, so shots run concurrently (``settings.veo_concurrency``
  operations in flight) while every start draws from the project's one quota, shared by all jobs in
  the status store (``infra.quota``: a token bucket that halves on a 429 and grows back slowly, and
  gives jobs turns).
- A concurrency slot is held only while Veo works: writing and probing the clip happen after the
  slot is released (the runner gets twice as many workers as slots), so the next shot starts as
  soon as a video is ready. Polls learn how long this model's operations take (``PollSchedule``):
  sleep until just before the typical duration, then poll every ``veo_poll_interval_s``.
- Continuity (``ctx.params.continuity == "last_frame"``): the last frame of shot N that the video
  shows seeds shot N+1 (image-to-video). Shot N+1's request names shot N's clip key, so it is
  known before anything is generated and a changed shot N re-bills the shots after it. Shots then
  run one at a time: continuity is bought with speed.
- What a request may hold comes from ``video_models`` (model x mode): ``request_for`` plans each shot
  to fit it and ``_config`` checks the request again before sending, so no request the table
  forbids reaches Google. Reference images (``ctx.reference_image_keys()``) go to models
  the table lists for them, always as 8 s 16:9 clips, named in the request by their bytes' sha256;
  other models record in the manifest that they were not used.
- 429/5xx answers and network timeouts are transient: retried with exponential backoff and jitter,
  up to ``genai_client.RETRY_ATTEMPTS`` (module constants, so tests can shrink them). Anything else is a
  ``GenerationError`` a retry will not fix.
- Safety filtering of the video returns no video and ``rai_media_filtered_*``; a blocked *prompt* ends
  the operation with an error (code 3 and a Responsible-AI message). Both are refusals.
  The prompt is re-phrased once (by Gemini when that is the prompt model, else a deterministic
  softening); a second refusal fills the shot with the local renderer, recorded in the manifest as
  ``generator="local-fallback"`` with the refusal reasons, so the video is always complete.
- Clips are the table's lengths (Veo 3.x 4/6/8 s, Veo 2 5–8 s) and longer than the shot:
  ``exact_length`` is False and assembly trims them. The request holds only what decides Veo's
  pixels (not the shot's start or frame count), so re-timing a storyboard reuses clips that are
  still long enough.
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

from kapsule import media
from kapsule.catalog import video_models
from kapsule.catalog.pricing import price_per_second
from kapsule.core.errors import (
    ConfigError,
    GenerationError,
    GoogleRequestRefused,
    JobCancelled,
    KapsuleError,
    StartOutcomeUnknown,
)
from kapsule.generation.paid import PaidStarts
from kapsule.generation.references import ImageRef, load_reference_image
from kapsule.generation.refusals import is_prompt_block, soften_prompt
from kapsule.generation.veo_pacing import PollSchedule
from kapsule.infra.genai_client import make_genai_client, send_once, with_retries
from kapsule.infra.quota import SharedQuota, ceiling_rpm, quota_key
from kapsule.job.artifacts import Analysis, Shot, ShotRequest, ShotResult, Storyboard

if TYPE_CHECKING:
    from google import genai
    from google.genai import types

    from kapsule.infra.context import JobContext

log = logging.getLogger(__name__)

FALLBACK_GENERATOR = "local-fallback"
Rephraser = Callable[[str, list[str]], str]


def allowed_seconds(model: str, mode: video_models.Mode = "vertex") -> tuple[int, ...]:
    """Clip lengths the model accepts in ``mode`` (from the capability table)."""
    return video_models.capabilities(model, mode).seconds


class _RefusedError(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class VeoGenerator:
    """``VideoGenerator`` for any Veo model id (veo-2.0…, veo-3.0(-fast)…, veo-3.1(-fast)…)."""

    exact_length = False

    def __init__(self, model: str, ctx: JobContext, *, rephraser: Rephraser | None = None) -> None:
        self.name = model
        self.ctx = ctx
        self.settings = ctx.settings
        self.mode = video_models.mode_of(self.settings)
        self.caps = video_models.capabilities(model, self.mode)  # UnknownModel at start-up, not after paying
        self.rephraser = rephraser or soften_prompt
        self.continuity = ctx.params.continuity
        self.uses_references = self.caps.reference_images
        # Twice the slots: a finished shot's clip is written and probed by its worker while another
        # worker's shot already holds the freed slot. Continuity chains shots, so one at a time.
        concurrency = self.settings.veo_concurrency
        self.max_workers = 1 if self.continuity == "last_frame" else 2 * concurrency
        self.should_stop: Callable[[], bool] | None = None  # set by the runner: checked before paying
        self.paid = PaidStarts(ctx)
        location = self.settings.veo_location if self.vertex else "global"
        self._quota = SharedQuota(
            ctx.status,
            quota_key(self.name, location),
            ctx.job_id,
            ceiling_rpm(self.name, self.settings.veo_requests_per_minute),
        )
        self._polls = PollSchedule(self.settings.veo_poll_interval_s, self.settings.veo_poll_max_interval_s)
        self._slots = threading.BoundedSemaphore(concurrency)
        self._client: genai.Client | None = None
        self._client_lock = threading.Lock()
        self._refs: list[ImageRef] | None = None
        self._refs_lock = threading.Lock()

    @property
    def client(self) -> genai.Client:
        with self._client_lock:
            if self._client is None:
                self._client = make_genai_client(self.settings, "veo")
            return self._client

    @property
    def vertex(self) -> bool:
        return self.settings.genai_use_vertexai

    # ----------------------------------------------------------------- protocol

    def request_for(self, shot: Shot, board: Storyboard) -> ShotRequest:
        refs = [ref.sha256 for ref in self.reference_images()] if self.uses_references else []
        image = self._seed_image_for(shot, board)
        plan = video_models.plan_request(
            self.name,
            self.mode,
            wanted_seconds=shot.request_seconds,
            resolution=board.resolution,
            aspect_ratio=board.aspect_ratio,
            reference_images=len(refs),
            first_frame=bool(image),
        )
        return ShotRequest(
            model=self.name,
            prompt=shot.prompt,
            negative_prompt=shot.negative_prompt,
            seed=shot.seed,
            # Veo films only 16:9 and 9:16; a square video is cut from a landscape shot by assembly's
            # centre crop, which keeps the subject (models frame it in the middle).
            aspect_ratio=plan.aspect_ratio,  # from the table: 16:9 or 9:16
            resolution=plan.resolution,
            seconds=plan.seconds,
            fps=board.fps,
            image=image,
            reference_images=refs if plan.reference_images else [],
        )

    def reference_images(self) -> list[ImageRef]:
        """The configured reference images, read from storage once per generator."""
        with self._refs_lock:
            if self._refs is None:
                keys = self.ctx.reference_image_keys()
                self._refs = [load_reference_image(self.ctx.storage, key) for key in keys]
            return self._refs

    def _seed_image_for(self, shot: Shot, board: Storyboard) -> str:
        """With continuity, ``"last_frame:{index}-{key}@{seconds}"`` of the shot before; else ``""``.

        Naming the previous clip by its request key (not the frame's bytes) lets the whole chain of
        keys be known before generating, so the budget check and "already stored" hold as usual.
        """
        if self.continuity != "last_frame":
            return ""
        position = next(i for i, s in enumerate(board.shots) if s.index == shot.index)
        if position == 0:
            return ""
        previous = board.shots[position - 1]
        at = max(0.0, (previous.frames - 1) / board.fps)  # the last frame the video shows, not the clip's
        return f"last_frame:{previous.index}-{self.request_for(previous, board).key()}@{at:.3f}"

    def estimate_cost_usd(self, request: ShotRequest) -> float:
        price = price_per_second(self.name, self.settings, resolution=request.resolution)
        return round(request.seconds * price, 4)

    def generate(self, request: ShotRequest, shot: Shot, analysis: Analysis, dest: Path) -> ShotResult:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        refusals: list[str] = []
        prompt = request.prompt
        seed = self._seed_frame(request, dest.parent) if request.image else None
        notes = self._reference_notes()
        for attempt in range(2):
            try:
                with self._slots:  # held only while Veo works; the clip is checked after release
                    if self.should_stop is not None and self.should_stop():
                        raise JobCancelled(f"cancelled before shot {shot.number} was requested")
                    data = self._run_operation(request, prompt, seed, shot=shot.index, attempt=attempt)
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
                    f"{self.name} returned a file with no video stream for shot {shot.number}"
                )
            video = probe.real_video[0]
            seconds = video.duration or probe.duration or float(request.seconds)
            frames = video.frames or round(seconds * request.fps)
            if refusals:
                notes.append(f"re-phrased after a safety refusal: {prompt}")
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
                note="; ".join(notes),
            )
        return self._fallback(request, shot, analysis, dest, refusals)

    def _reference_notes(self) -> list[str]:
        if self.ctx.params.reference_images and not self.uses_references:
            count = len(self.ctx.params.reference_images)
            return [f"{count} reference image(s) not used: {self.name} does not take reference images"]
        return []

    def _seed_frame(self, request: ShotRequest, workdir: Path) -> ImageRef:
        """The frame named by ``request.image``, grabbed from the previous shot's stored clip."""
        match = re.fullmatch(r"last_frame:(\d+)-([0-9a-f]+)@([0-9.]+)", request.image)
        if match is None:
            raise GenerationError(f"cannot seed a shot from {request.image!r}")
        index, key, at = int(match.group(1)), match.group(2), float(match.group(3))
        storage = self.ctx.storage
        clip_key = self.ctx.layout.shot(index, key)
        if not storage.exists(clip_key):
            raise GenerationError(
                f"continuity: shot {index + 1}'s clip {clip_key} is missing; generate it first"
            )
        local = storage.local_path(clip_key)
        clip = local or storage.download_to(clip_key, workdir / f".seed-{index}-{key}.mp4")
        frame = workdir / f".seed-{index}-{key}-{threading.get_ident()}.jpg"
        try:
            media.run(media.frame_at_cmd(clip, at, frame), timeout=self.settings.ffmpeg_timeout_s)
            return ImageRef(data=frame.read_bytes(), mime_type="image/jpeg")
        finally:
            frame.unlink(missing_ok=True)
            if local is None:
                clip.unlink(missing_ok=True)

    # ----------------------------------------------------------------- internals

    def _rephrase(self, prompt: str, reasons: list[str]) -> str:
        try:
            return self.rephraser(prompt, reasons)
        except GoogleRequestRefused:
            raise  # Gemini refused (role, API, retired model): a setup error, not a reason to soften
        except KapsuleError as exc:
            log.warning("re-phrasing failed (%s); softening locally", exc)
            return soften_prompt(prompt, reasons)

    def _fallback(
        self, request: ShotRequest, shot: Shot, analysis: Analysis, dest: Path, refusals: list[str]
    ) -> ShotResult:
        from kapsule.generation.local import LocalRenderer

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
                "note": "; ".join(
                    [
                        f"{self.name} refused the shot twice (safety filter); filled by the local renderer",
                        *self._reference_notes(),
                    ]
                ),
            }
        )

    def _config(self, request: ShotRequest) -> Any:
        from google.genai import types

        video_models.check_request(  # the last gate: nothing the table forbids is sent
            self.name,
            self.mode,
            video_models.RequestShape(
                seconds=request.seconds,
                resolution=request.resolution,
                aspect_ratio=request.aspect_ratio,
                reference_images=len(request.reference_images),
                first_frame=bool(request.image),
            ),
        )
        config: dict[str, Any] = {
            "number_of_videos": 1,
            "duration_seconds": request.seconds,
            "aspect_ratio": request.aspect_ratio,
            "negative_prompt": request.negative_prompt or None,
        }
        if self.caps.resolution_param:
            config["resolution"] = request.resolution
        if request.reference_images:
            config["reference_images"] = [
                types.VideoGenerationReferenceImage(
                    image=types.Image(image_bytes=ref.data, mime_type=ref.mime_type),
                    reference_type=types.VideoGenerationReferenceType.ASSET,
                )
                for ref in self.reference_images()
            ]
        if self.caps.seed:  # seed, output_gcs_uri and generate_audio are Vertex-only in google-genai
            config["seed"] = request.seed
        if self.caps.audio_switch:  # silent clips: the song is the soundtrack (and Vertex bills less)
            config["generate_audio"] = False
        if self.vertex and self.settings.veo_output_gcs_uri:
            config["output_gcs_uri"] = self.settings.veo_output_gcs_uri
        return types.GenerateVideosConfig(**{k: v for k, v in config.items() if v is not None})

    def _run_operation(
        self, request: ShotRequest, prompt: str, seed: ImageRef | None = None, *, shot: int, attempt: int = 0
    ) -> bytes:
        """Start (or follow) the shot's operation and return its video's bytes.

        The start is reserved in the spend ledger before it is sent and sent at most once
        (``paid.PaidStarts``, ``send_once``); once Google names the operation it is recorded, and the
        ledger holds the price until the operation is done.
        """
        from google.genai import types

        client = self.client
        usd = self.estimate_cost_usd(request)
        what = f"shot {shot} ({self.name}, {request.seconds} s)"
        begun = self.paid.begin(f"shot-{shot}-{request.key()}-{attempt}", usd, what)
        if begun.operation is not None:
            log.info(
                "%s: following operation %s started earlier, not sending it again", what, begun.operation
            )
            operation = types.GenerateVideosOperation.model_validate({"name": begun.operation})
        else:
            operation = self._start(request, prompt, seed, begun.key)
        return self._follow(operation, client, begun.key)

    def _start(
        self, request: ShotRequest, prompt: str, seed: ImageRef | None, key: str
    ) -> types.GenerateVideosOperation:
        """Send the start once (429s and unconnected attempts are retried: they started nothing)."""
        from google.genai import types

        client = self.client
        image = types.Image(image_bytes=seed.data, mime_type=seed.mime_type) if seed is not None else None
        source = types.GenerateVideosSource(prompt=prompt, image=image)
        config = self._config(request)

        def start() -> types.GenerateVideosOperation:
            from google.genai import errors as genai_errors

            self._quota.wait()
            try:
                return client.models.generate_videos(model=self.name, source=source, config=config)
            except genai_errors.APIError as exc:
                if exc.code == 429:  # the project's quota is smaller than we thought: every job slows down
                    self._quota.throttled()
                raise

        try:
            operation = send_once(start, f"{self.name} start")
        except StartOutcomeUnknown:
            self.paid.unknown(key)  # stays counted: it may bill
            raise
        except GoogleRequestRefused:
            self.paid.released(key)  # refused before it started: nothing billed
            raise
        except GenerationError:  # throttled or unreachable through every attempt: nothing started
            self.paid.released(key)
            raise
        if operation.name:
            self.paid.started(key, operation.name)
        return operation

    def _follow(self, operation: Any, client: genai.Client, key: str) -> bytes:
        """Poll ``operation`` until it is done; its video's bytes, or the refusal or error it ended with.

        A done operation is settled as spent whatever it ended with (Google does not say which ends it
        bills, so the ledger counts them all); one still running when we give up stays reserved.
        """
        started = time.monotonic()
        deadline = started + self.settings.veo_timeout_s
        polled = [started]  # when each poll went out; the last "not done" one bounds the finish
        interval: float | None = None
        while not operation.done:
            if time.monotonic() > deadline:
                waited = self.settings.veo_timeout_s
                raise GenerationError(f"{self.name} operation {operation.name} not done after {waited:.0f} s")
            interval = self._polls.delay(time.monotonic() - started, interval)
            time.sleep(interval)
            polled.append(time.monotonic())
            operation = with_retries(_poller(client, operation), f"{self.name} poll")
        self.paid.spent(key)
        if len(polled) > 1:  # it finished between the last two polls
            self._polls.observe((polled[-2] + polled[-1]) / 2 - started)
        if operation.error and is_prompt_block(operation.error):
            raise _RefusedError([f"prompt blocked: {operation.error.get('message', '')}"])
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
    from kapsule.infra.storage import open_storage

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
