"""Read lyrics in the forms people have them: LRC (line- or word-timed), SRT, WebVTT, or plain text.

The format is sniffed from the content, never from a file name: pasted text has none, and ``.txt``
files often hold LRC. Bytes are decoded as UTF-8 or UTF-16 (a BOM is honoured, and UTF-16 without
one is recognised by its zero bytes); anything else is refused rather than guessed, because a wrong
guess puts mojibake on screen. A line of a timed file that cannot be read is refused with its
number, so the user can fix it in their editor. Parsers return raw cues in file order with their
line numbers; ``timing.settle`` sorts, trims and checks them against the song.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from typing import Literal

from kapsule.core.errors import LyricsEmpty, LyricsEncoding, LyricsMalformed

Format = Literal["lrc", "srt", "vtt", "plain"]
MAX_LYRICS_BYTES = 512 * 1024  # a whole opera libretto is ~100 KB; anything larger is not lyrics


@dataclass(frozen=True)
class RawWord:
    start: float
    end: float | None
    text: str


@dataclass(frozen=True)
class Cue:
    """One timed line as written in the file; ``end`` None when the format gives only a start (LRC)."""

    line_no: int
    start: float
    end: float | None
    text: str
    words: tuple[RawWord, ...] = ()


@dataclass(frozen=True)
class ParsedLyrics:
    """Either timed ``cues`` (LRC, SRT, VTT) or plain ``verses`` (lists of lines) still to be aligned."""

    format: Format
    cues: list[Cue] = field(default_factory=list)
    verses: list[list[str]] = field(default_factory=list)

    @property
    def timed(self) -> bool:
        return self.format != "plain"


def decode(data: bytes) -> str:
    """Text of ``data``: UTF-8 (with or without BOM) or UTF-16 (BOM, or zero bytes that betray it)."""
    if len(data) > MAX_LYRICS_BYTES:
        raise LyricsEncoding(f"the lyrics are {len(data) // 1024} KB; at most {MAX_LYRICS_BYTES // 1024} KB")
    try:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            text = data.decode("utf-16")
        elif len(data) >= 2 and data.count(0) > len(data) // 4:  # BOM-less UTF-16: ASCII has a zero byte
            text = data.decode("utf-16-le" if data[1] == 0 else "utf-16-be")
        else:
            text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LyricsEncoding(
            f"the lyrics are not UTF-8 or UTF-16 text (byte {exc.start} cannot be read); "
            "save them as UTF-8 and try again"
        ) from exc
    if "\x00" in text:
        raise LyricsEncoding("the lyrics contain binary data; give a text file (.lrc, .srt, .vtt or .txt)")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")


# LRC: [mm:ss], [mm:ss.x], [mm:ss.xx], [mm:ss.xxx] (also ':' before the fraction, as some tools write)
_LRC_TIME = r"(\d{1,3}):(\d{1,2})(?:[.:](\d{1,3}))?"
LRC_TAG = re.compile(rf"\[{_LRC_TIME}\]")
LRC_WORD = re.compile(rf"<{_LRC_TIME}>")
LRC_META = re.compile(r"\[([A-Za-z#][A-Za-z0-9_ #-]*):([^\]]*)\]\s*$")
CLOCK = r"(?:(\d{1,3}):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})"
ARROW = re.compile(rf"^\s*{CLOCK}\s*-->\s*{CLOCK}(?:\s+.*)?$")
VTT_INLINE = re.compile(r"<(?:(\d{1,3}):)?(\d{1,2}):(\d{1,2})\.(\d{1,3})>")
SECTION_LABEL = re.compile(r"^[\[(][^\])]{0,40}[\])]$")  # "[Chorus]", "(Verse 2)": not sung
TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # HTML-ish tags and SSA overrides inside SRT/VTT text


def sniff(text: str) -> Format:
    """``vtt`` (WEBVTT header), ``srt`` (a ``-->`` line), ``lrc`` (a ``[mm:ss`` line tag) or ``plain``."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if lines and lines[0].startswith("WEBVTT"):
        return "vtt"
    if any(ARROW.match(line) for line in lines[:50]):
        return "srt"
    if any(LRC_TAG.match(line) for line in lines[:50]):
        return "lrc"
    return "plain"


def parse(data: bytes) -> ParsedLyrics:
    """Decode, sniff and parse; ``LyricsEmpty`` if nothing is left to sing."""
    text = decode(data)
    kind = sniff(text)
    if kind == "plain":
        verses = parse_plain(text)
        if not verses:
            raise LyricsEmpty("the lyrics are empty: give one sung line per line of text")
        return ParsedLyrics("plain", verses=verses)
    cues = {"lrc": parse_lrc, "srt": parse_srt, "vtt": parse_vtt}[kind](text)
    if not any(cue.text for cue in cues):
        raise LyricsEmpty(f"the {kind.upper()} file has no timed line with text")
    return ParsedLyrics(kind, cues=cues)


def _seconds(minutes: str | None, seconds: str, fraction: str | None, hours: str | None = None) -> float:
    frac = float(f"0.{fraction}") if fraction else 0.0
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds) + frac


def parse_lrc(text: str) -> list[Cue]:
    """LRC lines ``[mm:ss.xx]text`` (several tags = the line repeats), enhanced ``<mm:ss.xx>word`` tags,
    ``[offset:ms]``; other ``[key:value]`` tags are metadata. A tag-only line ends the previous one."""
    cues: list[Cue] = []
    offset = 0.0
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        meta = LRC_META.match(line)
        if meta and not LRC_TAG.match(line):
            if meta.group(1).strip().lower() == "offset":
                try:
                    offset = int(meta.group(2).strip()) / 1000  # positive: lyrics come sooner
                except ValueError:
                    raise LyricsMalformed(
                        f"[offset:] must be whole milliseconds: {line!r}", line=number
                    ) from None
            continue
        if SECTION_LABEL.match(line) and not LRC_TAG.match(line):
            continue  # "[Chorus]": a label some LRC editors keep, not a sung line
        starts: list[float] = []
        rest = line
        while match := LRC_TAG.match(rest):
            starts.append(_seconds(match.group(1), match.group(2), match.group(3)))
            rest = rest[match.end() :]
            if LRC_TAG.match(rest.lstrip()):
                rest = rest.lstrip()
        if not starts:
            raise LyricsMalformed(f"expected a [mm:ss.xx] time tag at the start of {line!r}", line=number)
        body, words = _lrc_words(rest, number)
        if re.search(r"\[\d", body):
            raise LyricsMalformed(f"a time tag is malformed or misplaced in {line!r}", line=number)
        if re.search(r"<\d", body):
            raise LyricsMalformed(f"a word tag is malformed in {line!r}", line=number)
        for start in starts:
            shift = start - starts[0] - offset  # word tags are absolute: a repeat moves them with its line
            shifted = tuple(
                RawWord(max(0.0, w.start + shift), None if w.end is None else max(0.0, w.end + shift), w.text)
                for w in words
            )
            cues.append(Cue(number, max(0.0, start - offset), None, body, shifted))
    return cues


def _lrc_words(rest: str, number: int) -> tuple[str, tuple[RawWord, ...]]:
    """Split ``<t>word <t>word <t>`` into words with times (the last tag, if bare, ends the last word)."""
    tags = list(LRC_WORD.finditer(rest))
    if not tags:
        return " ".join(rest.split()), ()
    if rest[: tags[0].start()].strip():
        raise LyricsMalformed(f"text before the first word tag in {rest.strip()!r}", line=number)
    words: list[RawWord] = []
    for i, tag in enumerate(tags):
        start = _seconds(tag.group(1), tag.group(2), tag.group(3))
        segment = rest[tag.end() : tags[i + 1].start() if i + 1 < len(tags) else len(rest)].strip()
        if words and words[-1].end is None:
            words[-1] = RawWord(words[-1].start, start, words[-1].text)
        if segment:
            words.append(RawWord(start, None, " ".join(segment.split())))
    return " ".join(w.text for w in words), tuple(words)


def _blocks(text: str) -> list[list[tuple[int, str]]]:
    """Blank-line separated blocks of (line number, stripped line)."""
    blocks: list[list[tuple[int, str]]] = [[]]
    for number, raw in enumerate(text.split("\n"), start=1):
        if raw.strip():
            blocks[-1].append((number, raw.strip()))
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def _clean(text: str) -> str:
    return " ".join(TAG.sub("", text).split())


def _arrow(number: int, line: str) -> tuple[float, float]:
    match = ARROW.match(line)
    if match is None:
        raise LyricsMalformed(f"expected 'start --> end' times, got {line!r}", line=number)
    g = match.groups()
    start, end = _seconds(g[1], g[2], g[3], g[0]), _seconds(g[5], g[6], g[7], g[4])
    if int(g[2]) > 59 or int(g[6]) > 59 or (g[0] is not None and int(g[1]) > 59):
        raise LyricsMalformed(f"a time has more than 59 minutes or seconds: {line!r}", line=number)
    if end < start:
        raise LyricsMalformed(f"the cue ends before it starts: {line!r}", line=number)
    return start, end


def parse_srt(text: str) -> list[Cue]:
    """SRT blocks: an optional index, ``hh:mm:ss,mmm --> hh:mm:ss,mmm``, then the text lines."""
    cues: list[Cue] = []
    for block in _blocks(text):
        lines = block[1:] if block[0][1].isdigit() and len(block) > 1 else block
        number, timing = lines[0]
        start, end = _arrow(number, timing)
        body = "\n".join(_clean(t) for _, t in lines[1:] if _clean(t))
        cues.append(Cue(number, start, end, body))
    return cues


def parse_vtt(text: str) -> list[Cue]:
    """WebVTT cues (NOTE, STYLE and REGION blocks skipped); inline ``<hh:mm:ss.mmm>`` tags time words."""
    blocks = _blocks(text)
    cues: list[Cue] = []
    for block in blocks[1:] if blocks and blocks[0][0][1].startswith("WEBVTT") else blocks:
        if block[0][1].split(" ", 1)[0] in {"NOTE", "STYLE", "REGION"}:
            continue
        lines = block[1:] if "-->" not in block[0][1] and len(block) > 1 else block
        number, timing = lines[0]
        start, end = _arrow(number, timing)
        raw = " ".join(t for _, t in lines[1:])
        words = _vtt_words(raw, start, end)
        body = "\n".join(_clean(t) for _, t in lines[1:] if _clean(t))
        cues.append(Cue(number, start, end, body, words))
    return cues


def _vtt_words(raw: str, start: float, end: float) -> tuple[RawWord, ...]:
    """Karaoke-style VTT: ``word <00:01.500>word``; each stamp starts the text after it."""
    stamps = list(VTT_INLINE.finditer(raw))
    if not stamps:
        return ()
    times = [start] + [_seconds(s.group(2), s.group(3), s.group(4), s.group(1)) for s in stamps]
    pieces = [raw[: stamps[0].start()]] + [
        raw[s.end() : stamps[i + 1].start() if i + 1 < len(stamps) else len(raw)]
        for i, s in enumerate(stamps)
    ]
    words = [(t, _clean(p)) for t, p in zip(times, pieces, strict=True)]
    words = [(t, p) for t, p in words if p]
    ends = [t for t, _ in words[1:]] + [end]
    return tuple(RawWord(t, e, p) for (t, p), e in zip(words, ends, strict=True))


def parse_plain(text: str) -> list[list[str]]:
    """Verses (blank-line separated) of sung lines; section labels like ``[Chorus]`` are dropped."""
    verses: list[list[str]] = [[]]
    for raw in text.split("\n"):
        line = " ".join(raw.split())
        if not line:
            if verses[-1]:
                verses.append([])
        elif not SECTION_LABEL.match(line):
            verses[-1].append(line)
    return [v for v in verses if v]
