"""The one place that builds and runs FFmpeg and ffprobe commands.

Decision (written down as the foundation issue asks): we build argument lists ourselves rather than
use ``ffmpeg-python``. That package has been unmaintained since 2019, hides the exact command behind
a graph object, and our commands are few and short; plain ``list[str]`` builders are pure functions
that unit tests can read, and every command we run is logged verbatim. Nothing is ever passed
through a shell.

Builders (``*_cmd``) only build lists; ``run`` executes with a timeout and turns any failure into a
``MediaError`` carrying the command and the tail of stderr. Probe results are frozen dataclasses
parsed from ``ffprobe -print_format json``, never scraped from stderr.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import IO

import numpy as np

from kapsule_pipeline.errors import MediaError, ToolMissing

log = logging.getLogger(__name__)

STDERR_TAIL_CHARS = 2000


@cache
def tool(name: str) -> str:
    """Absolute path of ``ffmpeg`` or ``ffprobe``, found once; a missing one gives a human message."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(
            f"{name} is not installed. Install FFmpeg (Debian/Ubuntu: `sudo apt-get install ffmpeg`, "
            "macOS: `brew install ffmpeg`), or run `make demo`, which installs it."
        )
    return path


def run(
    args: Sequence[str],
    *,
    timeout: float = 1800.0,
    input_bytes: bytes | None = None,
    what: str = "ffmpeg",
) -> subprocess.CompletedProcess[bytes]:
    """Run one command (first element a tool name), raising ``MediaError`` on failure or timeout."""
    command = [tool(args[0]), *args[1:]]
    log.debug("running %s", " ".join(command))
    try:
        result = subprocess.run(command, input=input_bytes, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"{what} took longer than {timeout:.0f} s", command=list(command)) from exc
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]
        raise MediaError(f"{what} failed: {_last_line(stderr)}", command=list(command), stderr=stderr)
    return result


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


# --------------------------------------------------------------------------------------------- probe


@dataclass(frozen=True)
class AudioStream:
    index: int
    codec: str
    sample_rate: int
    channels: int
    bits_per_sample: int
    duration: float | None


@dataclass(frozen=True)
class VideoStream:
    index: int
    codec: str
    width: int
    height: int
    frame_rate: Fraction
    frames: int | None
    duration: float | None
    attached_pic: bool  # cover art inside an mp3/m4a is a "video" stream with this flag
    pix_fmt: str = ""


@dataclass(frozen=True)
class SubtitleStream:
    index: int
    codec: str


@dataclass(frozen=True)
class Packet:
    """One packet as the demuxer reads it: its stream and its timestamps in seconds (exact fractions)."""

    stream: int
    dts: Fraction | None
    pts: Fraction | None


@dataclass(frozen=True)
class ProbeResult:
    path: Path
    format_name: str
    duration: float | None
    size: int
    bit_rate: int | None
    audio: tuple[AudioStream, ...] = field(default_factory=tuple)
    video: tuple[VideoStream, ...] = field(default_factory=tuple)
    packets: tuple[Packet, ...] = field(default_factory=tuple)  # only from ``probe(..., packets=True)``
    subtitles: tuple[SubtitleStream, ...] = field(default_factory=tuple)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)

    @property
    def real_video(self) -> tuple[VideoStream, ...]:
        """Video streams that are moving pictures, not cover art."""
        return tuple(v for v in self.video if not v.attached_pic)


def probe_cmd(path: Path, packets: bool = False) -> list[str]:
    args = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams"]
    if packets:  # read order, not sorted: that is the order the concat demuxer sees them in
        args += ["-show_entries", "packet=stream_index,pts,dts"]
    return [*args, str(path)]


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _int(value: object, default: int = 0) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default


def parse_probe(path: Path, data: dict) -> ProbeResult:  # type: ignore[type-arg]
    """Turn ffprobe's JSON into a ``ProbeResult`` (pure; unit-tested on recorded JSON)."""
    fmt = data.get("format", {})
    audio: list[AudioStream] = []
    video: list[VideoStream] = []
    subtitles: list[SubtitleStream] = []
    for stream in data.get("streams", []):
        kind = stream.get("codec_type")
        if kind == "subtitle":
            subtitles.append(SubtitleStream(_int(stream.get("index")), stream.get("codec_name", "unknown")))
        elif kind == "audio":
            audio.append(
                AudioStream(
                    index=_int(stream.get("index")),
                    codec=stream.get("codec_name", "unknown"),
                    sample_rate=_int(stream.get("sample_rate")),
                    channels=_int(stream.get("channels")),
                    bits_per_sample=_int(stream.get("bits_per_raw_sample") or stream.get("bits_per_sample")),
                    duration=_float(stream.get("duration")),
                )
            )
        elif kind == "video":
            rate = stream.get("avg_frame_rate") or stream.get("r_frame_rate") or "0/1"
            try:
                frame_rate = Fraction(rate) if rate != "0/0" else Fraction(0)
            except (ValueError, ZeroDivisionError):
                frame_rate = Fraction(0)
            video.append(
                VideoStream(
                    index=_int(stream.get("index")),
                    codec=stream.get("codec_name", "unknown"),
                    width=_int(stream.get("width")),
                    height=_int(stream.get("height")),
                    frame_rate=frame_rate,
                    frames=_int(stream.get("nb_frames"), 0) or None,
                    duration=_float(stream.get("duration")),
                    attached_pic=bool(stream.get("disposition", {}).get("attached_pic")),
                    pix_fmt=stream.get("pix_fmt", ""),
                )
            )
    return ProbeResult(
        path=path,
        format_name=fmt.get("format_name", ""),
        duration=_float(fmt.get("duration")),
        size=_int(fmt.get("size")),
        bit_rate=_int(fmt.get("bit_rate")) or None,
        audio=tuple(audio),
        video=tuple(video),
        packets=_parse_packets(data),
        subtitles=tuple(subtitles),
    )


def _parse_packets(data: dict) -> tuple[Packet, ...]:  # type: ignore[type-arg]
    bases: dict[int, Fraction] = {}
    for stream in data.get("streams", []):
        with contextlib.suppress(ValueError, ZeroDivisionError):
            bases[_int(stream.get("index"))] = Fraction(stream.get("time_base", ""))
    packets = []
    for packet in data.get("packets", []):
        index = _int(packet.get("stream_index"), -1)
        base = bases.get(index)
        dts, pts = packet.get("dts"), packet.get("pts")
        packets.append(
            Packet(
                stream=index,
                dts=base * int(dts) if base is not None and isinstance(dts, int) else None,
                pts=base * int(pts) if base is not None and isinstance(pts, int) else None,
            )
        )
    return tuple(packets)


def probe(path: Path, timeout: float = 60.0, *, packets: bool = False) -> ProbeResult:
    """Probe a media file. Raises ``MediaError`` if ffprobe cannot read it at all.

    ``packets`` also lists every packet's timestamps (for ``concat_cutoff``), in the same process.
    """
    result = run(probe_cmd(path, packets), timeout=timeout, what="ffprobe")
    try:
        data = json.loads(result.stdout or b"{}")
    except json.JSONDecodeError as exc:
        raise MediaError("ffprobe printed something that is not JSON", command=probe_cmd(path)) from exc
    return parse_probe(Path(path), data)


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


class RawVideoWriter:
    """Feed numpy frames (H×W×3 uint8) to an FFmpeg encoder process; ``close`` checks its exit code."""

    def __init__(self, args: list[str], timeout: float = 1800.0) -> None:
        self.args = [tool(args[0]), *args[1:]]
        self.timeout = timeout
        self._proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self._proc.stdin is not None
        self._stdin: IO[bytes] = self._proc.stdin

    def write(self, frame: np.ndarray) -> None:
        try:
            self._stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        except BrokenPipeError as exc:
            self.close()
            raise MediaError("the video encoder stopped early", command=self.args) from exc

    def close(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self._stdin.close()
            self._proc.stdin = None  # closed: communicate() must not flush it again
        try:
            _, err = self._proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            self._proc.kill()
            raise MediaError("the video encoder timed out", command=self.args) from exc
        if self._proc.returncode != 0:
            stderr = (err or b"").decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]
            raise MediaError(f"encoding failed: {_last_line(stderr)}", command=self.args, stderr=stderr)

    def __enter__(self) -> RawVideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        if exc_type is None:
            self.close()
        else:
            self._proc.kill()
            self._proc.wait()


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


# ------------------------------------------------------------------------------------------ assembly
# Builders for assemble.py. Two ways to join:
# * exact clips (the local renderer's: each has its shot's frames and the shared H.264 setup) are
#   joined by the concat demuxer with stream copy: a remux, an order of magnitude under the floor;
# * any other clips (a Veo 8 s clip for a 6.3 s shot) go through ONE encode pass
#   (``assembly_cmd``): the concat demuxer feeds every clip, in order, through one decoder, and the
#   filter graph keeps each shot's frames *by frame number after decoding* (``select`` on ``n``).
#   Frame numbers are exact where timestamps are not: the concat demuxer's output timestamps carry
#   each file's audio priming offset (23 ms for AAC at 44.1 kHz), half a frame of uncertainty per cut.
#   Opening every clip as its own input with ``-ss/-t`` is exact too, but keeps ~25 decoders alive
#   (~1 GB RSS at 720p); one decoder stays near a plain encode's ~200 MB.
# Decoding frames only to drop them costs ~10 % of a pass, so each clip gets an ``outpoint`` where
# the demuxer stops reading it (``concat_cutoff``). The demuxer stops at the first packet of *any*
# stream whose *decoding* timestamp reaches the outpoint, so with B-frames (and an audio track read
# in between) a few frames past it still come out. ``concat_cutoff`` replays that rule on the clip's
# own packet list, so it knows exactly how many frames the decoder will output for the clip.
# Frame numbering only holds while the decoder's output never changes shape (a change re-creates
# the filter graph and restarts ``n``), so a clip of another size, rate or pixel format is first
# normalized to the others' shape (``normalize_clip_cmd``); that is rare (a fallback clip).

MICROSECONDS = 1_000_000  # the concat demuxer's outpoint resolution (AV_TIME_BASE)


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


@dataclass(frozen=True)
class ConcatCutoff:
    """Where the concat demuxer should stop reading a clip, and what the decoder then outputs.

    ``outpoint`` is None when the whole clip has to be read; ``decoded`` is the number of frames the
    clip contributes to the decoded stream (its first ``keep`` frames in display order, then the
    few extra frames read before the demuxer stopped).
    """

    outpoint: float | None
    decoded: int


def concat_cutoff(packets: Sequence[Packet], video_stream: int, keep: int) -> ConcatCutoff:
    """The earliest outpoint that still lets the decoder output a clip's first ``keep`` frames.

    Pure: a replay of the concat demuxer's rule on the packets in read order (it ends a file at the
    first packet, of any stream, whose decoding timestamp is at or past the outpoint). The needed
    frames are the ``keep`` earliest presentation timestamps; the demuxer must read up to the last
    of their packets, so the outpoint goes one microsecond past every decoding timestamp read up to
    there. Any packet without timestamps, or ``keep`` reaching the end, means the whole clip is read.
    """
    video = [(at, p) for at, p in enumerate(packets) if p.stream == video_stream]
    if keep >= len(video) or any(p.pts is None or p.dts is None for _, p in video):
        return ConcatCutoff(None, len(video))
    needed = sorted(video, key=lambda item: item[1].pts)[:keep]  # type: ignore[arg-type,return-value]
    last = max(at for at, _ in needed)
    read = [p.dts for p in packets[: last + 1] if p.dts is not None]
    limit = Fraction(math.floor(max(read) * MICROSECONDS) + 1, MICROSECONDS)
    after = range(last + 1, len(packets))
    stop = next((at for at in after if (dts := packets[at].dts) is not None and dts >= limit), len(packets))
    return ConcatCutoff(float(limit), sum(1 for at, _ in video if at < stop))


def fit_filters(width: int, height: int) -> list[str]:
    """Scale a picture of any shape to cover width×height, then crop the centre: no bars, no stretch.

    A music video fills the screen; a 9:16 clip in a 16:9 video keeps its middle band, and a Veo
    16:9 clip in a 1:1 video keeps its middle square. Sizes are kept even for yuv420p.
    """
    return [
        f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=bicubic",
        f"crop={width}:{height}",
        "setsar=1",
    ]


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


@dataclass(frozen=True)
class ShotSpan:
    """Where one shot's frames are in the decoded clip stream (frames counted from 0, decode output).

    ``first`` is the clip's first frame, ``frames`` the shot's length, ``tail`` how many usable
    frames the clip has after the shot (a dissolve takes its outgoing frames from there).
    """

    first: int
    frames: int
    tail: int = 0


def _between(spans: Sequence[tuple[int, int]]) -> str:
    return "+".join(f"between(n,{a},{b - 1})" for a, b in spans if b > a)


def _steps(var: str, offsets: Sequence[tuple[int, int]]) -> str:
    """``var`` plus a piecewise-constant offset: offsets[i] = (from_value, offset) in increasing order."""
    expr = f"{var}{offsets[0][1]:+d}"
    for (_, before), (start, after) in itertools.pairwise(offsets):
        if after != before:
            expr += f"{after - before:+d}*gte({var},{start})"
    return expr


def hard_cut_filter(spans: Sequence[ShotSpan], *, fps: int, fit: Sequence[str] = ()) -> str:
    """Keep each shot's frames of the concatenated stream, renumbered onto the frame grid."""
    keep = _between([(s.first, s.first + s.frames) for s in spans])
    return ",".join([f"select='{keep}'", f"setpts=N/({fps}*TB)", *fit])


def dissolve_half_frames(seconds: float, fps: int, lengths: Sequence[int]) -> int:
    """Frames a dissolve spends on each side of a cut: half its length, never more than half a shot."""
    if len(lengths) < 2:
        return 0
    return max(0, min(round(seconds * fps / 2), min(lengths) // 2))


def dissolve_frames_needed(lengths: Sequence[int], half_frames: int) -> list[int]:
    """Frames each clip must supply for dissolves of ``2 * half_frames`` centred on the cuts.

    A dissolve shows the incoming clip from ``half_frames`` before the cut and the outgoing one until
    ``half_frames`` after it, so an inner clip plays its shot plus both halves; the first and last
    one half. A clip that is shorter holds its last frame (``crossfade_filter``).
    """
    if len(lengths) < 2 or half_frames < 1:
        return list(lengths)
    last = len(lengths) - 1
    return [n + half_frames * (1 if i in (0, last) else 2) for i, n in enumerate(lengths)]


def dissolve_can_hold(have: int, need: int, half_frames: int) -> bool:
    """Whether a clip with ``have`` of its ``need`` frames can still dissolve by holding its last frame.

    It can while it has a frame of its own after the incoming dissolve (more than ``2 * half_frames``):
    its last frame is then held to the end of its outgoing half (or of the video, for the last clip).
    A shorter one the caller re-encodes to its full length first.
    """
    return have >= need or have > 2 * half_frames


def crossfade_filter(
    spans: Sequence[ShotSpan], *, fps: int, half_frames: int, fit: Sequence[str] = ()
) -> str:
    """Dissolves of ``2 * half_frames`` frames centred on every cut, with memory independent of the cuts.

    Two lanes leave the one decoder: across each cut, lane X carries the outgoing clip and lane Y
    the incoming one; everywhere else both carry the same frame of the same shot. Y's alpha ramps
    up over each dissolve (a ``fade`` per cut, each switched on for its own frames only) and Y is
    laid over X. Outside the dissolves X and Y are identical, so the overlay, a frame-synced filter
    whose ``enable`` is evaluated at the last frame it consumed, is switched on a few frames wider
    than each dissolve. Frames flow in decode order: only one dissolve's outgoing frames wait for
    the incoming ones (~2 * half_frames frames), unlike a chain of ``xfade``s (one frame pool per
    cut, ~870 MB for 25 clips at 720p). Each clip starts ``half_frames`` before its cut; a clip with
    too few frames for its half after the cut holds its last frame there (``fps`` fills the gap; a
    ``tpad`` at the end of both lanes for the last clip), as long as ``dissolve_can_hold``.
    """
    if len(spans) < 2 or half_frames < 1:
        return hard_cut_filter(spans, fps=fps, fit=fit)
    h, last = half_frames, len(spans) - 1
    cuts = list(itertools.accumulate(s.frames for s in spans))
    total = cuts[-1]
    need = dissolve_frames_needed([s.frames for s in spans], h)
    union: list[tuple[int, int]] = []  # decode-stream frames kept, per clip
    offsets: list[tuple[int, int]] = []  # (first kept index, pts offset) per clip
    lanes: dict[str, list[tuple[int, int]]] = {"x": [], "y": []}
    kept = shortfall = 0
    for i, span in enumerate(spans):
        start = 0 if i == 0 else cuts[i - 1] - h  # output frame where the clip's frame 0 plays
        have = min(need[i], span.frames + span.tail)
        if not dissolve_can_hold(have, need[i], h):
            raise ValueError(f"clip {i} has {have} of the {need[i]} frames its dissolves need")
        union.append((span.first, span.first + have))
        offsets.append((kept, start - kept))
        x_from = 0 if i == 0 else cuts[i - 1] + h
        x_to = cuts[i] + h if i < last else total
        y_to = cuts[i] - h if i < last else total
        lanes["x"].append((kept + x_from - start, kept + min(x_to - start, have)))
        lanes["y"].append((kept, kept + min(y_to - start, have)))
        if i == last:
            shortfall = max(0, total - start - have)  # the last clip's last frame, held to the end
        kept += have
    stamp = f"settb=1/{fps},setpts='{_steps('N', offsets)}'"
    parts = [f"[0:v:0]select='{_between(union)}',{stamp},{','.join([*fit, 'null'])},split=2[xs][ys]"]
    hold = [f"tpad=stop_mode=clone:stop={shortfall}"] if shortfall else []
    ramps = ["format=yuva420p"]  # lane Y only: its alpha ramps up over each dissolve
    for cut in cuts[:-1]:
        first, end = cut - h, cut + h  # the dissolve's frames: first .. end - 1
        ramps.append(
            f"fade=t=in:alpha=1:st={(first - 0.5) / fps:.6f}:d={2 * h / fps:.6f}"
            f":enable='between(t,{(first - 0.25) / fps:.6f},{(end - 0.75) / fps:.6f})'"
        )
    for lane, extra in (("x", []), ("y", ramps)):
        chain = [f"select='{_between(lanes[lane])}'", f"fps={fps}", *hold, *extra]
        parts.append(f"[{lane}s]{','.join(chain)}[{lane}f]")
    margin = 3  # frames: see the docstring; X == Y there, so a wider window changes nothing
    windows = "+".join(
        f"between(t,{(cut - h - margin) / fps:.6f},{(cut + h + margin) / fps:.6f})" for cut in cuts[:-1]
    )
    parts.append(f"[xf][yf]overlay=format=yuv420:eof_action=pass:enable='{windows}'[vout]")
    return ";".join(parts)


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
    burned captions (``with_burned_captions``). Audio rules as ``concat_mux_cmd``; ``soft_captions``
    (an SRT file, input 2) becomes a ``mov_text`` track.
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
# Burned captions are libass's ``subtitles`` filter at the end of the one encode pass's graph (after
# the cut, the dissolves and the fit, so they sit on the final frame size and never dissolve with a
# shot); soft captions are an SRT input muxed as a ``mov_text`` track, which MP4 players and the
# browser's ``<track>`` handling read, and which costs nothing on the concat-copy path.


@dataclass(frozen=True)
class CaptionTracks:
    """Captions for assembly: an ASS file to burn into the frames, an SRT file to mux as a track."""

    burn: Path | None = None
    soft: Path | None = None


def filter_value(text: str) -> str:
    """``text`` escaped to stand as one option value inside a filtergraph (both escaping levels).

    FFmpeg reads a graph twice: the graph parser (``\\ ' [ ] , ;`` are special) and then the
    filter's option parser (``\\ ' :``); a path with a colon or a comma must survive both.
    """
    level1 = "".join("\\" + ch if ch in "\\':" else ch for ch in text)
    return "".join("\\" + ch if ch in "\\'[],;" else ch for ch in level1)


def subtitles_filter(ass: Path) -> str:
    """libass rendering of an ASS file onto the frames (fonts found by fontconfig)."""
    return f"subtitles=filename={filter_value(str(ass))}"


def with_burned_captions(graph: str, complex_graph: bool, ass: Path) -> str:
    """``graph`` with the captions drawn last: a ``-vf`` chain gets one more filter; a complex graph's
    ``[vout]`` is renamed and the captions filter produces the new ``[vout]``."""
    if not complex_graph:
        return f"{graph},{subtitles_filter(ass)}"
    if not graph.endswith("[vout]"):
        raise ValueError("a complex assembly graph must end in [vout]")
    return f"{graph[: -len('[vout]')]}[precap];[precap]{subtitles_filter(ass)}[vout]"


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
