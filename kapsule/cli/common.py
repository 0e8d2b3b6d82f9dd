"""What every ``kapsule`` command shares: the consoles, exit codes, the one-line error, the job
service, following a job with progress bars (Ctrl-C cancels it) and delivering its video."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from kapsule.control.service import JobService
from kapsule.core.access import LOCAL_OWNER
from kapsule.core.errors import InvalidTransition, JobCrashed, KapsuleError
from kapsule.core.settings import get_settings
from kapsule.infra.context import Stores
from kapsule.infra.launch import make_launcher
from kapsule.job.layout import JobLayout
from kapsule.job.record import STAGES, JobRecord, JobState, stage_fraction
from kapsule.worker.run_job import local_command

POLL_S = 0.25  # ~4 Hz: smooth bars, negligible load on the status store
CRASH_GRACE_S = 2.0  # after the job process exits, how long to wait for its final record write

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

OutOpt = Annotated[Path | None, typer.Option("-o", "--out", help="Where to write the MP4.")]


def fail(exc: KapsuleError, code: int = EXIT_FAILED) -> typer.Exit:
    """Print the one-line error and return the exit to raise."""
    typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
    return typer.Exit(code)


def service_for_settings() -> JobService:
    settings = get_settings()
    return JobService(Stores.open(settings), make_launcher(settings.launcher, settings, local_command()))


# -------------------------------------------------------------------------------------------- make


def follow(service: JobService, job_id: str, execution: str) -> JobRecord:
    """Show a progress bar per stage until the job finishes or pauses; Ctrl-C cancels it (exit 130)."""
    try:
        return bars(service, job_id, execution)
    except KeyboardInterrupt:
        with contextlib.suppress(InvalidTransition):
            service.cancel(LOCAL_OWNER, job_id, "cancelled from the command line")
        with contextlib.suppress(KapsuleError):
            service.launcher.cancel(execution)
        typer.echo(f"error [cancelled]: job {job_id} cancelled", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def bars(service: JobService, job_id: str, execution: str) -> JobRecord:
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
    )
    status, launcher = service.stores.status, service.launcher
    exited_at: float | None = None
    with Progress(*columns, console=err) as progress:
        tasks = {stage: progress.add_task(stage, total=1.0, note="", start=False) for stage in STAGES}
        while True:
            record = status.get(job_id)
            for stage in STAGES:
                fraction = stage_fraction(stage, record.progress)
                if fraction > 0 or record.stage == stage:
                    progress.start_task(tasks[stage])
                note = record.message if record.stage == stage and not record.finished else ""
                progress.update(tasks[stage], completed=fraction, note=note[:60])
            if record.finished or record.state == JobState.awaiting_approval:
                return record
            if launcher.poll(execution) is not None:
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > CRASH_GRACE_S:
                    log = Path(service.settings.work_dir) / job_id / "job.log"
                    crash = JobCrashed(
                        f"the job process exited ({launcher.poll(execution)}) without finishing; see {log}"
                    )
                    return service.record_failure(job_id, crash, record.stage)
            time.sleep(POLL_S)


def deliver(service: JobService, final: JobRecord, target: Path) -> None:
    """Download a succeeded job's video to ``target``, show a paused one's review, or fail."""
    if final.state == JobState.awaiting_approval:
        print_review(service, final)
        return
    if final.state != JobState.succeeded:
        code, message = (
            (final.error.code, final.error.message) if final.error else (final.state, final.message)
        )
        typer.echo(f"error [{code}]: {message}", err=True)
        raise typer.Exit(EXIT_FAILED)
    layout = JobLayout(final.id)
    service.stores.delivery.download_to(layout.video, target)
    for ext in ("srt", "vtt"):  # lyric captions, beside the MP4 as the delivery store holds them
        if service.stores.delivery.exists(layout.captions(ext)):
            service.stores.delivery.download_to(layout.captions(ext), target.with_suffix(f".{ext}"))
    spent = ", ".join(
        f"{stage} {'skipped' if t.skipped else format(t.wall_s, '.1f') + ' s'}"
        for stage, t in final.timings.items()
    )
    err.print(f"done: {final.outputs.duration or '?'} s of video ({spent})")
    typer.echo(str(target))


def print_review(service: JobService, record: JobRecord) -> None:
    """The storyboard a paused job waits on: each shot's prompt, length and cost, then what to do."""
    review = service.review(record.owner, record.id)
    table = Table("#", "start", "length", "asks", "cost", "prompt", title=f"job {record.id}: storyboard")
    for shot in review.shots:
        table.add_row(
            str(shot.index),
            f"{shot.start:.2f} s",
            f"{shot.seconds:.2f} s",
            f"{shot.request_seconds} s",
            f"${shot.cost_usd:.2f}",
            shot.prompt,
        )
    out.print(table)
    out.print(
        f"{len(review.shots)} shots, {review.video_seconds:.0f} s of video with {review.video_model}: "
        f"estimated ${review.total_usd:.2f}"
        + (f" (budget ${review.budget_usd:.2f})" if review.budget_usd else "")
    )
    out.print(f'awaiting approval: kapsule approve {record.id} [--prompt N="new prompt"]')
