"""Lyric-line confidence on a song unlike the project's own: a soundfont piano, a British voice."""

from __future__ import annotations

import pytest

from kapsule.lyrics import load_lyrics
from kapsule.lyrics.captions import ass_text
from tests.support.sung import TUNE, SungSong, sing

PIANO = next(piece for piece in TUNE if piece.name == "tune-gb-f2-piano")
pytestmark = pytest.mark.skipif(not PIANO.available(), reason="no espeak-ng, fluidsynth or soundfont")


@pytest.fixture(scope="module")
def piano(tmp_path_factory: pytest.TempPathFactory) -> SungSong:
    return sing(PIANO, tmp_path_factory.mktemp("sung-piano") / "piano.wav")


def test_a_line_placed_seconds_off_is_marked_unsure_and_not_highlighted(piano: SungSong) -> None:
    text = ("\n".join(line.text for line in piano.lines) + "\n").encode()
    lines = load_lyrics(text, song_seconds=piano.duration, song=piano.path)
    errors = [abs(got.start - want.start) for got, want in zip(lines, piano.lines, strict=True)]
    assert all(not line.sure for line, err in zip(lines, errors, strict=True) if err > 1.0), errors
    sure = [err for line, err in zip(lines, errors, strict=True) if line.sure]
    assert len(sure) >= len(lines) // 2 and max(sure) <= 1.0, (errors, [line.confidence for line in lines])
    events = [row for row in ass_text(lines, 1280, 720).splitlines() if row.startswith("Dialogue:")]
    for line, event in zip(lines, events, strict=True):
        assert ("\\k" in event) == line.sure, event
