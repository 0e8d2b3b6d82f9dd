"""FFmpeg argument lists (``*_cmd``: pure functions returning ``list[str]``) and the thin runners over them.

Builders only build lists, so unit tests can read every command and the log shows it verbatim; the
few functions that also run one (``decode_audio``, ``scene_cuts``, ``loudness``) go through
``process.run``. The filter graphs these commands carry are built in ``graphs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kapsule.core.errors import MediaError
from kapsule.media.graphs import fit_filters
from kapsule.media.process import run

# -------------------------------------------------------------------------------------------- decode


def decode_audio_cmd(
    path: Path, sample_rate: int, mono: bool = True, stream_index: int | None = None
) -> list[str]:
    """Decode the (first) audio stream to raw float32 little-endian PCM on stdout."""
    args = ["ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", str(path)]
    args += ["-map", f"0:{stream_index}" if stream_index is not None else "0:a:0", "-vn", "-sn", "-dn"]
    if mono:
        args += ["-ac", "1"]
    args += ["-ar", str(sample_rate), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    return args


def decode_audio(
    path: Path, sample_rate: int = 22050, mono: bool = True, timeout: float = 600.0
) -> np.ndarray:
    """The song as float32 samples in [-1, 1] (mono: shape (n,); else (n, channels))."""
    result = run(decode_audio_cmd(path, sample_rate, mono), timeout=timeout, what="decoding the audio")
    samples = np.frombuffer(result.stdout, dtype="<f4").astype(np.float32)
    return samples


# -------------------------------------------------------------------------------------------- encode

# Every shot and the final video share these so that joining can copy streams without re-encoding.
H264_PROFILE = "high"
H264_PIX_FMT = "yuv420p"


def h264_args(*, crf: int, preset: str, fps: int, threads: int = 0, gop_seconds: float = 2.0) -> list[str]:
    """The x264 settings shared by every encode (shots and final video must match to concat-copy)."""
    args = [
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf),
        "-profile:v", H264_PROFILE, "-pix_fmt", H264_PIX_FMT,
        "-g", str(int(fps * gop_seconds)), "-r", str(fps),
    ]  # fmt: skip
    if threads:
        args += ["-threads", str(threads)]
    return args


def raw_video_encode_cmd(
    out: Path,
    *,
    src_width: int,
    src_height: int,
    width: int,
    height: int,
    fps: int,
    crf: int,
    preset: str,
    frames: int,
    pix_fmt: str = "rgb24",
    threads: int = 0,
) -> list[str]:
    """Encode raw frames written to stdin into an H.264 MP4 of exactly ``frames`` frames.

    Frames may be rendered smaller than the output (``src_*``) and upscaled here: the renderer draws
    smooth procedural images, so a bicubic upscale costs nothing visible and saves most of the time.
    """
    args = [
        "ffmpeg", "-nostdin", "-v", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{src_width}x{src_height}", "-r", str(fps),
        "-i", "pipe:0",
    ]  # fmt: skip
    if (src_width, src_height) != (width, height):
        args += ["-vf", f"scale={width}:{height}:flags=bicubic"]
    args += h264_args(crf=crf, preset=preset, fps=fps, threads=threads)
    args += ["-frames:v", str(frames), "-an", "-movflags", "+faststart", str(out)]
    return args


# ----------------------------------------------------------------------------------- stills, checks


def frame_at_cmd(video: Path, seconds: float, out: Path, width: int | None = None) -> list[str]:
    """Grab one frame as a JPEG (poster, contact-sheet cells)."""
    args = [
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-ss",
        f"{seconds:.3f}",
        "-i",
        str(video),
        "-frames:v",
        "1",
    ]
    if width:
        args += ["-vf", f"scale={width}:-2"]
    args += ["-q:v", "3", str(out)]
    return args


def scene_cuts_cmd(video: Path, threshold: float = 0.3) -> list[str]:
    """Print the time of every frame whose scene-change score exceeds ``threshold`` (for tests/QA)."""
    return [
        "ffmpeg", "-nostdin", "-v", "info", "-i", str(video), "-an",
        "-vf", f"select='gt(scene,{threshold})',showinfo", "-f", "null", "-",
    ]  # fmt: skip


def scene_cuts(video: Path, threshold: float = 0.3, timeout: float = 600.0) -> list[float]:
    """Times (s) of hard cuts found by FFmpeg's scene detection."""
    result = run(scene_cuts_cmd(video, threshold), timeout=timeout, what="scene detection")
    times = []
    for line in result.stderr.decode("utf-8", "replace").splitlines():
        if "showinfo" in line and "pts_time:" in line:
            token = line.split("pts_time:", 1)[1].split()[0]
            times.append(float(token))
    return times


@dataclass(frozen=True)
class ConcatEntry:
    """One clip in a concat list: play ``path`` from ``inpoint`` to ``outpoint`` (seconds in the clip)."""

    path: Path
    inpoint: float | None = None
    outpoint: float | None = None


def _concat_quote(path: Path) -> str:
    # ffconcat quoting: inside '...' nothing is special except the quote itself, written '\''.
    return "'" + str(path).replace("'", "'\\''") + "'"


def concat_list_text(entries: Sequence[ConcatEntry]) -> str:
    """The text of an ffconcat list file (paths as given; use absolute ones with ``-safe 0``)."""
    lines = ["ffconcat version 1.0"]
    for entry in entries:
        lines.append(f"file {_concat_quote(entry.path)}")
        if entry.inpoint is not None:
            lines.append(f"inpoint {entry.inpoint:.6f}")
        if entry.outpoint is not None:
            lines.append(f"outpoint {entry.outpoint:.6f}")
    return "\n".join(lines) + "\n"


def normalize_clip_cmd(
    src: Path,
    out: Path,
    *,
    frames: int,
    width: int,
    height: int,
    fps: int,
    crf: int,
    preset: str,
    threads: int = 0,
) -> list[str]:
    """Re-encode a clip to exactly ``frames`` frames of width×height at ``fps`` with the shared H.264 setup.

    Longer clips are cut, a clip that is a little short holds its last frame, and a clip of another
    size or shape is scaled to cover the frame and centre-cropped (``fit_filters``), so any clip can
    then be joined by stream copy or fed to ``assembly_cmd`` with the others.
    """
    filters = ",".join(
        [
            "setpts=PTS-STARTPTS",
            f"fps={fps}",
            *fit_filters(width, height),
            f"tpad=stop_mode=clone:stop={frames}",
        ]
    )
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), "-map", "0:v:0", "-vf", filters]
    args += h264_args(crf=crf, preset=preset, fps=fps, threads=threads)
    args += ["-frames:v", str(frames), "-an", "-sn", "-dn", "-f", "mp4", str(out)]
    return args


def concat_mux_cmd(
    list_file: Path,
    song: Path,
    out: Path,
    *,
    copy_audio: bool,
    sample_rate: int | None = None,
    audio_bitrate: str = "256k",
    soft_captions: Path | None = None,
) -> list[str]:
    """Join the clips of ``list_file`` (input 0, stream copy) and lay the song (input 1) under them.

    The song is never re-timed: copied when it is AAC already, else encoded to AAC at the song's own
    sample rate. ``+faststart`` puts the index first so a browser starts playing before the download ends.
    The upload's tags are dropped: final videos may be public, the song's metadata is the user's.
    """
    args = [
        "ffmpeg", "-nostdin", "-v", "error", "-y",
        "-f", "concat", "-safe", "0", "-i", str(list_file), "-i", str(song),
        *(["-i", str(soft_captions)] if soft_captions else []),
        "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
    ]  # fmt: skip
    return [
        *args,
        *soft_caption_args(2, soft_captions),
        *_song_and_mp4_args(out, copy_audio=copy_audio, sample_rate=sample_rate, audio_bitrate=audio_bitrate),
    ]


def _song_and_mp4_args(
    out: Path, *, copy_audio: bool, sample_rate: int | None, audio_bitrate: str
) -> list[str]:
    """The soundtrack and container half shared by both assembly commands.

    The song is copied when it is already AAC, else encoded at ``audio_bitrate`` keeping its sample
    rate; tags are dropped (a final video may be public) and the index goes first for streaming.
    """
    args = ["-c:a", "copy"] if copy_audio else ["-c:a", "aac", "-b:a", audio_bitrate]
    if not copy_audio and sample_rate:
        args += ["-ar", str(sample_rate)]
    return [*args, "-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4", str(out)]


def assembly_cmd(
    list_file: Path,
    song: Path,
    out: Path,
    *,
    graph: str,
    complex_graph: bool,
    fps: int,
    crf: int,
    preset: str,
    copy_audio: bool,
    sample_rate: int | None = None,
    audio_bitrate: str = "256k",
    threads: int = 0,
    soft_captions: Path | None = None,
) -> list[str]:
    """The one encode pass: clips of ``list_file`` (input 0) through ``graph``, the song (input 1) under them.

    ``graph`` is a ``hard_cut_filter`` (a simple ``-vf`` chain) or a ``crossfade_filter``
    (``complex_graph``: a ``-filter_complex`` ending in ``[vout]``), either possibly ending in
    burned captions (``graphs.with_burned_captions``). Audio rules as ``concat_mux_cmd``;
    ``soft_captions`` (an SRT file, input 2) becomes a ``mov_text`` track.
    """
    args = [
        "ffmpeg", "-nostdin", "-v", "error", "-y",
        "-f", "concat", "-safe", "0", "-i", str(list_file), "-i", str(song),
        *(["-i", str(soft_captions)] if soft_captions else []),
    ]  # fmt: skip
    if complex_graph:
        args += ["-filter_complex", graph, "-map", "[vout]"]
    else:
        args += ["-map", "0:v:0", "-vf", graph]
    # No ``-frames:v``: the graph already yields exactly the storyboard's frames, and when one stream
    # reaches its ``-frames`` limit FFmpeg closes the whole file, cutting the song's last ~0.2-0.8 s.
    args += ["-map", "1:a:0", *h264_args(crf=crf, preset=preset, fps=fps, threads=threads)]
    return [
        *args,
        *soft_caption_args(2, soft_captions),
        *_song_and_mp4_args(out, copy_audio=copy_audio, sample_rate=sample_rate, audio_bitrate=audio_bitrate),
    ]


# ----------------------------------------------------------------------------------------- captions
# Soft captions are an SRT input muxed as a ``mov_text`` track, which MP4 players read and which
# costs nothing on the concat-copy path. (Burned captions are a filter: ``graphs.with_burned_captions``.)


@dataclass(frozen=True)
class CaptionTracks:
    """Captions for assembly: an ASS file to burn into the frames, an SRT file to mux as a track."""

    burn: Path | None = None
    soft: Path | None = None


def soft_caption_args(input_index: int, srt: Path | None, language: str = "und") -> list[str]:
    """Map input ``input_index`` (an SRT file) as a ``mov_text`` subtitle track, off by default."""
    if srt is None:
        return []
    return [
        "-map", f"{input_index}:s:0", "-c:s", "mov_text",
        "-metadata:s:s:0", f"language={language}", "-metadata:s:s:0", "handler_name=Lyrics",
        "-disposition:s:0", "0",
    ]  # fmt: skip


# ----------------------------------------------------------------------------------------- loudness


@dataclass(frozen=True)
class Loudness:
    """EBU R128 figures of a song, as a mastering engineer reads them (analysis only, nothing changed)."""

    integrated_lufs: float  # programme loudness; streaming services aim near -14 LUFS
    range_lu: float  # loudness range: how much the song breathes
    true_peak_dbtp: float  # above -1 dBTP risks clipping after lossy encoding


def loudness_cmd(path: Path) -> list[str]:
    """Measure EBU R128 loudness with FFmpeg's ``ebur128`` filter; the summary goes to stderr."""
    return [
        "ffmpeg", "-nostdin", "-v", "info", "-i", str(path), "-map", "0:a:0", "-vn",
        "-af", "ebur128=peak=true", "-f", "null", "-",
    ]  # fmt: skip


def parse_loudness(stderr: str) -> Loudness:
    """Read the ``Summary:`` block ``ebur128`` prints at the end (pure; unit-testable)."""
    summary = stderr.rsplit("Summary:", 1)
    if len(summary) != 2:
        raise MediaError("ffmpeg printed no loudness summary")
    values: dict[str, float] = {}
    for line in summary[1].splitlines():
        key, _, rest = line.strip().partition(":")
        token = rest.split()[0] if rest.split() else ""
        if key in {"I", "LRA", "Peak"} and token:
            try:
                values[key] = float(token)
            except ValueError:
                values[key] = float("-inf")  # "-inf" for digital silence parses; anything else is odd
    if "I" not in values:
        raise MediaError("ffmpeg's loudness summary has no integrated loudness")
    return Loudness(values["I"], values.get("LRA", 0.0), values.get("Peak", float("-inf")))


def loudness(path: Path, timeout: float = 600.0) -> Loudness:
    """EBU R128 integrated loudness, loudness range and true peak of ``path``'s first audio stream."""
    result = run(loudness_cmd(path), timeout=timeout, what="measuring loudness")
    return parse_loudness(result.stderr.decode("utf-8", "replace"))


# ----------------------------------------------------------------------------------------- baselines


def floor_encode_cmd(
    out: Path, *, seconds: float, width: int, height: int, fps: int, crf: int, preset: str
) -> list[str]:
    """One plain x264 pass of a synthetic picture: the physical floor benchmarks compare against.

    Any pipeline that outputs ``seconds`` of H.264 at these settings pays at least this much.
    """
    return [
        "ffmpeg", "-nostdin", "-v", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}",
        *h264_args(crf=crf, preset=preset, fps=fps), "-an", str(out),
    ]  # fmt: skip


def audio_excerpt_cmd(src: Path, out: Path, *, max_seconds: float, bitrate_kbps: int = 32) -> list[str]:
    """A small mono MP3 of the song for Gemini to listen to (inline data must stay well under 20 MB:
    32 kb/s is 2.4 MB for 10 minutes, plenty to hear mood, instruments and structure)."""
    return [
        "ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), "-t", f"{max_seconds:.3f}",
        "-vn", "-sn", "-dn", "-ac", "1", "-ar", "22050", "-c:a", "libmp3lame", "-b:a", f"{bitrate_kbps}k",
        str(out),
    ]  # fmt: skip


def click_preview_cmd(song: Path, out: Path, *, click_rate: int, song_gain: float = 0.5) -> list[str]:
    """The song with a click track mixed in, for the musician to check the beat grid by ear.

    The clicks come as raw mono float32 at ``click_rate`` on stdin (rendered by
    ``kapsule.song.click_track``, sample-exact); the song is lowered by ``song_gain`` so the clicks are
    heard over it and the sum cannot clip (no limiter: its look-ahead would move the clicks).
    AAC in M4A plays in every browser, and its edit list keeps the encoder delay out of the timing.
    """
    graph = (
        f"[0:a]aresample={click_rate},aformat=sample_fmts=fltp:channel_layouts=stereo,volume={song_gain:g}[song];"
        "[1:a]aformat=sample_fmts=fltp:channel_layouts=stereo[click];"
        "[song][click]amix=inputs=2:duration=first:normalize=0[out]"
    )
    return [
        "ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(song),
        "-f", "f32le", "-ar", str(click_rate), "-ac", "1", "-i", "pipe:0",
        "-filter_complex", graph, "-map", "[out]", "-vn", "-sn", "-dn",
        "-c:a", "aac", "-b:a", "160k", "-movflags", "+faststart", str(out),
    ]  # fmt: skip
