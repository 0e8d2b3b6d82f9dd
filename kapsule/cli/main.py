"""The ``kapsule`` command: make a video from a song on this machine, inspect songs and jobs.

``kapsule make SONG`` hands the job service a ``JobParams`` built from its options (derived from the
model, see ``kapsule.cli.options``) and the song; the service refuses a bad song or parameter before
anything is created (one clear line, exit code 2), then creates and launches the job, which this
command follows in the status store with a progress bar per stage. Ctrl-C cancels the job. Any
failure is one line, ``error [code]: message``, and exit code 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kapsule import __version__
from kapsule.cli import review
from kapsule.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    ForceOpt,
    OutOpt,
    check_output,
    deliver,
    err,
    fail,
    follow,
    out,
    service_for_settings,
)
from kapsule.cli.jobs import job_lines
from kapsule.cli.lyrics import LyricsOpt, lyrics_command, read_lyrics_file
from kapsule.cli.options import job_values, with_job_options
from kapsule.cli.prices import prices
from kapsule.control.service import JobService, Submission
from kapsule.core.access import LOCAL_OWNER
from kapsule.core.errors import (
    KapsuleError,
)
from kapsule.core.settings import get_settings
from kapsule.generation.references import read_reference_image
from kapsule.infra.context import Stores
from kapsule.job.params import parse_options, parse_params
from kapsule.job.record import utcnow
from kapsule.song.intake import LocalSong
from kapsule.worker.run_job import local_command

app = typer.Typer(
    help="Kapsule: a song in, a music video cut to its beats out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
jobs_app = typer.Typer(help="List and inspect jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


def _make(
    song: Path,
    output: Path | None,
    values: dict[str, Any],
    references: list[Path],
    lyrics: Path | None = None,
    force: bool = False,
) -> None:
    """Submit a job for ``song`` with ``values`` (the job options), follow it, write its video."""
    try:
        check_output(output, force)
        service = service_for_settings()
        options = parse_options(values)
        images = [read_reference_image(path) for path in references]
        text = read_lyrics_file(lyrics)
        submission = Submission(options, LocalSong(song), references=images, lyrics=text)
        record, _ = service.submit(submission)
    except KapsuleError as exc:
        raise fail(exc, EXIT_BAD_INPUT) from None
    err.print(f"job {record.id}: {song.name}, {options.aspect_ratio} {options.resolution}")
    final = follow(service, record.id, record.execution or "")
    deliver(service, final, output)


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
    force: ForceOpt = False,
    **options: Any,
) -> None:
    """Make a music video from SONG and write it to OUT (default: <song name>-<job>.mp4 in videos/ of
    Kapsule's data folder; an existing OUT is never replaced without --force)."""
    _make(song, output, job_values(options), list(reference_image or []), lyrics, force)


@app.command()
@with_job_options
def demo(
    output: OutOpt = None,
    force: ForceOpt = False,
    **options: Any,
) -> None:
    """Make a video from the bundled demo song (synthesized on this machine)."""
    from kapsule.demo.song import write_demo_song

    song = write_demo_song(Path(get_settings().work_dir).parent / "demo" / "demo-song.wav")
    _make(song, output, job_values(options), [], force=force)


# ------------------------------------------------------------------------------- review, re-roll


for command in (review.regrid, review.approve, review.reroll):
    app.command()(command)
app.command("lyrics")(lyrics_command)
app.command("prices")(prices)


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
    from kapsule.song.probe import analyze_song

    try:
        hints = parse_params({"bpm": bpm, "beats_per_bar": beats_per_bar, "downbeat": downbeat}).hints()
        info = LocalSong(song).inspect(get_settings())
        analysis = analyze_song(song, hints)
    except KapsuleError as exc:
        raise fail(exc, EXIT_BAD_INPUT) from None
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
    """The newest jobs on this machine: id (whole, to copy), state, age and song, in 80 columns."""
    try:
        records, _ = JobService(Stores.open(get_settings())).list_jobs(LOCAL_OWNER, limit=limit)
    except KapsuleError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return
    for line in job_lines(records, utcnow()):
        typer.echo(line)


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the job record as JSON.")] = False,
) -> None:
    """One job's record."""
    try:
        record = JobService(Stores.open(get_settings())).get(LOCAL_OWNER, job_id)
    except KapsuleError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps(record.model_dump(mode="json"), indent=2))
        return
    table = Table(title=f"job {record.id}", show_header=False, title_justify="left")
    table.add_row("song", record.params.song or "")
    if record.reroll is not None:
        table.add_row("re-roll of", f"shot {record.reroll.shot + 1} of {record.reroll.parent_job}")
    for key in ("state", "stage", "progress", "message", "attempt", "execution", "created_at", "updated_at"):
        table.add_row(key, str(getattr(record, key)))
    cost = record.cost  # the ledger's: spent, and held for operations whose bill is not known yet
    table.add_row("cost", f"${cost.actual_usd:.2f} spent, ${cost.reserved_usd:.2f} reserved")
    if record.error:
        table.add_row("error", f"[{record.error.code}] {record.error.message}")
    for key, value in record.outputs.model_dump().items():  # only the outputs the job has
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
        checked = service_for_settings().reconcile(owners, stale_after, job_ids or ())
    except KapsuleError as exc:
        raise fail(exc) from None
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
    from kapsule.api.serve import run_server
    from kapsule.core.access import check_bind

    settings = get_settings()
    try:
        open_mode = check_bind(settings, host)  # the same check as the container's (kapsule.api.serve)
    except KapsuleError as exc:
        raise fail(exc, EXIT_BAD_INPUT) from None
    if open_mode:
        err.print(f"no API keys configured: open mode, for this machine only (http://{host}:{port}/)")
    run_server(settings, host, port)


@app.command()
def doctor(
    origin: Annotated[
        list[str] | None,
        typer.Option(
            "--origin",
            help="A browser origin that uploads (the studio's URL) to check the bucket's CORS against "
            "(repeatable; default: KAPSULE_CORS_ORIGINS).",
        ),
    ] = None,
) -> None:
    """Check this deployment's settings against the real services; say what is wrong and how to fix it.

    Exit code 1 if any check fails (a WARN line fails nothing). It writes and deletes one probe object
    in each bucket. The checks run at once, each line printed as its check finishes; a check that has
    no answer within its deadline fails and names the endpoint it was waiting for.
    """
    from kapsule.control.doctor import problems, run_doctor, warnings

    findings = run_doctor(
        get_settings(), origins=origin or (), on_finding=lambda f: out.print(str(f), markup=False)
    )
    failed = problems(findings)
    warned = warnings(findings)
    if failed:
        err.print(f"{len(failed)} problem(s) found", markup=False)
        raise typer.Exit(EXIT_FAILED)
    out.print("every check passed" + (f" ({len(warned)} warning(s) above)" if warned else ""), markup=False)


@app.command()
def version() -> None:
    """Print Kapsule's version."""
    typer.echo(__version__)


if __name__ == "__main__":
    sys.exit(app())
