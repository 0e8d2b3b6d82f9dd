"""Runs one job: its four notebooks in order with papermill, recording progress and saving artifacts.

Each stage is a notebook (``notebooks/NN_name.ipynb``) executed in a fresh kernel with the job's
parameters injected by papermill. The executed notebook is the stage's log: papermill records each
cell's start, end, duration and status in it, so we keep it (``.ipynb`` plus an ``.html`` rendering)
in the job's ``notebooks/`` folder in storage, also when a cell fails. A stage whose outputs already
exist is skipped when a job is retried, but once one stage has run, every later stage runs too so
nothing downstream of fresh work is stale.

Failures: papermill raises ``PapermillExecutionError`` with the failing cell's execution count,
index, exception name and text. A ``KapsuleError`` raised in the kernel is rebuilt here as the same
class (``errors.by_name``: every class has one fixed code), so the job error says ``not_audio`` and
names the notebook and cell. A failure a retry cannot fix is recorded in the job (state ``failed``) and the
record returned; a retryable one is raised for the job entrypoint to turn into a retry.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kapsule.core import errors
from kapsule.core.errors import (
    ConfigError,
    InvalidTransition,
    JobCancelled,
    KapsuleError,
    KernelFailed,
    StageFailed,
)
from kapsule.core.settings import Settings
from kapsule.infra.context import JobContext, Stores
from kapsule.infra.launch.base import settings_env, uses_genai_models
from kapsule.job.record import STAGES, JobRecord, JobState, StageTiming
from kapsule.job.update import JobUpdate
from kapsule.stages import STAGE_NOTEBOOKS, stage_done
from kapsule.storyboard.review import needs_review, pause_for_review

log = logging.getLogger(__name__)

DEFAULT_NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL_START_TIMEOUT_S = 120
# A kernel that never started (papermill's start timed out on a loaded machine: "Kernel died before
# replying to kernel_info") ran nothing, so it is started again, after a pause, before the job fails.
KERNEL_START_ATTEMPTS = 3
KERNEL_START_PAUSE_S = 2.0
# The kernel's own log goes to the job log; its start-up warning about unencrypted local TCP is noise.
KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]

# nbconvert warns about every plot without alt text; the job log is not the place for that.
_quiet_log = logging.getLogger("kapsule.control.pipeline.nbconvert")
_quiet_log.setLevel(logging.ERROR)


def notebooks_dir(settings: Settings) -> Path:
    folder = Path(settings.notebooks_dir) if settings.notebooks_dir else DEFAULT_NOTEBOOKS_DIR
    if not (folder / f"{STAGE_NOTEBOOKS['analyze']}.ipynb").is_file():
        raise ConfigError(f"the pipeline notebooks are not in {folder}; set KAPSULE_NOTEBOOKS_DIR")
    return folder


def notebook_parameters(ctx: JobContext) -> dict[str, str]:
    """What papermill injects: the job's id, and nothing else.

    The kernel opens the job by its id and reads its inputs from the record (their one source); the
    deployment's settings reach it as the ``KAPSULE_*`` environment (``_kernel_environment``), not as
    parameters, so neither crosses twice.
    """
    return {"job_id": ctx.job_id}


@contextlib.contextmanager
def _kernel_environment(settings: Settings, genai: bool | None = None) -> Iterator[None]:
    """Let the kernel (a child process) build the same settings as ``settings``, then restore ours.

    ``genai`` says whether this job's models need the google-genai key (default: the settings').
    """
    set_vars, unset = settings_env(settings, genai=genai)
    saved = {k: os.environ.get(k) for k in [*set_vars, *unset]}
    os.environ.update(set_vars)
    for key in unset:
        os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ---------------------------------------------------------------------------------- one notebook


def _cell_seconds(nb: Any) -> tuple[float, dict[str, float]]:
    """Total seconds spent in cells, and per tag (``setup``, ``stage``), from papermill's metadata."""
    total = 0.0
    per_tag: dict[str, float] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        duration = float(cell.metadata.get("papermill", {}).get("duration") or 0.0)
        total += duration
        for tag in cell.metadata.get("tags", []):
            per_tag[tag] = per_tag.get(tag, 0.0) + duration
    return total, per_tag


# JupyterLab's HTML template minus everything it would fetch from a CDN (require.js, MathJax, mermaid,
# the widget manager): a report needs none of it, and a reviewer's browser then loads nothing from
# outside. The page's CSS stays inline and plots stay inline PNGs, so it looks the same.
_REPORT_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
"""


def notebook_html(nb: Any) -> str:
    """The notebook as a static HTML report: no script tags of the template, nothing from a CDN."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        log=_quiet_log,
        extra_loaders=[DictLoader({"kapsule_report.html.j2": _REPORT_TEMPLATE})],
        template_file="kapsule_report.html.j2",
    )
    body, _ = exporter.from_notebook_node(nb)
    return str(body)


def _save_notebook(ctx: JobContext, name: str, executed: Path) -> tuple[Any, float]:
    """Store the executed notebook and its HTML rendering; returns the notebook and seconds taken."""
    import nbformat

    started = time.perf_counter()
    nb = nbformat.read(executed, as_version=4)  # type: ignore[no-untyped-call]
    body = notebook_html(nb)
    ctx.storage.upload_from(executed, ctx.layout.notebook(name), content_type="application/x-ipynb+json")
    ctx.storage.write_bytes(
        ctx.layout.notebook(name, "html"), body.encode(), content_type="text/html; charset=utf-8"
    )
    return nb, time.perf_counter() - started


def _ran_a_cell(executed: Path) -> bool:
    """Whether the kernel executed any cell of the notebook papermill wrote (False: it never started)."""
    import nbformat

    if not executed.is_file():
        return False
    try:
        nb = nbformat.read(executed, as_version=4)  # type: ignore[no-untyped-call]
    except (OSError, ValueError):
        return False
    return any(cell.cell_type == "code" and cell.get("execution_count") for cell in nb.cells)


def _failure(stage: str, name: str, exc: Exception) -> KapsuleError:
    """Turn what papermill raised into a job error that names the notebook, the cell and the cause."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        cls = errors.by_name(exc.ename) or StageFailed
        if cls is JobCancelled:
            return JobCancelled(f"cancelled during {name}")
        evalue = exc.evalue if len(exc.evalue) <= 600 else exc.evalue[:600] + "…"
        message = f"{name} failed in cell [{exc.exec_count}] (cell #{exc.cell_index}): {exc.ename}: {evalue}"
        error: KapsuleError = cls(message)
        error.cell = exc.exec_count
    else:  # the kernel died (out of memory, killed) or never started: worth another attempt
        error = KernelFailed(f"{name} could not run: {type(exc).__name__}: {exc}")
    error.stage, error.notebook = stage, name
    return error


def run_stage_notebook(ctx: JobContext, stage: str, timings: dict[str, StageTiming]) -> None:
    """Execute one stage's notebook, store it (even when a cell fails), and return its timings.

    Timings split the wall time into the notebook's cells (``setup`` = imports and opening the job,
    ``stage`` = the stage's own work, the rest = tables and plots) and papermill's overhead (kernel
    start and shutdown, injecting parameters, writing the notebook), plus saving the artifacts.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    name = STAGE_NOTEBOOKS[stage]
    source = notebooks_dir(ctx.settings) / f"{name}.ipynb"
    executed = ctx.workdir / "notebooks" / f"{name}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    executed.unlink(missing_ok=True)
    ctx.report(stage, 0.0, f"starting {name}")

    failure: Exception | None = None
    started = time.perf_counter()
    for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
        failure = None
        try:
            with _kernel_environment(
                ctx.settings, genai=uses_genai_models(ctx.params.video_model, ctx.params.prompt_model)
            ):
                papermill.execute_notebook(
                    str(source),
                    str(executed),
                    parameters=notebook_parameters(ctx),
                    kernel_name=ctx.settings.kernel_name,
                    progress_bar=False,
                    log_output=False,
                    start_timeout=KERNEL_START_TIMEOUT_S,
                    extra_arguments=KERNEL_ARGS,
                    cwd=str(Path.cwd()),  # the same relative settings paths in the kernel as here
                )
        except PapermillExecutionError as exc:
            failure = exc
        except (KapsuleError, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a dead or unstartable kernel; nbclient and jupyter_client raise many kinds
            failure = exc
        if failure is None or isinstance(failure, PapermillExecutionError) or _ran_a_cell(executed):
            break
        if attempt < KERNEL_START_ATTEMPTS:
            log.warning("%s: the kernel did not start (%s); starting it again", name, failure)
            ctx.report(stage, 0.0, f"starting {name} again: its kernel did not start")
            time.sleep(KERNEL_START_PAUSE_S * attempt)
    wall = time.perf_counter() - started

    timing = StageTiming(notebook=name, wall_s=round(wall, 3), failed=failure is not None)
    if executed.is_file():
        nb, save_s = _save_notebook(ctx, name, executed)
        cells, per_tag = _cell_seconds(nb)
        timing = timing.model_copy(
            update={
                "cells_s": round(cells, 3),
                "setup_s": round(per_tag.get("setup", 0.0), 3),
                "stage_s": round(per_tag.get("stage", 0.0), 3),
                "overhead_s": round(max(0.0, wall - cells), 3),
                "save_s": round(save_s, 3),
            }
        )
    timings[stage] = timing
    if failure is not None:
        raise _failure(stage, name, failure)


# ------------------------------------------------------------------------------------------ a job


def _save_timings(ctx: JobContext, timings: dict[str, StageTiming]) -> None:
    ctx.update(JobUpdate(timings=timings))


def run_job(job_id: str, settings: Settings) -> JobRecord:
    """Run every unfinished stage of ``job_id`` and return its final record.

    A queued job is moved to running first (the job entrypoint normally did that already). A job
    asked to be reviewed that is not approved yet stops after its storyboard, in state
    ``awaiting_approval`` (see ``review``), and that record is returned. Returns the record when
    the job succeeded, was cancelled, or failed for a reason a retry cannot fix
    (recorded as its error); raises the ``KapsuleError`` of a failure a retry could fix.
    """
    ctx = JobContext.for_job(Stores.open(settings), job_id)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    record = ctx.record()
    if record.finished:
        return record
    if record.state == JobState.queued:
        record = ctx.status.update(job_id, JobUpdate(state=JobState.running))

    timings: dict[str, StageTiming] = {}
    stage: str | None = None
    fresh_work = False
    try:
        for stage in STAGES:
            if ctx.cancelled():
                raise JobCancelled(f"cancelled before {stage}")
            if not fresh_work and stage_done(ctx, stage):
                timings[stage] = StageTiming(notebook=STAGE_NOTEBOOKS[stage], skipped=True)
                ctx.report(stage, 1.0, f"{stage}: already done")
                continue
            fresh_work = True
            try:
                run_stage_notebook(ctx, stage, timings)
            finally:
                _save_timings(ctx, timings)
            if stage == "storyboard" and needs_review(ctx.record()):
                try:
                    return pause_for_review(ctx)
                except InvalidTransition:  # cancelled meanwhile
                    return ctx.record()
    except JobCancelled:
        return ctx.record()
    except KapsuleError as exc:
        if ctx.cancelled():
            return ctx.record()
        if exc.retryable:
            ctx.update(JobUpdate(message=f"attempt failed, a retry may fix it: {exc.message}"))
            raise
        return ctx.fail(exc, stage)

    done = ctx.update(JobUpdate(state=JobState.succeeded, stage="assemble", progress=1.0, message="done"))
    return done or ctx.record()
