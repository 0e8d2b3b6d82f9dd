"""Notebook 04's stage: the clips cut onto the song, delivered as the MP4 with its poster and captions."""

from __future__ import annotations

from pathlib import Path

from kapsule import media
from kapsule.assembly.video import AssemblyResult, assemble_video, make_poster, poster_time
from kapsule.infra.context import JobContext
from kapsule.job.artifacts import frame_size
from kapsule.job.record import JobOutputs
from kapsule.job.update import JobUpdate
from kapsule.lyrics.captions import resolve_caption_mode, write_captions
from kapsule.stages.files import (
    load_lyrics_lines,
    load_manifest,
    load_storyboard,
    local_clips,
    make_contact_sheet_file,
)


def run_assemble(ctx: JobContext) -> AssemblyResult:
    """Cut the clips onto the song; deliver ``video.mp4``, store the poster and contact sheet."""
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
                captions=mode,
            )
        )
    )
    ctx.report("assemble", 1.0, f"video ready ({result.duration:.2f} s)")
    return result
