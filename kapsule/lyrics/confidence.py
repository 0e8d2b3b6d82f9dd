"""How sure the offline aligner is of each line's place (``TimedLine.confidence``, 0..1).

Two aligners that fail differently place every line: PocketSphinx forced alignment (words in an
English model) and the vocal-activity aligner (where the non-repeating part of the song is). A line
is likely right where they agree on its start, singing begins there (more voice just after the
start than just before it) and it lasts about what its syllables take at the song's pace; it is
often wrong where the aligners are seconds apart, or the line is squeezed or stretched (the forced
aligner lost its path). A line at the song's very start is never sure: that is where a lost forced
alignment parks the first words. The weights were set on the ``TUNE`` pieces of
``tests/support/sung.py`` only; ``benchmarks/lyrics.py`` reports the held-out ``TEST`` pieces.
"""

from __future__ import annotations

import math

from kapsule.lyrics.align import VocalActivity
from kapsule.lyrics.models import TimedLine
from kapsule.lyrics.timing import syllables

AGREE_S = 0.3  # aligners this close on a line's start agree fully...
APART_S = 1.5  # ...and this far apart not at all
LENGTH_OK = (0.6, 1.6)  # a line's length over its syllables x the song's median pace: plausible range
WEIGHTS = (0.55, 0.25, 0.2)  # agreement, singing onset, plausible length
SONG_START_S = 0.5  # a line starting before this is at most...
AT_SONG_START = 0.3  # ...this sure
VOCAL_ONLY = 0.45  # the vocal-activity aligner alone (no PocketSphinx answer) is never sure


def rate_lines(
    chosen: list[TimedLine], sphinx: list[TimedLine] | None, vocal: list[TimedLine], act: VocalActivity
) -> list[TimedLine]:
    """``chosen`` with each line's confidence (see the module docstring); times are unchanged.

    Without PocketSphinx's answer (another language, or it failed) only the singing counts, scaled
    below sure: the vocal-activity aligner alone is seconds off on too many unseen songs to trust.
    """
    paces = sorted((line.end - line.start) / max(1, syllables(line.text)) for line in chosen)
    pace = paces[len(paces) // 2] if paces else 0.3
    out: list[TimedLine] = []
    for i, line in enumerate(chosen):
        onset = act.onset_at(line.start)
        if sphinx is None:
            confidence = VOCAL_ONLY * onset
        else:
            apart = max(abs(line.start - sphinx[i].start), abs(line.start - vocal[i].start))
            agree = _clip((APART_S - apart) / (APART_S - AGREE_S))
            ratio = max(0.01, (line.end - line.start) / max(1e-3, pace * max(1, syllables(line.text))))
            low, high = LENGTH_OK
            edge = high if ratio > high else low
            plausible = 1.0 if low <= ratio <= high else _clip(1 - 2 * abs(math.log(ratio / edge)))
            confidence = WEIGHTS[0] * agree + WEIGHTS[1] * onset + WEIGHTS[2] * plausible
        if line.start < SONG_START_S:
            confidence = min(confidence, AT_SONG_START)
        out.append(line.model_copy(update={"confidence": round(confidence, 3)}))
    return out


def _clip(value: float) -> float:
    return max(0.0, min(1.0, value))
