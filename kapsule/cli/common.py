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
from kapsule.core.errors import InvalidTransition, JobCrashed, KapsuleError, OutputExists
from kapsule.core.settings import get_settings
from kapsule.infra.context import Stores
from kapsule.infra.launch import make_launcher
from kapsule.job.layout import NOTEBOOK_NAMES, JobLayout
from kapsule.job.record import STAGES, JobRecord, JobState, stage_fraction
from kapsule.worker.run_job import local_command

POLL_S = 0.25  # ~4 Hz: smooth bars, negligible load on the status store
CRASH_GRACE_S = 2.0  # after the job process exits, how long to wait for its final record write

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

OutOpt = Annotated[
    Path | None,
    typer.Option("-o", "--out", help="Where to write the MP4 (default: videos/ in Kapsule's data folder)."),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace the -o file if it exists.")]


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


def videos_dir() -> Path:
    """Where the CLI writes videos when ``-o`` is not given: ``videos/`` in the Kapsule home, beside
    ``work/`` (the user's data folder unless the settings say otherwise; ``kapsule_home``)."""
    return Path(get_settings().work_dir).parent / "videos"


def check_output(output: Path | None, force: bool) -> None:
    """Refuse, before any job exists, an ``-o`` that would overwrite a file (unless ``--force``)."""
    if output is not None and output.exists() and not force:
        raise OutputExists(f"{output} exists; pass --force to replace it, or choose another -o")


def video_target(record: JobRecord, output: Path | None) -> Path:
    """The one naming rule of make, approve and re-roll: ``-o`` as given, else
    ``<videos>/<song name>-<last 6 of the job id>.mp4``, a name no other job's video has (the whole
    id if those 6 characters ever meet an existing file), so a new video never replaces an old one."""
    if output is not None:
        return output
    stem = Path(record.params.song or "kapsule").stem or "kapsule"
    target = videos_dir() / f"{stem}-{record.id[-6:]}.mp4"
    return target if not target.exists() else target.with_name(f"{stem}-{record.id}.mp4")


def deliver(service: JobService, final: JobRecord, output: Path | None) -> None:
    """Download a succeeded job's deliverables beside its video and list each with its path; show a
    paused job's review; or fail with the job's error."""
    if final.state == JobState.awaiting_approval:
        print_review(service, final)
        return
    if final.state != JobState.succeeded:
        code, message = (
            (final.error.code, final.error.message) if final.error else (final.state, final.message)
        )
        typer.echo(f"error [{code}]: {message}", err=True)
        raise typer.Exit(EXIT_FAILED)
    target = video_target(final, output)
    target.parent.mkdir(parents=True, exist_ok=True)
    layout = JobLayout(final.id)
    stores = service.stores
    stores.delivery.download_to(layout.video, target)
    files: list[tuple[str, str]] = [("video", str(target))]
    for ext in ("srt", "vtt"):  # lyric captions, beside the MP4 as the delivery store holds them
        if stores.delivery.exists(layout.captions(ext)):
            stores.delivery.download_to(layout.captions(ext), target.with_suffix(f".{ext}"))
            files.append((f"captions .{ext}", str(target.with_suffix(f".{ext}"))))
    for what, key, suffix in (
        ("contact sheet", layout.contact_sheet, ".contact-sheet.jpg"),
        ("poster", layout.poster, ".poster.jpg"),
    ):
        if stores.storage.exists(key):
            stores.storage.download_to(key, target.with_name(target.stem + suffix))
            files.append((what, str(target.with_name(target.stem + suffix))))
    files.append(("job folder", _where(service, layout.root)))
    parent = JobLayout(final.reroll.parent_job) if final.reroll else None
    for name in NOTEBOOK_NAMES:  # a re-roll skipped the analysis and storyboard: those are its parent's
        for owner in (layout, parent):
            if owner is not None and stores.storage.exists(owner.notebook(name, "html")):
                files.append((f"notebook {name}", _where(service, owner.notebook(name, "html"))))
                break
    spent = ", ".join(
        f"{stage} {'skipped' if t.skipped else format(t.wall_s, '.1f') + ' s'}"
        for stage, t in final.timings.items()
    )
    err.print(f"done: {final.outputs.duration or '?'} s of video ({spent})")
    width = max(len(what) for what, _ in files)
    for what, where in files:
        err.print(f"  {what:<{width}}  {where}", markup=False, soft_wrap=True)
    typer.echo(str(target))


def _where(service: JobService, key: str) -> str:
    """A stored file or folder as the user can open it: a local path, else its storage URL."""
    path = service.stores.storage.local_path(key)
    return str(path) if path is not None else f"{service.stores.storage.url.rstrip('/')}/{key}"


def print_review(service: JobService, record: JobRecord) -> None:
    """The storyboard a paused job waits on: each shot's prompt, length and cost, then what to do."""
    review = service.review(record.owner, record.id)
    table = Table("#", "start", "length", "asks", "cost", "prompt", title=f"job {record.id}: storyboard")
    for shot in review.shots:
        table.add_row(
            str(shot.number),
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
