"""Decode an audio stream to learn its true length and peak, never holding it and never past a limit.

A header can promise a minute while the frames hold hours (an 18 KB FLAC of constant frames decodes
to three hours), so the length that counts is the decoded one. ``scan_audio`` decodes at a low rate,
reads FFmpeg's output in 64 KiB pieces, keeps only a running sample count and peak, and stops FFmpeg
as soon as the count passes ``max_seconds``: its memory is a few pieces and FFmpeg's own (capped),
its time is bounded by the limit and a timeout. The input is a file, or bytes fed to FFmpeg's stdin
(an upload read from storage chunk by chunk, never stored whole).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kapsule.media.process import run_streaming

# FFmpeg's address space while it decodes for a check: enough for its libraries (~300 MB mapped) and
# any real decoder, far below what would hurt a server that runs it beside its own work.
SCAN_MEMORY_BYTES = 1024 * 1024 * 1024
SAMPLE_BYTES = 4  # float32


@dataclass(frozen=True)
class AudioScan:
    """What a bounded decode found: ``seconds`` decoded (when ``complete`` is False, at least that)."""

    seconds: float
    peak: float  # highest absolute sample of any channel, 0.0 for none
    samples: int  # per channel
    complete: bool  # False: decoding stopped at the limit, the stream is longer than ``max_seconds``


def scan_audio_cmd(source: Path | None, sample_rate: int, channels: int, max_seconds: float) -> list[str]:
    """Decode the first audio stream of ``source`` (None: stdin) to float32 PCM on stdout, stopping
    FFmpeg itself a second past ``max_seconds`` (the reader stops it sooner)."""
    args = ["ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", str(source) if source else "pipe:0"]
    args += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", str(channels), "-ar", str(sample_rate)]
    args += ["-t", f"{max_seconds + 1.0:.3f}", "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    return args


def scan_audio(
    source: Path | Iterable[bytes],
    *,
    sample_rate: int,
    channels: int,
    max_seconds: float,
    timeout: float,
) -> AudioScan:
    """Decode ``source`` (a file, or its bytes in order) at ``sample_rate`` with ``channels`` kept;
    ``MediaError`` if FFmpeg fails or takes longer than ``timeout``."""
    frame_bytes = SAMPLE_BYTES * channels
    limit = int(max_seconds * sample_rate) * frame_bytes
    seen = 0
    peak = 0.0
    pending = b""  # a float split across two pieces waits for its other bytes

    def consume(chunk: bytes) -> bool:
        nonlocal seen, peak, pending
        data = pending + chunk
        whole = len(data) - len(data) % SAMPLE_BYTES
        pending = data[whole:]
        if whole:
            peak = max(peak, float(np.max(np.abs(np.frombuffer(data[:whole], dtype="<f4")))))
        seen += whole
        return seen <= limit

    path = source if isinstance(source, Path) else None
    feed = None if isinstance(source, Path) else source
    complete = run_streaming(
        scan_audio_cmd(path, sample_rate, channels, max_seconds),
        consume,
        feed=feed,
        timeout=timeout,
        memory_bytes=SCAN_MEMORY_BYTES,
        what="decoding the audio",
    )
    complete = complete and seen <= limit
    samples = seen // frame_bytes
    return AudioScan(seconds=samples / sample_rate, peak=peak, samples=samples, complete=complete)
