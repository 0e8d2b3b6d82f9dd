"""What each notebook calls: opening its job, and one function per stage.

The notebooks under ``notebooks/`` stay thin (a tagged parameters cell holding the job's
``JobParams``, then calls into this module), so the logic is tested like any other library code and
a creative technologist can still drive one job by hand from JupyterLab. Every stage reads its
inputs from and writes its outputs to the job's storage folder (``layout.JobLayout``), which is what
lets any stage be re-run alone and lets the pipeline skip a finished stage when a job is retried
(``stage_done``). The tables and plots the notebooks show a reviewer live in ``report.py`` and
``plots.py``: presentation stays out of here.

A ``KapsuleError`` raised here crosses the notebook boundary as itself: papermill reports its class
name and text, and the pipeline maps the name back to the class (``errors.by_name``), so the job
record keeps ``not_audio`` rather than a generic "stage failed".
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kapsule import media
from kapsule.core.errors import (
    InvalidParameter,
    JobExists,
    JobNotFound,
    ShotsMissing,
    StageInputMissing,
)
from kapsule.core.settings import get_settings
from kapsule.infra.context import JobContext, Stores
from kapsule.job.artifacts import Analysis, ShotManifest, ShotResult, Storyboard, frame_size
from kapsule.job.layout import NOTEBOOK_NAMES
from kapsule.job.params import JobParams
from kapsule.job.record import STAGES, JobOutputs, JobRecord, JobState
from kapsule.job.update import CostDelta, CostEstimate, JobUpdate
from kapsule.stages.files import (
    check_shots,
    load_lyrics_lines,
    local_clips,
    make_contact_sheet_file,
    time_lyrics,
    write_click_file,
)
from kapsule.storyboard.review import with_prompt_edits

if TYPE_CHECKING:
    from kapsule.assembly.video import AssemblyResult

log = logging.getLogger(__name__)

# pooch (imported by librosa) imports tqdm.auto, which warns in a kernel without ipywidgets; the
# warning would be the first thing a reviewer reads in the analysis notebook.
warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")

DEMO_JOB_ID = "j" + "0" * 20
"""The notebooks' default job: the bundled demo song, created on first use."""

STAGE_NOTEBOOKS: dict[str, str] = dict(zip(STAGES, NOTEBOOK_NAMES, strict=True))

NOTEBOOK_ARGS: dict[str, Any] = {"job_id": "", "storage_url": "", "status_url": ""}
"""What every notebook's parameters cell holds besides the job's ``JobParams`` fields."""


# --------------------------------------------------------------------------------------- the job


def open_job(
    job_id: str = "", storage_url: str = "", status_url: str = "", params: JobParams | None = None
) -> JobContext:
    """Open ``job_id`` (must exist), or with no id the demo job, which is created on first use.

    ``storage_url``/``status_url`` override the settings, so papermill can point a notebook at
    exactly the stores the pipeline uses; empty means "from settings". ``params`` (the notebook's
    parameters cell) win over the record's for this run; the pipeline injects the record's own.
    """
    settings = get_settings()
    overrides = {k: v for k, v in (("storage_url", storage_url), ("status_url", status_url)) if v}
    if overrides:
        settings = settings.model_copy(update=overrides)
    stores = Stores.open(settings)
    job_id = job_id or DEMO_JOB_ID
    if job_id == DEMO_JOB_ID:
        _ensure_demo_job(stores, params or JobParams(song="demo-song.wav"))
    ctx = JobContext.for_job(stores, job_id, params)  # JobNotFound here, not mid-stage
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    if job_id == DEMO_JOB_ID and not ctx.has_input_song():
        from kapsule.demo.song import write_demo_song

        song = write_demo_song(ctx.workdir / "demo" / "demo-song.wav")
        ctx.storage.upload_from(song, ctx.layout.input_song("wav"), content_type="audio/wav")
    return ctx


def _ensure_demo_job(stores: Stores, params: JobParams) -> None:
    """Create the demo job's record if it is missing (idempotent; another kernel may race us)."""
    try:
        stores.status.get(DEMO_JOB_ID)
    except JobNotFound:
        record = JobRecord(id=DEMO_JOB_ID, params=params, message="the bundled demo song")
        with contextlib.suppress(JobExists):
            stores.status.create(record)


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
            raise StageInputMissing(
                f"{STAGE_NOTEBOOKS[earlier]} has not run for job {ctx.job_id} yet: run it first",
            )
        print(f"demo job: running the {earlier} stage first (its outputs are missing)")
        STAGE_RUNNERS[earlier](ctx)


def run_analyze(ctx: JobContext) -> Analysis:
    """Validate the input song, analyze it, and write ``work/analysis.json``."""
    from kapsule.song.probe import analyze_song, inspect_song

    ctx.report("analyze", 0.0, "checking the song")
    song = ctx.input_song()
    ctx.song_info = inspect_song(song, ctx.settings)
    ctx.report("analyze", 0.2, f"analyzing {ctx.song_info.duration:.1f} s of audio")
    analysis = analyze_song(song, ctx.params.hints())
    ctx.report("analyze", 0.8, "writing the click-track preview")
    write_click_file(ctx, song, analysis)
    if ctx.params.lyrics:
        ctx.report("analyze", 0.9, "timing the lyrics")
        time_lyrics(ctx, song, analysis.duration)
    # analysis.json goes last: its presence is what marks this stage done (the preview exists too).
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
    edited = with_prompt_edits(board, record)
    if edited != board and record.state == JobState.running:
        ctx.write_model(ctx.layout.storyboard, edited)
    return edited


def load_manifest(ctx: JobContext) -> ShotManifest:
    return ctx.read_model(ctx.layout.manifest, ShotManifest)


def run_storyboard(ctx: JobContext) -> Storyboard:
    """Plan the shots on the music and write ``work/storyboard.json``."""
    from kapsule.generation import video_model_of
    from kapsule.prompting import make_prompt_writer
    from kapsule.storyboard.plan import plan_storyboard

    ctx.report("storyboard", 0.0, "planning the shots")
    analysis = load_analysis(ctx)
    writer = make_prompt_writer(ctx)
    params = ctx.params
    board = plan_storyboard(
        analysis,
        prompt=params.prompt,
        style=params.style,
        aspect_ratio=params.aspect_ratio,
        resolution=params.resolution,
        max_shots=params.max_shots or None,
        seed=params.seed,
        fps=ctx.settings.fps,
        video_model=video_model_of(ctx),
        writer=writer,
        transition=params.transition,
        lyrics=load_lyrics_lines(ctx),
    )
    ctx.write_model(ctx.layout.storyboard, board)
    # Gemini bills per token; the writer counts what it sent (0 for the local writer).
    tokens = int(getattr(writer, "prompt_tokens", 0) or 0)
    if tokens:
        ctx.update(JobUpdate(add_cost=CostDelta(prompt_tokens=tokens)))
    if board.prompt_writer_note:
        log.warning("storyboard: %s", board.prompt_writer_note)
    ctx.report("storyboard", 1.0, f"{len(board.shots)} shots")
    return board


def run_generate(ctx: JobContext) -> ShotManifest:
    """Generate every shot of the storyboard that is not in storage yet; progress per shot.

    Before any request the storyboard is priced (clips already in storage cost nothing) and checked
    against ``budget_usd`` (0 or ``None``: no cap) on top of what the job already spent, so a job
    stops with ``budget_exceeded`` before paying for anything rather than half-way through. What
    each newly generated shot cost is added to the record's ``cost.actual_usd`` as it finishes, in
    the store's transaction, so a killed or retried job never loses or double-counts spending.
    """
    from kapsule.generation import make_video_generator
    from kapsule.generation.references import note_ignored_images
    from kapsule.generation.runner import generate_shots
    from kapsule.storyboard.cost import check_budget, estimate_storyboard

    board = load_storyboard(ctx)
    analysis = load_analysis(ctx)
    generator = make_video_generator(ctx, board.video_model)
    budget_usd = ctx.params.budget_usd
    stored = {
        shot.index
        for shot in board.shots
        if ctx.storage.exists(ctx.layout.shot(shot.index, generator.request_for(shot, board).key()))
    }
    estimate = estimate_storyboard(board, generator)
    new = estimate_storyboard(board, generator, exists=ctx.storage.exists, layout=ctx.layout)
    ctx.update(
        JobUpdate(
            set_estimate=CostEstimate(
                estimated_usd=estimate.total_usd, video_seconds=round(estimate.video_seconds, 3)
            )
        )
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
            ctx.update(JobUpdate(add_cost=CostDelta(actual_usd=spent)))
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
    if (noted := note_ignored_images(manifest, generator.name, ctx.params)) is not None:
        manifest = noted  # the local renderer draws no images: say so in the manifest
        ctx.write_model(ctx.layout.manifest, manifest)
    ctx.report("generate", 0.97, "contact sheet")
    make_contact_sheet_file(ctx, board, manifest)
    ctx.report("generate", 1.0, f"{len(manifest.shots)} shots ready")
    return manifest


def run_assemble(ctx: JobContext) -> AssemblyResult:
    """Cut the clips onto the song; deliver ``video.mp4``, store the poster and contact sheet."""
    from kapsule.assembly.video import assemble_video, make_poster, poster_time
    from kapsule.lyrics.captions import resolve_caption_mode, write_captions

    board = load_storyboard(ctx)
    manifest = load_manifest(ctx)
    out_dir = ctx.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = load_lyrics_lines(ctx)
    mode = resolve_caption_mode(ctx.params.captions, bool(lines))
    files = (
        write_captions(lines, frame_size(board.aspect_ratio, board.resolution), ctx.workdir / "captions")
        if lines
        else None
    )
    with local_clips(ctx, board, manifest) as clips:  # downloaded clips are deleted once cut
        ctx.report("assemble", 0.05, f"cutting {len(clips)} shots onto the song")
        result = assemble_video(
            board,
            clips,
            ctx.input_song(),
            out_dir / "video.mp4",
            exact_lengths=all(r.exact_length for r in manifest.shots),
            crf=ctx.settings.video_crf,
            preset=ctx.settings.video_preset,
            timeout=ctx.settings.ffmpeg_timeout_s,
            captions=files.tracks(mode) if files else None,
        )
    ctx.report("assemble", 0.8, "poster and contact sheet")
    poster = make_poster(result.video, out_dir / "poster.jpg", at=poster_time(board))
    ctx.storage.upload_from(Path(poster), ctx.layout.poster, content_type="image/jpeg")
    if not ctx.storage.exists(ctx.layout.contact_sheet):
        make_contact_sheet_file(ctx, board, manifest)
    captions: dict[str, str] = {}  # file extension -> key in the delivery store
    if files is not None and mode in ("soft", "both"):  # the platforms' caption files, beside the MP4
        for ext, path, mime in (("srt", files.srt, "application/x-subrip"), ("vtt", files.vtt, "text/vtt")):
            ctx.delivery.upload_from(path, ctx.layout.captions(ext), content_type=f"{mime}; charset=utf-8")
            captions[ext] = ctx.layout.captions(ext)
    # The video goes last: its presence in the delivery store is what marks this stage done.
    ctx.delivery.upload_from(Path(result.video), ctx.layout.video, content_type="video/mp4")
    # Delivered: the local copy goes (RAM on Cloud Run); the report keeps its ffprobe view. A re-run
    # of this stage writes it again.
    result = result.model_copy(update={"probe": media.probe(Path(result.video))})
    if ctx.delivery.local_path(ctx.layout.video) != Path(result.video):
        Path(result.video).unlink(missing_ok=True)
    ctx.update(
        JobUpdate(
            outputs=JobOutputs(
                video=ctx.layout.video,
                delivery_url=ctx.delivery.url,
                poster=ctx.layout.poster,
                contact_sheet=ctx.layout.contact_sheet,
                duration=f"{result.duration:.3f}",
                captions_srt=captions.get("srt"),
                captions_vtt=captions.get("vtt"),
            )
        )
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
        try:  # existence only: nothing is downloaded to decide
            check_shots(ctx, load_storyboard(ctx), load_manifest(ctx))
        except (ShotsMissing, ValueError):
            return False
        return True
    if stage == "assemble":
        return ctx.delivery.exists(ctx.layout.video) and ctx.storage.exists(ctx.layout.poster)
    raise InvalidParameter(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")


STAGE_RUNNERS = {"analyze": run_analyze, "storyboard": run_storyboard, "generate": run_generate}
"""The stages ``prepare`` may run for the demo job (assemble is always the notebook's own)."""
