"""Timed lyrics: what ``lyrics.json`` and ``kapsule lyrics SONG --json`` hold.

``[{start, end, text, words: [{start, end, text}], confidence, sure}]``, seconds from the song's
start. ``words`` is empty when only the line is timed (a plain LRC line): captions then show the
line without a word-by-word highlight rather than inventing word times.

``confidence`` (0..1) is how sure the aligner is of the line's place: 1 for times the user gave (a
timed file), the aligner's own estimate for plain text. A line under ``SURE_CONFIDENCE`` is
``sure: false``: the review, notebook 01 and ``kapsule lyrics`` mark it, and burned karaoke shows it
whole, without a word highlight it could not place.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, computed_field, model_validator

SURE_CONFIDENCE = 0.5


class TimedWord(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    text: str

    @model_validator(mode="after")
    def _ordered(self) -> TimedWord:
        if self.end < self.start:
            raise ValueError(f"a word ends ({self.end}) before it starts ({self.start})")
        return self


class TimedLine(BaseModel):
    """One sung line. ``text`` may hold a newline when two cues shared one start (bilingual files)."""

    model_config = ConfigDict(frozen=True)

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    text: str
    words: list[TimedWord] = Field(default_factory=list)
    confidence: float = Field(default=1.0, ge=0, le=1)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def sure(self) -> bool:
        """Placed well enough to highlight word by word and to trust without listening."""
        return self.confidence >= SURE_CONFIDENCE

    @model_validator(mode="after")
    def _ordered(self) -> TimedLine:
        if self.end < self.start:
            raise ValueError(f"a line ends ({self.end}) before it starts ({self.start})")
        return self


LINES = TypeAdapter(list[TimedLine])


def lines_to_json(lines: list[TimedLine], *, indent: int | None = 2) -> str:
    """The JSON list every consumer reads (times rounded to the millisecond, confidence to 0.01)."""
    rounded = [
        TimedLine(
            start=round(line.start, 3),
            end=round(line.end, 3),
            text=line.text,
            words=[TimedWord(start=round(w.start, 3), end=round(w.end, 3), text=w.text) for w in line.words],
            confidence=round(line.confidence, 2),
        )
        for line in lines
    ]
    return LINES.dump_json(rounded, indent=indent).decode()


def lines_from_json(data: str | bytes) -> list[TimedLine]:
    """Read what ``lines_to_json`` wrote (a pydantic ``ValidationError`` if it is not that shape)."""
    return LINES.validate_json(data)
