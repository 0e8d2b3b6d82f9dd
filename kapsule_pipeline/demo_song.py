"""The demo song: an original track synthesized in code, with its exact ground truth.

WHY it exists: ``make demo`` needs a song nobody owns, the notebooks need a default input, and the
tests and the beat-tracking benchmark need a song whose beats, downbeats and sections are *known*,
not estimated. So the song is rendered from a plan (tempo, meter, chords, sections) and the plan
is the ground truth: every beat is a sample index, and the kick/snare/bass notes that mark a beat
start on exactly that sample.

Deterministic: the same arguments give the same bytes (seeded ``numpy`` generators, no clock, no
threads). Fast: every note or drum hit is rendered once, vectorized, and added into one buffer
(wavetable oscillators, drum templates rendered once per style, one FFT convolution for the
reverb); the ~60 s demo takes well under a second on one core.

Where things live: this module owns the public API, validation, the plan (grid, bars, chords,
melody) and the mix; ``demo_patterns`` holds the per-bar arrangement rules (drum and bass
patterns, melody motifs, pitch helpers) and ``synth`` the instruments that make the sound.

Musical plan: a major key, a real progression per section (one chord per bar), bass on the chord
roots, pads voiced inside one octave (so voice leading is smooth), a seeded 2-bar melody motif per
section repeated as question/answer phrases and snapped to chord tones on strong beats. Sections
differ on purpose (intro sparse and quiet, verse medium, chorus full and loud, outro fading) so
energy and section analysis have something real to find.

Run ``python -m kapsule_pipeline.demo_song OUT.wav`` to listen.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from kapsule_pipeline import synth
from kapsule_pipeline.demo_patterns import (
    MAJOR,
    Bar,
    bass_pattern,
    degree_midi,
    drum_pattern,
    hz,
    motif,
    nearest_chord_tone,
)
from kapsule_pipeline.errors import InvalidParameter
from kapsule_pipeline.models import Section

STYLES = ("pop", "rock", "ballad", "electronic", "waltz")
LABELS = ("intro", "verse", "chorus", "bridge", "outro")
SILENCE_LABEL = "silence"  # the section covering ``leading_silence``, so sections still start at 0
TEMPO_RANGE = (60.0, 200.0)  # tuned for 70-180 BPM; a little slack for benchmarks
MAX_SECONDS = 20 * 60.0
PEAK = 10 ** (-1 / 20)  # -1 dBFS
TARGET_SECONDS = 60.0
# Seconds each section of the default structure aims at; bars are rounded from these per tempo.
DEFAULT_PLAN = (
    ("intro", 8.0),
    ("verse", 16.0),
    ("chorus", 16.0),
    ("verse", 8.0),
    ("chorus", 8.0),
    ("outro", 4.0),
)
DEMO_ARGS: dict[str, Any] = {
    "tempo": 120.0,
    "beats_per_bar": 4,
    "seed": 3,
    "style": "pop",
    "syncopation": 0.3,
}

ROMAN = ("I", "ii", "iii", "IV", "V", "vi", "vii°")
KEYS = (("C", 0), ("D", 2), ("Eb", 3), ("E", 4), ("F", 5), ("G", 7), ("A", 9), ("Bb", 10))
# (verse, chorus) progressions as scale degrees, one chord per bar; intro borrows the verse's.
PROGRESSIONS = (
    ((5, 3, 0, 4), (0, 4, 5, 3)),  # vi IV I V  /  I V vi IV
    ((0, 5, 3, 4), (3, 0, 4, 5)),  # I vi IV V  /  IV I V vi
    ((0, 3, 5, 4), (5, 3, 0, 4)),  # I IV vi V  /  vi IV I V
    ((5, 4, 3, 4), (0, 4, 5, 3)),  # vi V IV V  /  I V vi IV
)
BRIDGE_PROGRESSION = (3, 4, 5, 5)
OUTRO_PROGRESSION = (3, 0)  # IV I: a plagal "amen" that fades well
LEVEL = {SILENCE_LABEL: 0.0, "intro": 0.5, "verse": 0.78, "chorus": 1.0, "bridge": 0.72, "outro": 0.7}


# ----------------------------------------------------------------------------------------- public API


@dataclass(frozen=True, eq=False)  # eq=False: ``==`` on an ndarray field is ambiguous; compare samples
class DemoSong:
    """A rendered song and the plan it was rendered from (the ground truth)."""

    samples: np.ndarray  # float32, shape (n, 2), peak -1 dBFS, read-only
    sample_rate: int
    tempo: float
    beats_per_bar: int
    beats: list[float]  # every beat (s), absolute, including intro/outro; each is an exact sample
    downbeats: list[float]  # bar starts (s)
    sections: list[Section]  # contiguous, cover [0, duration]
    duration: float
    style: str = "pop"
    seed: int = 0
    swing: float = 0.0
    syncopation: float = 0.0
    key: str = "C"

    def ground_truth(self) -> dict[str, Any]:
        """The plan as JSON-ready data: the keys of ``analysis.json`` (minus energy) plus ``params``."""
        return {
            "duration": self.duration,
            "tempo": self.tempo,
            "beats": list(self.beats),
            "downbeats": list(self.downbeats),
            "sections": [s.model_dump() for s in self.sections],
            "beats_per_bar": self.beats_per_bar,
            "params": {
                "style": self.style,
                "seed": self.seed,
                "swing": self.swing,
                "syncopation": self.syncopation,
                "key": f"{self.key} major",
                "sample_rate": self.sample_rate,
            },
        }


def synthesize_song(
    *,
    tempo: float = 120.0,
    beats_per_bar: int = 4,
    seed: int = 0,
    style: str = "pop",
    swing: float = 0.0,
    structure: Sequence[tuple[str, int]] | None = None,
    leading_silence: float = 0.0,
    sample_rate: int = 44100,
    syncopation: float = 0.0,
) -> DemoSong:
    """Render an original song and return it with its ground truth.

    ``structure`` is ``[(label, bars), ...]`` with labels from ``LABELS``; by default about 60 s of
    intro / verse / chorus / verse / chorus / outro at this tempo. ``swing`` (0..0.5) delays each
    off-beat 8th by ``swing`` of an 8th (1/3 is a triplet shuffle); beats never move.
    ``syncopation`` (0..1) adds anticipations (bass, kick, melody) between the beats.
    ``leading_silence`` seconds of digital silence come first; every time shifts by it, and a
    ``"silence"`` section covers it. Bad values raise ``InvalidParameter``.
    """
    _validate(tempo, beats_per_bar, seed, style, swing, syncopation, leading_silence, sample_rate)
    plan = list(structure) if structure is not None else default_structure(tempo, beats_per_bar)
    _validate_structure(plan, tempo, beats_per_bar)
    song = _Song(tempo, beats_per_bar, seed, style, swing, syncopation, leading_silence, sample_rate, plan)
    return song.render()


def default_structure(tempo: float, beats_per_bar: int) -> list[tuple[str, int]]:
    """About 60 s of intro/verse/chorus/verse/chorus/outro, in whole bars at this tempo and meter."""
    bar = beats_per_bar * 60.0 / tempo
    plan = []
    for label, seconds in DEFAULT_PLAN:
        bars = seconds / bar
        plan.append((label, max(1, 2 * round(bars / 2) if bars >= 6 else round(bars))))  # even: 2-bar motifs
    return plan


@cache
def demo_song() -> DemoSong:
    """THE demo song (~60 s, pop, 120 BPM, 4/4); rendered once per process."""
    return synthesize_song(**DEMO_ARGS)


def write_song(song: DemoSong, path: Path) -> Path:
    """Write a 16-bit PCM WAV and, beside it, ``.json`` ground truth (both atomically).

    The JSON also holds ``audio_sha256`` (of the PCM data), so a stale WAV is never mistaken for
    the current one. The WAV is written first: a JSON file on disk implies a complete WAV.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = _to_pcm16(song.samples)
    _atomic_write(path, lambda tmp: sf.write(tmp, pcm, song.sample_rate, format="WAV", subtype="PCM_16"))
    text = _truth_json(song, pcm)
    _atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path


def write_demo_song(path: Path) -> Path:
    """Write the demo song to ``path`` unless an identical one (same ground truth JSON) is there."""
    path = Path(path)
    song = demo_song()
    truth = path.with_suffix(".json")
    if path.is_file() and truth.is_file():
        try:
            if truth.read_text(encoding="utf-8") == _truth_json(song, _to_pcm16(song.samples)):
                return path
        except (OSError, UnicodeDecodeError):
            pass
    return write_song(song, path)


def main(argv: Sequence[str]) -> int:
    """``python -m kapsule_pipeline.demo_song OUT.wav``: write the demo song to listen to."""
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m kapsule_pipeline.demo_song OUT.wav", file=sys.stderr)
        return 2
    path = write_demo_song(Path(argv[0]))
    song = demo_song()
    labels = " / ".join(f"{s.label} {s.start:.1f}s" for s in song.sections)
    print(f"wrote {path} ({song.duration:.1f} s, {song.tempo:g} BPM, {song.key} major): {labels}")
    return 0


# ------------------------------------------------------------------------------------------ validation


def _validate(
    tempo: float,
    beats_per_bar: int,
    seed: int,
    style: str,
    swing: float,
    syncopation: float,
    leading_silence: float,
    sample_rate: int,
) -> None:
    def bad(message: str) -> InvalidParameter:
        return InvalidParameter(f"demo song: {message}")

    if not (
        isinstance(tempo, int | float) and math.isfinite(tempo) and TEMPO_RANGE[0] <= tempo <= TEMPO_RANGE[1]
    ):
        raise bad(f"tempo must be between {TEMPO_RANGE[0]:g} and {TEMPO_RANGE[1]:g} BPM, got {tempo!r}")
    if beats_per_bar not in (2, 3, 4) or isinstance(beats_per_bar, bool):
        raise bad(f"beats_per_bar must be 2, 3 or 4, got {beats_per_bar!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise bad(f"seed must be a non-negative integer, got {seed!r}")
    if style not in STYLES:
        raise bad(f"style must be one of {', '.join(STYLES)}; got {style!r}")
    if not (isinstance(swing, int | float) and 0.0 <= swing <= 0.5):
        raise bad(f"swing must be between 0 and 0.5, got {swing!r}")
    if not (isinstance(syncopation, int | float) and 0.0 <= syncopation <= 1.0):
        raise bad(f"syncopation must be between 0 and 1, got {syncopation!r}")
    if not (isinstance(leading_silence, int | float) and 0.0 <= leading_silence <= MAX_SECONDS):
        raise bad(f"leading_silence must be between 0 and {MAX_SECONDS:g} s, got {leading_silence!r}")
    if not isinstance(sample_rate, int) or not 16000 <= sample_rate <= 96000:
        raise bad(f"sample_rate must be an integer between 16000 and 96000 Hz, got {sample_rate!r}")


def _validate_structure(plan: list[tuple[str, int]], tempo: float, beats_per_bar: int) -> None:
    if not plan:
        raise InvalidParameter("demo song: structure is empty; give at least one (label, bars) pair")
    for item in plan:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise InvalidParameter(f"demo song: structure items are (label, bars) pairs, got {item!r}")
        label, bars = item
        if label not in LABELS:
            raise InvalidParameter(
                f"demo song: section label must be one of {', '.join(LABELS)}; got {label!r}"
            )
        if not isinstance(bars, int) or isinstance(bars, bool) or bars < 1:
            raise InvalidParameter(
                f"demo song: section {label!r} needs a whole number of bars >= 1, got {bars!r}"
            )
    seconds = sum(bars for _, bars in plan) * beats_per_bar * 60.0 / tempo
    if seconds > MAX_SECONDS:
        raise InvalidParameter(
            f"demo song: structure lasts {seconds:.0f} s; the limit is {MAX_SECONDS:.0f} s"
        )


# ------------------------------------------------------------------------------------------- the song


class _Song:
    """One rendering: the plan (grid, bars, chords, melody) and the buffers it is mixed into."""

    def __init__(
        self,
        tempo: float,
        bpb: int,
        seed: int,
        style: str,
        swing: float,
        sync: float,
        leading_silence: float,
        sr: int,
        plan: list[tuple[str, int]],
    ) -> None:
        self.tempo, self.bpb, self.seed, self.style = float(tempo), bpb, seed, style
        self.swing, self.sync, self.sr = float(swing), float(sync), sr
        self.offset = round(leading_silence * sr)
        self.beat_seconds = 60.0 / self.tempo
        harmony = np.random.default_rng([seed, 0])
        self.key, self.tonic = KEYS[int(harmony.integers(len(KEYS)))]
        self.progressions = PROGRESSIONS[int(harmony.integers(len(PROGRESSIONS)))]
        self.melody_rng = np.random.default_rng([seed, 1])
        self.groove_rng = np.random.default_rng([seed, 2])
        self.phase_rng = np.random.default_rng([seed, 3])
        self.bars = self._bars(plan)
        self.n = self.at(len(self.bars) * bpb)
        self.mix = np.zeros((2, self.n), np.float32)
        self.send = np.zeros(self.n, np.float32)  # reverb send (mono in, stereo out)
        self.pads = np.zeros((2, self.n), np.float32)  # own bus: electronic pumps it to the kick

    # --------------------------------------------------------------------------------- time grid

    def at(self, beat: float) -> int:
        """Sample index of a position in beats from the first bar (leading silence included)."""
        whole = math.floor(beat)
        frac = beat - whole
        # Swing: the off-beat 8th moves later by ``swing`` of an 8th; beats and the grid
        # between them are warped piecewise-linearly so 16ths stay in order.
        if frac < 0.5:
            frac *= 1 + self.swing
        else:
            frac = 0.5 + self.swing / 2 + (frac - 0.5) * (1 - self.swing)
        return self.offset + round((whole + frac) * self.beat_seconds * self.sr)

    def _bars(self, plan: list[tuple[str, int]]) -> list[Bar]:
        verse, chorus = self.progressions
        progression = {
            "intro": verse,
            "verse": verse,
            "chorus": chorus,
            "bridge": BRIDGE_PROGRESSION,
            "outro": OUTRO_PROGRESSION,
        }
        bars: list[Bar] = []
        seen: dict[str, int] = {}
        for s, (label, length) in enumerate(plan):
            occurrence = seen.get(label, 0)
            seen[label] = occurrence + 1
            following = plan[s + 1][0] if s + 1 < len(plan) else None
            chords = progression[label]
            for pos in range(length):
                chord = chords[pos % len(chords)]
                if label == "outro" and pos == length - 1:
                    chord = 0  # always end on the tonic
                bars.append(Bar(len(bars), label, pos, length, occurrence, chord, following))
        return bars

    # ------------------------------------------------------------------------------------- render

    def render(self) -> DemoSong:
        kit = synth.drum_kit(self.style, self.sr)
        for bar in self.bars:
            self._drums(bar, kit)
            self._bass(bar)
            self._harmony(bar)
            self._arp(bar)
        self._melody()
        samples = self._master()
        beats = [self.at(b) / self.sr for b in range(len(self.bars) * self.bpb)]
        duration = self.n / self.sr
        sections = self._sections(duration)
        return DemoSong(
            samples=samples,
            sample_rate=self.sr,
            tempo=self.tempo,
            beats_per_bar=self.bpb,
            beats=beats,
            downbeats=beats[:: self.bpb],
            sections=sections,
            duration=duration,
            style=self.style,
            seed=self.seed,
            swing=self.swing,
            syncopation=self.sync,
            key=self.key,
        )

    def _sections(self, duration: float) -> list[Section]:
        sections = [Section(start=0.0, end=self.offset / self.sr, label=SILENCE_LABEL)] if self.offset else []
        for bar in self.bars:
            if bar.pos == 0:
                start = self.at(bar.index * self.bpb) / self.sr
                if sections:
                    sections[-1] = Section(start=sections[-1].start, end=start, label=sections[-1].label)
                sections.append(Section(start=start, end=duration, label=bar.label))
        return sections

    def place(self, start: int, sound: synth.Mono, gain: float, pan: float = 0.0, send: float = 0.0) -> None:
        """Add a mono sound at a sample index (equal-power pan -1..1; ``send`` feeds the reverb)."""
        self._add(self.mix, start, sound, gain, pan, send)

    def _add(
        self, bus: np.ndarray, start: int, sound: synth.Mono, gain: float, pan: float, send: float
    ) -> None:
        if start >= self.n or gain <= 0:
            return
        sound = sound[: self.n - start]
        end = start + len(sound)
        angle = (pan + 1) * math.pi / 4
        bus[0, start:end] += (gain * math.cos(angle)) * sound
        bus[1, start:end] += (gain * math.sin(angle)) * sound
        if send:
            self.send[start:end] += (gain * send) * sound

    def level(self, bar: Bar) -> float:
        return LEVEL[bar.label]

    # -------------------------------------------------------------------------------------- drums

    def _drums(self, bar: Bar, kit: dict[str, synth.Mono]) -> None:
        base = bar.index * self.bpb
        level = self.level(bar)
        for name, pos, velocity in drum_pattern(self.style, bar, self.bpb, self.sync, self.groove_rng):
            sound = kit[name]
            pan = {"hat": 0.3, "open": 0.3, "crash": -0.4}.get(name, 0.0)
            send = {"snare": 0.25, "clap": 0.3, "rim": 0.2, "crash": 0.2}.get(name, 0.04)
            if name == "hat":  # a drummer's hats are never two alike
                velocity *= 0.85 + 0.3 * self.groove_rng.random()
            self.place(self.at(base + pos), sound, velocity * level, pan, send)

    # --------------------------------------------------------------------------------------- bass

    def _bass_midi(self, degree: int) -> int:
        pc = (self.tonic + MAJOR[degree % 7]) % 12
        return 33 + (pc - 33) % 12  # A1..G#2

    def _bass(self, bar: Bar) -> None:
        notes = bass_pattern(self.style, bar, self.bpb)
        if not notes:
            return
        base = bar.index * self.bpb
        level = self.level(bar)
        root = self._bass_midi(bar.chord)
        nxt = self.bars[bar.index + 1] if bar.index + 1 < len(self.bars) else None
        anticipate = nxt is not None and self.groove_rng.random() < self.sync * 0.6 and bar.label != "outro"
        bright = {"rock": 2200.0, "ballad": 500.0, "electronic": 1600.0}.get(self.style, 1100.0)
        for pos, length, interval, velocity in notes:
            midi = root + interval
            if anticipate and nxt is not None and pos == self.bpb - 0.5:
                midi = self._bass_midi(nxt.chord)
            start, end = self.at(base + pos), self.at(base + pos + length)
            note = synth.bass_note(hz(midi), end - start, self.sr, bright, self.style)
            self.place(start, note, 0.55 * velocity * level)

    # ------------------------------------------------------------------------------ pads, guitar

    def _voicing(self, degree: int, low: int = 55) -> list[int]:
        """The triad inside one octave from ``low``: neighbouring chords share or step notes."""
        pcs = [(self.tonic + MAJOR[(degree + k) % 7]) % 12 for k in (0, 2, 4)]
        return sorted(low + (pc - low) % 12 for pc in pcs)

    def _harmony(self, bar: Bar) -> None:
        base = bar.index * self.bpb
        level = self.level(bar)
        start, end = self.at(base), self.at(base + self.bpb)
        if self.style == "rock" and bar.label in ("verse", "chorus", "bridge"):
            self._guitar(bar, base, level)
            return
        voicing = self._voicing(bar.chord)
        if bar.label == "chorus":
            voicing.append(voicing[0] + 12)
        cutoff = {"intro": 700.0, "verse": 1300.0, "chorus": 2800.0, "bridge": 1500.0, "outro": 900.0}[
            bar.label
        ]
        attack = {"ballad": 0.7, "electronic": 0.02, "rock": 0.3}.get(self.style, 0.12)
        gain = {"ballad": 0.2, "electronic": 0.12, "rock": 0.12}.get(self.style, 0.13) * level
        release = 0.5 if self.style == "ballad" else 0.3
        for midi in voicing:
            left, right = synth.pad_note(
                hz(midi), end - start, self.sr, cutoff, attack, release, self.phase_rng
            )
            self._add(self.pads, start, left, gain, -1.0, 0.35)
            self._add(self.pads, start, right, gain, 1.0, 0.35)
        if self.style == "waltz" and bar.label in ("verse", "chorus", "bridge"):
            for beat in range(1, self.bpb):  # "oom-pah-pah": the bass takes 1, short chords the rest
                length = self.at(base + beat + 0.6) - self.at(base + beat)
                for i, midi in enumerate(self._voicing(bar.chord, 60)):
                    note = synth.pluck(hz(midi), length, self.sr, 2500.0, 0.25)
                    self.place(self.at(base + beat), note, 0.09 * level, (-0.3, 0.0, 0.3)[i], 0.25)

    def _guitar(self, bar: Bar, base: int, level: float) -> None:
        """Distorted power chords: palm-muted 8ths in the verse, open strums in the chorus."""
        root = 40 + (self._bass_midi(bar.chord) - 40) % 12
        if bar.label == "chorus":
            hits = [(0.0, self.bpb / 2, 1.0), (self.bpb / 2, self.bpb / 2, 0.85)]
        else:
            hits = [(k / 2, 0.4, 0.8 if k % 2 == 0 else 0.6) for k in range(self.bpb * 2)]
        for pos, length, velocity in hits:
            start = self.at(base + pos)
            n = self.at(base + pos + length) - start + int(0.05 * self.sr)
            muted = bar.label != "chorus"
            chord = synth.power_chord(hz(root), n, self.sr, muted)
            gain = 0.16 * velocity * level
            self.place(start, chord, gain, -0.5, 0.1)
            self.place(start + int(0.012 * self.sr), chord, gain * 0.8, 0.5, 0.1)  # double-tracked

    # ---------------------------------------------------------------------------------------- arp

    def _arp(self, bar: Bar) -> None:
        wanted = {
            "pop": ("intro", "chorus"),
            "electronic": ("verse", "chorus", "bridge"),
            "ballad": ("chorus", "bridge"),
        }.get(self.style, ())
        if bar.label not in wanted:
            return
        step = 0.25 if self.style == "electronic" else 0.5
        tones = [*self._voicing(bar.chord, 64), self._voicing(bar.chord, 64)[0] + 12]
        order = [0, 1, 2, 3, 2, 1]
        base = bar.index * self.bpb
        gain = {"intro": 0.06, "verse": 0.05}.get(bar.label, 0.075) * self.level(bar)
        decay = 0.35 if self.style == "ballad" else 0.14
        for k in range(round(self.bpb / step)):
            midi = tones[order[k % len(order)]]
            start = self.at(base + k * step)
            note = synth.pluck(hz(midi), self.at(base + (k + 1) * step) - start, self.sr, 3200.0, decay)
            self.place(start, note, gain * (1.0 if k % 2 == 0 else 0.75), 0.45, 0.3)

    # ------------------------------------------------------------------------------------- melody

    def _melody(self) -> None:
        """A 2-bar motif per section label, repeated as question (A) / answer (A with cadence)."""
        lead_tonic = 60 + self.tonic if self.tonic <= 8 else 48 + self.tonic
        motifs: dict[str, list[tuple[float, float, int]]] = {}
        for label, center, density in (("verse", 3, 0.4), ("chorus", 7, 0.6), ("bridge", 5, 0.35)):
            motifs[label] = motif(self.melody_rng, self.bpb, density, center, self.sync)
        for bar in self.bars:
            if bar.label not in motifs:
                continue
            cadence = bar.pos % 4 == 3 or bar.pos == bar.length - 1
            phrase_bar = bar.pos % 2
            if cadence:
                notes = [(0.0, self.bpb - 0.5, motifs[bar.label][0][2])]
            else:
                notes = [(p - phrase_bar * self.bpb, d, g) for p, d, g in motifs[bar.label]]
                notes = [n for n in notes if 0 <= n[0] < self.bpb]
            for pos, length, degree in notes:
                strong = float(pos).is_integer()
                if strong or cadence:
                    degree = nearest_chord_tone(degree, bar.chord, prefer_root=cadence)
                self._lead_note(bar, pos, length, degree_midi(lead_tonic, degree))

    def _lead_note(self, bar: Bar, pos: float, length: float, midi: int) -> None:
        base = bar.index * self.bpb
        start = self.at(base + pos)
        gate = self.at(base + pos + length) - start
        level = self.level(bar) * (1.15 if bar.label == "chorus" else 1.0)
        note = synth.lead_note(hz(midi), gate, self.sr, self.style)
        gain = 0.16 * level
        self.place(start, note, gain, -0.15, 0.3)
        if bar.label == "chorus":  # octave double, quieter: the chorus sounds bigger
            self.place(start, synth.lead_note(hz(midi + 12), gate, self.sr, self.style), gain * 0.3, 0.2, 0.3)
        echo = self.at(base + pos + 0.75) - start  # dotted-8th echo, wet only on the sides
        self.place(start + echo, note, gain * 0.25, 0.7, 0.2)
        self.place(start + 2 * echo, note, gain * 0.1, -0.7, 0.2)

    # ------------------------------------------------------------------------------------- master

    def _master(self) -> np.ndarray:
        if self.style == "electronic":  # side-chain pump: pads duck on every beat, like a real kick
            beat_starts = np.array([self.at(b) for b in range(len(self.bars) * self.bpb)])
            idx = np.arange(self.n)
            last = beat_starts[np.maximum(np.searchsorted(beat_starts, idx, side="right") - 1, 0)]
            since = (idx - last) / self.sr
            self.pads *= (1.0 - 0.6 * np.exp(-since / 0.12)).astype(np.float32)
        self.mix += self.pads
        wet = synth.reverb(self.send, self.sr, 2.2 if self.style == "ballad" else 1.5)
        out = self.mix + wet * (0.5 if self.style == "ballad" else 0.35)
        out *= self._fade()
        peak = float(np.max(np.abs(out))) or 1.0
        drive = 1.6
        out = np.tanh(out * (drive / peak)) / math.tanh(drive)  # gentle saturation glues the mix
        out *= PEAK / (float(np.max(np.abs(out))) or 1.0)
        out[:, : self.offset] = 0.0  # FFT round-off must not leak into the leading silence
        samples = np.ascontiguousarray(out.T, dtype=np.float32)
        samples.flags.writeable = False
        return samples

    def _fade(self) -> np.ndarray:
        """Master gain: the outro fades to silence; the last 20 ms ramp so the end never clicks."""
        gain = np.ones(self.n, np.float32)
        outro = [b for b in self.bars if b.label == "outro" and b.pos == 0]
        if outro:
            start = self.at(outro[-1].index * self.bpb)
            ramp = np.linspace(1.0, 0.0, self.n - start, dtype=np.float32)
            gain[start:] = ramp**1.5
        tail = min(self.n - self.offset, int(0.02 * self.sr))
        if tail > 0:
            gain[self.n - tail :] *= np.linspace(1.0, 0.0, tail, dtype=np.float32)
        return gain


# ----------------------------------------------------------------------------------------------- files


def _to_pcm16(samples: np.ndarray) -> np.ndarray:
    return np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")


def _truth_json(song: DemoSong, pcm: np.ndarray) -> str:
    truth = {**song.ground_truth(), "audio_sha256": hashlib.sha256(pcm.tobytes()).hexdigest()}
    return json.dumps(truth, indent=1) + "\n"


def _atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Write through a temp file in the same folder, then rename: a killed run leaves no half file."""
    # Not mkstemp: its 0600 mode would stick to the renamed file; this name is just as unique.
    tmp = str(path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
