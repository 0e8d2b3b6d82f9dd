"""The FFmpeg module: builders are pure lists, probing is parsed JSON, failures are MediaErrors."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from kapsule import media
from kapsule.core.errors import MediaError


def test_parse_probe_of_mp3_with_cover_art() -> None:
    data = {
        "format": {"format_name": "mp3", "duration": "61.2", "size": "1000", "bit_rate": "320000"},
        "streams": [
            {"index": 0, "codec_type": "audio", "codec_name": "mp3", "sample_rate": "44100", "channels": 2},
            {
                "index": 1, "codec_type": "video", "codec_name": "mjpeg", "width": 500, "height": 500,
                "avg_frame_rate": "0/0", "disposition": {"attached_pic": 1},
            },
        ],
    }  # fmt: skip
    result = media.parse_probe(Path("x.mp3"), data)
    assert result.duration == pytest.approx(61.2)
    assert result.has_audio and result.audio[0].channels == 2
    assert result.video[0].attached_pic and result.real_video == ()
    assert result.video[0].frame_rate == Fraction(0)


def test_builders_are_argument_lists_without_a_shell(tmp_path: Path) -> None:
    cmd = media.raw_video_encode_cmd(
        tmp_path / "o.mp4", src_width=320, src_height=180, width=1280, height=720,
        fps=24, crf=20, preset="veryfast", frames=48,
    )  # fmt: skip
    assert cmd[0] == "ffmpeg"
    assert all(isinstance(part, str) for part in cmd)
    assert cmd[cmd.index("-frames:v") + 1] == "48"
    assert "scale=1280:720:flags=bicubic" in cmd
    assert media.decode_audio_cmd(Path("a b.wav"), 8000)[-1] == "pipe:1"


def test_encode_probe_and_decode_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    cmd = media.raw_video_encode_cmd(
        out, src_width=64, src_height=36, width=128, height=72, fps=24, crf=30, preset="ultrafast", frames=12
    )
    with media.RawVideoWriter(cmd) as writer:
        for i in range(12):
            writer.write(np.full((36, 64, 3), i * 20, dtype=np.uint8))
    info = media.probe(out)
    (video,) = info.video
    assert (video.codec, video.width, video.height, video.frame_rate, video.frames) == (
        "h264",
        128,
        72,
        24,
        12,
    )
    assert video.pix_fmt == "yuv420p"


def test_failures_carry_command_and_stderr(tmp_path: Path) -> None:
    bogus = tmp_path / "not-media.mp4"
    bogus.write_text("hello")
    with pytest.raises(MediaError) as info:
        media.probe(bogus)
    assert info.value.command[-1] == str(bogus)
    assert "Invalid data" in info.value.stderr


def test_the_package_reexports_every_public_name_of_its_modules() -> None:
    """Callers use ``media.x``; a builder added to a submodule but not to ``__init__`` would be missed."""
    import inspect

    from kapsule.media import commands, graphs, probing, process

    for module in (process, probing, commands, graphs):
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and getattr(value, "__module__", module.__name__) == module.__name__
            and not inspect.ismodule(value)
            and name not in {"annotations", "log"}
        }
        missing = sorted(public - set(media.__all__))
        assert missing == [], f"{module.__name__}: {missing}"
    assert all(getattr(media, name) is not None for name in media.__all__)


def test_parse_probe_reads_numbers_and_numeric_strings_and_nothing_else() -> None:
    data = {
        "format": {"format_name": "wav", "duration": "N/A", "size": 1234, "bit_rate": None},
        "streams": [
            {"index": "0", "codec_type": "audio", "codec_name": "pcm_s16le", "sample_rate": "48000",
             "channels": 2, "duration": 3.5, "bits_per_sample": [16]},
        ],
    }  # fmt: skip
    result = media.parse_probe(Path("x.wav"), data)
    assert (result.duration, result.size, result.bit_rate) == (None, 1234, None)
    (audio,) = result.audio
    assert (audio.index, audio.sample_rate, audio.channels, audio.duration) == (0, 48000, 2, 3.5)
    assert audio.bits_per_sample == 0  # a list is no number: the default, not a crash


def test_scan_audio_counts_and_peaks_a_stream_fed_in_pieces(tmp_path: Path) -> None:
    """A WAV fed in 1000-byte pieces (as an upload is streamed from storage): its length and peak."""
    import soundfile as sf

    rate, seconds = 16000, 3.0
    tone = 0.25 * np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate)
    path = tmp_path / "tone.wav"
    sf.write(path, np.stack([tone, tone], axis=1), rate, subtype="PCM_16")
    data = path.read_bytes()
    pieces = (data[i : i + 1000] for i in range(0, len(data), 1000))
    scan = media.scan_audio(pieces, sample_rate=8000, channels=2, max_seconds=10.0, timeout=60.0)
    assert scan.complete and scan.seconds == pytest.approx(seconds, abs=0.01)
    assert scan.peak == pytest.approx(0.25, abs=0.01)

    stopped = media.scan_audio(path, sample_rate=8000, channels=2, max_seconds=1.0, timeout=60.0)
    assert not stopped.complete and 1.0 < stopped.seconds <= 2.5


def test_a_streaming_command_that_fails_or_overruns_is_a_media_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(MediaError) as failed:
        media.scan_audio(junk, sample_rate=8000, channels=1, max_seconds=10.0, timeout=60.0)
    assert failed.value.stderr  # FFmpeg's own words, for the log
    endless = ["ffmpeg", "-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i", "anullsrc"]
    endless += ["-f", "s16le", "pipe:1"]
    with pytest.raises(MediaError, match="longer than 1 s"):
        media.run_streaming(endless, lambda _: True, timeout=1.0)
