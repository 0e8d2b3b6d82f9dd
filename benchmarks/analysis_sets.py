"""The analysis benchmark's two sets with known answers (``benchmarks/analysis.py``): the project's
synthesized songs, whose plan is exact ground truth, and public-domain scores of the music21 corpus
rendered with FluidSynth, whose truth is read from the score (rendered once, cached)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from kapsule.demo.song import synthesize_song, write_song

CACHE = Path(__file__).resolve().parent / ".cache" / "analysis"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
RENDER_SR = 44100
MAX_SECONDS = 45.0  # scores are cut at the first bar line after this
RENDER_TIMEOUT_S = 60  # a score whose MIDI never ends (held notes) is skipped, not waited on
TRUTH_VERSION = 1  # bump when the way ground truth is built changes, to invalidate the cache

# The synthesized set: name -> synthesize_song keyword arguments.
SYNTH: dict[str, dict[str, Any]] = {
    "ballad-70": {"tempo": 70.0, "style": "ballad", "seed": 1},
    "ballad-84-3/4": {"tempo": 84.0, "style": "ballad", "beats_per_bar": 3, "seed": 2},
    "pop-96-swing": {"tempo": 96.0, "style": "pop", "swing": 1 / 3, "seed": 3},
    "pop-120": {"tempo": 120.0, "style": "pop", "syncopation": 0.3, "seed": 3},
    "pop-108-silent-intro": {"tempo": 108.0, "style": "pop", "leading_silence": 4.0, "seed": 4},
    "rock-132-sync": {"tempo": 132.0, "style": "rock", "syncopation": 0.8, "seed": 5},
    "rock-150": {"tempo": 150.0, "style": "rock", "seed": 6},
    "electronic-128": {"tempo": 128.0, "style": "electronic", "seed": 7},
    "electronic-174-sync": {"tempo": 174.0, "style": "electronic", "syncopation": 0.6, "seed": 8},
    "electronic-180": {"tempo": 180.0, "style": "electronic", "seed": 9},
    "waltz-144-3/4": {"tempo": 144.0, "style": "waltz", "beats_per_bar": 3, "seed": 10},
    "pop-160-3/4-swing": {"tempo": 160.0, "style": "pop", "beats_per_bar": 3, "swing": 0.25, "seed": 11},
}


@dataclass(frozen=True)
class Piece:
    """One score of the music21 corpus and how we render it."""

    name: str
    corpus: str
    qpm: float  # quarter notes per minute we render at (scores' own marks are replaced)
    program: (
        int  # General MIDI program for every part (0 piano, 19 organ, 48 strings, 52 choir, 40-42 strings)
    )
    drums: bool = False
    programs: tuple[int, ...] = field(default_factory=tuple)  # per part, overrides ``program``


QUARTET = (40, 40, 41, 42)  # violin, violin, viola, cello
PIECES = (
    Piece("bach-bwv66.6-organ", "bach/bwv66.6", 84, 19),
    Piece("bach-bwv1.6-choir", "bach/bwv1.6", 76, 52),
    Piece("bach-bwv10.7-piano+drums", "bach/bwv10.7", 100, 0, drums=True),
    Piece("joplin-maple-leaf-rag", "joplin/maple_leaf_rag", 92, 0),
    Piece("mozart-k458-i-6/8", "mozart/k458/movement1", 150, 0, programs=QUARTET),
    Piece("mozart-k458-ii-minuet", "mozart/k458/movement2", 132, 0, programs=QUARTET),
    Piece("beethoven-op18no1-i", "beethoven/opus18no1/movement1", 168, 0, programs=QUARTET),
    Piece("mozart-k545-i-piano", "mozart/k545/movement1_exposition", 120, 0),
    Piece("clara-schumann-polonaise", "schumann_clara/polonaise_op1n1", 104, 0),
)


@dataclass
class Item:
    """A song of the benchmark set: its audio file and what is true about it."""

    name: str
    path: Path
    tempo: float
    beats: np.ndarray
    downbeats: np.ndarray
    meter: str
    sections: list[tuple[float, float]] | None = None


def synth_items() -> list[Item]:
    """Write (once) and describe the synthesized songs."""
    items = []
    for name, kwargs in SYNTH.items():
        path = CACHE / "synth" / (name.replace("/", "") + ".wav")
        truth_path = path.with_suffix(".json")
        if not (path.is_file() and truth_path.is_file()):
            write_song(synthesize_song(**kwargs), path)
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
        items.append(
            Item(
                name=name,
                path=path,
                tempo=float(truth["tempo"]),
                beats=np.asarray(truth["beats"], dtype=float),
                downbeats=np.asarray(truth["downbeats"], dtype=float),
                meter=f"{truth['beats_per_bar']}/4",
                sections=[(s["start"], s["end"]) for s in truth["sections"]],
            )
        )
    return items


def real_items() -> list[Item]:
    """Render (once) and describe the corpus pieces."""
    if shutil.which("fluidsynth") is None or not SOUNDFONT.is_file():
        raise SystemExit(
            "analysis benchmark: the real set needs fluidsynth and the GM soundfont "
            f"({SOUNDFONT}); run scripts/install-system-deps.sh --bench, or pass --set synth"
        )
    items = []
    for piece in PIECES:
        path = CACHE / "real" / f"{piece.name.replace('/', '')}.wav"
        truth_path = path.with_suffix(".json")
        truth = _read_truth(truth_path, piece)
        if truth is None or not path.is_file():
            try:
                truth = _render(piece, path)
            except subprocess.TimeoutExpired:
                print(
                    f"skipped {piece.name}: FluidSynth did not finish in {RENDER_TIMEOUT_S} s",
                    file=sys.stderr,
                )
                continue
        items.append(
            Item(
                name=piece.name,
                path=path,
                tempo=truth["tempo"],
                beats=np.asarray(truth["beats"], dtype=float),
                downbeats=np.asarray(truth["downbeats"], dtype=float),
                meter=truth["meter"],
            )
        )
    return items


def _read_truth(path: Path, piece: Piece) -> dict[str, Any] | None:
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return truth if truth.get("key") == _piece_key(piece) else None


def _piece_key(piece: Piece) -> str:
    return json.dumps([TRUTH_VERSION, MAX_SECONDS, piece.__dict__ | {"programs": list(piece.programs)}])


def _render(piece: Piece, path: Path) -> dict[str, Any]:
    """Cut the score, fix its tempo and instruments, write MIDI, render it, write the ground truth."""
    from music21 import corpus, instrument, meter, tempo

    score = corpus.parse(piece.corpus)
    for mark in list(score.recurse().getElementsByClass(tempo.TempoIndication)):
        mark.activeSite.remove(mark)
    first = score.parts[0].getElementsByClass("Measure")
    seconds_per_quarter = 60.0 / piece.qpm
    last = first[-1].number
    for m in first:
        if (m.offset + m.duration.quarterLength) * seconds_per_quarter >= MAX_SECONDS:
            last = m.number
            break
    score = score.measures(first[0].number, last)
    _drop_repeats(score)
    for i, part in enumerate(score.parts):
        for old in list(part.recurse().getElementsByClass(instrument.Instrument)):
            old.activeSite.remove(old)
        program = piece.programs[i] if i < len(piece.programs) else piece.program
        inst = instrument.instrumentFromMidiProgram(program)
        inst.midiProgram = program
        part.insert(0, inst)
        part.insert(0, tempo.MetronomeMark(number=piece.qpm, referent=1.0))

    beats: list[float] = []
    downbeats: list[float] = []
    ts = None
    meters = []
    for m in score.parts[0].getElementsByClass("Measure"):
        ts = m.timeSignature or ts or m.getContextByClass(meter.TimeSignature)
        meters.append(ts.ratioString)
        beat = float(ts.beatDuration.quarterLength)
        bar = float(ts.barDuration.quarterLength)
        start, end = float(m.offset), float(m.offset + m.duration.quarterLength)
        bar_start = start - float(m.paddingLeft or 0.0)
        if bar_start >= start - 1e-6:  # a pickup bar has no downbeat
            downbeats.append(bar_start * seconds_per_quarter)
        for k in range(round(bar / beat)):
            q = bar_start + k * beat
            if start - 1e-6 <= q < end - 1e-6:
                beats.append(q * seconds_per_quarter)
    beat_quarters = float(
        score.parts[0].recurse().getElementsByClass(meter.TimeSignature).first().beatDuration.quarterLength
    )
    end_s = float(score.parts[0].highestTime) * seconds_per_quarter

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        midi = Path(tmp) / "score.mid"
        wav = Path(tmp) / "render.wav"
        score.write("midi", fp=str(midi))
        subprocess.run(
            [
                "fluidsynth",
                "-ni",
                "-q",
                "-g",
                "0.6",
                "-r",
                str(RENDER_SR),
                "-F",
                str(wav),
                str(SOUNDFONT),
                str(midi),
            ],
            check=True,
            capture_output=True,
            timeout=RENDER_TIMEOUT_S,
        )
        audio, sr = sf.read(wav, dtype="float32", always_2d=True)
        audio = audio[: math.ceil((end_s + 0.5) * sr)]  # the last bar's release, no more
        if piece.drums:
            audio = audio + _drum_track(np.asarray(beats), np.asarray(downbeats), len(audio), sr)[:, None]
        audio /= max(1.0, float(np.abs(audio).max()) / 0.89)
        out = Path(tmp) / "out.wav"
        sf.write(out, audio, sr, subtype="PCM_16")
        os.replace(out, path)
    truth = {
        "key": _piece_key(piece),
        "tempo": piece.qpm / beat_quarters,
        "meter": "/".join(dict.fromkeys(meters)),
        "beats": beats,
        "downbeats": downbeats,
    }
    tmp_truth = path.with_suffix(".json.tmp")
    tmp_truth.write_text(json.dumps(truth), encoding="utf-8")
    os.replace(tmp_truth, path.with_suffix(".json"))
    return truth


def _drop_repeats(score: Any) -> None:
    """Remove repeat signs: music21 expands them when it writes MIDI, and our truth is the page as read."""
    from music21 import bar, repeat, spanner

    for m in score.recurse().getElementsByClass("Measure"):
        if isinstance(m.leftBarline, bar.Repeat):
            m.leftBarline = None
        if isinstance(m.rightBarline, bar.Repeat):
            m.rightBarline = None
    for cls in (repeat.RepeatExpression, spanner.RepeatBracket):
        for obj in list(score.recurse().getElementsByClass(cls)):
            obj.activeSite.remove(obj)


def _drum_track(beats: np.ndarray, downbeats: np.ndarray, n: int, sr: int) -> np.ndarray:
    """Kick on bar starts and on beat 3, snare on the other beats, closed hat on every beat."""
    rng = np.random.default_rng(0)
    t = np.arange(int(0.25 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-t / 0.03)) * 0.03)) * np.exp(-t / 0.12)
    snare = (rng.standard_normal(t.size) * 0.6 + np.sin(2 * np.pi * 190 * t)) * np.exp(-t / 0.06)
    hat = np.diff(rng.standard_normal(t.size + 1)) * np.exp(-t / 0.015) * 0.25
    track = np.zeros(n, dtype=np.float64)
    bars = set(np.round(downbeats, 4))
    in_bar = -1  # beats since the last bar start; the pickup's beats get snares
    for b in beats:
        in_bar = 0 if round(b, 4) in bars else in_bar + 1 if in_bar >= 0 else -1
        sound = kick if in_bar in (0, 2) else snare
        for s in (sound * 0.5, hat):
            start = round(b * sr)
            if start < n:
                seg = s[: n - start]
                track[start : start + seg.size] += seg
    return track.astype(np.float32)
