"""The music of a corpus piece (``benchmarks/corpus.py``): its notes on a grid of beats, when each
beat falls (tempo, ramps, rubato, swing), and the MIDI file that places every note at its exact time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.corpus_specs import METERS, Spec

LEAD_IN_S = 0.6  # silence before the first note
KICK, SNARE, HAT, OPEN_HAT, CRASH, RIDE, CLAP, RIM = 36, 38, 42, 46, 49, 51, 39, 37


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
