"""What each notebook calls: one function per stage, plus the tables and plots a reviewer looks at.

The notebooks under ``notebooks/`` stay thin (a tagged parameters cell, then calls into this module),
so the logic is tested like any other library code and a creative technologist can still drive one
job by hand from JupyterLab. Every stage reads its inputs from and writes its outputs to the job's
storage folder (``layout.JobLayout``), which is what lets any stage be re-run alone and lets the
pipeline skip a finished stage when a job is retried (``stage_done``).

Errors cross the notebook boundary in two ways: the exception itself (papermill reports its name and
text), and, for a ``KapsuleError``, a small JSON file in the job's local workdir holding its stable
``code`` and whether a retry could help. The pipeline reads that file after a failed notebook, so the
job record keeps ``not_audio`` rather than a generic "stage failed".
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from kapsule_pipeline import media
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
from kapsule_pipeline.settings import Settings, get_settings
from kapsule_pipeline.status import StatusStore, open_status_store
from kapsule_pipeline.storage import Storage, open_storage

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

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
    return ctx.read_model(ctx.layout.storyboard, Storyboard)


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


# ------------------------------------------------------------------------------------------- tables


class Table:
    """A small table that renders as HTML in a notebook (and its HTML export) and as text elsewhere."""

    def __init__(self, rows: Iterable[dict[str, Any]], title: str = "") -> None:
        self.rows = list(rows)
        self.title = title
        self.columns: list[str] = []
        for row in self.rows:
            self.columns += [c for c in row if c not in self.columns]

    @staticmethod
    def _cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}".rstrip("0").rstrip(".") if value == value else ""
        return "" if value is None else str(value)

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>"
            + "".join(
                f"<td style='text-align:left'>{html.escape(self._cell(r.get(c)))}</td>" for c in self.columns
            )
            + "</tr>"
            for r in self.rows
        )
        caption = (
            f"<caption style='text-align:left'><b>{html.escape(self.title)}</b></caption>"
            if self.title
            else ""
        )
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        lines = [self.title] if self.title else []
        lines.append(" | ".join(self.columns))
        lines += [" | ".join(self._cell(r.get(c)) for c in self.columns) for r in self.rows]
        return "\n".join(lines)


def _kv(title: str, pairs: Sequence[tuple[str, Any]]) -> Table:
    return Table(({"": k, "value": v} for k, v in pairs), title)


def job_table(ctx: JobContext) -> Table:
    """The job record's headline fields."""
    r = ctx.record()
    pairs: list[tuple[str, Any]] = [
        ("job", r.id),
        ("state", r.state.value),
        ("stage", r.stage),
        ("progress", r.progress),
    ]
    pairs += [("message", r.message), ("storage", ctx.storage.url)]
    if r.error:
        pairs.append(("error", f"[{r.error.code}] {r.error.message}"))
    return _kv("Job", pairs)


def analysis_table(analysis: Analysis, info: SongInfo | None = None) -> Table:
    """What the analysis found, in the numbers a reviewer checks first."""
    bars = max(0, len(analysis.downbeats))
    pairs: list[tuple[str, Any]] = []
    if info is not None:
        pairs += [("file", f"{info.format_name} / {info.codec}, {info.sample_rate} Hz, {info.channels} ch")]
        pairs += [("peak", f"{info.peak_dbfs:.1f} dBFS")]
    pairs += [
        ("duration", f"{analysis.duration:.2f} s"),
        ("tempo", f"{analysis.tempo:.1f} BPM"),
        ("beats", len(analysis.beats)),
        ("downbeats (bars)", bars),
        ("meter", f"{analysis.beats_per_bar}/4"),
        ("sections", ", ".join(f"{s.label} {s.start:.1f}–{s.end:.1f}" for s in analysis.sections)),
        ("mean energy", f"{sum(analysis.energy.values) / max(1, len(analysis.energy.values)):.2f}"),
    ]
    return _kv("Analysis", pairs)


def shot_table(board: Storyboard, prompt_chars: int = 120) -> Table:
    """The storyboard: one row per shot, where it sits on the music and what it shows."""
    return Table(
        (
            {
                "#": s.index,
                "start": s.start,
                "end": s.end,
                "frames": s.frames,
                "asks (s)": s.request_seconds,
                "section": s.section,
                "energy": round(s.energy, 2),
                "prompt": s.prompt if len(s.prompt) <= prompt_chars else s.prompt[: prompt_chars - 1] + "…",
            }
            for s in board.shots
        ),
        f"{len(board.shots)} shots, {board.aspect_ratio} {board.resolution}, {board.fps} fps, "
        f"{board.video_model}",
    )


def cost_table(
    ctx: JobContext, board: Storyboard, video_model: str = "", budget_usd: float | None = None
) -> Table:
    """What the storyboard will cost before anything is generated, and who wrote its prompts.

    Shown after the storyboard (and before generation) so a reviewer sees the bill, the budget and
    any prompt-writer fallback before paying for a single shot. ``budget_usd`` defaults to the job's.
    """
    from kapsule_pipeline.cost import estimate_storyboard, price_per_second
    from kapsule_pipeline.generation import make_video_generator

    record = ctx.record()
    model = video_model or board.video_model
    generator = make_video_generator(model, ctx.generation_settings())
    total = estimate_storyboard(board, generator)
    new = estimate_storyboard(board, generator, exists=ctx.storage.exists, layout=ctx.layout)
    if budget_usd is None:
        budget_usd = float(record.params.get("budget_usd") or 0.0)
    pairs: list[tuple[str, Any]] = [("prompt writer", board.prompt_model)]
    if board.prompt_writer_note:
        pairs.append(("prompt writer note", board.prompt_writer_note))
    pairs += [
        ("video model", f"{model} (${price_per_second(model, ctx.settings):.2f}/s)"),
        ("shots", f"{total.shots}, {total.video_seconds:.0f} s of video requested"),
        ("estimated cost", f"${total.total_usd:.2f}"),
        ("still to generate", f"{new.to_generate} shots, ${new.new_usd:.2f}"),
        ("spent so far", f"${record.cost.actual_usd:.2f}"),
        ("budget", f"${budget_usd:.2f}" if budget_usd else "no cap"),
        ("prompt tokens", record.cost.prompt_tokens),
    ]
    if budget_usd and record.cost.actual_usd + new.new_usd > budget_usd + 1e-9:
        pairs.append(("warning", "over budget: the generate stage will refuse to start"))
    return _kv("Cost estimate", pairs)


def shot_status_table(board: Storyboard, manifest: ShotManifest) -> Table:
    """Per shot: state, generator, length, cost and anything the model refused."""
    rows = []
    for shot in board.shots:
        r = manifest.by_index(shot.index)
        rows.append(
            {
                "#": shot.index,
                "state": r.state if r else "missing",
                "generator": r.generator if r else "",
                "frames": f"{r.frames}/{shot.frames}" if r else f"0/{shot.frames}",
                "seconds": r.seconds if r else 0.0,
                "cost $": r.cost_usd if r else 0.0,
                "key": r.key if r else "",
                "refusals": "; ".join(r.refusals) if r else "",
                "note": r.note if r else "",
            }
        )
    done = sum(1 for row in rows if row["state"] in FINISHED_SHOT_STATES)
    fallback = sum(1 for row in rows if row["state"] == "fallback")
    cost = sum(r.cost_usd for r in manifest.shots)
    title = f"{done}/{len(rows)} shots finished, ${cost:.2f}"
    if fallback:
        title += f"; {fallback} refused and filled by the local renderer"
    return Table(rows, title)


def video_summary(path: Path) -> Table:
    """ffprobe's view of a video: container, streams, duration, frame rate."""
    p = media.probe(Path(path))
    pairs: list[tuple[str, Any]] = [
        ("container", p.format_name),
        ("duration", f"{(p.duration or 0):.3f} s"),
        ("size", f"{p.size / 1e6:.2f} MB"),
    ]
    for v in p.real_video:
        fps = float(v.frame_rate) if v.frame_rate else 0.0
        pairs.append(
            (
                f"video #{v.index}",
                f"{v.codec} {v.width}x{v.height} {v.pix_fmt} {fps:g} fps, {v.frames} frames",
            )
        )
    for a in p.audio:
        pairs.append((f"audio #{a.index}", f"{a.codec} {a.sample_rate} Hz, {a.channels} ch"))
    return _kv(Path(path).name, pairs)


def loudness_table(ctx: JobContext) -> Table:
    """EBU R128 readout of the song as uploaded: analysis only, the video carries the song unchanged.

    Integrated loudness near -14 LUFS is what streaming services play at; a true peak above -1 dBTP
    may clip once a platform re-encodes the audio. Kapsule never normalizes: the mix is the artist's.
    """
    reading = media.loudness(ctx.input_song(), timeout=ctx.settings.ffmpeg_timeout_s)
    return _kv(
        "Loudness (EBU R128, the song as uploaded)",
        [
            ("integrated", f"{reading.integrated_lufs:.1f} LUFS"),
            ("loudness range", f"{reading.range_lu:.1f} LU"),
            ("true peak", f"{reading.true_peak_dbtp:.1f} dBTP"),
        ],
    )


def assembly_table(result: AssemblyResult) -> Table:
    """How the final cut was made: length, frames, and whether video/audio were stream-copied."""
    return _kv(
        "Assembly",
        [
            ("video", str(result.video)),
            ("duration", f"{result.duration:.3f} s"),
            ("frames", result.frames),
            ("video stream-copied", result.copied_video),
            ("audio stream-copied", result.audio_copied),
            ("took", f"{result.seconds_taken:.1f} s"),
        ],
    )


def video_src(ctx: JobContext) -> str:
    """Where the stored notebook finds the delivered video.

    The executed notebook is kept at ``jobs/{id}/notebooks/``; when the video is delivered to the
    same store it sits at ``../output/video.mp4`` from there, so the saved HTML plays it wherever the
    job folder is served from. A separate delivery store is named by its URL.
    """
    if ctx.delivery is ctx.storage:
        return "../output/video.mp4"
    return f"{ctx.delivery.url.rstrip('/')}/{ctx.layout.video}"


def show_video(ctx: JobContext, width: int = 640) -> Any:
    """The final video as a player (linked, not embedded: notebooks stay small), its poster inline.

    The poster is embedded so the notebook shows the video's look even where the link cannot be
    followed (a notebook opened outside the job folder).
    """
    import base64

    from IPython.display import Video

    attributes = 'controls preload="none"'
    poster = ctx.output_dir / "poster.jpg"
    if poster.is_file():
        attributes += f' poster="data:image/jpeg;base64,{base64.b64encode(poster.read_bytes()).decode()}"'
    return Video(url=video_src(ctx), embed=False, width=width, html_attributes=attributes)


def show_image(path: Path, width: int | None = None) -> Any:
    from IPython.display import Image

    return Image(filename=str(path), width=width)


# -------------------------------------------------------------------------------------------- plots

_SECTION_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


PLOT_RATE = 8000  # a waveform picture needs no more


def song_samples(ctx: JobContext, sample_rate: int = PLOT_RATE) -> np.ndarray:
    """The song as mono samples for plotting."""
    from kapsule_pipeline.audio import load_audio

    return load_audio(ctx.input_song(), sample_rate=sample_rate)


def _envelope(samples: np.ndarray, sample_rate: int, bins: int = 3000) -> tuple[Any, Any, Any]:
    import numpy as np

    n = max(1, len(samples) // bins)
    usable = samples[: (len(samples) // n) * n].reshape(-1, n)
    times = (np.arange(usable.shape[0]) + 0.5) * n / sample_rate
    return times, usable.min(axis=1), usable.max(axis=1)


class Plot:
    """A matplotlib figure that a notebook shows as one PNG, whatever backend the kernel has.

    Returning a bare ``Figure`` renders only as text unless pyplot's inline backend happens to be
    active, and pyplot figures are shown twice (once auto-shown, once returned); this shows once.
    """

    def __init__(self, figure: Figure, description: str) -> None:
        self.figure = figure
        self.description = description

    def _repr_png_(self) -> bytes:
        import io

        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()

    def save(self, path: Path) -> Path:
        self.figure.savefig(path, dpi=100)
        return Path(path)

    def __repr__(self) -> str:
        return f"<plot: {self.description}>"


def _figure(rows: int = 1, height: float = 3.0) -> tuple[Figure, Any]:
    # A bare Figure (not pyplot) is not auto-shown by the inline backend, so returning it from a
    # cell displays it exactly once.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, height * rows), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, axes


def _draw_sections(ax: Any, analysis: Analysis, label: bool = True) -> None:
    colors: dict[str, str] = {}
    for s in analysis.sections:
        color = colors.setdefault(s.label, _SECTION_COLORS[len(colors) % len(_SECTION_COLORS)])
        ax.axvspan(s.start, s.end, color=color, alpha=0.13, lw=0)
        if label:
            ax.text(
                s.start + 0.2,
                0.97,
                s.label,
                transform=ax.get_xaxis_transform(),
                va="top",
                fontsize=9,
                color=color,
            )


def _draw_waveform(ax: Any, samples: np.ndarray, sample_rate: int, color: str = "#444") -> None:
    times, low, high = _envelope(samples, sample_rate)
    ax.fill_between(times, low, high, color=color, lw=0)
    peak = float(max(abs(low.min()), abs(high.max()), 1e-6))
    ax.set_ylim(-peak * 1.1, peak * 1.25)
    ax.set_yticks([])


def plot_waveform(analysis: Analysis, samples: np.ndarray, sample_rate: int = PLOT_RATE) -> Plot:
    """Waveform with sections shaded, beats as thin lines and downbeats as thick ones."""
    fig, (ax,) = _figure(height=3.2)
    _draw_sections(ax, analysis)
    _draw_waveform(ax, samples, sample_rate)
    ax.vlines(analysis.beats, 0, 1, transform=ax.get_xaxis_transform(), color="#1f77b4", lw=0.5, alpha=0.6)
    ax.vlines(
        analysis.downbeats, 0, 1, transform=ax.get_xaxis_transform(), color="#d62728", lw=1.2, alpha=0.8
    )
    ax.set_xlim(0, analysis.duration)
    ax.set_xlabel("seconds")
    ax.set_title(
        f"{analysis.tempo:.1f} BPM · {len(analysis.beats)} beats (blue) · "
        f"{len(analysis.downbeats)} downbeats (red) · {len(analysis.sections)} sections"
    )
    return Plot(fig, "waveform with beats, downbeats and sections")


def plot_energy(analysis: Analysis) -> Plot:
    """The energy curve (0..1) over the sections: what drives shot length and intensity."""
    fig, (ax,) = _figure(height=2.4)
    _draw_sections(ax, analysis)
    ax.plot(analysis.energy.times, analysis.energy.values, color="#2ca02c", lw=1.5)
    ax.set_ylim(0, 1.08)
    ax.set_xlim(0, analysis.duration)
    ax.set_ylabel("energy")
    ax.set_xlabel("seconds")
    return Plot(fig, "energy curve over the sections")


def plot_shots(
    board: Storyboard, analysis: Analysis, samples: np.ndarray, sample_rate: int = PLOT_RATE
) -> Plot:
    """The shot timeline over the waveform: each shot a coloured bar, each cut a line on the music."""
    fig, (ax,) = _figure(height=3.2)
    _draw_sections(ax, analysis, label=False)
    _draw_waveform(ax, samples, sample_rate, color="#999")
    ax.vlines(analysis.downbeats, 0, 0.1, transform=ax.get_xaxis_transform(), color="#d62728", lw=0.8)
    for shot in board.shots:
        color = _SECTION_COLORS[shot.index % len(_SECTION_COLORS)]
        ax.axvspan(shot.start, shot.end, ymin=0.86, ymax=0.97, color=color, alpha=0.85, lw=0)
        ax.axvline(shot.start, color="black", lw=0.8, alpha=0.7)
        ax.text((shot.start + shot.end) / 2, 0.915, str(shot.index), transform=ax.get_xaxis_transform(),
                ha="center", va="center", fontsize=8, color="white")  # fmt: skip
    ax.set_xlim(0, board.duration)
    ax.set_xlabel("seconds")
    ax.set_title(f"{len(board.shots)} shots; cuts (black) on the music, downbeats (red ticks)")
    return Plot(fig, f"timeline of {len(board.shots)} shots over the waveform")
