"""What is in a media file, as ffprobe reports it: frozen dataclasses parsed from its JSON output.

Probe results are parsed from ``ffprobe -print_format json``, never scraped from stderr, and the
parser is a pure function so tests can feed it recorded JSON.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from kapsule.core.errors import MediaError
from kapsule.media.process import run


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
    """A JSON number or numeric string as a float; anything else (None, "N/A", a list) as None."""
    if not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _int(value: object, default: int = 0) -> int:
    """A JSON number or integer string as an int; anything else as ``default``."""
    if not isinstance(value, int | float | str):
        return default
    try:
        return int(value)
    except ValueError:
        return default


def parse_probe(path: Path, data: dict[str, Any]) -> ProbeResult:
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


def _parse_packets(data: dict[str, Any]) -> tuple[Packet, ...]:
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
    if not isinstance(data, dict):
        raise MediaError("ffprobe printed JSON that is not an object", command=probe_cmd(path))
    return parse_probe(Path(path), data)
