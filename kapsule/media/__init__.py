"""The one place that builds and runs FFmpeg and ffprobe commands (base layer: imports nothing above it).

Decision (written down as the foundation issue asks): we build argument lists and filter graphs
ourselves rather than use ``ffmpeg-python`` or ``typed-ffmpeg``; docs/ffmpeg-choice.md says why.
Plain ``list[str]`` builders are pure functions that unit tests can read, every command we run is
logged verbatim, and nothing is ever passed through a shell.

The package is split along its seams; callers import from here (``media.probe(...)``):

* ``process``: find the tools, run one with a timeout (failures become ``MediaError``), feed frames
  to an encoder. The only module that starts a process.
* ``probing``: what is in a file, parsed from ffprobe's JSON (not ``probe.py``: the module
  would be shadowed by the ``probe`` function re-exported here).
* ``commands``: the argument lists (``*_cmd``) and the thin runners over them.
* ``scan``: a bounded decode that learns an audio stream's true length and peak without holding it.
* ``graphs``: assembly's filter graphs and the frame arithmetic behind them (cuts, dissolves, the
  concat demuxer's cut-offs).
"""

from kapsule.media.commands import (
    H264_PIX_FMT,
    H264_PROFILE,
    CaptionTracks,
    ConcatEntry,
    Loudness,
    assembly_cmd,
    audio_excerpt_cmd,
    click_preview_cmd,
    concat_list_text,
    concat_mux_cmd,
    decode_audio,
    decode_audio_cmd,
    floor_encode_cmd,
    frame_at_cmd,
    h264_args,
    loudness,
    loudness_cmd,
    normalize_clip_cmd,
    parse_loudness,
    raw_video_encode_cmd,
    scene_cuts,
    scene_cuts_cmd,
    soft_caption_args,
)
from kapsule.media.graphs import (
    MICROSECONDS,
    ConcatCutoff,
    DissolveBoard,
    ShotSpan,
    clip_frames_wanted,
    concat_cutoff,
    crossfade_filter,
    crossfade_half_frames,
    dissolve_can_hold,
    dissolve_frames_needed,
    dissolve_half_frames,
    filter_value,
    fit_filters,
    hard_cut_filter,
    subtitles_filter,
    transition_clip_frames,
    transition_half_frames,
    with_burned_captions,
)
from kapsule.media.probing import (
    AudioStream,
    Packet,
    ProbeResult,
    SubtitleStream,
    VideoStream,
    parse_probe,
    probe,
    probe_cmd,
)
from kapsule.media.process import STDERR_TAIL_CHARS, RawVideoWriter, run, run_streaming, tool
from kapsule.media.scan import AudioScan, scan_audio, scan_audio_cmd

__all__ = [
    "H264_PIX_FMT",
    "H264_PROFILE",
    "MICROSECONDS",
    "STDERR_TAIL_CHARS",
    "AudioScan",
    "AudioStream",
    "CaptionTracks",
    "ConcatCutoff",
    "ConcatEntry",
    "DissolveBoard",
    "Loudness",
    "Packet",
    "ProbeResult",
    "RawVideoWriter",
    "ShotSpan",
    "SubtitleStream",
    "VideoStream",
    "assembly_cmd",
    "audio_excerpt_cmd",
    "click_preview_cmd",
    "clip_frames_wanted",
    "concat_cutoff",
    "concat_list_text",
    "concat_mux_cmd",
    "crossfade_filter",
    "crossfade_half_frames",
    "decode_audio",
    "decode_audio_cmd",
    "dissolve_can_hold",
    "dissolve_frames_needed",
    "dissolve_half_frames",
    "filter_value",
    "fit_filters",
    "floor_encode_cmd",
    "frame_at_cmd",
    "h264_args",
    "hard_cut_filter",
    "loudness",
    "loudness_cmd",
    "normalize_clip_cmd",
    "parse_loudness",
    "parse_probe",
    "probe",
    "probe_cmd",
    "raw_video_encode_cmd",
    "run",
    "run_streaming",
    "scan_audio",
    "scan_audio_cmd",
    "scene_cuts",
    "scene_cuts_cmd",
    "soft_caption_args",
    "subtitles_filter",
    "tool",
    "transition_clip_frames",
    "transition_half_frames",
    "with_burned_captions",
]
