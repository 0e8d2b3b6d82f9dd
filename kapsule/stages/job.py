"""Opening a job in a notebook kernel, and what each notebook checks before its stage runs.

A job the pipeline runs is opened by its id alone: its inputs are its record's ``params``, read once
here; the kernel's settings are the ``KAPSULE_*`` environment the pipeline hands it (the one way
settings reach a kernel). With no id, a notebook run by hand in JupyterLab works on the demo job
(the bundled demo song), with the values of its own parameters cell.
"""

from __future__ import annotations

import contextlib

from kapsule.core.errors import InvalidParameter, JobExists, JobNotFound, ShotsMissing, StageInputMissing
from kapsule.core.settings import Settings
from kapsule.infra.context import JobContext, Stores
from kapsule.job.layout import NOTEBOOK_NAMES
from kapsule.job.params import JobOptions, JobParams
from kapsule.job.record import STAGES, JobRecord
from kapsule.stages.files import check_shots, load_manifest, load_storyboard

DEMO_JOB_ID = "j" + "0" * 20
"""The notebooks' default job: the bundled demo song, created on first use."""

DEMO_SONG = "demo-song.wav"

STAGE_NOTEBOOKS: dict[str, str] = dict(zip(STAGES, NOTEBOOK_NAMES, strict=True))


def open_job(settings: Settings, job_id: str) -> JobContext:
    """The context of an existing job (``JobNotFound`` here, not mid-stage), with its record's params."""
    ctx = JobContext.for_job(Stores.open(settings), job_id)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    return ctx


def open_demo_job(settings: Settings, options: JobOptions) -> JobContext:
    """The demo job with ``options`` for this run (a notebook's parameters cell), created on first use.

    Its record and song are made once (another kernel may race us: both are idempotent); the options
    given here are the ones this run uses, so a creative technologist can change the prompt or the
    style and run a stage again.
    """
    stores = Stores.open(settings)
    params = JobParams(**options.model_dump(), song=DEMO_SONG)
    try:
        stores.status.get(DEMO_JOB_ID)
    except JobNotFound:
        record = JobRecord(id=DEMO_JOB_ID, params=params, message="the bundled demo song")
        with contextlib.suppress(JobExists):
            stores.status.create(record)
    ctx = JobContext.for_job(stores, DEMO_JOB_ID, params)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    if not ctx.has_input_song():
        from kapsule.demo.song import write_demo_song

        song = write_demo_song(ctx.workdir / "demo" / DEMO_SONG)
        ctx.storage.upload_from(song, ctx.layout.input_song("wav"), content_type="audio/wav")
    return ctx


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


def prepare(ctx: JobContext, stage: str) -> None:
    """Make sure the stages before ``stage`` have left their outputs, so this notebook can run.

    For the demo job, a missing earlier stage is run here with this run's options, so each notebook
    runs top to bottom on its own in JupyterLab. A real job must have run them already (the pipeline
    runs stages in order); if not, the error says which notebook to run first.
    """
    from kapsule.stages.analyze import run_analyze  # only the demo job runs earlier stages here
    from kapsule.stages.generate import run_generate
    from kapsule.stages.storyboard import run_storyboard

    runners = {"analyze": run_analyze, "storyboard": run_storyboard, "generate": run_generate}
    for earlier in STAGES[: STAGES.index(stage)]:
        if stage_done(ctx, earlier):
            continue
        if ctx.job_id != DEMO_JOB_ID:
            raise StageInputMissing(
                f"{STAGE_NOTEBOOKS[earlier]} has not run for job {ctx.job_id} yet: run it first",
            )
        print(f"demo job: running the {earlier} stage first (its outputs are missing)")
        runners[earlier](ctx)
