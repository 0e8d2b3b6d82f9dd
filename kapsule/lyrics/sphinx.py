"""Forced alignment with PocketSphinx: the en-US acoustic model and dictionary inside its wheel.

Given the words, the recogniser only has to find *where* each is said (``set_align_text``), which
it does far better than recognising them, even sung over a band. It knows English only and its
dictionary's words: a word it lacks is left out of the alignment and timed from its neighbours, and
lyrics with too many such words (another language) are refused so the caller can use
``align.align_offline``, which needs no language at all.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from kapsule import media
from kapsule.core.errors import LyricsAlignmentFailed
from kapsule.lyrics.models import TimedLine, TimedWord
from kapsule.lyrics.timing import spread_words, syllables

RATE = 16000  # the bundled en-us model's rate
FRAMES_PER_SECOND = 100
MAX_HELD_WORD_S = 2.0  # a sung word held longer than this was stretched over music by the aligner
MAX_UNKNOWN_SHARE = 0.25  # more words than this outside the dictionary: not English enough
_WORD = re.compile(r"[a-z']+")
# Search beams: wide ones first (on sung lines over a dense backing the default beam drops the
# right path and drifts seconds off: TUNE pieces' median 3.4 s vs 0.9 s wide), then PocketSphinx's
# defaults for a song where the wide search fails.
BEAMS: tuple[dict[str, float], ...] = ({"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80}, {})


def sphinx_available() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


def align_sphinx(verses: list[list[str]], song: Path) -> list[TimedLine]:
    """Timed lines and words for ``verses`` sung in ``song``; ``LyricsAlignmentFailed`` if it cannot."""
    from pocketsphinx import Decoder

    texts = [line for verse in verses for line in verse]
    decoder = Decoder(samprate=RATE, bestpath=False, loglevel="FATAL", **BEAMS[0])
    tokens: list[tuple[int, int, str]] = []  # (line, word index in line, dictionary word)
    unknown = total = 0
    for li, text in enumerate(texts):
        for wi, raw in enumerate(text.split()):
            total += 1
            word = "".join(_WORD.findall(raw.lower()))
            if word and decoder.lookup_word(word) is not None:
                tokens.append((li, wi, word))
            else:
                unknown += 1
    if not tokens or unknown > MAX_UNKNOWN_SHARE * total:
        raise LyricsAlignmentFailed(
            f"{unknown} of {total} words are not in PocketSphinx's English dictionary"
        )
    samples = media.decode_audio(song, sample_rate=RATE)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    text = " ".join(word for _, _, word in tokens)
    segments: list[tuple[float, float]] = []
    for n, beams in enumerate(BEAMS):  # the wide search (~2x slower) first; the default if it fails
        if n:
            decoder = Decoder(samprate=RATE, bestpath=False, loglevel="FATAL", **beams)
        segments = _align(decoder, text, pcm)
        if len(segments) == len(tokens):
            return _lines(texts, tokens, _unstretch(segments, [syllables(word) for _, _, word in tokens]))
    raise LyricsAlignmentFailed(f"PocketSphinx aligned {len(segments)} of {len(tokens)} words")


def _align(decoder: Any, text: str, pcm: bytes) -> list[tuple[float, float]]:
    """(start, end) seconds of each word of ``text``, or fewer when the search fails."""
    try:
        decoder.set_align_text(text)
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        found = decoder.seg()  # None when the search never reached the text's end
    except RuntimeError:
        return []
    return [
        (seg.start_frame / FRAMES_PER_SECOND, (seg.end_frame + 1) / FRAMES_PER_SECOND)
        for seg in found or ()
        if not seg.word.startswith(("<", "[", "+"))
    ]


def _unstretch(segments: list[tuple[float, float]], weights: list[int]) -> list[tuple[float, float]]:
    """Shorten words the aligner stretched over an instrumental passage.

    Forced alignment must place every word somewhere, and the first word after a long instrumental
    stretch (or the last before one) often swallows it: "walking" from 0.3 s to 8.9 s. A word held
    longer than ``MAX_HELD_WORD_S`` is cut to its syllables at the song's own median pace, keeping
    the edge that touches its neighbour (its end if it starts a line's run, else its start).
    """
    paces = sorted(
        (e - s) / max(1, w) for (s, e), w in zip(segments, weights, strict=True) if e - s < MAX_HELD_WORD_S
    )
    pace = paces[len(paces) // 2] if paces else 0.3
    out = list(segments)
    for i, ((start, end), weight) in enumerate(zip(segments, weights, strict=True)):
        if end - start <= MAX_HELD_WORD_S:
            continue
        length = min(MAX_HELD_WORD_S, max(0.2, weight * pace * 1.5))
        gap_before = start - segments[i - 1][1] if i else start
        gap_after = segments[i + 1][0] - end if i + 1 < len(segments) else float("inf")
        # The stretched side is the one that reaches into the gap: keep the edge nearer a neighbour.
        out[i] = (end - length, end) if gap_after <= gap_before else (start, start + length)
    return out


def _lines(
    texts: list[str], tokens: list[tuple[int, int, str]], segments: list[tuple[float, float]]
) -> list[TimedLine]:
    """Lines from the aligned words; words the dictionary lacked share the gaps of their line."""
    timed: dict[int, dict[int, tuple[float, float]]] = {}
    for (li, wi, _), span in zip(tokens, segments, strict=True):
        timed.setdefault(li, {})[wi] = span
    lines: list[TimedLine] = []
    previous_end = 0.0
    for li, text in enumerate(texts):
        known = timed.get(li, {})
        words = text.split()
        if not known:  # no word of this line could be aligned: it follows the previous one briefly
            start = previous_end
            lines.append(
                TimedLine(
                    start=start, end=start + 0.5, text=text, words=spread_words(text, start, start + 0.5)
                )
            )
            previous_end = start + 0.5
            continue
        start, end = min(s for s, _ in known.values()), max(e for _, e in known.values())
        out: list[TimedWord] = []
        for wi, word in enumerate(words):
            if wi in known:
                s, e = known[wi]
            else:  # between its aligned neighbours
                s = max([known[j][1] for j in known if j < wi], default=start)
                e = min([known[j][0] for j in known if j > wi], default=end)
                e = max(e, s)
            out.append(TimedWord(start=s, end=e, text=word))
        lines.append(TimedLine(start=min(start, out[0].start), end=end, text=text, words=out))
        previous_end = end
    return lines
