"""Lyric-line confidence: aligners that agree on singing are sure, anything else is not."""

from __future__ import annotations

import numpy as np

from kapsule.lyrics.align import VocalActivity
from kapsule.lyrics.confidence import rate_lines
from kapsule.lyrics.models import TimedLine
from kapsule.lyrics.timing import spread_words

FPS = 20.0


def _activity(sung: list[tuple[float, float]], seconds: float = 20.0) -> VocalActivity:
    act = np.zeros(int(seconds * FPS))
    for start, end in sung:
        act[int(start * FPS) : int(end * FPS)] = 1.0
    return VocalActivity(act, np.zeros_like(act), FPS)


def _line(start: float, end: float, text: str = "walking down the river road") -> TimedLine:
    return TimedLine(start=start, end=end, text=text, words=spread_words(text, start, end))


def test_aligners_agreeing_on_a_sung_start_are_sure() -> None:
    act = _activity([(3.0, 5.5), (8.0, 10.5)])
    chosen = [_line(3.0, 5.5), _line(8.0, 10.5)]
    sphinx, vocal = [_line(3.1, 5.5), _line(8.05, 10.5)], [_line(2.95, 5.4), _line(8.1, 10.4)]
    rated = rate_lines(chosen, sphinx, vocal, act)
    assert [line.sure for line in rated] == [True, True]
    assert all(line.confidence > 0.8 for line in rated)
    assert [(line.start, line.end, line.words) for line in rated] == [
        (line.start, line.end, line.words) for line in chosen
    ]


def test_aligners_seconds_apart_or_a_line_parked_at_the_song_start_are_unsure() -> None:
    act = _activity([(0.0, 2.5), (3.0, 5.5), (8.0, 10.5)])
    apart = rate_lines([_line(3.0, 5.5)], [_line(3.0, 5.5)], [_line(6.0, 7.0)], act)
    at_start = rate_lines([_line(0.1, 2.5)], [_line(0.1, 2.5)], [_line(0.1, 2.5)], act)
    assert not apart[0].sure and not at_start[0].sure
    assert apart[0].confidence < 0.5 and at_start[0].confidence < 0.5


def test_a_squeezed_or_stretched_line_is_less_sure_than_one_of_its_length() -> None:
    act = _activity([(3.0, 6.0), (8.0, 11.0), (13.0, 16.0)])
    normal = [_line(3.0, 6.0), _line(8.0, 11.0), _line(13.0, 16.0)]
    squeezed = [*normal[:2], _line(13.0, 13.3)]
    rated = rate_lines(normal, normal, normal, act)
    worse = rate_lines(squeezed, squeezed, squeezed, act)
    assert worse[2].confidence < rated[2].confidence
    assert worse[:2] == rated[:2]


def test_the_vocal_aligner_alone_is_never_sure() -> None:
    act = _activity([(3.0, 5.5)])
    rated = rate_lines([_line(3.0, 5.5)], None, [_line(3.0, 5.5)], act)
    assert not rated[0].sure and rated[0].confidence > 0.0
