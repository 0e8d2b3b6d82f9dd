"""Gemini as a lyrics aligner: it listens to the song and answers each line's (and word's) times.

The answer is structured output (a pydantic ``response_schema``) and is never trusted blindly:
it must list every line once, in order, inside the song, and the lines it places must mostly sit
on singing (``VocalActivity`` from the offline aligner's first step). An answer that fails is asked
again with the reason (``INVALID_ANSWER_ATTEMPTS``); when Gemini keeps failing, or the service does,
``LyricsAlignmentFailed`` is raised and ``align_lyrics`` falls back to the offline aligner.
What a retry cannot fix is never hidden behind that fallback: a missing or broken configuration is a
``ConfigError``, and Google refusing the call (401/403 a missing role or API, 404 a retired model or
one not served in the location, 400 a bad request) is ``GoogleRequestRefused`` naming the cause, so
the stage fails and says what to change (as the storyboard writer does).
"""

from __future__ import annotations

import itertools
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from kapsule import media
from kapsule.core.errors import ConfigError, GoogleRequestRefused, LyricsAlignmentFailed
from kapsule.core.settings import Settings
from kapsule.infra.genai_client import make_genai_client, temperature_for, with_retries
from kapsule.lyrics import GEMINI_ALIGNER_MODEL
from kapsule.lyrics.align import VocalActivity
from kapsule.lyrics.models import TimedLine, TimedWord
from kapsule.lyrics.timing import spread_words

log = logging.getLogger(__name__)

INVALID_ANSWER_ATTEMPTS = 3
MIN_LINE_ACTIVITY = 0.25  # a line placed where the song has less singing than this is misplaced...
MAX_MISPLACED_SHARE = 0.34  # ...and an answer with more than this share of such lines is refused
# Lines must sit on clearly more singing than the gaps between them: an answer that ignores the
# song (lines spread evenly, say) passes a per-line check wherever instruments read as voice.
MIN_CONTRAST = 0.15

SYSTEM = (
    "You are a lyrics timing engineer. Listen to the song and give, for every numbered lyric line, "
    "the time in seconds from the start of the audio when its singing starts and ends, and where you "
    "can hear them, each word's start and end. Lines are given in the order they are sung; keep that "
    "order, give every index exactly once, and never change the text. Answer JSON only."
)


class GeminiWord(BaseModel):
    text: str
    start: float = Field(ge=0, description="Seconds from the start of the audio")
    end: float = Field(ge=0, description="Seconds from the start of the audio")


class GeminiLine(BaseModel):
    index: int = Field(description="The line's number as given")
    start: float = Field(ge=0, description="When the singing of the line starts, in seconds")
    end: float = Field(ge=0, description="When it ends, in seconds")
    words: list[GeminiWord] = Field(default_factory=list, description="Each word's times, if heard")


class GeminiLyrics(BaseModel):
    """The structured answer Gemini must give (sent as ``response_schema``)."""

    lines: list[GeminiLine]


def align_with_gemini(
    verses: list[list[str]],
    song: Path,
    activity: VocalActivity,
    *,
    model: str = GEMINI_ALIGNER_MODEL,
    settings: Settings,
) -> list[TimedLine]:
    """Timed lines from ``model`` for ``verses`` sung in ``song``, checked against ``activity``."""
    texts = [line for verse in verses for line in verse]
    client = make_genai_client(settings, "gemini")  # ConfigError propagates
    audio = _audio_part(song, settings)
    request = _request_text(verses)
    problem = ""
    for attempt in range(1, INVALID_ANSWER_ATTEMPTS + 1):
        text = (
            request
            if not problem
            else f"{request}\n\nYour previous answer was unusable ({problem}). Answer again."
        )
        try:
            answer = _ask(client, model, audio, text)
        except (ConfigError, GoogleRequestRefused):
            raise  # a setup or a request a retry cannot fix: fail the stage and say why
        except Exception as exc:  # the service failed for good (after with_retries)
            raise LyricsAlignmentFailed(f"{model} could not align the lyrics: {exc}") from exc
        try:
            return check_answer(answer, texts, activity)
        except ValueError as exc:
            problem = str(exc)[:300]
            log.warning("%s lyrics answer %d unusable: %s", model, attempt, problem)
    raise LyricsAlignmentFailed(
        f"{model} gave no usable lyric timing in {INVALID_ANSWER_ATTEMPTS} tries ({problem})"
    )


def check_answer(answer: str, texts: list[str], activity: VocalActivity) -> list[TimedLine]:
    """The answer as timed lines, or ``ValueError`` saying what is wrong with it (pure; unit-tested)."""
    try:
        parsed = GeminiLyrics.model_validate_json(answer)
    except ValidationError as exc:
        raise ValueError(f"not the requested JSON: {exc.errors()[0].get('msg', exc)}") from exc
    got = sorted(line.index for line in parsed.lines)
    if got != list(range(len(texts))):
        raise ValueError(f"expected lines 0..{len(texts) - 1} once each, got {got[:12]}")
    lines = sorted(parsed.lines, key=lambda line: line.index)
    duration = activity.duration
    out: list[TimedLine] = []
    for item in lines:
        if not item.start < item.end:
            raise ValueError(f"line {item.index} ends before it starts")
        if item.start >= duration:
            raise ValueError(
                f"line {item.index} starts at {item.start:.1f} s, after the song ({duration:.1f} s)"
            )
        if out and item.start < out[-1].start:
            raise ValueError(
                f"line {item.index} starts before line {item.index - 1}: the order is sung order"
            )
        end = min(item.end, duration)
        if out and out[-1].end > item.start:  # overlap: the earlier line ends where this one starts
            prev = out.pop()
            out.append(prev.model_copy(update={"end": item.start, "words": _clip(prev.words, item.start)}))
        text = texts[item.index]
        words = _words(item, text, end)
        out.append(TimedLine(start=item.start, end=end, text=text, words=words))
    misplaced = [
        i for i, line in enumerate(out) if activity.mean_between(line.start, line.end) < MIN_LINE_ACTIVITY
    ]
    if len(misplaced) > MAX_MISPLACED_SHARE * len(out):
        raise ValueError(f"lines {misplaced[:8]} are placed where nobody sings; listen again")
    inside, outside = _contrast(out, activity)
    if outside is not None and inside - outside < MIN_CONTRAST:
        raise ValueError(
            f"the lines sit on no more singing ({inside:.2f}) than the gaps between them ({outside:.2f}); "
            "listen again and time each line where it is sung"
        )
    return out


def _contrast(lines: list[TimedLine], activity: VocalActivity) -> tuple[float, float | None]:
    """Mean vocal activity inside the lines and outside them (None when under 2 s is outside)."""
    inside = np.zeros(len(activity.activity), dtype=bool)
    for line in lines:
        inside[int(line.start * activity.fps) : int(line.end * activity.fps) + 1] = True
    if not inside.any():
        return 0.0, None
    if (~inside).sum() < 2 * activity.fps:
        return float(activity.activity[inside].mean()), None
    return float(activity.activity[inside].mean()), float(activity.activity[~inside].mean())


def _words(item: GeminiLine, text: str, end: float) -> list[TimedWord]:
    """Gemini's word times when they spell the line's words, else the line shared by syllables."""
    tokens = text.split()
    heard = [w for w in item.words if w.text.strip()]
    if len(heard) == len(tokens) and all(a.start <= b.start for a, b in itertools.pairwise(heard)):
        return [
            TimedWord(
                start=min(max(w.start, item.start), end),
                end=min(max(w.end, w.start, item.start), end),
                text=token,
            )
            for w, token in zip(heard, tokens, strict=True)
        ]
    return spread_words(text, item.start, end)


def _clip(words: list[TimedWord], end: float) -> list[TimedWord]:
    return [w.model_copy(update={"start": min(w.start, end), "end": min(w.end, end)}) for w in words]


def _request_text(verses: list[list[str]]) -> str:
    numbered: list[dict[str, Any]] = []
    for verse_no, verse in enumerate(verses):
        for line in verse:
            numbered.append({"index": len(numbered), "verse": verse_no, "text": line})
    return f"Lyric lines ({len(numbered)}), in sung order:\n{json.dumps(numbered, ensure_ascii=False)}"


def _audio_part(song: Path, settings: Settings) -> Any:
    from google.genai import types

    with tempfile.TemporaryDirectory(prefix="kapsule-lyrics-") as tmp:
        excerpt = Path(tmp) / "song.mp3"
        cmd = media.audio_excerpt_cmd(song, excerpt, max_seconds=settings.max_song_seconds, bitrate_kbps=48)
        media.run(cmd, timeout=settings.ffmpeg_timeout_s, what="making the song excerpt for Gemini")
        return types.Part.from_bytes(data=excerpt.read_bytes(), mime_type="audio/mpeg")


def _ask(client: Any, model: str, audio: Any, text: str) -> str:
    from google.genai import types

    config = types.GenerateContentConfig(
        system_instruction=SYSTEM,
        response_mime_type="application/json",
        response_schema=GeminiLyrics,
        temperature=temperature_for(model, 0.0),  # timing, not invention: 0 where Google allows it
    )
    response = with_retries(
        lambda: client.models.generate_content(model=model, contents=[audio, text], config=config),
        f"{model} lyrics",
    )
    return str(response.text or "")
