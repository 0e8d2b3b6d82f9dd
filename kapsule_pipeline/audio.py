"""The song: intake (probe, validate, decode) and analysis (tempo, beats, downbeats, sections, energy).

Intake answers one question before any money or minutes are spent: can this file be a song for a
music video? Every refusal is an ``AudioError`` whose ``code`` is one of ``not_audio``,
``undecodable``, ``silent``, ``too_short`` or ``too_long`` and whose message says what was found and
what Kapsule accepts. All FFmpeg work goes through ``kapsule_pipeline.media`` (``probe`` and
``decode_audio``); the only bytes read here directly are a file's first few kilobytes, to name what a
non-audio file is and to spot headers that promise more audio than the file holds.

Analysis turns mono samples into ``models.Analysis`` with librosa: an onset envelope drives the beat
tracker, the bar phase and meter come from where the low-frequency hits and chord changes fall, and
sections come from novelty on a bar-level self-similarity matrix, labelled from repetition and
energy.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

# WHY: librosa's beat tracker and peak pickers are numba functions compiled with ``cache=True``. By
# default numba caches beside the installed package, which is read-only in container images, so
# every fresh process (each notebook kernel, each Cloud Run task) would compile them again: ~25 s on
# a 2-core machine, against ~3 s once cached. Numba reads NUMBA_CACHE_DIR once, when it is first
# imported, hence this line before ``import librosa``; a value already set wins, and a folder numba
# cannot write only means no caching, never a failure. The one place the library touches the
# environment.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(".kapsule/numba-cache").resolve()))

import itertools
import math
import re

import librosa
import numpy as np
import scipy.ndimage
from pydantic import BaseModel

from kapsule_pipeline import media
from kapsule_pipeline.errors import AudioError, MediaError
from kapsule_pipeline.models import Analysis, EnergyCurve, Section
from kapsule_pipeline.settings import Settings, get_settings

ACCEPTED = "MP3, WAV, FLAC, OGG (Vorbis or Opus), M4A/AAC, AIFF, or a video (MP4, MOV, MKV, WebM) with sound"

# The validation decode: 8 kHz float32 is 32 kB per second per channel (a 10-minute stereo song is
# 38 MB, 5.1 is 115 MB, a second or two of FFmpeg time), yet it exposes every decode error and the
# true length. Channels are kept, not mixed down: a 5.1 downmix can peak above 0 dBFS and a stereo
# one cancels out-of-phase content, and either would mislead the peak and silence checks.
CHECK_RATE = 8000
# A decode this much shorter than the header promised means the file was cut off.
TRUNCATION_TOLERANCE_S = 0.5
TRUNCATION_TOLERANCE_FRACTION = 0.02
SNIFF_BYTES = 4096


class SongInfo(BaseModel):
    """What intake learned about an accepted song (the upload is stored as ``song.{ext}``)."""

    format_name: str
    codec: str
    duration: float  # seconds of decodable audio
    sample_rate: int
    channels: int
    ext: str  # chosen by us from the probed container and codec, never from the file name
    content_type: str
    peak_dbfs: float  # highest sample of any channel, measured on the 8 kHz validation decode
    has_cover_art: bool
    from_video: bool


# ------------------------------------------------------------------------------------------- intake


def inspect_song(path: Path, settings: Settings | None = None) -> SongInfo:
    """Probe and fully decode ``path`` (cheaply), returning its facts or raising ``AudioError``."""
    settings = settings or get_settings()
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"There is no song file at {path.name!r}.", code="undecodable")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(
            f"The file is empty (0 bytes), so there is no song in it. Accepted: {ACCEPTED}.",
            code="undecodable",
        )
    head = _read_head(path)

    try:
        probed = media.probe(path)
    except MediaError as exc:
        kind = _sniff_non_media(head)
        if kind:
            raise AudioError(
                f"This file is {kind}, not audio. Kapsule needs a song: {ACCEPTED}.", code="not_audio"
            ) from exc
        raise AudioError(
            f"This file could not be read as audio or video (ffprobe: {_reason(exc)}). It may be damaged, "
            f"or in a format Kapsule does not know. Accepted: {ACCEPTED}.",
            code="undecodable",
        ) from exc

    if not probed.has_audio:
        raise AudioError(_no_audio_message(probed, head), code="not_audio")
    stream = probed.audio[0]
    ext, content_type = _container(probed, head)

    if probed.format_name == "wav":
        _check_wav_complete(path, head, size, stream)

    promised = stream.duration if stream.duration is not None else probed.duration
    if promised is not None and promised > settings.max_song_seconds:
        raise AudioError(_too_long_message(promised, settings), code="too_long")
    if promised is not None and promised < settings.min_song_seconds:
        raise AudioError(_too_short_message(promised, settings), code="too_short")

    try:
        samples = media.decode_audio(
            path, sample_rate=CHECK_RATE, mono=stream.channels <= 1, timeout=settings.ffmpeg_timeout_s
        )
    except MediaError as exc:
        raise AudioError(
            f"The audio could not be decoded: FFmpeg stopped with {_reason(exc)}. The file is probably "
            "damaged or incomplete; export it again (MP3, WAV or FLAC are safest) and retry.",
            code="undecodable",
        ) from exc
    decoded = samples.size / max(stream.channels, 1) / CHECK_RATE  # interleaved frames
    if samples.size == 0:
        raise AudioError(
            f"The file has a {stream.codec} audio stream but not one sample of it could be decoded. "
            f"Accepted: {ACCEPTED}.",
            code="undecodable",
        )

    expected = _trustworthy_duration(probed, head, path)
    if expected is not None and decoded < expected - max(
        TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * expected
    ):
        raise AudioError(
            f"The file is cut short: its header promises {expected:.1f} s of audio but only {decoded:.1f} s "
            "could be decoded. Was the upload or export interrupted? Please upload the complete file.",
            code="undecodable",
        )

    peak = float(np.max(np.abs(samples)))
    peak_dbfs = 20.0 * math.log10(peak) if peak > 1e-10 else -200.0
    if peak_dbfs < settings.silence_dbfs:
        found = "only digital silence" if peak <= 1e-10 else f"nothing louder than {peak_dbfs:.1f} dBFS"
        raise AudioError(
            f"The song is silent: its {decoded:.1f} s contain {found}, and Kapsule needs a peak above "
            f"{settings.silence_dbfs:.0f} dBFS to hear any music. Check that the right file was exported.",
            code="silent",
        )
    if decoded > settings.max_song_seconds:
        raise AudioError(_too_long_message(decoded, settings), code="too_long")
    if decoded < settings.min_song_seconds:
        raise AudioError(_too_short_message(decoded, settings), code="too_short")

    return SongInfo(
        format_name=probed.format_name,
        codec=stream.codec,
        duration=round(decoded, 3),
        sample_rate=stream.sample_rate,
        channels=stream.channels,
        ext=ext,
        content_type=content_type,
        peak_dbfs=round(peak_dbfs, 2),
        has_cover_art=any(v.attached_pic for v in probed.video),
        from_video=bool(probed.real_video),
    )


def load_audio(path: Path, sample_rate: int = 22050) -> np.ndarray:
    """The song's first audio stream as mono float32 in [-1, 1] at ``sample_rate`` (for analysis)."""
    try:
        samples = media.decode_audio(Path(path), sample_rate=sample_rate, mono=True)
    except MediaError as exc:
        raise AudioError(
            f"The audio could not be decoded: FFmpeg stopped with {_reason(exc)}.", code="undecodable"
        ) from exc
    if samples.size == 0:
        raise AudioError("The file holds no decodable audio samples.", code="undecodable")
    peak = float(np.max(np.abs(samples)))
    if peak > 1.0:  # FFmpeg's 5.1-to-mono mix sums channels and can exceed full scale
        samples = samples / np.float32(peak)
    return samples


def _reason(exc: MediaError) -> str:
    """FFmpeg's last stderr line, quoted, or the MediaError's own summary."""
    lines = [line.strip() for line in exc.stderr.strip().splitlines() if line.strip()]
    text = lines[-1] if lines else exc.message
    text = re.sub(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*", "", text)  # "[mp3 @ 0x55…] " adds nothing for a human
    text = text.replace(str(exc.command[-1]) if exc.command else "\0", "the file")
    return f'"{text[:160]}"'


def _format_time(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _too_long_message(seconds: float, settings: Settings) -> str:
    limit = settings.max_song_seconds
    return (
        f"The song is {_format_time(seconds)} long ({seconds:.0f} s); Kapsule accepts songs up to "
        f"{_format_time(limit)} ({limit:.0f} s). Trim it and upload it again."
    )


def _too_short_message(seconds: float, settings: Settings) -> str:
    return f"The song is {seconds:.1f} s long; Kapsule needs at least {settings.min_song_seconds:g} s."


# ------------------------------------------------------------------------- what is this file, really

_IMAGE_CODECS = {
    "png": "a PNG image",
    "mjpeg": "a JPEG image",
    "jpeg2000": "a JPEG 2000 image",
    "gif": "a GIF image",
    "webp": "a WebP image",
    "bmp": "a BMP image",
    "tiff": "a TIFF image",
    "svg": "an SVG image",
    "ico": "an icon image",
}

_MAGIC = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
)


_VIDEO_CODECS = {
    "h264": "H.264",
    "hevc": "H.265",
    "vp8": "VP8",
    "vp9": "VP9",
    "av1": "AV1",
    "mpeg4": "MPEG-4",
}


def _codec_name(codec: str) -> str:
    return _VIDEO_CODECS.get(codec, codec)


def _read_head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(SNIFF_BYTES)


def _sniff_non_media(head: bytes) -> str | None:
    """Name a file ffprobe could not open, when its first bytes say what it is (else None)."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if b"\0" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut by the 4 KB window is still text
            return None
        text = head[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    if text and printable / len(text) > 0.95:
        start = text.lstrip().lower()
        if start.startswith(("<!doctype html", "<html")):
            return "a web page (HTML text)"
        return "a text file"
    return None


def _no_audio_message(probed: media.ProbeResult, head: bytes) -> str:
    """Say what a file without an audio stream is: an image, a silent video, or something else."""
    videos = probed.video
    if videos:
        first = videos[0]
        single_frame = probed.format_name.endswith("_pipe") or probed.format_name in {"image2", "gif", "webp"}
        if first.codec in _IMAGE_CODECS and (single_frame or (first.frames or 0) <= 1):
            return f"This file is {_IMAGE_CODECS[first.codec]}, not audio. Kapsule needs a song: {ACCEPTED}."
        if first.codec == "ansi" or probed.format_name == "tty":
            return f"This file is a text file, not audio. Kapsule needs a song: {ACCEPTED}."
        length = f", {probed.duration:.1f} s" if probed.duration else ""
        what = f"{_codec_name(first.codec)}, {first.width}×{first.height}{length}"
        return (
            f"This file is a video ({what}) with no sound track, so there is no song to use. "
            f"Upload a video that has sound, or the song itself: {ACCEPTED}."
        )
    kind = _sniff_non_media(head)
    if kind:
        return f"This file is {kind}, not audio. Kapsule needs a song: {ACCEPTED}."
    return f"This {probed.format_name or 'file'} file has no audio stream. Kapsule needs a song: {ACCEPTED}."


def _container(probed: media.ProbeResult, head: bytes) -> tuple[str, str]:
    """(extension, content type) chosen from what ffprobe found, never from the uploaded name."""
    fmt = probed.format_name
    codec = probed.audio[0].codec
    video = bool(probed.real_video)
    if fmt == "mp3":
        return "mp3", "audio/mpeg"
    if fmt == "wav":
        return "wav", "audio/wav"
    if fmt == "flac":
        return "flac", "audio/flac"
    if fmt == "aiff":
        return "aiff", "audio/aiff"
    if fmt == "aac":
        return "aac", "audio/aac"
    if fmt == "ogg":
        return ("opus", "audio/ogg; codecs=opus") if codec == "opus" else ("ogg", "audio/ogg")
    if fmt.startswith("mov,mp4"):
        if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] == b"qt  ":
            return "mov", "video/quicktime" if video else "audio/quicktime"
        return ("mp4", "video/mp4") if video else ("m4a", "audio/mp4")
    if fmt.startswith("matroska"):
        if b"webm" in head[:64]:  # the EBML DocType
            return "webm", "video/webm" if video else "audio/webm"
        return "mkv", "video/x-matroska" if video else "audio/x-matroska"
    raise AudioError(
        f"This is a {fmt} file with a {codec} audio stream; Kapsule does not take that container. "
        f"Convert it to one of: {ACCEPTED}.",
        code="not_audio",
    )


# -------------------------------------------------------------------------------- truncation checks


def _trustworthy_duration(probed: media.ProbeResult, head: bytes, path: Path) -> float | None:
    """The length the file's headers promise, when they state it rather than guess it from the size.

    FLAC (STREAMINFO), Ogg (last granule), MP4/MOV (sample tables) and MP3 with a Xing/Info/VBRI
    header state it; raw ADTS AAC and header-less MP3 are estimated from the bitrate, and a WAV's
    size-derived length always matches what is left, so those are checked in other ways. Matroska
    gives only the container's length, which a longer video track can stretch.
    """
    fmt = probed.format_name
    stream = probed.audio[0]
    if fmt in {"aac", "wav"}:
        return None
    if fmt == "mp3" and not _mp3_has_length_header(path, head):
        return None
    if stream.duration is not None:
        return stream.duration
    if probed.real_video:
        return None
    return probed.duration


def _mp3_has_length_header(path: Path, head: bytes) -> bool:
    """True if the first MP3 frame carries a Xing, Info or VBRI header (it states the frame count)."""
    offset = 0
    if head[:3] == b"ID3" and len(head) >= 10:
        tag_size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
        offset = 10 + tag_size + (10 if head[5] & 0x10 else 0)
    with path.open("rb") as handle:
        handle.seek(offset)
        block = handle.read(SNIFF_BYTES)
    sync = next((i for i in range(len(block) - 1) if block[i] == 0xFF and block[i + 1] & 0xE0 == 0xE0), None)
    if sync is None:
        return False
    frame_start = block[sync : sync + 200]
    return any(tag in frame_start for tag in (b"Xing", b"Info", b"VBRI"))


def _check_wav_complete(path: Path, head: bytes, size: int, stream: media.AudioStream) -> None:
    """Refuse a WAV whose RIFF header promises more sample data than the file holds.

    A WAV cut on a sample boundary decodes without a single FFmpeg error and ffprobe derives its
    length from the file size, so only the ``data`` chunk's declared size betrays it.
    """
    declared, available = _wav_data_sizes(path, head, size)
    if declared <= available:
        return
    bytes_per_second = stream.sample_rate * stream.channels * max(stream.bits_per_sample, 8) / 8
    if bytes_per_second > 0:
        promised, held = declared / bytes_per_second, available / bytes_per_second
        found = f"promises {promised:.1f} s of audio but holds only {held:.1f} s"
    else:
        found = f"promises {declared:,} bytes of audio but holds only {available:,}"
    raise AudioError(
        f"This WAV file is cut short: its header {found}. Was the upload or export interrupted? "
        "Please upload the complete file.",
        code="undecodable",
    )


def _wav_data_sizes(path: Path, head: bytes, size: int) -> tuple[int, int]:
    """(bytes the ``data`` chunk declares, bytes actually present); (0, 0) when unknown."""
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0, 0  # RF64 / RIFX / odd files: rely on the decoder
    offset = 12
    with path.open("rb") as handle:
        for _ in range(64):
            handle.seek(offset)
            header = handle.read(8)
            if len(header) < 8:
                return 0, 0
            chunk_id, chunk_size = header[:4], int.from_bytes(header[4:], "little")
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):  # streamed WAVs leave the size unset
                    return 0, 0
                return chunk_size, size - offset - 8
            offset += 8 + chunk_size + (chunk_size & 1)
    return 0, 0


# ----------------------------------------------------------------------------------------- analysis

ANALYSIS_RATE = 22050
HOP = 512  # 23 ms frames at 22050 Hz: fine enough for beats, coarse enough to stay fast
N_FFT = 2048
ENERGY_RATE = 10  # energy curve values per second
LOW_HZ = 150.0  # kick and bass live below this; downbeats tend to carry them
SILENCE_BELOW_PEAK_DB = 50.0  # frames this far under the song's loudest are "silence" (no beats there)
SILENCE_FLOOR_DB = -70.0  # and so is anything below this RMS level, however quiet the song
# Sections are found on a bar grid; their scales are set in seconds so slow and fast songs match.
NOVELTY_HALF_WIDTH_S = 8.0  # the checkerboard kernel compares ~8 s before a bar line with ~8 s after
MIN_SECTION_S = 6.0  # no section (but the last) shorter than this; real sections rarely are
NOVELTY_FLOOR_STD = 0.25  # a boundary's novelty must beat the mean by this many standard deviations
# Chroma, MFCC and loudness in the bar features. Loudness counts double: chords change every bar
# inside a section, while a chorus is louder and fuller than a verse for its whole length.
FEATURE_WEIGHTS = (1.0, 1.0, 2.0)
SILENCE_LABEL = "silence"  # a silent lead-in of a second or more is a section of its own


def analyze_song(path: Path) -> Analysis:
    """Load the song at 22050 Hz mono and analyse it."""
    return analyze_samples(load_audio(path, ANALYSIS_RATE), ANALYSIS_RATE)


def analyze_samples(y: np.ndarray, sr: int) -> Analysis:
    """Tempo, beats, downbeats, sections and energy of mono samples ``y`` at rate ``sr``."""
    y = np.ascontiguousarray(np.asarray(y, dtype=np.float32).reshape(-1))
    duration = y.size / sr
    if y.size < N_FFT:
        raise AudioError(f"The song is {duration:.2f} s long; there is nothing to analyse.", code="too_short")
    spectrum = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    power = spectrum**2
    frames = spectrum.shape[1]
    times = librosa.frames_to_time(np.arange(frames), sr=sr, hop_length=HOP)

    rms_db = librosa.amplitude_to_db(librosa.feature.rms(S=spectrum, frame_length=N_FFT)[0], ref=1.0)
    sounding = rms_db > max(float(rms_db.max()) - SILENCE_BELOW_PEAK_DB, SILENCE_FLOOR_DB)

    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=96, fmax=sr / 2)
    mel_db = librosa.power_to_db(mel, ref=np.max)
    # center=False: our STFT frames are already centred on their times; librosa's default would shift
    # the envelope by another n_fft/2 and every beat would land ~45 ms late.
    onset = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=HOP, center=False)
    low_bands = librosa.mel_frequencies(n_mels=96, fmax=sr / 2) < LOW_HZ
    low_onset = librosa.onset.onset_strength(S=mel_db[low_bands], sr=sr, hop_length=HOP, center=False)

    beat_frames, tempo = _beats(onset, sounding, sr)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, hop_length=HOP, tuning=0.0)
    beats_per_bar, phase = _bar_phase(beat_frames, onset, low_onset, chroma)
    downbeat_frames = beat_frames[phase::beats_per_bar] if beat_frames.size else beat_frames

    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=13)
    music_start = float(times[np.argmax(sounding)]) if sounding.any() else 0.0
    sections = _sections(downbeat_frames, chroma, mfcc, rms_db, times, duration, music_start)

    return Analysis(
        duration=round(duration, 4),
        tempo=round(tempo, 3),
        beats=[round(t, 4) for t in _refine(beat_frames, onset, sr)],
        downbeats=[round(t, 4) for t in _refine(downbeat_frames, onset, sr)],
        sections=sections,
        energy=_energy_curve(y, sr),
        beats_per_bar=beats_per_bar,
        sample_rate=sr,
    )


def _around(env: np.ndarray, frames: np.ndarray, before: int = 1, after: int = 2) -> np.ndarray:
    """The largest value of ``env`` near each frame (beats land within a frame or two of the hit)."""
    padded = np.pad(env, (before, after))
    windows = np.lib.stride_tricks.sliding_window_view(padded, before + after + 1)
    return windows[frames].max(axis=1)


def _beats(onset: np.ndarray, sounding: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """Beat frames from librosa's dynamic-programming tracker, minus any placed in silence."""
    _, frames = librosa.beat.beat_track(
        onset_envelope=onset, sr=sr, hop_length=HOP, trim=False, units="frames"
    )
    frames = np.asarray(frames, dtype=int)
    if frames.size:
        # The tracker keeps its grid running through a long silent intro or break; nothing beats there.
        near_sound = scipy.ndimage.maximum_filter1d(sounding.astype(np.uint8), size=9) > 0
        frames = frames[near_sound[frames]]
    if frames.size < 4 and sounding.any():
        return _steady_grid(onset, sounding, sr)
    if frames.size < 2:
        return frames, 0.0
    return frames, _tempo(_refine(frames, onset, sr))


def _steady_grid(onset: np.ndarray, sounding: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """Beats for music with no pulse the tracker can follow (a drone, a pad): an even grid at the
    tempo estimate over the sounding part, so the storyboard still has places to cut."""
    tempo = float(librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=HOP)[0]) or 120.0
    step = 60.0 / tempo * sr / HOP
    first, last = int(np.argmax(sounding)), int(sounding.size - 1 - np.argmax(sounding[::-1]))
    frames = np.round(np.arange(first, last + 1, step)).astype(int)
    return frames, tempo


def _tempo(beat_times: np.ndarray) -> float:
    """BPM from the mean of the regular beat intervals (not the median: frame rounding would bias it)."""
    intervals = np.diff(beat_times)
    typical = float(np.median(intervals))
    regular = intervals[np.abs(intervals - typical) < 0.25 * typical]
    return 60.0 / float(regular.mean()) if regular.size else 60.0 / typical


def _refine(frames: np.ndarray, onset: np.ndarray, sr: int) -> np.ndarray:
    """Frame indices to seconds, moved to the onset peak between frames (parabolic interpolation)."""
    if frames.size == 0:
        return np.zeros(0)
    padded = np.pad(onset, 1, mode="edge")
    a, b, c = padded[frames], padded[frames + 1], padded[frames + 2]
    curvature = a - 2 * b + c
    is_peak = (b >= a) & (b >= c) & (curvature < 0)
    shift = np.zeros(frames.size)
    shift[is_peak] = np.clip(0.5 * (a - c)[is_peak] / curvature[is_peak], -0.5, 0.5)
    return (frames + shift) * HOP / sr


def _interval_means(
    data: np.ndarray, starts: np.ndarray, aggregate: Callable[..., np.ndarray] = np.mean
) -> np.ndarray:
    """One column per interval [starts[k], starts[k+1]) (the last runs to the end) of ``data``."""
    ends = np.append(starts[1:], data.shape[1])
    return np.stack(
        [aggregate(data[:, a : max(b, a + 1)], axis=1) for a, b in zip(starts, ends, strict=True)], axis=1
    )


def _zscore(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / spread if spread > 1e-9 else np.zeros_like(values)


def _bar_phase(
    beat_frames: np.ndarray, onset: np.ndarray, low_onset: np.ndarray, chroma: np.ndarray
) -> tuple[int, int]:
    """(beats per bar, index of the first downbeat among the beats).

    Each beat gets an accent: its low-frequency hit (kick, bass), its overall onset, and how much the
    harmony changes there (chords change on the one). Every meter (4, then 3) and phase is scored by
    how much more accented its would-be downbeats are than the other beats; 3/4 must clearly win.
    """
    if beat_frames.size < 8:
        return 4, 0
    beat_chroma = _interval_means(chroma, beat_frames, np.median)
    lead_in = chroma[:, : beat_frames[0]] if beat_frames[0] > 0 else chroma[:, :1]
    beat_chroma = np.hstack([np.median(lead_in, axis=1, keepdims=True), beat_chroma])  # [before, beat0, …]
    beat_chroma = beat_chroma / (np.linalg.norm(beat_chroma, axis=0, keepdims=True) + 1e-9)
    change = 1.0 - np.sum(beat_chroma[:, :-1] * beat_chroma[:, 1:], axis=0)  # before vs after each beat
    accent = (
        _zscore(_around(low_onset, beat_frames))
        + 0.5 * _zscore(_around(onset, beat_frames))
        + _zscore(change)
    )

    def best(meter: int) -> tuple[float, int]:
        scores = []
        for phase in range(meter):
            mask = np.zeros(accent.size, dtype=bool)
            mask[phase::meter] = True
            scores.append(float(accent[mask].mean() - accent[~mask].mean()))
        return max(scores), int(np.argmax(scores))

    score4, phase4 = best(4)
    score3, phase3 = best(3)
    if score3 > 0 and score3 > 1.25 * max(score4, 0.0):
        return 3, phase3
    return 4, phase4


def _energy_curve(y: np.ndarray, sr: int) -> EnergyCurve:
    """RMS loudness in 0.1 s blocks, lightly smoothed, scaled so the loud parts of the song are 1."""
    block = max(1, sr // ENERGY_RATE)
    count = math.ceil(y.size / block)
    padded = np.zeros(count * block, dtype=np.float64)
    padded[: y.size] = y
    rms = np.sqrt(np.mean(padded.reshape(count, block) ** 2, axis=1))
    if count >= 3:
        rms = np.convolve(np.pad(rms, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    reference = float(np.percentile(rms, 99)) if count else 0.0
    values = np.clip(rms / reference, 0.0, 1.0) if reference > 0 else np.zeros(count)
    times = (np.arange(count) + 0.5) * block / sr
    return EnergyCurve(times=[round(float(t), 3) for t in times], values=[round(float(v), 4) for v in values])


def _sections(
    downbeat_frames: np.ndarray,
    chroma: np.ndarray,
    mfcc: np.ndarray,
    rms_db: np.ndarray,
    times: np.ndarray,
    duration: float,
    music_start: float,
) -> list[Section]:
    """Contiguous sections covering [0, duration], boundaries on downbeats, labelled by repetition.

    A silent stretch of a second or more before the music gets its own ``silence`` section, so the
    intro starts where the sound does.
    """
    sections = (
        [Section(start=0.0, end=round(music_start, 4), label=SILENCE_LABEL)] if music_start >= 1.0 else []
    )
    begin = sections[0].end if sections else 0.0
    bar_starts = downbeat_frames
    bar_seconds = float(np.median(np.diff(times[bar_starts]))) if bar_starts.size > 1 else duration
    min_bars = max(2, round(MIN_SECTION_S / bar_seconds))
    if bar_starts.size < 2 * min_bars or duration - begin < 2 * MIN_SECTION_S:
        return [*sections, Section(start=begin, end=round(duration, 4), label="verse")]
    features = _bar_features(bar_starts, chroma, mfcc, rms_db)
    cuts = _boundaries(_similarity(features), max(2, round(NOVELTY_HALF_WIDTH_S / bar_seconds)), min_bars)
    edges = [0, *cuts, bar_starts.size]
    spans = list(itertools.pairwise(edges))
    labels = _labels(spans, features, _interval_means(rms_db[None, :], bar_starts)[0])

    for k, ((first, _), label) in enumerate(zip(spans, labels, strict=True)):
        start = begin if k == 0 else round(float(times[bar_starts[first]]), 4)
        if k > 0 and sections[-1].label == label:
            continue  # two adjacent parts that sound alike are one section
        if sections:
            sections[-1].end = start
        sections.append(Section(start=start, end=round(duration, 4), label=label))
    return sections


def _bar_features(
    bar_starts: np.ndarray, chroma: np.ndarray, mfcc: np.ndarray, rms_db: np.ndarray
) -> np.ndarray:
    """One row per bar: harmony (chroma), timbre (MFCC) and loudness, weighted by FEATURE_WEIGHTS."""
    bar_chroma = _interval_means(chroma, bar_starts)
    bar_chroma = bar_chroma / (np.linalg.norm(bar_chroma, axis=0, keepdims=True) + 1e-9)
    bar_mfcc = _interval_means(mfcc, bar_starts)
    bar_mfcc = (bar_mfcc - bar_mfcc.mean(axis=1, keepdims=True)) / (
        bar_mfcc.std(axis=1, keepdims=True) + 1e-9
    )
    bar_loud = _zscore(_interval_means(rms_db[None, :], bar_starts)[0])
    return np.vstack(
        [
            bar_chroma * FEATURE_WEIGHTS[0],
            bar_mfcc / math.sqrt(bar_mfcc.shape[0]) * FEATURE_WEIGHTS[1],
            bar_loud[None, :] * FEATURE_WEIGHTS[2],
        ]
    ).T  # (bars, dims)


def _similarity(features: np.ndarray) -> np.ndarray:
    distance = np.linalg.norm(features[:, None, :] - features[None, :, :], axis=-1)
    scale = float(np.median(distance[distance > 0])) if np.any(distance > 0) else 1.0
    return np.exp(-((distance / scale) ** 2))


def _boundaries(similarity: np.ndarray, half: int, min_bars: int) -> list[int]:
    """Bar indices where a new section starts: peaks of checkerboard novelty on the bar SSM."""
    bars = similarity.shape[0]
    offsets = np.arange(-half, half) + 0.5
    taper = np.exp(-((offsets / half) ** 2))
    kernel = np.outer(np.sign(offsets) * taper, np.sign(offsets) * taper)  # +1 same side, -1 across
    padded = np.pad(similarity, half)
    # novelty[i]: how much bar i starts something new (i = 0 is the song's start, never a candidate)
    novelty = np.array([np.sum(kernel * padded[i : i + 2 * half, i : i + 2 * half]) for i in range(bars)])
    edged = np.concatenate([[-np.inf], novelty[1:], [-np.inf]])  # edged[i] is novelty[i] for i >= 1
    candidates = [i for i in range(1, bars) if edged[i] >= edged[i - 1] and edged[i] >= edged[i + 1]]
    floor = float(np.mean(novelty[1:]) + NOVELTY_FLOOR_STD * np.std(novelty[1:]))
    chosen: list[int] = []
    for i in sorted(candidates, key=lambda j: -novelty[j]):
        if novelty[i] < floor:
            break
        if i < min_bars or bars - i < max(1, min_bars // 2):
            continue  # the first section is a full one too; the last may be half (a short tag)
        if all(abs(i - j) >= min_bars for j in chosen):
            chosen.append(i)
    return sorted(chosen)


def _repeat_threshold(distances: np.ndarray) -> float:
    """The distance under which two spans count as the same part played again.

    Repeats sit far closer to each other than to anything else, so the sorted pairwise distances
    show a jump; the threshold goes in the largest (ratio) jump among the smaller distances, and is
    never above 0.6 of the median distance (a song with no repeats gets no groups).
    """
    ordered = np.sort(distances) + 1e-6
    cap = 0.6 * float(np.median(ordered))
    small = int(np.searchsorted(ordered, cap))
    if small == 0:
        return 0.0
    upper = ordered[1 : small + 1] if small < ordered.size else np.append(ordered[1:], cap)
    ratios = upper / ordered[: upper.size]
    k = int(np.argmax(ratios))
    return min(float(np.sqrt(ordered[k] * upper[k])), cap)


def _labels(spans: list[tuple[int, int]], features: np.ndarray, loudness: np.ndarray) -> list[str]:
    """intro/verse/chorus/bridge/outro from which spans repeat and how loud they are.

    Spans whose mean features are close form a group; the loudest group that occurs at least twice is
    the chorus, other repeated groups are verses, one-off spans in the middle are bridges, and a quiet
    first span is the intro, a non-chorus last span the outro.
    """
    count = len(spans)
    means = np.array([features[a:b].mean(axis=0) for a, b in spans])
    level = np.array([loudness[a:b].mean() for a, b in spans])
    if count == 1:
        return ["verse"]
    distance = np.linalg.norm(means[:, None, :] - means[None, :, :], axis=-1)
    threshold = _repeat_threshold(distance[np.triu_indices(count, 1)])
    group = list(range(count))  # single-link: spans closer than the threshold are one group
    for i in range(count):
        for j in range(i + 1, count):
            if distance[i, j] < threshold:
                old, new = group[j], group[i]
                group = [new if g == old else g for g in group]
    members: dict[int, list[int]] = {}
    for index, g in enumerate(group):
        members.setdefault(g, []).append(index)
    repeated = [g for g, idx in members.items() if len(idx) >= 2]
    if repeated:
        chorus = max(repeated, key=lambda g: float(level[members[g]].mean()))
    else:
        chorus = group[int(np.argmax(level))]

    labels = []
    for g in group:
        if g == chorus:
            labels.append("chorus")
        elif g in repeated:
            labels.append("verse")
        else:
            labels.append("bridge")
    median_level = float(np.median(level))
    if labels[0] != "chorus" and (level[0] <= median_level or labels[0] == "bridge"):
        labels[0] = "intro"
    if labels[-1] != "chorus":
        labels[-1] = "outro"
    return labels
