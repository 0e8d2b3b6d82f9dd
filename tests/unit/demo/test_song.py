"""The demo song is real audio whose ground truth is exact: beats, bars and sections are where the
plan says, the sections really differ in loudness, and the WAV is a file ffprobe and librosa read."""

from __future__ import annotations

import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile

from kapsule.core.errors import InvalidParameter
from kapsule.demo.song import (
    DEMO_ARGS,
    DemoSong,
    demo_song,
    synthesize_song,
    write_demo_song,
    write_song,
)
from kapsule.media import probe

SHORT = [("intro", 2), ("verse", 4), ("chorus", 4), ("outro", 2)]


def rms_db(song: DemoSong, start: float, end: float) -> float:
    part = song.samples[round(start * song.sample_rate) : round(end * song.sample_rate)].astype(np.float64)
    return float(20 * np.log10(np.sqrt(np.mean(part**2)) + 1e-12))


def section_beats(song: DemoSong, labels: tuple[str, ...] = ("verse", "chorus")) -> np.ndarray:
    return np.array(
        [b for b in song.beats for s in song.sections if s.label in labels and s.start <= b < s.end]
    )


def onset_hit_rate(song: DemoSong, times: np.ndarray, tolerance: float = 0.03) -> float:
    """Share of ``times`` that librosa's onset detector (default settings) finds within tolerance."""
    onsets = librosa.onset.onset_detect(y=song.samples.mean(axis=1), sr=song.sample_rate, units="time")
    return float(np.mean([np.min(np.abs(onsets - t)) <= tolerance for t in times]))


def assert_grid(song: DemoSong) -> None:
    """Beats every 60/tempo (to the sample), bars every beats_per_bar beats, sections cover the song."""
    beats = np.array(song.beats)
    period = 60.0 / song.tempo
    assert np.allclose(np.diff(beats), period, atol=1.0 / song.sample_rate)
    assert song.downbeats == song.beats[:: song.beats_per_bar]
    assert len(song.beats) % song.beats_per_bar == 0
    assert song.duration == pytest.approx(beats[-1] + period, abs=1.0 / song.sample_rate)
    assert song.duration == len(song.samples) / song.sample_rate
    assert song.sections[0].start == 0.0
    assert song.sections[-1].end == song.duration
    for before, after in zip(song.sections, song.sections[1:], strict=False):
        assert before.end == after.start
        assert before.start < before.end
    for section in song.sections:
        if section.label != "silence":
            assert section.start in song.downbeats


def test_demo_song_is_deterministic_and_cached() -> None:
    again = synthesize_song(**DEMO_ARGS)
    demo = demo_song()
    assert demo is demo_song()
    assert again is not demo
    assert again.samples.tobytes() == demo.samples.tobytes()
    assert again.ground_truth() == demo.ground_truth()


def test_demo_song_shape_duration_and_level() -> None:
    song = demo_song()
    assert 55.0 <= song.duration <= 65.0
    assert song.samples.dtype == np.float32
    assert song.samples.shape == (round(song.duration * song.sample_rate), 2)
    assert song.sample_rate == 44100
    assert 20 * np.log10(np.max(np.abs(song.samples))) == pytest.approx(-1.0, abs=0.1)
    assert not song.samples.flags.writeable  # the cached song cannot be changed by a caller
    assert_grid(song)
    assert [s.label for s in song.sections][:3] == ["intro", "verse", "chorus"]
    assert song.sections[-1].label == "outro"


def test_ground_truth_has_the_analysis_keys() -> None:
    truth = demo_song().ground_truth()
    assert {"duration", "tempo", "beats", "downbeats", "sections", "beats_per_bar"} <= truth.keys()
    assert truth["tempo"] == 120.0 and truth["beats_per_bar"] == 4
    assert all(set(s) == {"start", "end", "label"} for s in truth["sections"])
    json.dumps(truth)  # JSON-ready as is


def test_sections_sound_different() -> None:
    song = demo_song()
    loudness = {
        s.label: rms_db(song, s.start, s.end) for s in reversed(song.sections)
    }  # first occurrence wins
    assert loudness["chorus"] > loudness["verse"] + 1.5
    assert loudness["verse"] > loudness["intro"] + 3.0
    assert rms_db(song, song.duration - 1.0, song.duration) < loudness["chorus"] - 15.0  # it fades out


def test_demo_onsets_are_on_the_beats() -> None:
    song = demo_song()
    beats = section_beats(song)
    assert len(beats) > 50
    assert onset_hit_rate(song, beats) >= 0.9


def test_hits_start_on_the_exact_beat_sample() -> None:
    """Sample-accurate: the 3 ms after a beat are much louder than the 3 ms before; 3 ms later, not."""
    song = demo_song()
    mono = song.samples.mean(axis=1).astype(np.float64)
    width = round(0.003 * song.sample_rate)

    def jump(index: int) -> float:
        before = np.sqrt(np.mean(mono[index - width : index] ** 2))
        after = np.sqrt(np.mean(mono[index : index + width] ** 2))
        return after / before

    indexes = [round(b * song.sample_rate) for b in section_beats(song)]
    assert np.mean([jump(i) > 1.5 for i in indexes]) >= 0.8
    assert np.mean([jump(i + width) > 1.5 for i in indexes]) <= 0.1


@pytest.mark.parametrize(
    ("tempo", "beats_per_bar", "style"),
    [(70.0, 3, "waltz"), (180.0, 4, "rock"), (70.0, 4, "ballad"), (180.0, 3, "electronic"), (96.0, 2, "pop")],
)
def test_tempo_meter_and_style_variants(tempo: float, beats_per_bar: int, style: str) -> None:
    song = synthesize_song(tempo=tempo, beats_per_bar=beats_per_bar, style=style, seed=1)
    assert song.tempo == tempo and song.beats_per_bar == beats_per_bar
    assert 50.0 <= song.duration <= 65.0
    assert_grid(song)
    assert onset_hit_rate(song, section_beats(song)) >= 0.85
    loudness = {s.label: rms_db(song, s.start, s.end) for s in reversed(song.sections)}
    assert loudness["chorus"] > loudness["intro"] + 3.0


def test_ballad_intro_has_no_drums_but_its_verse_does() -> None:
    song = synthesize_song(tempo=80.0, style="ballad", structure=SHORT)
    intro = song.sections[0]
    beats = section_beats(song, ("intro",))[1:]  # the first bar's pad attack is an onset too
    assert onset_hit_rate(song, beats) < 0.5 < onset_hit_rate(song, section_beats(song, ("verse",)))
    assert (
        rms_db(song, intro.start, intro.end) < rms_db(song, song.sections[2].start, song.sections[2].end) - 6
    )


def test_leading_silence_shifts_every_time() -> None:
    plain = synthesize_song(structure=SHORT, seed=2)
    late = synthesize_song(structure=SHORT, seed=2, leading_silence=5.0)
    assert np.allclose(np.array(late.beats), np.array(plain.beats) + 5.0, atol=1e-9)
    assert np.allclose(np.array(late.downbeats), np.array(plain.downbeats) + 5.0, atol=1e-9)
    assert late.duration == pytest.approx(plain.duration + 5.0)
    assert late.sections[0].model_dump() == {"start": 0.0, "end": 5.0, "label": "silence"}
    assert [s.label for s in late.sections[1:]] == [s.label for s in plain.sections]
    assert not np.any(late.samples[: 5 * late.sample_rate])  # digital silence, to the sample
    assert np.max(np.abs(late.samples[5 * late.sample_rate : 7 * late.sample_rate])) > 0.05
    assert_grid(late)


def test_swing_moves_off_beats_not_beats() -> None:
    straight = synthesize_song(tempo=100.0, style="rock", structure=SHORT)
    swung = synthesize_song(tempo=100.0, style="rock", structure=SHORT, swing=0.5)
    assert swung.beats == straight.beats
    period = 60.0 / 100.0
    beats = section_beats(swung)
    # swing 0.5 delays the off-beat 8th by half an 8th: from 0.5 to 0.75 of a beat
    assert onset_hit_rate(swung, beats + 0.75 * period) >= 0.8
    assert onset_hit_rate(swung, beats + 0.5 * period) <= 0.2
    assert onset_hit_rate(straight, beats + 0.5 * period) >= 0.8


def test_seed_and_style_change_the_music_not_the_grid() -> None:
    base = synthesize_song(structure=SHORT, seed=0)
    other_seed = synthesize_song(structure=SHORT, seed=5)
    other_style = synthesize_song(structure=SHORT, seed=0, style="electronic")
    assert base.beats == other_seed.beats == other_style.beats
    assert not np.array_equal(base.samples, other_seed.samples)
    assert not np.array_equal(base.samples, other_style.samples)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tempo": 30.0},
        {"tempo": float("nan")},
        {"beats_per_bar": 5},
        {"style": "jazz"},
        {"swing": 0.7},
        {"syncopation": -0.1},
        {"seed": -1},
        {"leading_silence": -1.0},
        {"sample_rate": 1000},
        {"structure": []},
        {"structure": [("solo", 4)]},
        {"structure": [("verse", 0)]},
        {"structure": [("verse", 2.5)]},
        {"structure": [("verse", 2000)]},
    ],
)
def test_bad_parameters_are_refused_with_a_clear_error(kwargs: dict) -> None:
    with pytest.raises(InvalidParameter) as error:
        synthesize_song(**kwargs)
    assert error.value.code == "invalid_parameter"
    assert error.value.message.startswith("demo song: ")


def test_demo_wav_is_probed_as_stereo_44k_with_its_ground_truth(demo_song_file: Path) -> None:
    song = demo_song()
    info = probe(demo_song_file)
    assert len(info.audio) == 1
    stream = info.audio[0]
    assert (stream.channels, stream.sample_rate, stream.codec) == (2, 44100, "pcm_s16le")
    assert info.duration == pytest.approx(song.duration, abs=0.01)
    truth = json.loads(demo_song_file.with_suffix(".json").read_text())
    assert {k: truth[k] for k in song.ground_truth()} == json.loads(json.dumps(song.ground_truth()))
    assert len(truth["audio_sha256"]) == 64


def test_write_demo_song_skips_an_identical_file_and_repairs_a_stale_one(tmp_path: Path) -> None:
    path = write_demo_song(tmp_path / "demo.wav")
    wav, truth = path.stat().st_mtime_ns, path.with_suffix(".json").stat().st_mtime_ns
    assert write_demo_song(path) == path
    assert (path.stat().st_mtime_ns, path.with_suffix(".json").stat().st_mtime_ns) == (wav, truth)
    path.write_bytes(b"not a wav")
    path.with_suffix(".json").write_text("{}")
    write_demo_song(path)
    assert probe(path).audio[0].channels == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.json", "demo.wav"]  # no temp files left


def test_write_song_round_trips_through_the_wav(tmp_path: Path) -> None:
    song = synthesize_song(structure=SHORT, style="waltz", beats_per_bar=3, leading_silence=1.0)
    path = write_song(song, tmp_path / "nested" / "waltz.wav")
    decoded, sr = soundfile.read(path, dtype="float32")
    assert sr == song.sample_rate
    assert np.max(np.abs(decoded - song.samples)) < 1e-4  # 16-bit quantization only
    assert json.loads(path.with_suffix(".json").read_text())["beats_per_bar"] == 3
