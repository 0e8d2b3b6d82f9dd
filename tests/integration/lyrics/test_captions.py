"""Captions out: ASS/SRT/VTT writers, the FFmpeg builders, and real videos with soft and burned captions."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kapsule import media
from kapsule.assembly.video import assemble_video
from kapsule.lyrics import load_lyrics
from kapsule.lyrics.captions import (
    CaptionFiles,
    ass_text,
    caption_layout,
    srt_text,
    vtt_text,
    write_captions,
)
from kapsule.lyrics.models import TimedLine, TimedWord
from tests.support.clips import FPS, SHOT_FRAMES, colour_clip, make_board, subtitle_packets, tone

# One worker encodes the module's captioned edits once (make test runs --dist loadgroup).
pytestmark = pytest.mark.xdist_group("captions-media")

SRT = """1
00:00:00,310 --> 00:00:01,470
First line of the song

2
00:00:01,900 --> 00:00:03,130
Second line, across a cut

3
00:00:03,420 --> 00:00:05,020
Third line at the end
"""
KARAOKE = TimedLine(
    start=1.0,
    end=3.0,
    text="Hello {bright} world",
    words=[
        TimedWord(start=1.0, end=1.5, text="Hello"),
        TimedWord(start=1.7, end=2.2, text="{bright}"),
        TimedWord(start=2.2, end=2.9, text="world"),
    ],
)


# ------------------------------------------------------------------------------------- pure writers


def test_ass_is_at_frame_resolution_with_karaoke_that_adds_up() -> None:
    text = ass_text([KARAOKE, TimedLine(start=4.0, end=5.0, text="two\nlines")], 720, 1280)
    assert "PlayResX: 720" in text and "PlayResY: 1280" in text
    karaoke, plain = [line for line in text.splitlines() if line.startswith("Dialogue:")]
    assert karaoke.startswith("Dialogue: 0,0:00:01.00,0:00:03.00,Karaoke,")
    runs = [int(k) for k in re.findall(r"\\k(\d+)", karaoke)]
    # \k turns a word yellow when its run starts: each run lasts until the next word starts.
    assert runs == [70, 50, 70], "Hello (and the pause), {bright}, world to its end, in centiseconds"
    late = ass_text([KARAOKE.model_copy(update={"start": 0.8})], 720, 1280)
    assert [int(k) for k in re.findall(r"\\k(\d+)", late)] == [20, 70, 50, 70], (
        "an empty run before the first word"
    )
    assert "{bright}" not in karaoke.split(",,", 1)[1].replace("{\\k", ""), "braces in lyrics are not tags"
    assert plain.endswith(",Lyric,,0,0,0,,two\\Nlines")


def test_layout_keeps_portrait_captions_clear_of_phone_app_overlays() -> None:
    portrait, landscape = caption_layout(1080, 1920), caption_layout(1920, 1080)
    assert portrait.font_size == landscape.font_size == 70, "sized to the short side"
    assert portrait.margin_bottom >= 0.2 * 1920, "above the bottom fifth that apps cover"
    assert portrait.margin_right > portrait.margin_left, "clear of the right-hand button column"
    assert landscape.margin_bottom < 0.1 * 1080
    assert caption_layout(720, 1280).font_size == caption_layout(1280, 720).font_size == 47


def test_srt_and_vtt_text() -> None:
    srt = srt_text([KARAOKE])
    assert srt == "1\n00:00:01,000 --> 00:00:03,000\nHello {bright} world\n"
    vtt = vtt_text([KARAOKE, TimedLine(start=3601.5, end=3602.0, text="a <b> & c")])
    assert vtt.startswith("WEBVTT\n")
    assert "00:00:01.000 --> 00:00:03.000\nHello <00:00:01.700>{bright} <00:00:02.200>world" in vtt
    assert "01:00:01.500 --> 01:00:02.000\na &lt;b&gt; &amp; c" in vtt
    again = load_lyrics(vtt.encode(), song_seconds=4000)
    assert [w.start for w in again[0].words] == [1.0, 1.7, 2.2], "our VTT reads back with its word times"


# --------------------------------------------------------------------------------------- builders


def test_filter_value_survives_both_escaping_levels(tmp_path: Path) -> None:
    odd = tmp_path / "it's a, b;c [x]:y"
    odd.mkdir()
    ass = odd / "captions.ass"
    ass.write_text(ass_text([TimedLine(start=0.0, end=1.0, text="hi")], 320, 240))
    out = tmp_path / "o.mp4"
    media.run([
        "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=black:s=320x240:r=24:d=0.5",
        "-vf", media.subtitles_filter(ass), str(out),
    ])  # fmt: skip
    assert out.stat().st_size > 0


def test_burned_captions_go_last_in_either_graph() -> None:
    ass = Path("/c/captions.ass")
    chain = media.with_burned_captions("select='x',setpts=N/(24*TB)", False, ass)
    assert chain == "select='x',setpts=N/(24*TB),subtitles=filename=/c/captions.ass"
    graph = media.with_burned_captions("[0:v:0]null[a];[a]null[vout]", True, ass)
    assert graph == "[0:v:0]null[a];[a]null[precap];[precap]subtitles=filename=/c/captions.ass[vout]"
    cmd = media.assembly_cmd(
        Path("l"), Path("s.m4a"), Path("o.mp4"), graph=chain, complex_graph=False, fps=24, crf=20,
        preset="veryfast", copy_audio=True, soft_captions=Path("c.srt"),
    )  # fmt: skip
    assert cmd[cmd.index("-i", cmd.index("s.m4a") - 1) + 2 : cmd.index("c.srt") + 1] == ["-i", "c.srt"]
    assert cmd[cmd.index("-c:s") + 1] == "mov_text" and "2:s:0" in cmd
    assert "-c:s" not in media.concat_mux_cmd(Path("l"), Path("s.m4a"), Path("o.mp4"), copy_audio=True)


# ----------------------------------------------------------------------------------- real videos


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same edit (Veo-like long clips, so an encode) without captions, burned, and soft on exact clips."""
    tmp = tmp_path_factory.mktemp("captions")
    colours = ["white", "black", "yellow", "navy"]
    long = [
        colour_clip(tmp / f"long-{i}.mp4", colours[i], e - s + FPS, "320x180")
        for i, (s, e) in enumerate(SHOT_FRAMES)
    ]
    exact = [
        colour_clip(tmp / f"exact-{i}.mp4", colours[i], e - s, "1280x720")
        for i, (s, e) in enumerate(SHOT_FRAMES)
    ]
    song = tone(tmp / "song.m4a", codec="aac", sample_rate=44100)
    board = make_board()
    lines = load_lyrics(SRT.encode(), song_seconds=board.duration)
    files = write_captions(lines, (1280, 720), tmp / "captions")
    out = {"srt": files.srt, "ass": files.ass}
    plain = assemble_video(
        board, long, song, tmp / "plain.mp4", exact_lengths=False, crf=28, preset="ultrafast"
    )
    both = assemble_video(
        board, long, song, tmp / "both.mp4", exact_lengths=False, crf=28, preset="ultrafast",
        captions=files.tracks("both"),
    )  # fmt: skip
    soft = assemble_video(
        board, exact, song, tmp / "soft.mp4", exact_lengths=True, crf=28, preset="ultrafast",
        captions=files.tracks("soft"),
    )  # fmt: skip
    assert not plain.burned_captions and both.burned_captions and both.soft_captions
    assert soft.copied_video and soft.soft_captions, "soft captions keep the concat-copy path"
    return {**out, "plain": plain.video, "both": both.video, "soft": soft.video}


@pytest.mark.parametrize("name", ["both", "soft"])
def test_soft_caption_cues_match_the_file_within_a_frame(made: dict[str, Path], name: str) -> None:
    want = [(line.start, line.end) for line in load_lyrics(SRT.encode(), song_seconds=6.0)]
    got = subtitle_packets(made[name])
    assert len(got) == len(want)
    for (a, b), (c, d) in zip(got, want, strict=True):
        assert abs(a - c) <= 1 / FPS and abs(b - d) <= 1 / FPS
    info = media.probe(made[name])
    assert [s.codec for s in info.subtitles] == ["mov_text"]


def _frame(video: Path, seconds: float) -> np.ndarray:
    frame = round(seconds * FPS)
    result = media.run([
        "ffmpeg", "-nostdin", "-v", "error", "-i", str(video), "-vf", f"select='eq(n,{frame})'",
        "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
    ])  # fmt: skip
    return np.frombuffer(result.stdout, dtype=np.uint8).reshape(720, 1280, 3).astype(int)


def test_burned_captions_show_at_their_times_and_only_then(
    made: dict[str, Path], artifacts_dir: Path
) -> None:
    lines = load_lyrics(SRT.encode(), song_seconds=6.0)
    for line in lines:
        for at in (line.start + 1 / FPS, (line.start + line.end) / 2, line.end - 1 / FPS):
            plain, burned = _frame(made["plain"], at), _frame(made["both"], at)
            diff = np.abs(plain - burned).max(axis=2) > 60
            rows = np.flatnonzero(diff.any(axis=1))
            assert diff.sum() > 2000, f"no caption at {at:.2f} s"
            assert rows.min() > 720 * 0.6, "captions sit in the lower part of the frame"
    for at in (0.1, 1.7, 3.3):  # between cues
        assert (np.abs(_frame(made["plain"], at) - _frame(made["both"], at)).max(axis=2) > 60).sum() < 50
    Image.fromarray(_frame(made["both"], 2.5).astype(np.uint8)).save(artifacts_dir / "captions-burned.png")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("cjk", "夜空の星を見上げて 你好世界"),
        ("rtl-hebrew", "שלום עולם יפה"),
        ("rtl-arabic", "مرحبا بالعالم الجميل"),
    ],
)
def test_non_latin_lines_render_with_real_glyphs(
    tmp_path: Path, artifacts_dir: Path, name: str, text: str
) -> None:
    """libass finds a font with the glyphs (no 'not found' fallback failure) and draws them."""
    files = write_captions([TimedLine(start=0.0, end=2.0, text=text)], (720, 1280), tmp_path)
    png = artifacts_dir / f"captions-{name}.png"
    result = media.run([
        "ffmpeg", "-nostdin", "-v", "verbose", "-y", "-f", "lavfi", "-i", "color=c=navy:s=720x1280:r=24:d=1",
        "-vf", media.subtitles_filter(files.ass), "-frames:v", "1", "-update", "1", str(png),
    ])  # fmt: skip
    log = result.stderr.decode("utf-8", "replace")
    # libass says "Glyph ... not found, selecting one more font" and then names the fallback it took;
    # a script no installed font covers ends in "failed to find any fallback" (and tofu boxes).
    assert "failed to find any fallback" not in log, log[-1500:]
    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    ink = np.abs(image - np.array([0, 0, 128])).max(axis=2) > 80
    assert ink.sum() > 3000
    rows = np.flatnonzero(ink.any(axis=1))
    assert rows.max() < 1280 * 0.8, "9:16 captions stay above the bottom fifth"


def test_caption_files_pick_tracks_by_mode(tmp_path: Path) -> None:
    files = CaptionFiles(tmp_path / "c.ass", tmp_path / "c.srt", tmp_path / "c.vtt")
    assert files.tracks("none") == media.CaptionTracks()
    assert files.tracks("burned") == media.CaptionTracks(burn=files.ass)
    assert files.tracks("soft") == media.CaptionTracks(soft=files.srt)
    assert files.tracks("both") == media.CaptionTracks(burn=files.ass, soft=files.srt)


def test_karaoke_turns_words_yellow_as_they_are_sung(tmp_path: Path, artifacts_dir: Path) -> None:
    files = write_captions([KARAOKE], (1280, 720), tmp_path)
    frames = {}
    for at in (1.2, 1.9, 2.6):
        png = tmp_path / f"k{at}.png"
        media.run([
            "ffmpeg", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", "color=c=navy:s=1280x720:r=24:d=3",
            "-vf", f"{media.subtitles_filter(files.ass)},select='eq(n,{round(at * 24)})'",
            "-frames:v", "1", "-update", "1", str(png),
        ])  # fmt: skip
        image = np.asarray(Image.open(png).convert("RGB")).astype(int)
        frames[at] = int(((image[..., 0] > 200) & (image[..., 1] > 180) & (image[..., 2] < 90)).sum())
    Image.open(tmp_path / "k1.9.png").save(artifacts_dir / "captions-karaoke.png")
    assert 0 < frames[1.2] < frames[1.9] < frames[2.6], f"yellow pixels per time: {frames}"


def test_a_line_the_aligner_could_not_place_is_shown_whole_without_a_highlight(
    tmp_path: Path,
) -> None:
    unsure = KARAOKE.model_copy(update={"confidence": 0.2})
    event = next(line for line in ass_text([unsure], 1280, 720).splitlines() if line.startswith("Dialogue:"))
    assert ",Lyric,," in event and "\\k" not in event and event.endswith("world")
    cue = vtt_text([unsure]).split("\n\n")[1]
    assert "<00:" not in cue and cue.endswith("world\n")
    files = write_captions([unsure], (1280, 720), tmp_path)
    png = tmp_path / "unsure.png"
    media.run([
        "ffmpeg", "-nostdin", "-v", "error", "-y",
        "-f", "lavfi", "-i", "color=c=navy:s=1280x720:r=24:d=3",
        "-vf", f"{media.subtitles_filter(files.ass)},select='eq(n,{round(2.6 * 24)})'",
        "-frames:v", "1", "-update", "1", str(png),
    ])  # fmt: skip
    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    white = int(((image[..., 0] > 200) & (image[..., 1] > 200) & (image[..., 2] > 200)).sum())
    yellow = int(((image[..., 0] > 200) & (image[..., 1] > 180) & (image[..., 2] < 90)).sum())
    assert white > 500 and yellow == 0, (white, yellow)


def test_caption_mode_and_aligner_defaults() -> None:
    from kapsule.lyrics import resolve_aligner
    from kapsule.lyrics.captions import resolve_caption_mode

    assert resolve_caption_mode("auto", True) == "both" and resolve_caption_mode("auto", False) == "none"
    assert resolve_caption_mode("burned", True) == "burned"
    with pytest.raises(ValueError, match="captions"):
        resolve_caption_mode("hard", True)
    assert (
        resolve_aligner("auto", "gemini-2.5-flash") == "gemini"
        and resolve_aligner("auto", "local") == "offline"
    )
    assert resolve_aligner("offline", "gemini-2.5-flash") == "offline"


def test_markup_in_the_lyrics_means_nothing_in_any_caption_output(tmp_path: Path) -> None:
    """Issue 22, probe 9: ``<font>`` and ``{\\…}`` from the lyrics reached the .srt and the MP4's
    subtitle track, which came out with font size 244."""
    text = '<font size="244">Big</font> {\\fs244\\c&H0000FF&}red <b>bold</b>'
    lines = [TimedLine(start=0.1, end=0.9, text=text, words=[])]
    srt, vtt, ass = srt_text(lines), vtt_text(lines), ass_text(lines, 320, 180)
    for output in (srt, vtt):
        assert "<font" not in output and "<b>" not in output and "{\\fs" not in output, output
    assert "{\\" not in ass.split("[Events]")[1]  # libass shows <…> as written; only {\…} means something
    assert "Big" in srt and "red" in srt and "bold" in srt  # the words themselves stay
    subtitles = tmp_path / "lyrics.srt"
    subtitles.write_text(srt)
    video = tmp_path / "soft.mp4"
    black = "color=black:s=64x64:d=1"
    soft = media.soft_caption_args(1, subtitles)
    media.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", black, "-i", str(subtitles),
               "-map", "0:v", "-c:v", "libx264", *soft, str(video)])  # fmt: skip
    track = media.run(
        ["ffmpeg", "-v", "error", "-i", str(video), "-map", "0:s:0", "-f", "ass", "-"]
    ).stdout.decode()
    dialogue = [line for line in track.splitlines() if line.startswith("Dialogue:")]
    assert dialogue and "Big" in dialogue[0], track
    assert "{\\" not in dialogue[0] and "\\fs" not in dialogue[0] and "<font" not in dialogue[0], dialogue
