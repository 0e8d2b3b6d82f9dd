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
# Builders for assemble.py. Two ways to join:
# * exact clips (the local renderer's: each has its shot's frames and the shared H.264 setup) are
#   joined by the concat demuxer with stream copy: a remux, an order of magnitude under the floor;
# * any other clips (a Veo 8 s clip for a 6.3 s shot) go through ONE encode pass
#   (``assembly_cmd``): the concat demuxer feeds every clip, in order, through one decoder, and the
#   filter graph keeps each shot's frames *by frame number after decoding* (``select``/``trim`` on
#   ``n``). Frame numbers are exact where timestamps are not: the concat demuxer's ``outpoint``
#   compares *decoding* timestamps, so with B-frames a few frames past each outpoint leak through
#   (measured: 5 per cut with x264 veryfast clips), and its output timestamps carry each file's audio
#   priming offset (23 ms for AAC at 44.1 kHz), half a frame of uncertainty per cut. Opening every
#   clip as its own input with ``-ss/-t`` and trimming in the graph is exact too, but keeps ~25
#   decoders alive (~1 GB RSS at 720p); one decoder stays near a plain encode's ~200 MB.
# Frame numbering only holds while the decoder's output never changes shape (a change re-creates
# the filter graph and restarts ``n``), so a clip of another size, rate or pixel format is first
# normalized to the others' shape (``normalize_clip_cmd``); that is rare (a fallback clip).


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
    return [
        *args,
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
    """Where one shot's frames are in the concatenated clip stream (frames counted from 0, decode output).

    ``first`` is the shot's first frame, ``frames`` its length, ``tail`` how many frames the clip
    has after the shot (a crossfade borrows up to half its length from there).
    """

    first: int
    frames: int
    tail: int = 0


def _between(spans: Sequence[tuple[int, int]]) -> str:
    return "+".join(f"between(n,{a},{b - 1})" for a, b in spans)


def hard_cut_filter(spans: Sequence[ShotSpan], *, fps: int, fit: Sequence[str] = ()) -> str:
    """Keep each shot's frames of the concatenated stream, renumbered onto the frame grid."""
    keep = _between([(s.first, s.first + s.frames) for s in spans])
    return ",".join([f"select='{keep}'", f"setpts=N/({fps}*TB)", *fit])


def crossfade_filter(
    spans: Sequence[ShotSpan], *, fps: int, half_frames: int, fit: Sequence[str] = ()
) -> str:
    """Dissolves of ``2 * half_frames`` frames centred on every cut, in one graph on one decoder.

    Each shot's picture stays where the storyboard put it: across a cut the outgoing clip runs on
    for ``half_frames`` (its own surplus frames, or its last frame held), and the incoming clip's
    first frame is held for ``half_frames`` before the cut. So the mid-point of every dissolve is the
    planned cut, and the total length is the sum of the shots. Only the frames used are selected
    and fitted before ``split``; each branch ``trim``s its shot by frame number, and ``xfade``s are
    chained in time order, so frames flow from the single decoder without piling up.
    Memory grows with the cuts, though: each ``xfade`` keeps its own frame pool, measured ~30 MB per
    cut at 720p (871 MB for 25 clips, against ~200 MB for hard cuts).
    """
    if len(spans) < 2 or half_frames < 1:
        return hard_cut_filter(spans, fps=fps, fit=fit)
    h = half_frames
    last = len(spans) - 1
    used = [min(s.tail, h) if i < last else 0 for i, s in enumerate(spans)]
    keep = _between([(s.first, s.first + s.frames + u) for s, u in zip(spans, used, strict=True)])
    labels = "".join(f"[s{i}]" for i in range(len(spans)))
    parts = [
        f"[0:v:0]select='{keep}',setpts=N/({fps}*TB),{','.join([*fit, 'null'])},split={len(spans)}{labels}"
    ]
    position = 0
    for i, (span, u) in enumerate(zip(spans, used, strict=True)):
        length = span.frames + u
        chain = [f"trim=start_frame={position}:end_frame={position + length}", "setpts=PTS-STARTPTS"]
        pads = []
        if i > 0:
            pads.append(f"start_mode=clone:start={h}")
        if i < last and u < h:
            pads.append(f"stop_mode=clone:stop={h - u}")
        if pads:
            chain.append("tpad=" + ":".join(pads))
        parts.append(f"[s{i}]{','.join(chain)}[v{i}]")
        position += length
    duration = 2 * h / fps
    cut = spans[0].frames
    previous = "v0"
    for i in range(1, len(spans)):
        out = "vout" if i == last else f"x{i}"
        offset = (cut - h) / fps
        parts.append(
            f"[{previous}][v{i}]xfade=transition=fade:duration={duration:.6f}:offset={offset:.6f}[{out}]"
        )
        previous = out
        cut += spans[i].frames
    parts[-1] = parts[-1][: -len("[vout]")] + f",setpts=N/({fps}*TB)[vout]"
    return ";".join(parts)


def assembly_cmd(
    list_file: Path,
    song: Path,
    out: Path,
    *,
    graph: str,
    complex_graph: bool,
    fps: int,
    frames: int,
    crf: int,
    preset: str,
    copy_audio: bool,
    sample_rate: int | None = None,
    audio_bitrate: str = "256k",
    threads: int = 0,
) -> list[str]:
    """The one encode pass: clips of ``list_file`` (input 0) through ``graph``, the song (input 1) under them.

    ``graph`` is a ``hard_cut_filter`` (a simple ``-vf`` chain) or a ``crossfade_filter``
    (``complex_graph``: a ``-filter_complex`` ending in ``[vout]``). Audio rules as ``concat_mux_cmd``.
    """
    args = [
        "ffmpeg", "-nostdin", "-v", "error", "-y",
        "-f", "concat", "-safe", "0", "-i", str(list_file), "-i", str(song),
    ]  # fmt: skip
    if complex_graph:
        args += ["-filter_complex", graph, "-map", "[vout]"]
    else:
        args += ["-map", "0:v:0", "-vf", graph]
    args += ["-map", "1:a:0", *h264_args(crf=crf, preset=preset, fps=fps, threads=threads)]
    args += ["-frames:v", str(frames)]
    return [
        *args,
        *_song_and_mp4_args(out, copy_audio=copy_audio, sample_rate=sample_rate, audio_bitrate=audio_bitrate),
    ]


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
