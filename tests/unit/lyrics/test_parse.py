"""Lyrics in: every format, every encoding, and every bad-lyrics case gives its own error code."""

from __future__ import annotations

import codecs
import json

import pytest

from kapsule.core.errors import (
    LyricsEmpty,
    LyricsEncoding,
    LyricsError,
    LyricsMalformed,
    LyricsPastEnd,
    LyricsTooLong,
)
from kapsule.lyrics import lines_from_json, lines_to_json, load_lyrics, parse
from kapsule.lyrics.timing import syllables

LRC = """[ti:Test Song]
[ar:Kapsule]
[00:01.00]First line here
[00:04.50]Second line
[00:08.00]
[00:10.25]Third line after a break
"""

ENHANCED = (
    "[00:02.00]<00:02.00>Hello <00:02.60>bright <00:03.40>world <00:04.10>\n[00:06.00]<00:06.00>Again\n"
)

SRT = """1
00:00:01,000 --> 00:00:03,500
First <i>line</i>

2
00:00:04,000 --> 00:00:06,000
Second line
"""

VTT = """WEBVTT
Kind: captions

NOTE a comment block

intro
00:01.000 --> 00:03.000 align:center
Hello <00:01.800>there <00:02.400>friend

00:00:04.000 --> 00:00:05.500
<c.yellow>Second</c> cue
"""


def load(text: str | bytes, seconds: float = 60.0) -> list:
    data = text.encode() if isinstance(text, str) else text
    return load_lyrics(data, song_seconds=seconds)


def test_lrc_lines_end_at_the_next_line_or_an_empty_tag() -> None:
    lines = load(LRC)
    assert [line.text for line in lines] == ["First line here", "Second line", "Third line after a break"]
    assert (lines[0].start, lines[0].end) == (1.0, 4.5)
    assert lines[1].end == 8.0, "the empty [00:08.00] tag ends the second line"
    assert (lines[2].start, lines[2].end) == (10.25, 16.25), "the last line shows at most OPEN_LINE_MAX_S"
    assert all(line.words == [] for line in lines), "line-timed LRC invents no word times"


def test_enhanced_lrc_word_times() -> None:
    first, second = load(ENHANCED)
    assert [(w.text, w.start, w.end) for w in first.words] == [
        ("Hello", 2.0, 2.6),
        ("bright", 2.6, 3.4),
        ("world", 3.4, 4.1),
    ]
    assert first.text == "Hello bright world" and first.end == pytest.approx(4.1)
    assert second.words[0].text == "Again"


def test_lrc_repeated_tags_and_offset() -> None:
    lines = load("[offset:500]\n[00:10.00][00:30.00]Chorus line\n[00:20.00]Verse\n")
    assert [(line.start, line.text) for line in lines] == [
        (9.5, "Chorus line"),
        (19.5, "Verse"),
        (29.5, "Chorus line"),
    ]


def test_srt_and_vtt() -> None:
    srt = load(SRT)
    assert [(x.start, x.end, x.text) for x in srt] == [(1.0, 3.5, "First line"), (4.0, 6.0, "Second line")]
    vtt = load(VTT)
    assert vtt[0].text == "Hello there friend" and (vtt[0].start, vtt[0].end) == (1.0, 3.0)
    assert [(w.text, w.start, w.end) for w in vtt[0].words] == [
        ("Hello", 1.0, 1.8),
        ("there", 1.8, 2.4),
        ("friend", 2.4, 3.0),
    ]
    assert vtt[1].text == "Second cue" and vtt[1].words == []


def test_format_is_sniffed_from_content_not_name() -> None:
    assert parse(LRC.encode()).format == "lrc"
    assert parse(SRT.encode()).format == "srt"
    assert parse(VTT.encode()).format == "vtt"
    plain = parse(b"[Verse 1]\nfirst line\nsecond line\n\n\n(Chorus)\nla la la\n")
    assert plain.format == "plain" and plain.verses == [["first line", "second line"], ["la la la"]]


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: t.encode("utf-8-sig"),
        lambda t: t.encode("utf-16"),  # with BOM
        lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
        lambda t: t.encode("utf-16-le"),  # no BOM
        lambda t: t.replace("\n", "\r\n").encode(),
    ],
)
def test_encodings_and_line_endings(encode) -> None:  # type: ignore[no-untyped-def]
    lines = load(encode(SRT + "\n3\n00:00:07,000 --> 00:00:08,000\n夜空の星 שלום\n"))
    assert [line.text for line in lines][-1] == "夜空の星 שלום"
    assert len(lines) == 3


def test_out_of_order_and_overlapping_cues_are_sorted_and_trimmed() -> None:
    srt = (
        "2\n00:00:05,000 --> 00:00:09,000\nlater\n\n"
        "1\n00:00:01,000 --> 00:00:06,000\nearlier, overlapping\n\n"
        "3\n00:00:05,000 --> 00:00:07,000\nsame start, second language\n"
    )
    lines = load(srt)
    assert [(line.start, line.end) for line in lines] == [(1.0, 5.0), (5.0, 9.0)]
    assert lines[1].text == "later\nsame start, second language"


@pytest.mark.parametrize(("tag", "shown"), [("00:59.999", "1:00.00"), ("999:59.999", "1000:00.00")])
def test_a_time_is_rounded_once_when_shown(tag: str, shown: str) -> None:
    """Issue 22: an LRC time of 59.999 s was reported as "…:60.00"."""
    with pytest.raises(LyricsPastEnd) as info:
        load(f"[00:01.00]first\n[{tag}]too late\n", seconds=30.0)
    assert f"starts at {shown}," in info.value.message and ":60.00" not in info.value.message


def test_times_past_the_end_are_clipped_or_refused() -> None:
    lines = load("00:00:01,000 --> 00:00:12,000\nruns over\n", seconds=10.0)
    assert lines[0].end == 10.0
    with pytest.raises(LyricsPastEnd, match="line 6") as info:
        load(
            "1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:11,000 --> 00:00:12,000\ntoo late\n",
            seconds=10.0,
        )
    assert info.value.code == "lyrics_past_end"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[00:01.00]fine\nno tag on this line\n", 2),
        ("[00:01.00]fine\n\n[00:0x.00]broken time\n", 3),
        ("[00:01.00]<00:01.00>ok <00:1x>bad\n", 1),
        ("1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:03,000 -> 00:00:04,000\nbad arrow\n", 6),
        ("1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:05,000 --> 00:00:04,000\nends first\n", 6),
        ("WEBVTT\n\n00:01.000 --> 00:02.000\nok\n\n00:03.000 --> 00:61.000\nbad seconds\n", 6),
    ],
)
def test_malformed_lines_are_refused_with_their_number(text: str, line: int) -> None:
    with pytest.raises(LyricsMalformed) as info:
        load(text)
    assert info.value.line == line and f"line {line}:" in info.value.message
    assert info.value.code == "lyrics_malformed" and info.value.http_status == 422


@pytest.mark.parametrize("data", [b"", b"\n \n\t\n", codecs.BOM_UTF8, b"[ar:x]\n[00:01.00]\n"])
def test_empty_lyrics(data: bytes) -> None:
    with pytest.raises(LyricsEmpty) as info:
        load(data)
    assert info.value.code == "lyrics_empty"


def test_undecodable_bytes() -> None:
    with pytest.raises(LyricsEncoding):
        load("caf\u00e9".encode("latin-1") + b"\xff\xfe\xfa" * 3)
    with pytest.raises(LyricsEncoding):
        load(bytes(range(256)) * 3)


def test_far_too_many_lyrics_for_the_song() -> None:
    verse = "\n".join(["a very long line of lyrics that goes on and on and on"] * 40)
    with pytest.raises(LyricsTooLong, match="syllables"):
        load_lyrics(verse.encode(), song_seconds=30.0)
    srt = "".join(
        f"{i}\n00:00:{i // 3:02d},{i % 3 * 300:03d} --> 00:00:{i // 3:02d},{i % 3 * 300 + 200:03d}\nhey\n\n"
        for i in range(1, 40)
    )
    with pytest.raises(LyricsTooLong, match="lines"):
        load(srt, seconds=15.0)


def test_every_lyrics_error_is_a_kapsule_error_with_a_fixed_code() -> None:
    codes = {cls.code for cls in (LyricsEmpty, LyricsEncoding, LyricsMalformed, LyricsPastEnd, LyricsTooLong)}
    assert len(codes) == 5 and all(issubclass(c, LyricsError) for c in (LyricsEmpty, LyricsTooLong))


def test_json_round_trip_has_the_documented_shape() -> None:
    lines = load(ENHANCED)
    data = json.loads(lines_to_json(lines))
    assert set(data[0]) == {"start", "end", "text", "words", "confidence", "sure"}
    assert set(data[0]["words"][0]) == {"start", "end", "text"}
    assert lines_from_json(lines_to_json(lines)) == lines


def test_timed_files_are_sure_and_older_json_without_confidence_still_reads() -> None:
    lines = load(ENHANCED)
    assert all(line.confidence == 1.0 and line.sure for line in lines)
    old = json.dumps([{"start": 1.0, "end": 2.0, "text": "a line", "words": []}])
    assert lines_from_json(old)[0].sure
    unsure = lines[0].model_copy(update={"confidence": 0.2})
    data = json.loads(lines_to_json([unsure]))[0]
    assert data["confidence"] == 0.2 and data["sure"] is False
    assert lines_from_json(lines_to_json([unsure]))[0] == unsure


def test_syllables_cover_scripts() -> None:
    assert syllables("hello world") == 3
    assert syllables("夜空の星") == 4
    assert syllables("שלום עולם") >= 2
