"""Song intake: every accepted kind of file is recognised for what it is, every bad one is refused
with its own code and a message that says what was found.

All files are real: one short tone-and-noise signal made with numpy, encoded by FFmpeg into each
container (once per session), then probed and decoded by ``inspect_song`` exactly as an upload is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kapsule import media
from kapsule.core.errors import AudioError
from kapsule.core.settings import Settings
from kapsule.song.probe import inspect_song, load_audio
from tests.support.settings import replace

SECONDS = 7.0
RATE = 44100
PEAK = 0.5  # -6 dBFS


def _ffmpeg(*args: str) -> None:
    media.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], timeout=120, what="making a test file")


def _signal(seconds: float, rate: int = RATE) -> np.ndarray:
    """A stereo tone (220 Hz + 660 Hz, pulsing twice a second) over quiet noise, peak -6 dBFS."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    tone = (np.sin(2 * np.pi * 220 * t) + 0.4 * np.sin(2 * np.pi * 660 * t)) * (
        0.6 + 0.4 * np.cos(2 * np.pi * 2 * t)
    )
    mono = tone + 0.05 * rng.standard_normal(t.size)
    mono *= PEAK / np.max(np.abs(mono))
    return np.stack([mono, mono], axis=1).astype(np.float32)


@dataclass(frozen=True)
class Expect:
    ext: str
    content_type: str
    codec: str
    channels: int
    sample_rate: int
    from_video: bool = False
    has_cover_art: bool = False


ACCEPTED: dict[str, Expect] = {
    "song.mp3": Expect("mp3", "audio/mpeg", "mp3", 2, 44100),
    "cover.mp3": Expect("mp3", "audio/mpeg", "mp3", 2, 44100, has_cover_art=True),
    "pcm16.wav": Expect("wav", "audio/wav", "pcm_s16le", 2, 44100),
    "pcm24-48k.wav": Expect("wav", "audio/wav", "pcm_s24le", 2, 48000),
    "surround-5.1.wav": Expect("wav", "audio/wav", "pcm_s16le", 6, 44100),
    "mono.wav": Expect("wav", "audio/wav", "pcm_s16le", 1, 44100),
    "song.flac": Expect("flac", "audio/flac", "flac", 2, 44100),
    "song.ogg": Expect("ogg", "audio/ogg", "vorbis", 2, 44100),
    "song.opus": Expect("opus", "audio/ogg; codecs=opus", "opus", 2, 48000),
    "song.m4a": Expect("m4a", "audio/mp4", "aac", 2, 44100),
    "clip.mp4": Expect("mp4", "video/mp4", "aac", 2, 44100, from_video=True),
    "wav-named.mp3": Expect("wav", "audio/wav", "pcm_s16le", 2, 44100),  # the name never decides
}


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test file, made once: the accepted kinds and the ones intake must refuse."""
    d = tmp_path_factory.mktemp("intake")
    base = d / "pcm16.wav"
    sf.write(base, _signal(SECONDS), RATE, subtype="PCM_16")
    src = str(base)

    _ffmpeg("-i", src, "-c:a", "libmp3lame", "-b:a", "96k", str(d / "song.mp3"))
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:duration=1", "-frames:v", "1", str(d / "cover.jpg"))
    _ffmpeg(
        "-i", str(d / "song.mp3"), "-i", str(d / "cover.jpg"), "-map", "0:a", "-map", "1:v", "-c", "copy",
        "-id3v2_version", "3", "-disposition:v", "attached_pic", str(d / "cover.mp3"),
    )  # fmt: skip
    _ffmpeg("-i", src, "-c:a", "pcm_s24le", "-ar", "48000", str(d / "pcm24-48k.wav"))
    _ffmpeg("-i", src, "-af", "pan=5.1|FL=c0|FR=c1|FC=c0|LFE=c1|BL=c0|BR=c1", str(d / "surround-5.1.wav"))
    _ffmpeg("-i", src, "-ac", "1", str(d / "mono.wav"))
    _ffmpeg("-i", src, "-c:a", "flac", str(d / "song.flac"))
    _ffmpeg("-i", src, "-c:a", "libvorbis", "-q:a", "2", str(d / "song.ogg"))
    _ffmpeg("-i", src, "-c:a", "libopus", "-b:a", "64k", str(d / "song.opus"))
    _ffmpeg("-i", src, "-c:a", "aac", "-b:a", "96k", str(d / "song.m4a"))
    _ffmpeg(
        "-f", "lavfi", "-i", f"testsrc=size=160x90:rate=10:duration={SECONDS}", "-i", src,
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(d / "clip.mp4"),
    )  # fmt: skip
    (d / "wav-named.mp3").write_bytes(base.read_bytes())

    # --- files to refuse
    (d / "bad").mkdir()
    bad = d / "bad"
    (bad / "text.mp3").write_text("These are the lyrics of my song, not the song itself.\n" * 20)
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:duration=1", "-frames:v", "1", "-f", "image2",
            "-c:v", "png", str(bad / "image.wav"))  # fmt: skip
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x90:rate=10:duration=6", "-c:v", "libx264",
            "-preset", "ultrafast", str(bad / "silent-video.mp4"))  # fmt: skip
    wav = base.read_bytes()
    (bad / "cut.wav").write_bytes(wav[: len(wav) // 2 + 1])  # mid-sample: FFmpeg also sees a bad packet
    (bad / "cut-on-sample.wav").write_bytes(wav[: 44 + 4 * RATE * 4])  # 4 s of whole frames: decodes cleanly
    mp3 = (d / "song.mp3").read_bytes()
    (bad / "cut.mp3").write_bytes(mp3[: len(mp3) // 2])
    flac = (d / "song.flac").read_bytes()
    (bad / "cut.flac").write_bytes(flac[: len(flac) // 2])
    (bad / "empty.mp3").write_bytes(b"")
    sf.write(bad / "silence.wav", np.zeros((int(6 * RATE), 2), np.float32), RATE, subtype="PCM_16")
    sf.write(bad / "short.wav", _signal(3.0), RATE, subtype="PCM_16")
    # An hour of silence: refused as too long from its header alone, never decoded (else "silent").
    _ffmpeg(
        "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "3600", "-c:a", "flac", str(bad / "hour.flac")
    )
    return d


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_file_is_recognised(media_dir: Path, settings: Settings, name: str) -> None:
    expect = ACCEPTED[name]
    info = inspect_song(media_dir / name, settings)
    assert (info.ext, info.content_type, info.codec) == (expect.ext, expect.content_type, expect.codec)
    assert (info.channels, info.sample_rate) == (expect.channels, expect.sample_rate)
    assert (info.from_video, info.has_cover_art) == (expect.from_video, expect.has_cover_art)
    assert info.duration == pytest.approx(SECONDS, abs=0.1)
    assert -12.0 < info.peak_dbfs < -3.0  # the -6 dBFS signal, give or take the mono mixdown


REFUSED = {
    "text.mp3": ("not_audio", ["text file", "not audio", "MP3, WAV"]),
    "image.wav": ("not_audio", ["PNG image", "not audio"]),
    "silent-video.mp4": ("not_audio", ["video (H.264, 160×90", "no sound track"]),
    "cut.wav": ("undecodable", ["cut short", "promises 7.0 s", "only 3.5 s"]),
    "cut-on-sample.wav": ("undecodable", ["cut short", "promises 7.0 s", "only 4.0 s"]),
    "cut.mp3": ("undecodable", ["cut short", "7.0 s", "3.5 s could be decoded"]),
    "cut.flac": ("undecodable", ["could not be decoded", "damaged or incomplete"]),
    "empty.mp3": ("undecodable", ["empty (0 bytes)"]),
    "silence.wav": ("silent", ["silent", "only digital silence", "-60 dBFS"]),
    "short.wav": ("too_short", ["The song is 3.0 s long; Kapsule needs at least 5 s."]),
    "hour.flac": ("too_long", ["60:00 long (3600 s)", "up to 10:00 (600 s)"]),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_bad_file_is_refused_with_a_precise_reason(media_dir: Path, settings: Settings, name: str) -> None:
    code, phrases = REFUSED[name]
    with pytest.raises(AudioError) as caught:
        inspect_song(media_dir / "bad" / name, settings)
    assert caught.value.code == code
    for phrase in phrases:
        assert phrase in caught.value.message
    assert "Traceback" not in caught.value.message and "0x" not in caught.value.message


def test_too_long_follows_the_configured_limit(media_dir: Path, settings: Settings) -> None:
    song = media_dir / "song.flac"
    assert inspect_song(song, settings).duration == pytest.approx(SECONDS, abs=0.1)  # default limit: 600 s
    with pytest.raises(AudioError) as caught:
        inspect_song(song, replace(settings, max_song_seconds=6))
    assert caught.value.code == "too_long"
    assert "0:07 long (7 s)" in caught.value.message and "up to 0:06 (6 s)" in caught.value.message


@pytest.mark.parametrize("stated", [60.0, 0.0], ids=["header-says-a-minute", "header-says-unknown"])
def test_a_flac_bomb_stops_decoding_at_the_limit(tmp_path: Path, settings: Settings, stated: float) -> None:
    """An 18 KB FLAC of constant frames decodes to ~3 h: the decode stops past 10 min, in well under
    the time three hours would take, and says so without claiming a length it never measured."""
    import time

    from tests.support.bombs import decoded_seconds, flac_bomb

    bomb = flac_bomb(tmp_path / "bomb.flac", 18 * 1024, stated_seconds=stated)
    assert decoded_seconds(bomb) > 2 * 3600
    started = time.monotonic()
    with pytest.raises(AudioError) as caught:
        inspect_song(bomb, settings)
    assert caught.value.code == "too_long"
    assert caught.value.message.startswith("The song is longer than 10:00 (600 s), the longest Kapsule")
    assert time.monotonic() - started < 20.0


def test_limits_can_come_from_a_settings_object(media_dir: Path) -> None:
    strict = Settings(min_song_seconds=10.0, silence_dbfs=-3.0)
    with pytest.raises(AudioError) as short:
        inspect_song(media_dir / "song.ogg", strict)
    assert short.value.code == "too_short" and "needs at least 10 s" in short.value.message
    with pytest.raises(AudioError) as quiet:
        inspect_song(media_dir / "song.ogg", Settings(silence_dbfs=-3.0))
    assert quiet.value.code == "silent"
    assert "nothing louder than -" in quiet.value.message and "peak above -3 dBFS" in quiet.value.message


def test_missing_file_is_refused(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(AudioError) as caught:
        inspect_song(tmp_path / "nowhere.mp3", settings)
    assert caught.value.code == "undecodable" and "nowhere.mp3" in caught.value.message


def test_load_audio_is_mono_float32_at_the_asked_rate(media_dir: Path) -> None:
    for name in ("surround-5.1.wav", "clip.mp4", "song.opus"):
        samples = load_audio(media_dir / name, sample_rate=16000)
        assert samples.dtype == np.float32 and samples.ndim == 1
        assert samples.size / 16000 == pytest.approx(SECONDS, abs=0.1)
        assert 0.2 < float(np.max(np.abs(samples))) <= 1.0


def test_load_audio_wraps_ffmpeg_failures(media_dir: Path) -> None:
    with pytest.raises(AudioError) as caught:
        load_audio(media_dir / "bad" / "text.mp3")
    assert caught.value.code == "undecodable"
