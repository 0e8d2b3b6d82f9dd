"""Upload intake from a ranged read of the head: real files made by FFmpeg, real storage, no download."""

from __future__ import annotations

from pathlib import Path

import pytest

from kapsule import media
from kapsule.core.errors import AudioError
from kapsule.core.settings import Settings
from kapsule.infra.storage.local import LocalStorage
from kapsule.song import head as audio_head
from kapsule.song.head import HEAD_BYTES, inspect_song_head
from kapsule.song.probe import inspect_song
from tests.support.settings import replace


class RecordingStorage(LocalStorage):
    """The real local backend, remembering how many bytes each ranged read asked for."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.ranges: list[tuple[int, int]] = []

    def read_range(self, key: str, start: int, length: int) -> bytes:
        self.ranges.append((start, length))
        return super().read_range(key, start, length)

    def read_bytes(self, key: str) -> bytes:  # pragma: no cover - must not be used
        raise AssertionError("the whole object was read")

    def download_to(self, key: str, dest: Path) -> Path:  # pragma: no cover - must not be used
        raise AssertionError("the whole object was downloaded")


def _make(
    path: Path, seconds: float, *codec: str, source: str = "sine=frequency=440:sample_rate=44100"
) -> Path:
    media.run(
        ["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i", f"{source}:duration={seconds}", "-ac", "2",
         *codec, str(path)]
    )  # fmt: skip
    return path


@pytest.fixture
def store(tmp_path: Path) -> RecordingStorage:
    return RecordingStorage(f"file://{tmp_path / 'store'}")


def _put(store: RecordingStorage, path: Path) -> str:
    key = f"uploads/{path.name}"
    store.upload_from(path, key)
    return key


@pytest.mark.parametrize(
    ("name", "seconds", "codec", "exact"),
    [
        ("song.wav", 70.0, ("-c:a", "pcm_s16le"), True),  # 12 MB: the data chunk's size
        ("song.mp3", 280.0, ("-c:a", "libmp3lame", "-b:a", "128k"), True),  # Xing header
        ("cbr.mp3", 280.0, ("-c:a", "libmp3lame", "-b:a", "128k", "-write_xing", "0"), False),
        ("song.m4a", 280.0, ("-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"), True),
    ],
)
def test_the_length_comes_from_the_head_and_the_size(
    store: RecordingStorage,
    settings: Settings,
    tmp_path: Path,
    name: str,
    seconds: float,
    codec: tuple[str, ...],
    exact: bool,
) -> None:
    path = _make(tmp_path / name, seconds, *codec)
    assert path.stat().st_size > HEAD_BYTES, "the test needs a file larger than the head"
    head = inspect_song_head(store, _put(store, path), settings)
    assert store.ranges == [(0, HEAD_BYTES)], "one ranged read of the head, nothing else"
    assert head.duration == pytest.approx(seconds, abs=0.5 if exact else seconds * 0.02)
    assert head.duration_exact is exact
    assert head.size == path.stat().st_size and head.channels == 2 and head.sample_rate == 44100
    full = inspect_song(path, settings)
    assert (head.ext, head.content_type, head.codec) == (full.ext, full.content_type, full.codec)


def test_limits_and_truncation_are_refused_from_the_head(
    store: RecordingStorage, settings: Settings, tmp_path: Path
) -> None:
    long = _make(tmp_path / "long.wav", 70.0, "-c:a", "pcm_s16le")
    with pytest.raises(AudioError, match="long") as info:
        inspect_song_head(store, _put(store, long), settings.model_copy(update={"max_song_seconds": 60.0}))
    assert info.value.code == "too_long"

    cut = tmp_path / "cut.wav"
    cut.write_bytes(long.read_bytes()[: 8 * 1024 * 1024])  # an interrupted upload
    with pytest.raises(AudioError, match="cut short") as info:
        inspect_song_head(store, _put(store, cut), settings)
    assert info.value.code == "undecodable"

    text = tmp_path / "notes.txt"
    text.write_text("not a song\n" * 10)
    with pytest.raises(AudioError) as info:
        inspect_song_head(store, _put(store, text), settings)
    assert info.value.code in ("not_audio", "undecodable")


def test_an_index_at_the_end_is_read_whole_only_when_small(
    store: RecordingStorage, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An MP4 without 'fast start' keeps its index after the audio: the head alone cannot be probed."""
    noise = "anoisesrc=sample_rate=44100:color=white"
    # 170 s (noise: ~225 kb/s of AAC): a short file that is still bigger than the head (asserted below).
    late = _make(tmp_path / "late.m4a", 170.0, "-c:a", "aac", "-b:a", "320k", source=noise)
    size = late.stat().st_size
    assert size > HEAD_BYTES
    key = _put(store, late)
    head = inspect_song_head(store, key, settings)
    assert head.duration == pytest.approx(170.0, abs=0.5) and store.ranges == [(0, HEAD_BYTES), (0, size)]

    monkeypatch.setattr(audio_head, "WHOLE_FILE_LIMIT", HEAD_BYTES)
    with pytest.raises(AudioError, match="fast start"):
        inspect_song_head(store, key, settings)


def test_an_upload_is_judged_from_its_head_and_a_small_one_is_also_decoded(
    store: RecordingStorage, tmp_path: Path, settings: Settings
) -> None:
    """``StoredSong`` (the API's intake): a long upload from one ranged read of its head (a silent
    one passes here; the job's full decode refuses it), one that fits in the head decoded whole."""
    from kapsule.song.intake import StoredSong

    silence = "anullsrc=r=44100:cl=stereo"
    long_key = _put(store, _make(tmp_path / "long.wav", 70.0, "-c:a", "pcm_s16le", source=silence))
    facts = StoredSong(store, long_key, "long.wav").inspect(settings)
    assert (facts.ext, facts.content_type, round(facts.duration)) == ("wav", "audio/wav", 70)
    assert store.ranges == [(0, HEAD_BYTES)]

    store.ranges.clear()
    short_key = _put(store, _make(tmp_path / "short.wav", 6.0, "-c:a", "pcm_s16le", source=silence))
    with pytest.raises(AudioError) as refused:
        StoredSong(store, short_key, "short.wav").inspect(settings)
    assert refused.value.code == "silent"
    assert all(length <= HEAD_BYTES for _, length in store.ranges)


def test_an_upload_whose_header_lies_is_decoded_and_refused(
    store: RecordingStorage, tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 4.4 MB FLAC whose STREAMINFO says a minute and whose frames hold 600 hours: past the head, so
    the head alone would take its word; the upload is decoded, from a bounded temporary copy when it
    fits in ``WHOLE_FILE_LIMIT``, else streamed from storage (never a ranged read past the head)."""
    from kapsule.song import intake
    from kapsule.song.intake import StoredSong
    from tests.support.bombs import flac_bomb

    key = _put(store, flac_bomb(tmp_path / "bomb.flac", 4_400_000))
    assert inspect_song_head(store, key, settings).duration == pytest.approx(60.0)
    for limit in (audio_head.WHOLE_FILE_LIMIT, HEAD_BYTES):  # a temporary copy, then a stream
        monkeypatch.setattr(intake, "WHOLE_FILE_LIMIT", limit)
        store.ranges.clear()
        with pytest.raises(AudioError) as refused:
            StoredSong(store, key, "bomb.flac").inspect(settings)
        assert refused.value.code == "too_long" and "longer than 10:00" in refused.value.message
    assert store.ranges == [(0, HEAD_BYTES)], "streamed, not read into memory"


def test_a_streamed_upload_reports_its_decoded_length(
    store: RecordingStorage, tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kapsule.song import intake
    from kapsule.song.intake import StoredSong

    monkeypatch.setattr(intake, "WHOLE_FILE_LIMIT", 0)  # every upload past the head is streamed
    path = _make(tmp_path / "song.m4a", 280.0, "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart")
    assert path.stat().st_size > HEAD_BYTES
    facts = StoredSong(store, _put(store, path), "song.m4a").inspect(settings)
    assert (facts.ext, round(facts.duration)) == ("m4a", 280)
    with pytest.raises(AudioError) as refused:
        StoredSong(store, _put(store, path), "song.m4a").inspect(replace(settings, max_song_seconds=200))
    assert refused.value.code == "too_long"
