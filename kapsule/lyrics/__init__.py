"""Lyrics: read them in any common form, time them to the song, and hand timed lines to captions.

Entry points for the stages, the CLI and the API:
- ``load_lyrics(data, song_seconds=..., song=..., aligner=...)``: bytes of an LRC/SRT/VTT file or
  plain text in, timed lines out (timed files used as they are; plain text aligned to ``song``).
- ``align_lyrics(verses, song, ...)``: the aligner alone (offline, or Gemini checked against the
  song's vocal activity).
- ``lines_to_json`` / ``lines_from_json``: the ``[{start, end, text, words}]`` file format.
- ``write_captions`` (``lyrics.captions``): ASS, SRT and VTT files for the assembly and delivery.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kapsule.core.errors import LyricsAlignmentFailed
from kapsule.lyrics.models import TimedLine, TimedWord, lines_from_json, lines_to_json
from kapsule.lyrics.parsers import ParsedLyrics, parse
from kapsule.lyrics.timing import check_capacity, settle

if TYPE_CHECKING:
    from kapsule.core.settings import Settings

log = logging.getLogger(__name__)

Aligner = Literal["offline", "gemini"]
ALIGNERS: tuple[Aligner, ...] = ("offline", "gemini")
# The Gemini aligner's model when the job's prompt model is not a Gemini one: a current stable Flash
# id that hears audio (Google's Gemini API models page, read 2026-12-07, lists Gemini 3.6 Flash as
# stable). gemini-2.5-flash, the previous default, was retired on Vertex AI on 2026-06-17.
GEMINI_ALIGNER_MODEL = "gemini-3.6-flash"

__all__ = [
    "ALIGNERS",
    "GEMINI_ALIGNER_MODEL",
    "Aligner",
    "ParsedLyrics",
    "TimedLine",
    "TimedWord",
    "align_lyrics",
    "check_lyrics",
    "lines_from_json",
    "lines_to_json",
    "load_lyrics",
    "parse",
    "resolve_aligner",
]


def load_lyrics(
    data: bytes,
    *,
    song_seconds: float,
    song: Path | None = None,
    aligner: Aligner = "offline",
    gemini_model: str = GEMINI_ALIGNER_MODEL,
    settings: Settings | None = None,
) -> list[TimedLine]:
    """Timed lines from lyrics bytes; every problem raises a ``LyricsError`` subclass before anything is made.

    Timed formats need only ``song_seconds``; plain text is aligned to ``song`` (required then) by
    ``aligner``: ``offline`` (no network, no model) or ``gemini`` (``gemini_model`` listens to the song).
    """
    parsed = parse(data)
    if parsed.timed:
        return settle(parsed.cues, song_seconds)
    lines = [line for verse in parsed.verses for line in verse]
    check_capacity(lines, song_seconds)
    if song is None:
        raise ValueError("plain lyrics need the song to be aligned to")
    return align_lyrics(parsed.verses, song, aligner=aligner, gemini_model=gemini_model, settings=settings)


def check_lyrics(data: bytes, *, song_seconds: float) -> str:
    """Refuse lyrics that cannot be used with this song (a ``LyricsError``: malformed with its line
    number, empty, not text, past the song's end, too long), without aligning anything: what the job
    service runs before a job exists. Returns the extension to store them under (their format)."""
    parsed = parse(data)
    if parsed.timed:
        settle(parsed.cues, song_seconds)
        return parsed.format
    check_capacity([line for verse in parsed.verses for line in verse], song_seconds)
    return "txt"


def resolve_aligner(aligner: str, prompt_model: str) -> Aligner:
    """The job's ``lyrics_aligner`` made definite: ``auto`` is Gemini when the job's prompt model is
    a Gemini model (credentials are configured then), else offline."""
    if aligner == "auto":
        return "gemini" if prompt_model.startswith("gemini-") else "offline"
    if aligner not in ALIGNERS:
        raise ValueError(f"lyrics_aligner must be auto, offline or gemini, got {aligner!r}")
    return aligner


def align_lyrics(
    verses: list[list[str]],
    song: Path,
    *,
    aligner: Aligner = "offline",
    gemini_model: str = GEMINI_ALIGNER_MODEL,
    settings: Settings | None = None,
) -> list[TimedLine]:
    """Place plain lyrics (verses of lines) on ``song``.

    ``gemini``: Gemini's answer, checked against the song's vocal activity (``lyrics.gemini``).
    ``offline``, or when Gemini fails: PocketSphinx forced alignment for English lyrics
    (``lyrics.sphinx``), overruled line by line by the language-free vocal-activity aligner
    (``lyrics.align``) where only the latter's line starts on singing; the vocal-activity aligner
    alone when PocketSphinx cannot align them. Each line then gets its confidence
    (``lyrics.confidence``). Figures in ``benchmarks/README.md``.
    """
    from kapsule.lyrics.align import align_offline, prefer_singing, vocal_activity_of
    from kapsule.lyrics.confidence import rate_lines
    from kapsule.lyrics.sphinx import align_sphinx, sphinx_available

    if aligner == "gemini":
        from kapsule.lyrics.gemini import align_with_gemini

        if settings is None:  # a caller's mistake, like plain lyrics without a song
            raise ValueError("the gemini aligner needs the deployment's settings (its model access)")

        try:
            return align_with_gemini(
                verses, song, vocal_activity_of(song), model=gemini_model, settings=settings
            )
        except LyricsAlignmentFailed as exc:  # a lyric video is still made, with the offline timing
            log.warning("falling back to the offline lyrics aligner: %s", exc)
    activity = vocal_activity_of(song)
    fallback = align_offline(verses, activity)
    if sphinx_available():
        try:
            sphinx = align_sphinx(verses, song)
            return rate_lines(prefer_singing(sphinx, fallback, activity), sphinx, fallback, activity)
        except LyricsAlignmentFailed as exc:
            log.info("PocketSphinx could not align these lyrics (%s); using the vocal-activity aligner", exc)
    return rate_lines(fallback, None, fallback, activity)
