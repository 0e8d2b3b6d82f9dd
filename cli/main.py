"""The ``kapsule`` command: make a video from a song on this machine, inspect songs and jobs.

``kapsule make SONG`` hands the job service a ``JobParams`` built from its options (derived from the
model, see ``cli.options``) and the song; the service refuses a bad song or parameter before
anything is created (one clear line, exit code 2), then creates and launches the job, which this
command follows in the status store with a progress bar per stage. Ctrl-C cancels the job. Any
failure is one line, ``error [code]: message``, and exit code 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.lyrics import LyricsOpt, lyrics_command, read_lyrics_file
from cli.options import job_values, with_job_options
from jobs.run_job import local_command
from kapsule_pipeline import __version__
from kapsule_pipeline.context import Stores
from kapsule_pipeline.errors import (
    InvalidParameter,
    InvalidTransition,
    JobCrashed,
    KapsuleError,
)
from kapsule_pipeline.generation.references import read_reference_image
from kapsule_pipeline.intake import LocalSong
from kapsule_pipeline.jobs import STAGES, JobRecord, JobState, stage_fraction
from kapsule_pipeline.launch import make_launcher
from kapsule_pipeline.layout import JobLayout
from kapsule_pipeline.params import parse_params, validation_message
from kapsule_pipeline.service import GridChange, JobService, Submission
from kapsule_pipeline.settings import get_settings

POLL_S = 0.25  # ~4 Hz: smooth bars, negligible load on the status store
CRASH_GRACE_S = 2.0  # after the job process exits, how long to wait for its final record write

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

app = typer.Typer(
    help="Kapsule: a song in, a music video cut to its beats out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
jobs_app = typer.Typer(help="List and inspect jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

LOCAL_OWNER = "local"
OutOpt = Annotated[Path | None, typer.Option("-o", "--out", help="Where to write the MP4.")]


def _fail(exc: KapsuleError, code: int = EXIT_FAILED) -> typer.Exit:
    """Print the one-line error and return the exit to raise."""
    typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
    return typer.Exit(code)


def _service() -> JobService:
    settings = get_settings()
    return JobService(Stores.open(settings), make_launcher(settings.launcher, settings, local_command()))


# -------------------------------------------------------------------------------------------- make


def _follow(service: JobService, job_id: str, execution: str) -> JobRecord:
    """Show a progress bar per stage until the job finishes or pauses; Ctrl-C cancels it (exit 130)."""
    try:
        return _bars(service, job_id, execution)
    except KeyboardInterrupt:
        with contextlib.suppress(InvalidTransition):
            service.cancel(LOCAL_OWNER, job_id, "cancelled from the command line")
        with contextlib.suppress(KapsuleError):
            service.launcher.cancel(execution)
        typer.echo(f"error [cancelled]: job {job_id} cancelled", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _bars(service: JobService, job_id: str, execution: str) -> JobRecord:
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


def _deliver(service: JobService, final: JobRecord, target: Path) -> None:
    """Download a succeeded job's video to ``target``, show a paused one's review, or fail."""
    if final.state == JobState.awaiting_approval:
        _print_review(service, final)
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
    err.print(f"done: {final.outputs.get('duration', '?')} s of video ({spent})")
    typer.echo(str(target))


def _make(
    song: Path,
    output: Path | None,
    values: dict[str, Any],
    references: list[Path],
    lyrics: Path | None = None,
) -> None:
    """Submit a job for ``song`` with ``values`` (the job options), follow it, write its video."""
    try:
        service = _service()
        params = parse_params({**values, "song": song.name})
        images = [read_reference_image(path) for path in references]
        text = read_lyrics_file(lyrics)
        submission = Submission(params=params, song=LocalSong(song), references=images, lyrics=text)
        record, _ = service.submit(submission)
    except KapsuleError as exc:
        raise _fail(exc, EXIT_BAD_INPUT) from None
    err.print(f"job {record.id}: {song.name}, {params.aspect_ratio} {params.resolution}")
    final = _follow(service, record.id, record.execution or "")
    _deliver(service, final, output or Path("out") / f"{song.stem}.mp4")


@app.command()
@with_job_options
def make(
    song: Annotated[
        Path, typer.Argument(help="The song: MP3, WAV, FLAC, OGG, M4A, AIFF, or a video with sound.")
    ],
    output: OutOpt = None,
    reference_image: Annotated[
        list[Path] | None,
        typer.Option(
            "--reference-image",
            help="A character/product/cover image for Veo 3.1 (PNG/JPEG/WebP; repeatable).",
        ),
    ] = None,
    lyrics: LyricsOpt = None,
    **options: Any,
) -> None:
    """Make a music video from SONG and write it to OUT (default ./out/<song name>.mp4)."""
    _make(song, output, job_values(options), list(reference_image or []), lyrics)


@app.command()
@with_job_options
def demo(
    output: Annotated[Path, typer.Option("-o", "--out", help="Where to write the MP4.")] = Path(
        "out/demo.mp4"
    ),
    **options: Any,
) -> None:
    """Make a video from the bundled demo song (synthesized on this machine)."""
    from kapsule_pipeline.demo_song import write_demo_song

    song = write_demo_song(Path(get_settings().work_dir).parent / "demo" / "demo-song.wav")
    _make(song, output, job_values(options), [])


# ------------------------------------------------------------------------------- review, re-roll


def _print_review(service: JobService, record: JobRecord) -> None:
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


def _parse_edits(edits: list[str]) -> dict[int, str]:
    prompts: dict[int, str] = {}
    for edit in edits:
        number, sep, text = edit.partition("=")
        if not sep or not number.strip().isdigit():
            raise InvalidParameter(
                f'--prompt takes N="new prompt" (a shot number, =, the prompt), got {edit!r}'
            )
        prompts[int(number)] = text
    return prompts


def _resume(service: JobService, record: JobRecord, output: Path | None) -> None:
    """Follow a job an approval or a re-roll just launched, then write its video."""
    final = _follow(service, record.id, record.execution or "")
    stem = Path(record.params.song or record.id).stem
    _deliver(service, final, output or Path("out") / f"{stem}-{record.id[-6:]}.mp4")


@app.command()
def regrid(
    job_id: Annotated[str, typer.Argument(help="The job awaiting approval.")],
    tempo: Annotated[str, typer.Option("--tempo", help="keep, double or half the tempo.")] = "keep",
    shift: Annotated[int, typer.Option("--shift", help="Move every bar line by N beats.")] = 0,
    beats_per_bar: Annotated[int | None, typer.Option("--beats-per-bar", help="Bars of N beats.")] = None,
    bpm: Annotated[float | None, typer.Option("--bpm", help="Analyse again at this tempo.")] = None,
) -> None:
    """Fix the beat grid of a job awaiting approval and re-plan its storyboard (nothing is paid)."""
    try:
        change = GridChange.model_validate(
            {"tempo": tempo, "shift_beats": shift, "beats_per_bar": beats_per_bar, "bpm": bpm}
        )
    except ValidationError as exc:
        raise _fail(InvalidParameter(validation_message(exc)), EXIT_BAD_INPUT) from None
    try:
        service = _service()
        service.regrid(LOCAL_OWNER, job_id, change)
        record = service.get(LOCAL_OWNER, job_id)
    except KapsuleError as exc:
        raise _fail(exc, EXIT_BAD_INPUT) from None
    _print_review(service, record)


@app.command()
def approve(
    job_id: Annotated[str, typer.Argument(help="The job awaiting approval.")],
    edits: Annotated[
        list[str] | None,
        typer.Option("--prompt", help='Change a shot\'s prompt first: N="new prompt" (repeatable).'),
    ] = None,
    output: OutOpt = None,
) -> None:
    """Approve a reviewed storyboard (after optional prompt edits): generate the shots and the video."""
    try:
        service = _service()
        record = service.approve(LOCAL_OWNER, job_id, _parse_edits(edits or []))
    except KapsuleError as exc:
        raise _fail(exc, EXIT_BAD_INPUT) from None
    err.print(f"job {record.id}: approved, generating")
    _resume(service, record, output)


@app.command()
def reroll(
    job_id: Annotated[str, typer.Argument(help="A finished job.")],
    shot: Annotated[int, typer.Argument(help="The shot number to make again.")],
    prompt: Annotated[str | None, typer.Option("--prompt", help="A new prompt (default: keep it).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="A new seed (default: a random one).")] = None,
    output: OutOpt = None,
) -> None:
    """Make one shot of a finished job again, as a new job that pays only for that shot."""
    try:
        service = _service()
        record = service.reroll(LOCAL_OWNER, job_id, shot, prompt=prompt, seed=seed)
    except KapsuleError as exc:
        raise _fail(exc, EXIT_BAD_INPUT) from None
    err.print(f"job {record.id}: re-roll of shot {shot} of {job_id}")
    _resume(service, record, output)


# ----------------------------------------------------------------------------------------- analyze

app.command("lyrics")(lyrics_command)


@app.command()
def analyze(
    song: Annotated[Path, typer.Argument(help="The song to analyze.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print analysis.json instead of a summary.")
    ] = False,
    bpm: Annotated[float | None, typer.Option("--bpm", help="Keep this tempo (BPM).")] = None,
    beats_per_bar: Annotated[int | None, typer.Option("--beats-per-bar", help="Bars of N beats.")] = None,
    downbeat: Annotated[float | None, typer.Option("--downbeat", help="A bar line's time (s).")] = None,
) -> None:
    """Find tempo, beats, downbeats, sections and energy of SONG (hints as for ``kapsule make``)."""
    from kapsule_pipeline.audio import analyze_song

    try:
        hints = parse_params({"bpm": bpm, "beats_per_bar": beats_per_bar, "downbeat": downbeat}).hints()
        info = LocalSong(song).inspect(get_settings())
        analysis = analyze_song(song, hints)
    except KapsuleError as exc:
        raise _fail(exc, EXIT_BAD_INPUT) from None
    if as_json:
        typer.echo(analysis.model_dump_json(indent=2))
        return
    table = Table(title=f"{song.name}", show_header=False, title_justify="left")
    table.add_row("file", f"{info.format_name} / {info.codec}, {info.sample_rate} Hz, {info.channels} ch")
    table.add_row("duration", f"{analysis.duration:.2f} s")
    table.add_row("tempo", f"{analysis.tempo:.1f} BPM (confidence {analysis.confidence:.2f})")
    for alt in analysis.alternatives:
        table.add_row(
            f"  or {alt.kind.replace('_', ' ')}",
            f"{alt.tempo:.1f} BPM, {alt.beats_per_bar} per bar (plausibility {alt.plausibility:.2f})",
        )
    table.add_row(
        "beats", f"{len(analysis.beats)} ({len(analysis.downbeats)} bars of {analysis.beats_per_bar})"
    )
    for section in analysis.sections:
        table.add_row(section.label, f"{section.start:6.2f} – {section.end:6.2f} s")
    out.print(table)


# -------------------------------------------------------------------------------------------- jobs


@jobs_app.command("list")
def jobs_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the job records as JSON.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 20,
) -> None:
    """The newest jobs on this machine."""
    try:
        records, _ = JobService(Stores.open(get_settings())).list_jobs(LOCAL_OWNER, limit=limit)
    except KapsuleError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return
    table = Table("id", "state", "stage", "progress", "created", "message")
    for r in records:
        table.add_row(
            r.id,
            r.state.value,
            r.stage or "",
            f"{r.progress:.0%}",
            f"{r.created_at:%Y-%m-%d %H:%M}",
            r.message[:50],
        )
    out.print(table)


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the job record as JSON.")] = False,
) -> None:
    """One job's record."""
    try:
        record = JobService(Stores.open(get_settings())).get(LOCAL_OWNER, job_id)
    except KapsuleError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(record.model_dump(mode="json"), indent=2))
        return
    table = Table(title=f"job {record.id}", show_header=False, title_justify="left")
    for key in ("state", "stage", "progress", "message", "attempt", "execution", "created_at", "updated_at"):
        table.add_row(key, str(getattr(record, key)))
    if record.error:
        table.add_row("error", f"[{record.error.code}] {record.error.message}")
    for key, value in record.outputs.items():
        table.add_row(f"output {key}", value)
    for stage, t in record.timings.items():
        took = "skipped" if t.skipped else f"{t.wall_s:.1f} s (stage {t.stage_s:.1f} s)"
        table.add_row(f"time {stage}", took)
    out.print(table)


@app.command()
def reconcile(
    job_ids: Annotated[list[str] | None, typer.Argument(help="Jobs to check (default: --owner's).")] = None,
    owner: Annotated[list[str] | None, typer.Option("--owner", help="Whose jobs (repeatable).")] = None,
    stale_after: Annotated[float, typer.Option(help="Seconds without a heartbeat.")] = 60.0,
) -> None:
    """Mark failed the running jobs whose heartbeat is stale and whose execution ended or vanished."""
    try:
        owners = owner if owner is not None else ([] if job_ids else [LOCAL_OWNER])
        checked = _service().reconcile(owners, stale_after, job_ids or ())
    except KapsuleError as exc:
        raise _fail(exc) from None
    for r in checked:
        note = f"[{r.error.code}] {r.error.message}" if r.error else r.message
        out.print(f"{r.id} {r.state.value} {note}")
    err.print(f"{len(checked)} stale job(s) checked, {sum(r.finished for r in checked)} now finished")


# ------------------------------------------------------------------------------------ run-job, serve


@app.command("run-job")
def run_job(job_id: Annotated[str, typer.Argument(help="The job id.")]) -> None:
    """Run one job in this terminal (what the local launcher starts)."""
    code = subprocess.call(local_command(), env={**os.environ, "KAPSULE_JOB_ID": job_id})
    raise typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8080,
) -> None:
    """Start the API and the studio page (open mode, without API keys, only on loopback)."""
    import uvicorn

    from kapsule_pipeline.access import check_bind

    try:
        open_mode = check_bind(get_settings(), host)  # the same check as the container's (api.serve)
    except KapsuleError as exc:
        raise _fail(exc, EXIT_BAD_INPUT) from None
    if open_mode:
        err.print(f"no API keys configured: open mode, for this machine only (http://{host}:{port}/)")
    uvicorn.run("api.main:app", host=host, port=port)


@app.command()
def version() -> None:
    """Print Kapsule's version."""
    typer.echo(__version__)


if __name__ == "__main__":
    sys.exit(app())
