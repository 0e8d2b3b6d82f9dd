"""Make parsed cues safe to put on screen: sorted, non-overlapping, inside the song, not absurdly many.

Policies (each a decision a user would otherwise have to make by hand):
- cues are sorted by start (files edited by hand are often out of order);
- a cue that overlaps the next is trimmed to end where the next starts; cues sharing one start are
  merged into one two-line caption (bilingual SRTs do that);
- an LRC line has only a start: it ends where the next line (or an empty time tag) starts, but no
  later than ``OPEN_LINE_MAX_S`` (or its syllables' time, if longer), so an instrumental break
  shows no stale caption;
- a cue running past the song's end is clipped to it; a cue *starting* after the end is refused:
  those lyrics were timed for another edit of the song, and silently dropping lines would hide that;
- more words or lines than anyone can sing in the song is refused (``LyricsTooLong``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from kapsule.core.errors import LyricsPastEnd, LyricsTooLong
from kapsule.lyrics.models import TimedLine, TimedWord
from kapsule.lyrics.parsers import Cue, RawWord

SAME_START_S = 0.001
OPEN_LINE_MAX_S = 6.0  # an LRC line shows until the next one, but no longer than this...
OPEN_LINE_BREATH_S = 1.0  # ...or than its syllables need plus this, if that is longer
SECONDS_PER_SYLLABLE = 0.35  # a relaxed sung syllable (fast pop is ~0.15 s, ballads ~0.5 s)
MAX_SYLLABLES_PER_SECOND = 8.0  # the fastest rap stays under ~7 sustained; over 8 no song can hold it
MIN_SECONDS_PER_LINE = 0.5  # no caption can be read in less
MIN_CUE_S = 0.04  # a cue shorter than a frame is dropped

_VOWELS = re.compile(r"[aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüýÿœаеёиоуыэюяαεηιουωάέήίόύώ]+", re.IGNORECASE)


def syllables(text: str) -> int:
    """A rough syllable count: vowel groups in alphabetic words, one per CJK/kana/hangul character.

    Good enough to share a line's time among its words and to tell an impossible amount of text.
    Scripts without written vowels (Arabic, Hebrew) count ~one syllable per two letters.
    """
    count = 0
    for word in text.split():
        wide = sum(1 for ch in word if ch.isalpha() and unicodedata.east_asian_width(ch) in "WF")
        letters = "".join(ch for ch in word if ch.isalpha() and unicodedata.east_asian_width(ch) not in "WF")
        groups = len(_VOWELS.findall(letters))
        if letters and groups == 0:
            groups = max(1, len(letters) // 2)
        count += (wide + groups) or (1 if any(ch.isalnum() for ch in word) else 0)
    return count


def check_capacity(lines: Sequence[str], song_seconds: float) -> None:
    """Refuse lyrics no one could sing in ``song_seconds`` (too many syllables or lines)."""
    total = sum(syllables(line) for line in lines)
    limit = MAX_SYLLABLES_PER_SECOND * song_seconds
    if total > limit:
        raise LyricsTooLong(
            f"the lyrics have ~{total} syllables, more than a {song_seconds:.0f} s song can hold "
            f"(at most ~{int(limit)}); are they for this song?"
        )
    if len(lines) * MIN_SECONDS_PER_LINE > song_seconds:
        raise LyricsTooLong(
            f"{len(lines)} lines in a {song_seconds:.0f} s song leave under {MIN_SECONDS_PER_LINE} s a line; "
            "are they for this song?"
        )


def settle(cues: Sequence[Cue], song_seconds: float) -> list[TimedLine]:
    """Sorted, trimmed, clipped and merged timed lines from raw cues (see the module's policies)."""
    ordered = sorted(cues, key=lambda c: (c.start, c.line_no))
    for cue in ordered:
        if cue.start >= song_seconds and cue.text:
            raise LyricsPastEnd(
                f"line {cue.line_no}: {cue.text[:40]!r} starts at {_clock(cue.start)}, after the song ends "
                f"({_clock(song_seconds)}); are these lyrics timed for another version of the song?"
            )
    check_capacity([c.text for c in ordered if c.text], song_seconds)
    lines: list[TimedLine] = []
    for i, cue in enumerate(ordered):
        if not cue.text:
            continue  # an empty LRC tag or SRT cue only marks where the previous line ends
        later = [c.start for c in ordered[i + 1 :] if c.start > cue.start + SAME_START_S]
        next_start = later[0] if later else song_seconds
        end = cue.end
        if end is None and cue.words and cue.words[-1].end is not None:
            end = cue.words[-1].end  # enhanced LRC: a closing word tag ends the line
        elif end is None:
            sung = syllables(cue.text) * SECONDS_PER_SYLLABLE + OPEN_LINE_BREATH_S
            end = min(next_start, cue.start + max(OPEN_LINE_MAX_S, sung))
        end = min(end, next_start, song_seconds)
        if end - cue.start < MIN_CUE_S:
            continue
        words = _words(cue.words, cue.start, end)
        if lines and abs(lines[-1].start - cue.start) <= SAME_START_S:
            prev = lines.pop()
            cue_end = max(prev.end, end)
            lines.append(
                TimedLine(start=prev.start, end=cue_end, text=f"{prev.text}\n{cue.text}", words=prev.words)
            )
            continue
        lines.append(TimedLine(start=cue.start, end=end, text=cue.text, words=words))
    return lines


def _words(raw: Sequence[RawWord], start: float, end: float) -> list[TimedWord]:
    """Word times inside their line, each ending where the next starts when the file gave no end."""
    ordered = sorted(raw, key=lambda w: w.start)
    words: list[TimedWord] = []
    for i, word in enumerate(ordered):
        begin = min(max(word.start, start), end)
        stop = word.end if word.end is not None else (ordered[i + 1].start if i + 1 < len(ordered) else end)
        stop = min(max(stop, begin), end)
        if i + 1 < len(ordered):
            stop = min(stop, max(begin, ordered[i + 1].start))
        words.append(TimedWord(start=begin, end=stop, text=word.text))
    return words


def spread_words(text: str, start: float, end: float) -> list[TimedWord]:
    """Share a line's time among its words by syllables (for aligners that time lines, not words)."""
    tokens = text.split()
    weights = [max(1, syllables(token)) for token in tokens]
    total = sum(weights) or 1
    words: list[TimedWord] = []
    at = start
    for token, weight in zip(tokens, weights, strict=True):
        stop = at + (end - start) * weight / total
        words.append(TimedWord(start=at, end=min(stop, end), text=token))
        at = stop
    return words


def _clock(seconds: float) -> str:
    """``m:ss.cc``, rounded once to centiseconds (59.999 s is ``1:00.00``, never ``0:60.00``)."""
    minutes, centis = divmod(max(0, round(seconds * 100)), 6000)
    return f"{minutes}:{centis // 100:02d}.{centis % 100:02d}"
