"""The click-track preview: clicks where the beats are, accented where the bars start, over the song.

A real FFmpeg encodes the preview (AAC in M4A) and a real FFmpeg decodes it; the clicks are found
again in the decoded audio, so encoder delay or a wrong mix would show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kapsule import media
from kapsule.core.errors import ObjectNotFound
from kapsule.job.artifacts import Analysis, EnergyCurve, Reading, Section
from kapsule.song.click_track import CLICK_RATE, click_samples, preview_name, write_click_preview


def test_click_preview_cmd_mixes_stdin_clicks_over_the_song() -> None:
    cmd = media.click_preview_cmd(Path("a song.wav"), Path("out/click_preview.m4a"), click_rate=44100)
    assert cmd[0] == "ffmpeg" and cmd[-1] == "out/click_preview.m4a"
    assert cmd[cmd.index("-i") + 1] == "a song.wav"
    assert cmd[cmd.index("pipe:0") - 6 : cmd.index("pipe:0") + 1] == [
        "-f", "f32le", "-ar", "44100", "-ac", "1", "-i", "pipe:0",
    ][1:]  # fmt: skip
    graph = cmd[cmd.index("-filter_complex") + 1]
    assert "amix=inputs=2:duration=first:normalize=0" in graph and "volume=0.5" in graph
    assert "alimiter" not in graph  # a limiter's look-ahead would move the clicks
    assert cmd[cmd.index("-c:a") + 1] == "aac"


def test_click_samples_put_each_click_on_its_beat() -> None:
    rate = 8000
    clicks = click_samples([0.5, 1.0, 1.5], [1.0], duration=2.0, rate=rate)
    for beat in (0.5, 1.0, 1.5):
        start = round(beat * rate)
        assert not clicks[start - 40 : start].any()  # silence right up to the beat
        assert np.abs(clicks[start : start + 16]).max() > 0.1  # and the click within 2 ms of it
    assert np.abs(clicks[8000:8400]).max() > np.abs(clicks[4000:4400]).max()  # the downbeat is louder


def _onsets(y: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """(time, peak) of each click: bursts of high-passed energy after ≥ 0.1 s of quiet."""
    hp = np.diff(y, prepend=y[0])  # the 110 Hz song all but vanishes; 1–1.6 kHz clicks do not
    loud = np.abs(hp) > 0.25 * np.abs(hp).max()
    found: list[tuple[float, float]] = []
    last = -1.0
    for i in np.flatnonzero(loud):
        t = i / rate
        if t - last > 0.1:
            found.append((t, float(np.abs(hp[i : i + round(0.02 * rate)]).max())))
        last = t
    return found


def test_the_preview_has_clicks_where_the_beats_are(tmp_path: Path) -> None:
    rate = 44100
    t = np.arange(round(8.0 * rate)) / rate
    song = tmp_path / "song.wav"
    sf.write(song, (0.2 * np.sin(2 * np.pi * 110 * t)).astype(np.float32), rate)
    beats = [round(0.3 + 0.46 * k, 4) for k in range(16)]
    analysis = Analysis(
        duration=8.0,
        tempo=60 / 0.46,
        beats=beats,
        downbeats=beats[1::4],  # a one-beat pickup
        sections=[Section(start=0.0, end=8.0, label="verse")],
        energy=EnergyCurve(times=[0.0], values=[1.0]),
    )
    out = write_click_preview(song, analysis, tmp_path / "work")
    assert out.name == "click_preview.m4a" and "click" in out.name
    assert media.probe(out).audio[0].codec == "aac"

    decoded = media.decode_audio(out, sample_rate=CLICK_RATE, mono=True)
    found = _onsets(decoded, CLICK_RATE)
    times = np.array([f[0] for f in found])
    assert len(found) == len(beats)
    assert np.max(np.abs(times - np.array(beats))) < 0.005  # within 5 ms of every beat
    peaks = np.array([f[1] for f in found])
    accented = np.isin(np.arange(len(beats)), np.arange(1, len(beats), 4))
    assert peaks[accented].min() > 1.2 * peaks[~accented].max()  # the one of each bar stands out


def test_a_runner_up_reading_gets_its_own_preview(tmp_path: Path) -> None:
    rate = 44100
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros(round(6.0 * rate), dtype=np.float32), rate)
    beats = [round(0.3 + 0.4 * k, 4) for k in range(14)]
    half = Reading(
        kind="half_tempo",
        plausibility=0.8,
        tempo=75.0,
        beats_per_bar=2,
        beats=beats[::2],
        downbeats=beats[::4],
    )
    analysis = Analysis(
        duration=6.0,
        tempo=150.0,
        beats=beats,
        downbeats=beats[::4],
        sections=[Section(start=0.0, end=6.0, label="verse")],
        energy=EnergyCurve(times=[0.0], values=[1.0]),
        alternatives=[half],
        close_call="half_tempo",
    )
    out = write_click_preview(song, analysis, tmp_path / "work", "half_tempo")
    assert out.name == preview_name("half_tempo") == "click_preview-half_tempo.m4a"
    found = _onsets(media.decode_audio(out, sample_rate=CLICK_RATE, mono=True), CLICK_RATE)
    assert np.max(np.abs(np.array([f[0] for f in found]) - np.array(half.beats))) < 0.005
    with pytest.raises(ObjectNotFound):
        write_click_preview(song, analysis, tmp_path / "work", "other_meter")  # not weighed
