"""Plain lyrics aligned to a song: offline (a sung song with known word times) and Gemini (the fake)."""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kapsule.core.errors import GoogleRequestRefused, LyricsAlignmentFailed
from kapsule.core.settings import Settings
from kapsule.infra import genai_client
from kapsule.lyrics import load_lyrics
from kapsule.lyrics.align import align_offline, vocal_activity_of
from kapsule.lyrics.gemini import align_with_gemini
from tests.support.fake_google import FakeGoogle, sent_audio
from tests.support.sung import SungSong, espeak_available, sing_song

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def sung(tmp_path_factory: pytest.TempPathFactory) -> SungSong:
    return sing_song(tmp_path_factory.mktemp("sung") / "song.wav", seed=0)


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(genai_client, "RETRY_BASE_S", 0.01)


def _plain(song: SungSong) -> bytes:
    return ("\n".join(line.text for line in song.lines) + "\n").encode()


def test_load_lyrics_aligns_plain_text_offline(sung: SungSong) -> None:
    lines = load_lyrics(_plain(sung), song_seconds=sung.duration, song=sung.path)
    assert [line.text for line in lines] == [line.text for line in sung.lines]
    errors = [abs(got.start - want.start) for got, want in zip(lines, sung.lines, strict=True)]
    assert statistics.median(errors) <= 0.3, errors


def test_model_free_alignment_lands_near_the_sung_lines(sung: SungSong) -> None:
    lines = align_offline(sung.verses, vocal_activity_of(sung.path))
    assert [line.text for line in lines] == [line.text for line in sung.lines]
    errors = [abs(got.start - want.start) for got, want in zip(lines, sung.lines, strict=True)]
    assert statistics.median(errors) <= 0.5, errors
    assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(lines)), "lines never overlap"
    for line in lines:
        assert [w.text for w in line.words] == line.text.split()
        assert line.words[0].start == line.start and line.words[-1].end <= line.end + 1e-9


def test_a_song_without_singing_is_refused(tmp_path: Path) -> None:
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(22050 * 20, dtype=np.float32), 22050)
    with pytest.raises(LyricsAlignmentFailed, match="no singing"):
        align_offline([["la la la"]], vocal_activity_of(silent))


def _answer(song: SungSong, shift: float = 0.0) -> str:
    return json.dumps(
        {
            "lines": [
                {
                    "index": i,
                    "start": line.start + shift,
                    "end": line.end + shift,
                    "words": [
                        {"text": w.text, "start": w.start + shift, "end": w.end + shift} for w in line.words
                    ],
                }
                for i, line in enumerate(song.lines)
            ]
        }
    )


def test_gemini_times_are_used_when_they_sit_on_singing(
    api_key_settings: Settings, fake_google: FakeGoogle, sung: SungSong
) -> None:
    fake_google.gemini_replies = [_answer(sung)]
    lines = align_with_gemini(
        [[line.text for line in sung.lines]],
        sung.path,
        vocal_activity_of(sung.path),
        settings=api_key_settings,
    )
    assert [(round(a.start, 3), a.text) for a in lines] == [(round(b.start, 3), b.text) for b in sung.lines]
    assert lines[0].words[1].start == pytest.approx(sung.lines[0].words[1].start)
    (call,) = fake_google.requests("generate")
    assert call.model == "gemini-3.6-flash"  # the default: a current model, not the retired 2.5 Flash
    config = call.body["generationConfig"]
    assert config["temperature"] == 1.0  # Google's advice for Gemini 3 (lower values can loop)
    assert config["responseMimeType"] == "application/json" and "lines" in json.dumps(
        config["responseSchema"]
    )
    [(mime, audio)] = sent_audio(call)
    assert mime == "audio/mpeg" and len(audio) > 10_000, "Gemini hears the song"
    assert sung.lines[2].text in json.dumps(call.body, ensure_ascii=False)


def test_a_bad_gemini_answer_is_asked_again(
    api_key_settings: Settings, fake_google: FakeGoogle, sung: SungSong
) -> None:
    missing_line = json.loads(_answer(sung))
    missing_line["lines"].pop()
    fake_google.gemini_replies = ["not json", json.dumps(missing_line), _answer(sung)]
    lines = align_with_gemini(
        [[line.text for line in sung.lines]],
        sung.path,
        vocal_activity_of(sung.path),
        settings=api_key_settings,
    )
    assert len(lines) == len(sung.lines)
    calls = fake_google.requests("generate")
    assert len(calls) == 3 and "unusable" in json.dumps(calls[1].body)


def test_gemini_lines_off_the_singing_fall_back_to_the_offline_aligner(
    api_key_settings: Settings, fake_google: FakeGoogle, sung: SungSong
) -> None:
    # Every line moved into the instrumental outro/intro: nobody sings there.
    wrong = {
        "lines": [{"index": i, "start": 0.2 + i * 0.6, "end": 0.7 + i * 0.6} for i in range(len(sung.lines))]
    }
    fake_google.gemini_replies = [json.dumps(wrong)] * 3
    with pytest.raises(LyricsAlignmentFailed, match="nobody sings"):
        align_with_gemini(
            [[line.text for line in sung.lines]],
            sung.path,
            vocal_activity_of(sung.path),
            settings=api_key_settings,
        )
    fake_google.gemini_replies = [json.dumps(wrong)] * 3
    lines = load_lyrics(
        _plain(sung), song_seconds=sung.duration, song=sung.path, aligner="gemini", settings=api_key_settings
    )
    assert len(fake_google.requests("generate")) == 6
    errors = [abs(got.start - want.start) for got, want in zip(lines, sung.lines, strict=True)]
    assert statistics.median(errors) <= 0.5, "the offline aligner took over"


@pytest.mark.parametrize(("status", "cause"), [(403, "roles/aiplatform.user"), (404, "retired")])
def test_a_refusal_by_google_fails_with_its_cause_instead_of_falling_back(
    api_key_settings: Settings, fake_google: FakeGoogle, sung: SungSong, status: int, cause: str
) -> None:
    """A 403 (a missing role or API) or 404 (a retired model) is no passing blip: the offline
    aligner does not take over silently; the stage fails and says what to change."""
    fake_google.fail_next = {"generate": [status]}
    with pytest.raises(GoogleRequestRefused, match=rf"{status} .*{cause}"):
        load_lyrics(
            _plain(sung),
            song_seconds=sung.duration,
            song=sung.path,
            aligner="gemini",
            settings=api_key_settings,
        )
    assert len(fake_google.requests("generate")) == 1  # not retried, and nothing else was asked


def test_pocketsphinx_forced_alignment_of_english_lyrics(sung: SungSong) -> None:
    from kapsule.lyrics.sphinx import align_sphinx

    lines = align_sphinx(sung.verses, sung.path)
    errors = [abs(got.start - want.start) for got, want in zip(lines, sung.lines, strict=True)]
    assert statistics.median(errors) <= 0.3, errors
    assert [w.text for w in lines[0].words] == sung.lines[0].text.split()


def test_pocketsphinx_refuses_lyrics_outside_its_english_dictionary(sung: SungSong) -> None:
    from kapsule.lyrics.sphinx import align_sphinx

    with pytest.raises(LyricsAlignmentFailed, match="dictionary"):
        align_sphinx([["夜空の星を見上げて", "שלום עולם יפה"]], sung.path)
