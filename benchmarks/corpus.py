"""The generalization corpus of the analysis benchmark: 48 pieces written as MIDI by this script,
rendered with FluidSynth through three General MIDI soundfonts from Debian's packages, with light
mastering (reverb, compression, noise) by FFmpeg. Beat and downbeat ground truth is exact: every
note is placed on the beat grid that the truth file lists.

WHY our own MIDI rather than scores from a corpus: the categories that broke the analysis on unseen
music (a swung 150 BPM song, a backbeat kick on 2 and 4, a pickup, 6/8 and 12/8, ramps and rubato)
can be asked for by name and in any number, each with a known answer.

The split into a tuning part and a test part is fixed before any tuning by a rule on the piece's
name alone (``part``: the parity of the first byte of its SHA-256), so no result can move a piece
from one part to the other. Only the tuning part may be looked at when choosing what to change.

Renders are cached in ``benchmarks/.cache/corpus/`` (gitignored), keyed by the piece's spec and
CORPUS_VERSION; a rerun only renders what changed.

    .venv/bin/python benchmarks/corpus.py          # render (once) and list the pieces with their part
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache" / "corpus"
CORPUS_VERSION = 1  # bump when the music or the truth changes, to re-render
RENDER_SR = 44100
LEAD_IN_S = 0.6  # silence before the first note
SOUNDFONTS = {
    "fluidr3": Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    "timgm6mb": Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    "musescore": Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
    # Only the beat model's training renders use this one (the 48 pieces never do).
    "musescore-full": Path("/usr/share/sounds/sf3/MuseScore_General.sf3"),
}
# Light mastering: FFmpeg audio filters applied after the render (noise is mixed in separately).
_REVERB = "aecho=0.8:0.6:43|71|113:0.35|0.25|0.15"
_COMP = "acompressor=threshold=0.08:ratio=6:attack=3:release=80:makeup=2"
EFFECTS = {
    "clean": "",
    "reverb": _REVERB,
    "comp": _COMP,
    "noise": "",
    "reverb+comp": f"{_REVERB},{_COMP}",
}
METERS = {  # name -> (beats per bar, sub-pulses per beat); the beat of 6/8 and 12/8 is the dotted quarter
    "2/4": (2, 2),
    "3/4": (3, 2),
    "4/4": (4, 2),
    "6/8": (2, 3),
    "12/8": (4, 3),
}
KICK, SNARE, HAT, OPEN_HAT, CRASH, RIDE, CLAP, RIM = 36, 38, 42, 46, 49, 51, 39, 37


@dataclass(frozen=True)
class Spec:
    """One piece: everything that decides its audio."""

    name: str
    meter: str
    bpm: float  # of the beat (dotted quarter in 6/8 and 12/8)
    instr: str  # piano | strings | choir | band | electronic
    drums: str  # rock | backbeat | halftime | four | breakbeat | none
    tempo: str = "steady"  # steady | ramp | rubato
    feel: str = "straight"  # straight | swing | sync
    pickup: int = 0  # beats before the first downbeat
    soundfont: str = "fluidr3"
    fx: str = "clean"
    bars: int = 16
    end_bpm: float = 0.0  # for a ramp
    seed: int = 0
    # (channel, GM program) pairs replacing the instrumentation's defaults (channel 9: a drum kit);
    # the beat model's training renders draw them, the 48 pieces keep the defaults.
    programs: tuple[tuple[int, int], ...] = ()

    @property
    def category(self) -> dict[str, str]:
        tempo_band = "slow<90" if self.bpm < 90 else "fast>=140" if self.bpm >= 140 else "mid"
        return {
            "meter": self.meter,
            "tempo": self.tempo if self.tempo != "steady" else tempo_band,
            "feel": self.feel + ("+pickup" if self.pickup else ""),
            "drums": self.drums,
            "instr": self.instr,
        }


def part(name: str) -> str:
    """``tuning`` or ``test``: fixed by the name's hash, decided before any tuning."""
    return "test" if hashlib.sha256(name.encode()).digest()[0] % 2 else "tuning"


def _specs() -> list[Spec]:
    rows = [
        # name, meter, bpm, instr, drums, tempo, feel, pickup, sf, fx, end_bpm
        ("pop-rock-4-120", "4/4", 120, "band", "rock", "steady", "straight", 0, "fluidr3", "clean", 0),
        ("pop-rock-4-96-sync", "4/4", 96, "band", "rock", "steady", "sync", 0, "timgm6mb", "comp", 0),
        ("punk-4-196", "4/4", 196, "band", "rock", "steady", "straight", 0, "musescore", "comp", 0),
        ("rock-4-168", "4/4", 168, "band", "rock", "steady", "straight", 1, "fluidr3", "reverb+comp", 0),
        ("shuffle-4-150-swing", "4/4", 150, "band", "rock", "steady", "swing", 0, "timgm6mb", "clean", 0),
        ("blues-12/8-72", "12/8", 72, "band", "rock", "steady", "straight", 0, "musescore", "reverb", 0),
        ("backbeat-4-100", "4/4", 100, "band", "backbeat", "steady", "straight", 0, "fluidr3", "noise", 0),
        ("backbeat-4-132-sync", "4/4", 132, "band", "backbeat", "steady", "sync", 0, "musescore", "clean", 0),
        ("backbeat-4-88-swing", "4/4", 88, "band", "backbeat", "steady", "swing", 0, "timgm6mb", "reverb", 0),
        ("halftime-4-140", "4/4", 140, "band", "halftime", "steady", "straight", 0, "fluidr3", "comp", 0),
        (
            "halftime-4-160-e",
            "4/4",
            160,
            "electronic",
            "halftime",
            "steady",
            "sync",
            0,
            "musescore",
            "clean",
            0,
        ),
        ("halftime-4-76", "4/4", 76, "band", "halftime", "steady", "straight", 1, "timgm6mb", "reverb", 0),
        ("house-4-124", "4/4", 124, "electronic", "four", "steady", "straight", 0, "fluidr3", "clean", 0),
        ("house-4-128-sync", "4/4", 128, "electronic", "four", "steady", "sync", 0, "timgm6mb", "noise", 0),
        ("disco-4-112", "4/4", 112, "band", "four", "steady", "straight", 0, "musescore", "reverb+comp", 0),
        ("techno-4-140", "4/4", 140, "electronic", "four", "steady", "straight", 0, "musescore", "comp", 0),
        ("break-4-174", "4/4", 174, "electronic", "breakbeat", "steady", "sync", 0, "fluidr3", "comp", 0),
        ("break-4-92", "4/4", 92, "band", "breakbeat", "steady", "straight", 0, "timgm6mb", "clean", 0),
        (
            "break-4-104-swing",
            "4/4",
            104,
            "electronic",
            "breakbeat",
            "steady",
            "swing",
            0,
            "musescore",
            "noise",
            0,
        ),
        ("ballad-4-64-pickup", "4/4", 64, "piano", "none", "rubato", "straight", 1, "fluidr3", "reverb", 0),
        ("piano-4-108", "4/4", 108, "piano", "none", "steady", "straight", 0, "timgm6mb", "clean", 0),
        ("piano-4-84-sync", "4/4", 84, "piano", "none", "steady", "sync", 2, "musescore", "clean", 0),
        ("piano-4-140-swing", "4/4", 140, "piano", "none", "steady", "swing", 0, "fluidr3", "noise", 0),
        ("piano-3-90-waltz", "3/4", 90, "piano", "none", "steady", "straight", 0, "fluidr3", "clean", 0),
        ("piano-3-160-waltz", "3/4", 160, "piano", "none", "steady", "straight", 1, "musescore", "reverb", 0),
        ("piano-3-72-rubato", "3/4", 72, "piano", "none", "rubato", "straight", 0, "timgm6mb", "clean", 0),
        ("piano-2-110-march", "2/4", 110, "piano", "none", "steady", "straight", 1, "timgm6mb", "comp", 0),
        ("piano-6/8-66", "6/8", 66, "piano", "none", "steady", "straight", 1, "fluidr3", "clean", 0),
        ("piano-12/8-60", "12/8", 60, "piano", "none", "rubato", "straight", 0, "musescore", "reverb", 0),
        ("strings-4-80", "4/4", 80, "strings", "none", "steady", "straight", 0, "fluidr3", "reverb", 0),
        ("strings-3-120", "3/4", 120, "strings", "none", "steady", "straight", 0, "musescore", "clean", 0),
        (
            "strings-4-100-ramp",
            "4/4",
            100,
            "strings",
            "none",
            "ramp",
            "straight",
            0,
            "timgm6mb",
            "clean",
            124,
        ),
        ("strings-6/8-84", "6/8", 84, "strings", "none", "rubato", "straight", 1, "fluidr3", "comp", 0),
        ("strings-2-128", "2/4", 128, "strings", "none", "steady", "sync", 0, "musescore", "noise", 0),
        ("choir-4-70", "4/4", 70, "choir", "none", "steady", "straight", 0, "fluidr3", "reverb", 0),
        ("choir-3-96", "3/4", 96, "choir", "none", "rubato", "straight", 1, "timgm6mb", "reverb", 0),
        ("choir-4-60-rubato", "4/4", 60, "choir", "none", "rubato", "straight", 0, "musescore", "clean", 0),
        ("choir-12/8-66", "12/8", 66, "choir", "none", "steady", "straight", 0, "fluidr3", "noise", 0),
        ("band-4-110-ramp", "4/4", 110, "band", "rock", "ramp", "straight", 0, "fluidr3", "clean", 138),
        ("band-4-150-ramp-down", "4/4", 150, "band", "four", "ramp", "sync", 0, "musescore", "comp", 120),
        ("band-3-138", "3/4", 138, "band", "rock", "steady", "straight", 0, "timgm6mb", "clean", 0),
        ("band-6/8-92", "6/8", 92, "band", "rock", "steady", "straight", 1, "musescore", "reverb+comp", 0),
        ("band-2-184-polka", "2/4", 184, "band", "rock", "steady", "straight", 0, "fluidr3", "clean", 0),
        ("electro-3-126", "3/4", 126, "electronic", "four", "steady", "straight", 0, "timgm6mb", "comp", 0),
        (
            "electro-12/8-80",
            "12/8",
            80,
            "electronic",
            "halftime",
            "steady",
            "straight",
            0,
            "fluidr3",
            "clean",
            0,
        ),
        ("electro-4-90-none", "4/4", 90, "electronic", "none", "steady", "sync", 0, "musescore", "clean", 0),
        ("band-4-200-swing", "4/4", 200, "band", "rock", "steady", "swing", 0, "fluidr3", "noise", 0),
        ("band-4-62-rubato", "4/4", 62, "band", "backbeat", "rubato", "straight", 1, "timgm6mb", "reverb", 0),
    ]
    specs = []
    for k, (name, meter, bpm, instr, drums, tempo, feel, pickup, sf, fx, end) in enumerate(rows):
        beats_per_bar = METERS[meter][0]
        bars = max(8, min(24, round(36.0 * bpm / 60.0 / beats_per_bar)))  # ~36 s whatever the tempo
        specs.append(
            Spec(name, meter, float(bpm), instr, drums, tempo, feel, pickup, sf, fx, bars, float(end), k)
        )
    return specs


SPECS = _specs()


# ------------------------------------------------------------------------------------------- music


@dataclass
class Note:
    start: float  # in beats from the first downbeat (a pickup is negative)
    length: float
    pitch: int
    velocity: int
    channel: int


SCALE = (0, 2, 4, 5, 7, 9, 11)
PROGRESSIONS = ((0, 4, 5, 3), (0, 3, 4, 4), (5, 3, 0, 4), (0, 5, 1, 4), (0, 0, 3, 4))
PROGRAMS = {  # per instrumentation: channel -> GM program (9 is drums)
    "piano": {0: 0, 1: 0},
    "strings": {0: 48, 1: 40, 2: 42, 3: 49},
    "choir": {0: 52, 1: 52, 2: 53},
    "band": {0: 33, 1: 29, 2: 0, 3: 4},
    "electronic": {0: 38, 1: 89, 2: 81, 3: 87},
}


def _chord(degree: int, root: int) -> list[int]:
    return [root + SCALE[(degree + i) % 7] + 12 * ((degree + i) // 7) for i in (0, 2, 4)]


def _sub_grid(meter: str) -> tuple[int, int]:
    return METERS[meter]


def compose(spec: Spec) -> list[Note]:
    """The notes of a piece, on a grid of beats (sub-pulse positions before swing)."""
    rng = np.random.default_rng(spec.seed + 1000)
    per_bar, subs = _sub_grid(spec.meter)
    root = 48 + int(rng.integers(0, 12)) - 6
    prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    notes: list[Note] = []
    sync = spec.feel == "sync"
    sub = 1.0 / subs

    def add(start: float, length: float, pitch: int, vel: float, ch: int) -> None:
        notes.append(Note(start, length, int(pitch), int(np.clip(vel + rng.normal(0, 6), 20, 127)), ch))

    for bar in range(spec.bars):
        b0 = bar * per_bar
        deg = prog[bar % len(prog)]
        chord = _chord(deg, root)
        last_bar = bar == spec.bars - 1
        # Syncopation: the next bar's chord arrives a sub-pulse early (a push into the bar line).
        push = sub if sync and bar % 2 == 1 and not last_bar else 0.0
        bar_len = per_bar if not last_bar else per_bar + 2
        bass = chord[0] - 12
        if spec.instr == "piano":
            add(b0, per_bar, bass - 12 * (bar % 2), 92, 1)
            for k in range(per_bar * subs):
                pos = b0 + k * sub
                if k == 0:
                    continue
                pitch = chord[k % 3] + (0 if k % 2 else 12)
                add(pos, sub * 1.2, pitch, 64 if k % subs else 76, 1)
        elif spec.instr == "strings":
            add(b0 - push, bar_len + push, chord[0], 70, 0)
            add(b0 - push, bar_len + push, chord[1], 66, 0)
            add(b0 - push, bar_len + push, chord[2], 66, 0)
            for beat in range(per_bar):
                add(
                    b0 + beat,
                    1.0,
                    bass - 12 if beat == 0 else bass,
                    90 if beat == 0 else 70,
                    2,
                )
        elif spec.instr == "choir":
            step = 1 if per_bar <= 3 else 2  # harmony in half bars, voices re-sung on each beat
            for beat in range(0, per_bar, step):
                c = chord if beat == 0 else _chord((deg + 3) % 7 if beat >= 2 else deg, root)
                for p in (c[0] - 12, c[1], c[2], c[0] + 12):
                    add(b0 + beat, step if not last_bar else bar_len, p, 85 if beat == 0 else 68, 0)
        else:  # band / electronic: bass line + chords/pad + an arpeggio or comping instrument
            for beat in range(per_bar):
                pitch = bass if beat % 2 == 0 else bass + 7
                add(b0 + beat, 0.9, pitch, 96 if beat == 0 else 78, 0)
                if sync and beat == per_bar - 1 and not last_bar:
                    add(b0 + beat + 1 - sub, sub, _chord(prog[(bar + 1) % len(prog)], root)[0] - 12, 90, 0)
            if spec.instr == "band":
                for k in range(per_bar * subs):
                    on_beat = k % subs == 0
                    if sync and k % 4 == 3:
                        continue
                    for p in chord:
                        add(b0 + k * sub, sub * 0.8, p + 12, 74 if on_beat else 60, 1)
                for p in chord:
                    add(b0 - push, per_bar + push, p, 56, 3)
            else:
                for p in chord:
                    add(b0 - push, bar_len + push, p + 12, 60, 1)
                for k in range(per_bar * subs * 2):
                    add(b0 + k * sub / 2, sub / 2 * 0.7, chord[k % 3] + 24, 58, 3)
        # melody: a random walk in the scale, rhythm from sub-pulses
        m_pos = 0.0
        degree = int(rng.integers(7, 11))
        while m_pos < per_bar - 1e-9 and not last_bar:
            length = (
                float(rng.choice([1.0, 1.0, 2 * sub, sub, 2.0]))
                if subs == 2
                else float(rng.choice([1.0, 2 * sub, sub]))
            )
            length = min(length, per_bar - m_pos)
            start = b0 + m_pos
            if sync and rng.random() < 0.4 and m_pos + sub < per_bar:
                start += sub  # off the beat
                length = max(sub, length - sub)
            degree = int(np.clip(degree + rng.integers(-2, 3), 5, 14))
            pitch = root + 12 + SCALE[degree % 7] + 12 * (degree // 7)
            ch = 2 if spec.instr in ("band", "electronic", "choir") else 0 if spec.instr == "piano" else 1
            if spec.instr == "strings":
                ch = 1
            add(start, length * 0.95, pitch, 84 if m_pos == 0 else 72, ch)
            m_pos = start - b0 + length
    # pickup: melody notes leading into the first bar
    for k in range(spec.pickup):
        pitch = root + 12 + SCALE[(4 + k) % 7]
        ch = 2 if spec.instr in ("band", "electronic", "choir") else 1 if spec.instr == "strings" else 0
        add(-spec.pickup + k, 0.9, pitch, 70, ch)
    notes += _drums(spec, rng)
    return notes


def _drums(spec: Spec, rng: np.random.Generator) -> list[Note]:
    """Channel-10 drums: the pattern named by ``spec.drums``, a crash on every 4th bar line."""
    if spec.drums == "none":
        return []
    per_bar, subs = _sub_grid(spec.meter)
    sub = 1.0 / subs
    out: list[Note] = []

    def hit(pos: float, pitch: int, vel: int) -> None:
        out.append(Note(pos, 0.1, pitch, int(np.clip(vel + rng.normal(0, 5), 20, 127)), 9))

    for bar in range(spec.bars):
        b0 = bar * per_bar
        if bar % 4 == 0:
            hit(b0, CRASH, 100)
        for beat in range(per_bar):
            t = b0 + beat
            half = per_bar // 2 if per_bar >= 2 else 1
            d = spec.drums
            if d == "rock":
                if per_bar == 3:
                    hit(t, KICK if beat == 0 else SNARE, 100 if beat == 0 else 80)
                elif beat % 2 == 0 or (per_bar == 2 and beat == 0):
                    hit(t, KICK, 105)
                else:
                    hit(t, SNARE, 100)
                if per_bar == 4 and beat == 2 and subs == 2:
                    hit(t + sub, KICK, 85)
            elif d == "backbeat":  # kick and snare together on 2 and 4 only; bar lines carry only harmony
                if beat % 2 == 1:
                    hit(t, KICK, 100)
                    hit(t, SNARE, 105)
            elif d == "halftime":
                if beat == 0:
                    hit(t, KICK, 105)
                if beat == half and per_bar >= 2:
                    hit(t, SNARE, 105)
                if per_bar == 4 and beat == 1:
                    hit(t + sub, KICK, 80)
            elif d == "four":
                hit(t, KICK, 110)
                if beat % 2 == 1 or (per_bar == 3 and beat > 0):
                    hit(t, CLAP, 90)
                hit(t + 0.5 if subs == 2 else t + 2 * sub, OPEN_HAT, 75)
            elif d == "breakbeat":
                pattern = {0: KICK, 1: SNARE, 3: SNARE}
                if beat in pattern:
                    hit(t, pattern[beat], 100)
                if beat == 2:
                    hit(t + sub, KICK, 95)
                if beat == 1:
                    hit(t + sub * (subs - 1) + (sub / 2 if subs == 2 else 0), KICK, 85)
                if beat == 3:
                    hit(t + sub, SNARE, 60)
            for k in range(subs):  # hats on every sub-pulse (not with four-on-the-floor's open hats)
                if d != "four" or k == 0:
                    hit(t + k * sub, HAT if d != "halftime" else RIDE, 70 if k == 0 else 55)
    return out


# --------------------------------------------------------------------------------------- timing


def beat_times(spec: Spec) -> np.ndarray:
    """Seconds of every beat, pickup included, plus one beat past the end (the time map's knots)."""
    per_bar, _ = _sub_grid(spec.meter)
    count = spec.pickup + spec.bars * per_bar + 8
    idx = np.arange(count, dtype=float)
    frac = idx / max(count - 1, 1)
    rng = np.random.default_rng(spec.seed + 77)
    if spec.tempo == "ramp":
        bpm = spec.bpm + (spec.end_bpm - spec.bpm) * frac
    elif spec.tempo == "rubato":
        phrase = 4.0 * per_bar
        slow = 0.06 * np.sin(2 * np.pi * idx / phrase + rng.uniform(0, 6.28))
        breath = -0.08 * np.exp(
            -(((idx + spec.pickup) % phrase - (phrase - 1)) ** 2) / 2.0
        )  # phrase-end ritardando
        bpm = spec.bpm * (1 + slow + breath + rng.normal(0, 0.012, count))
    else:
        bpm = np.full(count, spec.bpm)
    intervals = 60.0 / bpm
    return LEAD_IN_S + np.concatenate([[0.0], np.cumsum(intervals[:-1])])


def _swing(pos: np.ndarray, subs: int, amount: float) -> np.ndarray:
    """Positions in beats with the off-beat eighth moved from 1/2 to ``amount`` of the beat."""
    if subs != 2:
        return pos
    whole = np.floor(pos)
    frac = pos - whole
    warped = np.where(frac <= 0.5, frac * 2 * amount, amount + (frac - 0.5) * 2 * (1 - amount))
    return whole + warped


def to_seconds(spec: Spec, positions: np.ndarray, knots: np.ndarray) -> np.ndarray:
    _, subs = _sub_grid(spec.meter)
    pos = np.asarray(positions, float) + spec.pickup  # beats from the first (pickup) beat
    if spec.feel == "swing":
        pos = _swing(pos, subs, 0.64)
    return np.interp(pos, np.arange(knots.size), knots)


def write_midi(spec: Spec, notes: list[Note], knots: np.ndarray, path: Path) -> None:
    """A type-1 MIDI file at a fixed 120 BPM with notes at their exact seconds (1 ms ticks)."""
    import mido

    tpq = 500  # 120 BPM → 1 tick = 1 ms
    midi = mido.MidiFile(type=1, ticks_per_beat=tpq)
    events: list[tuple[int, int, mido.Message]] = []
    starts = to_seconds(spec, np.array([n.start for n in notes]), knots)
    ends = to_seconds(spec, np.array([n.start + n.length for n in notes]), knots)
    for n, s, e in zip(notes, starts, ends, strict=True):
        on, off = round(s * 1000), max(round(e * 1000), round(s * 1000) + 30)
        events.append((on, 1, mido.Message("note_on", note=n.pitch, velocity=n.velocity, channel=n.channel)))
        events.append((off, 0, mido.Message("note_off", note=n.pitch, velocity=0, channel=n.channel)))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    for ch, program in (dict(spec.programs) or PROGRAMS[spec.instr]).items():
        track.append(mido.Message("program_change", program=program, channel=ch, time=0))
        track.append(mido.Message("control_change", control=91, value=30, channel=ch, time=0))
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    midi.tracks.append(track)
    midi.save(str(path))


# -------------------------------------------------------------------------------------- rendering


def truth(spec: Spec) -> dict[str, Any]:
    per_bar, _ = _sub_grid(spec.meter)
    knots = beat_times(spec)
    n_beats = spec.pickup + spec.bars * per_bar
    beats = knots[:n_beats]
    downbeats = beats[spec.pickup :: per_bar]
    return {
        "beats": [round(float(t), 5) for t in beats],
        "downbeats": [round(float(t), 5) for t in downbeats],
        "beats_per_bar": per_bar,
        "tempo": float(60.0 / np.median(np.diff(beats))),
    }


def _key(spec: Spec) -> str:
    fields = asdict(spec)
    if not spec.programs:  # the default leaves the 48 pieces' keys (and cached renders) as they were
        del fields["programs"]
    return hashlib.sha256(json.dumps([CORPUS_VERSION, fields]).encode()).hexdigest()[:16]


def audio_path(spec: Spec, cache: Path = CACHE) -> Path:
    return cache / f"{spec.name.replace('/', '')}.flac"


def render(spec: Spec, cache: Path = CACHE) -> tuple[Path, dict[str, Any]]:
    """The piece's audio file (rendered once, cached in ``cache``) and its ground truth."""
    path = audio_path(spec, cache)
    truth_path = path.with_suffix(".json")
    key = _key(spec)
    try:
        cached = json.loads(truth_path.read_text(encoding="utf-8"))
        if cached.get("key") == key and path.is_file():
            return path, cached
    except (OSError, ValueError):
        pass
    sf = SOUNDFONTS[spec.soundfont]
    if not sf.is_file():
        raise SystemExit(f"corpus: missing soundfont {sf}; run scripts/install-system-deps.sh --bench")
    path.parent.mkdir(parents=True, exist_ok=True)
    knots = beat_times(spec)
    facts = truth(spec) | {"key": key}
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        mid, wav = Path(tmp) / "piece.mid", Path(tmp) / "render.wav"
        write_midi(spec, compose(spec), knots, mid)
        subprocess.run(
            # Dynamic sample loading reads only the samples the piece plays (same output, bit for
            # bit; an .sf3 otherwise takes 3-5 s to decompress whole before the first note).
            [
                *("fluidsynth", "-ni", "-q", "-o", "synth.dynamic-sample-loading=1", "-g", "0.5"),
                *("-r", str(RENDER_SR), "-F", str(wav), str(sf), str(mid)),
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
        end = float(facts["beats"][-1]) + 3.0
        chain = [f"atrim=0:{end:.3f}", "pan=mono|c0=0.5*c0+0.5*c1"]
        if EFFECTS[spec.fx]:
            chain.append(EFFECTS[spec.fx])
        chain.append("alimiter=limit=0.9")
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav)]
        if spec.fx == "noise":
            cmd += [
                "-f",
                "lavfi",
                "-i",
                f"anoisesrc=color=pink:amplitude=0.03:seed={spec.seed}:r={RENDER_SR}",
            ]
            mix = "amix=inputs=2:duration=first:normalize=0,alimiter=limit=0.9"
            graph = f"[0:a]{','.join(chain[:2])}[m];[m][1:a]{mix}[out]"
        else:
            graph = f"[0:a]{','.join(chain)}[out]"
        out = Path(tmp) / "out.flac"
        subprocess.run(
            [*cmd, "-filter_complex", graph, "-map", "[out]", "-ar", str(RENDER_SR), str(out)], check=True
        )
        os.replace(out, path)
    truth_path.write_text(json.dumps(facts), encoding="utf-8")
    return path, facts


def main() -> int:
    counts = {"tuning": 0, "test": 0}
    for spec in SPECS:
        path, facts = render(spec)
        counts[part(spec.name)] += 1
        print(
            f"{part(spec.name):6} {spec.name:26} {facts['tempo']:6.1f} BPM "
            f"{len(facts['beats']):3d} beats  {path.name}"
        )
    print(f"{len(SPECS)} pieces: {counts['tuning']} tuning, {counts['test']} test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
