"""Assembly: cut each shot to its storyboard length, join them, lay the song under them.

The storyboard is frame-exact, so the video is made frame-exact too: shot i fills frames
``start_frame..end_frame`` and the result has ``total_frames`` frames, with the song untouched as the
soundtrack. When the clips were rendered locally with exactly their shot's frames and the shared
H.264 setup, joining is a stream copy (a remux, an order of magnitude faster than encoding). Other
clips (a Veo 8 s clip for a 6.3 s shot, another size or shape) are trimmed, fitted (scale to cover,
centre crop) and joined in one encode pass that keeps one decoder open; ``media``'s assembly section
says why shots are kept by frame number rather than by the concat demuxer's in/out points.
Crossfades are dissolves centred on the planned cuts, made in the same single pass.

Every output is written to a temporary file and moved into place, so a killed job never leaves a
half-written video, poster or contact sheet where a finished one is expected.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps
from pydantic import BaseModel

from kapsule import media
from kapsule.core.errors import InvalidParameter, MediaError, NotAudio
from kapsule.job.artifacts import Storyboard, frame_size

log = logging.getLogger(__name__)

PROBE_WORKERS = 4  # ffprobe runs are short and mostly start-up: overlap them


class AssemblyResult(BaseModel):
    video: Path
    duration: float  # seconds, of the written file
    frames: int  # video frames in the written file (== storyboard.total_frames)
    copied_video: bool  # True when no clip had to be re-encoded
    burned_captions: bool = False  # captions drawn into the frames in the one encode pass
    soft_captions: bool = False  # a mov_text subtitle track in the MP4
    audio_copied: bool  # True when the song's AAC went in untouched
    seconds_taken: float
    # ffprobe's view of the file, kept for the report once the job deletes its local copy
    probe: media.ProbeResult | None = None


def assemble_video(
    board: Storyboard,
    clips: list[Path],
    song: Path,
    out: Path,
    *,
    exact_lengths: bool,
    crf: int = 20,
    preset: str = "veryfast",
    timeout: float = 1800.0,
    captions: media.CaptionTracks | None = None,
) -> AssemblyResult:
    """Join ``clips`` (clips[i] is shot i) into ``out`` with ``song`` as the soundtrack.

    ``exact_lengths`` is the caller's promise that every clip already has exactly its shot's frames
    with the shared H.264 settings (``crf``, ``preset``); each clip is still probed, and one that
    does not match is re-encoded rather than trusted. ``board.transition`` picks hard cuts or
    dissolves of ``board.crossfade_seconds`` centred on the cuts (always an encode).
    ``captions`` (``lyrics.captions.CaptionFiles.tracks``): an ASS file burned in by the same single
    encode pass (so burning forces the encode path), and/or an SRT muxed as a ``mov_text`` track
    (which keeps the concat-copy path).
    """
    captions = captions or media.CaptionTracks()
    burn = Path(captions.burn).resolve() if captions.burn else None
    soft = Path(captions.soft).resolve() if captions.soft else None
    for path in (burn, soft):
        if path is not None and not path.is_file():
            raise InvalidParameter(f"the caption file is missing: {path}")
    started = time.monotonic()
    _check_inputs(board, clips, song)
    song_info = media.probe(song)
    if not song_info.has_audio:
        raise NotAudio(f"{song.name} has no audio stream to use as the soundtrack")
    song_audio = song_info.audio[0]
    audio_copied = song_audio.codec == "aac"
    sources = [Path(clip).resolve() for clip in clips]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".assemble-", dir=out.parent) as tmp_name:
        tmp = Path(tmp_name)
        partial = tmp / "video.mp4"
        infos = _probe_clips(board, sources)  # once, for whichever way the clips are joined
        copied = (
            burn is None and board.transition == "cut" and exact_lengths and _all_ready_to_copy(board, infos)
        )
        if copied:
            entries = [
                media.ConcatEntry(src, 0.0, shot.frames / board.fps)
                for shot, src in zip(board.shots, sources, strict=True)
            ]
            list_file = tmp / "shots.ffconcat"
            list_file.write_text(media.concat_list_text(entries))
            cmd = media.concat_mux_cmd(
                list_file,
                Path(song).resolve(),
                partial,
                copy_audio=audio_copied,
                sample_rate=song_audio.sample_rate,
                soft_captions=soft,
            )
            media.run(cmd, timeout=timeout, what="joining the shots")
        else:
            encode = _EncodeSettings(crf, preset, timeout, audio_copied, song_audio.sample_rate, burn, soft)
            _encode_pass(board, sources, infos, Path(song).resolve(), partial, tmp, encode)
        info = _check_output(partial, board, soft_captions=soft is not None)
        os.replace(partial, out)
    return AssemblyResult(
        video=out,
        duration=info.duration or 0.0,
        frames=info.real_video[0].frames or 0,
        copied_video=copied,
        burned_captions=burn is not None,
        soft_captions=soft is not None,
        audio_copied=audio_copied,
        seconds_taken=time.monotonic() - started,
    )


@dataclass(frozen=True)
class _EncodeSettings:
    crf: int
    preset: str
    timeout: float
    copy_audio: bool
    sample_rate: int
    burn: Path | None = None  # ASS captions drawn last in the graph
    soft: Path | None = None  # SRT muxed as mov_text


def _shape(video: media.VideoStream) -> tuple[int, int, int, Fraction, str]:
    return (video.index, video.width, video.height, video.frame_rate, video.pix_fmt)


def _probe_clips(board: Storyboard, sources: list[Path]) -> list[media.ProbeResult]:
    """Probe every clip with its packet list, a few at a time: ~0.1 s each, mostly process start-up."""

    def one(shot_and_src: tuple[int, Path]) -> media.ProbeResult:
        number, src = shot_and_src
        try:
            info = media.probe(src, packets=True)
        except MediaError as exc:
            raise MediaError(f"the clip of shot {number} cannot be read ({src.name}): {exc}") from exc
        if not info.real_video:
            raise MediaError(f"the clip of shot {number} has no video stream: {src.name}")
        return info

    with ThreadPoolExecutor(max_workers=PROBE_WORKERS) as pool:
        return list(pool.map(one, zip([shot.number for shot in board.shots], sources, strict=True)))


def _encode_pass(
    board: Storyboard,
    sources: list[Path],
    infos: list[media.ProbeResult],
    song: Path,
    out: Path,
    tmp: Path,
    settings: _EncodeSettings,
) -> None:
    """Trim, fit, dissolve and join every clip in one FFmpeg encode pass with one decoder (see media)."""
    crf, preset, timeout = settings.crf, settings.preset, settings.timeout
    width, height = frame_size(board.aspect_ratio, board.resolution)
    half = media.crossfade_half_frames(board)  # 0 for hard cuts
    videos = [info.real_video[0] for info in infos]
    # Frame numbers after decoding are exact only if every clip decodes to the same shape at the
    # board's rate: the most common such shape streams through; the rare others are normalized to it.
    streamable = [_shape(v) for v in videos if v.frame_rate == board.fps and v.frames]
    common = Counter(streamable).most_common(1)[0][0] if streamable else None
    if common is None or (common[4] != media.H264_PIX_FMT and len(streamable) < len(videos)):
        common = (0, width, height, Fraction(board.fps), media.H264_PIX_FMT)  # normalize all to the board
    needed = media.clip_frames_wanted(board)
    spans: list[media.ShotSpan] = []
    entries: list[media.ConcatEntry] = []
    first = 0
    for shot, src, info, video, wanted in zip(board.shots, sources, infos, videos, needed, strict=True):
        frames = sum(1 for p in info.packets if p.stream == video.index) or video.frames or 0
        holds = media.dissolve_can_hold(frames, wanted, half)
        if _shape(video) != common or frames < shot.frames or not holds:
            normalized = tmp / f"shot-{shot.index:04d}.mp4"
            log.info(
                "normalizing the clip of shot %d (%s) to %dx%d", shot.index, src.name, common[1], common[2]
            )
            cmd = media.normalize_clip_cmd(
                src, normalized, frames=wanted, width=common[1], height=common[2],
                fps=board.fps, crf=min(crf, 18), preset=preset,
            )  # fmt: skip
            media.run(cmd, timeout=timeout, what=f"re-encoding shot {shot.number}")
            entries.append(media.ConcatEntry(normalized))
            cutoff = media.ConcatCutoff(None, wanted)
        else:
            cutoff = media.concat_cutoff(info.packets, video.index, min(wanted, frames))
            entries.append(media.ConcatEntry(src, outpoint=cutoff.outpoint))
        usable = min(wanted, cutoff.decoded)
        spans.append(media.ShotSpan(first=first, frames=shot.frames, tail=usable - shot.frames))
        first += cutoff.decoded
    list_file = tmp / "clips.ffconcat"
    list_file.write_text(media.concat_list_text(entries))
    fit = media.fit_filters(width, height) if (common[1], common[2]) != (width, height) else []
    if half:
        graph = media.crossfade_filter(spans, fps=board.fps, half_frames=half, fit=fit)
    else:
        graph = media.hard_cut_filter(spans, fps=board.fps, fit=fit)
    complex_graph = graph.startswith("[0:v:0]")
    if settings.burn is not None:
        graph = media.with_burned_captions(graph, complex_graph, settings.burn)
    cmd = media.assembly_cmd(
        list_file, song, out, graph=graph, complex_graph=complex_graph, fps=board.fps,
        crf=crf, preset=preset, copy_audio=settings.copy_audio,
        sample_rate=settings.sample_rate, soft_captions=settings.soft,
    )  # fmt: skip
    media.run(cmd, timeout=timeout, what="assembling the video")


def _check_inputs(board: Storyboard, clips: list[Path], song: Path) -> None:
    if len(clips) != len(board.shots):
        raise InvalidParameter(f"got {len(clips)} clips for a storyboard of {len(board.shots)} shots")
    if not board.shots or sum(shot.frames for shot in board.shots) != board.total_frames:
        raise InvalidParameter("the storyboard's shots do not add up to its total_frames")
    for shot, clip in zip(board.shots, clips, strict=True):
        if not Path(clip).is_file():
            raise MediaError(f"the clip of shot {shot.number} is missing: {clip}")
    if not Path(song).is_file():
        raise NotAudio(f"the song file is missing: {song}")


def _all_ready_to_copy(board: Storyboard, infos: list[media.ProbeResult]) -> bool:
    width, height = frame_size(board.aspect_ratio, board.resolution)
    checks = [
        _ready_to_copy(info, shot.frames, width, height, board.fps)
        for shot, info in zip(board.shots, infos, strict=True)
    ]  # every clip, so the log names each one that has to be re-encoded
    return all(checks)


def _ready_to_copy(info: media.ProbeResult, frames: int, width: int, height: int, fps: int) -> bool:
    """Whether a clip can be joined by stream copy: one H.264 stream of exactly the shot's frames."""
    videos = info.real_video
    if len(videos) != 1:
        return False
    video = videos[0]
    ready = (
        video.codec == "h264"
        and (video.width, video.height) == (width, height)
        and video.frame_rate == fps
        and video.frames == frames
        and video.pix_fmt == media.H264_PIX_FMT
    )
    if not ready:
        log.warning(
            "clip %s is not an exact %dx%d@%d clip of %d frames (%s %dx%d@%s, %s frames); re-encoding it",
            info.path.name, width, height, fps, frames, video.codec, video.width, video.height,
            video.frame_rate, video.frames,
        )  # fmt: skip
    return ready


def _check_output(path: Path, board: Storyboard, *, soft_captions: bool = False) -> media.ProbeResult:
    """Refuse to deliver a video that breaks the contract (one H.264 + one AAC, every frame there,
    and the mov_text track when soft captions were asked for)."""
    info = media.probe(path)
    if soft_captions and [s.codec for s in info.subtitles] != ["mov_text"]:
        raise MediaError(f"the joined video has no mov_text caption track: {info.subtitles}")
    videos, audios = info.real_video, info.audio
    if len(videos) != 1 or videos[0].codec != "h264" or len(audios) != 1 or audios[0].codec != "aac":
        raise MediaError(f"the joined video has unexpected streams: {videos} {audios}")
    if videos[0].frames != board.total_frames:
        raise MediaError(f"the joined video has {videos[0].frames} frames, expected {board.total_frames}")
    return info


# ------------------------------------------------------------------------------------------ stills


def poster_time(board: Storyboard) -> float:
    """The middle of the most energetic shot: a frame that shows the video at its liveliest."""
    shot = max(board.shots, key=lambda s: s.energy)  # first one wins a tie
    return (shot.start + shot.end) / 2


def make_poster(video: Path, out: Path, at: float | None = None) -> Path:
    """One frame of ``video`` as a JPEG at full size; ``at`` defaults to the middle of the video.

    Callers holding the storyboard pass ``poster_time(board)``.
    """
    info = media.probe(video)
    duration = info.duration or (info.real_video[0].duration if info.real_video else None) or 0.0
    if not info.real_video or duration <= 0:
        raise MediaError(f"{Path(video).name} has no video frames to take a poster from")
    last = max(0.0, duration - 0.1)  # a seek to the very end returns no frame
    when = min(max(duration / 2 if at is None else at, 0.0), last)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.stem}.part.jpg")
    media.run(media.frame_at_cmd(video, when, partial), timeout=120.0, what="taking the poster frame")
    if not partial.is_file() or partial.stat().st_size == 0:
        raise MediaError(f"no frame at {when:.2f} s in {Path(video).name}")
    os.replace(partial, out)
    return out


def make_contact_sheet(
    clips: list[Path], board: Storyboard, out: Path, columns: int = 4, thumb_width: int = 320
) -> Path:
    """A JPEG grid with one thumbnail per shot (the middle of its clip), labelled with number and times.

    Each cell is ``thumb_width`` wide and as tall as the board's aspect ratio makes it; the sheet is
    ``min(columns, shots)`` cells wide, with no gutters, so reviewers can map cells to shots at a glance.
    """
    if len(clips) != len(board.shots):
        raise InvalidParameter(f"got {len(clips)} clips for a storyboard of {len(board.shots)} shots")
    if columns < 1 or thumb_width < 16:
        raise InvalidParameter(f"columns must be >= 1 and thumb_width >= 16, got {columns} and {thumb_width}")
    width, height = frame_size(board.aspect_ratio, board.resolution)
    cell = (thumb_width, max(2, round(thumb_width * height / width / 2) * 2))
    cols = min(columns, len(clips))
    rows = math.ceil(len(clips) / cols)
    sheet = Image.new("RGB", (cols * cell[0], rows * cell[1]), (12, 12, 12))
    font = _font(max(10, cell[1] // 12))
    with tempfile.TemporaryDirectory(prefix=".contact-") as tmp_name:
        for shot, clip in zip(board.shots, clips, strict=True):
            grab = Path(tmp_name) / f"{shot.index}.jpg"
            cmd = media.frame_at_cmd(Path(clip), shot.duration / 2, grab, width=thumb_width)
            media.run(cmd, timeout=120.0, what=f"taking a thumbnail of shot {shot.number}")
            with Image.open(grab) as image:
                thumb = ImageOps.pad(image.convert("RGB"), cell, color=(0, 0, 0))
            _label(thumb, f"{shot.number}  {_clock(shot.start)} - {_clock(shot.end)}", font)
            row, col = divmod(shot.index, cols)
            sheet.paste(thumb, (col * cell[0], row * cell[1]))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.stem}.part.jpg")
    sheet.save(partial, "JPEG", quality=88)
    os.replace(partial, out)
    return out


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size only
        return ImageFont.load_default()


def _label(thumb: Image.Image, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> None:
    """Shot number and times on a dark band along the bottom of the thumbnail."""
    draw = ImageDraw.Draw(thumb)
    left, top, _, bottom = draw.textbbox((0, 0), text, font=font)
    pad = 4
    band = bottom - top + 2 * pad
    draw.rectangle((0, thumb.height - band, thumb.width, thumb.height), fill=(0, 0, 0))
    draw.text((pad - left, thumb.height - band + pad - top), text, fill=(255, 255, 255), font=font)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(round(seconds, 1), 60)
    return f"{int(minutes)}:{rest:04.1f}"
