"""The ``kapsule`` command: make a video from a song on this machine, inspect songs and jobs.

``kapsule make SONG`` validates the song before anything is created (a bad song costs one clear line
and exit code 2), creates the job, stores the song, launches the job with the configured launcher and
follows its record in the status store with a progress bar per stage. Ctrl-C cancels the job. Any
failure is one line, ``error [code]: message``, and exit code 1. This module only turns results and
``KapsuleError``s into output and exit codes; everything it does is done by the library.
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
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from kapsule_pipeline import __version__
from kapsule_pipeline.errors import InvalidParameter, InvalidTransition, KapsuleError
from kapsule_pipeline.jobs import STAGES, JobRecord, JobState
from kapsule_pipeline.launch import Launcher, make_launcher
from kapsule_pipeline.layout import JobLayout
from kapsule_pipeline.settings import Settings, get_settings
from kapsule_pipeline.stages import check_frame_params, stage_fraction
from kapsule_pipeline.status import StatusStore, open_status_store
from kapsule_pipeline.storage import open_storage

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


def _fail(exc: KapsuleError, code: int = EXIT_FAILED) -> typer.Exit:
    """Print the one-line error and return the exit to raise."""
    typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
    return typer.Exit(code)


# -------------------------------------------------------------------------------------------- make


def _create_job(song: Path, params: dict[str, Any], settings: Settings) -> tuple[JobRecord, StatusStore]:
    """Validate the song and parameters, then store the song and create the queued job record."""
    from kapsule_pipeline.audio import inspect_song

    check_frame_params(params["aspect_ratio"], params["resolution"], params["max_shots"])
    check_model_params(params, settings)
    info = inspect_song(song, settings)
    ref_paths = [Path(p) for p in params.pop("reference_image_paths", [])]
    record = JobRecord(params={**params, "song_name": song.name, "song_seconds": info.duration})
    storage = open_storage(settings.storage_url)
    if ref_paths:  # into the job's input/refs/, named by index; the generator reads them from there
        from kapsule_pipeline.generation.references import store_reference_images

        record.params["reference_images"] = store_reference_images(ref_paths, storage, JobLayout(record.id))
    storage.upload_from(song, JobLayout(record.id).input_song(info.ext), content_type=info.content_type)
    status = open_status_store(settings.status_url)
    return status.create(record), status


def check_model_params(params: dict[str, Any], settings: Settings) -> None:
    """Refuse an unknown model, a model with no price, or a negative budget before any job exists.

    Building the generator and writer only looks up names and prices (no client, no request), so a
    typo in ``--video-model`` is one line and exit 2 here instead of a failed job minutes later.
    """
    from kapsule_pipeline.errors import InvalidParameter
    from kapsule_pipeline.generation import make_video_generator
    from kapsule_pipeline.prompting import make_prompt_writer

    budget = params.get("budget_usd")
    if budget is not None and budget < 0:
        raise InvalidParameter(f"the budget must be zero (no cap) or more USD, got {budget}")
    make_video_generator(params["video_model"], settings)
    make_prompt_writer(params["prompt_model"], settings)


def _follow(status: StatusStore, launcher: Launcher, job_id: str, execution: str) -> JobRecord:
    """Show a progress bar per stage until the job finishes; Ctrl-C cancels it."""
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
    )
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
                    return _record_crash(status, job_id, launcher, execution)
            time.sleep(POLL_S)


def _record_crash(status: StatusStore, job_id: str, launcher: Launcher, execution: str) -> JobRecord:
    settings = get_settings()
    code = launcher.poll(execution)
    log = Path(settings.work_dir) / job_id / "job.log"
    error = {
        "code": "job_crashed",
        "message": f"the job process exited ({code}) without finishing; see {log}",
    }
    try:
        return status.update(
            job_id, {"state": JobState.failed.value, "error": error, "message": error["message"]}
        )
    except InvalidTransition:
        return status.get(job_id)


def _make(song: Path, output: Path | None, params: dict[str, Any]) -> None:
    settings = get_settings()
    if not song.is_file():
        raise _fail(KapsuleError(f"there is no file at {song}", code="not_found"), EXIT_BAD_INPUT)
    try:
        launcher = make_launcher(settings.launcher, settings)
        record, status = _create_job(song, params, settings)
    except KapsuleError as exc:
        raise _fail(exc, EXIT_BAD_INPUT) from None
    err.print(f"job {record.id}: {song.name}, {params['aspect_ratio']} {params['resolution']}")
    execution = launcher.launch(record.id)
    with contextlib.suppress(InvalidTransition):  # the job may have finished already
        status.update(record.id, {"execution": execution})
    final = _follow_or_cancel(status, launcher, record.id, execution)
    _deliver(final, output or Path("out") / f"{song.stem}.mp4", settings)


def _follow_or_cancel(status: StatusStore, launcher: Launcher, job_id: str, execution: str) -> JobRecord:
    """``_follow`` the job; Ctrl-C cancels it (exit 130)."""
    try:
        return _follow(status, launcher, job_id, execution)
    except KeyboardInterrupt:
        with contextlib.suppress(InvalidTransition):
            status.update(
                job_id, {"state": JobState.cancelled.value, "message": "cancelled from the command line"}
            )
        launcher.cancel(execution)
        typer.echo(f"error [cancelled]: job {job_id} cancelled", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _deliver(final: JobRecord, target: Path, settings: Settings) -> None:
    """Download a succeeded job's video to ``target``, show a paused one's review, or fail."""
    if final.state == JobState.awaiting_approval:
        _print_review(final, settings)
        return
    if final.state != JobState.succeeded:
        failure = (
            final.error.model_dump() if final.error else {"code": final.state.value, "message": final.message}
        )
        raise _fail(KapsuleError(failure["message"], code=failure["code"]))
    delivery = open_storage(settings.effective_delivery_url)
    delivery.download_to(JobLayout(final.id).video, target)
    timings = final.params.get("timings", {})
    spent = ", ".join(
        f"{stage} {'skipped' if t.get('skipped') else format(t.get('wall_s', 0), '.1f') + ' s'}"
        for stage, t in timings.items()
    )
    err.print(f"done: {final.outputs.get('duration', '?')} s of video ({spent})")
    typer.echo(str(target))


AspectOpt = Annotated[str, typer.Option("--aspect", help="16:9, 9:16 or 1:1")]
ResolutionOpt = Annotated[str, typer.Option("--resolution", help="720p or 1080p")]
MaxShotsOpt = Annotated[int, typer.Option("--max-shots", help="0 = as many as the music asks for")]
PromptOpt = Annotated[str, typer.Option("--prompt", help="What the video shows.")]
StyleOpt = Annotated[str, typer.Option("--style", help="Look and feel.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Same seed, same video.")]
BudgetOpt = Annotated[
    float, typer.Option("--budget", help="Most the job may spend on video, in USD (0 = no cap).")
]
VideoModelOpt = Annotated[
    str, typer.Option("--video-model", help="'local' or a Veo model id (default: KAPSULE_VIDEO_MODEL).")
]
PromptModelOpt = Annotated[
    str, typer.Option("--prompt-model", help="'local' or a Gemini model id (default: KAPSULE_PROMPT_MODEL).")
]


def _params(
    prompt: str,
    style: str,
    aspect: str,
    resolution: str,
    max_shots: int,
    seed: int,
    *,
    budget_usd: float = 0.0,
    video_model: str = "",
    prompt_model: str = "",
) -> dict[str, Any]:
    settings = get_settings()
    return {
        "prompt": prompt,
        "style": style,
        "aspect_ratio": aspect,
        "resolution": resolution,
        "max_shots": max_shots,
        "seed": seed,
        "video_model": video_model or settings.video_model,
        "prompt_model": prompt_model or settings.prompt_model,
        "budget_usd": budget_usd,
    }


@app.command()
def make(
    song: Annotated[
        Path, typer.Argument(help="The song: MP3, WAV, FLAC, OGG, M4A, AIFF, or a video with sound.")
    ],
    output: Annotated[Path | None, typer.Option("-o", "--out", help="Where to write the MP4.")] = None,
    prompt: PromptOpt = "",
    style: StyleOpt = "",
    aspect: AspectOpt = "16:9",
    resolution: ResolutionOpt = "720p",
    max_shots: MaxShotsOpt = 0,
    seed: SeedOpt = 0,
    budget: BudgetOpt = 0.0,
    video_model: VideoModelOpt = "",
    prompt_model: PromptModelOpt = "",
    transition: Annotated[
        str,
        typer.Option("--transition", help="'cut' (hard cuts on the beat) or 'crossfade' (0.5 s dissolves)."),
    ] = "cut",
    review: Annotated[
        bool,
        typer.Option(
            "--review", help="Stop after the storyboard to show prompts and cost; go on with 'approve'."
        ),
    ] = False,
    continuity: Annotated[
        str,
        typer.Option(
            "--continuity",
            help="'none' or 'last_frame': each shot starts from the previous one's last frame (Veo; "
            "shots then run one at a time, slower).",
        ),
    ] = "",
    reference_image: Annotated[
        list[Path] | None,
        typer.Option(
            "--reference-image",
            help="A character/product/cover image for Veo 3.1 (PNG/JPEG/WebP; repeatable).",
        ),
    ] = None,
) -> None:
    """Make a music video from SONG and write it to OUT (default ./out/<song name>.mp4)."""
    params = _params(
        prompt,
        style,
        aspect,
        resolution,
        max_shots,
        seed,
        budget_usd=budget,
        video_model=video_model,
        prompt_model=prompt_model,
    )
    if transition not in ("cut", "crossfade"):
        raise _fail(
            InvalidParameter(f"--transition must be cut or crossfade, got {transition!r}"), EXIT_BAD_INPUT
        )
    params["transition"] = transition
    if review:
        params["review"] = True
    try:
        from kapsule_pipeline.generation.references import check_continuity

        params["continuity"] = check_continuity(continuity or get_settings().continuity)
    except KapsuleError as exc:
        raise _fail(exc, EXIT_BAD_INPUT) from None
    if reference_image:
        params["reference_image_paths"] = [str(p) for p in reference_image]
    _make(song, output, params)


@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--out", help="Where to write the MP4.")] = Path(
        "out/demo.mp4"
    ),
    prompt: PromptOpt = "",
    style: StyleOpt = "",
    aspect: AspectOpt = "16:9",
    resolution: ResolutionOpt = "720p",
) -> None:
    """Make a video from the bundled demo song (synthesized on this machine)."""
    from kapsule_pipeline.demo_song import write_demo_song

    song = write_demo_song(Path(get_settings().work_dir).parent / "demo" / "demo-song.wav")
    _make(song, output, _params(prompt, style, aspect, resolution, 0, 0))


# ------------------------------------------------------------------------------- review, re-roll


def _stores(settings: Settings) -> Any:
    from kapsule_pipeline.review import JobStores

    return JobStores(settings, open_storage(settings.storage_url), open_status_store(settings.status_url))


def _print_review(record: JobRecord, settings: Settings) -> None:
    """The storyboard a paused job waits on: each shot's prompt, length and cost, then what to do."""
    from kapsule_pipeline.review import review_summary

    review = review_summary(_stores(settings), record)
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
    from kapsule_pipeline.errors import InvalidParameter

    prompts: dict[int, str] = {}
    for edit in edits:
        number, sep, text = edit.partition("=")
        if not sep or not number.strip().isdigit():
            raise InvalidParameter(
                f'--prompt takes N="new prompt" (a shot number, =, the prompt), got {edit!r}'
            )
        prompts[int(number)] = text
    return prompts


def _resume(record: JobRecord, output: Path | None, settings: Settings, launcher: Launcher) -> None:
    """Follow a job an approval or a re-roll just launched, then write its video."""
    status = open_status_store(settings.status_url)
    final = _follow_or_cancel(status, launcher, record.id, record.execution or "")
    stem = Path(str(record.params.get("song_name") or record.id)).stem
    _deliver(final, output or Path("out") / f"{stem}-{record.id[-6:]}.mp4", settings)


@app.command()
def approve(
    job_id: Annotated[str, typer.Argument(help="The job awaiting approval.")],
    edits: Annotated[
        list[str] | None,
        typer.Option("--prompt", help='Change a shot\'s prompt first: N="new prompt" (repeatable).'),
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--out", help="Where to write the MP4.")] = None,
) -> None:
    """Approve a reviewed storyboard (after optional prompt edits): generate the shots and the video."""
    from kapsule_pipeline.review import approve as approve_job

    settings = get_settings()
    try:
        launcher = make_launcher(settings.launcher, settings)
        record = approve_job(_stores(settings), job_id, launcher, _parse_edits(edits or []))
    except KapsuleError as exc:
        raise _fail(exc, EXIT_BAD_INPUT) from None
    err.print(f"job {record.id}: approved, generating")
    _resume(record, output, settings, launcher)


@app.command()
def reroll(
    job_id: Annotated[str, typer.Argument(help="A finished job.")],
    shot: Annotated[int, typer.Argument(help="The shot number to make again.")],
    prompt: Annotated[str | None, typer.Option("--prompt", help="A new prompt (default: keep it).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="A new seed (default: a random one).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--out", help="Where to write the MP4.")] = None,
) -> None:
    """Make one shot of a finished job again, as a new job that pays only for that shot."""
    from kapsule_pipeline.review import reroll as reroll_shot

    settings = get_settings()
    try:
        launcher = make_launcher(settings.launcher, settings)
        record = reroll_shot(_stores(settings), job_id, shot, launcher, prompt=prompt, seed=seed)
    except KapsuleError as exc:
        raise _fail(exc, EXIT_BAD_INPUT) from None
    err.print(f"job {record.id}: re-roll of shot {shot} of {job_id}")
    _resume(record, output, settings, launcher)


# ----------------------------------------------------------------------------------------- analyze


@app.command()
def analyze(
    song: Annotated[Path, typer.Argument(help="The song to analyze.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print analysis.json instead of a summary.")
    ] = False,
) -> None:
    """Find tempo, beats, downbeats, sections and energy of SONG."""
    from kapsule_pipeline.audio import analyze_song, inspect_song

    try:
        info = inspect_song(song, get_settings())
        analysis = analyze_song(song)
    except KapsuleError as exc:
        raise _fail(exc, EXIT_BAD_INPUT) from None
    if as_json:
        typer.echo(analysis.model_dump_json(indent=2))
        return
    table = Table(title=f"{song.name}", show_header=False, title_justify="left")
    table.add_row("file", f"{info.format_name} / {info.codec}, {info.sample_rate} Hz, {info.channels} ch")
    table.add_row("duration", f"{analysis.duration:.2f} s")
    table.add_row("tempo", f"{analysis.tempo:.1f} BPM")
    table.add_row(
        "beats", f"{len(analysis.beats)} ({len(analysis.downbeats)} bars of {analysis.beats_per_bar})"
    )
    for section in analysis.sections:
        table.add_row(section.label, f"{section.start:6.2f} – {section.end:6.2f} s")
    out.print(table)


# -------------------------------------------------------------------------------------------- jobs


def _job_dict(record: JobRecord) -> dict[str, Any]:
    return record.model_dump(mode="json")


@jobs_app.command("list")
def jobs_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the job records as JSON.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 20,
) -> None:
    """The newest jobs on this machine."""
    try:
        records, _ = open_status_store(get_settings().status_url).list("local", limit=limit)
    except KapsuleError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps([_job_dict(r) for r in records], indent=2))
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
        record = open_status_store(get_settings().status_url).get(job_id)
    except KapsuleError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(_job_dict(record), indent=2))
        return
    table = Table(title=f"job {record.id}", show_header=False, title_justify="left")
    for key in ("state", "stage", "progress", "message", "attempt", "execution", "created_at", "updated_at"):
        table.add_row(key, str(getattr(record, key)))
    if record.error:
        table.add_row("error", f"[{record.error.code}] {record.error.message}")
    for key, value in record.outputs.items():
        table.add_row(f"output {key}", value)
    for stage, t in record.params.get("timings", {}).items():
        took = (
            "skipped"
            if t.get("skipped")
            else f"{t.get('wall_s', 0):.1f} s (stage {t.get('stage_s', 0):.1f} s)"
        )
        table.add_row(f"time {stage}", took)
    out.print(table)


@app.command()
def reconcile(
    job_ids: Annotated[list[str] | None, typer.Argument(help="Jobs to check (default: --owner's).")] = None,
    owner: Annotated[list[str] | None, typer.Option("--owner", help="Whose jobs (repeatable).")] = None,
    stale_after: Annotated[float, typer.Option(help="Seconds without a heartbeat.")] = 60.0,
) -> None:
    """Mark failed the running jobs whose heartbeat is stale and whose execution ended or vanished."""
    from kapsule_pipeline.launch.cloudrun import StatusLauncher
    from kapsule_pipeline.launch.reconcile import reconcile_stale

    settings = get_settings()
    try:
        launcher = make_launcher(settings.launcher, settings)
        if not isinstance(launcher, StatusLauncher):
            raise KapsuleError(f"the {settings.launcher} launcher cannot report executions")
        owners = owner if owner is not None else ([] if job_ids else ["local"])
        checked = reconcile_stale(
            open_status_store(settings.status_url), launcher, owners, stale_after, job_ids or ()
        )
    except KapsuleError as exc:
        raise _fail(exc) from None
    for r in checked:
        note = f"[{r.error.code}] {r.error.message}" if r.error else r.message
        out.print(f"{r.id} {r.state.value} {note}")
    err.print(f"{len(checked)} stale job(s) checked, {sum(r.finished for r in checked)} now finished")


# ------------------------------------------------------------------------------------ run-job, serve


@app.command("run-job")
def run_job(job_id: Annotated[str, typer.Argument(help="The job id.")]) -> None:
    """Run one job in this terminal (what the launcher starts: python -m jobs.run_job)."""
    # A child process rather than an import: the library does not depend on the entrypoint package.
    code = subprocess.call(
        [sys.executable, "-m", "jobs.run_job"], env={**os.environ, "KAPSULE_JOB_ID": job_id}
    )
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
    app()
