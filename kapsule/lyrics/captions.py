"""Captions from timed lines: ASS for burning with libass, SRT and WebVTT for players and platforms.

Burned style (ASS), decided once for every aspect ratio:
- the font is sized to the frame's short side (~6.5 %: 47 px at 720p either way up, 70 px at
  1080p), bold, white with a dark outline and a soft shadow, so it reads on any shot;
- the safe area: on 16:9 and 1:1 the lines sit near the bottom; on 9:16 they sit about a quarter of
  the height up, clear of the caption, handle and buttons that TikTok, Reels and Shorts lay over the
  bottom fifth, and with a wider right margin, clear of the like/comment column;
- where word times exist, a karaoke highlight (``\\k``) turns each word yellow as it is sung;
  line-timed lyrics show plain white lines (no invented word times);
- the text font is DejaVu Sans; libass falls back through fontconfig for scripts it lacks (Droid
  Sans Fallback for CJK from ``fonts-droid-fallback``; DejaVu covers Hebrew and Arabic, which libass
  shapes and lays right to left with HarfBuzz and FriBidi).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kapsule import media
from kapsule.lyrics.models import TimedLine

CaptionMode = Literal["burned", "soft", "both", "none"]
CAPTION_MODES: tuple[CaptionMode, ...] = ("burned", "soft", "both", "none")
FONT = "DejaVu Sans"
FONT_SHARE = 0.065  # of the frame's short side
WHITE, YELLOW, INK = "&H00FFFFFF", "&H0000E5FF", "&H00101010"  # ASS colours are &HAABBGGRR
SHADOW = "&H80000000"


def resolve_caption_mode(mode: str, has_lyrics: bool) -> CaptionMode:
    """The job's ``captions`` input made definite: ``auto`` is ``both`` with lyrics, else ``none``."""
    if mode == "auto":
        return "both" if has_lyrics else "none"
    if mode not in CAPTION_MODES:
        raise ValueError(f"captions must be auto or one of {', '.join(CAPTION_MODES)}, got {mode!r}")
    return mode


@dataclass(frozen=True)
class CaptionFiles:
    """The caption files written for one video: burn the ASS, mux the SRT, deliver SRT and VTT."""

    ass: Path
    srt: Path
    vtt: Path

    def tracks(self, mode: CaptionMode) -> media.CaptionTracks:
        """What assembly should do with them for a ``--captions`` mode."""
        return media.CaptionTracks(
            burn=self.ass if mode in ("burned", "both") else None,
            soft=self.srt if mode in ("soft", "both") else None,
        )


@dataclass(frozen=True)
class CaptionLayout:
    font_size: int
    outline: int
    shadow: int
    margin_left: int
    margin_right: int
    margin_bottom: int


def caption_layout(width: int, height: int) -> CaptionLayout:
    """Font size, outline and safe-area margins for a frame (see the module docstring)."""
    size = max(12, round(min(width, height) * FONT_SHARE))
    portrait = height > width * 1.2
    return CaptionLayout(
        font_size=size,
        outline=max(2, round(size / 14)),
        shadow=max(1, round(size / 28)),
        margin_left=round(width * (0.08 if portrait else 0.07)),
        margin_right=round(width * (0.16 if portrait else 0.07)),
        margin_bottom=round(height * (0.24 if portrait else 0.07)),
    )


def write_captions(
    lines: list[TimedLine], frame_size: tuple[int, int], dest_dir: Path, *, stem: str = "captions"
) -> CaptionFiles:
    """Write ``stem``.ass, .srt and .vtt into ``dest_dir`` (each atomically) and return their paths."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    files = CaptionFiles(dest_dir / f"{stem}.ass", dest_dir / f"{stem}.srt", dest_dir / f"{stem}.vtt")
    for path, text in (
        (files.ass, ass_text(lines, *frame_size)),
        (files.srt, srt_text(lines)),
        (files.vtt, vtt_text(lines)),
    ):
        partial = path.with_name(f".{path.name}.part")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    return files


def _ass_time(seconds: float) -> str:
    cs = max(0, round(seconds * 100))
    hours, rest = divmod(cs, 360000)
    minutes, rest = divmod(rest, 6000)
    return f"{hours}:{minutes:02d}:{rest // 100:02d}.{rest % 100:02d}"


def _ass_escape(text: str) -> str:
    """Text that libass shows as written: braces would start override tags, backslashes escapes."""
    return text.replace("\\", "\u29f5").replace("{", "\u2774").replace("}", "\u2775").replace("\n", "\\N")


def ass_text(lines: list[TimedLine], width: int, height: int) -> str:
    """An ASS script at the frame's own resolution: one event per line, ``\\k`` tags per timed word."""
    lay = caption_layout(width, height)
    style = (
        f"{FONT},{lay.font_size},{{primary}},{{secondary}},{INK},{SHADOW},-1,0,0,0,100,100,0,0,1,"
        f"{lay.outline},{lay.shadow},2,{lay.margin_left},{lay.margin_right},{lay.margin_bottom},1"
    )
    head = [
        "[Script Info]",
        "; written by Kapsule",
        "ScriptType: v4.00+",
        f"PlayResX: {width}",
        f"PlayResY: {height}",
        "WrapStyle: 0",
        "ScaledBorderAndShadow: yes",
        "YCbCr Matrix: TV.709",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
        "Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, "
        "Shadow, Alignment, MarginL, MarginR, MarginV, Encoding",
        "Style: Lyric," + style.format(primary=WHITE, secondary=WHITE),
        # Karaoke: a word is drawn in SecondaryColour until its \k time has passed, then in Primary.
        "Style: Karaoke," + style.format(primary=YELLOW, secondary=WHITE),
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ]
    events = [
        f"Dialogue: 0,{_ass_time(line.start)},{_ass_time(line.end)},"
        f"{'Karaoke' if highlighted(line) else 'Lyric'},,0,0,0,,{_karaoke(line)}"
        for line in lines
    ]
    return "\n".join([*head, *events]) + "\n"


def highlighted(line: TimedLine) -> bool:
    """Whether a line's words are highlighted as sung: only when they are timed and the line is
    sure (``TimedLine.sure``); a line the aligner could not place is shown whole, never with a
    highlight running over the wrong words."""
    return bool(line.words) and line.sure


def _karaoke(line: TimedLine) -> str:
    """``{\\kNN}word`` runs in centiseconds, counted from the line's start so rounding never drifts."""
    if not highlighted(line):
        return _ass_escape(line.text)
    parts: list[str] = []
    elapsed = 0  # centiseconds of the line already given out
    for i, word in enumerate(line.words):
        lead = round((word.start - line.start) * 100) - elapsed
        if lead > 0:  # a pause before the word: an empty karaoke run
            parts.append(f"{{\\k{lead}}}")
            elapsed += lead
        upto = line.words[i + 1].start if i + 1 < len(line.words) else word.end
        length = max(1, round((upto - line.start) * 100) - elapsed)
        parts.append(f"{{\\k{length}}}{_ass_escape(word.text)}{' ' if i + 1 < len(line.words) else ''}")
        elapsed += length
    return "".join(parts)


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, rest = divmod(ms, 3600000)
    minutes, rest = divmod(rest, 60000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{sep}{rest % 1000:03d}"


def srt_text(lines: list[TimedLine]) -> str:
    """SubRip: numbered cues, ``hh:mm:ss,mmm`` times (the format platforms' uploaders take)."""
    blocks = [
        f"{i}\n{_clock(line.start, ',')} --> {_clock(line.end, ',')}\n{_srt_escape(line.text)}\n"
        for i, line in enumerate(lines, start=1)
    ]
    return "\n".join(blocks)


def _srt_escape(text: str) -> str:
    """Text that SubRip readers show as written: SRT has no escapes, and players (FFmpeg's decoder for
    the MP4's subtitle track among them) obey ``<font size=…>``, ``<b>`` and ``{\\…}`` ASS overrides in
    it, so the characters that open them become look-alikes that mean nothing (as in ``_ass_escape``;
    a brace without a backslash after it opens nothing and stays)."""
    return text.replace("\\", "\u29f5").replace("<", "\u2039").replace(">", "\u203a")


def vtt_text(lines: list[TimedLine]) -> str:
    """WebVTT for the browser's ``<track>``; timed words get inline timestamps (``::cue(:future)``)."""
    blocks = ["WEBVTT\n"]
    for line in lines:
        body = _vtt_escape(line.text)
        if highlighted(line):
            body = " ".join(
                (_vtt_escape(word.text) if i == 0 else f"<{_clock(word.start, '.')}>{_vtt_escape(word.text)}")
                for i, word in enumerate(line.words)
            )
        blocks.append(f"{_clock(line.start, '.')} --> {_clock(line.end, '.')}\n{body}\n")
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    """WebVTT's own entities for its markup, and ``{\\…}`` overrides (which players that convert VTT
    to ASS obey) kept from opening, as in SRT."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\\", "\u29f5")
