"""The job files the stages share: reading what an earlier stage wrote (analysis, storyboard with its
review edits, shot manifest, timed lyrics) and the chores several stages (and the job service's free
re-plan) do alike: the click-track preview, the shots' clips on local disk, the contact sheet.

Kept out of the stage modules so each of them reads as the steps of its notebook.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kapsule.core.errors import ShotsMissing
from kapsule.infra.context import JobContext
from kapsule.job.artifacts import FINISHED_SHOT_STATES, Analysis, ReadingKind, ShotManifest, Storyboard
from kapsule.job.record import JobState
from kapsule.storyboard.review import with_prompt_edits

if TYPE_CHECKING:
    from kapsule.lyrics import TimedLine


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


def write_click_file(ctx: JobContext, song: Path, analysis: Analysis) -> None:
    """The song with a click on each beat (accented on each downbeat), in the job's work folder:
    the musician hears the beat grid the storyboard will cut to before anything is paid for. When
    the analysis is unsure (``close_call``), the runner-up reading's clicks are written too, so
    notebook 01 and the studio play both."""
    from kapsule.song.click_track import write_click_preview

    local = write_click_preview(song, analysis, ctx.workdir / "work")
    ctx.storage.upload_from(local, ctx.layout.click_preview, content_type="audio/mp4")
    if analysis.close_call is not None:
        _write_reading_click(ctx, song, analysis, analysis.close_call)


def reading_click_key(ctx: JobContext, analysis: Analysis, reading: ReadingKind) -> str:
    """Where the click preview of ``reading`` (a runner-up of ``analysis``) is stored; ObjectNotFound
    when the analysis did not weigh that reading."""
    from kapsule.song.click_track import grid_key, grid_of

    return ctx.layout.reading_click_preview(reading, grid_key(*grid_of(analysis, reading)))


def reading_click(ctx: JobContext, reading: ReadingKind | None) -> bytes:
    """The click preview of the chosen grid (``reading`` None) or of a runner-up reading; a reading's
    preview is rendered on first request (from the job's song) and kept."""
    if reading is None:
        return ctx.storage.read_bytes(ctx.layout.click_preview)
    analysis = load_analysis(ctx)
    key = reading_click_key(ctx, analysis, reading)
    if not ctx.storage.exists(key):
        _write_reading_click(ctx, ctx.input_song(), analysis, reading)
    return ctx.storage.read_bytes(key)


def _write_reading_click(ctx: JobContext, song: Path, analysis: Analysis, reading: ReadingKind) -> None:
    from kapsule.song.click_track import write_click_preview

    local = write_click_preview(song, analysis, ctx.workdir / "work", reading)
    ctx.storage.upload_from(local, reading_click_key(ctx, analysis, reading), content_type="audio/mp4")


def time_lyrics(ctx: JobContext, song: Path, song_seconds: float) -> list[TimedLine]:
    """Time the job's lyrics to the song (timed files as given, plain text aligned by the job's
    ``lyrics_aligner``) and write ``work/lyrics.json``; the storyboard and the captions read it."""
    from kapsule.lyrics import GEMINI_ALIGNER_MODEL, lines_to_json, load_lyrics, resolve_aligner

    model = ctx.params.prompt_model
    lines = load_lyrics(
        ctx.storage.read_bytes(ctx.lyrics_key()),
        song_seconds=song_seconds,
        song=song,
        aligner=resolve_aligner(ctx.params.lyrics_aligner, model),
        gemini_model=model if model.startswith("gemini-") else GEMINI_ALIGNER_MODEL,
        settings=ctx.settings,
    )
    ctx.storage.write_bytes(ctx.layout.lyrics, lines_to_json(lines).encode(), content_type="application/json")
    return lines


def load_lyrics_lines(ctx: JobContext) -> list[TimedLine]:
    """The job's timed lyric lines (none when the job has no lyrics)."""
    from kapsule.lyrics import lines_from_json

    return lines_from_json(ctx.storage.read_bytes(ctx.layout.lyrics)) if ctx.has_lyrics() else []


def make_contact_sheet_file(ctx: JobContext, board: Storyboard, manifest: ShotManifest) -> Path:
    """One frame of every shot in a grid (``output/contact-sheet.jpg``): the shots at a glance."""
    from kapsule.assembly.video import make_contact_sheet

    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    with local_clips(ctx, board, manifest) as clips:
        sheet = Path(make_contact_sheet(clips, board, ctx.output_dir / "contact-sheet.jpg"))
    ctx.storage.upload_from(sheet, ctx.layout.contact_sheet, content_type="image/jpeg")
    return sheet


def check_shots(ctx: JobContext, board: Storyboard, manifest: ShotManifest) -> list[str]:
    """Storage keys of every shot's clip, in storyboard order; a missing one is ``ShotsMissing``."""
    keys = []
    for shot in board.shots:
        result = manifest.by_index(shot.index)
        if result is None or result.state not in FINISHED_SHOT_STATES or not ctx.storage.exists(result.file):
            raise ShotsMissing(f"shot {shot.number} has no finished clip; run the generate stage again")
        keys.append(result.file)
    return keys


@contextlib.contextmanager
def local_clips(ctx: JobContext, board: Storyboard, manifest: ShotManifest) -> Iterator[list[Path]]:
    """Local paths of every shot's clip, in storyboard order, for the ``with`` block only.

    Clips in a remote store are downloaded into the work folder and deleted when the block ends
    (even on failure): on Cloud Run the work folder is RAM, and a job used to keep every clip in it
    until it exited. The clips stay in storage, so a re-run of the stage downloads them again.
    """
    downloaded: list[Path] = []
    try:
        clips = []
        for key in check_shots(ctx, board, manifest):
            local = ctx.storage.local_path(key)
            if local is None:
                local = ctx.storage.download_to(key, ctx.workdir / "shots" / key.rsplit("/", 1)[-1])
                downloaded.append(local)
            clips.append(local)
        yield clips
    finally:
        for path in downloaded:
            path.unlink(missing_ok=True)
