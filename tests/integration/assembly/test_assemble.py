"""Assembly: real clips and real songs in, one frame-exact H.264 + AAC video with cuts on the plan out."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kapsule import media
from kapsule.assembly.video import assemble_video, make_contact_sheet, make_poster, poster_time
from kapsule.core.errors import AudioError, InvalidParameter, MediaError
from kapsule.job.artifacts import Storyboard
from tests.support.clips import CRF, FPS, PRESET, SHOT_FRAMES, SONG_SECONDS, colour_clip, make_board, tone

# One worker encodes the module's clips once (make test runs --dist loadgroup).
pytestmark = pytest.mark.xdist_group("assembly-media")

# Solid colours with very different brightness, so FFmpeg's scene detection sees every cut.
COLOURS = ["white", "black", "yellow", "navy"]


RGB = {"white": (255, 255, 255), "black": (0, 0, 0), "yellow": (255, 255, 0), "navy": (0, 0, 128)}


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("assemble-media")


@pytest.fixture(scope="module")
def exact_clips(media_dir: Path) -> list[Path]:
    """Full-size (1280×720) clips with exactly each shot's frames: the stream-copy case."""
    return [
        colour_clip(media_dir / f"exact-{i}.mp4", COLOURS[i], e - s, "1280x720")
        for i, (s, e) in enumerate(SHOT_FRAMES)
    ]


@pytest.fixture(scope="module")
def long_small_clips(media_dir: Path) -> list[Path]:
    """Tiny 320×180 clips, each a second longer than its shot (like a Veo clip): the re-encode case."""
    return [
        colour_clip(media_dir / f"long-{i}.mp4", COLOURS[i], e - s + FPS, "320x180")
        for i, (s, e) in enumerate(SHOT_FRAMES)
    ]


@pytest.fixture(scope="module")
def songs(media_dir: Path) -> dict[str, Path]:
    return {
        "m4a": tone(media_dir / "song.m4a", codec="aac", sample_rate=44100),
        "mp3": tone(media_dir / "song.mp3", codec="libmp3lame", sample_rate=32000),
    }


def assert_delivers_the_contract(out: Path, song: Path, board: Storyboard) -> media.ProbeResult:
    info = media.probe(out)
    assert [v.codec for v in info.real_video] == ["h264"]
    assert [a.codec for a in info.audio] == ["aac"]
    (video,) = info.real_video
    assert (video.width, video.height, video.frame_rate) == (1280, 720, FPS)
    assert video.frames == board.total_frames
    song_info = media.probe(song)
    # The song's length as a listener hears it: decoded samples (an mp3's header length includes padding).
    heard = len(media.decode_audio(song, 8000)) / 8000
    assert heard == pytest.approx(SONG_SECONDS, abs=0.02)
    assert info.duration == pytest.approx(heard, abs=0.05)
    assert info.audio[0].duration == pytest.approx(heard, abs=0.05)  # the whole song, to its last note
    assert info.audio[0].sample_rate == song_info.audio[0].sample_rate
    cuts = media.scene_cuts(out)
    planned = [shot.start for shot in board.shots[1:]]
    assert len(cuts) == len(planned)
    for found, plan in zip(cuts, planned, strict=True):
        assert abs(found - plan) <= 1 / FPS + 1e-6, f"cut at {found:.3f} s, planned {plan:.3f} s"
    return info


def test_exact_clips_are_joined_by_stream_copy_and_the_aac_song_is_copied(
    tmp_path: Path, exact_clips: list[Path], songs: dict[str, Path]
) -> None:
    board = make_board()
    out = tmp_path / "out" / "video.mp4"
    result = assemble_video(board, exact_clips, songs["m4a"], out, exact_lengths=True, crf=CRF, preset=PRESET)
    assert result.video == out and result.copied_video and result.audio_copied
    assert result.frames == 130
    assert_delivers_the_contract(out, songs["m4a"], board)
    assert sorted(p.name for p in out.parent.iterdir()) == ["video.mp4"]  # no temp files left behind
    assert out.read_bytes()[4:8] == b"ftyp" and b"moov" in out.read_bytes()[:4096]  # +faststart


def test_an_mp3_song_is_encoded_to_aac_at_its_own_sample_rate(
    tmp_path: Path, exact_clips: list[Path], songs: dict[str, Path]
) -> None:
    board = make_board()
    result = assemble_video(
        board, exact_clips, songs["mp3"], tmp_path / "v.mp4", exact_lengths=True, crf=CRF, preset=PRESET
    )
    assert result.copied_video and not result.audio_copied
    info = assert_delivers_the_contract(result.video, songs["mp3"], board)
    assert info.audio[0].sample_rate == 32000


def test_longer_clips_of_another_size_are_trimmed_scaled_and_re_encoded(
    tmp_path: Path, long_small_clips: list[Path], songs: dict[str, Path]
) -> None:
    board = make_board()
    result = assemble_video(
        board, long_small_clips, songs["m4a"], tmp_path / "v.mp4", exact_lengths=False, crf=CRF, preset=PRESET
    )
    assert not result.copied_video and result.audio_copied
    assert_delivers_the_contract(result.video, songs["m4a"], board)


def test_a_clip_that_breaks_the_exact_length_promise_is_re_encoded_not_trusted(
    tmp_path: Path, exact_clips: list[Path], long_small_clips: list[Path], songs: dict[str, Path]
) -> None:
    board = make_board()
    clips = [exact_clips[0], long_small_clips[1], exact_clips[2], exact_clips[3]]
    result = assemble_video(
        board, clips, songs["m4a"], tmp_path / "v.mp4", exact_lengths=True, crf=CRF, preset=PRESET
    )
    assert not result.copied_video
    assert_delivers_the_contract(result.video, songs["m4a"], board)


def test_bad_inputs_fail_cleanly_without_leaving_a_partial_video(
    tmp_path: Path, exact_clips: list[Path], songs: dict[str, Path]
) -> None:
    board = make_board()
    out_dir = tmp_path / "out"
    with pytest.raises(InvalidParameter, match="got 3 clips for a storyboard of 4 shots"):
        assemble_video(board, exact_clips[:3], songs["m4a"], out_dir / "v.mp4", exact_lengths=True)
    with pytest.raises(AudioError, match="no audio stream"):
        assemble_video(board, exact_clips, exact_clips[0], out_dir / "v.mp4", exact_lengths=True)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(MediaError, match="clip of shot 2 cannot be read"):  # the 2nd clip (from 1)
        assemble_video(
            board,
            [exact_clips[0], broken, *exact_clips[2:]],
            songs["m4a"],
            out_dir / "v.mp4",
            exact_lengths=False,
        )
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def _colour_at(image: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    r, g, b = image.convert("RGB").getpixel((x, y))  # type: ignore[misc]
    return int(r), int(g), int(b)


def _near(colour: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 24 for a, b in zip(colour, expected, strict=True))


def test_poster_is_a_full_size_jpeg_of_the_most_energetic_shot(
    tmp_path: Path, exact_clips: list[Path], songs: dict[str, Path]
) -> None:
    board = make_board()  # shot 1 (black) is the most energetic
    video = assemble_video(board, exact_clips, songs["m4a"], tmp_path / "v.mp4", exact_lengths=True).video
    poster = make_poster(video, tmp_path / "poster.jpg", at=poster_time(board))
    with Image.open(poster) as image:
        assert (image.format, image.size) == ("JPEG", (1280, 720))
        assert _near(_colour_at(image, 640, 360), RGB["black"])
    with Image.open(make_poster(video, tmp_path / "middle.jpg")) as image:
        assert image.size == (1280, 720)  # the middle of the video: frame 65, shot 1 as well


def test_contact_sheet_tiles_one_labelled_thumbnail_per_shot_in_order(
    tmp_path: Path, exact_clips: list[Path]
) -> None:
    board = make_board()
    sheet = make_contact_sheet(exact_clips, board, tmp_path / "sheet.jpg", columns=3, thumb_width=160)
    with Image.open(sheet) as image:
        assert (image.format, image.size) == ("JPEG", (3 * 160, 2 * 90))
        for i, colour in enumerate(COLOURS):
            row, col = divmod(i, 3)
            assert _near(_colour_at(image, col * 160 + 80, row * 90 + 30), RGB[colour]), f"cell {i}"
        # The label band: white text on black along the bottom of the first (white) cell.
        band = [_colour_at(image, x, 85) for x in range(160)]
        assert any(sum(c) < 60 for c in band) and any(sum(c) > 600 for c in band)


def test_builders_are_plain_argument_lists(tmp_path: Path) -> None:
    text = media.concat_list_text(
        [media.ConcatEntry(Path("/clips/it's here.mp4"), 0.0, 6.333333333), media.ConcatEntry(Path("/b.mp4"))]
    )
    assert text.splitlines() == [
        "ffconcat version 1.0",
        "file '/clips/it'\\''s here.mp4'",
        "inpoint 0.000000",
        "outpoint 6.333333",
        "file '/b.mp4'",
    ]
    copy = media.concat_mux_cmd(Path("l.txt"), Path("s.m4a"), Path("o.mp4"), copy_audio=True)
    assert copy[copy.index("-f") + 1] == "concat" and copy[copy.index("-safe") + 1] == "0"
    assert copy[copy.index("-c:v") + 1] == "copy" and copy[copy.index("-c:a") + 1] == "copy"
    assert "+faststart" in copy and "-ar" not in copy
    encode = media.concat_mux_cmd(
        Path("l.txt"), Path("s.mp3"), Path("o.mp4"), copy_audio=False, sample_rate=32000
    )
    assert encode[encode.index("-c:a") + 1 :][:5] == ["aac", "-b:a", "256k", "-ar", "32000"]
    norm = media.normalize_clip_cmd(
        Path("a.mp4"), Path("b.mp4"), frames=152, width=1280, height=720, fps=24, crf=20, preset="veryfast"
    )
    assert norm[norm.index("-frames:v") + 1] == "152" and "libx264" in norm
    assert "tpad=stop_mode=clone:stop=152" in norm[norm.index("-vf") + 1]


def motion_clip(path: Path, colour: str, frames: int, size: str) -> Path:
    """A Veo-like clip: a colour field with a moving pattern (so x264 uses B-frames) and an AAC track."""
    w, h = (int(v) for v in size.split("x"))
    media.run([
        "ffmpeg", "-nostdin", "-v", "error", "-y",
        "-f", "lavfi", "-i", f"color=c={colour}:s={size}:r={FPS}",
        "-f", "lavfi", "-i", f"testsrc2=s={w // 4}x{h // 4}:r={FPS}",
        "-f", "lavfi", "-i", "sine=frequency=500",
        "-filter_complex", "[0][1]overlay=8:8:shortest=1[v]", "-map", "[v]", "-map", "2:a",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-bf", "3", "-pix_fmt", "yuv420p",
        "-frames:v", str(frames), "-c:a", "aac", "-shortest", str(path),
    ])  # fmt: skip
    return path


@pytest.fixture(scope="module")
def veo_like_clips(media_dir: Path) -> list[Path]:
    """B-frame clips with motion and audio, each 30 frames longer than its shot."""
    return [
        motion_clip(media_dir / f"veo-{i}.mp4", COLOURS[i], e - s + 30, "640x360")
        for i, (s, e) in enumerate(SHOT_FRAMES)
    ]


def test_b_frame_clips_longer_than_their_shots_are_cut_frame_exact_in_one_pass(
    tmp_path: Path, veo_like_clips: list[Path], songs: dict[str, Path]
) -> None:
    board = make_board()
    result = assemble_video(board, veo_like_clips, songs["m4a"], tmp_path / "v.mp4", exact_lengths=False,
                            crf=CRF, preset=PRESET)  # fmt: skip
    assert not result.copied_video
    assert_delivers_the_contract(result.video, songs["m4a"], board)


def test_concat_cutoffs_predict_exactly_the_frames_the_decoder_outputs(
    tmp_path: Path, veo_like_clips: list[Path]
) -> None:
    """The outpoints stop reading early (B-frames, an AAC track in between) and the counts still hold."""
    entries, predicted, full = [], 0, 0
    for clip, keep in zip(veo_like_clips, (1, 17, 40, 30), strict=True):
        info = media.probe(clip, packets=True)
        video = info.real_video[0]
        cutoff = media.concat_cutoff(info.packets, video.index, keep)
        assert cutoff.decoded >= keep
        entries.append(media.ConcatEntry(clip, outpoint=cutoff.outpoint))
        predicted += cutoff.decoded
        full += video.frames or 0
    assert predicted < full  # the tails really are skipped
    listing = tmp_path / "clips.ffconcat"
    listing.write_text(media.concat_list_text(entries))
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-f", "concat", "-safe", "0", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(listing)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert int(done.stdout.strip()) == predicted


def _frame_rgb(video: Path, frame: int, tmp: Path) -> tuple[int, int, int]:
    grab = tmp / f"f{frame}.png"
    media.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(video), "-vf",
               f"select='eq(n,{frame})'", "-frames:v", "1", str(grab)])  # fmt: skip
    with Image.open(grab) as image:
        return _colour_at(image, image.width - 20, image.height - 20)  # away from the moving pattern


def test_crossfades_blend_across_each_cut_and_keep_the_length(
    tmp_path: Path, veo_like_clips: list[Path], songs: dict[str, Path]
) -> None:
    board = make_board().model_copy(update={"transition": "crossfade", "crossfade_seconds": 0.5})
    result = assemble_video(board, veo_like_clips, songs["m4a"], tmp_path / "x.mp4", exact_lengths=True,
                            crf=CRF, preset=PRESET)  # fmt: skip
    info = media.probe(result.video)
    assert info.real_video[0].frames == board.total_frames
    assert info.duration == pytest.approx(SONG_SECONDS, abs=0.05)
    assert info.audio[0].duration == pytest.approx(SONG_SECONDS, abs=0.05)
    cut = SHOT_FRAMES[1][0]  # white → black at frame 40; the dissolve runs over frames 34..45
    assert _near(_frame_rgb(result.video, cut - 8, tmp_path), RGB["white"])
    middle = _frame_rgb(result.video, cut, tmp_path)
    assert all(90 <= c <= 165 for c in middle), f"frame on the cut is {middle}, not a white/black blend"
    assert _near(_frame_rgb(result.video, cut + 8, tmp_path), RGB["black"])
    assert not media.scene_cuts(result.video, threshold=0.3)  # no hard cut left anywhere


def _corner_colours(video: Path) -> np.ndarray:
    """The mean RGB of every frame's bottom-right corner (away from the moving pattern), in order."""
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(video), "-vf",
         "crop=iw/4:ih/4:iw*3/4:ih*3/4,scale=8:8", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    )  # fmt: skip
    return np.frombuffer(done.stdout, np.uint8).reshape(-1, 64, 3).mean(axis=1)


@pytest.mark.parametrize(
    "spare", ["veo-like clips with spare frames", "exact clips, no spare frames", "a last clip 3 short"]
)
def test_every_frame_of_a_crossfade_is_the_planned_mix_of_its_two_shots(
    spare: str, tmp_path: Path, veo_like_clips: list[Path], exact_clips: list[Path], songs: dict[str, Path]
) -> None:
    """Frame by frame: pure shots between the dissolves, and across each cut a ramp centred on it.

    Clips without the dissolve's handles hold their last frame through it (the exact ones), or, for
    the last clip, to the end of the video (its 15 frames start 6 before its cut: 3 are missing).
    """
    board = make_board().model_copy(update={"transition": "crossfade", "crossfade_seconds": 0.5})
    clips = {
        "veo": veo_like_clips,
        "exa": exact_clips,
        "a l": [*veo_like_clips[:3], colour_clip(tmp_path / "short.mp4", COLOURS[3], 15, "640x360")],
    }[spare[:3]]
    result = assemble_video(board, clips, songs["m4a"], tmp_path / "x.mp4", exact_lengths=False,
                            crf=CRF, preset=PRESET)  # fmt: skip
    seen = _corner_colours(result.video)
    assert len(seen) == board.total_frames
    half = 6  # 0.5 s at 24 fps
    expected = np.zeros((board.total_frames, 3))
    for i, (start, end) in enumerate(SHOT_FRAMES):
        expected[start:end] = RGB[COLOURS[i]]
    for i, (cut, _) in enumerate(SHOT_FRAMES[1:]):
        before, after = np.array(RGB[COLOURS[i]]), np.array(RGB[COLOURS[i + 1]])
        for k in range(2 * half):
            weight = (k + 0.5) / (2 * half)
            expected[cut - half + k] = (1 - weight) * before + weight * after
    worst = np.abs(seen - expected).max(axis=1)
    bad = [(frame, seen[frame].round().tolist(), expected[frame].round().tolist())
           for frame in np.flatnonzero(worst > 16)]  # fmt: skip
    assert not bad, f"frames off the planned dissolve (frame, seen, expected): {bad[:6]}"


def test_square_video_and_a_portrait_clip_in_a_landscape_board_are_cropped_to_fill(
    tmp_path: Path, veo_like_clips: list[Path], songs: dict[str, Path]
) -> None:
    square = make_board().model_copy(update={"aspect_ratio": "1:1"})
    result = assemble_video(square, veo_like_clips, songs["m4a"], tmp_path / "sq.mp4", exact_lengths=False,
                            crf=CRF, preset=PRESET)  # fmt: skip
    (video,) = media.probe(result.video).real_video
    assert (video.width, video.height, video.frames) == (720, 720, 130)
    portrait = motion_clip(tmp_path / "portrait.mp4", "red", 60 + 10, "360x640")
    clips = [veo_like_clips[0], portrait, *veo_like_clips[2:]]
    result = assemble_video(make_board(), clips, songs["m4a"], tmp_path / "mix.mp4", exact_lengths=False,
                            crf=CRF, preset=PRESET)  # fmt: skip
    assert_delivers_the_contract(result.video, songs["m4a"], make_board())
    # Cropped to fill, not pillarboxed: the portrait shot (red) reaches both edges.
    for x in (5, 1275):
        grab = tmp_path / f"edge{x}.png"
        media.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(result.video), "-vf",
                   "select='eq(n,70)'", "-frames:v", "1", str(grab)])  # fmt: skip
        with Image.open(grab) as image:
            assert _near(_colour_at(image, x, 700), (255, 0, 0))


def test_loudness_readout_measures_the_song_without_touching_it(songs: dict[str, Path]) -> None:
    before = songs["m4a"].read_bytes()
    reading = media.loudness(songs["m4a"])
    assert -40 < reading.integrated_lufs < 0
    assert reading.true_peak_dbtp <= 0.5
    assert songs["m4a"].read_bytes() == before
