"""``kapsule jobs list`` as lines that fit 80 columns: the whole id (the one thing people copy from
it) first and never cut, then the state, the age and the song, which alone is shortened to fit."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from kapsule.job.record import JobRecord

WIDTH = 80
_STATE = 17  # "awaiting approval", the longest state
_AGE = 7


def age(created: datetime, now: datetime) -> str:
    """How long ago, in the largest unit that is at least 1: ``40 s``, ``12 min``, ``3 h``, ``5 d``."""
    seconds = max(0, int((now - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def job_lines(records: Iterable[JobRecord], now: datetime) -> list[str]:
    """A header and one line per job, each at most ``WIDTH`` characters; a re-roll says which shot."""
    rows = []
    for r in records:
        song = Path(r.params.song).name if r.params.song else "—"
        if r.reroll is not None:
            song += f" (shot {r.reroll.shot + 1} again)"
        rows.append((r.id, r.state.value.replace("_", " "), age(r.created_at, now), song))
    id_width = max((len(row[0]) for row in rows), default=2)
    song_width = WIDTH - id_width - _STATE - _AGE - 6
    lines = [f"{'id':<{id_width}}  {'state':<{_STATE}}  {'age':>{_AGE}}  song"]
    for job_id, state, when, song in rows:
        lines.append(f"{job_id:<{id_width}}  {state:<{_STATE}}  {when:>{_AGE}}  {_fit(song, song_width)}")
    if not rows:
        lines.append("no jobs yet: kapsule make SONG")
    return lines
