"""What each notebook calls: the job context and one function per stage.

The notebooks under ``notebooks/`` stay thin (a tagged parameters cell, then calls into this module),
so the logic is tested like any other library code and a creative technologist can still drive one
job by hand from JupyterLab. Every stage reads its inputs from and writes its outputs to the job's
storage folder (``layout.JobLayout``), which is what lets any stage be re-run alone and lets the
pipeline skip a finished stage when a job is retried (``stage_done``). The tables and plots the
notebooks show a reviewer live in ``report.py`` and ``plots.py``: presentation stays out of here.

Errors cross the notebook boundary in two ways: the exception itself (papermill reports its name and
text), and, for a ``KapsuleError``, a small JSON file in the job's local workdir holding its stable
``code`` and whether a retry could help. The pipeline reads that file after a failed notebook, so the
job record keeps ``not_audio`` rather than a generic "stage failed".
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from kapsule_pipeline.errors import (
    InvalidParameter,
    InvalidTransition,
    JobNotFound,
    KapsuleError,
    ObjectNotFound,
    StageFailed,
)
from kapsule_pipeline.jobs import STAGES, JobRecord, JobState
from kapsule_pipeline.layout import NOTEBOOK_NAMES, JobLayout
from kapsule_pipeline.models import FRAME_SIZES, Analysis, ShotManifest, ShotResult, Storyboard
from kapsule_pipeline.review import with_prompt_edits
from kapsule_pipeline.settings import Settings, get_settings
from kapsule_pipeline.status import StatusStore, open_status_store
from kapsule_pipeline.storage import Storage, open_storage

if TYPE_CHECKING:
    from kapsule_pipeline.assemble import AssemblyResult
    from kapsule_pipeline.audio import SongInfo

log = logging.getLogger(__name__)

# pooch (imported by librosa) imports tqdm.auto, which warns in a kernel without ipywidgets; the
# warning would be the first thing a reviewer reads in the analysis notebook.
warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")

DEMO_JOB_ID = "j" + "0" * 20
"""The notebooks' default job: the bundled demo song, created on first use."""

STAGE_WEIGHTS: dict[str, float] = {"analyze": 0.10, "storyboard": 0.05, "generate": 0.60, "assemble": 0.25}
"""Share of the job's overall progress each stage accounts for (roughly its share of the work)."""

STAGE_NOTEBOOKS: dict[str, str] = dict(zip(STAGES, NOTEBOOK_NAMES, strict=True))

COMMON_PARAMS: dict[str, Any] = {"job_id": "", "storage_url": "", "status_url": ""}
STAGE_PARAMS: dict[str, dict[str, Any]] = {
    "analyze": {},
    "storyboard": {
        "prompt": "",
        "style": "",
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "max_shots": 0,
        "seed": 0,
        "video_model": "local",
        "prompt_model": "local",
        "transition": "cut",
    },
    "generate": {"video_model": "local", "budget_usd": 0.0},
    "assemble": {},
}
"""Each notebook's own parameters and their defaults: the notebook builder writes them into the
tagged cell and the pipeline fills them from the job record's ``params``; one table for both.
``budget_usd`` 0 means no cap (papermill parameters must be literals, so no ``None``)."""

FINISHED_SHOT_STATES = frozenset({"done", "fallback"})


# --------------------------------------------------------------------------------------- job context


@dataclass
class JobContext:
    """Everything a stage needs to find one job: its settings, stores, storage keys and scratch folder."""

    job_id: str
    settings: Settings
    storage: Storage
    delivery: Storage
    status: StatusStore
    layout: JobLayout
    workdir: Path
    song_info: SongInfo | None = field(default=None, repr=False)

    @classmethod
    def open(
        cls, job_id: str = "", storage_url: str = "", status_url: str = "", settings: Settings | None = None
    ) -> JobContext:
        """Open ``job_id`` (must exist), or with no id the demo job, which is created on first use.

        ``storage_url``/``status_url`` override the settings, so papermill can point a notebook at
        exactly the stores the pipeline uses; empty means "from settings".
        """
        settings = settings or get_settings()
        overrides = {k: v for k, v in (("storage_url", storage_url), ("status_url", status_url)) if v}
        if overrides:
            settings = settings.model_copy(update=overrides)
        storage = open_storage(settings.storage_url)
        delivery_url = settings.effective_delivery_url
        delivery = storage if delivery_url == settings.storage_url else open_storage(delivery_url)
        job_id = job_id or DEMO_JOB_ID
        ctx = cls(
            job_id=job_id,
            settings=settings,
            storage=storage,
            delivery=delivery,
            status=open_status_store(settings.status_url),
            layout=JobLayout(job_id),
            workdir=Path(settings.work_dir) / job_id,
        )
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        if job_id == DEMO_JOB_ID:
            ctx._ensure_demo_job()
        else:
            ctx.record()  # fail here, with JobNotFound, rather than in the middle of a stage
        return ctx

    def generation_settings(self) -> Settings:
        """Settings for this job's video generator: its continuity and reference images (job params)."""
        from kapsule_pipeline.generation.references import settings_for_job

        return settings_for_job(self.settings, self.job_id, self.record().params)

    def _ensure_demo_job(self) -> None:
        """Create the demo job's record and input song if they are missing (idempotent)."""
        try:
            self.status.get(self.job_id)
        except JobNotFound:
            defaults = {**STAGE_PARAMS["storyboard"], "song_name": "demo-song.wav"}
            defaults.update(video_model=self.settings.video_model, prompt_model=self.settings.prompt_model)
            record = JobRecord(id=self.job_id, params=defaults, message="the bundled demo song")
            with contextlib.suppress(InvalidParameter):  # another kernel created it a moment ago
                self.status.create(record)
        if not self._input_keys():
            from kapsule_pipeline.demo_song import write_demo_song

            song = write_demo_song(self.workdir / "demo" / "demo-song.wav")
            self.storage.upload_from(song, self.layout.input_song("wav"), content_type="audio/wav")

    def record(self) -> JobRecord:
        return self.status.get(self.job_id)

    def update(self, changes: dict[str, Any]) -> JobRecord | None:
        """Write to the job record; a finished job refuses writes, which is fine when run by hand."""
        try:
            return self.status.update(self.job_id, changes)
        except InvalidTransition as exc:
            log.info("job record not updated: %s", exc)
            return None

    def report(self, stage: str, progress: float, message: str = "") -> None:
        """Record ``progress`` (0..1 of ``stage``) as the job's overall progress across the four stages."""
        self.update(
            {"stage": stage, "progress": overall_progress(stage, progress), "message": message or stage}
        )

    def cancelled(self) -> bool:
        return self.record().state == JobState.cancelled

    def _input_keys(self) -> list[str]:
        prefix = self.layout.input_prefix
        return [k for k in self.storage.list(prefix) if k[len(prefix) :].startswith("song.")]

    def input_song(self) -> Path:
        """A local copy of ``jobs/{id}/input/song.*`` (the extension was chosen at upload)."""
        keys = self._input_keys()
        if not keys:
            raise ObjectNotFound(
                f"job {self.job_id} has no input song (nothing under {self.layout.input_prefix})"
            )
        key = keys[0]
        local = self.storage.local_path(key)
        if local is not None and local.is_file():
            return local
        return self.storage.download_to(key, self.workdir / "input" / key.rsplit("/", 1)[-1])

    @property
    def output_dir(self) -> Path:
        """Local folder of the final files (video, poster, contact sheet) while they are made."""
        return self.workdir / "output"

    def read_model(self, key: str, model: type[_M]) -> _M:
        return model.model_validate_json(self.storage.read_bytes(key))

    def write_model(self, key: str, value: Any) -> None:
        self.storage.write_bytes(
            key, value.model_dump_json(indent=2).encode(), content_type="application/json"
        )


_M = TypeVar("_M", Analysis, Storyboard, ShotManifest)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def overall_progress(stage: str, fraction: float) -> float:
    """The job's progress when ``stage`` is ``fraction`` done (earlier stages count in full)."""
    before = sum(STAGE_WEIGHTS[s] for s in STAGES[: STAGES.index(stage)])
    return round(min(1.0, before + STAGE_WEIGHTS[stage] * min(1.0, max(0.0, fraction))), 4)


def stage_fraction(stage: str, progress: float) -> float:
    """Inverse of ``overall_progress``: how far ``stage`` is, given the job's overall progress."""
    before = sum(STAGE_WEIGHTS[s] for s in STAGES[: STAGES.index(stage)])
    return round(min(1.0, max(0.0, (progress - before) / STAGE_WEIGHTS[stage])), 3)


# ------------------------------------------------------------------------------- errors across kernels


def stage_error_path(workdir: Path, stage: str) -> Path:
    return Path(workdir) / f"error-{stage}.json"


def read_stage_error(workdir: Path, stage: str) -> dict[str, Any] | None:
    """The ``KapsuleError`` a stage's notebook last raised (code, message, retryable), if any."""
    try:
        return json.loads(stage_error_path(workdir, stage).read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def _records_errors(stage: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Leave a raised ``KapsuleError``'s code where the pipeline (outside the kernel) can read it."""

    def wrap(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(fn)
        def inner(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            ctx = args[0]
            assert isinstance(ctx, JobContext)
            path = stage_error_path(ctx.workdir, stage)
            path.unlink(missing_ok=True)
            try:
                return fn(*args, **kwargs)
            except KapsuleError as exc:
                payload = {**exc.to_dict(), "type": type(exc).__name__, "retryable": exc.retryable}
                tmp = path.with_name(f".tmp-{path.name}")
                tmp.write_text(json.dumps(payload))
                os.replace(tmp, path)
                raise

        return inner

    return wrap


# ------------------------------------------------------------------------------------------- stages


def prepare(ctx: JobContext, stage: str) -> None:
    """Make sure the stages before ``stage`` have left their outputs, so this notebook can run.

    For the demo job, a missing earlier stage is run here with its defaults, so each notebook runs
    top to bottom on its own in JupyterLab. A real job must have run them already (the pipeline runs
    stages in order); if not, the error says which notebook to run first.
    """
    for earlier in STAGES[: STAGES.index(stage)]:
        if stage_done(ctx, earlier):
            continue
        if ctx.job_id != DEMO_JOB_ID:
            raise StageFailed(
                f"{STAGE_NOTEBOOKS[earlier]} has not run for job {ctx.job_id} yet: run it first",
                code="missing_input",
            )
        print(f"demo job: running the {earlier} stage first (its outputs are missing)")
        recorded = ctx.record().params
        params = {k: recorded.get(k, v) for k, v in STAGE_PARAMS[earlier].items()}
        if earlier == "analyze":
            run_analyze(ctx)
        elif earlier == "storyboard":
            run_storyboard(ctx, **params)
        elif earlier == "generate":
            run_generate(ctx, **params)


@_records_errors("analyze")
def run_analyze(ctx: JobContext) -> Analysis:
    """Validate the input song, analyze it, and write ``work/analysis.json``."""
    from kapsule_pipeline.audio import analyze_song, inspect_song

    ctx.report("analyze", 0.0, "checking the song")
    song = ctx.input_song()
    ctx.song_info = inspect_song(song, ctx.settings)
    ctx.report("analyze", 0.2, f"analyzing {ctx.song_info.duration:.1f} s of audio")
    analysis = analyze_song(song)
    ctx.write_model(ctx.layout.analysis, analysis)
    ctx.report(
        "analyze",
        1.0,
        f"{analysis.tempo:.0f} BPM, {len(analysis.beats)} beats, {len(analysis.sections)} sections",
    )
    return analysis


def load_analysis(ctx: JobContext) -> Analysis:
    return ctx.read_model(ctx.layout.analysis, Analysis)


def load_storyboard(ctx: JobContext) -> Storyboard:
    """The storyboard with every prompt edit of its review (the job record holds them; see ``review``).

    ``storyboard.json`` normally has them already (the approval writes it); an edit's own late write
    of that file could still lag the record, so once the job is running again the file is put right.
    """
    board = ctx.read_model(ctx.layout.storyboard, Storyboard)
    record = ctx.record()
    edited = with_prompt_edits(board, record.params)
    if edited != board and record.state == JobState.running:
        ctx.write_model(ctx.layout.storyboard, edited)
    return edited


def load_manifest(ctx: JobContext) -> ShotManifest:
    return ctx.read_model(ctx.layout.manifest, ShotManifest)


@_records_errors("storyboard")
def run_storyboard(
    ctx: JobContext,
    *,
    prompt: str = "",
    style: str = "",
    aspect_ratio: str = "16:9",
    resolution: str = "720p",
    max_shots: int | None = 0,
    seed: int = 0,
    video_model: str = "",
    prompt_model: str = "",
    transition: str = "cut",
) -> Storyboard:
    """Plan the shots on the music and write ``work/storyboard.json``."""
    from kapsule_pipeline.prompting import make_prompt_writer
    from kapsule_pipeline.storyboard import plan_storyboard

    check_frame_params(aspect_ratio, resolution, max_shots)
    ctx.report("storyboard", 0.0, "planning the shots")
    analysis = load_analysis(ctx)
    writer = make_prompt_writer(prompt_model or ctx.settings.prompt_model, ctx.settings)
    if ctx.settings.gemini_send_audio and hasattr(writer, "song"):
        writer.song = ctx.input_song()  # Gemini hears the song too (settings.gemini_send_audio)
    board = plan_storyboard(
        analysis,
        prompt=prompt,
        style=style,
        aspect_ratio=aspect_ratio,
        resolution=resolution,
        max_shots=max_shots or None,
        seed=int(seed or 0),
        fps=ctx.settings.fps,
        video_model=video_model or ctx.settings.video_model,
        writer=writer,
        transition=transition or "cut",
    )
    ctx.write_model(ctx.layout.storyboard, board)
    # Gemini bills per token; the writer counts what it sent (0 for the local writer).
    tokens = int(getattr(writer, "prompt_tokens", 0) or 0)
    if tokens:
        ctx.update({"cost": lambda c: {**c, "prompt_tokens": int(c["prompt_tokens"]) + tokens}})
    if board.prompt_writer_note:
        log.warning("storyboard: %s", board.prompt_writer_note)
    ctx.report("storyboard", 1.0, f"{len(board.shots)} shots")
    return board


def check_frame_params(aspect_ratio: str, resolution: str, max_shots: int | None) -> None:
    """Refuse a frame format or shot count we cannot make, before any work (used by the CLI too)."""
    if (aspect_ratio, resolution) not in FRAME_SIZES:
        raise InvalidParameter(
            f"unsupported format {aspect_ratio} {resolution}: "
            "aspect ratio 16:9 or 9:16, resolution 720p or 1080p"
        )
    if max_shots is not None and max_shots < 0:
        raise InvalidParameter(f"max shots must be 1 or more (0 = automatic), got {max_shots}")


@_records_errors("generate")
def run_generate(ctx: JobContext, *, video_model: str = "", budget_usd: float | None = 0.0) -> ShotManifest:
    """Generate every shot of the storyboard that is not in storage yet; progress per shot.

    Before any request the storyboard is priced (clips already in storage cost nothing) and checked
    against ``budget_usd`` (0 or ``None``: no cap) on top of what the job already spent, so a job
    stops with ``budget_exceeded`` before paying for anything rather than half-way through. What
    each newly generated shot cost is added to the record's ``cost.actual_usd`` as it finishes, in
    the store's transaction, so a killed or retried job never loses or double-counts spending.
    """
    from kapsule_pipeline.cost import check_budget, estimate_storyboard
    from kapsule_pipeline.generation import make_video_generator
    from kapsule_pipeline.generation.references import note_ignored_images
    from kapsule_pipeline.generation.runner import generate_shots

    board = load_storyboard(ctx)
    analysis = load_analysis(ctx)
    generation_settings = ctx.generation_settings()
    generator = make_video_generator(video_model or board.video_model, generation_settings)
    stored = {
        shot.index
        for shot in board.shots
        if ctx.storage.exists(ctx.layout.shot(shot.index, generator.request_for(shot, board).key()))
    }
    estimate = estimate_storyboard(board, generator)
    new = estimate_storyboard(board, generator, exists=ctx.storage.exists, layout=ctx.layout)
    ctx.update(
        {
            "cost": lambda c: {
                **c,
                "estimated_usd": estimate.total_usd,
                "video_seconds": round(estimate.video_seconds, 3),
            }
        }
    )
    check_budget(new, float(budget_usd) if budget_usd else None, spent_usd=ctx.record().cost.actual_usd)
    ctx.report(
        "generate",
        0.0,
        f"generating {new.to_generate} of {len(board.shots)} shots with {generator.name} "
        f"(estimated ${new.new_usd:.2f})",
    )

    def on_shot(done: int, total: int, result: ShotResult) -> None:
        spent = result.cost_usd if result.index not in stored else 0.0
        if spent:
            ctx.update({"cost": lambda c: {**c, "actual_usd": round(float(c["actual_usd"]) + spent, 4)}})
        ctx.report("generate", 0.95 * done / max(1, total), f"shot {done}/{total} {result.state}")

    manifest = generate_shots(
        board=board,
        analysis=analysis,
        generator=generator,
        storage=ctx.storage,
        layout=ctx.layout,
        workdir=ctx.workdir,
        on_shot=on_shot,
        should_stop=ctx.cancelled,
    )
    if (noted := note_ignored_images(manifest, generator.name, generation_settings)) is not None:
        manifest = noted  # the local renderer draws no images: say so in the manifest
        ctx.write_model(ctx.layout.manifest, manifest)
    ctx.report("generate", 0.97, "contact sheet")
    make_contact_sheet_file(ctx, board, manifest)
    ctx.report("generate", 1.0, f"{len(manifest.shots)} shots ready")
    return manifest


def make_contact_sheet_file(ctx: JobContext, board: Storyboard, manifest: ShotManifest) -> Path:
    """One frame of every shot in a grid (``output/contact-sheet.jpg``): the shots at a glance."""
    from kapsule_pipeline.assemble import make_contact_sheet

    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    sheet = Path(
        make_contact_sheet(_shot_clips(ctx, board, manifest), board, ctx.output_dir / "contact-sheet.jpg")
    )
    ctx.storage.upload_from(sheet, ctx.layout.contact_sheet, content_type="image/jpeg")
    return sheet


def _shot_clips(ctx: JobContext, board: Storyboard, manifest: ShotManifest) -> list[Path]:
    """Local paths of every shot's clip, in storyboard order; a missing one is an error."""
    clips = []
    for shot in board.shots:
        result = manifest.by_index(shot.index)
        if result is None or result.state not in FINISHED_SHOT_STATES or not ctx.storage.exists(result.file):
            raise StageFailed(
                f"shot {shot.index} has no finished clip; run the generate stage again", code="shots_missing"
            )
        local = ctx.storage.local_path(result.file)
        if local is None:
            local = ctx.storage.download_to(
                result.file, ctx.workdir / "shots" / result.file.rsplit("/", 1)[-1]
            )
        clips.append(local)
    return clips


@_records_errors("assemble")
def run_assemble(ctx: JobContext) -> AssemblyResult:
    """Cut the clips onto the song; deliver ``video.mp4``, store the poster and contact sheet."""
    from kapsule_pipeline.assemble import assemble_video, make_poster, poster_time

    board = load_storyboard(ctx)
    manifest = load_manifest(ctx)
    clips = _shot_clips(ctx, board, manifest)
    ctx.report("assemble", 0.05, f"cutting {len(clips)} shots onto the song")
    out_dir = ctx.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    result = assemble_video(
        board,
        clips,
        ctx.input_song(),
        out_dir / "video.mp4",
        exact_lengths=all(r.exact_length for r in manifest.shots),
        crf=ctx.settings.video_crf,
        preset=ctx.settings.video_preset,
        timeout=ctx.settings.ffmpeg_timeout_s,
    )
    ctx.report("assemble", 0.8, "poster and contact sheet")
    poster = make_poster(result.video, out_dir / "poster.jpg", at=poster_time(board))
    ctx.storage.upload_from(Path(poster), ctx.layout.poster, content_type="image/jpeg")
    if not ctx.storage.exists(ctx.layout.contact_sheet):
        make_contact_sheet_file(ctx, board, manifest)
    # The video goes last: its presence in the delivery store is what marks this stage done.
    ctx.delivery.upload_from(Path(result.video), ctx.layout.video, content_type="video/mp4")
    ctx.update(
        {
            "outputs": {
                "video": ctx.layout.video,
                "delivery_url": ctx.delivery.url,
                "poster": ctx.layout.poster,
                "contact_sheet": ctx.layout.contact_sheet,
                "duration": f"{result.duration:.3f}",
            }
        }
    )
    ctx.report("assemble", 1.0, f"video ready ({result.duration:.2f} s)")
    return result


def stage_done(ctx: JobContext, stage: str) -> bool:
    """Whether ``stage``'s outputs already exist in storage (the pipeline skips it on a re-run)."""
    if stage == "analyze":
        return ctx.storage.exists(ctx.layout.analysis)
    if stage == "storyboard":
        return ctx.storage.exists(ctx.layout.storyboard)
    if stage == "generate":
        if not (ctx.storage.exists(ctx.layout.manifest) and ctx.storage.exists(ctx.layout.storyboard)):
            return False
        try:
            _shot_clips(ctx, load_storyboard(ctx), load_manifest(ctx))
        except (StageFailed, ValueError):
            return False
        return True
    if stage == "assemble":
        return ctx.delivery.exists(ctx.layout.video) and ctx.storage.exists(ctx.layout.poster)
    raise InvalidParameter(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
