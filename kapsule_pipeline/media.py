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
import json
import logging
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
class ProbeResult:
    path: Path
    format_name: str
    duration: float | None
    size: int
    bit_rate: int | None
    audio: tuple[AudioStream, ...] = field(default_factory=tuple)
    video: tuple[VideoStream, ...] = field(default_factory=tuple)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)

    @property
    def real_video(self) -> tuple[VideoStream, ...]:
        """Video streams that are moving pictures, not cover art."""
        return tuple(v for v in self.video if not v.attached_pic)


def probe_cmd(path: Path) -> list[str]:
    return ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]


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
    for stream in data.get("streams", []):
        kind = stream.get("codec_type")
        if kind == "audio":
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
    )


def probe(path: Path, timeout: float = 60.0) -> ProbeResult:
    """Probe a media file. Raises ``MediaError`` if ffprobe cannot read it at all."""
    result = run(probe_cmd(path), timeout=timeout, what="ffprobe")
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
# Builders for assemble.py. Joining uses the concat demuxer with stream copy: the shots already share
# one H.264 setup, so the final video costs a remux, not an encode. Clips that do not share it are
# first normalized one by one (``normalize_clip_cmd``), because the concat demuxer's ``outpoint``
# compares *decoding* timestamps: re-encoding straight from a list of B-frame clips lets a few frames
# past each outpoint through (measured: 5 frames per cut with x264 veryfast clips), which moves every
# cut off the beat and makes the video longer than the song.


@dataclass(frozen=True)
class ConcatEntry:
    """One clip in a concat list: play ``path`` from ``inpoint`` to ``outpoint`` (seconds in the clip)."""

    path: Path
    inpoint: float = 0.0
    outpoint: float | None = None


def _concat_quote(path: Path) -> str:
    # ffconcat quoting: inside '...' nothing is special except the quote itself, written '\''.
    return "'" + str(path).replace("'", "'\\''") + "'"


def concat_list_text(entries: Sequence[ConcatEntry]) -> str:
    """The text of an ffconcat list file (paths as given; use absolute ones with ``-safe 0``)."""
    lines = ["ffconcat version 1.0"]
    for entry in entries:
        lines.append(f"file {_concat_quote(entry.path)}")
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
    size or shape is scaled to fit and letterboxed, so any clip can then be joined by stream copy.
    """
    filters = ",".join(
        [
            "setpts=PTS-STARTPTS",
            f"fps={fps}",
            f"scale={width}:{height}:force_original_aspect_ratio=decrease",
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2",
            "setsar=1",
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
) -> list[str]:
    """Join the clips of ``list_file`` (input 0, stream copy) and lay the song (input 1) under them.

    The song is never re-timed: copied when it is AAC already, else encoded to AAC at the song's own
    sample rate. ``+faststart`` puts the index first so a browser starts playing before the download ends.
    The upload's tags are dropped: final videos may be public, the song's metadata is the user's.
    """
    args = [
        "ffmpeg", "-nostdin", "-v", "error", "-y",
        "-f", "concat", "-safe", "0", "-i", str(list_file), "-i", str(song),
        "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
    ]  # fmt: skip
    if copy_audio:
        args += ["-c:a", "copy"]
    else:
        args += ["-c:a", "aac", "-b:a", audio_bitrate]
        if sample_rate:
            args += ["-ar", str(sample_rate)]
    args += ["-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4", str(out)]
    return args


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
